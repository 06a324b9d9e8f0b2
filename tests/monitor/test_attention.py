"""Where the driver looks and what follows from it, on hand-made sequences: long distraction, VATS,
unresponsive driver, degraded monitoring, talking against yawning, and the alert ladder."""

import math

import cv2
import numpy as np
import pytest

from drowsy import CLASS_IDS
from drowsy.config import MonitorConfig
from drowsy.monitor.attention import AlertLadder, Vats
from drowsy.monitor.events import Event
from drowsy.monitor.gaze import EYE_RADIUS, eye_angle, face_features
from drowsy.monitor.state import DriverStateMonitor
from tests.helpers import FPS, face, of_type, run_frames


def seconds(n: float, **pose) -> list[np.ndarray]:
    return [face(**pose)] * round(n * FPS)


def test_a_two_second_glance_does_not_alert_and_one_of_3_2_s_does_on_time():
    states, events = run_frames(seconds(5) + seconds(2.0, yaw=45) + seconds(5))
    assert not any("distraction" in s.alerts for s in states) and of_type(events, "distraction") == []
    states, events = run_frames(seconds(5) + seconds(3.2, yaw=45) + seconds(5))
    (event,) = of_type(events, "distraction")
    assert (event.start, event.end) == (pytest.approx(5 - 0.5 / FPS), pytest.approx(8.2 - 0.5 / FPS))
    fired = next(s for s in states if "distraction" in s.alerts)
    assert fired.index == 5 * FPS + 3 * FPS - 1 and event.alert == pytest.approx(fired.time_s)
    assert fired.level == 1 and states[fired.index - 1].alerts == ()


def eyes_only(n: float, yaw: float = 0.0) -> list:
    """`n` seconds of an open-eyed, still head whose eyes look `yaw` degrees aside (`update_scores` input)."""
    scores = {"eyes_closed": 0.0, "mouth_open": 0.0, "phone": 0.0, "cigarette": 0.0}
    features = {**face_features(face()), "iris": EYE_RADIUS * math.sin(math.radians(yaw))}
    return [(scores, features)] * round(n * FPS)


def test_an_eyes_only_glance_of_2_s_does_not_alert_and_one_of_3_2_s_does_on_time():
    for length, alerted in ((2.0, False), (3.2, True)):
        monitor = DriverStateMonitor(MonitorConfig(), FPS)
        frames = eyes_only(5) + eyes_only(length, yaw=-30) + eyes_only(5)
        states = [monitor.update_scores(i, *frame) for i, frame in enumerate(frames)]
        events = of_type(monitor.finish(), "distraction")
        assert any("distraction" in s.alerts for s in states) == alerted and len(events) == alerted
        if alerted:
            assert (events[0].start, events[0].end) == (pytest.approx(5 - 0.5 / FPS), pytest.approx(8.2 - 0.5 / FPS))
            assert events[0].alert == pytest.approx((5 * FPS + 3 * FPS - 1) / FPS)


def test_the_monitor_reads_the_iris_of_open_eyes_only():
    def irises(at: float) -> np.ndarray:  # a bright frame, a dark iris `at` of the way across each eye box
        image = np.full((400, 400), 230, np.uint8)
        for x1, y1, x2, y2, *_ in face()[face()[:, 5] == CLASS_IDS["eye_opened"]]:
            cv2.circle(image, (int(x1 + at * (x2 - x1)), int((y1 + y2) / 2)), 3, 20, -1)
        return image

    monitor = DriverStateMonitor(MonitorConfig(), FPS)
    for i in range(3 * FPS):
        monitor.update(i, face(), irises(0.5))  # the baseline: eyes ahead
    looking = monitor.update(3 * FPS, face(), irises(0.7))
    assert looking.pose[0] == pytest.approx(eye_angle(0.2), abs=4) and looking.pose[0] > 25
    closed = monitor.update(3 * FPS + 1, face(eyes="closed"), irises(0.7))  # the same dark spots on closed lids
    assert closed.pose == pytest.approx((0, 0), abs=1e-3)


def test_looking_down_or_up_counts_and_small_head_movements_do_not():
    _, events = run_frames(seconds(5) + seconds(4, pitch=30) + seconds(5) + seconds(4, pitch=-25) + seconds(5))
    assert len(of_type(events, "distraction")) == 2
    _, events = run_frames(seconds(5) + seconds(6, yaw=15, pitch=10) + seconds(5))  # inside the on-road region
    assert [e.type for e in events] == []


def test_gaze_away_for_6_s_is_an_unresponsive_driver():
    states, events = run_frames(seconds(5) + seconds(6.5, yaw=-50) + seconds(3))
    assert [e.type for e in events] == ["unresponsive"]
    alerts = [s.alerts for s in states]
    assert ("distraction",) in alerts and ("unresponsive",) in alerts
    first = next(s for s in states if "unresponsive" in s.alerts)
    assert first.index == 5 * FPS + 6 * FPS - 1 and first.level == 3


def test_vats_adds_short_glances_up_to_10_s_and_two_seconds_on_the_road_restarts_the_sum():
    sequence = seconds(5)
    for _ in range(6):  # 6 x 2 s away, 1 s on the road between: 10 s away after the fifth
        sequence += seconds(2, yaw=40) + seconds(1)
    states, events = run_frames(sequence + seconds(4))
    (vats,) = of_type(events, "vats")
    assert vats.start == pytest.approx(5 - 0.5 / FPS) and vats.end == pytest.approx(5 + 6 * 3 - 1 - 0.5 / FPS)
    fired = next(s for s in states if "vats" in s.alerts)
    assert fired.time_s == pytest.approx(5 + 4 * 3 + 2 - 1 / FPS)  # the fifth glance's last frame
    assert vats.alert == pytest.approx(fired.time_s) and of_type(events, "distraction") == []
    restarted = seconds(5)
    for _ in range(6):  # the same glances, 2 s on the road between them: the sum restarts each time
        restarted += seconds(2, yaw=40) + seconds(2)
    states, events = run_frames(restarted)
    assert of_type(events, "vats") == [] and not any("vats" in s.alerts for s in states)


def feed_vats(vats: Vats, frames: str, step: float = 0.5):
    """Feed `vats` one frame per character of `frames` ("x" eyes off the road, "." on it) as the monitor
    does with no gap bridged: the run in progress while it lasts, the finished run at the first frame
    back on the road. Returns the time the alert came on (None: never) and the events, finish's last."""
    run, alert_s, events = None, None, []
    for i, away in enumerate(frames):
        time_s, ended = i * step, None
        if away == "x":
            run = [time_s - step / 2 if run is None else run[0], time_s + step / 2]
        elif run is not None:
            ended, run = (run[0], run[1], {}), None
        events += [e for e in [vats.update(time_s, step, run, ended)] if e is not None]
        alert_s = time_s if alert_s is None and vats.on_now else alert_s
    return alert_s, events + [e for e in [vats.finish()] if e is not None]


def test_vats_fires_when_glances_reach_exactly_10_s_and_exactly_2_s_on_the_road_restarts_the_sum():
    glances = "...." + "xxxxx..." * 3 + "xxxxx"  # 4 glances of 2.5 s, 1.5 s on the road between them
    alert_s, events = feed_vats(Vats(10.0, 30.0, 2.0, 0.0), glances + "..")  # the stream ends 1 s later
    assert alert_s == 16.0 and events == [Event("vats", 1.75, 16.25, 16.0)]
    alert_s, events = feed_vats(Vats(10.0, 30.0, 2.0, 0.0), "...." + "xxxxx...." * 3 + "xxxxx....")  # 2 s between
    assert (alert_s, events) == (None, [])
    alert_s, events = feed_vats(Vats(10.0, 30.0, 2.0, 0.0), "x..." * 20)  # 10 s away in 40 s, 7.5 s in any 30 s
    assert (alert_s, events) == (None, [])


def test_degraded_when_the_eyes_are_not_measurable_for_5_s_and_not_for_a_hand_passing():
    states, events = run_frames(seconds(5) + seconds(8, eyes=None) + seconds(3))
    (event,) = of_type(events, "degraded")
    fired = next(s for s in states if "degraded" in s.alerts)
    assert fired.time_s - event.start <= 10.0 and fired.time_s == pytest.approx(5 + 5 - 1 / FPS)
    _, events = run_frames(seconds(5) + seconds(2.5, eyes=None) + seconds(5))  # eye rubbing, a hand passing
    assert events == []


def test_talking_opens_the_mouth_but_only_a_wide_opening_is_a_yawn():
    talking = []
    for _ in range(20):  # 0.2 s open, 0.13 s closed: bridged into one long opening of a moderate height
        talking += [face(mouth_height=0.09)] * 3 + [face()] * 2
    _, events = run_frames(seconds(3) + talking + seconds(3))
    assert of_type(events, "yawn") == []
    _, events = run_frames(seconds(3) + seconds(2, mouth_height=0.18) + seconds(3))
    assert len(of_type(events, "yawn")) == 1


def test_ladder_climbs_while_an_alert_lasts_and_recovers_after_attention():
    config = MonitorConfig()
    ladder = AlertLadder(config.prompt_after_s, config.final_after_s, config.recovery_s, config.cooldown_s)
    levels = [ladder.update(t / 10, ("distraction",), False) for t in range(40)]
    assert levels[0] == 1 and levels[15] == 2 and levels[30] == 3  # 1.5 s: prompt, 3 s: final alert
    assert ladder.update(4.0, (), False) == 3  # no alert, but not attentive yet: holds
    assert ladder.update(4.1, (), True) == 3 and ladder.update(5.0, (), True) == 3
    assert ladder.update(5.1, (), True) == 0  # attentive for 1 s: recovered
    assert ladder.update(9.0, ("distraction",), False) == 3  # within the cool-down: resumes at its level
    ladder.update(9.1, (), True), ladder.update(10.2, (), True)
    assert ladder.update(25.0, ("distraction",), False) == 1  # after the cool-down: from the first step
    assert AlertLadder(1.5, 3.0, 1.0, 10.0).update(0.0, ("sleep",), False) == 2
    advisory = AlertLadder(1.5, 3.0, 1.0, 10.0)
    assert max(advisory.update(t / 10, ("yawn",), False) for t in range(100)) == 1  # advisories do not climb
    drowsy = AlertLadder(1.5, 3.0, 1.0, 10.0)  # an advisory still on does not hold the final alert up
    assert [drowsy.update(t / 10, ("drowsy", "distraction"), False) for t in range(40)][-1] == 3
    assert drowsy.update(4.0, ("drowsy",), True) == 3 and drowsy.update(5.0, ("drowsy",), True) == 1


def test_ladder_starts_at_zero_and_a_repeat_on_the_cool_downs_last_instant_resumes_after_seconds_of_attention():
    ladder = AlertLadder(1.5, 3.0, 1.0, 10.0)
    assert ladder.update(0.0, (), True) == 0
    assert [ladder.update(t / 2, ("distraction",), False) for t in range(1, 9)] == [1, 1, 1, 2, 2, 2, 3, 3]
    assert [ladder.update(t / 2, (), True) for t in range(9, 31)] == [3, 3] + [0] * 20  # recovered at 5.5 s
    assert ladder.update(15.5, ("distraction",), False) == 3  # the cool-down ends at 5.5 + 10 s
    assert AlertLadder(1.5, 3.0, 1.0, 10.0).update(0.0, ("glare",), False) == 1  # a kind without a level: pre-alert


def test_monitor_reports_the_ladder_level_per_frame():
    states, _ = run_frames(seconds(5) + seconds(6.5, yaw=50) + seconds(3))
    levels = [s.level for s in states]
    assert max(levels) == 3 and levels[-1] == 0 and levels[5 * FPS] == 0
    assert sorted(set(levels)) == [0, 1, 2, 3]
