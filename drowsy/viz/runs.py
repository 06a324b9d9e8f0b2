"""Tables and plots of training runs, read back from the files a run writes (metrics.jsonl)."""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from drowsy import CLASSES
from drowsy.paths import resolve


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """One row per epoch from `<run_dir>/metrics.jsonl` (per-class AP@0.75 as `AP75_<class>` columns)."""
    rows = [json.loads(line) for line in (resolve(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
    for row in rows:
        row.update({f"AP75_{c}": ap for c, ap in row.pop("per_class", {}).items()})
    return pd.DataFrame(rows)


def plot_history(history: pd.DataFrame, title: str = ""):
    """Loss parts per epoch (left) and validation mAP (right)."""
    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(12, 4))
    for part in ("box", "obj", "cls"):
        loss_ax.plot(history["epoch"] + 1, history[f"loss_{part}"], label=part)
    loss_ax.set(xlabel="epoch", ylabel="loss per image", title=f"{title} training loss".strip())
    loss_ax.legend()
    validated = history.dropna(subset=["mAP75"]) if "mAP75" in history else history.iloc[0:0]
    for key, label in (("mAP50", "mAP@0.5"), ("mAP75", "mAP@0.75 (competition)"), ("mAP50_95", "mAP@[.5:.95]")):
        if key in validated:
            map_ax.plot(validated["epoch"] + 1, validated[key], marker="o", label=label)
    map_ax.set(xlabel="epoch", ylabel="mAP", ylim=(0, 1), title=f"{title} validation".strip())
    map_ax.legend()
    fig.tight_layout()
    return fig


def per_class_table(metrics: dict) -> pd.DataFrame:
    """Per-class AP table (rows in class order, then the means) from `evaluate_detections` output."""
    rows = {c: metrics["per_class"][c] for c in CLASSES if c in metrics["per_class"]}
    table = pd.DataFrame(rows).T[["AP50", "AP75", "AP50_95"]]
    table.loc["mean"] = [metrics["mAP50"], metrics["mAP75"], metrics["mAP50_95"]]
    return table.round(4)


def compare_runs(run_dirs: dict[str, str | Path]) -> pd.DataFrame:
    """AP@0.75 per class (rows) at the last validation of each run (columns), plus the mean."""
    columns = {}
    for name, run_dir in run_dirs.items():
        last = read_history(run_dir).dropna(subset=["mAP75"]).iloc[-1]
        column = last.filter(like="AP75_").rename(lambda key: key.removeprefix("AP75_"))
        columns[name] = pd.concat([column, pd.Series({"mAP75": last["mAP75"]})])
    return pd.DataFrame(columns).astype(float).round(4)
