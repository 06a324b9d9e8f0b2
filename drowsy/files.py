"""Reading and writing the project's files: JSON (read with one-line errors, written atomically),
grayscale images, and folders of images. Every module that touches a file goes through here."""

import contextlib
import errno
import gc
import json
import os
from pathlib import Path

import cv2
import numpy as np

from drowsy.errors import DrowsyError
from drowsy.paths import resolve

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector. Parsing a large labels file creates millions of dicts
    and lists, none in a cycle; the collections they trigger would triple the parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_json(path: str | Path):
    """Parse a JSON file; unreadable or invalid JSON ends in one line naming the file."""
    path = Path(path)
    try:
        with gc_paused():
            return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DrowsyError(f"{path}: not valid JSON ({err})") from None
    except OSError as err:
        raise DrowsyError(f"{path}: cannot read ({err.strerror})") from None


def write_text_atomically(path: str | Path, text_parts) -> Path:
    """Write text (an iterable of strings) to `path` via a temporary file, so a reader never sees
    half a file; creates the parent folder. Returns the path."""
    path = resolve(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as file:
        file.writelines(text_parts)
    os.replace(partial, path)
    return path


def write_json(path: str | Path, value, indent: int | None = 1) -> Path:
    """Write `value` as UTF-8 JSON (non-ASCII kept as is), atomically. Returns the path."""
    return write_text_atomically(path, [json.dumps(value, indent=indent, ensure_ascii=False), "\n"])


def read_gray(path: str | Path) -> np.ndarray:
    """Decode an image file as uint8 [H, W] grayscale, as stored (an EXIF orientation tag is ignored).

    np.fromfile + cv2.imdecode rather than cv2.imread, which cannot open non-ASCII paths on Windows.
    Raises DrowsyError naming the file when it is missing or not a decodable image.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as err:
        raise DrowsyError(f"{path}: cannot read image ({err.strerror or err})") from None
    try:
        # as stored, like the header reader (drowsy.data.labels): OpenCV would apply an EXIF rotation
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    except cv2.error:
        image = None
    if image is None:
        raise DrowsyError(f"{path}: not a decodable image")
    return image


def list_images(images_dir: str | Path) -> list[Path]:
    """The .jpg/.jpeg/.png files (any case) of a folder, sorted by name. A competition folder that
    holds `images/` stands for that sub-folder."""
    folder = resolve(images_dir)
    if (folder / "images").is_dir():
        folder = folder / "images"
    if not folder.is_dir():
        raise DrowsyError(f"{folder}: image folder not found")
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name
    )


def link_image(source: Path, target: Path) -> None:
    """Hard-link `source` to `target`; a symlink where hard links cannot be made (other filesystem)."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        os.symlink(source, target)
