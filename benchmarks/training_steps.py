"""The training steps benchmarks/train_speed.py times: drowsy's engine step and the ultralytics peer's
(in a spawned process of its own), each a `Trainer` that records its step times and phases.

A step is what the trainers do per batch: uint8 -> float, forward, loss, backward, and every
nominal_batch / batch steps gradient clipping, the SGD (Nesterov) step and the EMA update.
"""

import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from drowsy import CLASSES
from drowsy.device import autocast, reuse_freed_memory, seed_everything
from drowsy.models import fused
from drowsy.models.yolo import build_model, model_info
from drowsy.train.loss import YoloLoss
from drowsy.train.optim import ModelEMA, parameter_groups

NOMINAL_BATCH = 64  # both trainers accumulate gradients to 64 images per optimizer step
CPU = torch.device("cpu")


@dataclass
class Trainer:
    """One model with its loss, optimizer and EMA. `step(i, batch, marks)` trains on one of `batches` as
    the i-th step of the run and records in `marks` the perf_counter time at the end of each phase."""

    name: str
    step: Callable[[int, tuple, dict], None]
    batches: list
    gflops_per_image: float  # forward pass, multiply-adds counted as 2
    kernel_settings: Callable[[], None]  # sets the process-wide torch flags its trainer sets (they differ)
    seconds: list = field(default_factory=list)  # timed steps, wall clock
    cpu_seconds: list = field(default_factory=list)  # timed steps, this process's CPU time (all threads)
    phases: dict = field(default_factory=dict)  # phase -> seconds summed over the timed steps
    steps_done: int = 0

    def run(self, steps: int, timed: bool) -> None:
        self.kernel_settings()
        for _ in range(steps):
            batch = self.batches[self.steps_done % len(self.batches)]
            marks = {}
            start, start_cpu = time.perf_counter(), time.process_time()
            self.step(self.steps_done, batch, marks)
            if timed:
                self.seconds.append(time.perf_counter() - start)
                self.cpu_seconds.append(time.process_time() - start_cpu)
                previous = start
                for phase, at in marks.items():
                    self.phases[phase] = self.phases.get(phase, 0.0) + at - previous
                    previous = at
            self.steps_done += 1

    def images_per_second(self) -> float:
        return len(self.batches[0][0]) / statistics.median(self.seconds)


def accumulation_steps(batch: int) -> int:
    return max(round(NOMINAL_BATCH / batch), 1)


def optimizer_for(model: torch.nn.Module, hyp: dict, batch: int) -> torch.optim.Optimizer:
    """SGD (Nesterov) over drowsy's three parameter groups, weight decay scaled as both trainers scale it."""
    weight_decay = hyp["weight_decay"] * batch * accumulation_steps(batch) / NOMINAL_BATCH
    return torch.optim.SGD(
        parameter_groups(model, weight_decay), lr=hyp["lr0"], momentum=hyp["momentum"], nesterov=True
    )


def update_weights(index: int, batch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema) -> None:
    """After step `index`'s backward: at the end of each accumulation, what both trainers do (clip the
    gradient norm to 10, step, zero the gradients, update the EMA)."""
    if (index + 1) % accumulation_steps(batch) == 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(model)


def drowsy_trainer(
    scale: str, batches: list, hyp: dict, amp: bool, channels_last: bool, seed: int, fused_kernel: bool = True
) -> Trainer:
    """drowsy's engine step (drowsy/train/engine.py train loop) on a fresh yolov5<scale>, the engine's process
    settings (seed_everything: deterministic algorithms, no NaN fill of new tensors; reuse_freed_memory),
    with the fused BatchNorm+SiLU kernel (drowsy/models/fused.py) or PyTorch's two ops."""

    def kernel_settings() -> None:
        seed_everything(seed, deterministic=True)
        reuse_freed_memory()
        fused.set_enabled(fused_kernel)

    kernel_settings()
    model = build_model(f"yolov5{scale}", num_classes=len(CLASSES), in_channels=1)
    img_size = batches[0][0].shape[-1]
    gflops = model_info(model, img_size)["gflops"]
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    batch_size = len(batches[0][0])
    optimizer = optimizer_for(model, hyp, batch_size)
    ema = ModelEMA(model)
    compute_loss = YoloLoss(model, hyp)

    def step(index: int, batch: tuple, marks: dict) -> None:
        images, targets = batch
        images = images.float().div_(255)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(CPU, amp):
            raw = model(images)
        marks["forward"] = time.perf_counter()
        loss, _ = compute_loss(raw, targets)
        marks["loss"] = time.perf_counter()
        loss.backward()
        marks["backward"] = time.perf_counter()
        update_weights(index, batch_size, model, optimizer, ema)
        marks["optimizer + EMA"] = time.perf_counter()

    name = (
        f"drowsy yolov5{scale} {'bf16 autocast' if amp else 'fp32'} + {'channels_last' if channels_last else 'NCHW'}"
        f"{'' if fused_kernel else ', PyTorch BN+SiLU'}"
    )
    return Trainer(name, step, batches, gflops, kernel_settings)


def ultralytics_batches(batches: list, channels: int) -> list[tuple[torch.Tensor, dict]]:
    """The same batches in the format its loader yields: images uint8 [B, channels, S, S] and labels
    batch_idx [M], cls [M, 1], bboxes [M, 4] (cx, cy, w, h) normalised to [0, 1]."""
    converted = []
    for images, targets in batches:
        size = images.shape[-1]
        labels = {"batch_idx": targets[:, 0].clone(), "cls": targets[:, 1:2].clone(), "bboxes": targets[:, 2:6] / size}
        converted.append((images.expand(-1, channels, -1, -1).contiguous(), labels))
    return converted


def ultralytics_trainer(scale: str, batches: list, hyp: dict, channels: int, seed: int) -> Trainer | None:
    """The peer's step (its BaseTrainer: preprocess_batch, model.loss, backward, optimizer_step), fp32.
    None when ultralytics is not installed."""
    try:
        from ultralytics.cfg import get_cfg
        from ultralytics.nn.tasks import DetectionModel
        from ultralytics.utils.torch_utils import ModelEMA as UltralyticsEMA
        from ultralytics.utils.torch_utils import init_seeds
    except ImportError:
        print("ultralytics not installed (optional: pip install -e .[bench]); peer skipped")
        return None

    def kernel_settings() -> None:
        init_seeds(seed, deterministic=True)  # as its trainer does by default (deterministic: True)

    kernel_settings()
    model = DetectionModel(f"yolov5{scale}u.yaml", ch=channels, nc=len(CLASSES), verbose=False)
    model.args = get_cfg()  # its default hyperparameters (box 7.5, cls 0.5, dfl 1.5), as its trainer sets
    img_size = batches[0][0].shape[-1]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, channels, img_size, img_size))
    model.train()
    batch_size = len(batches[0][0])
    optimizer = optimizer_for(model, hyp, batch_size)
    ema = UltralyticsEMA(model)

    def step(index: int, batch: tuple, marks: dict) -> None:
        images, labels = batch
        batch_dict = {"img": images.float() / 255, **labels}
        predictions = model(batch_dict["img"])
        marks["forward"] = time.perf_counter()
        loss, _ = model.loss(batch_dict, predictions)
        loss = loss.sum()
        marks["loss"] = time.perf_counter()
        loss.backward()
        marks["backward"] = time.perf_counter()
        update_weights(index, batch_size, model, optimizer, ema)
        marks["optimizer + EMA"] = time.perf_counter()

    converted = ultralytics_batches(batches, channels)
    return Trainer(
        f"ultralytics yolov5{scale}u fp32 + NCHW ({channels}-ch)",
        step,
        converted,
        counter.get_total_flops() / 1e9,
        kernel_settings,
    )


class PeerProcess:
    """The peer's trainer in a spawned process, driven step batch by step batch from this one.

    drowsy's engine tunes this process's C allocator (`reuse_freed_memory`, permanent and process-wide);
    the peer has to run as its own trainer ships, with the allocator's defaults, so it gets a fresh
    process. Timing still alternates with drowsy's (this process waits while the peer runs).
    Same interface as Trainer for what the comparison reads; `ready` is False without ultralytics.
    """

    def __init__(self, scale: str, batches: list, hyp: dict, channels: int, seed: int):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_peer_main, daemon=True, args=(child, scale, batches, hyp, channels, seed, torch.get_num_threads())
        )
        self.process.start()
        reply = self.connection.recv()
        self.ready = reply is not None
        self.name, self.gflops_per_image = reply if self.ready else ("", 0.0)
        self.batch_size = len(batches[0][0])
        self.seconds, self.cpu_seconds, self.phases = [], [], {}

    def run(self, steps: int, timed: bool) -> None:
        self.connection.send(("run", steps, timed))
        seconds, cpu_seconds, phases = self.connection.recv()
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        for phase, value in phases.items():
            self.phases[phase] = self.phases.get(phase, 0.0) + value

    def profile(self, steps: int, rows: int) -> None:
        self.connection.send(("profile", steps, rows))
        self.connection.recv()

    def images_per_second(self) -> float:
        return self.batch_size / statistics.median(self.seconds)

    def close(self) -> None:
        self.connection.send(("stop",))
        self.process.join()


def _peer_main(connection, scale: str, batches: list, hyp: dict, channels: int, seed: int, threads: int) -> None:
    """PeerProcess's other end: build the peer's trainer, then run what the parent asks for."""
    torch.set_num_threads(threads)
    trainer = ultralytics_trainer(scale, batches, hyp, channels, seed)
    connection.send((trainer.name, trainer.gflops_per_image) if trainer else None)
    while trainer:
        command, *options = connection.recv()
        if command == "stop":
            return
        if command == "profile":
            profile_step(trainer, *options)
            connection.send(None)
            continue
        done, phases = len(trainer.seconds), dict(trainer.phases)
        trainer.run(*options)
        connection.send(
            (
                trainer.seconds[done:],
                trainer.cpu_seconds[done:],
                {phase: value - phases.get(phase, 0.0) for phase, value in trainer.phases.items()},
            )
        )


def time_in_rounds(trainers: list[Trainer], warmup: int, steps: int, rounds: int) -> None:
    """Warm every trainer up, then alternate `rounds` rounds of `steps` timed steps each."""
    for trainer in trainers:
        trainer.run(warmup, timed=False)
    for _ in range(rounds):
        for trainer in trainers:
            trainer.run(steps, timed=True)


def profile_step(trainer: Trainer, steps: int, rows: int) -> None:
    """torch.profiler table of `steps` steps (a whole accumulation cycle), top ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        trainer.run(steps, timed=False)
    print(f"\nprofile of {trainer.name}, {steps} steps (top {rows} ops by self CPU time):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48))
