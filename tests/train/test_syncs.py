"""The GPU never waits on the host inside a training step: the calls that make the host wait for the device
(a tensor's value read into Python, a shape that depends on values, a host constant copied over) are counted
on the CPU path, where they are the same calls, and held to one per optimizer step. Target assignment is left
out: it runs on the host's copy of the targets by design, while the device computes the forward."""

import torch
from torch.overrides import TorchFunctionMode

from drowsy.train import engine
from drowsy.train import loss as loss_module
from drowsy.train.engine import train
from tests.helpers import tiny_config

# Calls that wait for the device's queue on a GPU: values read into Python, outputs sized by values, copies
# to the host; and host data copied to the device (`torch.tensor(...)`, a blocking copy from pageable memory).
VALUES_READ = {"__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy", "cpu"}
VALUE_SIZED = {"nonzero", "masked_select", "unique"}
WAITING_CALLS = frozenset(VALUES_READ | VALUE_SIZED | {"tensor", "as_tensor"})
MAX_WAITS_PER_OPTIMIZER_STEP = 1  # the loss, the gradient norm and the stop flag read back together


class WaitCounter(TorchFunctionMode):
    """Records each waiting call (its name) under the engine function it was made in; `paused` > 0 skips."""

    def __init__(self):
        super().__init__()
        self.where, self.paused, self.calls = None, 0, {"train_step": [], "optimizer_step": []}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        boolean_index = name == "__getitem__" and any(
            isinstance(index, torch.Tensor) and index.dtype == torch.bool
            for index in (args[1] if isinstance(args[1], tuple) else (args[1],))
        )
        if self.where and not self.paused and (name in WAITING_CALLS or boolean_index):
            self.calls[self.where].append("boolean index" if boolean_index else name)
        return func(*args, **(kwargs or {}))


def counted(function, counter: WaitCounter, where: str):
    def wrapper(*args, **kwargs):
        counter.where = where
        try:
            with counter:
                return function(*args, **kwargs)
        finally:
            counter.where = None

    return wrapper


def test_a_training_step_waits_for_the_device_at_most_once_per_optimizer_step(tiny_dataset, tmp_path, monkeypatch):
    counter, steps = WaitCounter(), []
    monkeypatch.setattr(engine, "train_step", counted(engine.train_step, counter, "train_step"))
    optimizer_step = counted(engine.optimizer_step, counter, "optimizer_step")
    monkeypatch.setattr(engine, "optimizer_step", lambda *a, **k: steps.append(1) or optimizer_step(*a, **k))
    assign = loss_module.assign_targets

    def host_side_assignment(*args, **kwargs):
        counter.paused += 1
        try:
            return assign(*args, **kwargs)
        finally:
            counter.paused -= 1

    monkeypatch.setattr(loss_module, "assign_targets", host_side_assignment)
    # batch 4, nominal 8: two micro-batches per optimizer step
    train(tiny_config(tiny_dataset, tmp_path, epochs=1, val_every=100), progress=False)
    assert len(steps) == 2 and counter.calls["train_step"] == []  # 4 micro-batches, 2 optimizer steps
    assert len(counter.calls["optimizer_step"]) <= MAX_WAITS_PER_OPTIMIZER_STEP * len(steps)
