"""The train/val split: drawn with a seed (random images, or whole groups of a meta key such as the
subject, stratified by class), or AIHub's own (its `Validation/` folder), and checked not to leave a
side empty."""

import dataclasses
import itertools
from collections import Counter

import numpy as np

from drowsy import CLASS_IDS, CLASSES
from drowsy.errors import DrowsyError

SPLITS = ("draw", "aihub")  # drawn with the seed; the download's Training/ and Validation/ folders
VAL_SIZE = 20000  # validation images drawn by default (the recipe's)
LEAKAGE_KEY = "subject"  # report.json says how many validation subjects also appear in train
MAX_VAL_FRACTION = 0.2
STRATIFY_WINDOW = 64  # groups weighed at each draw of a grouped split


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


@dataclasses.dataclass(frozen=True)
class SplitSettings:
    """How to split: `split` ("draw" or "aihub"), and for "draw" `val_size`, `seed` and `group_by` (a meta key
    whose groups validation holds whole; None: random images)."""

    split: str
    val_size: int
    seed: int
    group_by: str | None


def train_val(records: list[dict], how: SplitSettings, source) -> tuple[list[dict], list[dict]]:
    """(train, val) as `how` says, or a one-line DrowsyError naming `source` (the raw data) when it cannot
    be made: a `group_by` key no record has, a record outside AIHub's folders, a side left empty."""
    if how.split == "aihub":
        train, val = _aihub_split(records, source)
    else:
        if how.group_by is not None and records and not any(how.group_by in r.get("meta", {}) for r in records):
            keys = sorted({k for r in records for k in r.get("meta", {})})
            raise DrowsyError(
                f"{source}: group_by {how.group_by!r}: no record's meta has this key (keys: "
                f'{", ".join(keys) or "none"}), so no group can be held out; group_by "" splits by random images'
            )
        train, val = split_records(records, how.val_size, how.seed, how.group_by)
    _check_sides(train, val, how, source)
    return train, val


def _aihub_split(records: list[dict], source) -> tuple[list[dict], list[dict]]:
    """(train, val) as the download has them: records under `Validation/` are validation, those under
    `Training/` train (meta `aihub_split`); a record under neither is a one-line error."""
    train, val = [], []
    for record in records:
        side = record.get("meta", {}).get("aihub_split")
        if side is None:
            raise DrowsyError(
                f"{source}: split 'aihub': {record['file_name']} is under neither a Training/ nor a Validation/ "
                'folder; split "draw" draws validation with the seed'
            )
        (val if side == "validation" else train).append(record)
    return train, val


def _check_sides(train: list[dict], val: list[dict], how: SplitSettings, source) -> None:
    """One line saying why, when the split leaves train empty, or validation empty though some was asked
    for (val_size > 0, or AIHub's own split): instead of writing an empty manifest."""
    if train and (val or (how.split == "draw" and how.val_size == 0)):
        return
    empty = "train" if not train else "validation"
    records, group_by = train + val, how.group_by
    groups = {record.get("meta", {}).get(group_by) for record in records} if group_by else set()
    if how.split == "aihub":
        folder = "Training/" if empty == "train" else "Validation/"
        why = f'no usable record is under a {folder} folder; split "draw" draws validation with the seed'
    elif len(records) < 2:
        why = f"only {len(records)} usable record(s)"
    elif group_by and len(groups) == 1:
        why = (
            f"every record has the same {group_by} ({groups.pop()!r}), one group cannot be split; "
            'group_by "" splits by random images'
        )
    else:
        why = f"val_size {how.val_size} of {len(records)} records"
    raise DrowsyError(f"{source}: the split would leave {empty} empty: {why}")
