"""drowsy.eval.metrics against the COCO reference (pycocotools), and the `drowsy evaluate` command."""

import contextlib
import io
import json
import re

import numpy as np
import pytest
import torch

from drowsy import CLASSES
from drowsy.cli import main
from drowsy.eval.metrics import (
    SIZE_RANGES,
    confusion_matrix,
    evaluate_arrays,
    evaluate_by_size,
    evaluate_detections,
    pr_curves,
)
from drowsy.eval.plots import plot_confusion_matrix, plot_pr_curves
from drowsy.eval.slices import slice_table
from drowsy.infer.postprocess import to_records


def obj(cls: str, box, score: float | None = None) -> dict:
    entry = {"class": cls, "position": [float(v) for v in box]}
    if score is not None:
        entry["confidence_score"] = score
    return entry


def random_fixture(seed: int, images: int = 30, score_decimals: int = 4):
    """Ground truth and noisy predictions: jittered hits, wrong classes, duplicates, clutter.
    Few score decimals make many tied scores, which COCOeval ranks in input order."""
    rng = np.random.default_rng(seed)
    ground_truth, predictions = [], []
    for i in range(images):
        name = f"img_{i:03d}.jpg"
        count = int(rng.integers(0, 8))
        classes = rng.integers(0, 6, count)  # "cigar" (6) never in the ground truth
        xy = rng.uniform(0, 500, (count, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 120, (count, 2))], axis=1)
        ground_truth.append({"file_name": name, "objects": [obj(CLASSES[c], b) for c, b in zip(classes, boxes)]})
        if rng.random() < 0.1:
            continue  # no prediction record for this image at all
        found = []
        for c, b in zip(classes, boxes):
            for _ in range(int(rng.integers(0, 3))):  # missed, found, or found twice
                label = c if rng.random() < 0.85 else int(rng.integers(0, 7))
                score = round(float(rng.uniform(0.01, 1)), score_decimals)
                found.append(obj(CLASSES[label], b + rng.normal(0, 6, 4), score))
        for _ in range(int(rng.integers(0, 5))):
            xy = rng.uniform(0, 500, 2)
            box = np.r_[xy, xy + rng.uniform(8, 120, 2)]
            found.append(obj(CLASSES[int(rng.integers(0, 7))], box, round(float(rng.uniform(0.01, 1)), score_decimals)))
        predictions.append({"file_name": name, "objects": found})
    return ground_truth, predictions


def handmade_fixture():
    """A crowded image, an image without objects, one without predictions, a class never labelled."""
    crowd = [[10 + 22 * k, 10, 30 + 22 * k, 30] for k in range(8)]  # 8 touching eyes in a row
    ground_truth = [
        {
            "file_name": "a.jpg",
            "objects": [
                obj("face", [100, 50, 300, 320]),
                obj("eye_opened", [140, 120, 180, 140]),
                obj("eye_closed", [220, 120, 260, 140]),
                obj("mouth_closed", [170, 240, 230, 270]),
            ],
        },
        {"file_name": "crowd.jpg", "objects": [obj("eye_opened", box) for box in crowd]},
        {"file_name": "empty.jpg", "objects": []},
        {"file_name": "unseen.jpg", "objects": [obj("phone", [10, 10, 60, 100]), obj("face", [5, 5, 200, 200])]},
    ]
    predictions = [
        {
            "file_name": "a.jpg",
            "objects": [
                obj("face", [102, 48, 298, 322], 0.95),
                obj("face", [90, 60, 280, 300], 0.4),
                obj("eye_opened", [141, 121, 181, 141], 0.8),
                obj("eye_opened", [221, 119, 259, 141], 0.7),
                obj("mouth_closed", [170, 236, 230, 272], 0.6),
                obj("cigar", [200, 260, 230, 270], 0.3),
            ],
        },
        {
            "file_name": "crowd.jpg",
            "objects": [
                *(
                    obj("eye_opened", [b[0] + 3, b[1] - 2, b[2] + 3, b[3] + 1], 0.9 - 0.05 * k)
                    for k, b in enumerate(crowd)
                ),
                obj("eye_opened", [21, 10, 41, 30], 0.88),  # straddles two objects
            ],
        },
        {"file_name": "empty.jpg", "objects": [obj("phone", [0, 0, 50, 50], 0.5)]},
    ]
    return ground_truth, predictions


def reference(ground_truth, predictions, category_ids=None, max_dets: int = 100) -> dict:
    """pycocotools' stats[0:3] (AP 0.5:0.95, AP 0.5, AP 0.75), structures built independently.
    Its summary only knows maxDets 100; for another cap, mAP50 is read from its precision array."""
    evaluator = reference_evaluator(ground_truth, predictions, category_ids, max_dets)
    with contextlib.redirect_stdout(io.StringIO()):
        if max_dets != 100:
            precision = evaluator.eval["precision"][0, :, :, 0, 0]  # IoU 0.50, area "all", the cap
            return {"mAP50": precision[precision > -1].mean()}
        evaluator.summarize()
    return {"mAP50_95": evaluator.stats[0], "mAP50": evaluator.stats[1], "mAP75": evaluator.stats[2]}


def reference_evaluator(ground_truth, predictions, category_ids=None, max_dets: int = 100):
    """pycocotools' COCOeval, evaluated and accumulated with its default area ranges (all, small, medium,
    large), categories in CLASSES order."""
    image_ids = {r["file_name"]: 1000 + 3 * i for i, r in enumerate(ground_truth)}
    category = {name: 10 + k for k, name in enumerate(CLASSES)}

    def xywh(position):
        x1, y1, x2, y2 = position
        return [x1, y1, x2 - x1, y2 - y1]

    objects = [(image_ids[r["file_name"]], o) for r in ground_truth for o in r["objects"]]
    annotations = [
        {
            "id": k + 1,
            "image_id": image,
            "category_id": category[o["class"]],
            "bbox": xywh(o["position"]),
            "area": xywh(o["position"])[2] * xywh(o["position"])[3],
            "iscrowd": 0,
        }
        for k, (image, o) in enumerate(objects)
    ]
    # skipped without pycocotools: only the tests that compare with it (the others do not need it)
    pycocotools_coco = pytest.importorskip("pycocotools.coco")
    pycocotools_eval = pytest.importorskip("pycocotools.cocoeval")
    truth = pycocotools_coco.COCO()
    truth.dataset = {
        "images": [{"id": i, "width": 640, "height": 480} for i in image_ids.values()],
        "categories": [{"id": c, "name": n} for n, c in category.items()],
        "annotations": annotations,
    }
    results = [
        {
            "image_id": image_ids[r["file_name"]],
            "category_id": category[o["class"]],
            "bbox": xywh(o["position"]),
            "score": o["confidence_score"],
        }
        for r in predictions
        for o in r["objects"]
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        detections = truth.loadRes(results) if results else pycocotools_coco.COCO()
        evaluator = pycocotools_eval.COCOeval(truth, detections, "bbox")
        if max_dets != 100:
            evaluator.params.maxDets = [max_dets]
        if category_ids is not None:
            evaluator.params.catIds = [category[n] for n in category_ids]
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


@pytest.mark.parametrize(
    "fixture",
    [handmade_fixture(), random_fixture(0), random_fixture(1, images=60), random_fixture(4, score_decimals=1)],
    ids=["handmade", "random0", "random1", "tied-scores"],
)
def test_equals_pycocotools_overall_and_per_class(fixture):
    ground_truth, predictions = fixture
    result = evaluate_detections(ground_truth, predictions)
    expected = reference(ground_truth, predictions)
    for key in ("mAP50", "mAP75", "mAP50_95"):
        assert result[key] == pytest.approx(expected[key], abs=1e-9), key
    labelled = {o["class"] for r in ground_truth for o in r["objects"]}
    assert set(result["per_class"]) == labelled
    for name, values in result["per_class"].items():
        expected = reference(ground_truth, predictions, category_ids=[name])
        for key in ("AP50", "AP75", "AP50_95"):
            assert values[key] == pytest.approx(expected["m" + key], abs=1e-9), (name, key)


def test_degenerate_boxes_score_like_pycocotools():
    """Boxes of zero width or height overlap nothing (even themselves), a box of a pixel or less
    still matches itself, and an inverted box (x2 < x1) overlaps nothing and has a negative area,
    outside the area range: an inverted object is not scored, an inverted prediction neither."""
    objects = [
        obj("face", [10, 0, 10, 20]),
        obj("phone", [0, 30, 20, 30]),
        obj("eye_opened", [0, 0, 1, 1]),
        obj("eye_closed", [5, 5, 5.8, 5.6]),
        obj("mouth_opened", [20, 0, 10, 10]),
        obj("mouth_closed", [40, 40, 60, 50]),
    ]
    ground_truth = [{"file_name": "thin.jpg", "objects": [*objects, obj("cigar", [0, 60, 10, 70])]}]
    # inverted over the cigar: its signed "IoU" would be -100 / -100 = 1
    inverted = obj("cigar", [10, 60, 0, 90], 0.9)
    predictions = [{"file_name": "thin.jpg", "objects": [*(dict(o, confidence_score=0.9) for o in objects), inverted]}]
    result = evaluate_detections(ground_truth, predictions)
    assert {name: values["AP50"] for name, values in result["per_class"].items()} == {
        "face": 0.0,
        "phone": 0.0,
        "eye_opened": 1.0,
        "eye_closed": 1.0,
        "mouth_closed": 1.0,
        "cigar": 0.0,
    }
    for name in result["per_class"]:
        assert result["per_class"][name]["AP50_95"] == pytest.approx(
            reference(ground_truth, predictions, category_ids=[name])["mAP50_95"], abs=1e-9
        ), name


def test_class_without_ground_truth_is_left_out():
    ground_truth, predictions = handmade_fixture()
    result = evaluate_detections(ground_truth, predictions)
    assert "cigar" not in result["per_class"]  # predicted but never labelled
    assert result["per_class"]["phone"]["AP50"] == 0.0  # labelled, only predicted where there is none
    assert result["mAP50"] == pytest.approx(np.mean([v["AP50"] for v in result["per_class"].values()]))
    assert result["images"] == 4 and result["predictions"] == 16


def test_max_dets_caps_per_image_and_class_like_cocoeval():
    truth_box = [0, 0, 10, 10]
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("face", truth_box)]}]
    decoys = [obj("face", [100 + 20 * k, 100, 110 + 20 * k, 110], 0.9) for k in range(5)]
    hit, other_class = obj("face", truth_box, 0.5), obj("eye_opened", truth_box, 0.99)
    predictions = [{"file_name": "x.jpg", "objects": [*decoys, hit, other_class]}]
    capped = evaluate_detections(ground_truth, predictions, max_dets=5)
    assert capped["per_class"]["face"]["AP50"] == 0.0  # the hit ranks 6th among the faces
    assert capped["mAP50"] == pytest.approx(reference(ground_truth, predictions, max_dets=5)["mAP50"], abs=1e-9)
    assert evaluate_detections(ground_truth, predictions, max_dets=1)["mAP50"] == pytest.approx(
        reference(ground_truth, predictions, max_dets=1)["mAP50"], abs=1e-9
    )  # one box per image and class is a cap
    uncapped = evaluate_detections(ground_truth, predictions, max_dets=6)  # the eye does not use up the cap
    assert uncapped["per_class"]["face"]["AP50"] == pytest.approx(1 / 6)
    assert uncapped["mAP50"] == pytest.approx(reference(ground_truth, predictions, max_dets=6)["mAP50"], abs=1e-9)


def test_the_default_cap_is_100_boxes_per_image_and_class():
    # 100 decoys outscore the one hit, so COCO's default of 100 detections leaves it out.
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 10, 10])]}]
    decoys = [[200 + 3 * k, 200, 201 + 3 * k, 201, 0.9, CLASSES.index("face")] for k in range(100)]
    rows = torch.tensor([*decoys, [0, 0, 10, 10, 0.5, CLASSES.index("face")]])
    predictions = to_records(["x.jpg"], [rows])
    assert evaluate_detections(ground_truth, predictions)["mAP50"] == 0.0
    assert evaluate_arrays(ground_truth, ["x.jpg"], [rows])["mAP50"] == 0.0
    assert pr_curves(ground_truth, predictions, iou=0.5)["face"][1].max() == 0.0
    assert evaluate_detections(ground_truth, predictions, max_dets=101)["mAP50"] > 0.0


def test_perfect_predictions_score_one():
    ground_truth, _ = random_fixture(2)
    predictions = [
        {"file_name": r["file_name"], "objects": [dict(o, confidence_score=0.9) for o in r["objects"]]}
        for r in ground_truth
    ]
    result = evaluate_detections(ground_truth, predictions)
    assert result["mAP50"] == result["mAP75"] == result["mAP50_95"] == 1.0
    assert all(v == 1.0 for values in result["per_class"].values() for v in values.values())


def test_ap75_reads_the_075_threshold_not_080():
    # IoU of the prediction with the object is 78 / 100 = 0.78: a hit at 0.75, a miss at 0.80.
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 100, 100])]}]
    predictions = [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 100, 78], 0.9)]}]
    result = evaluate_detections(ground_truth, predictions)
    assert result["mAP75"] == 1.0
    assert result["per_class"]["face"]["AP75"] == 1.0
    assert result["mAP50_95"] == pytest.approx(0.6)  # hits at 0.50, 0.55, ..., 0.75: 6 of 10 thresholds
    recall, precision = pr_curves(ground_truth, predictions, iou=0.8)["face"]
    assert precision.max() == 0.0


def test_pr_curve_mean_is_the_class_ap():
    ground_truth, predictions = random_fixture(3)
    result = evaluate_detections(ground_truth, predictions)
    curves = pr_curves(ground_truth, predictions, iou=0.75)
    assert set(curves) == set(result["per_class"])
    for name, (recall, precision) in curves.items():
        assert recall.shape == precision.shape == (101,)
        assert recall[0] == 0.0 and recall[-1] == 1.0
        assert np.all(np.diff(precision) <= 0)  # interpolated precision never rises with recall
        assert precision.mean() == pytest.approx(result["per_class"][name]["AP75"], abs=1e-12)
    grid = "[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]"
    with pytest.raises(ValueError, match=re.escape(f"IoU 0.77 is not on COCOeval's grid {grid}")):
        pr_curves(ground_truth, predictions, iou=0.77)


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        (
            [{"file_name": "ghost.jpg", "objects": []}, {"file_name": "phantom.jpg", "objects": []}],
            "2 predicted image(s) not in the ground truth: ghost.jpg, phantom.jpg",
        ),
        (
            [{"file_name": name, "objects": []} for name in ("x.jpg", "y.jpg", "x.jpg", "y.jpg")],
            "file name(s) listed more than once: x.jpg, y.jpg",
        ),
        ([{"file_name": "x.jpg", "objects": [obj("dog", [0, 0, 1, 1], 0.5)]}], "unknown class 'dog'"),
        (
            [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 1], 0.5)]}],
            "every position must be 4 numbers [x1, y1, x2, y2]",
        ),
    ],
    ids=["unknown-images", "repeated-images", "unknown-class", "short-position"],
)
def test_rejects_predictions_that_do_not_fit(predictions, message):
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 10, 10])]}]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        evaluate_detections(ground_truth, predictions)


def test_ground_truth_listing_an_image_twice_is_rejected_by_name():
    ground_truth = [
        {"file_name": "a.jpg", "objects": [obj("face", [0, 0, 10, 10])]},
        {"file_name": "b.jpg", "objects": []},
        {"file_name": "a.jpg", "objects": []},
    ]
    with pytest.raises(ValueError, match=r"^file name\(s\) listed more than once: a.jpg$"):
        evaluate_detections(ground_truth, [])


@pytest.mark.parametrize("max_dets", [0, -3])
def test_max_dets_under_one_is_rejected(max_dets):
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 10, 10])]}]
    with pytest.raises(ValueError, match=f"max_dets must be >= 1, got {max_dets}"):
        evaluate_detections(ground_truth, [], max_dets=max_dets)


def test_a_class_list_of_its_own_names_and_orders_the_classes():
    """A two-class dataset: only its classes are known and scored; a prediction of another class is
    an unknown class, not silently one of CLASSES."""
    classes = ("cat", "dog")
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("dog", [0, 0, 10, 10]), obj("cat", [20, 20, 40, 40])]}]
    predictions = [
        {"file_name": "x.jpg", "objects": [obj("dog", [0, 0, 10, 10], 0.9), obj("cat", [60, 60, 70, 70], 0.8)]}
    ]
    result = evaluate_detections(ground_truth, predictions, classes=classes)
    assert list(result["per_class"]) == ["cat", "dog"]
    assert result["per_class"]["dog"]["AP50"] == 1.0 and result["per_class"]["cat"]["AP50"] == 0.0
    assert result["mAP50"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown class 'face'; known: cat, dog"):
        evaluate_detections(
            ground_truth, [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 1, 1], 0.5)]}], classes=classes
        )


def test_ground_truth_without_objects_raises():
    with pytest.raises(ValueError, match="^the ground truth has no objects: nothing to score$"):
        evaluate_detections([{"file_name": "x.jpg", "objects": []}], [])


def test_confusion_matrix_counts_hits_confusions_misses_and_false_alarms():
    ground_truth = [
        {"file_name": "a.jpg", "objects": [obj("face", [0, 0, 100, 100]), obj("eye_opened", [10, 10, 30, 20])]},
        {"file_name": "b.jpg", "objects": [obj("mouth_closed", [40, 70, 60, 80])]},
    ]
    predictions = [
        {
            "file_name": "a.jpg",
            "objects": [
                obj("face", [0, 0, 100, 100], 0.9),
                obj("eye_closed", [10, 10, 30, 21], 0.8),
                obj("phone", [200, 200, 250, 250], 0.7),
                obj("cigar", [0, 0, 100, 100], 0.1),
            ],
        },
    ]
    matrix = confusion_matrix(ground_truth, predictions, iou=0.5, conf=0.25)
    ids = {name: k for k, name in enumerate(CLASSES)}
    background = len(CLASSES)
    expected = np.zeros((background + 1, background + 1), dtype=np.int64)
    expected[ids["face"], ids["face"]] = 1
    expected[ids["eye_closed"], ids["eye_opened"]] = 1  # right place, wrong class
    expected[ids["phone"], background] = 1  # matches nothing
    expected[background, ids["mouth_closed"]] = 1  # never predicted
    np.testing.assert_array_equal(matrix, expected)  # the cigar scores below conf


def test_confusion_matrix_matches_greedily_by_iou():
    # One prediction overlaps two objects; it goes to the better one, the other object is missed.
    ground_truth = [{"file_name": "a.jpg", "objects": [obj("face", [0, 0, 100, 100]), obj("phone", [0, 0, 100, 80])]}]
    predictions = [{"file_name": "a.jpg", "objects": [obj("face", [0, 0, 100, 78], 0.9)]}]
    matrix = confusion_matrix(ground_truth, predictions, iou=0.5)
    ids = {name: k for k, name in enumerate(CLASSES)}
    assert matrix[ids["face"], ids["phone"]] == 1  # IoU 0.975 with the phone beats 0.78 with the face
    assert matrix[len(CLASSES), ids["face"]] == 1
    assert matrix.sum() == 2


def test_confusion_matrix_defaults_match_at_iou_05_and_score_025_each_object_once():
    ids = {name: k for k, name in enumerate(CLASSES)}
    ground_truth = [
        {"file_name": "missed.jpg", "objects": [obj("eye_closed", [200, 200, 220, 210])]},
        {"file_name": "alarm.jpg", "objects": []},
        {"file_name": "one.jpg", "objects": [obj("face", [0, 0, 10, 10])]},
        {"file_name": "two.jpg", "objects": [obj("face", [0, 0, 10, 10]), obj("face", [50, 50, 60, 60])]},
    ]
    predictions = [  # no record for missed.jpg
        # the same box as the object of missed.jpg, but another image: a false alarm, not a hit
        {"file_name": "alarm.jpg", "objects": [obj("eye_closed", [200, 200, 220, 210], 0.9)]},
        # IoU 50 / 100 = 0.5 and a score of 0.25: both exactly at the default thresholds
        {"file_name": "one.jpg", "objects": [obj("face", [0, 0, 10, 5], 0.25)]},
        # a duplicate of a matched prediction finds its object taken
        {
            "file_name": "two.jpg",
            "objects": [
                obj("face", [0, 0, 10, 10], 0.9),
                obj("face", [0, 0, 10, 10], 0.8),
                obj("face", [50, 50, 60, 60], 0.7),
            ],
        },
    ]
    matrix = confusion_matrix(ground_truth, predictions)
    background = len(CLASSES)
    expected = np.zeros((background + 1, background + 1), dtype=np.int64)
    expected[ids["face"], ids["face"]] = 3
    expected[ids["face"], background] = 1
    expected[ids["eye_closed"], background] = 1
    expected[background, ids["eye_closed"]] = 1
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)


def test_confusion_matrix_gives_an_equal_iou_tie_to_the_prediction_listed_first():
    """Ties are broken by the submission's order, whatever order the records come in, so the matrix
    does not depend on the sorting algorithm (numpy's default sort is not stable beyond 16 items)."""
    ids = {name: k for k, name in enumerate(CLASSES)}
    ground_truth = [
        {"file_name": "ties.jpg", "objects": [obj("face", [0, 0, 100, 100])]},
        {"file_name": "other.jpg", "objects": [obj("phone", [0, 0, 10, 10])]},
    ]
    # 10 phones at IoU 0.8, then 10 exact boxes at IoU 1: the face first, then 9 open eyes
    ties = [
        *[obj("phone", [0, 0, 100, 80], 0.9)] * 10,
        obj("face", [0, 0, 100, 100], 0.9),
        *[obj("eye_opened", [0, 0, 100, 100], 0.9)] * 9,
    ]
    predictions = [
        {"file_name": "other.jpg", "objects": [obj("phone", [0, 0, 10, 10], 0.9)]},
        {"file_name": "ties.jpg", "objects": ties},
    ]
    matrix = confusion_matrix(ground_truth, predictions)
    background = len(CLASSES)
    expected = np.zeros((background + 1, background + 1), dtype=np.int64)
    expected[ids["face"], ids["face"]] = 1
    expected[ids["phone"], ids["phone"]] = 1
    expected[ids["eye_opened"], background] = 9
    expected[ids["phone"], background] = 10
    np.testing.assert_array_equal(matrix, expected)


def test_confusion_matrix_is_quiet_unless_asked_then_shows_its_stage_over_the_images(capsys, monkeypatch):
    ground_truth, predictions = handmade_fixture()  # 4 images
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    confusion_matrix(ground_truth, predictions)
    assert capsys.readouterr() == ("", "")
    confusion_matrix(ground_truth, predictions, progress=True)
    assert capsys.readouterr().out.startswith("confusion: 4 it in ")
    monkeypatch.setenv("DROWSY_PROGRESS", "bars")
    confusion_matrix(ground_truth, predictions, progress=True)
    assert "4/4" in capsys.readouterr().err  # a bar that knows its total


def write_labels(path, records) -> str:
    path.write_text(json.dumps({"annotations": records}))
    return str(path)


def test_cli_json_prints_one_parseable_object(tmp_path, capsys):
    ground_truth, predictions = handmade_fixture()
    labels = write_labels(tmp_path / "labels.json", ground_truth)
    submission = write_labels(tmp_path / "submission.json", predictions)
    assert main(["evaluate", "--labels", labels, "--predictions", submission, "--json"]) == 0
    printed = capsys.readouterr().out
    sizes = evaluate_by_size(ground_truth, predictions)
    assert json.loads(printed) == {**evaluate_detections(ground_truth, predictions), "by_size": sizes}
    assert printed.count("\n") == 1

    assert main(["evaluate", "--labels", labels, "--predictions", submission]) == 0
    table = capsys.readouterr().out
    assert "face" in table and "competition metric (mAP@0.75)" in table
    assert "AP@0.75 by object size" in table and all(row["value"] in table for row in sizes)


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        (
            [{"file_name": "ghost.jpg", "objects": []}],
            "submission.json: 1 predicted image(s) not in the ground truth: ghost.jpg",
        ),
        (
            [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 1, 1])]}],
            "submission.json: record 0 (x.jpg): field 'objects[0].confidence_score'",
        ),
        (
            [
                {"file_name": "x.jpg", "objects": [obj("face", [0, 0, 1, 1], 0.5)]},
                {"file_name": "x.jpg", "objects": []},
            ],
            "submission.json: record 1 (x.jpg): field 'file_name': repeats record 0",
        ),
    ],
    ids=["unknown-image", "missing-score", "repeated-image"],
)
def test_cli_bad_predictions_exit_2_with_one_line(tmp_path, capsys, predictions, message):
    labels = write_labels(tmp_path / "labels.json", [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 10, 10])]}])
    submission = write_labels(tmp_path / "submission.json", predictions)
    assert main(["evaluate", "--labels", labels, "--predictions", submission, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err


def test_cli_unreadable_labels_exit_2(tmp_path, capsys):
    (tmp_path / "labels.json").write_text("{not json")
    submission = write_labels(tmp_path / "submission.json", [])
    assert main(["evaluate", "--labels", str(tmp_path / "labels.json"), "--predictions", submission]) == 2
    assert "labels.json: not valid JSON" in capsys.readouterr().err


def test_arrays_score_exactly_as_their_submission_records():
    rng = np.random.default_rng(7)
    truth, names, detections = [], [], []
    for i in range(60):
        name = f"image_{i}.jpg"
        corner = rng.uniform(0, 300, (5, 2))
        boxes = np.column_stack([corner, corner + rng.uniform(10, 50, (5, 2))]).round(1)
        truth.append(
            {
                "file_name": name,
                "objects": [{"class": CLASSES[k % 7], "position": b.tolist()} for k, b in enumerate(boxes)],
            }
        )
        n = int(rng.integers(0, 40))
        xy = rng.uniform(0, 300, (n, 2))
        rows = np.column_stack([xy, xy + rng.uniform(5, 40, (n, 2)), rng.uniform(0, 1, n), rng.integers(0, 7, n)])
        detections.append(torch.from_numpy(rows.astype(np.float32)))
        names.append(name)
    assert evaluate_arrays(truth, names, detections) == evaluate_detections(truth, to_records(names, detections))
    # rounded like a submission: 0.123441 and 0.123449 both score 0.1234, so the hit listed first ranks first
    face = [[10, 10, 50, 60, 0.123441, CLASSES.index("face")], [200, 200, 240, 250, 0.123449, CLASSES.index("face")]]
    one = [{"file_name": "a.jpg", "objects": [{"class": "face", "position": [10, 10, 50, 60]}]}]
    tied = [torch.tensor(face, dtype=torch.float32)]
    assert evaluate_arrays(one, ["a.jpg"], tied) == evaluate_detections(one, to_records(["a.jpg"], tied))
    assert evaluate_arrays(one, ["a.jpg"], tied)["mAP75"] == 1.0
    with pytest.raises(ValueError, match="not in the ground truth: elsewhere.jpg"):
        evaluate_arrays(truth, ["elsewhere.jpg"], [detections[0]])


def test_arrays_round_boxes_to_a_tenth_of_a_pixel_and_rank_by_the_score():
    face = CLASSES.index("face")
    ground_truth = [
        {"file_name": "a.jpg", "objects": [obj("face", [0, 0, 3.3, 1])]},
        {"file_name": "b.jpg", "objects": [obj("face", [0, 0, 10, 10])]},
    ]
    # a.jpg: x2 = 2.46 is submitted as 2.5, IoU 2.5 / 3.3 = 0.758, a hit at 0.75 (2.46 / 3.3 = 0.745 would miss).
    # b.jpg: the hit listed first scores below a false alarm, so it ranks second: precision 1/2 for b alone.
    detections = [
        torch.tensor([[0, 0, 2.46, 1, 0.9, face]]),
        torch.tensor([[0, 0, 10, 10, 0.3, face], [50, 50, 60, 60, 0.4, face]]),
    ]
    result = evaluate_arrays(ground_truth, ["a.jpg", "b.jpg"], detections)
    assert result == evaluate_detections(ground_truth, to_records(["a.jpg", "b.jpg"], detections))
    assert evaluate_arrays(ground_truth[:1], ["a.jpg"], detections[:1])["mAP75"] == 1.0
    assert evaluate_arrays(ground_truth[1:], ["b.jpg"], detections[1:])["mAP50"] == pytest.approx(0.5)


def test_arrays_of_no_images_score_as_no_predictions():
    ground_truth = [{"file_name": "x.jpg", "objects": [obj("face", [0, 0, 10, 10])]}]
    result = evaluate_arrays(ground_truth, [], [])
    assert result == evaluate_detections(ground_truth, [])
    assert result["mAP50"] == 0.0 and result["predictions"] == 0


def test_plots_draw_one_line_per_class_and_one_cell_per_pair():
    import matplotlib

    matplotlib.use("Agg")
    ground_truth, predictions = handmade_fixture()
    curves = pr_curves(ground_truth, predictions)
    assert len(plot_pr_curves(curves).lines) == len(curves)
    matrix = confusion_matrix(ground_truth, predictions)
    ax = plot_confusion_matrix(matrix, CLASSES)
    assert len(ax.texts) == (len(CLASSES) + 1) ** 2
    shown = np.array([float(t.get_text()) for t in ax.texts]).reshape(matrix.shape)
    labelled = matrix.sum(axis=0) > 0
    np.testing.assert_allclose(shown[:, labelled].sum(axis=0), 1.0, atol=0.02)  # shares per true class


@pytest.mark.parametrize("fixture", [random_fixture(0), random_fixture(1, images=60)], ids=["random0", "random1"])
def test_ap_by_object_size_equals_pycocotools_area_ranges(fixture):
    ground_truth, predictions = fixture
    rows = evaluate_by_size(ground_truth, predictions)
    evaluator = reference_evaluator(ground_truth, predictions)
    assert [list(r) for r in evaluator.params.areaRng[1:]] == [list(r) for r in SIZE_RANGES.values()]
    precision = evaluator.eval["precision"][5, :, :, 1:, 2]  # IoU 0.75, [R, K, small/medium/large], 100 detections
    assert [row["value"].split()[0] for row in rows] == ["small", "medium", "large"]
    for a, row in enumerate(rows):
        for k, name in enumerate(CLASSES):
            expected = precision[:, k, a]
            if expected[0] == -1:
                assert row["AP75"][name] is None and row["objects"][name] == 0, (row["value"], name)
            else:
                assert row["AP75"][name] == pytest.approx(expected.mean(), abs=1e-9), (row["value"], name)
        assert row["mAP75"] == pytest.approx(precision[:, :, a][precision[:, :, a] > -1].mean(), abs=1e-9)
    sides = [
        (o["position"][2] - o["position"][0], o["position"][3] - o["position"][1])
        for r in ground_truth
        for o in r["objects"]
    ]
    assert sum(sum(row["objects"].values()) for row in rows) >= len(sides)  # every object in a size (both at 32², 96²)
    assert all(sum(row["objects"].values()) > 0 for row in rows)  # the fixture has every size


def test_a_size_without_objects_has_no_ap_and_shows_as_a_dash():
    ground_truth = [{"file_name": "a.jpg", "objects": [obj("face", [0, 0, 200, 200])]}]  # large only
    predictions = [
        {"file_name": "a.jpg", "objects": [obj("face", [0, 0, 200, 200], 0.9), obj("phone", [5, 5, 9, 9], 0.8)]}
    ]
    small, medium, large = evaluate_by_size(ground_truth, predictions)
    assert small["mAP75"] is None and medium["mAP75"] is None and small["images"] == 0
    assert large["mAP75"] == 1.0 and large["objects"]["face"] == 1 and large["AP75"]["phone"] is None
    table = slice_table([small, medium, large], "size")
    assert table["mAP@0.75"].tolist() == ["-", "-", "1.000"]
