"""The embedded default data on first use: the synthetic training set (and a test set and a held-out
family set whose labels are kept apart) written into the folders the demo preset names, unless real
data is already there."""

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from drowsy.errors import DrowsyError
from drowsy.files import IMAGE_SUFFIXES
from drowsy.paths import resolve
from drowsy.progress import log

LAYOUTS = ("competition", "aihub")
_SIZE_PATTERN = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(size: str | Sequence[int], field: str = "synth_size", minimum: int = 1) -> tuple[int, int]:
    """'640x360' -> (640, 360): image width and height in pixels, each at least `minimum`. A pair passes
    through. A bad size ends in one line naming `field` (the parameter or option it came from)."""
    if not isinstance(size, str) and len(size) == 2:
        width, height = (int(v) for v in size)
    else:
        match = _SIZE_PATTERN.fullmatch(size) if isinstance(size, str) else None
        width, height = (int(v) for v in match.groups()) if match else (0, 0)
    if min(width, height) < max(minimum, 1):
        raise DrowsyError(
            f"{field}: expected WIDTHxHEIGHT in pixels like '640x360', each >= {max(minimum, 1)}, got {size!r}"
        )
    return width, height


def ensure_dataset(
    raw_dir: str | Path,
    synth_images: int,
    seed: int = 0,
    size: str | Sequence[int] = "640x360",
    test_dir: str | Path | None = None,
    test_labels: str | Path | None = None,
    synth_test_images: int = 0,
    workers: int | None = None,
    progress: bool = True,
    layout: str = "competition",
    held_out_dir: str | Path | None = None,
    held_out_labels: str | Path | None = None,
    synth_held_out_images: int = 0,
) -> Path:
    """Return `raw_dir`, first synthesising the embedded demo data set there when it holds no data.

    With `raw_dir/labels.json` present (the competition's task03_train, or an earlier run) or an AIHub
    tree in `raw_dir`, nothing is written. Else `synth_images` images of `size` ('640x360') are
    synthesised from `seed`, in `layout` "competition" (images/ + labels.json) or "aihub" (the public
    AIHub tree: subjects, recordings, one label JSON per image). The test set is synthesised from
    `seed + 1` (other images than the training set) into `test_dir/images`, its labels written apart to
    `test_labels`, when `synth_test_images` > 0 and `test_dir/images` does not exist; likewise
    `synth_held_out_images` images of the held-out family (poses of phones and cigarettes that the
    training and test sets never draw: `drowsy.synth.scene.HELD_OUT_POSE`) from `seed + 2` into
    `held_out_dir`, labels to `held_out_labels`. A folder that
    holds images but no labels is never written into, so a real data set can not be mixed with
    synthetic images. When `raw_dir` already holds data and `synth_images` > 0 asks for another number
    of images than it holds (a set synthesised by an earlier preset, or real data), one warning line says
    that `synth_images` is not used. `workers` processes render (default: one per CPU; the images are the
    same for any number).
    """
    from drowsy.data.aihub import is_aihub_tree

    if layout not in LAYOUTS:
        raise DrowsyError(f"synth_format: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    raw_dir = resolve(raw_dir)
    size = parse_size(size)
    workers = workers or os.cpu_count() or 1
    labels_path = raw_dir / "labels.json"
    if not labels_path.exists() and not (raw_dir.is_dir() and is_aihub_tree(raw_dir)):
        if synth_images <= 0:
            raise DrowsyError(
                f"{raw_dir}: no labels.json and no AIHub tree: point raw_dir at your data or set synth_images > 0"
            )
        _refuse_folder_with_images(raw_dir / "images", labels_path)
        if layout == "aihub":
            from drowsy.synth.aihub_tree import write_aihub_tree

            write_aihub_tree(raw_dir, synth_images, seed, size, workers=workers, progress=progress)
        else:
            _write_synthetic(raw_dir, synth_images, seed, size, None, workers, progress)
    elif synth_images > 0 and (held := _count_images(raw_dir)) != synth_images:
        log(
            f"warning: {raw_dir} already holds {held:,} images, so synth_images = {synth_images:,} is not used: "
            "delete the folder to synthesise the set asked for, or set synth_images: 0 for your own data",
            file=sys.stderr,
        )
    for name, folder, labels, images, offset, held_out in (
        ("test", test_dir, test_labels, synth_test_images, 1, False),
        ("held_out", held_out_dir, held_out_labels, synth_held_out_images, 2, True),
    ):
        if folder and images > 0 and not (resolve(folder) / "images").exists():
            if not labels:
                raise DrowsyError(f"{name}_labels: empty; a synthetic {name} set needs a path for its labels (apart)")
            _write_synthetic(resolve(folder), images, seed + offset, size, resolve(labels), workers, progress, held_out)
    return raw_dir


def _count_images(folder: Path) -> int:
    """Image files anywhere under `folder` (both layouts keep one file per image)."""
    return sum(os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES for _, _, names in os.walk(folder) for name in names)


def _refuse_folder_with_images(images_dir: Path, labels_path: Path) -> None:
    if images_dir.is_dir() and any(images_dir.iterdir()):
        raise DrowsyError(
            f"{labels_path} not found but {images_dir} holds images: point raw_dir at a folder with "
            "labels.json, or at a new or empty one to synthesise the demo data (delete a half-synthesised one)"
        )


def _write_synthetic(out_dir, images, seed, size, labels_path, workers, progress, held_out=False) -> None:
    from drowsy.synth.competition import write_dataset  # only needed when there is no data yet

    write_dataset(out_dir, images, seed, size, labels_path, workers, progress, held_out)
