"""ONNX export of a trained detector, decoding included, for inference without PyTorch.

The graph maps `images` float32 [B, C, S, S] in [0, 1] to `predictions` float32 [B, N, 5 + nc]
(cx, cy, w, h pixels of the network input, objectness, class probabilities), so ONNX Runtime needs
only NMS after it (`drowsy.infer.predict.Detector` reads these files). The file carries metadata
(stride, class names, input channels, export size) that `Detector` relies on.
"""

import json
import warnings
from pathlib import Path

import onnx
import torch

from drowsy.errors import DrowsyError
from drowsy.infer.predict import fit_img_size, load_inference_model
from drowsy.paths import resolve


def export_onnx(
    weights: str | Path, out_path: str | Path, img_size: int = 640, dynamic: bool = False, opset: int = 17
) -> Path:
    """Export a checkpoint's fused EMA model with decoding to ONNX and check the file.

    img_size: the (square) input size in pixels, rounded up to a multiple of the largest stride;
    with `dynamic` the batch, height and width axes are free instead (img_size only traces).
    A static graph takes batch 1. Returns the path written.
    """
    if img_size < 1:
        raise DrowsyError(f"export: field 'img_size': must be >= 1 pixel, got {img_size}")
    model, checkpoint = load_inference_model(weights)
    stride = int(model.model.strides.max())
    img_size = fit_img_size(img_size, stride)
    out_path = resolve(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, checkpoint["in_channels"], img_size, img_size)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "predictions": {0: "batch", 1: "candidates"}}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript, a dependency this project does not carry; this one handles the model fully.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(out_path),
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["predictions"],
            dynamic_axes=axes if dynamic else None,
        )
    graph = onnx.load(str(out_path))
    metadata = {
        "drowsy_stride": str(stride),
        "drowsy_class_names": json.dumps(list(checkpoint["class_names"]), ensure_ascii=False),
        "drowsy_in_channels": str(checkpoint["in_channels"]),
        "drowsy_img_size": str(img_size),
        "drowsy_model_config": str(checkpoint["model_config"]),
        "drowsy_output": "cx, cy, w, h (network-input pixels), objectness, class probabilities",
    }
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out_path))
    return out_path
