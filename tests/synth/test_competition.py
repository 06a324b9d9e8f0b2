"""The synthetic competition layout: determinism, class rates, the labels schema, the CLI."""

import collections
import json

import cv2
import numpy as np
import pytest

from drowsy import CLASSES
from drowsy.cli import main
from drowsy.synth.competition import write_dataset
from drowsy.synth.render import render_scene
from drowsy.synth.scene import CLASS_RATES, FOOD_RATE, HELD_OUT_POSE, HELD_OUT_PROP_RATE, sample_scene

SIZE = (320, 180)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "images").iterdir())}


def test_same_seed_same_bytes_and_image_depends_only_on_seed_and_index(tmp_path, monkeypatch):
    first = write_dataset(tmp_path / "a", 5, seed=3, size=SIZE, progress=False)
    monkeypatch.setattr("drowsy.synth.competition._CHUNK", 2)  # several chunks, split over two processes
    second = write_dataset(tmp_path / "b", 5, seed=3, size=SIZE, workers=2, progress=False)
    write_dataset(tmp_path / "c", 3, seed=3, size=SIZE, progress=False)
    assert first.read_bytes() == second.read_bytes()
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    five, three = _files(tmp_path / "a"), _files(tmp_path / "c")
    assert len(three) == 3 and three == {name: five[name] for name in three}  # image i: (seed, i) only


def test_different_seed_different_images(tmp_path):
    write_dataset(tmp_path / "a", 2, seed=0, size=SIZE, progress=False)
    write_dataset(tmp_path / "b", 2, seed=1, size=SIZE, progress=False)
    for name, data in _files(tmp_path / "a").items():
        assert _files(tmp_path / "b")[name] != data


def test_class_rates_follow_the_raw_train_table():
    images = 2000
    counts, closed_per_image = collections.Counter(), collections.Counter()
    for index in range(images):
        image, objects = render_scene(np.random.default_rng([11, index]), *SIZE)
        classes = collections.Counter(o["class"] for o in objects)
        counts.update(classes)
        closed_per_image[classes["eye_closed"]] += 1
    assert image.shape == (SIZE[1], SIZE[0]) and image.dtype == np.uint8
    for name in CLASSES:
        rate = counts[name] / images
        assert rate == pytest.approx(CLASS_RATES[name], abs=max(0.02, 0.1 * CLASS_RATES[name])), name
    # a snack in the hand over the mouth in about FOOD_RATE of those hands, never without one
    scenes = [sample_scene(np.random.default_rng([11, index]), *SIZE) for index in range(images)]
    hands = [s.food for s in scenes if s.mouth_cover == "hand"]
    assert not any(s.food for s in scenes if s.mouth_cover != "hand")
    assert len(hands) > 100 and sum(hands) / len(hands) == pytest.approx(FOOD_RATE, abs=0.1)
    # closed eyes come in pairs; a single one only where the other eye is hidden
    assert closed_per_image[1] < 0.2 * closed_per_image[2]
    # the imbalance the diet set fights: open eyes outnumber closed ones, phones and cigars are rare
    assert counts["eye_opened"] > 4 * counts["eye_closed"] and counts["phone"] < 0.1 * images


def test_labels_schema_and_separate_labels_path(tmp_path):
    labels_path = write_dataset(
        tmp_path / "test", 4, seed=2, size=SIZE, labels_path=tmp_path / "test_labels.json", progress=False
    )
    assert labels_path == tmp_path / "test_labels.json"
    assert not (tmp_path / "test" / "labels.json").exists()
    labels = json.loads(labels_path.read_text())
    assert list(labels) == ["annotations"]
    assert [r["file_name"] for r in labels["annotations"]] == [f"image_{i:08d}.jpg" for i in range(4)]
    for record in labels["annotations"]:
        assert set(record) == {"file_name", "objects"}
        image = cv2.imread(str(tmp_path / "test" / "images" / record["file_name"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SIZE[1], SIZE[0])  # one grey channel
        for obj in record["objects"]:
            assert set(obj) == {"class", "position"} and obj["class"] in CLASSES
            x1, y1, x2, y2 = obj["position"]
            assert all(isinstance(v, float) and round(v, 1) == v for v in obj["position"])
            assert 0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]


def test_cli_writes_the_competition_layout(tmp_path):
    assert (
        main(
            [
                "synth",
                str(tmp_path / "raw"),
                "--format",
                "competition",
                "--images",
                "3",
                "--seed",
                "1",
                "--size",
                "160x96",
            ]
        )
        == 0
    )
    labels = json.loads((tmp_path / "raw" / "labels.json").read_text())
    assert len(labels["annotations"]) == 3
    assert sorted(p.name for p in (tmp_path / "raw" / "images").iterdir()) == [
        r["file_name"] for r in labels["annotations"]
    ]
    assert cv2.imread(str(tmp_path / "raw" / "images" / "image_00000002.jpg")).shape[:2] == (96, 160)


def test_the_held_out_family_is_never_drawn_elsewhere_and_only_it_in_its_own_set():
    scenes = [sample_scene(np.random.default_rng([12, index]), *SIZE) for index in range(3000)]
    held = [sample_scene(np.random.default_rng([12, index]), *SIZE, held_out=True) for index in range(600)]
    for prop in ("phone", "cigarette"):
        assert HELD_OUT_POSE not in {getattr(s, prop) for s in scenes}, prop
        assert {getattr(s, prop) for s in held} == {HELD_OUT_POSE, "none"}, prop
        share = sum(getattr(s, prop) != "none" for s in held) / len(held)
        assert share == pytest.approx(HELD_OUT_PROP_RATE, abs=0.06), prop
    # the rest of a held-out scene is drawn as usual: closed eyes and open mouths at their rates
    for rate in (lambda s: s.eyes_closed, lambda s: s.mouth_open):
        assert np.mean([rate(s) for s in held]) == pytest.approx(np.mean([rate(s) for s in scenes]), abs=0.05)


def test_cli_writes_a_held_out_family_set_and_refuses_it_for_an_aihub_tree(tmp_path, capsys):
    args = ["synth", str(tmp_path / "raw"), "--format", "competition", "--images", "24", "--size", "160x96"]
    assert main([*args, "--held-out"]) == 0
    records = json.loads((tmp_path / "raw" / "labels.json").read_text())["annotations"]
    props = collections.Counter(o["class"] for r in records for o in r["objects"] if o["class"] in ("phone", "cigar"))
    assert props["phone"] >= 6 and props["cigar"] >= 6  # about half the images each (a dozen)
    assert main(["synth", str(tmp_path / "tree"), "--held-out", "--images", "2"]) == 2
    assert "--held-out" in capsys.readouterr().err and not (tmp_path / "tree").exists()


@pytest.mark.parametrize("size", ["640", "640x", "axb", "32x32", "640x360x2"])
def test_cli_bad_size_is_one_line_exit_2(tmp_path, capsys, size):
    assert main(["synth", str(tmp_path / "raw"), "--images", "1", "--size", size]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("drowsy: error: --size") and repr(size) in err
    assert not (tmp_path / "raw").exists()
