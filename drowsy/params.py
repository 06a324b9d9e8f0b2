"""Every typed configuration a user sets: the training run (`TrainConfig`), the hyperparameter file
(`Hyp`) and the parameters of each notebook, in one place.

A notebook's `parameters` cell holds one scalar per line; the cell after it calls
`SomeParams.from_namespace(globals())`, which rejects unknown keys and wrong types in one line
(tests/test_params.py keeps every cell equal to its dataclass's defaults). The two training
notebooks share every `TrainConfig` field that is not stage-specific, derived below rather than
copied, so a new engine option reaches both notebooks.
"""

import dataclasses
from pathlib import Path

from drowsy.config import Params, load_yaml
from drowsy.demo_data import parse_size
from drowsy.errors import DrowsyError
from drowsy.paths import resolve


@dataclasses.dataclass(frozen=True)
class TrainConfig(Params):
    """Everything one training run needs. Paths are relative to the repository root or absolute."""

    train_manifest: str = "data/prepared/demo/diet.json"  # manifest to train on (from notebook 02)
    val_manifest: str = "data/prepared/demo/val.json"  # manifest to validate on
    run_dir: str = "weights/demo/baseline"  # last.pt, best.pt, metrics.jsonl, config.json go here
    model: str = "yolov5n"  # variant name (data/models/<name>.yaml) or a YAML path
    hyp: str = "data/hyp.scratch-p6.yaml"  # hyperparameter file
    img_size: int = 320  # square network input, pixels
    batch: int = 16  # images per step (per process under DDP)
    nominal_batch: int = 64  # gradients accumulate to this many images per optimizer step
    epochs: int = 300  # epochs (each draws len/epoch_parts images)
    epoch_parts: int = 15  # an epoch samples 1/epoch_parts of the set, with replacement
    weights: str = ""  # start from this checkpoint's EMA weights (fine-tuning); "" = from scratch
    freeze: str = ""  # comma-separated module-name prefixes to freeze, e.g. "backbone"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    workers: int = 2  # data-loading processes
    cache: bool = True  # keep decoded, resized images in shared memory (one copy for all loader workers)
    cache_gb: float = 8.0  # largest image cache; a set that needs more is streamed from disk
    amp: bool = True  # bf16 autocast on CPU, fp16/bf16 autocast on CUDA
    channels_last: bool = True  # NHWC convolutions (faster with oneDNN/AMX and tensor cores)
    autoanchor: bool = True  # recompute anchors by k-means when they fit the boxes badly
    val_every: int = 1  # validate every N epochs (and always after the last)
    val_images: int = 0  # validate on the first N val images (0 = all)
    val_subset: int = 0  # validations before the last use N of those, evenly spread (0: all); the last uses all
    checkpoint_every: int = 1  # write last.pt every N epochs (and on a stop signal, and after the last epoch)
    checkpoint_minutes: float = 0.0  # also when this many minutes have passed since the last one (0: off)
    seed: int = 0  # one seed for weights, sampling and augmentation
    deterministic: bool = True  # deterministic kernels (bit-identical on CPU; see README for GPU)
    compile: bool = False  # torch.compile the model (CUDA)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    resume: bool = False  # continue <run_dir>/last.pt if it exists

    def __post_init__(self):
        if self.checkpoint_every < 1 or min(self.val_subset, self.checkpoint_minutes, self.cache_gb) < 0:
            raise DrowsyError(f"parameters: checkpoint_every must be >= 1 and val_subset, checkpoint_minutes, cache_gb "
                              f">= 0, got {self.checkpoint_every}, {self.val_subset}, {self.checkpoint_minutes}, "
                              f"{self.cache_gb}")


@dataclasses.dataclass(frozen=True)
class Hyp(Params):
    """A hyperparameter file (data/hyp.*.yaml, YOLOv5's names; each file comments every key). All
    floats; every key is required except `label_smoothing`, so a typo cannot silently fall back."""

    lr0: float
    lrf: float
    momentum: float
    weight_decay: float
    warmup_epochs: float
    warmup_momentum: float
    warmup_bias_lr: float
    box: float
    cls: float
    cls_pw: float
    obj: float
    obj_pw: float
    iou_t: float
    anchor_t: float
    fl_gamma: float
    hsv_h: float
    hsv_s: float
    hsv_v: float
    degrees: float
    translate: float
    scale: float
    shear: float
    perspective: float
    flipud: float
    fliplr: float
    mosaic: float
    mixup: float
    label_smoothing: float = 0.0

    def __post_init__(self):
        for field in dataclasses.fields(self):  # `mosaic: 1` in YAML is the float 1.0
            object.__setattr__(self, field.name, float(getattr(self, field.name)))

    @classmethod
    def load(cls, path: str | Path) -> "Hyp":
        """Read a hyperparameter file; a missing, unknown or non-numeric key ends in one line."""
        path = resolve(path)
        values = load_yaml(path)
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise DrowsyError(f"{path}: missing key(s) {', '.join(missing)}")
        return cls.from_dict(values, str(path))


# ----------------------------------------------------------------------------- notebooks


def _check_format(raw_format: str) -> None:
    from drowsy.prepare import FORMATS

    if raw_format not in FORMATS:
        raise DrowsyError(f"parameters: field 'raw_format' must be one of {', '.join(FORMATS)}, got {raw_format!r}")


@dataclasses.dataclass(frozen=True)
class ExploreParams(Params):
    """Parameters of notebooks/01_explore_imbalance.ipynb."""

    raw_dir: str = "data/datasets/demo/train"
    raw_format: str = "auto"
    images_dir: str = ""
    test_dir: str = "data/datasets/demo/test"
    test_labels: str = "data/datasets/demo/test_labels.json"
    synth_images: int = 3000
    synth_test_images: int = 500
    synth_format: str = "aihub"
    synth_size: str = "800x1280"
    seed: int = 0
    out_dir: str = "outputs/demo"
    samples: int = 12

    def __post_init__(self):
        from drowsy.demo_data import LAYOUTS, parse_size

        parse_size(self.synth_size)  # fail in the config cell, not after minutes of work
        _check_format(self.raw_format)
        if self.synth_format not in LAYOUTS:
            raise DrowsyError(f"parameters: field 'synth_format' must be one of {', '.join(LAYOUTS)}, "
                              f"got {self.synth_format!r}")


@dataclasses.dataclass(frozen=True)
class DietParams(Params):
    """Parameters of notebooks/02_build_diet.ipynb."""

    raw_dir: str = "data/datasets/demo/train"
    raw_format: str = "auto"
    images_dir: str = ""
    prepared_dir: str = "data/prepared/demo"
    val_size: int = 20000
    seed: int = 0
    group_by: str = "subject"
    export: str = ""
    resize: int = 0
    out_dir: str = "outputs/demo"

    def __post_init__(self):
        _check_format(self.raw_format)
        if self.export not in ("", "yolo", "coco"):
            raise DrowsyError(f"parameters: field 'export' must be '', 'yolo' or 'coco', got {self.export!r}")


# TrainConfig fields each stage sets from its own parameters; every other field is shared by both
# training notebooks under its TrainConfig name and default.
STAGE_SPECIFIC = ("train_manifest", "val_manifest", "run_dir", "model", "hyp", "epochs", "epoch_parts",
                  "weights", "freeze", "autoanchor")
SHARED_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in STAGE_SPECIFIC)

_StageBase = dataclasses.make_dataclass(
    "_StageBase",
    [("prepared_dir", str, dataclasses.field(default="data/prepared/demo")),
     ("weights_dir", str, dataclasses.field(default="weights/demo")),
     ("out_dir", str, dataclasses.field(default="outputs/demo"))]
    + [(f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(TrainConfig)
       if f.name in SHARED_TRAIN_FIELDS],
    bases=(Params,), frozen=True,
)


@dataclasses.dataclass(frozen=True)
class StageParams(_StageBase):
    """Parameters both training notebooks share: where the files are, and the shared TrainConfig fields."""

    def shared(self) -> dict:
        return {name: getattr(self, name) for name in SHARED_TRAIN_FIELDS}


@dataclasses.dataclass(frozen=True)
class BaselineParams(StageParams):
    """Parameters of notebooks/03_train_baseline.ipynb: the diet set, scratch hyperparameters."""

    model: str = "yolov5n"
    hyp: str = "data/hyp.scratch-p6.yaml"
    epochs: int = 300
    epoch_parts: int = 15

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            train_manifest=str(Path(self.prepared_dir) / "diet.json"),
            val_manifest=str(Path(self.prepared_dir) / "val.json"),
            run_dir=str(Path(self.weights_dir) / "baseline"),
            model=self.model, hyp=self.hyp, epochs=self.epochs, epoch_parts=self.epoch_parts, **self.shared(),
        )


@dataclasses.dataclass(frozen=True)
class FinetuneParams(StageParams):
    """Parameters of notebooks/04_finetune.ipynb: the natural distribution, the backbone frozen, from
    03's last weights."""

    finetune_hyp: str = "data/hyp.finetune-simple.yaml"
    finetune_epochs: int = 50
    finetune_epoch_parts: int = 50
    freeze: str = "backbone"

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            train_manifest=str(Path(self.prepared_dir) / "train.json"),
            val_manifest=str(Path(self.prepared_dir) / "val.json"),
            run_dir=str(Path(self.weights_dir) / "finetune"),
            weights=str(Path(self.weights_dir) / "baseline" / "last.pt"),
            freeze=self.freeze, hyp=self.finetune_hyp, epochs=self.finetune_epochs,
            epoch_parts=self.finetune_epoch_parts, autoanchor=False, **self.shared(),
        )


RECIPE_VARIANT = "ensemble + TTA, NMS"  # what the winning team submitted


@dataclasses.dataclass(frozen=True)
class EnsembleParams(Params):
    """Parameters of notebooks/05_ensemble_predict.ipynb."""

    prepared_dir: str = "data/prepared/demo"
    weights_dir: str = "weights/demo"
    test_dir: str = "data/datasets/demo/test"
    test_labels: str = "data/datasets/demo/test_labels.json"
    out_dir: str = "outputs/demo"
    predict_img_size: int = 1536
    conf: float = 0.006
    iou: float = 0.7
    max_det: int = 300
    batch: int = 8
    device: str = "auto"
    amp: bool = True
    val_images: int = 0
    ablation_images: int = 0
    samples: int = 6
    submission_variant: str = RECIPE_VARIANT
    slice_by: str = "lighting,behaviour,glasses,mask,cap"

    def __post_init__(self):
        from drowsy.ablation import VARIANTS

        known = ("best", *VARIANTS)
        if self.submission_variant not in known:
            raise DrowsyError(f"submission_variant: expected one of {', '.join(map(repr, known))}, "
                              f"got {self.submission_variant!r}")


@dataclasses.dataclass(frozen=True)
class DriverMonitorParams(Params):
    """Parameters of notebooks/06_driver_monitor.ipynb."""

    weights_dir: str = "weights/demo"
    prepared_dir: str = "data/prepared/demo"
    out_dir: str = "outputs/demo"
    clip_seconds: float = 90.0
    protocol_seconds: float = 240.0
    alert_seconds: float = 120.0
    clip_size: str = "400x640"
    clip_fps: float = 15.0
    seed: int = 0
    monitor_img_size: int = 320
    monitor_config: str = "data/monitor.yaml"
    backend: str = "torch"
    device: str = "auto"
    calibration_images: int = 0

    def __post_init__(self):
        if self.backend not in ("torch", "onnx"):
            raise DrowsyError(f"parameters: field 'backend' must be 'torch' or 'onnx', got {self.backend!r}")
        if not (min(self.clip_seconds, self.protocol_seconds, self.alert_seconds, self.clip_fps) > 0
                and self.monitor_img_size > 0):
            raise DrowsyError("parameters: fields 'clip_seconds', 'protocol_seconds', 'alert_seconds', 'clip_fps', "
                              f"'monitor_img_size' must be > 0, got {self.clip_seconds}, {self.protocol_seconds}, "
                              f"{self.alert_seconds}, {self.clip_fps}, {self.monitor_img_size}")
        parse_size(self.clip_size, field="clip_size", minimum=64)

    @property
    def size(self) -> tuple[int, int]:
        """clip_size as (width, height)."""
        return parse_size(self.clip_size, field="clip_size", minimum=64)
