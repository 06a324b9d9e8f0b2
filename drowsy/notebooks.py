"""The parameters of each notebook (notebooks/NN_*.ipynb): one frozen dataclass per notebook.

A notebook's `parameters` cell holds one scalar per line; the cell after it calls
`SomeParams.from_namespace(globals())`, which rejects unknown keys and wrong types in one line
(tests keep every cell equal to its dataclass's defaults). The two training notebooks share every
`drowsy.config.TrainConfig` field that is not stage-specific, derived below rather than copied, so a
new engine option reaches both notebooks.
"""

import dataclasses
from pathlib import Path

from drowsy.config import Params, TrainConfig
from drowsy.data.prepare import FORMATS
from drowsy.errors import DrowsyError
from drowsy.eval.ablation import VARIANTS
from drowsy.synth.demo_data import LAYOUTS, parse_size


def _check_format(raw_format: str) -> None:
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
        parse_size(self.synth_size)  # fail in the config cell, not after minutes of work
        _check_format(self.raw_format)
        if self.synth_format not in LAYOUTS:
            raise DrowsyError(
                f"parameters: field 'synth_format' must be one of {', '.join(LAYOUTS)}, got {self.synth_format!r}"
            )


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
STAGE_SPECIFIC = (
    "train_manifest",
    "val_manifest",
    "run_dir",
    "model",
    "hyp",
    "epochs",
    "epoch_parts",
    "weights",
    "freeze",
    "autoanchor",
)
SHARED_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in STAGE_SPECIFIC)

_StageBase = dataclasses.make_dataclass(
    "_StageBase",
    [
        ("prepared_dir", str, dataclasses.field(default="data/prepared/demo")),
        ("weights_dir", str, dataclasses.field(default="weights/demo")),
        ("out_dir", str, dataclasses.field(default="outputs/demo")),
    ]
    + [
        (f.name, f.type, dataclasses.field(default=f.default))
        for f in dataclasses.fields(TrainConfig)
        if f.name in SHARED_TRAIN_FIELDS
    ],
    bases=(Params,),
    frozen=True,
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
            model=self.model,
            hyp=self.hyp,
            epochs=self.epochs,
            epoch_parts=self.epoch_parts,
            **self.shared(),
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
            freeze=self.freeze,
            hyp=self.finetune_hyp,
            epochs=self.finetune_epochs,
            epoch_parts=self.finetune_epoch_parts,
            autoanchor=False,
            **self.shared(),
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
        known = ("best", *VARIANTS)
        if self.submission_variant not in known:
            raise DrowsyError(
                f"submission_variant: expected one of {', '.join(map(repr, known))}, got {self.submission_variant!r}"
            )

    def predict_options(self) -> dict:
        """The prediction settings, as `run_ablation` and `predict_folder` take them."""
        return {
            "img_size": self.predict_img_size,
            "conf": self.conf,
            "iou": self.iou,
            "max_det": self.max_det,
            "batch": self.batch,
            "device": self.device,
            "amp": self.amp,
        }


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
        if not (
            min(self.clip_seconds, self.protocol_seconds, self.alert_seconds, self.clip_fps) > 0
            and self.monitor_img_size > 0
        ):
            raise DrowsyError(
                "parameters: fields 'clip_seconds', 'protocol_seconds', 'alert_seconds', 'clip_fps', "
                f"'monitor_img_size' must be > 0, got {self.clip_seconds}, {self.protocol_seconds}, "
                f"{self.alert_seconds}, {self.clip_fps}, {self.monitor_img_size}"
            )
        parse_size(self.clip_size, field="clip_size", minimum=64)

    @property
    def size(self) -> tuple[int, int]:
        """clip_size as (width, height)."""
        return parse_size(self.clip_size, field="clip_size", minimum=64)
