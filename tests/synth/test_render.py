"""Rendering: boxes tight around the drawn pixels, the scene state drawn as sampled."""

import dataclasses

import numpy as np
import pytest

from drowsy.synth.render import OWNERS, draw_scene, render_scene
from drowsy.synth.scene import HELD_OUT_POSE, PHONE_FACES, hands_in_frame, props, sample_scene

SIZE = (320, 180)


def _extent(pixels):
    """Pixel-edge box [4] around the true pixels of a [H, W] bool map."""
    ys, xs = np.nonzero(pixels)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _part_of(canvas, cls, box):
    """The OWNERS id of the part a labelled box stands for (an eye: the one whose pixels it holds)."""
    if cls.startswith("eye"):
        eyes = [OWNERS["eye_left"], OWNERS["eye_right"]]
        return next(e for e in eyes if e in canvas.coverage and _centre_inside(canvas.coverage[e], box))
    return OWNERS[{"face": "face", "phone": "phone", "cigar": "cigar"}.get(cls, "mouth")]


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
    {"phone": "ear", "phone_hand": False, "cigarette": "mouth", "mouth_cover": "none", "mouth_open": False},
    {"phone": HELD_OUT_POSE, "cigarette": HELD_OUT_POSE, "mouth_cover": "none"},
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_boxes_inside_image_and_tight_around_visible_pixels(variant):
    width, height = 640, 360
    for index in range(30):
        rng = np.random.default_rng([5, index])
        state = dataclasses.replace(sample_scene(rng, width, height), **variant)
        _, objects, canvas = draw_scene(rng, width, height, state, trace=True)
        assert [c for c, _ in objects].count("face") == 1
        for cls, box in objects:
            assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
            assert_tight(canvas, cls, np.array(box), width, height)


def test_render_scene_follows_the_state():
    rng = np.random.default_rng(0)
    state = sample_scene(rng, *SIZE)
    closed = dataclasses.replace(
        state, eyes_closed=True, hidden_eye=0, mouth_cover="none", mouth_open=True, phone="hand", cigarette="hand"
    )
    _, objects = render_scene(rng, *SIZE, closed)
    assert sorted(o["class"] for o in objects) == sorted(
        ["face", "eye_closed", "eye_closed", "mouth_opened", "phone", "cigar"]
    )
    hidden = dataclasses.replace(
        state, eyes_closed=False, hidden_eye=1, mouth_cover="mask", phone="none", cigarette="none"
    )
    _, objects = render_scene(rng, *SIZE, hidden)
    assert sorted(o["class"] for o in objects) == ["eye_opened", "face"]


def test_glasses_and_cap_change_the_pixels_not_the_labels():
    state = sample_scene(np.random.default_rng(2), *SIZE)
    bare, bare_objects = render_scene(np.random.default_rng(9), *SIZE, state)
    for worn in ({"glasses": True}, {"cap": True}):
        image, objects = render_scene(np.random.default_rng(9), *SIZE, dataclasses.replace(state, **worn))
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
    state = sample_scene(np.random.default_rng(4), width, height)
    near_left = dataclasses.replace(
        state,
        face_x=0.5 * state.face_height,
        cigarette="hand",
        cigarette_side=-1,
        phone="ear",
        phone_side=-1,
        mouth_cover="none",
    )
    moved = hands_in_frame(near_left, width)
    assert (moved.cigarette_side, moved.phone_side) == (1, 1)
    _, objects = render_scene(np.random.default_rng(4), width, height, moved)
    for cls in ("cigar", "phone"):  # whole, not cut by the image's left edge
        assert next(o["position"] for o in objects if o["class"] == cls)[0] > 0, cls
    centred = dataclasses.replace(near_left, face_x=width / 2)  # room on both sides: left as drawn
    assert hands_in_frame(centred, width) == centred


def test_props_come_in_every_look_and_the_look_changes_pixels_not_labels():
    looks = [props(seed) for seed in range(300)]
    assert {look.phone_face for look in looks} == set(PHONE_FACES)
    assert {look.cigarette_lit for look in looks} == {True, False}
    assert min(look.phone_body for look in looks) < 60 < 150 < max(look.phone_body for look in looks)  # dark, light
    assert max(look.cigarette_length for look in looks) > 1.25 * min(look.cigarette_length for look in looks)
    base = sample_scene(np.random.default_rng(3), 640, 360)
    state = dataclasses.replace(base, phone="hand", cigarette="mouth", mouth_cover="none", mouth_open=False)
    images = {}
    for seed in (1, 2):
        looked = dataclasses.replace(state, props_seed=seed)
        images[seed], objects = render_scene(np.random.default_rng(9), 640, 360, looked)
        assert sorted(o["class"] for o in objects if o["class"] in ("phone", "cigar")) == ["cigar", "phone"]
    assert np.abs(images[1].astype(int) - images[2]).max() > 50


def test_a_phone_at_the_ear_is_drawn_with_or_without_a_hand():
    state = dataclasses.replace(sample_scene(np.random.default_rng(6), 640, 360), phone="ear", hidden_eye=0)
    (_, with_hand, canvas), (_, without, bare) = (
        draw_scene(np.random.default_rng(1), 640, 360, dataclasses.replace(state, phone_hand=hand), trace=True)
        for hand in (True, False)
    )
    assert with_hand == without  # the same labels; only the hand's pixels differ
    phone = next(box for cls, box in without if cls == "phone")
    assert np.abs(canvas.pixels - bare.pixels).sum() > 0
    ys, xs = np.nonzero(canvas.pixels != bare.pixels)
    assert ys.max() > phone[3]  # the hand holds the phone from below
