"""A one-time copy of a data set's images at the training size, for `drowsy prepare --resize`.

A loader worker spends most of its time decoding: a 1920x1080 JPEG costs it 2.5x what an 800x1280 one
does at 1280 px (benchmarks/scale.py). Copies whose long side is the training size decode at the cost
of the smaller image, and the loader's own resize then has nothing to do. Images already small enough
are hard-linked, not copied; every image is read as stored (an EXIF orientation is ignored, as
everywhere in drowsy) and written grayscale, which is how training reads it anyway.
"""

import functools
from pathlib import Path

import cv2

from drowsy.data.geometry import resize_long_side
from drowsy.files import link_image, read_gray
from drowsy.parallel import map_chunks

JPEG_QUALITY = 95
_CHUNK = 64  # images per task handed to a worker process
MIN_LONG_SIDE = 32  # pixels: the detector's largest stride


def resize_images(
    records: list[dict], image_root: Path, out_root: Path, long_side: int, workers: int = 1, progress: bool = True
) -> tuple[list[dict], dict]:
    """Copies of the records' images under `out_root` (same relative paths and formats), long side at most
    `long_side`: larger images resized and written (JPEG quality 95, PNG), the others hard-linked.

    Returns the records with their new `width`, `height`, `channels` (1) and boxes scaled alike, in
    order, and counts `{"long_side", "resized", "linked"}`. The output is the same for any `workers`.
    """
    if long_side < MIN_LONG_SIDE or workers < 1:
        raise ValueError(f"long_side must be >= {MIN_LONG_SIDE} and workers >= 1, got {long_side} and {workers}")
    tasks = [
        ([(r["file_name"], r["width"], r["height"]) for r in records[i : i + _CHUNK]],)
        for i in range(0, len(records), _CHUNK)
    ]
    work = functools.partial(_resize_chunk, str(image_root), str(out_root), long_side)
    sizes = map_chunks(work, tasks, len(records), workers, progress, desc="resize")
    resized = [record if size is None else _scaled(record, *size) for record, size in zip(records, sizes)]
    linked = sizes.count(None)
    return resized, {"long_side": long_side, "resized": len(sizes) - linked, "linked": linked}


def _resize_chunk(
    image_root: str, out_root: str, long_side: int, images: list[tuple[str, int, int]]
) -> list[tuple[int, int] | None]:
    """Write one chunk of copies; returns each copy's (width, height), None where it is hard-linked."""
    sizes = []
    for file_name, width, height in images:
        source, target = Path(image_root) / file_name, Path(out_root) / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a rerun replaces its copies
        if max(width, height) <= long_side:
            link_image(source, target)
            sizes.append(None)
            continue
        image = resize_long_side(read_gray(source), long_side)
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if target.suffix.lower() in (".jpg", ".jpeg") else []
        ok, encoded = cv2.imencode(target.suffix, image, params)
        if not ok:
            raise OSError(f"{target}: encoding failed")
        target.write_bytes(encoded.tobytes())
        sizes.append((image.shape[1], image.shape[0]))
    return sizes


def _scaled(record: dict, width: int, height: int) -> dict:
    """The record of its copy at width x height: boxes and key points scaled per axis, as the pixels were."""
    scale = (width / record["width"], height / record["height"]) * 2
    limits = (width, height) * 2
    objects = [
        {**o, "position": [round(min(v * f, limit), 2) for v, f, limit in zip(o["position"], scale, limits)]}
        for o in record["objects"]
    ]
    scaled = {**record, "width": width, "height": height, "channels": 1, "objects": objects}
    if "keypoints" in record:
        scaled["keypoints"] = [[round(x * scale[0], 2), round(y * scale[1], 2)] for x, y in record["keypoints"]]
    return scaled
