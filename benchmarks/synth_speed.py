"""How fast `drowsy.synth` makes images on one CPU core, JPEG encoding included.

    python benchmarks/synth_speed.py [--images 500] [--size 640x360]

Pins the process to one core and OpenCV to one thread, renders `--images` scenes (seeded as
`write_dataset` seeds them) and encodes each to JPEG in memory, then prints images/s for
rendering alone and for rendering + encoding. Target: >= 200 images/s at 640x360.
Rates are per second of this process's CPU time, which other busy processes on a shared
machine do not inflate the way they inflate wall time; the wall-time rate is printed too.
"""

import argparse
import os
import time

import cv2
import numpy as np

from drowsy.synth.competition import JPEG_QUALITY
from drowsy.synth.demo_data import parse_size
from drowsy.synth.render import render_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, height = parse_size(args.size)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    render_scene(np.random.default_rng(0), width, height)  # warm-up: imports, caches

    render_s = encode_s = 0.0
    wall_start = time.perf_counter()
    for index in range(args.images):
        start = time.process_time()
        image, _ = render_scene(np.random.default_rng([args.seed, index]), width, height)
        rendered = time.process_time()
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        encode_s += time.process_time() - rendered
        render_s += rendered - start
    wall_s = time.perf_counter() - wall_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.images} images at {width}x{height}, one core (load average {load:.1f}):")
    print(f"  render only    {args.images / render_s:7.1f} images/s (CPU time)")
    print(f"  render + JPEG  {args.images / (render_s + encode_s):7.1f} images/s (CPU time)")
    print(f"  render + JPEG  {args.images / wall_s:7.1f} images/s (wall time)")


if __name__ == "__main__":
    main()
