"""Figure helpers: a record drawn with each class named once, its file name wrapped to the panel's width."""

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from drowsy.viz.figures import draw_record, wrapped  # noqa: E402
from tests.helpers import obj  # noqa: E402


def test_a_long_file_name_wraps_after_its_underscores_within_the_width():
    name = "163_G1_01_back_rear-view mirror_smoking_20201101_123600_00001.jpg"
    lines = wrapped(name, width=42).split("\n")
    assert "".join(lines) == name and len(lines) == 2
    assert all(len(line) <= 42 for line in lines) and all(line.endswith("_") for line in lines[:-1])
    assert wrapped("short_name.jpg") == "short_name.jpg"


def test_each_class_is_named_once_however_many_boxes_it_has(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((60, 100), np.uint8))
    record = {
        "file_name": "a.png",
        "objects": [obj("eye_opened", 10, 10, 20, 16), obj("eye_opened", 22, 10, 32, 16), obj("face", 5, 5, 40, 50)],
    }
    _, ax = plt.subplots()
    draw_record(ax, tmp_path, record)
    assert len(ax.patches) == 3  # every box drawn
    assert [t.get_text() for t in ax.texts] == ["eye_opened", "face"]
    plt.close("all")
