"""What the optimizer sees: parameter groups, frozen modules, the learning-rate and momentum schedule,
and the EMA of the weights (YOLOv5's recipe, which the winning solution trained with)."""

import math
from copy import deepcopy
from itertools import chain

import torch
from torch import nn

from drowsy.config import Hyp
from drowsy.errors import DrowsyError


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
        """ema = d * ema + (1 - d) * model for the floating-point parameters and buffers (BatchNorm statistics,
        anchors), a copy for the others (BatchNorm's batch counter), each as one `torch._foreach_*` call over
        the lists: a few fused kernels on a GPU instead of two per tensor (~1,500 launches at yolov5l6), the
        same numbers (the same operations on each tensor)."""
        self.updates += 1
        d = self.decay()
        model = unwrap(model)
        floats, others = ([], []), ([], [])
        for pair in zip(chain(self.ema.parameters(), self.ema.buffers()), chain(model.parameters(), model.buffers())):
            group = floats if pair[0].dtype.is_floating_point else others
            group[0].append(pair[0])
            group[1].append(pair[1].detach())
        torch._foreach_mul_(floats[0], d)
        torch._foreach_add_(floats[0], floats[1], alpha=1 - d)
        if others[0]:
            torch._foreach_copy_(others[0], others[1])


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Three groups as YOLOv5: norm weights (no decay), conv/linear weights (decay), biases (no decay).
    Frozen parameters (requires_grad False) are left out."""
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


def warmup_steps(hyp: Hyp, batches_per_epoch: int, epochs: int) -> int:
    """Optimizer-schedule steps (batches) of linear warm-up: warmup_epochs, at least 100 batches, at
    most half the run."""
    return min(max(round(hyp.warmup_epochs * batches_per_epoch), 100), epochs * batches_per_epoch // 2)


def schedule(step: int, epoch: int, epochs: int, warmup: int, hyp: Hyp, kind: str) -> tuple[float, float]:
    """(learning rate, momentum) of a parameter group of `kind` ("norm", "weight", "bias") at batch
    `step` of the run (in epoch `epoch`): linear warm-up over the first `warmup` steps (biases from
    warmup_bias_lr down, the others from 0 up; momentum from warmup_momentum), cosine one-cycle
    from lr0 to lr0 * lrf by epoch."""
    lr_scale = one_cycle(epoch, epochs, hyp.lrf)
    if step >= warmup:
        return hyp.lr0 * lr_scale, hyp.momentum
    t = step / warmup
    start_lr = hyp.warmup_bias_lr if kind == "bias" else 0.0
    return start_lr + t * (hyp.lr0 * lr_scale - start_lr), hyp.warmup_momentum + t * (
        hyp.momentum - hyp.warmup_momentum
    )


def apply_schedule(optimizer: torch.optim.Optimizer, step: int, epoch: int, epochs: int, warmup: int, hyp: Hyp) -> None:
    """Set every parameter group's learning rate and momentum for this step (`schedule`)."""
    for group in optimizer.param_groups:
        group["lr"], group["momentum"] = schedule(step, epoch, epochs, warmup, hyp, group["kind"])
