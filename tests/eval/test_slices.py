"""Accuracy sliced by a meta key: each slice scored on its own images, exactly as the whole."""

import json

import pytest

from drowsy.cli import main
from drowsy.eval.metrics import evaluate_detections
from drowsy.eval.slices import MISSING, evaluate_by, plot_slices, slice_table


def gt(name, lighting=None, classes=("face", "eye_opened")):
    record = {
        "file_name": name,
        "objects": [{"class": c, "position": [10 + 20 * i, 10, 25 + 20 * i, 30]} for i, c in enumerate(classes)],
    }
    if lighting is not None:
        record["meta"] = {"lighting": lighting}
    return record


def predicted(record, shift=0.0, score=0.9):
    return {
        "file_name": record["file_name"],
        "objects": [
            {"class": o["class"], "position": [v + shift for v in o["position"]], "confidence_score": score}
            for o in record["objects"]
        ],
    }


@pytest.fixture
def data():
    truth = [gt(f"day_{i}.jpg", "front") for i in range(4)] + [gt(f"night_{i}.jpg", "none") for i in range(3)]
    truth.append(gt("plain.jpg", classes=("face", "phone")))
    # day: exact boxes; night: boxes shifted 6 px (IoU < 0.75 for the 15 px eyes); plain: exact
    preds = [predicted(r, shift=6.0 if r["file_name"].startswith("night") else 0.0) for r in truth]
    return truth, preds


def test_each_slice_is_scored_on_its_own_images(data):
    truth, preds = data
    rows = {row["value"]: row for row in evaluate_by(truth, preds, "lighting")}
    assert list(rows) == ["front", "none", MISSING]  # most images first
    assert rows["front"]["mAP75"] == 1.0 and rows["front"]["images"] == 4
    night = [r for r in truth if r["file_name"].startswith("night")]
    expected = evaluate_detections(night, [p for p in preds if p["file_name"].startswith("night")])
    assert rows["none"]["mAP75"] == pytest.approx(expected["mAP75"]) and rows["none"]["mAP75"] < 1.0
    assert rows["none"]["objects"]["eye_opened"] == 3 and rows["none"]["AP75"]["phone"] is None
    assert rows[MISSING]["AP75"]["phone"] == 1.0


def test_file_names_give_meta_when_records_have_none():
    names = [
        "001_G1_01_좌측광원_정면_정상주시_20200917_182234_00001.jpg",
        "001_G1_01_후면광원_정면_정상주시_20200917_182234_00002.jpg",
    ]
    truth = [gt(name) for name in names]
    rows = evaluate_by(truth, [predicted(r) for r in truth], "lighting")
    assert sorted(row["value"] for row in rows) == ["back", "left"]


def test_table_and_plot_show_every_slice(data):
    truth, preds = data
    rows = evaluate_by(truth, preds, "lighting")
    table = slice_table(rows, "lighting")
    assert list(table.index) == ["front", "none", MISSING]
    assert table.loc["front", "face"] == "1.000 (4)" and table.loc["none", "phone"] == "-"
    ax = plot_slices(rows, "lighting")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["front (4)", "none (3)", f"{MISSING} (1)"]


def test_cli_prints_the_slices(data, tmp_path, capsys):
    truth, preds = data
    (tmp_path / "gt.json").write_text(json.dumps({"annotations": truth}))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": preds}))
    assert (
        main(
            [
                "evaluate",
                "--labels",
                str(tmp_path / "gt.json"),
                "--predictions",
                str(tmp_path / "pred.json"),
                "--by",
                "lighting",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert [row["value"] for row in result["by"]["lighting"]] == ["front", "none", MISSING]
    assert (
        main(
            [
                "evaluate",
                "--labels",
                str(tmp_path / "gt.json"),
                "--predictions",
                str(tmp_path / "pred.json"),
                "--by",
                "lighting",
            ]
        )
        == 0
    )
    assert "AP@0.75 by lighting" in capsys.readouterr().out
