"""Notebook 03 with the `full` preset on the CPU, measured as a whole process tree (papermill, the notebook
kernel, the loader workers and their fork server): peak PSS with 0 and 4 workers, with 150 and 600 training
images (800x1280 frames in the AIHub layout), the model swapped for yolov5n and one epoch of 48 images
(the set is still decoded and cached whole, as training at scale would).

What it checks: workers do not multiply the memory (each costs its interpreter and its batches, not a copy
of the data), and more images add at most one copy each (the shared image cache, when it fits cache_gb).

    python benchmarks/notebook_memory.py [--images 150 600] [--workers 0 4]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drowsy import memory
from drowsy.files import write_json
from drowsy.labels import load_manifest
from drowsy.paths import REPO_ROOT
from drowsy.prepare import prepare_dataset
from drowsy.synth import write_aihub_tree

VAL_IMAGES = 32


def manifests(folder: Path, images: list[int]) -> dict[int, Path]:
    """A prepared folder per training-set size: diet.json = the first n train frames, val.json 32 frames."""
    write_aihub_tree(folder / "raw", max(images) + 4 * VAL_IMAGES, size=(800, 1280), progress=False)
    prepare_dataset(folder / "raw", folder / "all", val_size=VAL_IMAGES, group_by="subject", progress=False)
    train, val = (load_manifest(folder / "all" / f"{split}.json") for split in ("train", "val"))
    prepared = {}
    for n in images:
        prepared[n] = folder / f"prepared_{n}"
        for split, records in (("diet", train.records[:n]), ("val", val.records)):
            write_json(prepared[n] / f"{split}.json", {"image_root": str(train.image_root), "annotations": records})
    return prepared


def peak_tree_pss(command: list[str]) -> tuple[float, float]:
    """Run `command`; (peak PSS of its process tree in GB, sampled every 0.2 s; seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, memory.tree_pss(process.pid))
        time.sleep(0.2)
    if process.returncode:
        raise SystemExit(f"notebook 03 failed:\n{process.stderr.read()[-3000:]}")
    return peak / 2**30, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[150, 600])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4])
    args = parser.parse_args()
    print(f"{'train images':>12}{'workers':>9}{'peak tree PSS GB':>18}{'seconds':>9}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n, prepared in manifests(folder, args.images).items():
            for workers in args.workers:
                overrides = dict(prepared_dir=str(prepared), weights_dir=str(folder / f"w_{n}_{workers}"),
                                 out_dir=str(folder / f"o_{n}_{workers}"), model="yolov5n", device="cpu", epochs=1,
                                 epoch_parts=max(n // 48, 1), workers=workers, val_images=VAL_IMAGES)
                command = [sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3",
                           "-f", str(REPO_ROOT / "data" / "presets" / "full.yaml"),
                           *[arg for key, value in overrides.items() for arg in ("-p", key, str(value))],
                           str(REPO_ROOT / "notebooks" / "03_train_baseline.ipynb"), str(folder / f"03_{n}_{workers}.ipynb")]
                results[n, workers] = peak_tree_pss(command)
                print(f"{n:>12}{workers:>9}{results[n, workers][0]:>18.2f}{results[n, workers][1]:>9.0f}", flush=True)
    small, large = min(args.images), max(args.images)
    for workers in args.workers:
        per_image = (results[large, workers][0] - results[small, workers][0]) * 2**30 / (large - small) / 2**20
        print(f"{workers} workers: {per_image:.2f} MB more per training image from {small} to {large} (one copy of an "
              f"800x1280 frame: {800 * 1280 / 2**20:.2f} MB)")
    for n in args.images:
        extra = results[n, max(args.workers)][0] - results[n, min(args.workers)][0]
        print(f"{n} images: {max(args.workers)} workers take {extra:.2f} GB more than {min(args.workers)} (goal <= 4)")
    print(json.dumps({f"{n}x{w}": round(v[0], 3) for (n, w), v in results.items()}))


if __name__ == "__main__":
    main()
