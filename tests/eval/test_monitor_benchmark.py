"""The monitor's event benchmark: clip sets scored per event type, and the landmark peer's rules."""

import importlib.util
import json
import sys

import numpy as np
import pytest

from drowsy.config import MonitorConfig
from drowsy.errors import DrowsyError
from drowsy.eval.monitor_benchmark import PEER_SCRIPT, PeerRules, fit_peer_rules, landmark_events, peer_measurements
from drowsy.monitor.events import Event, write_events
from drowsy.synth.clips.write import make_script


def test_benchmark_tables_on_short_protocol_and_alert_clips_with_their_true_boxes(tmp_path):
    from drowsy.eval.monitor_benchmark import (
        ClipSpec,
        false_alert_counts,
        hard_cases_table,
        run_clips,
        scores_table,
        unmatched_events,
    )

    specs = [ClipSpec("protocol", 150.0, 7, (240, 384)), ClipSpec("alert", 60.0, 1, (240, 384))]
    runs = run_clips(specs, tmp_path, {"truth": {}}, fps=10.0, progress=False)
    truth = [e for e in runs[0]["truth"] if e.type != "blink"]
    scores = scores_table(runs, "truth")
    assert set(scores.index) == {e.type for e in truth} and scores["events"].sum() == len(truth)
    timed = scores.drop(index="degraded")["latency_median"]  # a degraded event's truth alert is the 10 s deadline
    # within the 0.2 s (at 10 fps a VATS sum adds up half a frame's error per glance edge)
    assert (scores["f1"] == 1.0).all() and (timed.dropna().abs() <= 0.2).all() and len(timed.dropna()) >= 3
    assert -6.0 < scores.loc["degraded", "latency_worst"] < 0  # told 5 s in: before the deadline
    hard = hard_cases_table(runs, ["truth"])
    assert hard["events"].sum() >= 3 and (hard["recall (truth)"].dropna() == 1.0).all()
    alerts = false_alert_counts(runs, "truth")
    assert alerts["hours"] == pytest.approx(60 / 3600) and alerts["per_hour"] == 0.0
    assert (
        alerts["yawns_while_talking"] == 0
        and alerts["alerts_while_rubbing"] == 0
        and alerts["alerts_while_eating"] == 0
    )
    runs[1]["found"]["truth"].append(Event("yawn", 10.0, 12.0, 11.0))  # one false alert in a minute
    assert false_alert_counts(runs, "truth")["per_hour"] == pytest.approx(60.0)
    rub = next(a for a in make_script("protocol", 150.0, 7, (240, 384)).actions if a.kind == "rub")
    runs[0]["found"]["truth"] += [
        Event("microsleep", rub.start, rub.end - 0.1, rub.start + 1.0),  # a hand read as closed eyes
        Event("phone", rub.start, rub.end),
    ]  # not a drowsiness alert: not counted
    assert false_alert_counts(runs, "truth")["alerts_while_rubbing"] == 1
    # what the scores count against a detector, event by event: the two above are false; the alert clip's yawn
    # is scored as a false alert, not as an event; a true event left out is missed
    left_out = next(e for e in runs[0]["found"]["truth"] if e.type in scores.index)
    runs[0]["found"]["truth"].remove(left_out)
    unmatched = unmatched_events(runs, "truth")
    false, missed = (unmatched[unmatched["outcome"] == outcome] for outcome in ("false", "missed"))
    assert sorted(zip(false["type"], false["start"])) == [("microsleep", rub.start), ("phone", rub.start)]
    assert missed["type"].tolist() == [left_out.type]
    assert missed["start"].iloc[0] == pytest.approx(left_out.start, abs=0.2)  # the truth's, within 2 frames
    assert set(unmatched["clip"]) == {specs[0].name}


FPS = 15


def peer_module():
    spec = importlib.util.spec_from_file_location("facemesh_peer", PEER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_geometry_imports_without_mediapipe():
    peer_module()
    assert "mediapipe" not in sys.modules


def test_eye_and_mouth_aspect_ratios_from_mesh_points():
    peer = peer_module()
    points = np.zeros((468, 2))
    for corner_a, corner_b, top1, bottom1, top2, bottom2 in peer.EYES:
        points[corner_a], points[corner_b] = (0, 0), (30, 0)
        points[top1], points[bottom1], points[top2], points[bottom2] = (10, -4), (10, 5), (20, -6), (20, 6)
    assert peer.eye_aspect_ratio(points) == pytest.approx((9 + 12) / 60)
    left, right, upper, lower = peer.MOUTH
    points[left], points[right], points[upper], points[lower] = (100, 200), (160, 200), (130, 190), (130, 214)
    assert peer.mouth_aspect_ratio(points) == pytest.approx(24 / 60)


@pytest.mark.parametrize("yaw, pitch", [(0.0, 0.0), (30.0, 0.0), (-25.0, 10.0), (10.0, -20.0)])
def test_head_pose_recovers_the_turn_of_a_projected_face(yaw, pitch):
    """The generic face turned by (yaw, pitch) (+ = towards the image's right / down) and seen by the
    pinhole camera that head_pose assumes: the pose comes back within half a degree."""
    peer = peer_module()
    width, height = 640, 480
    y, p = np.radians(-yaw), np.radians(pitch)
    turn_y = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    turn_x = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    model = peer.FACE_MODEL * np.array([1.0, -1.0, -1.0])  # camera axes: y down, z away from the camera
    seen = (turn_y @ turn_x @ model.T).T + np.array([20.0, -10.0, 600.0])
    points = np.zeros((468, 2))
    points[list(peer.POSE_POINTS)] = width * seen[:, :2] / seen[:, 2:] + np.array([width / 2, height / 2])
    assert peer.head_pose(points, width, height) == pytest.approx((yaw, pitch), abs=0.5)


def frames_of(seconds: float, ear=0.3, mar=0.05, yaw=2.0, pitch=8.0) -> list:
    """A stretch of the peer's measures (a driver resting at yaw 2, pitch 8: the baseline absorbs it)."""
    return [{"ear": ear, "mar": mar, "yaw": yaw, "pitch": pitch}] * round(seconds * FPS)


def test_landmark_events_time_closures_glances_yawns_and_a_lost_face_by_drowsys_rules():
    frames = (
        frames_of(10)
        + frames_of(3.6, ear=0.1)
        + frames_of(5)
        + frames_of(4, yaw=42.0)
        + frames_of(5)
        + frames_of(2, mar=0.7)
        + frames_of(3)
        + [None] * 6 * FPS
        + frames_of(2)
    )
    events = [
        e for e in landmark_events({"fps": FPS, "frames": frames}, MonitorConfig(), PeerRules()) if e.type != "drowsy"
    ]
    assert [e.type for e in events] == ["sleep", "distraction", "yawn", "degraded"]
    for event, start, length in zip(events, (10.0, 18.6, 27.6, 32.6), (3.6, 4.0, 2.0, 6.0)):
        assert event.start == pytest.approx(start, abs=0.05) and event.end - event.start == pytest.approx(
            length, abs=0.1
        )
    assert events[1].alert == pytest.approx(18.6 + 3.0, abs=1 / FPS)  # the live alert 3 s into the glance


def test_iris_offset_from_mesh_points_in_eye_widths_along_the_eye_line():
    peer = peer_module()
    points = np.zeros((478, 2))
    for iris, corner_a, corner_b in peer.IRISES:  # eyes 30 px wide, both irises 6 px right of centre
        x = 100 if iris == 468 else 200
        points[corner_a], points[corner_b], points[iris] = (x + 30, 50), (x, 50), (x + 21, 53)
    assert peer.iris_offset(points) == pytest.approx(0.2)  # the corners' order does not matter, nor a 3 px drop


def test_the_peers_iris_turns_the_pose_when_the_eyes_are_open():
    def glance(iris: float, ear: float = 0.3) -> list:
        return [{"ear": ear, "mar": 0.05, "yaw": 2.0, "pitch": 8.0, "iris": iris}] * 4 * FPS

    open_eyes = glance(0.0) * 3 + glance(-0.22) + glance(0.0)  # 4 s of the eyes alone ~33 degrees aside
    events = landmark_events({"fps": FPS, "frames": open_eyes}, MonitorConfig(), PeerRules())
    assert [e.type for e in events] == ["distraction"]
    closed = glance(0.0) * 3 + glance(-0.22, ear=0.1) + glance(0.0)  # the iris points of shut eyes are not read
    assert "distraction" not in [
        e.type for e in landmark_events({"fps": FPS, "frames": closed}, MonitorConfig(), PeerRules())
    ]


def test_peer_gains_scale_the_head_angles_before_the_on_road_limits():
    frames = frames_of(10) + frames_of(4, yaw=42.0) + frames_of(3)
    found = {
        gain: [
            e.type for e in landmark_events({"fps": FPS, "frames": frames}, MonitorConfig(), PeerRules(yaw_gain=gain))
        ]
        for gain in (1.0, 0.4, -1.0)
    }
    assert found == {1.0: ["distraction"], 0.4: [], -1.0: ["distraction"]}  # 40 deg x 0.4 = 16 < 20


def clip_folder(path, seconds: float, seed: int):
    """A clip's truth (frames.json, events.json with one yawn) and a made-up peer's measures of it:
    EAR 0.2 closed / 0.32 open, MAR 0.5 in the yawn / 0.2 talking / 0.05 shut, yaw 0.5 x the truth + 3,
    pitch -2 x the truth."""
    rng = np.random.default_rng(seed)
    path.mkdir()
    truth, measured = [], []
    for i in range(round(seconds * FPS)):
        t = i / FPS
        closed, yawning, talking = bool(rng.random() < 0.2), 5.0 <= t <= 8.0, 12.0 <= t <= 14.0
        yaw, pitch = float(rng.uniform(-40, 40)), float(rng.uniform(-20, 20))
        truth.append(
            {
                "index": i,
                "time_s": t,
                "eyes_closed": closed,
                "mouth_open": yawning or talking,
                "yaw": yaw,
                "pitch": pitch,
            }
        )
        measured.append(
            None
            if i % 10 == 0
            else {
                "ear": 0.2 if closed else 0.32,
                "mar": 0.5 if yawning else 0.2 if talking else 0.05,
                "yaw": 0.5 * yaw + 3,
                "pitch": -2 * pitch,
            }
        )
    (path / "frames.json").write_text(json.dumps({"fps": FPS, "frames": truth}))
    write_events(path / "events.json", [Event("yawn", 5.0, 8.0)], FPS, len(truth))
    (path / "facemesh.json").write_text(json.dumps({"fps": FPS, "frames": measured}))
    return path


def test_fit_peer_rules_separates_the_states_and_inverts_the_angle_response(tmp_path):
    folders = [clip_folder(tmp_path / "a", 20, 0), clip_folder(tmp_path / "b", 20, 1)]
    rules = fit_peer_rules(folders, python="unused: the measures are there")
    assert rules.ear_closed == pytest.approx(0.26) and rules.mar_yawn == pytest.approx(0.35)
    assert rules.yaw_gain == pytest.approx(2.0) and rules.pitch_gain == pytest.approx(-0.5)


def test_the_angle_response_follows_the_turns_not_the_scatter_ahead():
    from drowsy.eval.monitor_benchmark import _response

    rng = np.random.default_rng(0)
    ahead = rng.uniform(-4, 4, 5000)  # most frames: the head ahead, where the mesh scatters by +-10 degrees
    turned = np.concatenate([rng.uniform(-40, -20, 100), rng.uniform(20, 40, 100)])
    truth = np.concatenate([ahead, turned])
    peer = np.concatenate([rng.normal(0, 10, 5000), -0.5 * turned + rng.normal(0, 2, 200)])
    assert _response(truth, peer) == pytest.approx(-0.5, abs=0.05)
    with pytest.raises(DrowsyError, match="turned away and ahead"):
        _response(ahead[:10] * 0 + 30, ahead[:10])


def test_fit_peer_rules_needs_both_states(tmp_path):
    folder = clip_folder(tmp_path / "a", 4, 0)  # no yawn frames in 4 s
    with pytest.raises(DrowsyError, match="frames of both states"):
        fit_peer_rules([folder], python="unused")


def test_a_failing_peer_run_names_the_script_the_clip_and_the_cause(tmp_path):
    # the package's own environment has no mediapipe: the peer script fails on import
    with pytest.raises(DrowsyError) as error:
        peer_measurements(tmp_path, sys.executable)
    message = str(error.value)
    assert str(PEER_SCRIPT) in message and str(tmp_path / "clip.mp4") in message and "mediapipe" in message
    assert "\n" not in message and not (tmp_path / "facemesh.json").exists()
