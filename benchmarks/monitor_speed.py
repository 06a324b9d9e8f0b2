"""End-to-end speed of the driver-state monitor on the CPU: frames per second for decoding the video,
detecting, updating the state machine and writing the annotated video (`run_monitor`), per backend.

A synthetic demo clip (640x360, `drowsy.synth.clips.write_clip`) is monitored by a yolov5n detector at img 416
(rectangular letterbox, 416x256) with PyTorch bf16 autocast (1 and 2 compute threads) and with ONNX
Runtime (fp32), at a few batch sizes, and once with the ground-truth boxes (no detector: decoding +
state + annotation alone). The detector is weights/demo/finetune/best.pt when it exists, else a
randomly initialised yolov5n in the checkpoint layout of drowsy/models/checkpoint.py: speed does not depend
on training (NMS sees few boxes either way). The load average is printed before and after: other
processes on the CPU lower every number, PyTorch with 2 threads most of all.

    python benchmarks/monitor_speed.py [--seconds 30] [--img 416] [--batches 1 4 8]
"""

import argparse
import os
import tempfile
from pathlib import Path

import torch

from drowsy import CLASSES
from drowsy.config import MonitorConfig, MonitorRun
from drowsy.models.checkpoint import save_checkpoint
from drowsy.models.yolo import build_model
from drowsy.monitor.detect import build_detector
from drowsy.monitor.runner import run_monitor
from drowsy.paths import resolve
from drowsy.synth.clips.write import write_clip

DEMO_WEIGHTS = "weights/demo/finetune/best.pt"
MODEL = "yolov5n"


def detector_weights(folder: Path, img_size: int) -> Path:
    """The demo's fine-tuned weights, or a random yolov5n checkpoint written to `folder`."""
    if resolve(DEMO_WEIGHTS).is_file():
        return resolve(DEMO_WEIGHTS)
    torch.manual_seed(0)
    model = build_model(MODEL, num_classes=len(CLASSES), in_channels=1)
    path = folder / f"{MODEL}-random.pt"
    save_checkpoint(
        {
            "ema": model.state_dict(),
            "model_config": MODEL,
            "num_classes": len(CLASSES),
            "in_channels": 1,
            "class_names": list(CLASSES),
            "config": {"img_size": img_size},
        },
        path,
    )
    return path


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length, seconds at 15 fps (default 30)")
    parser.add_argument("--img", type=int, default=416, help="detector input size, pixels (default 416, the monitor's)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8], help="frames per detector call")
    args = parser.parse_args()
    config = MonitorConfig.from_yaml("data/monitor.yaml")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip = write_clip(folder / "clip", args.seconds, 15, seed=0, progress=False)
        weights = detector_weights(folder, args.img)
        print(
            f"{int(args.seconds * 15)} frames 640x360 at 15 fps; detector {weights.name} at img {args.img}; "
            f"torch {torch.__version__}, {os.cpu_count()} CPUs; load average before: {load_average()}"
        )
        print(f"{'backend':<28}{'threads':>8}{'batch':>6}{'frames/s':>10}")
        truth = run_monitor(
            MonitorRun(clip, folder / "out", truth_frames=clip.parent / "frames.json", progress=False), config=config
        )
        print(f"{'ground truth (no detector)':<28}{'-':>8}{'-':>6}{truth['fps_achieved']:>10.1f}")
        runs = [("torch", 1), ("torch", 2), ("onnx", None)]  # ONNX Runtime picks its own threads
        for backend, threads in runs:
            detector = build_detector(weights, backend, args.img, export_dir=folder)
            for batch in args.batches:
                run = MonitorRun(clip, folder / "out", img_size=args.img, batch=batch, threads=threads, progress=False)
                summary = run_monitor(run, detector, config)
                print(f"{summary['backend']:<28}{threads or 'auto':>8}{batch:>6}{summary['fps_achieved']:>10.1f}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
