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


RUNTIMES = ("PyTorch", "ONNX", "OpenVINO")  # plot_backends: the word of a backend's name that starts its runtime


def plot_backends(rows: list[dict], ax=None):
    """Accuracy against speed, one legend entry per inference backend: `rows` as benchmarks/deploy.py writes
    them (`backend`, `ms_batch1_1thread`, `mAP75`). A backend's name is its model, then its runtime and
    precision ("yolov5n-relu ONNX INT8"): one colour per model, one marker (or dash) per runtime and precision.
    A scored row is a point; a row timed but not scored (`mAP75` None: the ultralytics peer, OpenVINO) is a
    vertical line at its speed (grey when its name names no runtime). Returns the Axes."""
    ax = ax if ax is not None else plt.subplots(figsize=(9, 4.5))[1]
    colours, styles = {}, {}
    for row in rows:
        ms, score, words = row["ms_batch1_1thread"], row["mAP75"], row["backend"].split()
        at = next((i for i, word in enumerate(words) if word in RUNTIMES), None)
        model, kind = (" ".join(words[:at]), " ".join(words[at:])) if at is not None else (None, row["backend"])
        colour = "0.5" if model is None else colours.setdefault(model, f"C{len(colours)}")
        style = styles.setdefault(kind, len(styles))
        if score is None:
            dash = ("--", ":", "-.")[style % 3]
            ax.axvline(ms, color=colour, linestyle=dash, linewidth=1, label=row["backend"])
        else:
            ax.scatter(ms, score, s=60, color=colour, marker="osD^vP*X"[style % 8], label=row["backend"])
    ax.set(xlabel="ms per image, batch 1, one thread", ylabel="val mAP@0.75")
    ax.set_xlim(0, 1.05 * max(row["ms_batch1_1thread"] for row in rows))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return ax
