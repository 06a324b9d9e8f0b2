"""How many images per second the training data loader delivers.

Writes synthetic grayscale 640x360 JPEGs (rectangles on a gradient, like a cabin shot's contrast)
to a temporary folder, then iterates DetectionDataset through build_loader with the scratch
recipe's augmentation (mosaic + random affine + brightness + flip) for every combination of image
size, worker count and RAM cache, and prints one line per combination. The first pass over the
data warms up the workers; the second is timed.

    python benchmarks/loader_speed.py
    python benchmarks/loader_speed.py --sizes 1280 --workers 4 8 --modes train
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from drowsy import CLASSES
from drowsy.config import load_yaml
from drowsy.data.dataset import DetectionDataset, EpochPartsSampler, build_loader
from drowsy.paths import DATA_DIR


def write_synthetic_images(folder: Path, count: int, rng: np.random.Generator) -> list[dict]:
    """`count` gray 640x360 JPEGs with 2-5 filled rectangles each; returns manifest records."""
    width, height = 640, 360
    gradient = np.linspace(30, 160, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    records = []
    for i in range(count):
        image = (gradient + rng.normal(0, 8, gradient.shape)).clip(0, 255).astype(np.uint8)
        objects = []
        for _ in range(int(rng.integers(2, 6))):
            w, h = (int(v) for v in rng.integers(20, 200, size=2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            cv2.rectangle(image, (x, y), (x + w, y + h), int(rng.integers(0, 256)), thickness=-1)
            name = CLASSES[int(rng.integers(len(CLASSES)))]
            objects.append({"class": name, "position": [x, y, x + w, y + h]})
        file_name = f"synthetic_{i:04d}.jpg"
        cv2.imwrite(str(folder / file_name), image)
        records.append({"file_name": file_name, "width": width, "height": height, "objects": objects})
    return records


def measure(dataset: DetectionDataset, batch_size: int, workers: int) -> tuple[float, float]:
    """Returns (images per second, main-process CPU milliseconds per image) of one pass.

    The CPU time is the whole cost per image when workers is 0, and does not depend on how busy the
    machine is; with workers it is only the main process's share.
    """
    sampler = EpochPartsSampler(len(dataset))
    loader = build_loader(dataset, batch_size, workers, sampler=sampler)
    for epoch in range(2):  # epoch 0 starts the persistent workers; epoch 1 is timed
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        start, start_cpu = time.perf_counter(), time.process_time()
        count = sum(len(images) for images, _, _ in loader)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    return count / seconds, 1000 * cpu_seconds / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="synthetic images to write")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640], help="network image sizes, px")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["train", "val"],
        choices=["train", "val"],
        help="train: scratch-recipe augmentation; val: letterbox only",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--main-threads",
        type=int,
        default=1,
        help="torch and cv2 threads of the main process, which decodes when workers is 0 "
        "and always collates; loader workers use 1 (0 here: library defaults)",
    )
    args = parser.parse_args()

    if args.main_threads:
        # On a busy machine the default thread pools spin against each other: torch.stack of one
        # batch took 5 ms per image instead of 0.1 ms on 2 shared cores.
        torch.set_num_threads(args.main_threads)
        cv2.setNumThreads(args.main_threads)

    hyp = load_yaml(DATA_DIR / "hyp.scratch-p6.yaml")
    print(
        f"{os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), cv2 {cv2.__version__}, {args.images} images "
        f"640x360, batch {args.batch_size}, main-process threads {args.main_threads or 'default'}"
    )
    print(f"{'mode':<6}{'img_size':>9}{'cache':>7}{'MB':>7}{'workers':>9}{'images/s':>10}{'main CPU ms/img':>17}")
    with tempfile.TemporaryDirectory() as folder:
        records = write_synthetic_images(Path(folder), args.images, np.random.default_rng(args.seed))
        for mode in args.modes:
            for size in args.sizes:
                for cache in (False, True):
                    dataset = DetectionDataset(Path(folder), records, size, hyp, augment=mode == "train")
                    megabytes = dataset.cache_images(progress=False) if cache else 0.0
                    for workers in args.workers:
                        speed, cpu_ms = measure(dataset, args.batch_size, workers)
                        cached = "yes" if cache else "no"
                        row = f"{mode:<6}{size:>9}{cached:>7}{megabytes:>7.1f}{workers:>9}{speed:>10.0f}"
                        print(f"{row}{cpu_ms:>17.2f}", flush=True)


if __name__ == "__main__":
    main()
