"""The training engine, in the spirit of torchvision's references/detection/engine.py.

`train(config)` is a short composition: join the process group, `build_run` (drowsy.train.run: model,
EMA, optimizer, scaler, data, loss, held in a `TrainRun`), then per epoch `train_one_epoch` and, on rank 0,
`evaluate` and the checkpoints and log lines. It writes next to the weights: `config.json` and
`metrics.jsonl` (drowsy.train.runlog), `last.pt` and `best.pt` (best validation mAP@0.75; drowsy.models.checkpoint).

Reproducibility: every random draw depends only on (seed, epoch, index) (sampler, augmentation) or on
the seed (initial weights), so on the CPU the same seed gives bit-identical weights, and a run killed at
any point and resumed from `last.pt` ends with the same weights as an uninterrupted run.
"""

import contextlib
import dataclasses
import math
import signal
import time

import torch
from torch import nn

from drowsy import CLASSES
from drowsy.config import TrainConfig
from drowsy.data.geometry import Letterbox
from drowsy.device import autocast
from drowsy.distributed import Process, barrier, joined
from drowsy.errors import DrowsyError
from drowsy.eval.metrics import evaluate_arrays
from drowsy.infer.postprocess import decode, to_detections
from drowsy.models.checkpoint import save_checkpoint
from drowsy.progress import log
from drowsy.progress import progress as progress_bar
from drowsy.train.loss import LOSS_PARTS, YoloLoss
from drowsy.train.optim import (
    apply_schedule,
    set_train_mode,
    unwrap,
)
from drowsy.train.run import TrainRun, build_run
from drowsy.train.runlog import RunLog, code_version

# Validation keeps low-scoring boxes (YOLOv5's val settings): mAP integrates over the whole
# precision-recall curve, which a higher threshold would cut short.
VAL_CONF, VAL_IOU, VAL_MAX_DET = 0.001, 0.6, 300


def train(config: TrainConfig, progress: bool = True, loss_factory=YoloLoss) -> dict:
    """Train (or resume, or fine-tune) one model.

    loss_factory: (model, hyperparameter dict) -> loss callable, e.g. to inject a fault in a test.
    Returns, however training ends: run_dir, stopped (by a signal), epochs_done (complete epochs),
    best_map75, metrics (the last validation's, {} if none ran), best and last (checkpoint paths;
    best is None before a validation).
    """
    with joined(config.device) as process:  # under torchrun: leaves the process group however training ends
        return train_in(process, config, progress, loss_factory)


def train_in(process: Process, config: TrainConfig, progress: bool, loss_factory) -> dict:
    """`train` in this process's place in the run: build it, then epochs, validations and checkpoints."""
    run = build_run(config, process, loss_factory, progress and process.main)
    if process.main:
        start_log(run)
    metrics: dict = {}
    with StopRequest() as stop:
        for epoch in range(run.start_epoch, config.epochs):
            row = train_one_epoch(run, epoch, stop, progress and process.main)
            if "stopped_at_batch" in row:
                if process.main:
                    save_checkpoint(make_checkpoint(run, epoch, row["stopped_at_batch"]), run.last_path)
                    log(
                        f"stopped at epoch {epoch + 1}, batch {row['stopped_at_batch']}; "
                        f"resume with resume=True ({run.last_path})"
                    )
                return run_summary(run, stopped=True, epochs_done=epoch, metrics=metrics)
            if process.main:
                final = epoch + 1 == config.epochs
                if final or (epoch + 1) % config.val_every == 0:
                    loader, records = (
                        (run.val_loader, run.val_records) if final else (run.subset_loader, run.subset_records)
                    )
                    metrics = evaluate(
                        run.ema.ema, loader, records, process.device, config.amp, config.channels_last, progress
                    )
                    row |= metric_columns(metrics) | {"val_images": len(records)}
                end_epoch(run, row)
    barrier(process)
    return run_summary(run, stopped=False, epochs_done=config.epochs, metrics=metrics)


# --------------------------------------------------------------------------------------- one epoch


def train_one_epoch(run: TrainRun, epoch: int, stop: "StopRequest", progress: bool) -> dict:
    """Train one epoch (from its first untrained batch on resume). Returns its log row: epoch, lr,
    images (all ranks), seconds, mean loss parts; plus `stopped_at_batch` when a signal (on any rank)
    stopped it at an optimizer step."""
    config, started = run.config, time.time()
    first_batch = run.skip_batches if epoch == run.start_epoch else 0
    run.train_data.set_epoch(epoch)
    run.sampler.set_epoch(epoch, first_batch)
    set_train_mode(run.train_model, run.frozen_prefixes)
    tally, seen, sums = Tally.start(run.process.device), 0, [0.0] * len(LOSS_PARTS)
    run.optimizer.zero_grad(set_to_none=True)
    bar = progress_bar(run.train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", enabled=progress, leave=False)
    for batch_index, (images, targets, _) in enumerate(bar, start=first_batch):
        apply_schedule(
            run.optimizer, epoch * run.batches_per_epoch + batch_index, epoch, config.epochs, run.warmup, run.hyp
        )
        boundary = (batch_index + 1) % run.accumulate == 0 or batch_index + 1 == run.batches_per_epoch
        with gradient_sync(run.train_model, boundary):
            train_step(run, images, targets, tally, batch_index)
        seen += len(images)
        if boundary:
            sums, stopping = optimizer_step(run, epoch, batch_index, tally, stop.requested)
            bar.set_postfix({k: f"{v / seen:.4f}" for k, v in zip(LOSS_PARTS, sums)})
            if stopping:
                return {"stopped_at_batch": batch_index + 1}
    run.skip_batches = 0
    return {
        "epoch": epoch,
        "lr": run.optimizer.param_groups[1]["lr"],
        "images": seen * run.process.world_size,
        "seconds": round(time.time() - started, 2),
        **{f"loss_{k}": v / max(seen, 1) for k, v in zip(LOSS_PARTS, sums)},
    }


@dataclasses.dataclass
class Tally:
    """What an epoch's batches add up on the training device, read back once per optimizer step (reading
    makes the host wait for the device): the loss parts summed over images (float64, as Python floats
    would add them) and the index of the first batch whose loss was not finite (inf while none)."""

    sums: torch.Tensor  # [3] float64, LOSS_PARTS
    first_bad_batch: torch.Tensor  # float64 scalar

    @classmethod
    def start(cls, device: torch.device) -> "Tally":
        return cls(
            torch.zeros(len(LOSS_PARTS), dtype=torch.float64, device=device),
            torch.full((), math.inf, dtype=torch.float64, device=device),
        )


def gradient_sync(model: nn.Module, boundary: bool):
    """Under DDP, the gradients are averaged over the ranks once per optimizer step: `no_sync()` for the
    micro-batches before it (each would all-reduce every gradient), nothing elsewhere."""
    ddp = getattr(model, "_orig_mod", model)  # under torch.compile
    if boundary or not isinstance(ddp, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return ddp.no_sync()


def train_step(run: TrainRun, images: torch.Tensor, targets: torch.Tensor, tally: Tally, batch_index: int) -> None:
    """Forward and backward of one batch (gradients accumulate until `optimizer_step`), its loss parts
    and finiteness added to `tally` on the device: nothing here makes the host wait for a GPU. The
    targets stay on the host, where the loss assigns them while the device computes the forward."""
    device, config = run.process.device, run.config
    images = images.to(device, non_blocking=True).float().div_(255)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(device, config.amp):
        logits = run.train_model(images)
    loss, parts = run.loss(logits, targets)
    tally.sums += parts.double() * len(images)
    finite = torch.isfinite(loss)
    tally.first_bad_batch = torch.where(finite, tally.first_bad_batch, tally.first_bad_batch.clamp(max=batch_index))
    if run.process.distributed:
        loss = loss * run.process.world_size  # DDP averages gradients over ranks; YOLOv5 sums them
    run.scaler.scale(loss).backward()


def optimizer_step(
    run: TrainRun, epoch: int, batch_index: int, tally: Tally, stop_requested: bool
) -> tuple[list[float], bool]:
    """Unscale, clip the gradient norm at 10, step, and update the EMA, after one read-back from the device
    (the tally, the norm and, under DDP, what the ranks agreed: one all-reduce). A non-finite loss since the
    last step, on any rank, stops training with one line before the step; so does a non-finite gradient
    (the fp16 gradient scaler instead skips such steps, as overflows are part of its working); under DDP
    every rank holds the same gradient. Returns (the loss sums so far, whether to stop: a stop asked on
    any rank stops every rank after this step)."""
    run.scaler.unscale_(run.optimizer)
    norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), max_norm=10.0)
    device = run.process.device
    own = torch.stack(
        [tally.first_bad_batch, torch.full((), -float(stop_requested), dtype=torch.float64, device=device)]
    )
    agreed = own.clone()
    if run.process.distributed:
        torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MIN)
    values = torch.cat([tally.sums, own, agreed, norm.double().reshape(1)]).tolist()  # the one wait per step
    sums, (own_bad, _), (first_bad, stop), norm_value = values[:3], values[3:5], values[5:7], values[7]
    if math.isfinite(first_bad):
        if math.isfinite(own_bad) or not run.process.distributed:
            where = f" on rank {run.process.rank}" if run.process.distributed else ""
            raise DrowsyError(
                f"non-finite loss{where} at epoch {epoch + 1}, batch {int(own_bad) + 1}; training stopped, "
                f"{checkpoint_kept(run)}; lower lr0 or check the data"
            )
        raise DrowsyError(
            f"non-finite loss on another rank at epoch {epoch + 1}, batch {int(first_bad) + 1}; "
            f"training stopped on rank {run.process.rank} too"
        )
    if not run.scaler.is_enabled() and not math.isfinite(norm_value):
        raise DrowsyError(
            f"non-finite gradient at epoch {epoch + 1}, batch {batch_index + 1} (the loss was finite); "
            f"training stopped, {checkpoint_kept(run)}; lower lr0 or check the data"
        )
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.ema.update(run.model)
    return sums, stop < 0


def checkpoint_kept(run: TrainRun) -> str:
    """What a run stopped by bad numbers leaves to resume from."""
    return f"last good checkpoint kept at {run.last_path}" if run.last_path.exists() else "no checkpoint written yet"


# --------------------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader,
    records: list[dict],
    device: torch.device,
    amp: bool,
    channels_last: bool,
    progress: bool = False,
) -> dict:
    """Score `model` on a validation loader's images against their `records`, post-processed exactly
    as `drowsy predict` makes a submission (drowsy.infer.postprocess.to_detections). Returns
    drowsy.eval.metrics.evaluate_detections' dict (mAP50, mAP75, mAP50_95, per_class, ...)."""
    model.eval()
    plain = unwrap(model)
    names, detections = [], []
    for images, _, metas in progress_bar(loader, desc="validate", enabled=progress, leave=False):
        images = images.to(device, non_blocking=True).float().div_(255)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        decoded = decode([level.float() for level in logits], plain.anchors, plain.strides)
        geometries = [Letterbox(meta["ratio"], meta["pad"]) for meta in metas]
        detections += [
            d.cpu()
            for d in to_detections(
                [(decoded, geometries)],
                [meta["original_hw"] for meta in metas],
                conf=VAL_CONF,
                iou=VAL_IOU,
                max_det=VAL_MAX_DET,
            )
        ]
        names += [meta["file_name"] for meta in metas]
    return evaluate_arrays(records, names, detections)  # as to_records would round them, without a dict per box


def metric_columns(metrics: dict) -> dict:
    """The validation columns of a metrics.jsonl row."""
    return {
        **{k: metrics[k] for k in ("mAP50", "mAP75", "mAP50_95")},
        "per_class": {c: v["AP75"] for c, v in metrics["per_class"].items()},
    }


# --------------------------------------------------------------------------------------- checkpoints and log


def make_checkpoint(run: TrainRun, epoch: int, batches_done: int) -> dict:
    """The checkpoint dict (layout in drowsy.models.checkpoint) at `batches_done` batches into `epoch`."""
    return {
        "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "ema": {k: v.detach().cpu() for k, v in run.ema.ema.state_dict().items()},
        "ema_updates": run.ema.updates,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "epoch": epoch,
        "batches_done": batches_done,
        "best_map75": run.best_map75,
        "model_config": run.model_config,
        "num_classes": len(CLASSES),
        "in_channels": run.in_channels,
        "class_names": list(CLASSES),
        "config": run.config.to_dict(),
        "hyp": run.hyp.to_dict(),
        "code_version": code_version(),
    }


def start_log(run: TrainRun) -> None:
    """config.json, metrics.jsonl cut to the epochs kept on resume, and what was frozen and fitted."""
    RunLog(run.run_dir).start(
        {
            "config": run.config.to_dict(),
            "hyp": run.hyp.to_dict(),
            "code_version": code_version(),
            "device": str(run.process.device),
            "world_size": run.process.world_size,
            "accumulate": run.accumulate,
            "frozen": run.frozen,
            "anchors": run.anchor_check,
            "torch": torch.__version__,
        },
        run.start_epoch,
    )
    if run.frozen:
        log(
            f"frozen: {len(run.frozen)} parameter tensors under {', '.join(run.frozen_prefixes)} "
            f"(first {run.frozen[0]}, last {run.frozen[-1]})"
        )
    if run.anchor_check:
        check = run.anchor_check
        log(
            f"autoanchor: best possible recall {check['bpr_before']:.4f} -> {check['bpr_after']:.4f}"
            f"{' (anchors replaced)' if check['replaced'] else ''}"
        )


def end_epoch(run: TrainRun, row: dict) -> None:
    """Log the epoch's row (one line in metrics.jsonl, one printed), save last.pt when it is due
    (every `checkpoint_every` epochs, after `checkpoint_minutes`, after the last epoch) and, when
    validation improved mAP@0.75, best.pt."""
    config, done = run.config, row["epoch"] + 1
    improved = "mAP75" in row and row["mAP75"] > run.best_map75
    run.best_map75 = max(run.best_map75, row.get("mAP75", -1.0))
    RunLog(run.run_dir).append(row)
    due = (
        done % config.checkpoint_every == 0
        or done == config.epochs
        or 0 < config.checkpoint_minutes * 60 <= time.time() - run.saved_at
    )
    checkpoint = make_checkpoint(run, done, 0) if due or improved else None
    if due:
        save_checkpoint(checkpoint, run.last_path)
        run.saved_at = time.time()
    if improved:
        save_checkpoint(checkpoint, run.best_path)
    line = (
        f"epoch {row['epoch'] + 1}/{run.config.epochs} loss box {row['loss_box']:.4f} obj {row['loss_obj']:.4f} "
        f"cls {row['loss_cls']:.4f} ({row['seconds']:.0f}s, {row['images'] / max(row['seconds'], 1e-9):.0f} img/s)"
    )
    if "mAP75" in row:
        line += f"  mAP@0.5 {row['mAP50']:.3f} mAP@0.75 {row['mAP75']:.3f}"
    log(line)


def run_summary(run: TrainRun, stopped: bool, epochs_done: int, metrics: dict) -> dict:
    """The one return shape of `train`, however it ended."""
    return {
        "run_dir": str(run.run_dir),
        "stopped": stopped,
        "epochs_done": epochs_done,
        "best_map75": run.best_map75,
        "metrics": metrics,
        "best": str(run.best_path) if run.best_path.exists() else None,
        "last": str(run.last_path),
    }


# --------------------------------------------------------------------------------------- interruption


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves at the next optimizer step and returns cleanly."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread (e.g. some notebook runners)
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        log(f"signal {signal.Signals(signum).name}: saving at the next optimizer step, then stopping")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
