"""Raw data -> validated train/val/diet manifests, a report, and optional YOLO/COCO exports.

Raw data is a competition folder (`images/` + `labels.json`) or the public AIHub tree as downloaded
(`drowsy.data.aihub`), told apart automatically.

Raw data is read-only: manifests point at the raw images (`image_root`), exports (drowsy.data.exports)
hard-link them.
Nothing is copied or re-encoded (the original copied every image twice).
"""

import dataclasses
import os
from collections import Counter
from pathlib import Path

from drowsy import CLASSES
from drowsy.data import aihub, meta
from drowsy.data.exports import EXPORTS, export_coco, export_yolo
from drowsy.data.labels import Validation, read_labels, validate_records
from drowsy.data.resize import MIN_LONG_SIDE, resize_images
from drowsy.data.split import MAX_VAL_FRACTION, SPLITS, VAL_SIZE, SplitSettings, leakage, train_val
from drowsy.errors import DrowsyError
from drowsy.files import gc_paused, write_json
from drowsy.paths import resolve

FORMATS = ("auto", "competition", "aihub")
# Diet rules in the order they are tried; the first that matches decides (solution.md, "Diet set").
DIET_RULES = ("cigar_or_phone", "eye_closed_and_mouth_closed", "eye_closed_and_mouth_opened", "mouth_opened_every_3rd")
MOUTH_OPENED_KEEP_EVERY = 3


def diet_rule(classes: set[str]) -> str | None:
    """Name of the first diet rule an image with these classes falls under, None when none does.

    An image under "mouth_opened_every_3rd" is only a candidate: `select_diet` keeps every 3rd.
    """
    if "cigar" in classes or "phone" in classes:
        return "cigar_or_phone"
    if "eye_closed" in classes and "mouth_closed" in classes:
        return "eye_closed_and_mouth_closed"
    if "eye_closed" in classes and "mouth_opened" in classes:
        return "eye_closed_and_mouth_opened"
    if "mouth_opened" in classes:
        return "mouth_opened_every_3rd"
    return None


def select_diet(train: list[dict]) -> tuple[list[dict], dict]:
    """The diet set: train records kept by `diet_rule`, in train order, and per-rule counts.

    Of the images whose first matching rule is "mouth_opened_every_3rd" the 3rd, 6th, 9th, ...
    (counted in train order, only these images) are kept. Counts: images kept by each rule,
    `mouth_opened_candidates` (images that reached that rule) and `dropped` (train images not kept).
    """
    kept_by_rule = dict.fromkeys(DIET_RULES, 0)
    mouth_opened_candidates = 0
    diet = []
    for record in train:
        rule = diet_rule({obj["class"] for obj in record["objects"]})
        if rule == "mouth_opened_every_3rd":
            mouth_opened_candidates += 1
            if mouth_opened_candidates % MOUTH_OPENED_KEEP_EVERY:
                continue
        if rule is None:
            continue
        kept_by_rule[rule] += 1
        diet.append(record)
    counts = {
        "kept_by_rule": kept_by_rule,
        "mouth_opened_candidates": mouth_opened_candidates,
        "dropped": len(train) - len(diet),
    }
    return diet, counts


def meta_stats(records: list[dict], meta_counts: dict) -> dict:
    """`meta_counts` (records whose name fits no scheme, where the label file disagrees with the path),
    then per `meta` key: records that have it and its distinct values (counts per value when few)."""
    per_meta = Counter(id(r["meta"]) for r in records if "meta" in r)  # meta dicts are shared (drowsy.data.aihub)
    metas = {id(r["meta"]): r["meta"] for r in records if "meta" in r}
    values: dict[str, Counter] = {}
    for key, n in per_meta.items():
        for k, v in metas[key].items():
            if k not in values:
                values[k] = Counter()
            values[k][v] += n
    keys = [k for k in meta.META_KEYS if k in values] + sorted(values.keys() - set(meta.META_KEYS))
    return {
        **meta_counts,
        "records_with": {k: sum(values[k].values()) for k in keys},
        "distinct": {k: len(values[k]) for k in keys},
        "values": {k: {str(v): n for v, n in values[k].most_common()} for k in keys if len(values[k]) <= 50},
    }


def split_stats(records: list[dict]) -> dict:
    """Images, negatives (no objects), objects per class and images containing each class."""
    objects, images = Counter(), Counter()
    for record in records:
        classes = [obj["class"] for obj in record["objects"]]
        objects.update(classes)
        images.update(set(classes))
    return {
        "images": len(records),
        "negatives": sum(1 for record in records if not record["objects"]),
        "objects": sum(objects.values()),
        "objects_per_class": {name: objects[name] for name in CLASSES},
        "images_per_class": {name: images[name] for name in CLASSES},
    }


def image_shapes(records: list[dict]) -> dict[str, int]:
    """How many kept images have each "WIDTHxHEIGHTxCHANNELS" shape, most common first."""
    shapes = Counter(f"{r['width']}x{r['height']}x{r['channels']}" for r in records)
    return dict(shapes.most_common())


def write_manifest(path: Path, image_root: Path, records: list[dict]) -> None:
    """Manifest JSON `{"image_root", "annotations"}` (schema in drowsy.data.labels)."""
    manifest = {"image_root": str(image_root), "annotations": records}
    write_json(path, manifest, indent=None)


def prepare_dataset(
    raw_dir: str | Path,
    out_dir: str | Path,
    val_size: int = VAL_SIZE,
    seed: int = 0,
    export: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    raw_format: str = "auto",
    images_dir: str | Path | None = None,
    group_by: str | None = None,
    resize: int = 0,
    split: str = "draw",
) -> dict:
    """Validate `raw_dir`, split it, build the diet set, write `out_dir`.

    raw_dir: a competition folder (images/ + labels.json) or an AIHub tree (`raw_format` "auto" tells
    them apart); `images_dir`: where an AIHub tree's images are, when not under raw_dir.
    group_by: a `meta` key (e.g. "subject") whose groups validation holds whole; None = random images.
    split: "draw" (validation drawn with `seed`: `val_size` images, or whole groups with `group_by`) or
    "aihub" (the download's own: `Validation/` folders are validation, `Training/` train; `val_size`,
    `seed` and `group_by` are not used). A split that would leave a side empty is a one-line error.
    Writes `train.json`, `val.json`, `diet.json` (manifests, `image_root` = absolute raw images
    folder) and `report.json`, plus `yolo/` or `coco/` when `export` asks. The diet set comes from
    the train split only, so no validation image leaks into training. `workers` threads read
    image headers (default 2). `resize` > 0: the manifests point at copies in `out_dir/images` whose long
    side is at most `resize` (drowsy.data.resize; one process per CPU). Returns the report (see `build_report`).
    """
    if export not in (None, *EXPORTS):
        raise DrowsyError(f"export: must be one of {', '.join(EXPORTS)} or None, got {export!r}")
    if raw_format not in FORMATS:
        raise DrowsyError(f"format: must be one of {', '.join(FORMATS)}, got {raw_format!r}")
    if split not in SPLITS:
        raise DrowsyError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    if val_size < 0:
        raise DrowsyError(f"val_size: must be >= 0, got {val_size}")
    if resize and resize < MIN_LONG_SIDE:
        raise DrowsyError(
            f"resize: the long side must be 0 (keep the images) or >= {MIN_LONG_SIDE} pixels, got {resize}"
        )
    raw_dir, out_dir = resolve(raw_dir), resolve(out_dir)
    if out_dir.is_relative_to(raw_dir):
        raise DrowsyError(f"{out_dir}: output folder must be outside the raw data folder (raw data is read-only)")
    with gc_paused():
        raw = read_raw(raw_dir, raw_format, images_dir, workers, progress)
        resized = None
        if resize:
            records, resized = resize_images(
                raw.validation.records, raw.image_root, out_dir / "images", resize, os.cpu_count() or 1, progress
            )
            raw = dataclasses.replace(
                raw, image_root=out_dir / "images", validation=dataclasses.replace(raw.validation, records=records)
            )
        how = SplitSettings(split, val_size, seed, group_by)
        return _prepare(raw, out_dir, how, export, progress, resized)


def detect_format(raw_dir: Path, raw_format: str = "auto", images_dir: Path | None = None) -> str:
    """ "competition" or "aihub": `raw_format` unless "auto", else what `raw_dir` holds."""
    if not raw_dir.is_dir():
        raise DrowsyError(f"{raw_dir}: raw data folder not found")
    if raw_format != "auto":
        return raw_format
    if (raw_dir / "labels.json").is_file():
        return "competition"
    if images_dir is not None or aihub.is_aihub_tree(raw_dir):
        return "aihub"
    raise DrowsyError(
        f"{raw_dir}: neither a competition folder (labels.json + images/) nor an AIHub tree "
        "('[라벨]...' label folders of per-image JSON); check the path or set --format"
    )


@dataclasses.dataclass
class RawData:
    """Validated raw data: where it came from, the images' root, and the validation outcome."""

    raw_format: str
    labels: Path  # labels.json, or the AIHub tree's root
    image_root: Path
    validation: Validation
    meta_counts: dict  # {"unrecognised_names": records, "label_disagrees": {meta key: records}}
    keypoint_only: list[str] = dataclasses.field(default_factory=list)  # AIHub label files: key points, no box


def read_raw(
    raw_dir: str | Path,
    raw_format: str = "auto",
    images_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> RawData:
    """Read and validate raw data (competition folder or AIHub tree, see `prepare_dataset`)."""
    raw_dir = resolve(raw_dir)
    images_dir = resolve(images_dir) if images_dir else None
    raw_format = detect_format(raw_dir, raw_format, images_dir)
    if raw_format == "aihub":
        reading = aihub.read_tree(raw_dir, images_dir, progress)
        validation = aihub.merge_validation(
            reading, validate_records(reading.records, reading.image_root, workers, progress)
        )
        meta_counts = {"unrecognised_names": reading.counts["unrecognised_names"]}
        meta_counts["label_disagrees"] = dict(sorted(reading.label_disagrees.items()))
        return RawData("aihub", raw_dir, reading.image_root, validation, meta_counts, reading.keypoint_only)
    labels_path, image_root = raw_dir / "labels.json", raw_dir / "images"
    records = read_labels(labels_path)
    if not image_root.is_dir():
        raise DrowsyError(f"{image_root}: images folder not found")
    validation = validate_records(records, image_root, workers, progress)
    del records  # kept records reuse the clean raw objects; let the raw record dicts go
    unrecognised, pool = 0, {}
    for record in validation.records:  # competition names may still tell subject, lighting, ...
        found, recognised = meta.from_path(record["file_name"])
        unrecognised += not recognised
        if found:
            record["meta"] = meta.share(found, pool)
    return RawData("competition", labels_path, image_root, validation, {"unrecognised_names": unrecognised})


def _prepare(
    raw: RawData, out_dir: Path, how: SplitSettings, export: str | None, progress: bool, resized: dict | None = None
) -> dict:
    train, val = train_val(raw.validation.records, how, raw.labels)
    diet, diet_counts = select_diet(train)
    splits = {"train": train, "val": val, "diet": diet}

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for split, subset in splits.items():
        outputs[split] = str(out_dir / f"{split}.json")
        write_manifest(out_dir / f"{split}.json", raw.image_root, subset)
    if export == "yolo":
        outputs["yolo"] = str(export_yolo(out_dir, raw.image_root, splits, progress))
    elif export == "coco":
        outputs["coco"] = str(export_coco(out_dir, splits))
    outputs["report"] = str(out_dir / "report.json")
    report = build_report(raw, splits, diet_counts, how, outputs)
    if resized:
        report["resize"] = resized  # {"long_side", "resized", "linked"}
    write_json(out_dir / "report.json", report)
    return report


def build_report(raw: RawData, splits, diet_counts, how: SplitSettings, outputs) -> dict:
    """The report: inputs, totals (read = kept + dropped + keypoint_only), split sizes and subject leakage,
    per-split class counts, diet rule counts, image shapes, meta coverage, the AIHub label files with key
    points only, and every issue (dropped / repaired / info) with its record, file, field and reason."""
    counts, validation = raw.validation.counts, raw.validation
    actions = Counter(issue["action"] for issue in validation.issues)
    if how.split == "aihub":
        rule = "AIHub's own: val = the records under Validation/, train = those under Training/"
    else:
        drawn = "whole groups drawn at random until val_size" if how.group_by else "drawn at random"
        rule = (
            f"val = min(val_size, {MAX_VAL_FRACTION:.0%} of kept images, at least 1 when >= 2 images), "
            f"{drawn} with the seed; train = the rest"
        )
    return {
        "format": raw.raw_format,
        "labels": str(raw.labels),
        "image_root": str(raw.image_root),
        "totals": {
            "records": {
                **{k: counts[f"records_{k}"] for k in ("read", "kept", "dropped")},
                "keypoint_only": len(raw.keypoint_only),
            },
            "objects": {k: counts[f"objects_{k}"] for k in ("read", "kept", "dropped", "repaired")},
        },
        "split": {
            "split": how.split,
            "seed": how.seed,
            "group_by": how.group_by,
            "val_size_requested": how.val_size,
            "val_images": len(splits["val"]),
            "train_images": len(splits["train"]),
            "rule": rule,
            "leakage": leakage(splits),
        },
        "splits": {split: split_stats(records) for split, records in splits.items()},
        "diet": {"source": "train split", "rules_in_order": list(DIET_RULES), **diet_counts},
        "image_shapes": image_shapes(validation.records),
        "meta": meta_stats(validation.records, raw.meta_counts),
        "keypoint_only": {
            "label_files": len(raw.keypoint_only),
            "why": "key points but no visible box: the face is there unboxed, so not a training record",
            "files": raw.keypoint_only,
        },
        "issue_counts": {action: actions[action] for action in ("dropped", "repaired", "info")},
        "issues": validation.issues,
        "outputs": outputs,
    }


def summarize(report: dict) -> str:
    """A few lines for a terminal or notebook: what was kept, dropped, and where files went."""
    records, objects = report["totals"]["records"], report["totals"]["objects"]
    splits = report["splits"]
    lines = [
        f"records: {records['read']} read, {records['kept']} kept, {records['dropped']} dropped"
        + (
            f", {records['keypoint_only']} key points only (faces without boxes: not training records)"
            if records["keypoint_only"]
            else ""
        ),
        f"objects: {objects['read']} read, {objects['kept']} kept ({objects['repaired']} clipped), "
        f"{objects['dropped']} dropped",
        f"split: {splits['train']['images']} train, {splits['val']['images']} val images; "
        f"diet set: {splits['diet']['images']} images from train",
        *_leakage_lines(report["split"]["leakage"]),
        *(
            [
                f"images: {report['resize']['resized']} resized to a long side of {report['resize']['long_side']} px, "
                f"{report['resize']['linked']} hard-linked as they were"
            ]
            if "resize" in report
            else []
        ),
        *(f"{name}: {path}" for name, path in report["outputs"].items()),
    ]
    return "\n".join(lines)


def _leakage_lines(leak: dict) -> list[str]:
    if not leak["val_values"]:
        return []
    return [
        f"{leak['key']}s: {leak['val_values']} in val, {leak['train']['shared_values']} of them also in train "
        f"({leak['train']['val_images']} val images)"
    ]
