"""Plots of `drowsy.eval.metrics` results: PR curves per class, the confusion matrix, accuracy against speed
per inference backend."""

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from drowsy import CLASSES

DEPLOY_TABLE = "outputs/benchmarks/deploy/deploy.json"  # benchmarks/deploy.py's table, plotted in notebook 05


def plot_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], ax=None):
    """Draw `pr_curves()` output, one line per class labelled with its AP; returns the Axes."""
    ax = ax if ax is not None else plt.subplots(figsize=(7, 5))[1]
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=f"{name} (AP {precision.mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize="small")
    return ax


def plot_confusion_matrix(matrix: np.ndarray, classes=CLASSES, ax=None):
    """Heatmap of `confusion_matrix()` output, normalised per true class (each column sums to 1)."""
    ax = ax if ax is not None else plt.subplots(figsize=(8, 7))[1]
    totals = matrix.sum(axis=0, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    names = [*classes, "background"]
    sns.heatmap(
        shares,
        annot=True,
        fmt=".2f",
        vmin=0,
        vmax=1,
        cmap="Blues",
        square=True,
        cbar=False,
        xticklabels=names,
        yticklabels=names,
        ax=ax,
    )
    ax.set(xlabel="true", ylabel="predicted")
    return ax


def plot_backends(rows: list[dict], ax=None):
    """Accuracy against speed, one point per inference backend: `rows` as benchmarks/deploy.py writes them
    (`backend`, `ms_batch1_1thread`, `mAP75`); a row timed but not scored (`mAP75` None: the ultralytics peer,
    OpenVINO) is a dashed vertical line at its speed, labelled at the top. Returns the Axes."""
    ax = ax if ax is not None else plt.subplots(figsize=(7, 4.5))[1]
    for row in rows:
        ms, score = row["ms_batch1_1thread"], row["mAP75"]
        if score is None:
            ax.axvline(ms, color="0.6", linestyle="--", linewidth=1)
            ax.annotate(
                row["backend"],
                (ms, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -4),
                textcoords="offset points",
                rotation=90,
                va="top",
                fontsize=8,
                color="0.4",
            )
        else:
            ax.scatter(ms, score, s=60)
            ax.annotate(row["backend"], (ms, score), xytext=(6, 4), textcoords="offset points")
    ax.set(xlabel="ms per image, batch 1, one thread", ylabel="val mAP@0.75")
    ax.set_xlim(0, 1.25 * max(row["ms_batch1_1thread"] for row in rows))  # room for the rightmost label
    return ax
