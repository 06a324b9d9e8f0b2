"""Calibration: per-signal score offsets fitted on labelled images, and calibration.json."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import drowsy.monitor.calibration
from drowsy import CLASS_IDS
from drowsy.config import MonitorConfig
from drowsy.errors import DrowsyError
from drowsy.monitor.calibration import calibrate, fit_offset, image_states, load_offsets
from drowsy.monitor.state import DriverStateMonitor, logit
from drowsy.synth.competition import write_dataset
from tests.helpers import FPS, bite, faint_eyes, of_type, run_frames


def sigmoid(log_odds: float) -> float:
    return 1 / (1 + np.exp(-log_odds))


def test_fit_offset_maximises_balanced_accuracy():
    offset, balanced = fit_offset([-3, -2.5, -2, -1, -0.5], [False, False, False, True, True])
    assert balanced == 1.0 and offset == pytest.approx(logit((sigmoid(-2) + sigmoid(-1)) / 2))  # the gap's middle score
    rng = np.random.default_rng(0)
    positive = rng.random(300) < 0.15
    logits = rng.normal(np.where(positive, -1.0, -2.0), 0.6)
    offset, balanced = fit_offset(logits, positive)
    brute = max(
        ((logits > t) & positive).sum() / positive.sum() + ((logits <= t) & ~positive).sum() / (~positive).sum()
        for t in np.concatenate([logits, [logits.min() - 1]])
    )
    assert balanced == pytest.approx(brute / 2)
    assert ((logits > offset) & positive).sum() / positive.sum() / 2 + ((logits <= offset) & ~positive).sum() / (
        ~positive
    ).sum() / 2 == pytest.approx(balanced)
    with pytest.raises(ValueError, match="both states"):
        fit_offset([0.1, 0.2], [True, True])


def test_the_boundary_is_the_middle_score_of_the_gap_also_where_one_side_sits_at_the_clip():
    # open mouths seen without a closed-mouth box vote 1 (log-odds clipped at 13.8): the log-odds middle of the gap
    # (6.6) would ask a yawn whose closed-mouth box still scores a little for o / (o + c) >= 0.9987
    offset, _ = fit_offset([-3.0, -2.0, -0.6, logit(1.0), logit(1.0)], [False, False, False, True, True])
    assert offset == pytest.approx(logit((sigmoid(-0.6) + 1.0) / 2), abs=1e-5) and 0.6 < offset < 0.8


def test_rare_signals_are_fitted_for_f1_which_does_not_trade_one_found_for_many_false():
    # 3 positives among 40: three negatives score above the weakest positive. Balanced accuracy takes the weakest
    # positive (1/3 of the true-positive rate) at the price of three false ones (3/37 of the true-negative rate);
    # F1 does not: 2 found, 0 false (F1 0.8) beats 3 found, 3 false (F1 0.667)
    logits = [-5.0] * 34 + [-2.0, -1.5, -1.0, -0.5, 1.0, 2.0]
    positive = [False] * 34 + [True, False, False, False, True, True]
    middle = {(-5, -2): logit((sigmoid(-5) + sigmoid(-2)) / 2), (-0.5, 1): logit((sigmoid(-0.5) + sigmoid(1)) / 2)}
    assert fit_offset(logits, positive) == (pytest.approx(middle[-5, -2]), pytest.approx((1 + 34 / 37) / 2))
    assert fit_offset(logits, positive, "F1") == (pytest.approx(middle[-0.5, 1]), pytest.approx(0.8))
    assert drowsy.monitor.calibration.CRITERIA["phone"] == drowsy.monitor.calibration.CRITERIA["cigarette"] == "F1"
    assert drowsy.monitor.calibration.CRITERIA["eyes_closed"] == "balanced accuracy"


def test_image_states_from_labels():
    objects = [{"class": c} for c in ("eye_closed", "eye_opened", "mouth_opened", "cigar")]
    assert image_states(objects) == {
        "eyes_closed": None,
        "mouth_open": True,
        "phone": False,
        "cigarette": True,
        "eyes_seen": True,
        "mouth_seen": True,
    }
    assert image_states([{"class": "eye_closed"}] * 2)["eyes_closed"] is True
    assert image_states([{"class": "eye_opened"}])["eyes_seen"] is True
    assert image_states([])["mouth_open"] is None
    assert image_states([{"class": "face"}, {"class": "mouth_closed"}])["eyes_seen"] is False  # sunglasses, a glare
    assert image_states([{"class": "face"}, {"class": "eye_opened"}])["mouth_seen"] is False  # a mask, a hand
    assert image_states([{"class": "mouth_closed"}])["mouth_seen"] is True


def labelled_split(tmp_path, objects: list[list[str]]) -> Path:
    """A prepared split (manifest + blank images) whose images are labelled with `objects` (class names)."""
    (tmp_path / "images").mkdir(parents=True)
    records = []
    for i, names in enumerate(objects):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.zeros((16, 16), np.uint8))
        records.append(
            {
                "file_name": f"{i}.png",
                "width": 16,
                "height": 16,
                "channels": 1,
                "objects": [{"class": name, "bbox": [1, 1, 4, 4]} for name in names],
            }
        )
    path = tmp_path / "val.json"
    path.write_text(json.dumps({"image_root": str(tmp_path / "images"), "annotations": records}))
    return path


def test_calibration_fits_eyes_seen_on_images_without_labelled_eyes(tmp_path, monkeypatch):
    objects = [["face", "eye_opened", "eye_opened"]] * 4 + [["face"]] * 3  # three wear sunglasses
    split = labelled_split(tmp_path, objects)
    scores = iter([0.8, 0.6, 0.9, 0.7, 0.15, 0.3, 0.1])
    monkeypatch.setattr(
        drowsy.monitor.calibration,
        "detect_frames",
        lambda detector, frames, *args: [faint_eyes(next(scores)) for _ in frames],
    )
    entry = calibrate(None, split, MonitorConfig(), img_size=64, batch=3, progress=False)["signals"]["eyes_seen"]
    assert entry["fitted"] and entry["fit"] == 1.0 and entry["positives"] == 4
    assert entry["offset"] == pytest.approx(logit(0.45), abs=1e-5)  # the middle of 0.3 and 0.6
    # every image with its eyes labelled: nothing to fit, any kept eye box counts as seen, as uncalibrated
    split = labelled_split(tmp_path / "all", [["eye_opened"]] * 3)
    scores = iter([0.8, 0.6, 0.9])
    entry = calibrate(None, split, MonitorConfig(min_score=0.05), img_size=64, progress=False)["signals"]["eyes_seen"]
    assert not entry["fitted"] and entry["offset"] == pytest.approx(logit(0.05))


def test_calibration_fits_mouth_seen_on_images_without_a_labelled_mouth(tmp_path, monkeypatch):
    objects = [["face", "eye_opened", "mouth_closed"]] * 3 + [["face", "eye_opened"]] * 2  # two masks or hands
    split = labelled_split(tmp_path, objects)
    scores = iter([0.7, 0.5, 0.8, 0.2, 0.1])
    monkeypatch.setattr(
        drowsy.monitor.calibration,
        "detect_frames",
        lambda detector, frames, *args: [bite(next(scores)) for _ in frames],
    )
    entry = calibrate(None, split, MonitorConfig(), img_size=64, batch=2, progress=False)["signals"]["mouth_seen"]
    assert entry["fitted"] and entry["fit"] == 1.0 and entry["positives"] == 3
    assert entry["offset"] == pytest.approx(logit(0.35), abs=1e-5)  # the middle of 0.2 and 0.5


def test_calibration_turns_a_biased_detector_into_right_states(tmp_path, monkeypatch):
    """A detector that ranks closed eyes right but votes 'open' on them (as the demo model does) misses
    a microsleep raw; calibrated on labelled images, the monitor finds it."""
    labels = write_dataset(tmp_path / "data", 40, seed=3, size=(160, 96), progress=False)
    records = json.loads(labels.read_text())["annotations"]
    manifest = tmp_path / "val.json"
    manifest.write_text(
        json.dumps(
            {
                "image_root": str(tmp_path / "data" / "images"),
                "annotations": [{**r, "width": 160, "height": 96, "channels": 1} for r in records],
            }
        )
    )

    def biased(objects_closed: bool) -> np.ndarray:
        closed, opened = (0.2, 0.5) if objects_closed else (0.08, 0.8)
        return np.array(
            [[0, 0, 9, 9, closed, CLASS_IDS["eye_closed"]], [0, 0, 9, 9, opened, CLASS_IDS["eye_opened"]]], np.float32
        )

    truth_by_shape = iter([image_states(r["objects"])["eyes_closed"] for r in records])
    monkeypatch.setattr(
        drowsy.monitor.calibration,
        "detect_frames",
        lambda detector, frames, *args: [biased(bool(next(truth_by_shape))) for _ in frames],
    )
    calibration = calibrate(None, manifest, MonitorConfig(), img_size=64, batch=7, progress=False)
    eyes = calibration["signals"]["eyes_closed"]
    assert eyes["fitted"] and eyes["fit"] == 1.0 and eyes["positives"] > 0
    assert np.log(0.08 / 0.8) < eyes["offset"] < np.log(0.2 / 0.5)
    frames = [biased(False)] * 15 + [biased(True)] * 45 + [biased(False)] * 15  # 3 s closed
    _, raw_events = run_frames(frames)
    assert of_type(raw_events, "sleep") == []
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration))
    monitor = DriverStateMonitor(MonitorConfig(), FPS, load_offsets(path, img_size=64))
    for i, detections in enumerate(frames):
        monitor.update(i, detections)
    assert [(e.start, e.end) for e in of_type(monitor.finish(), "sleep")] == [
        (pytest.approx(14.5 / FPS), pytest.approx(59.5 / FPS))
    ]
    with pytest.raises(DrowsyError, match="img_size': calibrated at 64 pixels, the monitor runs at 416"):
        load_offsets(path, img_size=416)
    seen = []  # a capped calibration runs the detector on that many images, spread over the split
    monkeypatch.setattr(
        drowsy.monitor.calibration,
        "detect_frames",
        lambda detector, frames, *args: seen.extend(frames) or [biased(False) for _ in frames],
    )
    capped = calibrate(None, manifest, MonitorConfig(), img_size=64, batch=7, progress=False, images=9)
    assert len(seen) == 9 and capped["signals"]["eyes_closed"]["images"] <= 9


def test_malformed_calibration_is_one_line_error(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"img_size": 416, "signals": {"eyes_closed": {"offset": "low"}}}))
    with pytest.raises(DrowsyError, match=r"calibration.json: record 'eyes_closed': field 'offset': expected a finite"):
        load_offsets(path, 416)
    path.write_text(json.dumps({"img_size": 416, "signals": {"eyes": {"offset": 1.0}}}))
    with pytest.raises(DrowsyError, match="record 'eyes': unknown signal"):
        load_offsets(path, 416)
