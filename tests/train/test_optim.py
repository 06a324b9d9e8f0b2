"""drowsy.train.optim: the learning-rate and momentum schedule (warm-up, one-cycle), the EMA's decay and
update, and the parameter groups (no decay on norm weights and biases, frozen parameters left out)."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from drowsy.config import Hyp
from drowsy.paths import REPO_ROOT
from drowsy.train.optim import (
    ModelEMA,
    apply_schedule,
    freeze_modules,
    one_cycle,
    parameter_groups,
    schedule,
    warmup_steps,
)

HYP = dataclasses.replace(
    Hyp.load(REPO_ROOT / "data/hyp.scratch-p6.yaml"),
    lr0=0.01,
    lrf=0.1,
    momentum=0.937,
    warmup_epochs=3.0,
    warmup_momentum=0.8,
    warmup_bias_lr=0.1,
)


def test_one_cycle_runs_a_cosine_from_1_to_lrf():
    assert one_cycle(0, 10, 0.1) == pytest.approx(1.0)
    assert one_cycle(5, 10, 0.1) == pytest.approx(0.55)  # halfway: the mean of 1 and lrf
    assert one_cycle(10, 10, 0.1) == pytest.approx(0.1)
    values = [one_cycle(e, 10, 0.1) for e in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_warmup_lasts_its_epochs_at_least_100_batches_at_most_half_the_run():
    assert warmup_steps(HYP, batches_per_epoch=200, epochs=300) == 600
    assert warmup_steps(HYP, batches_per_epoch=10, epochs=300) == 100  # 30 batches would be too short
    assert warmup_steps(HYP, batches_per_epoch=10, epochs=4) == 20  # never more than half of 40


def test_warmup_ramps_biases_down_and_the_rest_up_then_follows_the_cycle():
    warmup, epochs = 100, 10
    assert schedule(0, 0, epochs, warmup, HYP, "bias") == pytest.approx((0.1, 0.8))
    assert schedule(0, 0, epochs, warmup, HYP, "weight") == pytest.approx((0.0, 0.8))
    assert schedule(0, 0, epochs, warmup, HYP, "norm") == pytest.approx((0.0, 0.8))
    halfway_momentum = 0.8 + 0.5 * (0.937 - 0.8)
    assert schedule(50, 0, epochs, warmup, HYP, "bias") == pytest.approx((0.1 + 0.5 * (0.01 - 0.1), halfway_momentum))
    assert schedule(50, 0, epochs, warmup, HYP, "weight") == pytest.approx((0.005, halfway_momentum))
    # warm-up aims at the cycle's value of the current epoch, and hands over to it without a step
    lr_epoch_1 = 0.01 * one_cycle(1, epochs, 0.1)
    assert schedule(99, 1, epochs, warmup, HYP, "weight")[0] == pytest.approx(0.99 * lr_epoch_1)
    for kind in ("bias", "weight", "norm"):
        assert schedule(100, 1, epochs, warmup, HYP, kind) == pytest.approx((lr_epoch_1, 0.937))
    assert schedule(10**6, 9, epochs, warmup, HYP, "weight")[0] == pytest.approx(0.01 * one_cycle(9, epochs, 0.1))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 2, 1)


def test_parameter_groups_decay_only_conv_weights_and_leave_frozen_parameters_out():
    model = Tiny()
    groups = {g["kind"]: g for g in parameter_groups(model, weight_decay=5e-4)}
    ids = {kind: {id(p) for p in g["params"]} for kind, g in groups.items()}
    assert ids == {
        "norm": {id(model.backbone[1].weight)},
        "weight": {id(model.backbone[0].weight), id(model.head.weight)},
        "bias": {id(model.backbone[1].bias), id(model.head.bias)},
    }
    assert (groups["norm"]["weight_decay"], groups["weight"]["weight_decay"], groups["bias"]["weight_decay"]) == (
        0.0,
        5e-4,
        0.0,
    )
    freeze_modules(model, ["backbone"])
    left = {
        kind: {id(p) for p in g["params"]}
        for kind, g in ((g["kind"], g) for g in parameter_groups(model, weight_decay=5e-4))
    }
    assert left == {"norm": set(), "weight": {id(model.head.weight)}, "bias": {id(model.head.bias)}}


def test_apply_schedule_sets_each_group_by_its_kind():
    model = Tiny()
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=1.0, momentum=0.5, nesterov=True)
    apply_schedule(optimizer, step=0, epoch=0, epochs=10, warmup=100, hyp=HYP)
    assert [(g["kind"], g["lr"], g["momentum"]) for g in optimizer.param_groups] == [
        ("norm", 0.0, pytest.approx(0.8)),
        ("weight", 0.0, pytest.approx(0.8)),
        ("bias", pytest.approx(0.1), pytest.approx(0.8)),
    ]


def test_ema_decay_ramps_up_from_zero_and_averages_with_it():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEMA(model)
    assert ema.decay() == 0.0
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # decay after 1 update: 0.9999 * (1 - e^(-1/2000)) ~ 0.0005
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.ema.weight.item() == pytest.approx(1.0 * d + 3.0 * (1 - d))
    assert ModelEMA(model, updates=10**6).decay() == pytest.approx(0.9999)
    assert not any(p.requires_grad for p in ema.ema.parameters())


def test_ema_copies_integer_buffers_instead_of_averaging_them():
    model = nn.BatchNorm1d(2)
    ema = ModelEMA(model, updates=10**6)
    model.train()
    model(torch.randn(8, 2))
    model(torch.randn(8, 2))
    ema.update(model)
    assert ema.ema.num_batches_tracked.item() == 2  # copied: an average would stay near 0
    assert torch.allclose(ema.ema.running_mean, 0.9999 * torch.zeros(2) + 1e-4 * model.running_mean)
