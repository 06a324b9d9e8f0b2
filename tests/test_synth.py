"""The synthetic dataset: determinism, exact boxes, class rates, file layout, CLI."""

import collections
import dataclasses
import json

import cv2
import numpy as np
import pytest

from drowsy import CLASSES, synth
from drowsy.cli import main
from drowsy.synth.scene import FOOD_RATE

SIZE = (320, 180)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "images").iterdir())}


def test_same_seed_same_bytes_and_image_depends_only_on_seed_and_index(tmp_path, monkeypatch):
    first = synth.write_dataset(tmp_path / "a", 5, seed=3, size=SIZE, progress=False)
    monkeypatch.setattr("drowsy.synth.dataset._CHUNK", 2)  # several chunks, split over two processes
    second = synth.write_dataset(tmp_path / "b", 5, seed=3, size=SIZE, workers=2, progress=False)
    synth.write_dataset(tmp_path / "c", 3, seed=3, size=SIZE, progress=False)
    assert first.read_bytes() == second.read_bytes()
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    five, three = _files(tmp_path / "a"), _files(tmp_path / "c")
    assert len(three) == 3 and three == {name: five[name] for name in three}  # image i: (seed, i) only


def test_different_seed_different_images(tmp_path):
    synth.write_dataset(tmp_path / "a", 2, seed=0, size=SIZE, progress=False)
    synth.write_dataset(tmp_path / "b", 2, seed=1, size=SIZE, progress=False)
    for name, data in _files(tmp_path / "a").items():
        assert _files(tmp_path / "b")[name] != data


def _extent(pixels):
    """Pixel-edge box [4] around the true pixels of a [H, W] bool map."""
    ys, xs = np.nonzero(pixels)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _part_of(canvas, cls, box):
    """The OWNERS id of the part a labelled box stands for (an eye: the one whose pixels it holds)."""
    if cls.startswith("eye"):
        eyes = [synth.OWNERS["eye_left"], synth.OWNERS["eye_right"]]
        return next(e for e in eyes if e in canvas.coverage and _centre_inside(canvas.coverage[e], box))
    return synth.OWNERS[{"face": "face", "phone": "phone", "cigar": "cigar"}.get(cls, "mouth")]


def _centre_inside(coverage, box):
    ys, xs = np.nonzero(coverage > 0.5)
    return box[0] <= xs.mean() <= box[2] and box[1] <= ys.mean() <= box[3]


def assert_tight(canvas, cls, box, width, height):
    """Each side of the box lies between the part's outermost pixels covered at all and those it
    shows (covered by more than half, nothing drawn over them) - for the face, those it covered
    before a hand or mask went over it: the face box is the whole face."""
    part = _part_of(canvas, cls, box)
    touched = _extent(canvas.coverage[part] > 0)
    shown = _extent(canvas.coverage[part] > 0.5 if cls == "face" else canvas.owner == part)
    grow = np.array([-1, -1, 1, 1])  # towards the outside of the box
    slack = 0.35  # the 4x-supersampled fill puts edges within a subpixel (1/4 px, diagonally more)
    assert np.all((box - touched) * grow <= slack), (cls, box, touched)  # nothing beyond the pixels
    # a pixel shown by more than half sticks out of the box by less than half its size
    assert np.all((shown - box) * grow <= 0.5 + slack), (cls, box, shown)
    on_border = box[0] == 0 or box[1] == 0 or box[2] == width or box[3] == height
    if not on_border:  # a border cuts thin slivers that no pixel shows by more than half
        assert np.all(np.abs(shown - box) <= 1.25), (cls, box, shown)  # ellipse tips: ~1 px


# every prop and occluder, so that each kind of overlap is drawn
VARIANTS = [
    {},
    {"phone": "ear", "cigarette": "mouth", "mouth_cover": "none", "mouth_open": False},
    {"phone": "hand", "cigarette": "hand", "mouth_cover": "none", "mouth_open": True},
    {"phone": "ear", "mouth_cover": "mask", "hidden_eye": 1, "eyes_closed": True},
    {"cigarette": "hand", "mouth_cover": "hand", "hidden_eye": -1},
    {"glasses": True, "cap": True, "phone": "ear", "mouth_cover": "none"},
    {"glasses": True, "cap": True, "eyes_closed": True, "hidden_eye": 1, "mouth_cover": "mask"},
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_boxes_inside_image_and_tight_around_visible_pixels(variant):
    width, height = 640, 360
    for index in range(30):
        rng = np.random.default_rng([5, index])
        state = dataclasses.replace(synth.sample_scene(rng, width, height), **variant)
        _, objects, canvas = synth.draw_scene(rng, width, height, state, trace=True)
        assert [c for c, _ in objects].count("face") == 1
        for cls, box in objects:
            assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
            assert_tight(canvas, cls, np.array(box), width, height)


def test_render_scene_follows_the_state():
    rng = np.random.default_rng(0)
    state = synth.sample_scene(rng, *SIZE)
    closed = dataclasses.replace(state, eyes_closed=True, hidden_eye=0, mouth_cover="none", mouth_open=True,
                                 phone="hand", cigarette="hand")
    _, objects = synth.render_scene(rng, *SIZE, closed)
    assert sorted(o["class"] for o in objects) == sorted(
        ["face", "eye_closed", "eye_closed", "mouth_opened", "phone", "cigar"])
    hidden = dataclasses.replace(state, eyes_closed=False, hidden_eye=1, mouth_cover="mask", phone="none",
                                 cigarette="none")
    _, objects = synth.render_scene(rng, *SIZE, hidden)
    assert sorted(o["class"] for o in objects) == ["eye_opened", "face"]


def test_glasses_and_cap_change_the_pixels_not_the_labels():
    state = synth.sample_scene(np.random.default_rng(2), *SIZE)
    bare, bare_objects = synth.render_scene(np.random.default_rng(9), *SIZE, state)
    for worn in ({"glasses": True}, {"cap": True}):
        image, objects = synth.render_scene(np.random.default_rng(9), *SIZE, dataclasses.replace(state, **worn))
        assert objects == bare_objects, worn
        changed = np.abs(image.astype(int) - bare) > 20
        assert changed.sum() > 0.002 * image.size, worn
        face = next(o["position"] for o in objects if o["class"] == "face")
        ys, xs = np.nonzero(changed)
        # drawn on the face: the glasses around the eyes, the cap at the top of the head
        assert face[0] - 5 <= np.median(xs) <= face[2] + 5, worn
        upper = ys.mean() < (face[1] + face[3]) / 2
        assert upper, worn


def test_a_hand_held_cigarette_or_phone_moves_to_the_side_with_room():
    width, height = 800, 1280  # a close-up: the face fills most of the width
    state = synth.sample_scene(np.random.default_rng(4), width, height)
    near_left = dataclasses.replace(state, face_x=0.5 * state.face_height, cigarette="hand", cigarette_side=-1,
                                    phone="ear", phone_side=-1, mouth_cover="none")
    moved = synth.hands_in_frame(near_left, width)
    assert (moved.cigarette_side, moved.phone_side) == (1, 1)
    _, objects = synth.render_scene(np.random.default_rng(4), width, height, moved)
    for cls in ("cigar", "phone"):  # whole, not cut by the image's left edge
        assert next(o["position"] for o in objects if o["class"] == cls)[0] > 0, cls
    centred = dataclasses.replace(near_left, face_x=width / 2)  # room on both sides: left as drawn
    assert synth.hands_in_frame(centred, width) == centred


def test_class_rates_follow_the_raw_train_table():
    images = 2000
    counts, closed_per_image = collections.Counter(), collections.Counter()
    for index in range(images):
        image, objects = synth.render_scene(np.random.default_rng([11, index]), *SIZE)
        classes = collections.Counter(o["class"] for o in objects)
        counts.update(classes)
        closed_per_image[classes["eye_closed"]] += 1
    assert image.shape == (SIZE[1], SIZE[0]) and image.dtype == np.uint8
    for name in CLASSES:
        rate = counts[name] / images
        assert rate == pytest.approx(synth.CLASS_RATES[name], abs=max(0.02, 0.1 * synth.CLASS_RATES[name])), name
    # a snack in the hand over the mouth in about FOOD_RATE of those hands, never without one
    scenes = [synth.sample_scene(np.random.default_rng([11, index]), *SIZE) for index in range(images)]
    hands = [s.food for s in scenes if s.mouth_cover == "hand"]
    assert not any(s.food for s in scenes if s.mouth_cover != "hand")
    assert len(hands) > 100 and sum(hands) / len(hands) == pytest.approx(FOOD_RATE, abs=0.1)
    # closed eyes come in pairs; a single one only where the other eye is hidden
    assert closed_per_image[1] < 0.2 * closed_per_image[2]
    # the imbalance the diet set fights: open eyes outnumber closed ones, phones and cigars are rare
    assert counts["eye_opened"] > 4 * counts["eye_closed"] and counts["phone"] < 0.1 * images


def test_labels_schema_and_separate_labels_path(tmp_path):
    labels_path = synth.write_dataset(tmp_path / "test", 4, seed=2, size=SIZE,
                                      labels_path=tmp_path / "test_labels.json", progress=False)
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
    assert main(["synth", str(tmp_path / "raw"), "--format", "competition", "--images", "3", "--seed", "1", "--size",
                 "160x96"]) == 0
    labels = json.loads((tmp_path / "raw" / "labels.json").read_text())
    assert len(labels["annotations"]) == 3
    assert sorted(p.name for p in (tmp_path / "raw" / "images").iterdir()) == [
        r["file_name"] for r in labels["annotations"]]
    assert cv2.imread(str(tmp_path / "raw" / "images" / "image_00000002.jpg")).shape[:2] == (96, 160)


@pytest.mark.parametrize("size", ["640", "640x", "axb", "32x32", "640x360x2"])
def test_cli_bad_size_is_one_line_exit_2(tmp_path, capsys, size):
    assert main(["synth", str(tmp_path / "raw"), "--images", "1", "--size", size]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("drowsy: error: --size") and repr(size) in err
    assert not (tmp_path / "raw").exists()
