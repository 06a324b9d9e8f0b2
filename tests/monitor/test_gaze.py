"""Head pose from boxes: features, the online baseline, the iris locator and the eyes' own turn."""

import dataclasses
import math

import numpy as np
import pytest

from drowsy import CLASS_IDS
from drowsy.monitor.gaze import EYE_RADIUS, FEATURE_DEPTH, HeadPose, box_angles, eye_angle, face_features, iris_offset
from drowsy.synth.clips.animate import base_scene
from drowsy.synth.render import IRIS_TRAVEL, render_scene
from tests.helpers import FACE, FPS, detection, face, identity


def test_pose_from_boxes_recovers_yaw_and_pitch_against_the_baseline():
    pose = HeadPose(FPS, baseline_s=2.0, min_baseline_s=1.0, limits=(20, 15, 15))
    resting = dict(offset=(0.05, -0.03), roll=12.0)  # off-centre, head tilted: on the road by definition
    for _ in range(30):
        assert pose.update(face_features(face(**resting))) in (None, pytest.approx((0.0, 0.0), abs=1e-3))
    yaw, pitch = pose.update(face_features(face(yaw=35, pitch=-10, **resting)))
    assert yaw == pytest.approx(35, abs=0.5) and pitch == pytest.approx(-10, abs=0.5)
    assert face_features(np.zeros((0, 6), np.float32)) is None  # no face box: no pose
    assert pose.update(None) is None


def test_baseline_is_the_median_of_the_first_samples_then_frozen():
    pose = HeadPose(FPS, baseline_s=2.0, min_baseline_s=1.0, limits=(20, 15, 15))
    frames = [face(yaw=40)] * 5 + [face()] * 25 + [face(yaw=40)] * 30  # glances do not move the median
    for f in frames:
        pose.update(face_features(f))
    assert pose.update(face_features(face())) == pytest.approx((0.0, 0.0), abs=1e-3)
    for _ in range(60):  # the baseline is frozen once full: a driver who now sits turned a little stays so
        pose.update(face_features(face(yaw=12)))
    assert pose.update(face_features(face(yaw=12)))[0] == pytest.approx(12, abs=0.5)
    assert pose.baselines["eyes"].full and len(pose.baselines["eyes"].values[0]) == 2 * FPS


def test_face_features_are_offsets_in_face_heights_of_the_best_boxes_inside_the_best_face():
    rows = np.array(
        [
            [400.0, 100.0, 556.0, 300.0, 0.5, CLASS_IDS["face"]],
            [*FACE, 0.9, CLASS_IDS["face"]],
            detection((158, 190), (20, 10), "eye_opened"),
            detection((218, 190), (20, 10), "eye_opened"),
            detection((178, 250), (50, 20), "mouth_opened", 0.6),
            detection((178, 270), (50, 10), "mouth_closed", 0.5),
            detection((188, 260), (50, 40), "mouth_opened"),
        ],
        np.float32,
    )
    features = face_features(rows)  # face centre (178, 200), 200 px tall
    assert features["eyes"] == pytest.approx((10 / 200, -10 / 200))  # the eyes' midpoint (188, 190)
    assert features["mouth"] == pytest.approx((10 / 200, 60 / 200))  # the best mouth, (188, 260)
    assert features["mouth_open_height"] == pytest.approx(40 / 200)


def test_only_features_centred_inside_the_face_box_count_its_edges_included():
    others = [
        detection(centre, (50, 12), "mouth_opened", 0.95) for centre in ((60, 200), (300, 200), (178, 60), (178, 340))
    ]
    features = face_features(np.array([*face(), *others], np.float32))  # a passenger's mouths all around
    assert features["mouth"] == pytest.approx((0.0, 0.26)) and features["mouth_open_height"] is None
    edges = {(100, 200): (-78 / 200, 0.0), (256, 200): (78 / 200, 0.0), (178, 100): (0.0, -0.5), (178, 300): (0.0, 0.5)}
    for centre, expected in edges.items():
        rows = np.array([[*FACE, 0.9, CLASS_IDS["face"]], detection(centre, (50, 12), "mouth_closed")], np.float32)
        assert face_features(rows)["mouth"] == pytest.approx(expected), centre


@pytest.mark.parametrize("shift, corner", [((0, 0), (0, 1)), ((160, -100), (2, 3))])
def test_an_eye_seen_as_both_open_and_closed_is_one_eye(shift, corner):
    """The other-class box of the left eye, centred on a corner of the better box, scores between
    the two eyes: the eyes are still the left and the right one (the face also placed where x > y)."""
    rows = face()
    rows[2, 4] = 0.7  # the right eye
    left = rows[1, :4]
    rows = np.vstack([rows, detection((left[corner[0]], left[corner[1]]), (20, 10), "eye_closed", 0.8)])
    rows[:, :4] += np.array(shift * 2, np.float32)
    assert face_features(rows)["eyes"] == pytest.approx((0.0, -0.08))  # the midpoint of (146, 184) and (210, 184)


def test_an_offset_past_the_feature_depth_reads_as_a_quarter_turn():
    assert box_angles(np.array([FEATURE_DEPTH / 2, 0.0])) == pytest.approx((30.0, 0.0))  # asin(1/2)
    assert box_angles(np.array([0.45, -0.6])) == pytest.approx((90.0, -90.0))
    assert box_angles(np.array([-0.45, 0.6])) == pytest.approx((-90.0, 90.0))


def test_the_mouth_alone_gives_the_pose_while_the_eyes_are_not_seen():
    pose = HeadPose(FPS, baseline_s=2.0, min_baseline_s=1.0, limits=(20, 15, 15))
    for _ in range(30):
        pose.update(face_features(face()))
    assert pose.update(face_features(face(yaw=30, eyes=None))) == pytest.approx((30, 0), abs=0.5)


def test_baseline_is_used_from_its_minimum_length_on_and_ignores_samples_off_the_road():
    pose = HeadPose(1.0, baseline_s=10.0, min_baseline_s=3.0, limits=(20, 15, 15), features=("head",), angles=identity)
    assert [pose.update({"head": head}) for head in ((0, 0), (2, -2), (1, 0))] == [None, None, (0.0, 0.0)]
    assert pose.update({"head": (21, 0)}) == (20.0, 0.0)  # on the region's edge: not a baseline sample
    assert pose.update({"head": (31, 0)}) == (30.0, 0.0)  # beyond it
    assert pose.update({"head": (3, 0)}) == (1.5, 0.0)  # on the road: the median of 0, 1, 2, 3
    short = HeadPose(
        FPS, baseline_s=1 / FPS, min_baseline_s=1 / FPS, limits=(20, 15, 15), features=("head",), angles=identity
    )  # a one-frame baseline: usable at its frame, frozen after it
    assert short.update({"head": (5, 0)}) == (0.0, 0.0) and short.update({"head": (12, 3)}) == (7.0, 3.0)


@pytest.mark.parametrize("size", [(400, 640), (640, 360)])  # the benchmark's close-ups and its small faces
def test_the_iris_locator_finds_a_drawn_iris_within_0_03_eye_widths(size):
    for seed in range(3):
        base = dataclasses.replace(base_scene(seed, size), eyes_closed=False, yaw=0.0, pitch=0.0)
        for gaze in (-1.0, -0.5, 0.0, 0.5, 1.0):
            image, objects = render_scene(
                np.random.default_rng(seed), *size, dataclasses.replace(base, gaze=(gaze, 0.0))
            )
            rows = np.array([[*o["position"], 0.9, CLASS_IDS[o["class"]]] for o in objects], np.float32)
            assert iris_offset(image, rows) == pytest.approx(gaze * IRIS_TRAVEL[0], abs=0.03), (seed, gaze)
        closed, objects = render_scene(np.random.default_rng(seed), *size, dataclasses.replace(base, eyes_closed=True))
        rows = np.array([[*o["position"], 0.9, CLASS_IDS[o["class"]]] for o in objects], np.float32)
        assert iris_offset(closed, rows) is None  # no open eye box: nothing to read


def test_eye_angle_inverts_the_eyeballs_geometry():
    assert eye_angle(EYE_RADIUS * math.sin(math.radians(30))) == pytest.approx(30)
    assert eye_angle(-EYE_RADIUS * math.sin(math.radians(12))) == pytest.approx(-12)
    assert eye_angle(1.0) == pytest.approx(90)  # beyond the eyeball's reach: clipped, not an error


def test_the_pose_adds_the_eyes_own_turn_against_their_baseline():
    pose = HeadPose(FPS, baseline_s=2.0, min_baseline_s=1.0, limits=(20, 15, 15))
    for _ in range(30):  # this driver's eyes rest 0.02 eye widths right of the box centres
        pose.update({**face_features(face()), "iris": 0.02})
    turned = 0.02 + EYE_RADIUS * math.sin(math.radians(30))
    assert pose.update({**face_features(face()), "iris": turned}) == pytest.approx((30, 0), abs=0.5)
    assert pose.update(
        {**face_features(face(yaw=10)), "iris": 0.02 - EYE_RADIUS * math.sin(math.radians(25))}
    ) == pytest.approx((-15, 0), abs=0.5)  # head 10 right, eyes 25 left
    assert pose.update(face_features(face())) == pytest.approx((0, 0), abs=1e-3)  # no iris read: the head alone
