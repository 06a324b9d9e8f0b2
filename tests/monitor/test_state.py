"""The state machine on hand-made per-frame sequences: frame scores, closures from blink to
unresponsive, PERCLOS and drowsiness, yawns, phone and smoking, hysteresis and dropouts."""

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drowsy import CLASS_IDS
from drowsy.config import MonitorConfig
from drowsy.monitor.events import ALERT_EVENTS, Event, score_events
from drowsy.monitor.sources import FrameSource
from drowsy.monitor.state import DriverStateMonitor, detection_rows, frame_scores, logit
from tests.helpers import FPS, bite, faint_eyes, frame, of_type, run_frames


def closure(frames_closed: int, before: int = 15, after: int = 15) -> list[np.ndarray]:
    return [frame()] * before + [frame(eyes_closed=True)] * frames_closed + [frame()] * after


def edge(index: int) -> float:
    """When frame `index` begins: half a frame before its time stamp (each sample stands for the step around it)."""
    return (index - 0.5) / FPS


def spans(events: list[Event]) -> list[tuple]:
    return sorted((e.type, pytest.approx(e.start), pytest.approx(e.end)) for e in events)


def measures(seconds: float, eyes=0.0, mouth=0.0, phone=0.0, cigarette=0.0, head=(0.0, 0.0), fps: float = FPS) -> list:
    """`seconds` of frames as any perception measures them for `update_scores`: per detector signal its
    score (eyes None: not measurable) and the head's (yaw, pitch) in degrees (None: no face)."""
    scores = {"eyes_closed": eyes, "mouth_open": mouth, "phone": phone, "cigarette": cigarette}
    return [(scores, None if head is None else {"head": head})] * round(seconds * fps)


def head_monitor(config: MonitorConfig | None = None, fps: float = FPS) -> DriverStateMonitor:
    """A monitor whose pose is the measured head angles against their baseline (as the landmark peer feeds it)."""
    return DriverStateMonitor(
        config or MonitorConfig(),
        fps,
        head_features=("head",),
        head_angles=lambda offset: (float(offset[0]), float(offset[1])),
    )


def run_measures(frames: list, monitor: DriverStateMonitor | None = None):
    """Feed `measures` frames in order; returns (per-frame states, events)."""
    monitor = monitor or head_monitor()
    states = [monitor.update_scores(i, scores, features) for i, (scores, features) in enumerate(frames)]
    return states, monitor.finish()


def test_frame_scores_from_best_boxes():
    detections = torch.tensor(
        [
            [0, 0, 1, 1, 0.8, CLASS_IDS["eye_closed"]],
            [0, 0, 1, 1, 0.2, CLASS_IDS["eye_opened"]],
            [0, 0, 1, 1, 0.6, CLASS_IDS["phone"]],
            [0, 0, 1, 1, 0.1, CLASS_IDS["cigar"]],
        ],
        requires_grad=True,
    )  # a detector's output outside inference mode
    scores = frame_scores(detections, min_score=0.15)
    assert scores["eyes_closed"] == pytest.approx(0.8)  # 0.8 / (0.8 + 0.2)
    assert scores["mouth_open"] is None  # no mouth box: unknown, not "closed"
    assert (scores["phone"], scores["cigarette"]) == (pytest.approx(0.6), 0.0)  # the cigar is under min_score
    assert frame_scores(np.zeros((0, 6)))["eyes_closed"] is None


def test_offsets_move_the_decision_boundary():
    biased_closed = np.array(
        [
            [0, 0, 9, 9, 0.2, CLASS_IDS["eye_closed"]],
            [0, 0, 9, 9, 0.5, CLASS_IDS["eye_opened"]],
            [0, 0, 9, 9, 0.1, CLASS_IDS["cigar"]],
        ],
        np.float32,
    )
    raw = frame_scores(biased_closed)
    assert raw["eyes_closed"] == pytest.approx(0.2 / 0.7)  # the raw vote says open
    calibrated = frame_scores(
        biased_closed, offsets={"eyes_closed": np.log(0.2 / 0.5) - 0.5, "cigarette": np.log(1 / 9)}
    )
    assert calibrated["eyes_closed"] == pytest.approx(1 / (1 + np.exp(-0.5)))  # 0.5 above the boundary: closed
    assert calibrated["cigarette"] == pytest.approx(0.5)  # exactly on its boundary
    assert calibrated["mouth_open"] is None and calibrated["phone"] < 1e-4  # unseen stays unseen, absent ~0
    phone = np.array([[0, 0, 9, 9, 0.6, CLASS_IDS["phone"]]], np.float32)
    assert frame_scores(phone, offsets={"eyes_closed": 2.0})["phone"] == pytest.approx(0.6)  # no offset: as detected
    # clipped to [1e-6, 1 - 1e-6]: a missing box and a certain one have finite log-odds to calibrate on
    assert logit(np.array([0.0, 0.5, 1.0])) == pytest.approx([-np.log(999_999), 0.0, np.log(999_999)])


def test_an_eyes_seen_offset_makes_faint_eye_boxes_unseen_and_sunglasses_degraded():
    offsets = {"eyes_seen": float(logit(0.3))}
    assert frame_scores(faint_eyes(0.2), offsets=offsets)["eyes_closed"] is None  # under the fitted boundary
    assert frame_scores(faint_eyes(0.2))["eyes_closed"] is not None  # without the offset: any box is an eye
    seen = frame_scores(faint_eyes(0.4, closed=True), offsets=offsets)
    assert seen["eyes_seen"] > 0.5 and seen["eyes_closed"] == pytest.approx(1.0, abs=1e-5)
    # 6 s of sunglasses that the detector reads as faint closed eyes: an unresponsive driver raw, degraded calibrated
    frames = [faint_eyes(0.9)] * 15 + [faint_eyes(0.2, closed=True)] * 90 + [faint_eyes(0.9)] * 15
    _, raw_events = run_frames(frames)
    assert [e.type for e in raw_events] == ["unresponsive"]
    monitor = DriverStateMonitor(MonitorConfig(), FPS, offsets)
    for i, detections in enumerate(frames):
        monitor.update(i, detections)
    events = monitor.finish()
    assert [(e.type, e.start, e.end) for e in events] == [
        ("degraded", pytest.approx(14.5 / FPS), pytest.approx(104.5 / FPS))
    ]


def test_a_mouth_seen_offset_makes_faint_mouth_boxes_unseen_and_a_bite_no_yawn():
    offsets = {"mouth_seen": float(logit(0.3))}
    assert frame_scores(bite(0.2), offsets=offsets)["mouth_open"] is None  # under the fitted boundary
    assert frame_scores(bite(0.2))["mouth_open"] == pytest.approx(2 / 3)  # without the offset: any box is a mouth
    assert frame_scores(bite(0.2), offsets=offsets)["eyes_closed"] is not None  # the eyes are not gated by it
    seen = frame_scores(bite(0.4), offsets=offsets)
    assert seen["mouth_seen"] > 0.5 and seen["mouth_open"] == pytest.approx(2 / 3)
    # a 1.5 s bite that the detector reads as a faint wide-open mouth: a yawn raw, nothing calibrated;
    # a yawn the detector is sure of stays a yawn
    for score, calibrated_types in ((0.2, []), (0.9, ["yawn"])):
        frames = [bite(0.0)] * 15 + [bite(score)] * 23 + [bite(0.0)] * 15
        assert [e.type for e in run_frames(frames)[1]] == ["yawn"]
        monitor = DriverStateMonitor(MonitorConfig(), FPS, offsets)
        for i, detections in enumerate(frames):
            monitor.update(i, detections)
        assert [e.type for e in monitor.finish()] == calibrated_types


def test_a_phone_and_a_cigar_box_on_one_object_count_as_the_better_scoring_class_only():
    def rows(*boxes):
        return np.array([[*box, score, CLASS_IDS[name]] for name, box, score in boxes], np.float32)

    same = rows(("phone", (10, 10, 40, 60), 0.7), ("cigar", (12, 10, 40, 62), 0.5))  # IoU 0.87
    assert (frame_scores(same)["phone"], frame_scores(same)["cigarette"]) == (pytest.approx(0.7), 0.0)
    assert frame_scores(same, exclusive=False)["cigarette"] == pytest.approx(0.5)  # what calibration fits on
    # compared after calibration: a cigar offset that lifts 0.5 over the phone's 0.7 keeps the cigarette
    lifted = frame_scores(same, offsets={"cigarette": float(logit(0.2))})
    assert lifted["phone"] == 0.0 and lifted["cigarette"] == pytest.approx(0.8)
    apart = rows(("phone", (10, 10, 40, 60), 0.7), ("cigar", (38, 50, 48, 54), 0.5))  # a cigarette by the phone
    assert frame_scores(apart)["cigarette"] == pytest.approx(0.5)
    half = rows(("phone", (0, 0, 10, 10), 0.7), ("cigar", (0, 0, 10, 20), 0.5))  # IoU exactly SAME_OBJECT_IOU
    assert frame_scores(half)["cigarette"] == 0.0


def test_blink_versus_microsleep():
    _, events = run_frames(closure(5))  # 333 ms: a blink
    assert [e.type for e in events] == ["blink"]
    assert (events[0].start, events[0].end) == pytest.approx((edge(15), edge(20)))
    _, events = run_frames(closure(25), fps=10)  # 2.5 s: a microsleep, not a blink
    assert [e.type for e in events] == ["microsleep"]
    assert events[0].end - events[0].start == pytest.approx(2.5)


def test_closure_length_names_the_event_microsleep_sleep_unresponsive():
    for frames, kind in (
        (FPS - 1, None),
        (FPS, "microsleep"),
        (3 * FPS - 1, "microsleep"),
        (3 * FPS, "sleep"),
        (6 * FPS - 1, "sleep"),
        (6 * FPS, "unresponsive"),
    ):
        _, events = run_frames(closure(frames))  # 0.93 s: a long closure, counted by PERCLOS, no event
        assert [e.type for e in events] == ([kind] if kind else []), frames


def test_closure_alerts_climb_microsleep_sleep_unresponsive_on_the_frame_that_completes_each():
    states, events = run_frames(closure(7 * FPS))
    for kind, seconds, level in (("microsleep", 1, 1), ("sleep", 3, 2), ("unresponsive", 6, 3)):
        alerted = [s.index for s in states if kind in s.alerts]
        assert alerted[0] == 15 + seconds * FPS - 1  # the closed frame that completes the time
        assert states[alerted[0]].closure_s == pytest.approx(seconds)
        assert kind not in states[alerted[0] - 1].alerts
        assert states[alerted[0]].level >= level
    assert states[15 + FPS - 2].alerts == ()
    (event,) = of_type(events, "unresponsive")
    assert event.alert == pytest.approx((15 + 6 * FPS - 1) / FPS)  # logged: when the alert fired


def test_single_frame_dropouts_do_not_split_events():
    eyes = closure(36)
    eyes[15 + 10] = frame(eyes_closed=False)  # one open frame inside the 2.4 s closure
    _, events = run_frames(eyes)
    assert [e.type for e in events] == ["microsleep"]
    phone = [frame(phone=i % 10 != 5) for i in range(5 * FPS)]  # the phone is missed every 10th frame
    _, events = run_frames([frame()] * 15 + phone + [frame()] * 30)
    assert spans(events) == [("phone", edge(15), edge(15 + 5 * FPS))]


def test_single_frame_detections_do_not_create_events_or_states():
    flicker = [frame()] * 30
    flicker[10] = frame(eyes_closed=True, phone=True, cigarette=True, mouth_open=True)
    states, events = run_frames(flicker)
    assert events == []
    assert not any(any(s.states.values()) for s in states)


def test_hysteresis_keeps_a_state_between_the_thresholds():
    config = MonitorConfig()
    middle = (config.phone_on + config.phone_off) / 2
    frames = [frame()] * 15 + [frame(phone=True)] * 30 + [frame(phone=True, score=middle)] * 30 + [frame()] * 30
    _, events = run_frames(frames, config)
    assert [(e.type, round(e.end - e.start, 2)) for e in events] == [("phone", 4.0)]
    _, events = run_frames([frame(phone=True, score=middle)] * 60, config)  # never reached `phone_on`
    assert events == []


def test_a_phone_or_a_cigarette_counts_only_with_a_face_in_the_frame():
    config = MonitorConfig()
    held = [frame(phone=True, cigarette=True)] * (5 * FPS)
    _, events = run_frames([frame()] * 15 + held + [frame()] * 15, config)
    assert sorted(e.type for e in events) == ["phone", "smoking"]
    for face_score in (None, 0.3, config.face_min_score - 1e-3):  # no driver: the face out of the frame, a seat
        empty = [frame(phone=True, cigarette=True, eyes_seen=False, face_score=face_score)] * (5 * FPS)
        states, events = run_frames([frame()] * 15 + empty + [frame()] * 15, config)
        assert [e.type for e in events] == ["degraded"]  # the eyes not measurable, and nothing else
        assert states[40].scores["phone"] is None and states[40].scores["cigarette"] is None
    at_the_limit = [frame(phone=True, face_score=config.face_min_score)] * (5 * FPS)
    _, events = run_frames([frame()] * 15 + at_the_limit + [frame()] * 15, config)
    assert [e.type for e in events] == ["phone"]
    strict = dataclasses.replace(config, face_min_score=0.95)  # the setting is read: a 0.9 face is now too faint
    _, events = run_frames([frame()] * 15 + held + [frame()] * 15, strict)
    assert events == []
    # a phone seen through a face dropout shorter than phone_max_gap_s stays one event
    dropout = held[:30] + [frame(phone=True, face_score=None)] * 10 + held[:30]
    _, events = run_frames([frame()] * 15 + dropout + [frame()] * 15, config)
    assert spans([e for e in events if e.type == "phone"]) == [("phone", edge(15), edge(15 + 70))]


def test_unseen_eyes_are_no_evidence():
    frames = [frame()] * 15 + [frame(eyes_seen=False)] * 45 + [frame()] * 15
    states, events = run_frames(frames)
    assert events == []
    assert states[30].scores["eyes_closed"] is None and not states[30].states["eyes_closed"]


def test_yawn_during_phone_use():
    frames = (
        [frame()] * 15
        + [frame(phone=True)] * 30
        + [frame(phone=True, mouth_open=True)] * 30
        + [frame(phone=True)] * 60
        + [frame()] * 15
    )
    states, events = run_frames(frames)
    assert spans(events) == [("phone", edge(15), edge(15 + 120)), ("yawn", edge(15 + 30), edge(15 + 60))]
    assert set(states[15 + 30 + 20].alerts) == {"phone", "yawn"}
    alerted = {kind: next(s.index for s in states if kind in s.alerts) for kind in ("phone", "yawn")}
    assert alerted == {"phone": 15 + 2 * FPS - 1, "yawn": 15 + 30 + FPS - 1}  # the frames completing 2 s and 1 s
    assert {e.type: e.alert for e in events} == {kind: pytest.approx(i / FPS) for kind, i in alerted.items()}


def test_short_mouth_opening_is_not_a_yawn():
    _, events = run_frames([frame()] * 15 + [frame(mouth_open=True)] * 12 + [frame()] * 15)  # 0.8 s: speech
    assert events == []


def test_perclos_on_a_known_sequence():
    fps = 10
    minute = [frame(eyes_closed=i % 10 < 2) for i in range(60 * fps)]  # closed 2 frames in 10: 20 %
    states, _ = run_frames(minute + [frame()] * 30 * fps, fps=fps)
    assert states[15 * fps].perclos is None  # under perclos_min_window_s of eyes seen
    assert states[20 * fps - 1].perclos == pytest.approx(0.2)
    assert states[60 * fps - 1].perclos == pytest.approx(0.2)
    assert states[90 * fps - 1].perclos == pytest.approx(0.1)  # half the window is open eyes now
    blinks = states[60 * fps - 1].blink_rate
    assert blinks == pytest.approx(60.0)  # one 0.2 s closure per second
    assert states[20 * fps - 2].blink_rate is None and states[20 * fps - 1].blink_rate == pytest.approx(60.0)
    # at 62.1 s the trailing minute runs from 2.2 s to 62.2 s: it holds the blinks ending at 3.15 s ... 59.15 s
    assert states[621].blink_rate == pytest.approx(57.0)


def test_perclos_ignores_frames_without_eyes():
    fps = 10
    seen = [frame(eyes_closed=i % 10 < 2) for i in range(40 * fps)]
    states, _ = run_frames(seen + [frame(eyes_seen=False)] * 20 * fps, fps=fps)
    assert states[-1].perclos == pytest.approx(0.2)


def test_drowsy_event_spans_the_drowsy_minute():
    fps = 10
    alert = [frame(eyes_closed=i % 50 < 2) for i in range(60 * fps)]  # one blink per 5 s: 4 %
    drowsy = [frame(eyes_closed=i % 30 < 10) for i in range(60 * fps)]  # 1 s closed in every 3: 33 %
    states, events = run_frames(alert + drowsy + alert, fps=fps)
    found = of_type(events, "drowsy")
    assert len(found) == 1
    score = score_events(found, [Event("drowsy", 60.0, 120.0)])["drowsy"]
    assert score["f1"] == 1.0
    assert abs(found[0].start - 60) < 15 and abs(found[0].end - 120) < 15
    live = [s.time_s for s in states if "drowsy" in s.alerts]
    assert 60 < live[0] < 120  # the live alarm waits for the trailing window to fill with drowsy frames


def test_state_machine_imports_numpy_alone():
    """The state machine runs wherever detections come from: importing it loads no deep-learning, image,
    plotting or table library, and no module of the monitor loads the synthetic-data generators."""
    code = textwrap.dedent("""
        import json, sys
        import drowsy.monitor.state
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "cv2", "matplotlib", "pandas"})
        import drowsy.monitor.events, drowsy.monitor.calibration, drowsy.monitor.detect, drowsy.monitor.draw
        import drowsy.monitor.runner, drowsy.monitor.sources
        generators = sorted(m for m in sys.modules if m.startswith(("drowsy.synth", "drowsy.synth.clips")))
        print(json.dumps({"heavy": heavy, "generators": generators}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"heavy": [], "generators": []}


def test_detections_may_be_plain_lists():
    plain = [[10, 10, 50, 50, 0.9, CLASS_IDS["phone"]], [0, 0, 60, 80, 0.8, CLASS_IDS["face"]]]
    state = DriverStateMonitor(MonitorConfig(), FPS).update(0, plain)
    assert state.scores["phone"] == pytest.approx(0.9)
    rows = detection_rows([[10, 10, 50, 50, 0.9, CLASS_IDS["phone"]], [10, 10, 50, 50, 0.2, CLASS_IDS["cigar"]]], 0.5)
    assert rows.dtype == np.float32 and rows.shape == (1, 6)


def test_frame_index_must_increase():
    monitor = DriverStateMonitor(MonitorConfig(), FPS)
    monitor.update(3, frame())
    with pytest.raises(ValueError, match="increase"):
        monitor.update(3, frame())
    with pytest.raises(ValueError, match="increase"):  # a stream starts at frame 0
        DriverStateMonitor(MonitorConfig(), FPS).update(-1, frame())


def test_a_cigarette_held_2_s_is_a_smoking_event_alerted_when_it_completes():
    smoking = [frame(cigarette=i % 15 != 7) for i in range(3 * FPS)]  # missed once a second: bridged
    states, events = run_frames([frame()] * 15 + smoking + [frame()] * 30)
    assert spans(events) == [("smoking", edge(15), edge(15 + 3 * FPS))]
    alerted = [s.index for s in states if "smoking" in s.alerts]
    assert alerted[0] == 15 + 2 * FPS - 1 and events[0].alert == pytest.approx(alerted[0] / FPS)
    assert states[alerted[0]].level == 1  # an advisory: a pre-alert, no escalation
    _, events = run_frames([frame()] * 15 + [frame(cigarette=True)] * (2 * FPS - 2) + [frame()] * 30)
    assert events == []  # under smoking_min_s


def test_each_frame_of_a_closure_alerts_the_one_event_its_length_so_far_names():
    states, _ = run_frames(closure(7 * FPS))
    assert all(s.closure_s == 0.0 for s in states[:15])
    for n, state in enumerate(states[15 : 15 + 7 * FPS], start=1):  # n closed frames so far
        expected = (
            ("unresponsive",) if n >= 6 * FPS else ("sleep",) if n >= 3 * FPS else ("microsleep",) if n >= FPS else ()
        )
        assert state.alerts == expected, n
        assert state.closure_s == (pytest.approx(n / FPS) if n / FPS >= 0.1 else 0.0), n  # from min_state_s on


def test_a_long_glance_away_alerts_distraction_then_unresponsive_and_counts_as_off_road_time():
    monitor = head_monitor()
    frames = measures(4) + measures(7, head=(30.0, 0.0)) + measures(2, eyes=None, head=None) + measures(2)
    states, events = run_measures(frames, monitor)
    for n, state in enumerate(states[4 * FPS : 11 * FPS], start=1):  # n frames away so far
        expected = ("unresponsive",) if n >= 6 * FPS else ("distraction",) if n >= 3 * FPS else ()
        assert state.alerts == expected and state.pose == pytest.approx((30.0, 0.0)), n
    assert [e.type for e in events] == ["unresponsive"]
    # the pose is known from the 45th frame on (3 s of baseline, gaze_min_baseline_s), where a face is seen
    assert states[43].pose is None and states[44].pose == pytest.approx((0.0, 0.0))
    assert monitor.metrics()["off_road_share"] == pytest.approx(7 * FPS / ((4 * FPS - 44) + 7 * FPS + 2 * FPS))


def test_a_vats_sequence_still_open_when_the_stream_ends_is_reported():
    glances = (measures(2, head=(30.0, 0.0)) + measures(1)) * 5  # 10 s away in 15 s, never 2 s back on the road
    _, events = run_measures(measures(4) + glances)
    assert spans(events) == [("vats", edge(4 * FPS), edge(4 * FPS + 4 * 3 * FPS + 2 * FPS))]
    assert events[0].alert == pytest.approx((4 * FPS + 4 * 3 * FPS + 2 * FPS - 1) / FPS)  # the frame completing 10 s


def test_a_score_exactly_on_a_threshold_reaches_it():
    config = MonitorConfig()
    frames = measures(1) + measures(1, phone=config.phone_on) + measures(2, phone=config.phone_off) + measures(1)
    _, events = run_measures(frames)
    assert spans(events) == [("phone", edge(FPS), edge(4 * FPS))]


@pytest.mark.parametrize("fps", [15, 29.97])
def test_a_dropout_up_to_max_gap_s_is_bridged_and_a_longer_one_splits_the_closure(fps):
    config = MonitorConfig()
    for dropout in range(1, 9):
        closed = measures(1.2, eyes=1.0, fps=fps)
        frames = measures(1, fps=fps) + closed + measures(dropout / fps, fps=fps) + closed + measures(1, fps=fps)
        _, events = run_measures(frames, head_monitor(config, fps))
        bridged = dropout / fps <= config.eyes_max_gap_s
        assert [e.type for e in events] == ["microsleep"] * (1 if bridged else 2), dropout


def test_at_10_fps_closures_of_min_state_s_and_of_blink_max_s_are_blinks():
    for frames_closed, kinds in ((1, ["blink"]), (5, ["blink"]), (6, [])):  # 0.1 s, 0.5 s, 0.6 s
        _, events = run_frames(closure(frames_closed), fps=10)
        assert [e.type for e in events] == kinds, frames_closed


def test_fps_must_be_positive_and_a_1_fps_time_lapse_is_timed_in_seconds():
    with pytest.raises(ValueError, match="fps must be > 0, got 0"):
        DriverStateMonitor(MonitorConfig(), 0)
    _, events = run_frames(closure(4, before=2, after=2), fps=1)
    assert spans(events) == [("sleep", 1.5, 5.5)]


def test_after_an_alert_the_level_holds_while_the_eyes_keep_closing_and_drops_once_they_stay_open():
    long_blinks = (measures(4 / FPS) + measures(10 / FPS, eyes=1.0)) * 6  # 0.67 s closures: no alert, no recovery
    frames = measures(1) + measures(3, phone=1.0) + long_blinks + measures(2)
    states, _ = run_measures(frames)
    alerted = [s.index for s in states if s.alerts]
    assert alerted == list(range(FPS + 2 * FPS - 1, alerted[-1] + 1))  # the phone alone
    assert {s.level for s in states[alerted[-1] + 1 : len(frames) - FPS - 1]} == {2}  # eyes open from len - 2 s
    assert states[-1].level == 0  # recovery_s with the eyes open


def test_events_ending_on_the_same_frame_are_all_reported_on_it():
    config = dataclasses.replace(MonitorConfig(), cigarette_max_gap_s=1.0)  # as phone_max_gap_s: both end together
    states, events = run_measures(
        measures(1) + measures(3, phone=1.0, cigarette=1.0) + measures(2), head_monitor(config)
    )
    reported = [(s.index, sorted(e.type for e in s.ended)) for s in states if s.ended]
    assert reported == [(4 * FPS + FPS, ["phone", "smoking"])]  # the frame that makes the dropout longer than 1 s
    assert spans(events) == [("phone", edge(FPS), edge(4 * FPS)), ("smoking", edge(FPS), edge(4 * FPS))]


def test_boxes_under_the_configured_min_score_are_no_evidence():
    monitor = DriverStateMonitor(dataclasses.replace(MonitorConfig(), min_score=0.5), FPS)
    scores = [
        monitor.update(i, frame(eyes_closed=True, score=score)).scores["eyes_closed"]
        for i, score in enumerate((0.45, 0.5))
    ]
    assert scores == [None, 1.0]  # under min_score: eyes not seen; exactly min_score: counted


def test_a_mouth_open_less_than_yawn_min_height_scores_0_and_one_that_wide_counts():
    def opened_mouth(height: float) -> np.ndarray:  # a face 200 px tall, its mouth open `height` px
        return np.array(
            [
                [0, 0, 200, 200, 0.9, CLASS_IDS["face"]],
                [80, 150 - height / 2, 120, 150 + height / 2, 0.9, CLASS_IDS["mouth_opened"]],
            ],
            np.float32,
        )

    monitor = DriverStateMonitor(dataclasses.replace(MonitorConfig(), yawn_min_height=0.25), FPS)
    scores = [monitor.update(i, opened_mouth(height)).scores["mouth_open"] for i, height in enumerate((30, 50))]
    assert scores == [0.0, 1.0]  # 0.15 face heights: talking, open but no yawn; 0.25: as wide as a yawn's


def test_a_one_frame_perclos_window_is_the_frames_own_eye_state():
    config = dataclasses.replace(MonitorConfig(), perclos_window_s=0.1, perclos_min_window_s=0.1)
    eyes = [0.0, 1.0, 1.0, 0.0, None, 1.0]
    states, _ = run_measures([measures(0.1, eyes=e, fps=10)[0] for e in eyes], head_monitor(config, 10))
    assert [s.perclos for s in states] == [0.0, 1.0, 1.0, 0.0, None, 1.0]


def test_the_drowsy_event_is_dated_by_the_perclos_windows_centre_at_both_ends_of_a_stream():
    fps = 10
    config = dataclasses.replace(MonitorConfig(), perclos_window_s=1.0, perclos_min_window_s=1.0, drowsy_min_s=1.0)
    frames = measures(3, fps=fps) + measures(2, eyes=1.0, fps=fps) + measures(3, fps=fps)  # closed: frames 30..49
    _, events = run_measures(frames, head_monitor(config, fps))
    # 2 closed frames of the 10 (PERCLOS 0.2 >= drowsy_perclos_on) from the window ending at frame 31 (centre
    # 2.65 s) to the one starting at frame 48 (centre 5.25 s), half a frame more either side: centred on the closure
    assert spans(of_type(events, "drowsy")) == [("drowsy", 2.6, 5.3)]
    config = dataclasses.replace(config, perclos_window_s=2.0)
    frames = [measures(0.1, eyes=float(i % 5 == 0), fps=fps)[0] for i in range(8 * fps)]  # 20 % closed throughout
    _, events = run_measures(frames, head_monitor(config, fps))
    # from the first 1 s window (frames 0..9, centre 0.45 s) to the last as the windows shrink at the end (frames
    # 70..79, centre 7.45 s): half a window inside the stream at both ends
    assert spans(of_type(events, "drowsy")) == [("drowsy", 0.4, 7.5)]


def test_metrics_of_a_stream_without_frames_are_zeros_and_unknowns():
    assert DriverStateMonitor(MonitorConfig(), FPS).metrics() == {
        "frames": 0,
        "seconds": 0.0,
        "perclos_max": 0.0,
        "perclos_mean": None,
        "blinks": 0,
        "blinks_per_min": 0.0,
        "longest_closure_s": 0.0,
        "yawns": 0,
        "eyes_unseen_share": 0.0,
        "off_road_share": None,
        **{f"{kind}_events": 0 for kind in ALERT_EVENTS},
    }


def test_metrics_summarise_blinks_closures_perclos_and_unseen_eyes():
    fps = 10
    blink = [frame(eyes_closed=True)] * 2 + [frame()] * 48  # a 0.2 s blink every 5 s
    frames = blink * 6 + [frame(eyes_closed=True)] * 15 + [frame(eyes_seen=False)] * 30 + [frame()] * 55
    monitor = DriverStateMonitor(MonitorConfig(), fps)
    states = [monitor.update(i, f) for i, f in enumerate(frames)]
    monitor.finish()
    metrics = monitor.metrics()
    perclos = [s.perclos for s in states if s.perclos is not None]
    assert metrics["frames"] == 400 and metrics["seconds"] == pytest.approx(40.0)
    assert metrics["blinks"] == 6 and metrics["blinks_per_min"] == pytest.approx(6 / 40 * 60)
    assert metrics["longest_closure_s"] == pytest.approx(1.5) and metrics["microsleep_events"] == 1
    assert metrics["eyes_unseen_share"] == pytest.approx(30 / 400)
    assert len(perclos) == 400 - (20 * fps - 1)  # from 20 s of seen eyes on
    assert metrics["perclos_mean"] == pytest.approx(np.mean(perclos)) and metrics["perclos_max"] == pytest.approx(
        max(perclos)
    )
    # at its peak, the last frame of the 1.5 s closure: every closed frame so far, of the 315 seen
    assert metrics["perclos_max"] == pytest.approx((6 * 2 + 15) / 315)


def test_frames_folder_is_read_in_name_order(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), np.full((36, 64), 50 * i, np.uint8))
    with FrameSource(tmp_path) as source:
        read = [source.read() for _ in range(4)]
    assert source.fps == 15.0 and source.length == 3
    assert [int(f[0, 0]) for f in read[:3]] == [0, 50, 100] and read[3] is None
