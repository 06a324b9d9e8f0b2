"""The first run on a GPU machine, one script, under 8 minutes on one GPU: is the install right for the card, how
fast and how large is the full preset's training step, do the fp16, DDP and inference paths hold. One table, and
the same as JSON (`--out`).

    python benchmarks/gpu_check.py              # on the GPU machine (the full preset's settings: yolov5l6, 1280 px)
    python benchmarks/gpu_check.py --dry-run    # on a CPU: every check at a tiny size; those that need CUDA skipped

Checks, in order (README "GPU" says what each line means and what to do when one fails):
  environment      torch, CUDA build, cuDNN, driver, GPU, and whether the build has kernels for the GPU
  shared memory    /dev/shm free against what the full preset's loaders need (8 workers for each GPU of the node)
  bf16 step        one forward and backward under autocast on the device: finite gradients
  loader           the full preset's loader alone, streaming from disk (no image cache): images/s
  training step    steady state of the full preset's step (>= 30 timed steps after a warm-up, synchronized):
                   images/s, peak allocated and reserved memory against the card's, host waits per optimizer step
                   (torch.cuda.set_sync_debug_mode)
  fp16 scaler      fp16 with the gradient scaler forced (as on a V100 or T4) for ~100 steps with accumulation:
                   the scale's path, skipped steps, the scaler in last.pt, a SIGTERM mid-epoch and the resume
                   (in the dry run on the CPU, with PyTorch's CPU scaler)
  determinism      two short runs with deterministic true, same seed: identical weights
  DDP              2 ranks (NCCL; gloo on CPU in the dry run), accumulation; then a frozen-backbone fine-tune with
                   sync_bn and compile (CUDA only), stopped by SIGTERM on one rank and resumed: identical weights
                   on both ranks
  inference        the same 16 images through PyTorch on the GPU, on the CPU and ONNX Runtime: largest differences
"""

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import torch

import drowsy.device
from drowsy.config import TrainConfig, load_yaml
from drowsy.data.image_cache import check_shared_memory, shared_memory_free
from drowsy.data.labels import load_manifest
from drowsy.data.prepare import prepare_dataset
from drowsy.device import autocast, autocast_dtype, nvidia_driver, runs_on, select_device
from drowsy.distributed import Process
from drowsy.errors import DrowsyError
from drowsy.files import read_gray, write_json
from drowsy.infer.export import export_onnx
from drowsy.infer.predict import Detector, View, letterbox_views
from drowsy.models.checkpoint import load_checkpoint
from drowsy.models.yolo import build_model
from drowsy.paths import DATA_DIR
from drowsy.synth.aihub_tree import write_aihub_tree
from drowsy.train import engine
from drowsy.train import run as train_run
from drowsy.train.run import build_run

FULL = load_yaml(DATA_DIR / "presets" / "full.yaml")
# (model, img_size, batch, nominal batch, workers, training images, warm-up steps, timed steps, fp16 steps)
SIZES = {
    "gpu": ("yolov5l6", 1280, 16, 64, FULL["workers"], 256, 8, 32, 96),
    "dry": ("yolov5n", 96, 4, 16, 1, 16, 2, 4, 6),
}
PARITY_IMAGES = 16
PROBABILITY_TOLERANCE, BOX_TOLERANCE_PX = 0.02, 1.0  # inference parity: GPU (TF32 convolutions) and ONNX vs CPU


@dataclasses.dataclass
class Setting:
    model: str
    img_size: int
    batch: int
    nominal_batch: int
    workers: int
    images: int
    warmup_steps: int
    timed_steps: int
    fp16_steps: int
    device: torch.device
    folder: Path

    def config(self, run: str, **overrides) -> TrainConfig:
        """The full preset's training settings at this size on the synthetic set, in folder/run."""
        values = dict(
            train_manifest=str(self.folder / "prepared" / "train.json"),
            val_manifest=str(self.folder / "prepared" / "val.json"),
            run_dir=str(self.folder / run),
            model=self.model,
            hyp=FULL["hyp"],
            img_size=self.img_size,
            batch=self.batch,
            nominal_batch=self.nominal_batch,
            epochs=1,
            device=str(self.device),
            workers=self.workers,
            cache=False,  # the full preset's set (~54 GB decoded) streams from disk
            val_every=1000,
            val_images=8,
            deterministic=False,
            autoanchor=False,
            seed=0,
        )
        return TrainConfig(**(values | overrides))


def row(check: str, status: str, figures: str, **numbers) -> dict:
    return {"check": check, "status": status, "figures": figures, **numbers}


def skipped(check: str, why: str) -> dict:
    return row(check, "skipped", why)


# --------------------------------------------------------------------------------------- the checks


def environment(device: torch.device) -> dict:
    versions = (
        f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
        f"NVIDIA driver {nvidia_driver()}"
    )
    if device.type != "cuda":
        return skipped("environment", f"no GPU ({versions})")
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    built = torch.cuda.get_arch_list()
    status = "ok" if runs_on(built, major, minor) else "FAIL"
    return row(
        "environment",
        status,
        f"{name} sm_{major}{minor}, {torch.cuda.device_count()} GPU(s); {versions}; kernels for {' '.join(built)}",
        gpu=name,
        capability=f"{major}.{minor}",
    )


def shared_memory(setting: Setting) -> dict:
    """On a GPU machine: the full preset's loaders, 8 workers for each GPU; in the dry run, the dry run's."""
    ranks = max(torch.cuda.device_count(), 1) if setting.device.type == "cuda" else 1
    free = shared_memory_free()
    try:
        check_shared_memory(setting.workers, setting.batch * 2, setting.img_size, 1, ranks)
    except DrowsyError as error:
        return row("shared memory", "FAIL", str(error), free_mb=free and free / 2**20)
    if free is None:
        return skipped("shared memory", "no /dev/shm here")
    figures = f"{free / 2**20:,.0f} MB free for {ranks} rank(s) x {setting.workers} workers at {setting.img_size} px"
    return row("shared memory", "ok", figures, free_mb=free / 2**20)


def bf16_step(setting: Setting) -> dict:
    model = build_model(setting.model, num_classes=7, in_channels=1).to(
        setting.device, memory_format=torch.channels_last
    )
    images = torch.rand(2, 1, setting.img_size, setting.img_size, device=setting.device)
    with autocast(setting.device, True):
        outputs = model(images.contiguous(memory_format=torch.channels_last))
    sum(level.float().square().mean() for level in outputs).backward()
    finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    dtype = autocast_dtype(setting.device)
    return row("bf16 step", "ok" if finite else "FAIL", f"autocast {dtype}, gradients finite: {finite}")


def loader_alone(setting: Setting) -> dict:
    run = started_run(setting.config("loader"), setting.device)
    batches, started, images = 0, None, 0
    for batch_images, _, _ in run.train_loader:
        if started is None:  # the workers' start-up is not the loader's rate
            started = time.perf_counter()
        else:
            images += len(batch_images)
        batches += 1
    rate = images / (time.perf_counter() - started) if images else float("nan")
    return row("loader", "ok", f"{rate:.1f} images/s ({setting.workers} workers, {batches} batches)", images_per_s=rate)


def training_step(setting: Setting) -> dict:
    """Warm-up, then >= 30 timed micro-batches (whole optimizer steps) of the full preset's step."""
    steps = setting.warmup_steps + setting.timed_steps
    parts = max(1, setting.images // (setting.batch * steps))  # epoch_parts: one epoch of `steps` batches at most
    config = setting.config("step", epochs=1, epoch_parts=parts)
    run = started_run(config, setting.device)
    cuda = setting.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(setting.device)
    tally, done, waits, started = engine.Tally.start(setting.device), 0, 0, None
    batches = (batch for _ in range(math.ceil(steps / run.batches_per_epoch) + 1) for batch in run.train_loader)
    for batch_index, (images, targets, _) in zip(range(steps), batches):
        if batch_index == setting.warmup_steps:
            if cuda:
                torch.cuda.synchronize(setting.device)
            started = time.perf_counter()
        timed = batch_index >= setting.warmup_steps
        with counting_waits(cuda and timed) as caught:
            engine.train_step(run, images, targets, tally, batch_index)
            if (batch_index + 1) % run.accumulate == 0:
                engine.optimizer_step(run, 0, batch_index, tally, False)
        waits += len(caught)
        done += timed
    if cuda:
        torch.cuda.synchronize(setting.device)
    seconds = time.perf_counter() - started
    rate = done * setting.batch / seconds
    optimizer_steps = done // run.accumulate
    figures = f"{rate:.1f} images/s over {done} steps of {setting.batch} at {setting.img_size} px ({setting.model})"
    numbers = {"images_per_s": rate, "timed_steps": done}
    if not cuda:
        return row("training step", "ok", figures + "; memory and host waits: CUDA only", **numbers)
    total = torch.cuda.get_device_properties(setting.device).total_memory
    allocated, reserved = (
        torch.cuda.max_memory_allocated(setting.device),
        torch.cuda.max_memory_reserved(setting.device),
    )
    per_step = waits / max(optimizer_steps, 1)
    scaler_waits = int(run.scaler.is_enabled())  # GradScaler reads back whether it found an overflow
    figures += (
        f"; peak {allocated / 2**30:.1f} GiB allocated, {reserved / 2**30:.1f} reserved of {total / 2**30:.1f}; "
        f"{per_step:.1f} host waits per optimizer step"
    )
    status = "ok" if per_step <= 1 + scaler_waits else "FAIL"
    return row(
        "training step",
        status,
        figures,
        **numbers,
        allocated_gib=allocated / 2**30,
        reserved_gib=reserved / 2**30,
        total_gib=total / 2**30,
        waits_per_optimizer_step=per_step,
    )


def started_run(config: TrainConfig, device: torch.device):
    """A training run built as `drowsy train` builds it, at epoch 0, in training mode, its loader ready to iterate."""
    run = build_run(config, Process(0, 1, device))
    run.train_data.set_epoch(0)
    run.sampler.set_epoch(0, 0)
    engine.set_train_mode(run.train_model, run.frozen_prefixes)
    return run


@contextlib.contextmanager
def counting_waits(enabled: bool):
    """The host waits for the GPU inside the block (set_sync_debug_mode's warnings), as a list."""
    if not enabled:
        yield []
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode("default")


def fp16_scaler(setting: Setting) -> dict:
    """fp16 and the gradient scaler forced for ~fp16_steps batches with accumulation, a SIGTERM a third of the
    way, then the resume to the end. In the dry run the same on the CPU, one short epoch (PyTorch has a CPU
    scaler; drowsy never uses it; fp16 is slow there): the check's own code runs before a GPU does."""
    per_epoch = math.ceil(len(load_manifest(setting.folder / "prepared" / "train.json").records) / setting.batch)
    epochs = math.ceil(setting.fp16_steps / per_epoch)
    config = setting.config("fp16", epochs=epochs, nominal_batch=setting.batch * min(4, per_epoch // 2))
    scales, stops = [], {"at": epochs * per_epoch // 3}  # a third of the way: mid-epoch at these sizes
    originals = engine.optimizer_step, drowsy.device.autocast_dtype, train_run.needs_grad_scaler

    def recording_step(run, epoch, batch_index, tally, stop_requested):
        result = originals[0](run, epoch, batch_index, tally, stop_requested)
        scales.append(run.scaler.get_scale())
        if "at" in stops and epoch * per_epoch + batch_index >= stops["at"]:
            del stops["at"]  # once: the resumed run goes to the end
            os.kill(os.getpid(), signal.SIGTERM)  # StopRequest: save at the next optimizer step and return
        return result

    engine.optimizer_step, drowsy.device.autocast_dtype = recording_step, lambda device: torch.float16
    train_run.needs_grad_scaler = lambda device, amp: amp
    try:
        stopped = engine.train(config, progress=False)
        saved = load_checkpoint(Path(config.run_dir) / "last.pt")
        resumed = engine.train(dataclasses.replace(config, resume=True), progress=False)
    finally:
        engine.optimizer_step, drowsy.device.autocast_dtype, train_run.needs_grad_scaler = originals
    skips = sum(after < before for before, after in zip(scales, scales[1:]))
    ok = stopped["stopped"] and bool(saved["scaler"]) and not resumed["stopped"] and skips < len(scales) / 2
    figures = (
        f"{len(scales)} optimizer steps, scale {scales[0]:g} -> {scales[-1]:g}, {skips} skipped; stopped at epoch "
        f"{saved['epoch'] + 1} batch {saved['batches_done']} with the scaler in last.pt (scale "
        f"{saved['scaler'].get('scale', 'missing')}), resumed to epoch {resumed['epochs_done']}"
    )
    return row("fp16 scaler", "ok" if ok else "FAIL", figures, scales=scales, skipped_steps=skips)


def determinism(setting: Setting) -> dict:
    parts = max(1, setting.images // (setting.batch * 2 * (setting.nominal_batch // setting.batch)))
    digests = []
    for run in ("same_seed_a", "same_seed_b"):
        config = setting.config(run, deterministic=True, epoch_parts=parts)
        engine.train(config, progress=False)
        digests.append(weights_digest(load_checkpoint(Path(config.run_dir) / "last.pt")["model"]))
    identical = digests[0] == digests[1]
    return row("determinism", "ok" if identical else "FAIL", f"two runs, seed 0: weights identical: {identical}")


def weights_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


RANK_SCRIPT = textwrap.dedent('''
    """One rank of gpu_check's DDP check: train the TrainConfig given as JSON; with SIGTERM_AT, rank 1 sends itself
    SIGTERM at that optimizer step. Writes the rank's summary and weight digest as JSON beside the given path."""
    import json
    import os
    import signal
    import sys
    from pathlib import Path


    def main():  # loader workers start by importing this file: nothing may run at import
        sys.path.insert(0, sys.argv[3])
        from gpu_check import weights_digest

        from drowsy.config import TrainConfig
        from drowsy.train import engine

        config, out = TrainConfig(**json.loads(sys.argv[1])), Path(sys.argv[2])
        rank, signal_at, models = int(os.environ["RANK"]), int(os.environ.get("SIGTERM_AT", "-1")), []
        original = engine.optimizer_step

        def step(run, *args):
            result = original(run, *args)
            models.append(run.model)
            if rank == 1 and len(models) == signal_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return result

        engine.optimizer_step = step
        summary = engine.train(config, progress=False)
        # parameters: BatchNorm's running statistics are each rank's own since the last forward (DDP sends rank 0's
        # at the start of each)
        digest = weights_digest(dict(models[-1].named_parameters())) if models else ""
        out.with_name(f"{out.stem}{rank}.json").write_text(json.dumps({**summary, "digest": digest}))


    if __name__ == "__main__":
        main()
''')


def ddp(setting: Setting) -> dict:
    cuda = setting.device.type == "cuda"
    if cuda and torch.cuda.device_count() < 2:
        return skipped("DDP", f"needs 2 GPUs, {torch.cuda.device_count()} here")
    if cuda:
        torch.cuda.empty_cache()  # this process's cached blocks stay on GPU 0 otherwise
    script = setting.folder / "ddp_rank.py"
    script.write_text(RANK_SCRIPT)
    per_rank = setting.images // (setting.batch * 2)
    base = setting.config("ddp", epochs=2, device="cuda" if cuda else "cpu")
    first = torchrun(script, base, setting.folder / "ddp_first")
    tuned = dataclasses.replace(
        base,
        run_dir=str(setting.folder / "ddp_tuned"),
        weights=str(Path(base.run_dir) / "last.pt"),
        freeze="backbone",
        sync_bn=cuda,
        compile=cuda,
        epochs=2,
    )
    stopped = torchrun(script, tuned, setting.folder / "ddp_stop", sigterm_at=max(per_rank // 2, 1))
    resumed = torchrun(script, dataclasses.replace(tuned, resume=True), setting.folder / "ddp_resume")
    same = [len({rank["digest"] for rank in ranks}) == 1 for ranks in (first, resumed)]
    ok = all(same) and all(rank["stopped"] for rank in stopped) and not any(rank["stopped"] for rank in resumed)
    backend = "NCCL" if cuda else "gloo (dry run: no sync_bn, no compile)"
    figures = (
        f"2 ranks, {backend}: training with accumulation, identical weights: {same[0]}; frozen-backbone fine-tune "
        f"stopped on rank 1's SIGTERM on both ranks: {all(rank['stopped'] for rank in stopped)}, resumed, "
        f"identical weights: {same[1]}"
    )
    return row("DDP", "ok" if ok else "FAIL", figures)


def torchrun(script: Path, config: TrainConfig, out: Path, sigterm_at: int = -1) -> list[dict]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(script),
        json.dumps(dataclasses.asdict(config)),
        str(out),
        str(Path(__file__).parent),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SIGTERM_AT": str(sigterm_at)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "Error" in line and "ChildFailedError" not in line]
        raise DrowsyError(f"DDP run failed ({config.run_dir}): {(errors or ['no error line'])[-1].strip()[:300]}")
    return [json.loads(out.with_name(f"{out.stem}{rank}.json").read_text()) for rank in range(2)]


def inference(setting: Setting, weights: Path) -> dict:
    """The same images through PyTorch on the device, on the CPU and ONNX Runtime, fp32: largest differences
    of the class probabilities and of the box coordinates of the candidates the CPU scores over 0.1."""
    manifest = load_manifest(setting.folder / "prepared" / "val.json")
    images = [read_gray(manifest.image_root / record["file_name"]) for record in manifest.records[:PARITY_IMAGES]]
    pixels, _ = letterbox_views(images, View(setting.img_size))
    onnx = export_onnx(weights, setting.folder / "parity.onnx", img_size=setting.img_size, dynamic=True)
    reference = Detector(weights, device="cpu").decoded_predictions(pixels)
    others = {"ONNX Runtime": Detector(onnx).decoded_predictions(pixels)}
    if setting.device.type == "cuda":
        others["GPU"] = Detector(weights, device=str(setting.device)).decoded_predictions(pixels).cpu()
    scored = reference[..., 4] > 0.1
    cells, numbers = [], {}
    for name, other in others.items():
        probability = (other[..., 4:] - reference[..., 4:]).abs().max().item()
        box = (other[..., :4] - reference[..., :4]).abs()[scored].max().item() if scored.any() else 0.0
        numbers[name] = {"probability": probability, "box_px": box}
        cells.append(f"{name} vs CPU: probabilities {probability:.4f}, boxes {box:.3f} px")
    ok = all(n["probability"] <= PROBABILITY_TOLERANCE and n["box_px"] <= BOX_TOLERANCE_PX for n in numbers.values())
    if setting.device.type != "cuda":
        cells.append("GPU: needs CUDA")
    return row("inference", "ok" if ok else "FAIL", f"{len(images)} images; " + "; ".join(cells), **numbers)


# --------------------------------------------------------------------------------------- the run


def guarded(check: str, action) -> dict:
    """A check that raises is a FAIL line with its error, and the others still run."""
    try:
        return action()
    except Exception as error:  # the table must come out whatever one check does
        return row(check, "FAIL", f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, tiny sizes; CUDA-only checks skipped")
    parser.add_argument("--device", default="cuda", help="the GPU to check (default cuda)")
    parser.add_argument("--out", default="outputs/benchmarks/gpu_check.json", help="the table as JSON")
    args = parser.parse_args()
    device = torch.device("cpu") if args.dry_run else None
    table = []
    if device is None:
        try:
            device = select_device(args.device)
        except DrowsyError as error:
            table.append(row("environment", "FAIL", str(error)))
            device = torch.device("cpu")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        setting = Setting(*SIZES["dry" if args.dry_run or device.type != "cuda" else "gpu"], device, Path(scratch))
        write_aihub_tree(
            setting.folder / "raw",
            setting.images + PARITY_IMAGES,
            size=(800, 1280),
            workers=min(8, os.cpu_count() or 1),
            progress=False,
        )
        prepare_dataset(setting.folder / "raw", setting.folder / "prepared", val_size=PARITY_IMAGES, progress=False)
        if not table:
            table.append(guarded("environment", lambda: environment(device)))
        table.append(guarded("shared memory", lambda: shared_memory(setting)))
        table.append(guarded("bf16 step", lambda: bf16_step(setting)))
        table.append(guarded("loader", lambda: loader_alone(setting)))
        table.append(guarded("training step", lambda: training_step(setting)))
        table.append(guarded("fp16 scaler", lambda: fp16_scaler(setting)))
        table.append(guarded("determinism", lambda: determinism(setting)))
        table.append(guarded("DDP", lambda: ddp(setting)))
        table.append(guarded("inference", lambda: inference(setting, setting.folder / "same_seed_a" / "last.pt")))
    width = max(len(line["check"]) for line in table)
    for line in table:
        print(f"{line['check']:<{width}}  {line['status']:<7}  {line['figures']}")
    print(f"{time.perf_counter() - started:.0f} s")
    write_json(
        args.out,
        {"device": str(device), "dry_run": args.dry_run, "seconds": time.perf_counter() - started, "checks": table},
    )
    if any(line["status"] == "FAIL" for line in table):
        sys.exit(1)


if __name__ == "__main__":
    main()
