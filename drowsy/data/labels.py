"""Reading and validating competition labels and the manifests `drowsy prepare` writes.

A labels file is `{"annotations": [{"file_name": ..., "objects": [{"class": ..., "position":
[x1, y1, x2, y2]}]}]}` with boxes in absolute pixels of the original image, xyxy. A manifest adds
`"image_root"` and per record `"width"`, `"height"` (and `"channels"`, `"meta"`: what the image's
path and label file tell, see drowsy.data.meta, and `"keypoints"`: [x, y] pixel pairs where the label
file has them, AIHub's 70 face points). A record may declare its size (`"declared_size"`:
[width, height], AIHub's FileInfo); an image whose header disagrees is dropped.

`validate_records` never raises on a bad record: it keeps what is usable (clipping boxes that stick
out of the image), drops the rest, and returns one issue per decision, so a report can show every
record that was touched and counts that add up.
"""

import dataclasses
import os
from collections.abc import Sequence
from math import isfinite
from pathlib import Path

from drowsy import CLASS_IDS
from drowsy.data.image_header import read_image_headers
from drowsy.errors import DrowsyError
from drowsy.files import gc_paused, read_json
from drowsy.paths import require, resolve

MADE_BY = "notebooks/02_build_diet.ipynb (or drowsy prepare)"
_NUMBER_TYPES = frozenset((int, float))


@dataclasses.dataclass
class Manifest:
    """A split written by `drowsy prepare`: records carry `width`, `height` and xyxy pixel boxes."""

    path: Path
    image_root: Path
    records: list[dict]


@dataclasses.dataclass
class Validation:
    """Outcome of `validate_records`.

    records: kept records `{"file_name", "width", "height", "channels", "objects"}` (size keys only
        when images were checked), objects `{"class", "position": [x1, y1, x2, y2] pixels}`.
    issues: one dict per decision `{"record", "file_name", "field", "reason", "action"}`, action
        "dropped", "repaired" (box clipped to the image) or "info" (kept as is, e.g. no objects).
    counts: records/objects read, kept, dropped (read = kept + dropped) and objects repaired.
    """

    records: list[dict]
    issues: list[dict]
    counts: dict[str, int]


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest written by `drowsy prepare`; anything malformed is a one-line DrowsyError."""
    path = require(path, MADE_BY)
    document = read_json(path)
    records = _annotations(document, path)
    image_root = document.get("image_root")
    if not isinstance(image_root, str):
        raise DrowsyError(f"{path}: field 'image_root': missing or not a string (not a manifest? run {MADE_BY})")
    for i, record in enumerate(records):
        for field in ("file_name", "width", "height", "objects"):
            if not isinstance(record, dict) or field not in record:
                raise DrowsyError(f"{path}: record {i}: field '{field}': missing (not a manifest? run {MADE_BY})")
    return Manifest(path=path, image_root=Path(image_root), records=records)


def read_labels(path: str | Path) -> list[dict]:
    """The raw `annotations` list of a competition labels.json (or a manifest), not yet validated."""
    path = resolve(path)
    if not path.is_file():
        raise DrowsyError(f"{path}: labels file not found")
    return _annotations(read_json(path), path)


def _annotations(document, path: Path) -> list:
    if not isinstance(document, dict):
        raise DrowsyError(
            f"{path}: top level must be an object with an 'annotations' list, got {type(document).__name__}"
        )
    annotations = document.get("annotations")
    if not isinstance(annotations, list):
        found = "missing" if annotations is None else f"a {type(annotations).__name__}"
        raise DrowsyError(f"{path}: field 'annotations': must be a list of records, is {found}")
    return annotations


def spread(items: Sequence, count: int) -> list:
    """`count` of `items` spread evenly over them, first and last included; all of them when `count` is 0
    or not smaller (a subset of a manifest, whose order groups drivers, that still covers them)."""
    total = len(items)
    if not 0 < count < total:
        return list(items)
    if count == 1:
        return [items[0]]
    return [items[round(i * (total - 1) / (count - 1))] for i in range(count)]


def validate_records(
    records: list,
    image_root: str | Path | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Validation:
    """Keep the usable records and objects of a labels list, with one issue per decision.

    With `image_root`, every image's header is read: records whose image is missing, unreadable
    or truncated are dropped, kept records gain `width`, `height`, `channels`, and boxes are
    clipped to the image (or dropped when wholly outside). Without it only the labels are checked.
    A later record with an already-seen `file_name` is dropped as a duplicate.
    """
    with gc_paused():
        return _validate(records, image_root, workers, progress)


def _validate(records: list, image_root, workers: int | None, progress: bool) -> Validation:
    issues: list[dict] = []
    counts = dict.fromkeys(
        (
            "records_read",
            "records_kept",
            "records_dropped",
            "objects_read",
            "objects_kept",
            "objects_dropped",
            "objects_repaired",
        ),
        0,
    )
    counts["records_read"] = len(records)
    candidates = _well_formed(records, issues, counts)
    names = [records[i]["file_name"] for i in candidates]
    headers = read_image_headers(image_root, names, workers, progress) if image_root is not None else None
    kept = []
    for k, i in enumerate(candidates):
        record = records[i]
        header = headers[k] if headers is not None else None
        problem = ("file_name", header) if isinstance(header, str) else _size_problem(record, header)
        if problem is not None:
            issues.append(_issue(i, record["file_name"], *problem, "dropped"))
            counts["records_dropped"] += 1
            counts["objects_dropped"] += len(record["objects"])
            continue
        kept.append(_checked_record(i, record, header, issues, counts))
    counts["records_kept"] = len(kept)
    counts["objects_kept"] = sum(len(record["objects"]) for record in kept)
    return Validation(records=kept, issues=issues, counts=counts)


def _size_problem(record: dict, header) -> tuple[str, str] | None:
    """(field, reason) when the image's size differs from the one the record declares
    (`declared_size`, AIHub's FileInfo), else None."""
    declared = record.get("declared_size")
    if header is None or declared is None or tuple(declared) == header[:2]:
        return None
    return "declared_size", f"the label says {declared[0]}x{declared[1]} but the image is {header[0]}x{header[1]}"


def _issue(record: int, file_name, field: str, reason: str, action: str) -> dict:
    return {"record": record, "file_name": file_name, "field": field, "reason": reason, "action": action}


def _well_formed(records: list, issues: list[dict], counts: dict) -> list[int]:
    """Indices of records that are dicts with a usable, first-seen file_name and an objects list."""
    seen: dict[str, int] = {}
    candidates = []
    for i, record in enumerate(records):
        problem = _record_problem(record)
        objects = record.get("objects") if isinstance(record, dict) else None
        counts["objects_read"] += len(objects) if isinstance(objects, list) else 0
        name = record.get("file_name") if isinstance(record, dict) else None
        if problem is None and name in seen:
            problem = ("file_name", f"duplicate of record {seen[name]}")
        if problem is not None:
            issues.append(_issue(i, name if isinstance(name, str) else None, *problem, "dropped"))
            counts["records_dropped"] += 1
            counts["objects_dropped"] += len(objects) if isinstance(objects, list) else 0
            continue
        seen[name] = i
        candidates.append(i)
    return candidates


def _record_problem(record) -> tuple[str, str] | None:
    """(field, reason) that makes a record unusable as a whole, or None."""
    if not isinstance(record, dict):
        return "record", f"must be an object, got {type(record).__name__}"
    name = record.get("file_name")
    if not isinstance(name, str) or not name:
        return "file_name", "missing or not a non-empty string"
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        return "file_name", "must be a path inside the images folder"
    if not isinstance(record.get("objects"), list):
        return "objects", "missing or not a list"
    return None


def _checked_record(i: int, record: dict, header, issues: list[dict], counts: dict) -> dict:
    name = record["file_name"]
    objects = []
    for j, obj in enumerate(record["objects"]):
        problem, position = _checked_object(obj, header)
        if position is None:
            issues.append(_issue(i, name, f"objects[{j}]{problem[0]}", problem[1], "dropped"))
            counts["objects_dropped"] += 1
            continue
        if problem is not None:
            issues.append(_issue(i, name, f"objects[{j}]{problem[0]}", problem[1], "repaired"))
            counts["objects_repaired"] += 1
        # Reuse a clean object as is: 273k records hold about a million of them.
        clean = problem is None and len(obj) == 2
        objects.append(obj if clean else {"class": obj["class"], "position": position})
    if not objects:
        reason = "no objects" if not record["objects"] else f"all {len(record['objects'])} objects dropped"
        issues.append(_issue(i, name, "objects", f"{reason}: kept as a negative example", "info"))
    kept = {"file_name": name}
    if header is not None:
        kept["width"], kept["height"], kept["channels"] = header[:3]
        if header[3] != 1:
            issues.append(
                _issue(
                    i,
                    name,
                    "file_name",
                    f"EXIF orientation {header[3]} ignored: the image is read "
                    "as stored, by this check and by every decoder of drowsy, and its boxes with it",
                    "info",
                )
            )
    kept["objects"] = objects
    for key in ("meta", "keypoints"):
        if key in record:
            kept[key] = record[key]
    return kept


def _checked_object(obj, header) -> tuple[tuple[str, str] | None, list | None]:
    """(problem, position): problem is (field suffix, reason) or None; position None means drop
    the object, a position with a problem is the box clipped to the image."""
    if not isinstance(obj, dict):
        return ("", f"must be an object, got {type(obj).__name__}"), None
    cls = obj.get("class")
    if not isinstance(cls, str) or cls not in CLASS_IDS:
        return (".class", f"unknown class {cls!r}"), None
    position = obj.get("position")
    if not _is_box(position):
        return (".position", f"must be 4 finite numbers [x1, y1, x2, y2], got {position!r}"), None
    x1, y1, x2, y2 = position
    if x2 <= x1 or y2 <= y1:
        return (".position", f"empty box {position} (needs x2 > x1 and y2 > y1)"), None
    if header is None:
        return None, position
    width, height = header[0], header[1]
    if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        return (".position", f"box {position} lies outside the {width}x{height} image"), None
    if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
        return None, position
    clipped = [max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)]
    return (".position", f"box {position} clipped to the {width}x{height} image: {clipped}"), clipped


def _is_box(position) -> bool:
    """4 finite numbers; written for speed, it runs for every object of every record."""
    if not isinstance(position, list) or len(position) != 4:
        return False
    x1, y1, x2, y2 = position
    # type() rather than isinstance: True/False are ints but not coordinates.
    if not {type(x1), type(y1), type(x2), type(y2)} <= _NUMBER_TYPES:
        return False
    try:
        return isfinite(x1) and isfinite(y1) and isfinite(x2) and isfinite(y2)
    except OverflowError:  # an integer too large for a float
        return False
