"""Plots of `drowsy.eval.metrics` results: PR curves per class and the confusion matrix."""

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from drowsy import CLASSES


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
