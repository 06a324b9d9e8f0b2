"""Batched inference: one or more detectors, test-time augmentation, ensembles, the submission file.

Pipeline for a batch of grayscale images (uint8 [H, W], any sizes):
1. every *view* (a square network size, maybe mirrored left-right) letterboxes the batch;
2. every detector turns the view into decoded predictions [B, N, 5 + nc] (`Detector.decoded_predictions`:
   PyTorch or ONNX Runtime, the rest is shared);
3. `drowsy.infer.postprocess.to_detections` maps every member's (model x view) candidates back to original
   pixels and joins them: one NMS (the winning recipe) or weighted boxes fusion.
Result per image: [n, 6] float32 (x1, y1, x2, y2 original pixels, score, class_id).
"""

import dataclasses
import json
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from drowsy.data.geometry import Letterbox, fit_img_size, letterbox
from drowsy.data.labels import load_manifest
from drowsy.device import autocast, select_device
from drowsy.errors import DrowsyError
from drowsy.files import list_images, read_gray, write_text_atomically
from drowsy.infer.postprocess import FUSE_MODES, decode, to_detections, to_records
from drowsy.models.checkpoint import load_checkpoint, load_weights
from drowsy.models.yolo import build_model, fuse_conv_bn
from drowsy.paths import require, resolve
from drowsy.progress import log
from drowsy.progress import progress as progress_bar

# The recipe's test-time augmentation: (fraction of img_size, mirrored left-right).
TTA_SCALES = ((1.0, False), (0.83, True), (0.67, False))
# Metadata keys `drowsy export` writes into the ONNX file and `Detector` reads back.
ONNX_META = ("drowsy_stride", "drowsy_class_names", "drowsy_in_channels", "drowsy_img_size")
PREFETCH_BATCHES = 2  # batches decoded ahead of the one being computed


class DecodingModel(nn.Module):
    """A detector followed by YOLOv5 decoding, so its output needs no Python post-processing
    (this is also the graph `drowsy export` writes to ONNX).

    forward: images [B, C, S, S] float32 in [0, 1] -> [B, N, 5 + nc] float32
    (cx, cy, w, h pixels of the network input, objectness, class probabilities).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return decode(self.model(images), self.model.anchors, self.model.strides)


def load_inference_model(weights: str | Path) -> tuple[DecodingModel, dict]:
    """A checkpoint's EMA weights, BatchNorm folded into the convolutions, in eval mode, on the CPU.

    Returns (DecodingModel, the checkpoint dict).
    """
    path = resolve(weights)
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_config"], checkpoint["num_classes"], checkpoint["in_channels"])
    load_weights(model, checkpoint, "ema", path, "ema")
    return DecodingModel(fuse_conv_bn(model.float())).eval(), checkpoint


class Detector:
    """One trained detector behind a common interface, from a drowsy checkpoint (`.pt`) or from an
    ONNX file written by `drowsy export` (`.onnx`, run on the CPU by ONNX Runtime, or by OpenVINO).

    Attributes: `weights` (path), `backend` ("torch", "onnx" for ONNX Runtime or "openvino"), `precision`
    ("fp32", "bf16 autocast", or "int8" for a graph of `drowsy export --int8`), `device`, `stride` (largest,
    pixels), `in_channels`, `num_classes`, `class_names`.
    amp: bf16 autocast (fp16 on GPUs without bf16) for the PyTorch backend; ignored for ONNX.
    onnx_threads: the graph runtime's compute threads (None: its default, one per physical core).
    openvino: run an `.onnx` with OpenVINO (the optional extra, `pip install -e .[openvino]`) instead of ONNX
    Runtime; its float parts in f32 (OpenVINO's default on CPUs with AMX is bf16).
    """

    def __init__(
        self,
        weights: str | Path,
        device: str = "auto",
        amp: bool = False,
        onnx_threads: int | None = None,
        openvino: bool = False,
    ):
        self.weights = resolve(weights)
        if not self.weights.is_file():
            raise DrowsyError(f"{self.weights}: weights not found")
        if self.weights.suffix.lower() == ".onnx":
            self._open_graph(onnx_threads, openvino)
        elif openvino:
            raise DrowsyError(f"{self.weights}: OpenVINO runs an exported graph; export it with drowsy export first")
        else:
            self._load_torch(device, amp)

    def _load_torch(self, device: str, amp: bool) -> None:
        self.backend, self.device, self.amp = "torch", select_device(device), amp
        self.precision = "bf16 autocast" if amp else "fp32"
        model, checkpoint = load_inference_model(self.weights)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.stride = int(model.model.strides.max())
        self.in_channels, self.num_classes = checkpoint["in_channels"], checkpoint["num_classes"]
        self.class_names = tuple(checkpoint["class_names"])
        self.fixed_batch = self.fixed_size = None

    def _open_graph(self, threads: int | None, openvino: bool) -> None:
        self.backend, self.device, self.amp = "openvino" if openvino else "onnx", torch.device("cpu"), False
        try:
            self._run, meta, shape = (_openvino_graph if openvino else _onnxruntime_graph)(self.weights, threads)
        except DrowsyError:
            raise
        except Exception as err:  # both runtimes raise their own untyped errors for unreadable files
            raise DrowsyError(f"{self.weights}: not a readable ONNX model ({str(err).splitlines()[0][:160]})") from None
        missing = [key for key in ONNX_META if key not in meta]
        if missing:
            raise DrowsyError(f"{self.weights}: field '{missing[0]}': missing; export the model with drowsy export")
        self.stride, self.in_channels = int(meta["drowsy_stride"]), int(meta["drowsy_in_channels"])
        self.precision = meta.get("drowsy_precision", "fp32")  # "int8": drowsy export --int8
        self.class_names = tuple(json.loads(meta["drowsy_class_names"]))
        self.num_classes = len(self.class_names)
        self.fixed_batch, _, self.fixed_size, _ = shape  # None where the axis is dynamic

    def decoded_predictions(self, batch: torch.Tensor) -> torch.Tensor:
        """batch: float32 [B, C, S, S] in [0, 1] (C = in_channels, S a multiple of `stride`) ->
        decoded [B, N, 5 + nc] float32 (cx, cy, w, h network pixels, objectness, class probabilities),
        on `self.device`."""
        if self.backend != "torch":
            return self._graph_predictions(batch)
        with torch.inference_mode(), autocast(self.device, self.amp):
            return self.model(batch.to(self.device, memory_format=torch.channels_last))

    def check_input_size(self, size: int) -> None:
        """Refuse an input size (pixels) that a fixed-size ONNX graph cannot take, in one line."""
        if self.fixed_size is not None and size != self.fixed_size:
            raise DrowsyError(
                f"{self.weights}: exported for img {self.fixed_size}, asked for {size} "
                "(test-time augmentation needs several sizes): export with --dynamic"
            )

    def _graph_predictions(self, batch: torch.Tensor) -> torch.Tensor:
        self.check_input_size(batch.shape[-1])
        step = self.fixed_batch or len(batch)
        outputs = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step].contiguous().numpy()
            short = step - len(chunk)
            if short:  # a fixed-batch graph takes only full batches: pad with blank images
                chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), chunk.dtype)])
            outputs.append(self._run(chunk)[: step - short])
        return torch.from_numpy(np.concatenate(outputs))

    def detect(
        self,
        images: list[np.ndarray],
        img_size: int = 1536,
        conf: float = 0.006,
        iou: float = 0.7,
        max_det: int = 300,
        tta: bool = False,
        batch: int = 8,
    ) -> list[torch.Tensor]:
        """Detections of this model alone; see `predict_ensemble` for the arguments and result."""
        return predict_ensemble([self], images, img_size, conf, iou, max_det, tta, "nms", batch)


def _onnxruntime_graph(path: Path, threads: int | None) -> tuple:
    """(run: float32 [B, C, S, S] -> predictions, the file's metadata, input shape with None for dynamic axes)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0 = ONNX Runtime's choice
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shape = [axis if isinstance(axis, int) else None for axis in session.get_inputs()[0].shape]
    return (lambda chunk: session.run(None, {"images": chunk})[0]), session.get_modelmeta().custom_metadata_map, shape


def _openvino_graph(path: Path, threads: int | None) -> tuple:
    """`_onnxruntime_graph`'s triple, OpenVINO compiling the same file for the CPU (one stream, f32 float parts)."""
    import onnx

    try:
        import openvino
    except ImportError:
        raise DrowsyError(f"{path}: OpenVINO is not installed (pip install -e .[openvino])") from None
    core = openvino.Core()
    model = core.read_model(str(path))
    settings = {"INFERENCE_NUM_THREADS": threads or 0, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    request = core.compile_model(model, "CPU", settings).create_infer_request()
    meta = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    shape = [axis.get_length() if axis.is_static else None for axis in model.inputs[0].get_partial_shape()]
    return (lambda chunk: request.infer({0: chunk})[0].copy()), meta, shape  # copy: the request reuses its output


@dataclasses.dataclass(frozen=True)
class View:
    """One test-time view: the square network input size (pixels) and whether it is mirrored left-right."""

    size: int
    flip: bool = False


def tta_views(img_size: int, stride: int, tta: bool) -> list[View]:
    """The views to run: [View(img_size)] without TTA; with it the recipe's scales 1, 0.83 (mirrored)
    and 0.67, each rounded to the nearest multiple of `stride` (1536 px at stride 64: 1536, 1280, 1024)."""
    scales = TTA_SCALES if tta else TTA_SCALES[:1]
    return [View(max(round(img_size * scale / stride), 1) * stride, flip) for scale, flip in scales]


def letterbox_views(images: list[np.ndarray], view: View) -> tuple[torch.Tensor, list[Letterbox]]:
    """Letterbox every image to the view (mirrored when it says so).

    images: uint8 [H, W]. Returns (float32 [B, 1, S, S] in [0, 1], one Letterbox per image, with
    `flip_width` set for a mirrored view).
    """
    if any(image.ndim != 2 or image.dtype != np.uint8 for image in images):
        raise ValueError("images must be grayscale uint8 [H, W] arrays")
    boxed, geometries = zip(*(letterbox(image, view.size) for image in images))
    pixels = torch.from_numpy(np.stack(boxed))
    if view.flip:
        pixels = pixels.flip(-1)
        geometries = [dataclasses.replace(g, flip_width=view.size) for g in geometries]
    return pixels[:, None].float().div_(255), list(geometries)


def _check_options(conf: float, iou: float, max_det: int, fuse: str, batch: int, img_size: int) -> None:
    problems = [
        ("fuse", fuse not in FUSE_MODES, f"must be one of {', '.join(FUSE_MODES)}, got {fuse!r}"),
        ("conf", not 0 <= conf < 1, f"must be in [0, 1), got {conf}"),
        ("iou", not 0 < iou <= 1, f"must be in (0, 1], got {iou}"),
        ("max_det", max_det < 1, f"must be >= 1, got {max_det}"),
        ("batch", batch < 1, f"must be >= 1, got {batch}"),
        ("img_size", img_size < 1, f"must be >= 1 pixel, got {img_size}"),
    ]
    for field, bad, reason in problems:
        if bad:
            raise DrowsyError(f"predict: field '{field}': {reason}")


def _common_class_names(detectors: list[Detector]) -> tuple[str, ...]:
    if not detectors:
        raise DrowsyError("predict: field 'weights': give at least one .pt or .onnx file")
    first = detectors[0]
    for other in detectors[1:]:
        if other.class_names != first.class_names:
            raise DrowsyError(
                f"{other.weights}: field 'class_names': {list(other.class_names)} differ from "
                f"{list(first.class_names)} of {first.weights}; cannot ensemble them"
            )
    return first.class_names


def plan_views(detectors: list[Detector], img_size: int, tta: bool) -> list[View]:
    """The views an ensemble runs at img_size (pixels, rounded up to the largest stride), after checking
    that the detectors share their classes and can all take those sizes."""
    _common_class_names(detectors)
    stride = max(d.stride for d in detectors)
    views = tta_views(fit_img_size(img_size, stride), stride, tta)
    for detector in detectors:
        for view in views:
            detector.check_input_size(view.size)
    return views


def predict_ensemble(
    detectors: list[Detector],
    images: list[np.ndarray],
    img_size: int = 1536,
    conf: float = 0.006,
    iou: float = 0.7,
    max_det: int = 300,
    tta: bool = False,
    fuse: str = "nms",
    batch: int = 8,
) -> list[torch.Tensor]:
    """Detections of an ensemble of detectors, optionally with the recipe's test-time augmentation.

    images: uint8 [H, W] grayscale, any sizes. img_size: network input (pixels), rounded up to a
    multiple of the largest stride. conf: score and objectness threshold; iou: NMS IoU threshold
    (also the WBF clustering IoU); max_det: detections kept per image; batch: images per forward pass.
    fuse: "nms" joins every member's (model x view) candidates and runs one class-aware NMS;
    "wbf" runs NMS per member, then weighted boxes fusion across members. One member (one model,
    no TTA) is plain detection either way.
    Returns per image [n, 6] float32 (x1, y1, x2, y2 original pixels, score, class_id), best first.
    """
    _check_options(conf, iou, max_det, fuse, batch, img_size)
    views = plan_views(detectors, img_size, tta)
    results = []
    for start in range(0, len(images), batch):
        results += _predict_batch(detectors, images[start : start + batch], views, conf, iou, max_det, fuse)
    return results


def _predict_batch(
    detectors: list[Detector],
    images: list[np.ndarray],
    views: list[View],
    conf: float,
    iou: float,
    max_det: int,
    fuse: str,
) -> list[torch.Tensor]:
    """Detections of one batch of images ([n, 6] per image, original pixels), every detector at every view."""
    if not images:
        return []

    def members():  # one at a time: a member's whole decoded output is large at 1536 px
        for view in views:
            pixels, geometries = letterbox_views(images, view)
            for detector in detectors:
                yield detector.decoded_predictions(pixels.expand(-1, detector.in_channels, -1, -1)), geometries

    return to_detections(members(), [image.shape[:2] for image in images], conf, iou, max_det, fuse)


# ------------------------------------------------------------------------------ folders and submissions


def write_submission(records: list[dict], path: str | Path) -> Path:
    """Write `{"annotations": records}` as UTF-8 JSON (one record per line), atomically. Returns the path."""
    body = ",\n".join(json.dumps(record, ensure_ascii=False) for record in records)
    return write_text_atomically(path, ['{"annotations": [\n', body, "\n]}\n"])


def _read_batch(paths: list[Path]) -> list[tuple[Path, np.ndarray | None, str | None]]:
    """(path, uint8 [H, W] or None, why it is unreadable or None) per path."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path, read_gray(path), None))
        except DrowsyError as err:
            loaded.append((path, None, str(err)))
    return loaded


def _prefetched_batches(paths: list[Path], batch: int):
    """Yield `_read_batch` results batch by batch while background threads decode the next ones
    (cv2.imdecode releases the GIL, so decoding overlaps the forward pass)."""
    with ThreadPoolExecutor(max_workers=PREFETCH_BATCHES) as pool:
        pending = deque()
        for start in range(0, len(paths), batch):
            pending.append(pool.submit(_read_batch, paths[start : start + batch]))
            if len(pending) > PREFETCH_BATCHES:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _inputs(images: str | Path) -> tuple[list[Path], list[str]]:
    """(image paths, the names the submission gives them): a folder's images by file name, or a
    manifest's by their `file_name` under its `image_root`."""
    if str(images).endswith(".json"):
        manifest = load_manifest(require(images, "notebooks/02_build_diet.ipynb (drowsy prepare)"))
        names = [record["file_name"] for record in manifest.records]
        return [manifest.image_root / name for name in names], names
    paths = list_images(images)
    return paths, [path.name for path in paths]


def predict_folder(
    weights: list[str | Path],
    images_dir: str | Path,
    out_path: str | Path,
    img_size: int = 1536,
    conf: float = 0.006,
    iou: float = 0.7,
    max_det: int = 300,
    tta: bool = False,
    fuse: str = "nms",
    batch: int = 8,
    device: str = "auto",
    amp: bool = False,
    progress: bool = True,
    openvino: bool = False,
) -> dict:
    """Predict every image of a folder, or of a manifest of drowsy prepare (`val.json`: its images, named
    by their `file_name`, so that `drowsy evaluate --labels val.json` scores them, AIHub paths included),
    and write the competition submission JSON to `out_path`.

    weights: checkpoints (.pt) and/or ONNX files (run by OpenVINO with `openvino`), ensembled as
    `predict_ensemble` describes. Every image
    gets an entry, also without detections; an unreadable image gets an empty entry and is reported.
    Returns stats: images, detections, unreadable (list of {"file_name", "reason"}), seconds,
    images_per_second, img_size (after rounding to the stride), out (path written).
    """
    _check_options(conf, iou, max_det, fuse, batch, img_size)
    paths, names = _inputs(images_dir)
    detectors = [Detector(w, device, amp, openvino=openvino) for w in weights]
    class_names = _common_class_names(detectors)
    views = plan_views(detectors, img_size, tta)
    fitted = views[0].size
    if fitted != img_size:
        log(f"note: img {img_size} is not a multiple of the largest stride; using {fitted}", file=sys.stderr)
    if not paths:
        log(f"warning: {resolve(images_dir)}: no images; writing an empty submission", file=sys.stderr)
    started = time.perf_counter()
    records, unreadable, named = [], [], iter(names)
    with progress_bar(total=len(paths), desc="predict", unit="img", enabled=progress) as bar:
        for loaded in _prefetched_batches(paths, batch):
            readable = [image for _, image, _ in loaded if image is not None]
            found = iter(_predict_batch(detectors, readable, views, conf, iou, max_det, fuse))
            detections, batch_names = [], [next(named) for _ in loaded]
            for name, (_, image, reason) in zip(batch_names, loaded):
                if image is None:
                    unreadable.append({"file_name": name, "reason": reason})
                    log(f"unreadable, empty entry written: {reason}", file=sys.stderr)
                detections.append(torch.zeros(0, 6) if image is None else next(found))
            records += to_records(batch_names, detections, class_names)
            bar.update(len(loaded))
    out = write_submission(records, out_path)
    seconds = time.perf_counter() - started
    return {
        "images": len(paths),
        "detections": sum(len(r["objects"]) for r in records),
        "unreadable": unreadable,
        "seconds": seconds,
        "images_per_second": len(paths) / seconds if seconds > 0 else 0.0,
        "img_size": fitted,
        "out": str(out),
    }
