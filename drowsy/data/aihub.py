"""The public AIHub driver-state dataset as downloaded -> competition-format records with `meta`.

An AIHub tree holds label folders (`[라벨]bbox(통제환경)/001_G1/*.json`, one JSON per image) and
image folders with the same sub-structure (`[원천]bbox(통제환경)/001_G1/*.jpg`), under `Training/`
and `Validation/`, for three subsets: `bbox(통제환경)` (controlled), `bbox(실제도로환경)` (real road,
`1.버스/R_216_60_M/`) and `keypoint(준통제환경)` (semi-controlled, one folder per sequence). Repackaged
copies (`1.Training/라벨링데이터/...`, `원천데이터/...`) read the same. A label JSON:

    {"FileInfo": {"FileName", "Width", "Height", "Channel"}, "UserInfo": {"ID", "Gender", "Age"},
     "Accessory": {"Mask", "Glasses", "Cap"},
     "ObjectInfo": {"BoundingBox": {"Face" | "Leye" | "Reye" | "Mouth" | "Cigar" | "Phone":
                                    {"isVisible": bool, "Position": [x1, y1, x2, y2], "Opened": bool}},
                    "KeyPoints": {"Count": 70, "Points": [x1, y1, x2, y2, ...]}}}

Positions are absolute pixels, xyxy, numbers or numeric strings ("288.00"); `Opened` only on the
eyes and the mouth; `isVisible: false` means absent. Mapping: a visible eye -> eye_opened /
eye_closed by `Opened`, the mouth -> mouth_opened / mouth_closed, Face -> face, Phone -> phone,
Cigar -> cigar. Key points are kept on the record (`keypoints`: [x, y] pairs). A file with key points
but no visible box is not a training record (its face is there but unboxed: as a negative it would
teach the detector to miss faces); such files are counted apart (`Reading.keypoint_only`).
The path's meta (subject, ...) is never replaced by the label file's: the label fills only what the
path does not say, and disagreements are counted per key (`Reading.label_disagrees`).

`read_tree` never raises on a bad label file: like `drowsy.data.labels.validate_records` it keeps what
is usable and returns one issue per decision, each naming the label file and the JSON field.
"""

import codecs
import dataclasses
import json
import os
from math import isfinite
from pathlib import Path

from drowsy.data import meta as meta_names
from drowsy.data.labels import Validation
from drowsy.errors import DrowsyError
from drowsy.files import IMAGE_SUFFIXES
from drowsy.progress import progress as progress_bar

LABEL_MARK, IMAGE_MARK = "라벨", "원천"  # "[라벨]" label folders, "[원천]" source (image) folders
# a label folder's name -> its image folder's: "[라벨]bbox(...)" -> "[원천]bbox(...)"; "라벨링데이터" -> "원천데이터"
_MIRROR = (("라벨링데이터", "원천데이터"), (LABEL_MARK, IMAGE_MARK))
BOXES = ("Face", "Leye", "Reye", "Mouth", "Cigar", "Phone")
_CLASS = {"Face": "face", "Cigar": "cigar", "Phone": "phone"}
_OPENABLE = {
    "Leye": ("eye_opened", "eye_closed"),
    "Reye": ("eye_opened", "eye_closed"),
    "Mouth": ("mouth_opened", "mouth_closed"),
}
_NUMBER_TYPES = (int, float)


@dataclasses.dataclass
class Reading:
    """What `read_tree` found.

    records: `{"file_name", "objects", "meta", "declared_size"}` per usable label file, file_name
        relative to `image_root`, ready for `drowsy.data.labels.validate_records`.
    label_files: the label file (relative to the raw folder) of each record, aligned with records.
    sources: per record, the `BoundingBox` key each object came from (to name fields in issues).
    issues: one dict per decision so far `{"record", "label_file", "file_name", "field", "reason",
        "action"}`; record = index among all label files read (sorted by path).
    counts: records/objects read and dropped so far; unrecognised_names: records whose file name
        fits no naming scheme (meta partial).
    keypoint_only: label files with key points and no visible box (not records, not defects).
    label_disagrees: meta key -> records whose label file says otherwise than their path.
    """

    image_root: Path
    records: list[dict]
    label_files: list[str]
    sources: list[list[str]]
    record_ids: list[int]
    issues: list[dict]
    counts: dict[str, int]
    unlabelled_images: list[str]
    keypoint_only: list[str] = dataclasses.field(default_factory=list)
    label_disagrees: dict[str, int] = dataclasses.field(default_factory=dict)
    shared_meta: dict = dataclasses.field(default_factory=dict)  # for meta.share


def is_aihub_tree(raw_dir: Path) -> bool:
    """True when a folder named like `[라벨]...` sits within three levels of `raw_dir`."""
    frontier = [raw_dir]
    for _ in range(3):
        frontier = [entry for folder in frontier for entry in _subfolders(folder)]
        if any(LABEL_MARK in folder.name for folder in frontier):
            return True
    return False


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(folder) if entry.is_dir()]
    except OSError:
        return []


def read_tree(raw_dir: Path, images_dir: Path | None = None, progress: bool = False) -> Reading:
    """Read every label JSON under the label folders of `raw_dir` and find each one's image.

    Images are looked up by the name in `FileInfo.FileName` (else the JSON's stem plus an image
    suffix), preferring the image folder that mirrors the label folder; `images_dir`, when given,
    is searched instead of `raw_dir`. Raises DrowsyError (one line) when no label JSON is found.
    """
    image_root = images_dir if images_dir is not None else raw_dir
    issues: list[dict] = []
    label_files = _label_files(raw_dir, issues)
    undecodable = len(issues)  # label files whose names are not UTF-8
    if not label_files:
        raise DrowsyError(
            f"{raw_dir}: no label JSON found (expected AIHub label folders like "
            "'[라벨]bbox(통제환경)/<subject>/*.json'; or use --format competition)"
        )
    images = _image_index(image_root, issues)
    if not images:
        raise DrowsyError(
            f"{image_root}: no image found (expected AIHub image folders like "
            "'[원천]bbox(통제환경)/<subject>/*.jpg'; or point --images at them)"
        )
    reading = Reading(
        image_root,
        [],
        [],
        [],
        [],
        issues,
        dict.fromkeys(("records_read", "records_dropped", "objects_read", "objects_dropped", "unrecognised_names"), 0),
        [],
    )
    reading.counts["records_read"] = len(label_files) + undecodable
    reading.counts["records_dropped"] = undecodable
    claimed: dict[str, str] = {}  # image -> its label file
    with progress_bar(total=len(label_files), desc="label files", unit="file", enabled=progress) as bar:
        for index, label_file in enumerate(label_files):
            _read_label_file(reading, raw_dir, index, label_file, images, claimed)
            bar.update(1)
    reading.unlabelled_images = sorted(set(path for paths in images.values() for path in paths) - set(claimed))
    for path in reading.unlabelled_images:
        issues.append(_issue(None, None, path, "image", "no label file names this image: not used", "info"))
    return reading


def _label_files(raw_dir: Path, issues: list[dict]) -> list[str]:
    """Label JSONs under folders whose name holds 라벨, relative to raw_dir, sorted; names that are not
    valid UTF-8 (a zip unpacked with the wrong encoding) are listed as dropped."""
    found = []
    for folder, _, files in os.walk(raw_dir):
        relative = os.path.relpath(folder, raw_dir).replace(os.sep, "/")
        if LABEL_MARK not in relative:
            continue
        for name in files:
            if name.lower().endswith(".json"):
                path = name if relative == "." else f"{relative}/{name}"
                if _utf8(path):
                    found.append(path)
                else:
                    issues.append(_issue(None, _printable(path), None, "path", _NOT_UTF8, "dropped"))
    return sorted(found)


def _image_index(image_root: Path, issues: list[dict]) -> dict[str, list[str]]:
    """Image file name -> paths relative to image_root (outside label folders)."""
    index: dict[str, list[str]] = {}
    for folder, _, files in os.walk(image_root):
        relative = os.path.relpath(folder, image_root).replace(os.sep, "/")
        if LABEL_MARK in relative:
            continue
        for name in files:
            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            path = name if relative == "." else f"{relative}/{name}"
            if _utf8(path):
                index.setdefault(name, []).append(path)
            else:
                issues.append(_issue(None, None, _printable(path), "path", _NOT_UTF8, "dropped"))
    return index


_NOT_UTF8 = "path is not valid UTF-8 (a zip unpacked with the wrong encoding? try 'unzip -O cp949')"


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.walk keeps undecodable bytes as surrogates
        return False
    return True


def _printable(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _issue(record, label_file, file_name, field: str, reason: str, action: str) -> dict:
    return {
        "record": record,
        "label_file": label_file,
        "file_name": file_name,
        "field": field,
        "reason": reason,
        "action": action,
    }


def _read_label_file(
    reading: Reading, raw_dir: Path, index: int, label_file: str, images: dict, claimed: dict[str, str]
) -> None:
    """Parse one label JSON; append its record (or its drop) to `reading`."""
    document, problem = _load(raw_dir / label_file)
    if problem is not None:
        field, reason, action = problem
        reading.issues.append(_issue(index, label_file, None, field, reason, action))
        if action == "dropped":
            reading.counts["records_dropped"] += 1
            return
    info = document.get("ObjectInfo")
    boxes = info.get("BoundingBox") if isinstance(info, dict) else None
    keypoints = _keypoints(reading, index, label_file, info.get("KeyPoints")) if isinstance(info, dict) else None
    shown = [
        b
        for b in (boxes.values() if isinstance(boxes, dict) else ())
        if isinstance(b, dict) and b.get("isVisible") is True
    ]
    if keypoints and not shown:
        image, _ = _find_image(document, label_file, images, claimed)
        if image is not None:
            claimed[image] = label_file  # its image is accounted for, not listed as unlabelled
        reading.keypoint_only.append(label_file)
        return
    if not isinstance(boxes, dict):
        where = "ObjectInfo.BoundingBox" if isinstance(info, dict) else "ObjectInfo"
        return _drop(reading, index, label_file, None, where, "missing or not an object", 0)
    objects, sources = _objects(reading, index, label_file, boxes)
    image, problem = _find_image(document, label_file, images, claimed)
    if problem is not None:
        return _drop(reading, index, label_file, image, "FileInfo.FileName", problem, len(objects))
    claimed[image] = label_file
    meta, recognised = meta_names.from_path(image)
    for key in meta_names.merge_label(meta, meta_names.from_label(document)):
        reading.label_disagrees[key] = reading.label_disagrees.get(key, 0) + 1
    reading.counts["unrecognised_names"] += not recognised
    meta = meta_names.share(meta, reading.shared_meta)
    record = {"file_name": image, "objects": objects, "meta": meta}
    size = _declared_size(document.get("FileInfo"))
    if size is not None:
        record["declared_size"] = size
    if keypoints:
        record["keypoints"] = keypoints
    reading.records.append(record)
    reading.label_files.append(label_file)
    reading.sources.append(sources)
    reading.record_ids.append(index)


def _keypoints(reading: Reading, index: int, label_file: str, value) -> list[list[float]] | None:
    """`KeyPoints` as [x, y] pairs; None when the file has none (absent, `{}` or a count of 0). Points that
    are not 2 x Count numbers are not kept: one repaired issue, the record itself goes on."""
    if not isinstance(value, dict) or not value or value.get("Count") in (0, "0"):
        return None
    points, count = value.get("Points"), meta_names.as_integer(value.get("Count"))
    numbers = _numbers(points) if isinstance(points, list) else None
    if numbers is None or count is None or len(numbers) != 2 * count:
        reason = f"key points not kept: Points must be 2 x Count numbers (Count {value.get('Count')!r}, " + (
            f"{len(points)} points)" if isinstance(points, list) else f"Points {type(points).__name__})"
        )
        reading.issues.append(_issue(index, label_file, None, "ObjectInfo.KeyPoints", reason, "repaired"))
        return None
    return [numbers[i : i + 2] for i in range(0, len(numbers), 2)]


def _drop(reading: Reading, index: int, label_file: str, image, field: str, reason: str, objects: int) -> None:
    reading.issues.append(_issue(index, label_file, image, field, reason, "dropped"))
    reading.counts["records_dropped"] += 1
    reading.counts["objects_dropped"] += objects


def _load(path: Path) -> tuple[dict | None, tuple[str, str, str] | None]:
    """(document, problem): problem is (field, reason, action) with action dropped or repaired."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, ("file", f"cannot read ({err.strerror or err})", "dropped")
    if not data:
        return None, ("file", "empty label file (0 bytes)", "dropped")
    repaired = None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        repaired = ("file", "UTF-8 byte-order mark removed", "repaired")
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        return None, ("file", f"not UTF-8 text (byte {err.start})", "dropped")
    except json.JSONDecodeError as err:
        return None, ("file", f"not valid JSON: {err.msg} (line {err.lineno} column {err.colno})", "dropped")
    if not isinstance(document, dict):
        return None, ("file", f"top level must be an object, got {type(document).__name__}", "dropped")
    return document, repaired


def _objects(reading: Reading, index: int, label_file: str, boxes: dict) -> tuple[list[dict], list[str]]:
    """Competition objects from a BoundingBox dict; each unusable visible box is one dropped issue."""
    objects, sources = [], []
    for key in BOXES:
        box = boxes.get(key)
        if box is None:
            continue
        field = f"ObjectInfo.BoundingBox.{key}"
        cls, problem = _box_class(key, box)
        if cls is None and problem is None:
            continue  # not visible: absent
        reading.counts["objects_read"] += 1
        position = _position(box.get("Position")) if problem is None else None
        if problem is None and position is None:
            problem = (".Position", f"must be 4 numbers [x1, y1, x2, y2], got {box.get('Position')!r}")
        if problem is None and (position[2] <= position[0] or position[3] <= position[1]):
            problem = (".Position", f"isVisible is true but the box {box.get('Position')} is empty or inverted")
        if problem is not None:
            reading.issues.append(_issue(index, label_file, None, field + problem[0], problem[1], "dropped"))
            reading.counts["objects_dropped"] += 1
            continue
        objects.append({"class": cls, "position": position})
        sources.append(field)
    return objects, sources


def _box_class(key: str, box) -> tuple[str | None, tuple[str, str] | None]:
    """(class, problem) of one box; (None, None) when it is not visible."""
    if not isinstance(box, dict):
        return None, ("", f"must be an object, got {type(box).__name__}")
    visible = box.get("isVisible")
    if not isinstance(visible, bool):
        return None, (".isVisible", f"must be true or false, got {visible!r}")
    if not visible:
        return None, None
    if key not in _OPENABLE:
        return _CLASS[key], None
    opened = box.get("Opened")
    if not isinstance(opened, bool):
        return None, (".Opened", f"must be true or false on a visible {key}, got {opened!r}")
    return _OPENABLE[key][0 if opened else 1], None


def _position(value) -> list[float] | None:
    """4 finite numbers (numeric strings such as "288.00" accepted) -> list, else None."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    return _numbers(value)


def _numbers(values: list) -> list[float] | None:
    """Finite numbers (numeric strings accepted) -> list, else None."""
    numbers = []
    for v in values:
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                return None
        elif type(v) not in _NUMBER_TYPES:  # True / False are ints but not coordinates
            return None
        if not isfinite(v):
            return None
        numbers.append(v)
    return numbers


def _find_image(document: dict, label_file: str, images: dict, claimed: dict) -> tuple[str | None, str | None]:
    """(image path relative to the image root, problem)."""
    info = document.get("FileInfo")
    name = info.get("FileName") if isinstance(info, dict) else None
    stem = label_file.rsplit("/", 1)[-1][: -len(".json")]
    if isinstance(name, str) and name.strip():
        candidates = images.get(name.strip().replace("\\", "/").rsplit("/", 1)[-1], [])
    else:
        candidates = [p for suffix in IMAGE_SUFFIXES for p in images.get(stem + suffix, [])]
        name = f"{stem}.*"
    if not candidates:
        return None, f"no image named {name} under the image folder"
    if len(candidates) > 1:  # the same name in several folders: the one that mirrors the label folder
        folder = label_file.rsplit("/", 1)[0]
        mirror = folder
        for label_name, image_name in _MIRROR:
            mirror = mirror.replace(label_name, image_name)
        candidates = (
            [p for p in candidates if p.rsplit("/", 1)[0] == mirror]
            or [p for p in candidates if p.rsplit("/", 1)[0].rsplit("/", 1)[-1] == folder.rsplit("/", 1)[-1]]
            or candidates
        )
        if len(candidates) > 1:
            return None, f"{len(candidates)} images named {name}: {', '.join(sorted(candidates)[:3])}"
    image = candidates[0]
    if image in claimed:
        return image, f"image {image} already labelled by {claimed[image]}: duplicate dropped"
    return image, None


def _declared_size(info) -> tuple[int, int] | None:
    """(width, height) from FileInfo, None when it does not say."""
    if not isinstance(info, dict):
        return None
    size = []
    for key in ("Width", "Height"):
        value = info.get(key)
        try:
            size.append(
                int(float(value)) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
            )
        except ValueError:
            size.append(None)
    return tuple(size) if None not in size else None


def merge_validation(reading: Reading, validation: Validation) -> Validation:
    """`validate_records(reading.records, ...)` joined with what `read_tree` decided: issues name the
    label file and its JSON field (`objects[2].position` -> `ObjectInfo.BoundingBox.Leye.Position`),
    records are numbered among all label files, counts cover every label file read."""
    issues = list(reading.issues)
    for issue in validation.issues:
        i = issue["record"]
        field = issue["field"]
        if field.startswith("objects["):
            j, _, rest = field[len("objects[") :].partition("]")
            field = reading.sources[i][int(j)] + (".Position" if rest == ".position" else rest)
        else:
            field = {"file_name": "image", "declared_size": "FileInfo.Width/Height"}.get(field, field)
        issues.append(
            _issue(
                reading.record_ids[i],
                reading.label_files[i],
                issue["file_name"],
                field,
                issue["reason"],
                issue["action"],
            )
        )
    counts = dict(validation.counts)
    counts["records_read"] = reading.counts["records_read"]
    counts["records_dropped"] += reading.counts["records_dropped"]
    counts["objects_read"] = reading.counts["objects_read"]
    counts["objects_dropped"] += reading.counts["objects_dropped"]
    return Validation(records=validation.records, issues=issues, counts=counts)
