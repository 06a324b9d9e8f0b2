"""A training run's parts, built once: model (from scratch, fine-tuned or resumed), EMA, optimizer,
scaler, data, samplers and loaders, held in a `TrainRun` that the engine (drowsy.train.engine) drives.
"""

import dataclasses
import math
import time
from pathlib import Path

import torch
from torch import nn

from drowsy import CLASSES
from drowsy.config import Hyp, TrainConfig
from drowsy.data.dataset import DetectionDataset, EpochPartsSampler, build_loader
from drowsy.data.image_cache import cache_if_it_fits, check_shared_memory
from drowsy.data.labels import load_manifest, spread
from drowsy.device import needs_grad_scaler, reuse_freed_memory, seed_everything
from drowsy.distributed import Process
from drowsy.errors import DrowsyError
from drowsy.models.checkpoint import load_checkpoint, load_weights
from drowsy.models.yolo import DEFAULT_MODEL, build_model
from drowsy.paths import require, resolve
from drowsy.train.anchors import check_anchors
from drowsy.train.loss import YoloLoss, class_weights
from drowsy.train.optim import ModelEMA, freeze_modules, parameter_groups, warmup_steps

MADE_BY_PREPARE = "notebooks/02_build_diet.ipynb (drowsy prepare)"


@dataclasses.dataclass
class TrainRun:
    """Everything one run holds, from `build_run`. `model` is the plain model (EMA source, checkpoints);
    `train_model` what the step calls (maybe compiled, maybe DDP-wrapped)."""

    config: TrainConfig
    hyp: Hyp
    process: Process
    run_dir: Path
    model: nn.Module
    train_model: nn.Module
    model_config: str
    in_channels: int
    frozen_prefixes: list[str]
    frozen: list[str]
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss: object  # (head logits, targets) -> (loss, parts)
    train_data: DetectionDataset
    sampler: "ResumableSampler"
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    val_records: list[dict]
    subset_loader: torch.utils.data.DataLoader  # validations before the last (val_subset); val_loader if none
    subset_records: list[dict]
    accumulate: int  # batches per optimizer step
    batches_per_epoch: int
    warmup: int  # batches of warm-up
    anchor_check: dict | None
    start_epoch: int = 0
    skip_batches: int = 0  # batches of start_epoch already trained (mid-epoch resume)
    best_map75: float = -1.0  # best validation mAP@0.75 so far; -1 before the first validation
    saved_at: float = dataclasses.field(default_factory=time.time)  # when last.pt was last written

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"


def build_run(config: TrainConfig, process: Process, loss_factory=YoloLoss, progress: bool = False) -> TrainRun:
    """Model, EMA, optimizer, scaler, data and loss of a run, restored from `last.pt` on resume."""
    seed_everything(config.seed, config.deterministic)
    if process.device.type == "cpu":
        reuse_freed_memory()
    hyp = Hyp.load(config.hyp)
    run_dir = resolve(config.run_dir)
    checkpoint, init, model_config, in_channels = initial_weights(config, run_dir)
    model = build_model(model_config, num_classes=len(CLASSES), in_channels=in_channels)
    if init:
        source = run_dir / "last.pt" if checkpoint else config.weights
        hint = "; leave model empty to fine-tune its own"
        load_weights(model, init, "model" if checkpoint else "ema", source, "model_config", hint)
    frozen_prefixes = [p.strip() for p in config.freeze.split(",") if p.strip()]
    frozen = freeze_modules(model, frozen_prefixes)
    train_data, val_data, val_records = build_datasets(config, hyp, in_channels, process)
    # the val loader's batches (twice the training batch), for every rank of this node
    check_shared_memory(config.workers, config.batch * 2, config.img_size, in_channels, process.local_world_size)
    anchor_check = None
    if config.autoanchor and not init:
        anchor_check = check_anchors(model, train_data.boxes_wh(), anchor_t=hyp.anchor_t, seed=config.seed)
    model.to(process.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    accumulate = max(round(config.nominal_batch / (config.batch * process.world_size)), 1)
    optimizer, scaler = build_optimizer(model, config, hyp, process, accumulate)
    ema = ModelEMA(model)
    loaders = build_loaders(config, process, train_data, val_data, val_records)
    run = TrainRun(
        config=config,
        hyp=hyp,
        process=process,
        run_dir=run_dir,
        model=model,
        train_model=wrap_model(model, config, process),
        model_config=model_config,
        in_channels=in_channels,
        frozen_prefixes=frozen_prefixes,
        frozen=frozen,
        ema=ema,
        optimizer=optimizer,
        scaler=scaler,
        loss=loss_factory(model, loss_hyp(hyp, train_data)),
        train_data=train_data,
        val_records=val_records,
        accumulate=accumulate,
        warmup=warmup_steps(hyp, loaders["batches_per_epoch"], config.epochs),
        anchor_check=anchor_check,
        **loaders,
    )
    if checkpoint:
        restore(run, checkpoint)
    return run


def loss_hyp(hyp: Hyp, train_data: DetectionDataset) -> dict:
    """The hyperparameters the loss reads, with the per-class weights of `class_balance` when it is on."""
    values = hyp.to_dict()
    if hyp.class_balance:
        values["class_weights"] = class_weights(train_data.class_counts(len(CLASSES)), hyp.class_balance)
    return values


def initial_weights(config: TrainConfig, run_dir: Path) -> tuple[dict | None, dict | None, str, int]:
    """(checkpoint to resume from or None, checkpoint whose weights start the run or None, model
    config, input channels): `last.pt` on resume, else `config.weights` (fine-tuning), else nothing."""
    if (run_dir / "last.pt").exists() and not (config.resume or config.overwrite):
        raise DrowsyError(
            f"{run_dir} already holds a run (last.pt): resume=True continues it, overwrite=True trains it again "
            "from the start, or give another run_dir"
        )
    checkpoint = load_checkpoint(run_dir / "last.pt") if config.resume and (run_dir / "last.pt").exists() else None
    init = checkpoint or (
        load_checkpoint(require(config.weights, "notebooks/03_train_baseline.ipynb (drowsy train)"))
        if config.weights
        else None
    )
    if checkpoint:  # resuming: the run's own model
        return checkpoint, init, checkpoint["model_config"], checkpoint["in_channels"]
    if init:  # from weights: their model, or one of the same layers that config.model names (a conversion)
        return checkpoint, init, config.model or init["model_config"], init["in_channels"]
    return checkpoint, init, config.model or DEFAULT_MODEL, 1


def build_loaders(
    config: TrainConfig, process: Process, train_data: DetectionDataset, val_data: DetectionDataset, val_records: list
) -> dict:
    """The epoch-parts sampler and the loaders: training, validation and the validation subset used
    before the last validation (`val_subset`; the whole validation loader when there is none)."""
    sampler = ResumableSampler(
        EpochPartsSampler(
            len(train_data), config.epoch_parts, seed=config.seed, rank=process.rank, world_size=process.world_size
        ),
        config.batch,
    )
    pin = process.device.type == "cuda"
    val_loader = build_loader(val_data, config.batch * 2, config.workers, pin_memory=pin, persistent=False)
    subset = spread(range(len(val_records)), config.val_subset)
    subset_loader = (
        val_loader
        if len(subset) == len(val_records)
        else build_loader(
            torch.utils.data.Subset(val_data, subset),
            config.batch * 2,
            config.workers,
            pin_memory=pin,
            persistent=False,
        )
    )
    return {
        "sampler": sampler,
        "train_loader": build_loader(train_data, config.batch, config.workers, sampler=sampler, pin_memory=pin),
        "val_loader": val_loader,
        "subset_loader": subset_loader,
        "subset_records": [val_records[i] for i in subset],
        "batches_per_epoch": math.ceil(len(sampler.sampler) / config.batch),
    }


def build_datasets(
    config: TrainConfig, hyp: Hyp, in_channels: int, process: Process
) -> tuple[DetectionDataset, DetectionDataset, list[dict]]:
    """The augmented training set, the letterboxed validation set and its records (the first
    val_images of the validation manifest)."""
    train_set = load_manifest(require(config.train_manifest, MADE_BY_PREPARE))
    val_set = load_manifest(require(config.val_manifest, MADE_BY_PREPARE))
    for manifest, purpose in ((train_set, "train"), (val_set, "validate")):
        if not manifest.records:
            raise DrowsyError(
                f"{manifest.path}: no image to {purpose} on (made by {MADE_BY_PREPARE} with val_size 0, or from "
                "a split with no image on that side); prepare it again with images on both sides"
            )
    train_data = DetectionDataset(
        train_set.image_root,
        train_set.records,
        config.img_size,
        hyp=hyp.to_dict(),
        augment=True,
        in_channels=in_channels,
        seed=config.seed,
    )
    val_records = val_set.records[: config.val_images or None]
    val_data = DetectionDataset(
        val_set.image_root, val_records, config.img_size, augment=False, in_channels=in_channels, seed=config.seed
    )
    if config.cache:  # decoded once here into shared memory, which the loader workers and the node's ranks map
        cache_if_it_fits([train_data, val_data], config.cache_gb, process)
    return train_data, val_data, val_records


def build_optimizer(
    model: nn.Module, config: TrainConfig, hyp: Hyp, process: Process, accumulate: int
) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler]:
    """SGD with Nesterov momentum over the three parameter groups, and the fp16 gradient scaler (enabled
    only where autocast runs in fp16: GPUs without native bf16)."""
    # weight decay is tuned for the nominal batch; scale it to the batch actually accumulated
    weight_decay = hyp.weight_decay * config.batch * process.world_size * accumulate / config.nominal_batch
    optimizer = torch.optim.SGD(parameter_groups(model, weight_decay), lr=hyp.lr0, momentum=hyp.momentum, nesterov=True)
    return optimizer, torch.amp.GradScaler(process.device.type, enabled=needs_grad_scaler(process.device, config.amp))


def wrap_model(model: nn.Module, config: TrainConfig, process: Process) -> nn.Module:
    """The model the training step calls: SyncBatchNorm, DDP and torch.compile as configured. Compiled
    after the DDP wrap, as PyTorch advises: DDP's optimizer then splits the graph at its gradient buckets
    and overlaps their all-reduce with the backward pass."""
    if process.distributed and config.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if process.distributed:
        device_ids = [process.device.index] if process.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if config.compile:
        model = torch.compile(model)
    return model


def restore(run: TrainRun, checkpoint: dict) -> None:
    """Continue from `last.pt`: optimizer, scaler, EMA, position in the run, best mAP@0.75."""
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint["scaler"]:
        run.scaler.load_state_dict(checkpoint["scaler"])
    run.ema.ema.load_state_dict(checkpoint["ema"])
    run.ema.updates = checkpoint["ema_updates"]
    run.start_epoch, run.skip_batches = checkpoint["epoch"], checkpoint["batches_done"]
    run.best_map75 = checkpoint["best_map75"]


class ResumableSampler(torch.utils.data.Sampler):
    """The epoch's indices from EpochPartsSampler, minus the batches already trained (mid-epoch resume).
    Iterated in the main process, so changing `skip` between epochs is seen by persistent workers."""

    def __init__(self, sampler: EpochPartsSampler, batch: int):
        self.sampler, self.batch, self.skip = sampler, batch, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip_batches * self.batch

    def __iter__(self):
        return iter(list(self.sampler)[self.skip :])

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)
