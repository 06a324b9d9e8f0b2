"""INT8 ONNX: static post-training quantization of an exported detector (ONNX Runtime's quantizer).

The backbone, neck and head convolutions and the activations between them become 8-bit (QDQ format:
QuantizeLinear / DequantizeLinear pairs that ONNX Runtime fuses into integer kernels; weights per output
channel, signed; activations unsigned, their ranges calibrated on images of a prepared split). Two ends
stay in float:
- the stem (the first convolution and its SiLU): with one input channel its integer kernel is an
  im2col of 36-value rows, 5x slower than the float one on this CPU (1.05 against 0.21 ms at 320 px),
  and it reads the pixels at full precision;
- the head's output convolutions and the decoding after them (sigmoids, grid offsets, anchor sizes, the
  concatenation of boxes and probabilities): quantized to one 8-bit scale, pixel coordinates up to the
  input size and probabilities near 0 would share 256 steps, and every score would round away. The file keeps the
metadata `drowsy.infer.predict.Detector` needs, says it is INT8 and on what it was calibrated, and is
run by `Detector`, `drowsy predict` and `drowsy monitor` like the fp32 graph.
"""

import json
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from drowsy.data.labels import load_manifest, spread
from drowsy.errors import DrowsyError
from drowsy.files import read_gray
from drowsy.infer.predict import View, letterbox_views
from drowsy.paths import require, resolve

MIN_OPSET = 13  # per-channel QuantizeLinear / DequantizeLinear (the `axis` attribute)
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"})
QUANTIZED_PREFIX = "/model/"  # nodes of the network itself; the stem's and the head's are left out below
FLOAT_PREFIXES = ("/model/backbone/stem/", "/model/head/")  # kept float (see the module's docstring)


def quantize_onnx(
    model_path: str | Path, out_path: str | Path, calibration: str | Path, calibration_images: int = 100
) -> Path:
    """Write an INT8 copy of the drowsy ONNX graph `model_path` to `out_path`, its activation ranges
    calibrated on `calibration_images` images of the manifest `calibration` (a split of drowsy prepare),
    spread evenly over it. Returns the path written. Bad input is a one-line DrowsyError: a split with
    no image, a graph already quantized, an opset before 13."""
    model_path, out_path = resolve(model_path), resolve(out_path)
    model = onnx.load(str(model_path))
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    _check_graph(model, metadata, model_path)
    reader = CalibrationImages(calibration, calibration_images, int(metadata["drowsy_img_size"]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"  # shapes inferred, constants folded: what the quantizer wants
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)  # dynamic axes: ONNX inference
        floats = [
            node.name
            for node in onnx.load(str(prepared)).graph.node
            if not node.name.startswith(QUANTIZED_PREFIX) or node.name.startswith(FLOAT_PREFIXES)
        ]
        quantize_static(
            str(prepared),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=floats,
        )
    quantized = onnx.load(str(out_path))
    del quantized.metadata_props[:]
    calibrated = {"manifest": str(reader.manifest), "images": reader.count, "method": "min-max"}
    for key, value in {**metadata, "drowsy_precision": "int8", "drowsy_calibration": json.dumps(calibrated)}.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(quantized)
    onnx.save(quantized, str(out_path))
    return out_path


def _check_graph(model: onnx.ModelProto, metadata: dict, path: Path) -> None:
    if "drowsy_img_size" not in metadata:
        raise DrowsyError(f"{path}: field 'drowsy_img_size': missing; export the model with drowsy export first")
    if metadata.get("drowsy_precision") == "int8" or any(node.op_type in QUANTIZED_OPS for node in model.graph.node):
        raise DrowsyError(f"{path}: already quantized; quantize the fp32 graph drowsy export writes")
    opset = max((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise DrowsyError(
            f"{path}: opset {opset} is too old for per-channel INT8 (needs >= {MIN_OPSET}); export with --opset 17"
        )


class CalibrationImages(CalibrationDataReader):
    """ONNX Runtime's calibration reader: `count` images of a manifest, spread evenly over it, letterboxed
    to the graph's input size as `Detector` feeds them."""

    def __init__(self, manifest: str | Path, count: int, img_size: int):
        if count < 1:
            raise DrowsyError(f"export: field 'calibration_images': must be >= 1, got {count}")
        self.manifest = require(manifest, "notebooks/02_build_diet.ipynb (drowsy prepare)")
        split = load_manifest(self.manifest)
        if not split.records:
            raise DrowsyError(f"{self.manifest}: no image to calibrate on")
        picked = spread(split.records, count)
        self.count, self.size = len(picked), img_size
        self._paths = iter([split.image_root / record["file_name"] for record in picked])

    def get_next(self) -> dict | None:
        path = next(self._paths, None)
        if path is None:
            return None
        pixels, _ = letterbox_views([read_gray(path)], View(self.size))
        return {"images": pixels.numpy()}
