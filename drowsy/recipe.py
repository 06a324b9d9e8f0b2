"""The winning recipe's training stages as notebook parameter sets.

Notebook 03 (baseline: diet set, scratch hyperparameters) and 04 (fine-tune: natural distribution,
frozen backbone, from 03's last weights) each turn their parameters into one `TrainConfig`.
"""

import dataclasses
from pathlib import Path

from drowsy.config import Params
from drowsy.engine import TrainConfig


@dataclasses.dataclass(frozen=True)
class StageParams(Params):
    """Parameters both stages share, passed to TrainConfig under the same names."""

    prepared_dir: str = "data/prepared/demo"
    weights_dir: str = "weights/demo"
    out_dir: str = "outputs/demo"
    img_size: int = 320
    batch: int = 16
    nominal_batch: int = 64
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    resume: bool = False
    val_every: int = 1
    val_images: int = 0
    amp: bool = True
    cache: bool = True

    def shared(self) -> dict:
        names = ("img_size", "batch", "nominal_batch", "device", "workers", "seed", "resume", "val_every",
                 "val_images", "amp", "cache")
        return {name: getattr(self, name) for name in names}


@dataclasses.dataclass(frozen=True)
class BaselineParams(StageParams):
    model: str = "yolov5n"
    hyp: str = "data/hyp.scratch-p6.yaml"
    epochs: int = 300
    epoch_parts: int = 15

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            train_manifest=str(Path(self.prepared_dir) / "diet.json"),
            val_manifest=str(Path(self.prepared_dir) / "val.json"),
            out_dir=str(Path(self.weights_dir) / "baseline"),
            model=self.model, hyp=self.hyp, epochs=self.epochs, epoch_parts=self.epoch_parts, **self.shared(),
        )


@dataclasses.dataclass(frozen=True)
class FinetuneParams(StageParams):
    finetune_hyp: str = "data/hyp.finetune-simple.yaml"
    finetune_epochs: int = 50
    finetune_epoch_parts: int = 50
    freeze: str = "backbone"

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            train_manifest=str(Path(self.prepared_dir) / "train.json"),
            val_manifest=str(Path(self.prepared_dir) / "val.json"),
            out_dir=str(Path(self.weights_dir) / "finetune"),
            weights=str(Path(self.weights_dir) / "baseline" / "last.pt"),
            freeze=self.freeze, hyp=self.finetune_hyp, epochs=self.finetune_epochs,
            epoch_parts=self.finetune_epoch_parts, autoanchor=False, **self.shared(),
        )
