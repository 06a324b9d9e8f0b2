"""Plots of metrics: PR curves labelled with their AP, the confusion matrix as shares of each true class."""

import numpy as np
import pytest

from drowsy.eval.plots import plot_backends, plot_confusion_matrix, plot_pr_curves


def test_pr_curve_plot_shows_each_curve_labelled_with_its_ap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, 101)
    curves = {"face": (recall, np.where(recall <= 0.5, 1.0, 0.0)), "phone": (recall, np.zeros(101))}
    figure, ax = plt.subplots()
    assert plot_pr_curves(curves, ax=ax) is ax
    for line, (recall_drawn, precision_drawn) in zip(ax.lines, curves.values(), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), recall_drawn)
        np.testing.assert_array_equal(line.get_ydata(), precision_drawn)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["face (AP 0.505)", "phone (AP 0.000)"]  # 51 / 101
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("recall", "precision")
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.02)
    # lower left even where the phone curve runs, which matplotlib's "best" place would avoid
    figure.canvas.draw()
    box, frame = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 - frame.x0 < frame.width / 4 and box.y0 - frame.y0 < frame.height / 4
    plt.close(figure)


def test_confusion_matrix_plot_shows_shares_of_each_true_class_on_a_0_to_1_scale():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = ("cat", "dog")
    matrix = np.array([[3, 1, 2], [1, 2, 1], [1, 1, 1]])  # columns sum to 5, 4 and 4
    figure, ax = plt.subplots()
    other = plt.figure()  # the current figure is not the one asked for
    assert plot_confusion_matrix(matrix, classes, ax=ax) is ax
    assert [t.get_text() for t in ax.texts] == ["0.60", "0.25", "0.50", "0.20", "0.50", "0.25", "0.20", "0.25", "0.25"]
    names = ["cat", "dog", "background"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [t.get_text() for t in ax.get_yticklabels()] == names
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true", "predicted")
    assert ax.collections[0].get_clim() == (0, 1)  # the colour of a share does not depend on the others
    assert figure.axes == [ax] and not other.axes  # no colour bar, nothing drawn elsewhere
    plt.close("all")

    never_true = np.array([[2, 0, 0], [0, 0, 0], [2, 0, 0]])  # no dog, no background column total
    ax = plot_confusion_matrix(never_true, classes)
    assert [t.get_text() for t in ax.texts] == ["0.50", "0.00", "0.00", "0.00", "0.00", "0.00", "0.50", "0.00", "0.00"]
    plt.close("all")


def test_backends_are_plotted_one_labelled_point_each_one_colour_per_model():
    rows = [
        {"backend": "yolov5n ONNX fp32", "ms_batch1_1thread": 6.8, "mAP75": 0.80},
        {"backend": "yolov5n ONNX INT8", "ms_batch1_1thread": 5.4, "mAP75": 0.79},
        {"backend": "yolov5n-relu PyTorch fp32", "ms_batch1_1thread": 8.0, "mAP75": 0.81},
    ]
    ax = plot_backends(rows)
    points = [tuple(collection.get_offsets()[0]) for collection in ax.collections]
    assert points == [(6.8, 0.80), (5.4, 0.79), (8.0, 0.81)]
    colours = [tuple(collection.get_facecolor()[0]) for collection in ax.collections]
    assert colours[0] == colours[1] != colours[2]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == [row["backend"] for row in rows] and ax.get_xlim() == (0, 8.4)


def test_a_backend_timed_but_not_scored_is_a_labelled_line_at_its_speed():
    rows = [
        {"backend": "ONNX INT8", "ms_batch1_1thread": 5.4, "mAP75": 0.79},
        {"backend": "peer fp32", "ms_batch1_1thread": 24.0, "mAP75": None},
    ]
    ax = plot_backends(rows)
    assert [tuple(c.get_offsets()[0]) for c in ax.collections] == [(5.4, 0.79)]  # one point: the scored row
    assert [tuple(line.get_xdata()) for line in ax.lines] == [(24.0, 24.0)]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["ONNX INT8", "peer fp32"]
    assert ax.get_xlim() == pytest.approx((0, 25.2))
