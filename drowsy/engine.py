"""The training engine: one flat loop in the spirit of torchvision's references/detection/engine.py.

`train(config)` builds everything from a `TrainConfig`, resumes from `<out_dir>/last.pt` when asked,
and writes next to the weights: `config.json` (resolved config, hyperparameters, code version),
`metrics.jsonl` (one JSON line per epoch), `last.pt` and `best.pt` (best validation mAP@0.75).

Reproducibility: every random draw depends only on (seed, epoch, index) (sampler, augmentation) or on
the seed (initial weights), so on the CPU the same seed gives bit-identical weights, and a run killed at
any point and resumed from `last.pt` ends with the same weights as an uninterrupted run.
"""

import contextlib
import dataclasses
import datetime
import json
import math
import os
import signal
import subprocess
import time
from copy import deepcopy
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from drowsy import CLASSES, __version__
from drowsy.anchors import check_anchors
from drowsy.augment import Letterbox, unletterbox_boxes
from drowsy.checkpoint import load_checkpoint, save_checkpoint
from drowsy.config import Params, load_yaml
from drowsy.dataset import DetectionDataset, EpochPartsSampler, build_loader
from drowsy.device import autocast, reuse_freed_memory, seed_everything, select_device
from drowsy.errors import DrowsyError
from drowsy.labels import load_manifest
from drowsy.loss import YoloLoss
from drowsy.metrics import evaluate_detections
from drowsy.models import build_model
from drowsy.paths import REPO_ROOT, require, resolve
from drowsy.postprocess import decode, non_max_suppression
from drowsy.predict import to_records

HYP_KEYS = (
    "lr0 lrf momentum weight_decay warmup_epochs warmup_momentum warmup_bias_lr box cls cls_pw obj obj_pw "
    "iou_t anchor_t fl_gamma hsv_h hsv_s hsv_v degrees translate scale shear perspective flipud fliplr mosaic mixup"
).split()


@dataclasses.dataclass(frozen=True)
class TrainConfig(Params):
    """Everything one training run needs. Paths are relative to the repository root or absolute."""

    train_manifest: str = "data/prepared/demo/diet.json"  # manifest to train on (from notebook 02)
    val_manifest: str = "data/prepared/demo/val.json"  # manifest to validate on
    out_dir: str = "weights/demo/baseline"  # last.pt, best.pt, metrics.jsonl, config.json go here
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
    cache: bool = True  # keep decoded, resized images in RAM
    amp: bool = True  # bf16 autocast on CPU, fp16/bf16 autocast on CUDA
    channels_last: bool = True  # NHWC convolutions (faster with oneDNN/AMX and tensor cores)
    autoanchor: bool = True  # recompute anchors by k-means when they fit the boxes badly
    val_every: int = 1  # validate every N epochs (and always after the last)
    val_images: int = 0  # validate on the first N val images (0 = all)
    seed: int = 0  # one seed for weights, sampling and augmentation
    deterministic: bool = True  # deterministic kernels (bit-identical on CPU; see README for GPU)
    compile: bool = False  # torch.compile the model (CUDA)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    resume: bool = False  # continue <out_dir>/last.pt if it exists


# --------------------------------------------------------------------------------------- helpers


def code_version() -> str:
    """The git commit of the checkout (with -dirty), or the package version outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return __version__


def load_hyp(path: str | Path) -> dict:
    hyp = load_yaml(path)
    missing = [k for k in HYP_KEYS if k not in hyp]
    bad = [k for k, v in hyp.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if missing or bad:
        raise DrowsyError(f"{resolve(path)}: " + (f"missing key(s) {', '.join(missing)}" if missing
                                                  else f"field '{bad[0]}' must be a number"))
    return {k: float(v) for k, v in hyp.items()}


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


class ModelEMA:
    """Exponential moving average of the weights; the decay ramps up from 0 so early, bad weights fade
    fast (decay = 0.9999 * (1 - exp(-updates / 2000)), as in YOLOv5)."""

    def __init__(self, model: nn.Module, updates: int = 0):
        self.ema = deepcopy(unwrap(model)).eval()
        self.updates = updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def decay(self) -> float:
        return 0.9999 * (1 - math.exp(-self.updates / 2000))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay()
        model_state = unwrap(model).state_dict()
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(model_state[name].detach(), alpha=1 - d)
            else:
                value.copy_(model_state[name])


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Three groups as YOLOv5: norm weights (no decay), conv/linear weights (decay), biases (no decay)."""
    norm_weights, weights, biases = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if name == "bias":
                biases.append(p)
            elif isinstance(module, nn.modules.batchnorm._NormBase):
                norm_weights.append(p)
            else:
                weights.append(p)
    return [
        {"params": norm_weights, "weight_decay": 0.0, "kind": "norm"},
        {"params": weights, "weight_decay": weight_decay, "kind": "weight"},
        {"params": biases, "weight_decay": 0.0, "kind": "bias"},
    ]


def freeze_modules(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Freeze every parameter whose name starts with one of `prefixes` (module names, e.g. "backbone").
    Returns the frozen parameter names. An unknown prefix is an error: freeze what you say you freeze."""
    names = [n for n, _ in model.named_parameters()]
    frozen = []
    for prefix in prefixes:
        matched = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not matched:
            top = sorted({n.split(".")[0] for n in names})
            raise DrowsyError(f"freeze: no module named '{prefix}' (top-level modules: {', '.join(top)})")
        frozen += matched
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return frozen


def set_train_mode(model: nn.Module, frozen_prefixes: list[str]) -> None:
    """Train mode, except frozen modules, whose BatchNorm statistics must not drift either."""
    model.train()
    for name, module in unwrap(model).named_modules():
        if any(name == p or name.startswith(p + ".") for p in frozen_prefixes):
            module.eval()


def one_cycle(epoch: float, epochs: int, lrf: float) -> float:
    """Cosine from 1 to lrf over `epochs` (the learning-rate multiplier)."""
    return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1


class ResumableSampler(torch.utils.data.Sampler):
    """The epoch's indices from EpochPartsSampler, minus the batches already trained (mid-epoch resume).
    Iterated in the main process, so changing `skip` between epochs is seen by persistent workers."""

    def __init__(self, sampler: EpochPartsSampler, batch: int):
        self.sampler, self.batch, self.skip = sampler, batch, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip_batches * self.batch

    def __iter__(self):
        return iter(list(self.sampler)[self.skip:])

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


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
        tqdm.write(f"signal {signal.Signals(signum).name}: saving at the next optimizer step, then stopping")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def predict_loader(model: nn.Module, loader, device: torch.device, amp: bool, channels_last: bool,
                   conf_thres: float = 0.001, iou_thres: float = 0.6, max_det: int = 300,
                   progress: bool = False) -> list[dict]:
    """Run `model` over a validation loader; returns prediction records (competition format, original pixels)."""
    model.eval()
    m = unwrap(model)
    records = []
    for images, _, metas in tqdm(loader, desc="validate", leave=False, disable=not progress):
        images = images.to(device, non_blocking=True).float().div_(255)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            raw = model(images)
        detections = non_max_suppression(decode([r.float() for r in raw], m.anchors, m.strides),
                                          conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det)
        boxes = [unletterbox_boxes(det[:, :4], Letterbox(meta["ratio"], meta["pad"]), meta["original_hw"]) for det, meta
                 in zip(detections, metas)]
        records += to_records([meta["file_name"] for meta in metas],
                              [torch.cat([b, det[:, 4:]], dim=1) for b, det in zip(boxes, detections)])
    return records


# --------------------------------------------------------------------------------------- training


def train(config: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume, or fine-tune) one model. Returns a summary dict: out_dir, epochs, best mAP@0.75,
    the last validation metrics and the path of best.pt."""
    cfg = config
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(cfg.device)
    if distributed:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # rank 0 validates alone while the others wait in the next gradient sync: allow a long validation
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=3))
    main_process = rank == 0
    progress = progress and main_process
    seed_everything(cfg.seed, cfg.deterministic)
    if device.type == "cpu":
        reuse_freed_memory()

    out_dir = resolve(cfg.out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    hyp = load_hyp(cfg.hyp)
    train_set = load_manifest(require(cfg.train_manifest, "notebooks/02_build_diet.ipynb (drowsy prepare)"))
    val_set = load_manifest(require(cfg.val_manifest, "notebooks/02_build_diet.ipynb (drowsy prepare)"))
    val_records = val_set.records[: cfg.val_images or None]

    # --- model: resume, fine-tune from weights, or scratch
    checkpoint = load_checkpoint(last_path) if cfg.resume and last_path.exists() else None
    init = checkpoint or (load_checkpoint(require(cfg.weights, "notebooks/03_train_baseline.ipynb (drowsy train)"))
                         if cfg.weights else None)
    model_config = init["model_config"] if init else cfg.model
    in_channels = init["in_channels"] if init else 1
    model = build_model(model_config, num_classes=len(CLASSES), in_channels=in_channels)
    if init:
        model.load_state_dict(init["model"] if checkpoint else init["ema"])
    frozen_prefixes = [p.strip() for p in cfg.freeze.split(",") if p.strip()]
    frozen = freeze_modules(model, frozen_prefixes)

    train_data = DetectionDataset(train_set.image_root, train_set.records, cfg.img_size, hyp=hyp, augment=True,
                                  in_channels=in_channels, seed=cfg.seed)
    val_data = DetectionDataset(val_set.image_root, val_records, cfg.img_size, augment=False,
                                in_channels=in_channels, seed=cfg.seed)
    if cfg.cache:  # decoded once, shared with the forked loader workers
        train_data.cache_images(progress=progress)
        val_data.cache_images(progress=progress)

    anchor_report = None
    if cfg.autoanchor and not init:
        anchor_report = check_anchors(model, train_data.boxes_wh(), anchor_t=hyp["anchor_t"], seed=cfg.seed)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)

    accumulate = max(round(cfg.nominal_batch / (cfg.batch * world_size)), 1)
    # weight decay is tuned for the nominal batch; scale it to the batch actually accumulated
    weight_decay = hyp["weight_decay"] * cfg.batch * world_size * accumulate / cfg.nominal_batch
    optimizer = torch.optim.SGD(parameter_groups(model, weight_decay), lr=hyp["lr0"], momentum=hyp["momentum"],
                                nesterov=True)
    use_scaler = device.type == "cuda" and cfg.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    ema = ModelEMA(model)
    start_epoch, skip_batches, best_fitness = 0, 0, -1.0
    if checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        ema.ema.load_state_dict(checkpoint["ema"])
        ema.updates = checkpoint["ema_updates"]
        start_epoch, skip_batches = checkpoint["epoch"], checkpoint["batches_done"]
        best_fitness = checkpoint["best_fitness"]
    if distributed and cfg.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_model = model
    if cfg.compile:
        train_model = torch.compile(train_model)
    if distributed:
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = ResumableSampler(EpochPartsSampler(len(train_data), cfg.epoch_parts, seed=cfg.seed, rank=rank,
                                                 world_size=world_size), cfg.batch)
    train_loader = build_loader(train_data, cfg.batch, cfg.workers, sampler=sampler,
                                pin_memory=device.type == "cuda")
    val_loader = build_loader(val_data, cfg.batch * 2, cfg.workers, pin_memory=device.type == "cuda")
    batches_per_epoch = math.ceil(len(sampler.sampler) / cfg.batch)
    warmup_iters = min(max(round(hyp["warmup_epochs"] * batches_per_epoch), 100),
                       cfg.epochs * batches_per_epoch // 2)
    compute_loss = YoloLoss(unwrap(model), hyp)

    def make_checkpoint(epoch: int, batches_done: int) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
            "ema": {k: v.detach().cpu() for k, v in ema.ema.state_dict().items()},
            "ema_updates": ema.updates, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "batches_done": batches_done, "best_fitness": best_fitness,
            "model_config": model_config, "num_classes": len(CLASSES), "in_channels": in_channels,
            "class_names": list(CLASSES), "config": cfg.to_dict(), "hyp": hyp, "code_version": code_version(),
        }

    metrics_path = out_dir / "metrics.jsonl"
    if main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        run_info = {"config": cfg.to_dict(), "hyp": hyp, "code_version": code_version(), "device": str(device),
                    "world_size": world_size, "accumulate": accumulate, "frozen": frozen,
                    "anchors": anchor_report, "torch": torch.__version__}
        (out_dir / "config.json").write_text(json.dumps(run_info, indent=2))
        # a resumed run rewrites the log without the epochs it will redo
        kept = [line for line in (metrics_path.read_text().splitlines() if checkpoint and metrics_path.exists() else [])
                if json.loads(line)["epoch"] < start_epoch]
        metrics_path.write_text("".join(line + "\n" for line in kept))
        if frozen:
            tqdm.write(f"frozen: {len(frozen)} parameter tensors under {', '.join(frozen_prefixes)} "
                       f"(first {frozen[0]}, last {frozen[-1]})")
        if anchor_report:
            tqdm.write(f"autoanchor: best possible recall {anchor_report['bpr_before']:.4f} -> "
                       f"{anchor_report['bpr_after']:.4f}{' (anchors replaced)' if anchor_report['replaced'] else ''}")

    last_metrics: dict = {}
    with StopRequest() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            epoch_start = time.time()
            train_data.set_epoch(epoch)
            sampler.set_epoch(epoch, skip_batches if epoch == start_epoch else 0)
            set_train_mode(train_model, frozen_prefixes)
            first_batch = skip_batches if epoch == start_epoch else 0
            sums, seen = {"box": 0.0, "obj": 0.0, "cls": 0.0}, 0
            optimizer.zero_grad(set_to_none=True)
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress)
            batch_index = first_batch
            for batch_index, (images, targets, _) in enumerate(bar, start=first_batch):
                step = epoch * batches_per_epoch + batch_index
                lr_scale = one_cycle(epoch, cfg.epochs, hyp["lrf"])
                if step < warmup_iters:  # linear warm-up of lr (biases from warmup_bias_lr) and momentum
                    t = step / warmup_iters
                    for group in optimizer.param_groups:
                        start_lr = hyp["warmup_bias_lr"] if group["kind"] == "bias" else 0.0
                        group["lr"] = start_lr + t * (hyp["lr0"] * lr_scale - start_lr)
                        group["momentum"] = hyp["warmup_momentum"] + t * (hyp["momentum"] - hyp["warmup_momentum"])
                else:
                    for group in optimizer.param_groups:
                        group["lr"] = hyp["lr0"] * lr_scale
                        group["momentum"] = hyp["momentum"]
                images = images.to(device, non_blocking=True).float().div_(255)
                if cfg.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                targets = targets.to(device)
                with autocast(device, cfg.amp):
                    raw = train_model(images)
                loss, parts = compute_loss(raw, targets)
                if not torch.isfinite(loss):
                    raise DrowsyError(
                        f"non-finite loss at epoch {epoch + 1}, batch {batch_index + 1} ({parts}); training stopped, "
                        f"last good checkpoint kept at {last_path}; lower lr0 or check the data")
                if distributed:
                    loss = loss * world_size  # DDP averages gradients over ranks; YOLOv5 sums them
                scaler.scale(loss).backward()
                boundary = (batch_index + 1) % accumulate == 0 or batch_index + 1 == batches_per_epoch
                if boundary:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    ema.update(model)
                for k in sums:
                    sums[k] += parts[k] * len(images)
                seen += len(images)
                bar.set_postfix({k: f"{v / seen:.4f}" for k, v in sums.items()})
                if stop.requested and boundary:
                    if main_process:
                        save_checkpoint(make_checkpoint(epoch, batch_index + 1), last_path)
                        tqdm.write(f"stopped at epoch {epoch + 1}, batch {batch_index + 1}; "
                                   f"resume with resume=True ({last_path})")
                    return {"out_dir": str(out_dir), "stopped": True, "epoch": epoch, "best_fitness": best_fitness}
            skip_batches = 0

            final = epoch + 1 == cfg.epochs
            row = {"epoch": epoch, "lr": optimizer.param_groups[1]["lr"], "images": seen * world_size,
                   "seconds": round(time.time() - epoch_start, 2), **{f"loss_{k}": v / max(seen, 1) for k, v in sums.items()}}
            if main_process and ((epoch + 1) % cfg.val_every == 0 or final):
                predictions = predict_loader(ema.ema, val_loader, device, cfg.amp, cfg.channels_last, progress=progress)
                last_metrics = evaluate_detections(val_records, predictions)
                row.update({k: last_metrics[k] for k in ("mAP50", "mAP75", "mAP50_95")},
                           per_class={c: v["AP75"] for c, v in last_metrics["per_class"].items()})
            if main_process:
                improved = "mAP75" in row and row["mAP75"] > best_fitness
                best_fitness = max(best_fitness, row.get("mAP75", -1.0))
                with metrics_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                checkpoint_now = make_checkpoint(epoch + 1, 0)
                save_checkpoint(checkpoint_now, last_path)
                if improved:
                    save_checkpoint(checkpoint_now, best_path)
                summary = f"epoch {epoch + 1}/{cfg.epochs} loss box {row['loss_box']:.4f} obj {row['loss_obj']:.4f} " \
                          f"cls {row['loss_cls']:.4f} ({row['seconds']:.0f}s)"
                if "mAP75" in row:
                    summary += f"  mAP@0.5 {row['mAP50']:.3f} mAP@0.75 {row['mAP75']:.3f}"
                tqdm.write(summary)
    if distributed:
        dist.barrier()
    return {"out_dir": str(out_dir), "stopped": False, "epochs": cfg.epochs, "best_fitness": best_fitness,
            "metrics": last_metrics, "best": str(best_path), "last": str(last_path)}
