"""Detections for the monitor: a detector on a batch of frames (rectangular letterbox, the shared
post-processing) and the factory that builds the detector for a backend.

PyTorch and the detector's modules are imported where a detector runs, so the ground-truth path of
`run_monitor` (a clip's boxes as detections) works without loading them.
"""

from pathlib import Path

import numpy as np

from drowsy.errors import DrowsyError
from drowsy.paths import resolve

MAX_DETECTIONS = 50  # per frame: one driver has a face, two eyes, a mouth, a phone, a cigarette


def detect_frames(
    detector, frames: list[np.ndarray], img_size: int, conf: float, iou: float, max_det: int = MAX_DETECTIONS
) -> list:
    """Detections of equally sized frames through a rectangular letterbox (drowsy.data.geometry.rect_letterbox:
    the long side scaled to `img_size`, rounded up to the detector's stride, as in `Detector.detect`,
    the short side padded only to the next stride multiple), post-processed as every detection is
    (drowsy.infer.postprocess.to_detections). Needs a PyTorch detector or an ONNX one exported with dynamic axes.
    frames: uint8 [H, W]. Returns per frame float32 [n, 6] (x1, y1, x2, y2 original pixels, score, class_id).
    """
    import torch

    from drowsy.data.geometry import fit_img_size, rect_letterbox
    from drowsy.infer.postprocess import to_detections

    padded, geometry = rect_letterbox(frames, fit_img_size(img_size, detector.stride), detector.stride)
    pixels = torch.from_numpy(padded)[:, None].float().div_(255).expand(-1, detector.in_channels, -1, -1)
    decoded = detector.decoded_predictions(pixels)
    return to_detections([(decoded, [geometry] * len(frames))], [frames[0].shape[:2]] * len(frames), conf, iou, max_det)


BACKENDS = ("torch", "onnx", "openvino")  # PyTorch, ONNX Runtime, OpenVINO (the last two on an exported graph)


def build_detector(
    weights: str | Path,
    backend: str = "torch",
    img_size: int = 416,
    export_dir: str | Path | None = None,
    device: str = "cpu",
):
    """A `drowsy.infer.predict.Detector` for the monitor, on the CPU unless `device` says otherwise.

    backend "torch": the checkpoint with autocast (bf16 on the CPU) on `device` (e.g. the training GPU,
    to calibrate on many images fast); "onnx": ONNX Runtime on the CPU, on the .onnx given, or on an
    export of the checkpoint to `export_dir` (default: next to it) with dynamic batch and size; "openvino":
    the same graph run by OpenVINO.
    """
    from drowsy.infer.predict import Detector

    weights = resolve(weights)
    if backend not in BACKENDS:
        raise DrowsyError(f"monitor: field 'backend': must be one of {', '.join(BACKENDS)}, got {backend!r}")
    openvino = backend == "openvino"
    if backend == "torch" or weights.suffix.lower() == ".onnx":
        return Detector(
            weights, device=device if backend == "torch" else "cpu", amp=backend == "torch", openvino=openvino
        )
    from drowsy.infer.export import export_onnx

    if not weights.is_file():
        raise DrowsyError(f"{weights}: weights not found")
    onnx_path = resolve(export_dir or weights.parent) / f"{weights.stem}.dynamic.onnx"
    if not onnx_path.is_file() or onnx_path.stat().st_mtime < weights.stat().st_mtime:
        export_onnx(weights, onnx_path, img_size=img_size, dynamic=True)
    return Detector(onnx_path, openvino=openvino)
