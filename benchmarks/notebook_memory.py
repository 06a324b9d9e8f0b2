"""Notebook 03 with the `full` preset on the CPU, measured as a whole process tree (papermill, the notebook
kernel, the loader workers and their fork server): peak PSS with 0 and 4 workers, with 150 and 600 training
images (800x1280 frames in the AIHub layout), the model swapped for yolov5n and one epoch of 48 images
(the set is still decoded and cached whole, as training at scale would).

What it checks: workers do not multiply the memory (each costs its interpreter and its batches, not a copy
of the data), and more images add at most one copy each (the shared image cache, when it fits cache_gb).
The tree's PSS is sampled, and its peak varies from run to run by a few tenths of a GB (the training
step's activations); the largest process's peak RSS (the notebook kernel's) is exact (Linux keeps it),
and with 0 workers the kernel is the process that holds the data, so its growth with the images is the
sharper measure.

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
from drowsy.data.labels import load_manifest
from drowsy.data.prepare import prepare_dataset
from drowsy.files import write_json
from drowsy.paths import REPO_ROOT
from drowsy.synth.aihub_tree import write_aihub_tree

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


def full_preset_command(notebook: Path, out: Path, *options: str) -> list[str]:
    """papermill running `notebook` into `out` with the full preset and `options` after it (-f FILE, -p K V)."""
    preset = REPO_ROOT / "data" / "presets" / "full.yaml"
    command = [sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3", "-f", str(preset)]
    return [*command, *options, str(notebook), str(out)]


def peaks(command: list[str], what: str = "notebook 03") -> tuple[float, float, float]:
    """Run `command` (papermill running `what`); (peak PSS of its process tree in GB, sampled every 0.2 s;
    the largest peak RSS of one process in it in GB, exact (VmHWM; the notebook kernel's, which holds the
    model and the data); seconds)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a full pipe would stall the run
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        peak_pss = peak_rss = 0
        while process.poll() is None:
            pids = memory.tree(process.pid)
            peak_pss = max(peak_pss, sum(memory.process_pss(pid) for pid in pids))
            peak_rss = max([peak_rss] + [memory.peak_rss(pid) for pid in pids])
            time.sleep(0.2)
        if process.returncode:
            errors.seek(0)
            raise SystemExit(f"{what} failed:\n{errors.read()[-3000:]}")
    return peak_pss / 2**30, peak_rss / 2**30, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[150, 600])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4])
    args = parser.parse_args()
    print(f"{'train images':>12}{'workers':>9}{'peak tree PSS GB':>18}{'largest peak RSS GB':>21}{'seconds':>9}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n, prepared in manifests(folder, args.images).items():
            for workers in args.workers:
                overrides = dict(
                    prepared_dir=str(prepared),
                    weights_dir=str(folder / f"w_{n}_{workers}"),
                    out_dir=str(folder / f"o_{n}_{workers}"),
                    model="yolov5n",
                    device="cpu",
                    epochs=1,
                    epoch_parts=max(n // 48, 1),
                    workers=workers,
                    val_images=VAL_IMAGES,
                )
                command = full_preset_command(
                    REPO_ROOT / "notebooks" / "03_train_baseline.ipynb",
                    folder / f"03_{n}_{workers}.ipynb",
                    *[arg for key, value in overrides.items() for arg in ("-p", key, str(value))],
                )
                results[n, workers] = peaks(command)
                pss, rss, seconds = results[n, workers]
                print(f"{n:>12}{workers:>9}{pss:>18.2f}{rss:>21.2f}{seconds:>9.0f}", flush=True)
    small, large = min(args.images), max(args.images)
    for workers in args.workers:
        growth = [
            (results[large, workers][k] - results[small, workers][k]) * 2**30 / (large - small) / 2**20 for k in (0, 1)
        ]
        print(
            f"{workers} workers: {growth[0]:.2f} MB more tree PSS per training image from {small} to {large}, "
            f"{growth[1]:.2f} MB more largest peak RSS (one copy of an 800x1280 frame: {800 * 1280 / 2**20:.2f} MB)"
        )
    for n in args.images:
        extra = results[n, max(args.workers)][0] - results[n, min(args.workers)][0]
        print(f"{n} images: {max(args.workers)} workers take {extra:.2f} GB more than {min(args.workers)} (goal <= 4)")
    print(json.dumps({f"{n}x{w}": [round(v, 3) for v in result[:2]] for (n, w), result in results.items()}))


if __name__ == "__main__":
    main()
