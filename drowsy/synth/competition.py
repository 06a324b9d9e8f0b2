"""A synthetic dataset on disk, in the competition layout: OUT/images/*.jpg and labels.json."""

import dataclasses
import functools
from pathlib import Path

import cv2
import numpy as np

from drowsy.files import write_json
from drowsy.parallel import map_chunks
from drowsy.synth.render import render_scene
from drowsy.synth.scene import accessories, sample_scene

JPEG_QUALITY = 90
_CHUNK = 64  # images per task handed to a worker process


def run_chunks(write, args: tuple, total: int, workers: int, progress: bool) -> list:
    """`write(*args, start, stop)` for chunks of `_CHUNK` indices in 0..total-1, in `workers` processes
    (`drowsy.parallel.map_chunks`); the chunks' lists joined in index order."""
    tasks = [(start, min(start + _CHUNK, total)) for start in range(0, total, _CHUNK)]
    return map_chunks(functools.partial(write, *args), tasks, total, workers, progress, desc="synth")


def encode_jpeg(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(encoded.tobytes())


def image_name(index: int) -> str:
    return f"image_{index:08d}.jpg"


def _write_images(out_dir: Path, seed: int, size: tuple[int, int], held_out: bool, start: int, stop: int) -> list[dict]:
    """Render and write images start..stop-1; image i depends only on (seed, i) (its glasses and cap on a
    stream of their own, so the rest of the scene does not depend on them)."""
    records = []
    for index in range(start, stop):
        rng = np.random.default_rng([seed, index])
        worn = accessories(np.random.default_rng([seed, index, 1 << 23]))
        image, objects = render_scene(rng, *size, dataclasses.replace(sample_scene(rng, *size, held_out), **worn))
        name = image_name(index)
        encode_jpeg(out_dir / name, image)
        records.append({"file_name": name, "objects": objects})
    return records


def write_dataset(
    out_dir,
    images: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 360),
    labels_path=None,
    workers: int = 1,
    progress: bool = True,
    held_out: bool = False,
) -> Path:
    """Write `images` scenes to OUT/images/image_XXXXXXXX.jpg and their labels; return the labels path.

    size: (width, height) in pixels. labels_path: where labels.json goes (default OUT/labels.json;
    elsewhere for a test set whose labels are kept apart). held_out: scenes of the held-out family
    (`drowsy.synth.scene.sample_scene`). The output is the same for any `workers`.
    """
    if images < 0 or workers < 1:
        raise ValueError(f"images must be >= 0 and workers >= 1, got {images} and {workers}")
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    labels_path = Path(labels_path) if labels_path is not None else out_dir / "labels.json"
    records = run_chunks(_write_images, (image_dir, seed, tuple(size), held_out), images, workers, progress)
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(labels_path, {"annotations": records}, indent=None)
    return labels_path
