"""One check of the CUDA path, for a machine with a GPU, in under 8 minutes.

Writes a small synthetic set of 800x1280 frames (the AIHub layout), trains the full preset's model with its
settings (yolov5l6, 1280 px, batch 16, hyp.scratch-p6, determinism off, 8 workers) for about `--steps`
steps, and prints images/s (epochs after the first), peak GPU memory, the autocast dtype and whether the
fp16 gradient scaler ran; with two or more GPUs also a 2-process NCCL DDP run of the same.

    python benchmarks/gpu_check.py                       # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --model yolov5n --img-size 128 --steps 4 --images 16  # a dry run
"""

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from drowsy.commands.train import options_of
from drowsy.config import TrainConfig, load_yaml
from drowsy.data.prepare import prepare_dataset
from drowsy.device import autocast_dtype, select_device
from drowsy.models.checkpoint import load_checkpoint
from drowsy.paths import DATA_DIR
from drowsy.synth.aihub_tree import write_aihub_tree
from drowsy.train.engine import train

FULL = load_yaml(DATA_DIR / "presets" / "full.yaml")


def run_config(folder: Path, args, run_dir: Path) -> TrainConfig:
    """The full preset's training settings on the synthetic set, for about `args.steps` steps."""
    epochs = max(2, math.ceil(args.steps * args.batch / args.images))
    return TrainConfig(
        train_manifest=str(folder / "prepared" / "train.json"),
        val_manifest=str(folder / "prepared" / "val.json"),
        run_dir=str(run_dir),
        model=args.model,
        hyp=FULL["hyp"],
        img_size=args.img_size,
        batch=args.batch,
        nominal_batch=64,
        epochs=epochs,
        epoch_parts=1,
        device=args.device,
        workers=min(FULL["workers"], os.cpu_count()),
        val_every=epochs,
        val_images=8,
        deterministic=False,
        checkpoint_every=epochs,
        autoanchor=False,
    )


def images_per_second(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]  # warm-up out
    return sum(r["images"] for r in rows) / sum(r["seconds"] for r in rows)


def ddp_run(config: TrainConfig, run_dir: Path) -> float:
    """Images/s of the same run on 2 GPUs (torchrun, NCCL; the batch is per process)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "-m",
        "drowsy",
        "train",
        *options_of(dataclasses.replace(config, run_dir=str(run_dir))),
        "--quiet",
    ]
    subprocess.run(command, check=True, timeout=600)
    return images_per_second(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps, about (default 300)")
    parser.add_argument("--images", type=int, default=256, help="synthetic training images (default 256)")
    parser.add_argument("--model", default=FULL["model"])
    parser.add_argument("--img-size", type=int, default=FULL["img_size"])
    parser.add_argument("--batch", type=int, default=FULL["batch"])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.model} at {args.img_size} px, batch {args.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_aihub_tree(
            folder / "raw", args.images + 16, size=(800, 1280), workers=min(8, os.cpu_count()), progress=False
        )
        prepare_dataset(folder / "raw", folder / "prepared", val_size=16, progress=False)
        config = run_config(folder, args, folder / "run")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        train(config, progress=False)
        seconds = time.perf_counter() - started
        scaler = bool(load_checkpoint(folder / "run" / "last.pt")["scaler"])
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        print(
            f"single process: {images_per_second(folder / 'run'):.1f} images/s after the first epoch "
            f"({config.epochs} epochs of {args.images} images in {seconds:.0f} s), peak GPU memory {peak:.1f} GB, "
            f"autocast {autocast_dtype(device)}, gradient scaler {'ran' if scaler else 'off'}"
        )
        if device.type == "cuda" and torch.cuda.device_count() >= 2:
            print(f"DDP, 2 GPUs (NCCL): {ddp_run(config, folder / 'ddp'):.1f} images/s in all")


if __name__ == "__main__":
    main()
