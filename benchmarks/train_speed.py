"""Training throughput on the CPU: drowsy's training step against the mainstream peer (ultralytics).

    python benchmarks/train_speed.py [--quick] [--sizes 256 320 640] [--scales n s] [--threads N] [--profile]

One run, one process, the same synthetic images for every model (drowsy.synth scenes, 640x360,
mosaic + affine augmented by DetectionDataset, a few batches kept in RAM so the loader is not timed).
A step is what the trainers do per batch: uint8 -> float, forward, loss, backward, and every
nominal_batch / batch steps gradient clipping, the SGD (Nesterov) step and the EMA update.

- drowsy: build_model(yolov5<scale>, 7 classes, 1 channel) + YoloLoss, with the engine's settings
  (seed_everything, bf16 autocast on the CPU, channels_last, the fused BatchNorm+SiLU kernel), and
  rows for reference: PyTorch's BatchNorm and SiLU ops instead of the fused kernel, fp32, NCHW.
- ultralytics (optional `pip install -e .[bench]`, never imported by the package): DetectionModel
  from 'yolov5<scale>u.yaml' (its YOLOv5 backbone and neck with its anchor-free Detect head), from
  scratch, its own loss (v8DetectionLoss via model.loss) and its own ModelEMA, fp32 NCHW as its
  trainer runs on the CPU (it autocasts only on CUDA), 3-channel input as its loader always reads
  images (BGR, also for grayscale data). It runs in a spawned process of its own: drowsy's engine
  tunes its process's C allocator (drowsy.device.reuse_freed_memory), the peer keeps the defaults.

The models are timed in alternating rounds, so a change in machine load hits all of them alike;
the median step gives images/s. Achieved GFLOP/s (forward FLOPs x 3 for forward + backward) is
compared with 2048x2048 bf16 and fp32 matmuls timed in the same run. Then a scaling table of
drowsy's throughput over image sizes and scales, next to the training loader's own images/s
(demo preset's worker count, RAM cache, mosaic + affine), the peak RSS of a real `drowsy train` run
with the demo preset's settings (its own process), and this process's peak RSS.
Target (issue): drowsy >= 3x the peer's images/s at the demo settings (img 320, batch 16).

Time on a quiet machine (1-minute load average well below the core count): threads of one parallel
region wait for each other, so another busy process slows multi-threaded steps several-fold. With
--threads 1 the CPU ms column (process CPU time) stays close to the step time even on a busy machine."""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from training_steps import PeerProcess, Trainer, accumulation_steps, drowsy_trainer, profile_step, time_in_rounds

from drowsy.config import load_yaml
from drowsy.data.dataset import DetectionDataset, EpochPartsSampler, build_loader
from drowsy.data.labels import read_labels
from drowsy.paths import DATA_DIR, REPO_ROOT
from drowsy.synth.competition import write_dataset

SYNTH_SIZE = (640, 360)  # (width, height) of the synthetic JPEGs, as the demo preset makes them
BATCHES_IN_RAM = 4  # distinct augmented batches cycled through by the timed steps
MATMUL_SIDE = 2048


def load_average() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def synthetic_records(folder: Path, images: int, seed: int) -> list[dict]:
    """drowsy.synth scenes written to folder/images; manifest-style records (with width and height)."""
    labels = write_dataset(folder, images, seed=seed, size=SYNTH_SIZE, progress=False)
    width, height = SYNTH_SIZE
    return [{**record, "width": width, "height": height} for record in read_labels(labels)]


def augmented_dataset(folder: Path, records: list[dict], img_size: int, hyp: dict, seed: int) -> DetectionDataset:
    dataset = DetectionDataset(folder / "images", records, img_size, hyp=hyp, augment=True, seed=seed)
    dataset.cache_images(progress=False)
    return dataset


def training_batches(dataset: DetectionDataset, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """BATCHES_IN_RAM augmented batches: (images uint8 [B, 1, S, S], targets float32 [M, 6] =
    (batch_index, class_id, cx, cy, w, h) pixels)."""
    loader = build_loader(dataset, batch, workers=0, sampler=EpochPartsSampler(len(dataset)))
    batches = []
    for images, targets, _ in loader:
        batches.append((images, targets))
        if len(batches) == BATCHES_IN_RAM:
            return batches
    raise ValueError(f"need {BATCHES_IN_RAM * batch} images for {BATCHES_IN_RAM} batches, have {len(dataset)}")


def loader_images_per_second(dataset: DetectionDataset, batch: int, workers: int) -> float:
    """One timed pass over the dataset after a warm-up pass (which also starts the persistent workers)."""
    sampler = EpochPartsSampler(len(dataset))
    loader = build_loader(dataset, batch, workers, sampler=sampler)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        start = time.perf_counter()
        count = sum(len(images) for images, _, _ in loader)
        seconds = time.perf_counter() - start
    return count / seconds


def matmul_gflops(dtype: torch.dtype, seconds: float = 2.0) -> float:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_SIDE, MATMUL_SIDE, generator=generator).to(dtype)
    b = torch.randn(MATMUL_SIDE, MATMUL_SIDE, generator=generator).to(dtype)
    for _ in range(2):
        a @ b
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return 2 * MATMUL_SIDE**3 * calls / (time.perf_counter() - start) / 1e9


def print_comparison(trainers: list[Trainer], batch: int) -> None:
    print(f"\n{'model':<58}{'GFLOPs/img':>11}{'step ms':>9}{'spread':>12}{'images/s':>10}{'GFLOP/s':>9}{'CPU ms':>8}")
    for t in trainers:
        ms = sorted(1000 * s for s in t.seconds)
        speed = t.images_per_second()
        spread = f"{ms[len(ms) // 10]:.0f}-{ms[-1 - len(ms) // 10]:.0f}"
        print(
            f"{t.name:<58}{t.gflops_per_image:>11.2f}{statistics.median(ms):>9.0f}{spread:>12}{speed:>10.1f}"
            f"{3 * t.gflops_per_image * speed:>9.1f}{1000 * statistics.median(t.cpu_seconds):>8.0f}"
        )
    print(
        f"(median of {len(trainers[0].seconds)} timed steps of batch {batch}; spread: 10th-90th percentile ms; "
        "GFLOP/s = 3 x forward GFLOPs x images/s; CPU ms: process CPU time per step, all threads, which\n"
        "other processes do not inflate: with 1 thread a load-robust cross-check of step ms)"
    )
    print(
        "\ntime per step by phase, ms (mean over the timed steps; optimizer + EMA run every "
        f"{accumulation_steps(batch)} steps, shown per step):"
    )
    phase_names = list(trainers[0].phases)
    print(f"{'model':<58}" + "".join(f"{p:>17}" for p in phase_names))
    for t in trainers:
        print(f"{t.name:<58}" + "".join(f"{1000 * t.phases.get(p, 0.0) / len(t.seconds):>17.0f}" for p in phase_names))


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports KB). Children are not reported: a
    spawned or forked child inherits its parent's peak as its own starting figure."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compare_at_demo_settings(batches: list, hyp: dict, args, warmup: int, steps: int, rounds: int) -> None:
    """drowsy (engine settings, fp32 references) against the peer."""
    trainers = [
        drowsy_trainer("n", batches, hyp, amp=True, channels_last=True, seed=args.seed),
        drowsy_trainer("n", batches, hyp, amp=True, channels_last=True, seed=args.seed, fused_kernel=False),
        drowsy_trainer("n", batches, hyp, amp=False, channels_last=True, seed=args.seed),
        drowsy_trainer("n", batches, hyp, amp=False, channels_last=False, seed=args.seed),
    ]
    peer = PeerProcess("n", batches, hyp, args.peer_channels, args.seed)
    peer = peer if peer.ready else None
    trainers += [peer] if peer else []
    print(
        f"\ncomparison at img {args.img}, batch {args.batch}: {warmup} warm-up steps, then {rounds} round(s) "
        f"of {steps} steps per model, alternating; the peer in fp32 NCHW as its trainer runs on the CPU"
    )
    time_in_rounds(trainers, warmup, steps, rounds)
    print_comparison(trainers, args.batch)
    peak_bf16, peak_fp32 = matmul_gflops(torch.bfloat16), matmul_gflops(torch.float32)
    engine = trainers[0]
    achieved = 3 * engine.gflops_per_image * engine.images_per_second()
    print(
        f"\n{MATMUL_SIDE}x{MATMUL_SIDE} matmul: bf16 {peak_bf16:.0f} GFLOP/s, fp32 {peak_fp32:.0f} GFLOP/s; "
        f"drowsy (engine settings) reaches {achieved:.1f} GFLOP/s = {100 * achieved / peak_bf16:.0f}% of the "
        f"bf16 matmul, {100 * achieved / peak_fp32:.0f}% of the fp32 one"
    )
    if peer:
        flop_ratio = peer.gflops_per_image / engine.gflops_per_image
        for drowsy in trainers[:3]:
            ratio = drowsy.images_per_second() / peer.images_per_second()
            shown = math.floor(ratio * 100) / 100  # rounded down: 2.996 must not print as a 3.00 that misses
            print(
                f"{drowsy.name} / ultralytics: {shown:.2f}x images/s ({'meets' if ratio >= 3 else 'misses'} the "
                f"3x target); {ratio * flop_ratio:.2f}x per forward FLOP (the peer's model: {flop_ratio:.2f}x FLOPs)"
            )
    print(f"load average {load_average()}; peak RSS so far {peak_rss_mb():.0f} MB")
    if args.profile:
        profile_step(engine, accumulation_steps(args.batch), rows=25)
        if peer:
            peer.profile(accumulation_steps(args.batch), rows=25)
    if peer:
        peer.close()


def scaling_table(datasets: dict, batches: dict, hyp: dict, args, workers: int, steps: int) -> None:
    """drowsy's images/s over image sizes and scales, beside the loader's images/s at each size."""
    print(
        f"\nscaling (drowsy, engine settings: bf16 autocast + channels_last, batch {args.batch}, {steps} timed "
        f"steps) and the loader alone (mosaic + affine, RAM cache, {workers} worker(s) as data/presets/demo.yaml):"
    )
    print(f"{'img':>5}{'model':>9}{'GFLOPs/img':>12}{'train images/s':>16}{'GFLOP/s':>9}{'loader images/s':>17}")
    cv2.setNumThreads(1)  # as in the loader workers; the main process only collates
    for size in args.sizes:
        loader_speed = loader_images_per_second(datasets[size], args.batch, workers)
        for scale in args.scales:
            trainer = drowsy_trainer(scale, batches[size], hyp, amp=True, channels_last=True, seed=args.seed)
            time_in_rounds([trainer], warmup=2, steps=steps, rounds=1)
            speed = trainer.images_per_second()
            print(
                f"{size:>5}{'yolov5' + scale:>9}{trainer.gflops_per_image:>12.2f}{speed:>16.1f}"
                f"{3 * trainer.gflops_per_image * speed:>9.1f}{loader_speed:>17.0f}",
                flush=True,
            )


# Runs `drowsy train` and reports its process's peak RSS (its loader workers run in their own processes).
# VmHWM is the peak of this process image alone; ru_maxrss would carry the parent's peak over the exec.
_RSS_WRAPPER = """
import re, resource, sys
from drowsy.cli import main
try:
    code = main(sys.argv[1:])
finally:
    try:
        with open("/proc/self/status") as status:
            peak_kb = int(re.search(r"VmHWM:\\s*(\\d+) kB", status.read()).group(1))
    except OSError:  # not Linux: the inherited figure is the best there is
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("peak_rss_mb", peak_kb / 1024)
sys.exit(code)
"""


def peer_environment(folder: Path) -> None:
    """What the peer reads when imported (also in processes spawned later): no network, its settings
    file in `folder` instead of the home folder, no per-step printing."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder / "ultralytics"))
    os.environ.setdefault("YOLO_VERBOSE", "False")


def write_manifest(path: Path, image_root: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps({"image_root": str(image_root), "annotations": records}))
    return path


def demo_train_arguments(
    train_manifest: Path, val_manifest: Path, out_dir: Path, epochs: int, seed: int = 0
) -> list[str]:
    """`drowsy train` arguments with the demo preset's training settings (model, size, batch, nominal
    batch, hyp, workers, RAM cache), `epochs` full epochs and one validation at the end."""
    preset = load_yaml(REPO_ROOT / "data/presets/demo.yaml")
    return [
        "train",
        "--train-manifest",
        str(train_manifest),
        "--val-manifest",
        str(val_manifest),
        "--run-dir",
        str(out_dir),
        "--model",
        preset["model"],
        "--img-size",
        str(preset["img_size"]),
        "--batch",
        str(preset["batch"]),
        "--nominal-batch",
        str(preset["nominal_batch"]),
        "--hyp",
        str(REPO_ROOT / preset["hyp"]),
        "--workers",
        str(preset["workers"]),
        "--epochs",
        str(epochs),
        "--epoch-parts",
        "1",
        "--val-every",
        str(epochs),
        "--device",
        "cpu",
        "--seed",
        str(seed),
        "--quiet",
    ]


def demo_training_rss(folder: Path, records: list[dict], epochs: int) -> None:
    """Peak RSS of a real demo training run: `drowsy train` in its own process with the demo preset's
    training settings (model, size, batch, hyp, workers, RAM cache, validation) on the synthetic images."""
    preset = load_yaml(REPO_ROOT / "data/presets/demo.yaml")
    manifest = write_manifest(folder / "manifest.json", folder / "images", records)
    command = [
        sys.executable,
        "-c",
        _RSS_WRAPPER,
        *demo_train_arguments(manifest, manifest, folder / "rss_run", epochs),
    ]
    start = time.perf_counter()
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    own = float(output.rsplit("peak_rss_mb", 1)[1])
    # the RAM cache holds each image at img_size on its long side, one byte per pixel
    width, height = SYNTH_SIZE
    per_image_mb = preset["img_size"] * round(height * preset["img_size"] / width) / 2**20
    print(
        f"\ndemo training run (drowsy train, demo preset settings, {len(records)} images cached, {epochs} epoch(s) "
        f"+ validation, {time.perf_counter() - start:.0f} s): peak RSS {own:.0f} MB; "
        f"the cache adds {per_image_mb * 1024:.0f} KB per image "
        f"(+{per_image_mb * 2700:.0f} MB for the demo's 2,700 training images)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (a smoke run, noisy)")
    parser.add_argument("--img", type=int, default=320, help="comparison image size, px (demo: 320)")
    parser.add_argument("--batch", type=int, default=16, help="images per step (demo: 16)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 640], help="scaling-table image sizes")
    parser.add_argument("--scales", nargs="+", default=["n", "s"], help="scaling-table model scales")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--images", type=int, default=200, help="synthetic 640x360 images to write")
    parser.add_argument(
        "--peer-channels",
        type=int,
        default=3,
        choices=[1, 3],
        help="input channels of the peer's model (3: what its loader feeds)",
    )
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables of both steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warmup, steps, rounds, table_steps = (2, 4, 1, 4) if args.quick else (4, 4, 4, 8)

    torch.set_num_threads(args.threads)
    workers = int(load_yaml(REPO_ROOT / "data/presets/demo.yaml")["workers"])
    hyp = load_yaml(DATA_DIR / "hyp.scratch-p6.yaml")
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, load average {load_average()} (1/5/15 min)"
    )
    if os.getloadavg()[0] > os.cpu_count():
        # threads of one parallel region wait for each other: a descheduled one stalls the step
        print("warning: the machine is busy (load above the core count); multi-threaded timings will be far off")

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        peer_environment(folder)
        records = synthetic_records(folder, args.images, args.seed)
        datasets = {
            size: augmented_dataset(folder, records, size, hyp, args.seed) for size in sorted({args.img, *args.sizes})
        }
        batches = {size: training_batches(dataset, args.batch) for size, dataset in datasets.items()}
        compare_at_demo_settings(batches[args.img], hyp, args, warmup, steps, rounds)
        scaling_table(datasets, batches, hyp, args, workers, table_steps)
        demo_training_rss(folder, records, epochs=1 if args.quick else 2)
    print(f"\npeak RSS of this process {peak_rss_mb():.0f} MB; load average {load_average()}")


if __name__ == "__main__":
    main()
