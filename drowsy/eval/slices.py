"""Accuracy sliced by condition: AP@0.75 per class for each value of a `meta` key (lighting, behaviour, ...).

This is what tells a user that night-time or sunglasses are the weak spot. Ground-truth records
carry `meta` when they come from `drowsy prepare` (see drowsy.data.meta); records without it get what
their file name tells.
"""

from collections import Counter

from drowsy import CLASSES
from drowsy.data.meta import record_meta
from drowsy.eval.metrics import evaluate_detections

MISSING = "(unknown)"  # the slice of records that do not have the key


def evaluate_by(ground_truth: list[dict], predictions: list[dict], key: str, max_dets: int = 100) -> list[dict]:
    """One row per value of `key` (most images first): `{"value", "images", "objects": {class: n},
    "AP75": {class: AP or None when the slice has none of it}, "mAP75"}`.

    Each slice is scored on its own images only (COCOeval-exact, as `evaluate_detections`); a slice
    without any ground-truth object is left out. Predictions of images outside the ground truth are
    ignored, as the slices partition the ground truth.
    """
    by_name = {record["file_name"]: record for record in predictions}
    groups: dict[str, list[dict]] = {}
    for record in ground_truth:
        value = record_meta(record).get(key, MISSING)
        groups.setdefault(str(value), []).append(record)
    rows = []
    for value, records in sorted(groups.items(), key=lambda item: -len(item[1])):
        objects = Counter(obj["class"] for record in records for obj in record["objects"])
        if not objects:
            continue
        predicted = [by_name[r["file_name"]] for r in records if r["file_name"] in by_name]
        result = evaluate_detections(records, predicted, max_dets=max_dets)
        rows.append(
            {
                "value": value,
                "images": len(records),
                "objects": {name: objects[name] for name in CLASSES},
                "AP75": {
                    name: result["per_class"][name]["AP75"] if name in result["per_class"] else None for name in CLASSES
                },
                "mAP75": result["mAP75"],
            }
        )
    return rows


def condition_slices(ground_truth: list[dict], predictions: list[dict], keys: str) -> dict[str, list[dict]]:
    """`evaluate_by` for each of the comma-separated `keys` that some ground-truth record has."""
    found = [key.strip() for key in keys.split(",") if key.strip()]
    present = {k for record in ground_truth for k in record_meta(record)}
    return {key: evaluate_by(ground_truth, predictions, key) for key in found if key in present}


def slice_table(rows: list[dict], key: str):
    """A pandas table: one row per value, `AP (objects)` per class, images and mAP@0.75."""
    import pandas as pd

    table = pd.DataFrame(
        {name: [_cell(row["AP75"][name], row["objects"][name]) for row in rows] for name in CLASSES},
        index=pd.Index([row["value"] for row in rows], name=key),
    )
    table.insert(0, "images", [row["images"] for row in rows])
    table["mAP@0.75"] = ["-" if row["mAP75"] is None else f"{row['mAP75']:.3f}" for row in rows]
    return table


def _cell(ap: float | None, objects: int) -> str:
    return "-" if ap is None else f"{ap:.3f} ({objects})"


def plot_slices(rows: list[dict], key: str, ax=None):
    """Heat map of AP@0.75, value x class; blank where a slice has none of the class."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(CLASSES) + 2, 0.45 * len(rows) + 1.5))
    grid = np.array([[np.nan if row["AP75"][c] is None else row["AP75"][c] for c in CLASSES] for row in rows])
    labels = [f"{row['value']} ({row['images']})" for row in rows]
    sns.heatmap(
        grid,
        vmin=0,
        vmax=1,
        cmap="viridis",
        annot=True,
        fmt=".2f",
        xticklabels=CLASSES,
        yticklabels=labels,
        ax=ax,
        cbar_kws={"label": "AP@0.75"},
    )
    ax.set_title(f"AP@0.75 by {key} (images)")
    return ax
