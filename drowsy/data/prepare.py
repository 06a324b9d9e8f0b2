"""Raw data -> validated train/val/diet manifests, a report, and optional YOLO/COCO exports.

Raw data is a competition folder (`images/` + `labels.json`) or the public AIHub tree as downloaded
(`drowsy.data.aihub`), told apart automatically.

Raw data is read-only: manifests point at the raw images (`image_root`), exports (drowsy.data.exports)
hard-link them.
Nothing is copied or re-encoded (the original copied every image twice).
"""

import dataclasses
import itertools
import os
from collections import Counter
from pathlib import Path

import numpy as np

from drowsy import CLASS_IDS, CLASSES
from drowsy.data import aihub, meta
from drowsy.data.exports import EXPORTS, export_coco, export_yolo
from drowsy.data.labels import Validation, read_labels, validate_records
from drowsy.data.resize import MIN_LONG_SIDE, resize_images
from drowsy.errors import DrowsyError
from drowsy.files import gc_paused, write_json
from drowsy.paths import resolve

FORMATS = ("auto", "competition", "aihub")
LEAKAGE_KEY = "subject"  # report.json says how many validation subjects also appear in train
MAX_VAL_FRACTION = 0.2
STRATIFY_WINDOW = 64  # groups weighed at each draw of a grouped split
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


def val_count(num_images: int, val_size: int) -> int:
    """Validation images for a dataset of `num_images`: `val_size`, clamped to 20% of the images
    (rounded down, but at least 1 when there are 2 or more) so a small dataset keeps most for training."""
    if num_images < 2:
        return 0
    return min(val_size, max(1, int(num_images * MAX_VAL_FRACTION)))


def split_records(
    records: list[dict], val_size: int, seed: int, group_by: str | None = None
) -> tuple[list[dict], list[dict]]:
    """(train, val): `val_count` records drawn at random with `seed`; both keep the input order.

    With `group_by` (a `meta` key such as "subject"), validation holds whole groups, stratified by
    class (`_draw_groups`) until `val_count` images are reached (the last group may overshoot); a
    record without the key is a group of its own; train always keeps at least one group. The same
    records in the same order with the same seed always give the same split.
    """
    rng = np.random.default_rng(seed)
    target = val_count(len(records), val_size)
    is_val = np.zeros(len(records), dtype=bool)
    if group_by is None:
        is_val[rng.permutation(len(records))[:target]] = True
    else:
        members: dict = {}
        for i, record in enumerate(records):
            members.setdefault(record.get("meta", {}).get(group_by, ("no group", i)), []).append(i)
        groups = list(members.values())
        for g in _draw_groups(groups, records, target, rng):
            is_val[groups[g]] = True
    train, val = [], []
    for record, in_val in zip(records, is_val.tolist()):
        (val if in_val else train).append(record)
    return train, val


def _draw_groups(groups: list[list[int]], records: list[dict], target: int, rng: np.random.Generator) -> list[int]:
    """Groups for validation: in a random order, each draw takes, of the next `STRATIFY_WINDOW` groups,
    the one that best fills what validation still lacks of each class (its objects up to the class's
    due share, minus what it brings beyond it, each relative to the share), so a rare class held by a
    few groups gets its share instead of, by chance, none. O(groups x window x classes)."""
    counts = np.zeros((len(groups), len(CLASSES)))
    for g, members in enumerate(groups):
        for i in members:
            for obj in records[i]["objects"]:
                counts[g, CLASS_IDS[obj["class"]]] += 1
    due = counts.sum(0) * target / max(len(records), 1)
    scale = np.maximum(due, 1.0)
    order, window, chosen, taken = iter(rng.permutation(len(groups)).tolist()), [], [], 0
    lacking = due.copy()
    while taken < target:
        window = [g for g in window if taken + len(groups[g]) < len(records)]  # train keeps a group
        while len(window) < STRATIFY_WINDOW and (more := list(itertools.islice(order, STRATIFY_WINDOW - len(window)))):
            window += [g for g in more if taken + len(groups[g]) < len(records)]
        if not window:
            break
        fill = np.minimum(counts[window], lacking) / scale
        beyond = np.maximum(counts[window] - lacking, 0) / scale
        best = window.pop(int(np.argmax((fill - beyond).sum(1))))
        chosen.append(best)
        taken += len(groups[best])
        lacking = np.maximum(lacking - counts[best], 0)
    return chosen


def leakage(splits: dict[str, list[dict]], key: str = LEAKAGE_KEY) -> dict:
    """How many validation `key` values (subjects) also appear in each other split, and their images.

    `{"key", "val_values", "records_without_key", "<split>": {"shared_values", "val_images"}}`.
    """
    val_values = Counter(r["meta"][key] for r in splits["val"] if key in r.get("meta", {}))
    result = {
        "key": key,
        "val_values": len(val_values),
        "records_without_key": sum(key not in r.get("meta", {}) for rs in splits.values() for r in rs),
    }
    for split, records in splits.items():
        if split != "val":
            shared = val_values.keys() & {r["meta"][key] for r in records if key in r.get("meta", {})}
            result[split] = {"shared_values": len(shared), "val_images": sum(val_values[v] for v in shared)}
    return result


def meta_stats(records: list[dict], unrecognised_names: int) -> dict:
    """Per `meta` key: records that have it and its distinct values (counts per value when few)."""
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
        "unrecognised_names": unrecognised_names,
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
    val_size: int = 20000,
    seed: int = 0,
    export: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    raw_format: str = "auto",
    images_dir: str | Path | None = None,
    group_by: str | None = None,
    resize: int = 0,
) -> dict:
    """Validate `raw_dir`, split it, build the diet set, write `out_dir`.

    raw_dir: a competition folder (images/ + labels.json) or an AIHub tree (`raw_format` "auto" tells
    them apart); `images_dir`: where an AIHub tree's images are, when not under raw_dir.
    group_by: a `meta` key (e.g. "subject") whose groups validation holds whole; None = random images.
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
        return _prepare(raw, out_dir, val_size, seed, group_by, export, progress, resized)


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
    unrecognised_names: int


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
        return RawData("aihub", raw_dir, reading.image_root, validation, reading.counts["unrecognised_names"])
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
    return RawData("competition", labels_path, image_root, validation, unrecognised)


def _prepare(
    raw: RawData,
    out_dir: Path,
    val_size: int,
    seed: int,
    group_by: str | None,
    export: str | None,
    progress: bool,
    resized: dict | None = None,
) -> dict:
    records = raw.validation.records
    if group_by is not None and records and not any(group_by in r.get("meta", {}) for r in records):
        keys = sorted({k for r in records for k in r.get("meta", {})})
        raise DrowsyError(
            f"{raw.labels}: group_by {group_by!r}: no record's meta has this key "
            f'(keys: {", ".join(keys) or "none"}), so no group can be held out; group_by "" splits by random images'
        )
    train, val = split_records(records, val_size, seed, group_by)
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
    report = build_report(raw, splits, diet_counts, val_size, seed, group_by, outputs)
    if resized:
        report["resize"] = resized  # {"long_side", "resized", "linked"}
    write_json(out_dir / "report.json", report)
    return report


def build_report(raw: RawData, splits, diet_counts, val_size, seed, group_by, outputs) -> dict:
    """The report: inputs, totals (read = kept + dropped), split sizes and subject leakage, per-split
    class counts, diet rule counts, image shapes, meta coverage and every issue (dropped / repaired /
    info) with its record, file, field and reason."""
    counts, validation = raw.validation.counts, raw.validation
    actions = Counter(issue["action"] for issue in validation.issues)
    rule = "whole groups drawn at random until val_size" if group_by else "drawn at random"
    return {
        "format": raw.raw_format,
        "labels": str(raw.labels),
        "image_root": str(raw.image_root),
        "totals": {
            "records": {k: counts[f"records_{k}"] for k in ("read", "kept", "dropped")},
            "objects": {k: counts[f"objects_{k}"] for k in ("read", "kept", "dropped", "repaired")},
        },
        "split": {
            "seed": seed,
            "group_by": group_by,
            "val_size_requested": val_size,
            "val_images": len(splits["val"]),
            "train_images": len(splits["train"]),
            "rule": f"val = min(val_size, {MAX_VAL_FRACTION:.0%} of kept images, at least 1 when >= 2 images), "
            f"{rule} with the seed; train = the rest",
            "leakage": leakage(splits),
        },
        "splits": {split: split_stats(records) for split, records in splits.items()},
        "diet": {"source": "train split", "rules_in_order": list(DIET_RULES), **diet_counts},
        "image_shapes": image_shapes(validation.records),
        "meta": meta_stats(validation.records, raw.unrecognised_names),
        "issue_counts": {action: actions[action] for action in ("dropped", "repaired", "info")},
        "issues": validation.issues,
        "outputs": outputs,
    }


def summarize(report: dict) -> str:
    """A few lines for a terminal or notebook: what was kept, dropped, and where files went."""
    records, objects = report["totals"]["records"], report["totals"]["objects"]
    splits = report["splits"]
    lines = [
        f"records: {records['read']} read, {records['kept']} kept, {records['dropped']} dropped",
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
