"""Where the driver looks and what follows from it, on hand-made sequences: head pose from boxes and its
baseline, long distraction, VATS, unresponsive driver, degraded monitoring, talking against yawning,
and the alert ladder."""

import dataclasses
import math

import cv2
import numpy as np
import pytest

from drowsy import CLASS_IDS, synth
from drowsy.clips import make_script
from drowsy.clips.animate import base_scene
from drowsy.events import Event
from drowsy.monitor import DriverStateMonitor, MonitorConfig
from drowsy.monitor.attention import AlertLadder, Vats
from drowsy.monitor.gaze import EYE_RADIUS, FEATURE_DEPTH, HeadPose, box_angles, eye_angle, face_features, iris_offset
from drowsy.synth.render import IRIS_TRAVEL

FPS = 15
FACE = (100.0, 100.0, 256.0, 300.0)  # x1, y1, x2, y2: 200 px tall, 156 wide, centre (178, 200)


def face(yaw=0.0, pitch=0.0, eyes="open", mouth_height=0.06, offset=(0.0, 0.0), roll=0.0) -> np.ndarray:
    """One frame's detections of a face whose features moved as a head turned by (yaw, pitch) degrees
    would move them; offset: the driver's own resting offset of the features (face heights); roll:
    the whole face rotated in the image (degrees). eyes: "open", "closed" or None (not seen)."""
    x1, y1, x2, y2 = FACE
    height, cx, cy = y2 - y1, (x1 + x2) / 2, (y1 + y2) / 2
    turn = np.radians([yaw, pitch])
    angle = math.radians(roll)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def at(local) -> np.ndarray:  # face units from the face centre -> pixels, turned as the renderer turns
        turned = np.array(local) * np.cos(turn) + FEATURE_DEPTH * np.sin(turn) + np.array(offset)
        return np.array([cx, cy]) + rotation @ (turned * height)

    rows = [[*FACE, 0.9, CLASS_IDS["face"]]]
    if eyes is not None:
        for side in (-1, 1):
            ex, ey = at((side * 0.16, -0.08))
            rows.append([ex - 10, ey - 5, ex + 10, ey + 5, 0.9, CLASS_IDS[f"eye_{'closed' if eyes == 'closed' else 'opened'}"]])
    mx, my = at((0.0, 0.26))
    half = mouth_height * height / 2
    kind = "mouth_opened" if mouth_height >= 0.08 else "mouth_closed"
    rows.append([mx - 25, my - half, mx + 25, my + half, 0.9, CLASS_IDS[kind]])
    return np.array(rows, np.float32)


def box(centre, size, kind: str, score: float = 0.9) -> list[float]:
    """One detection row: a box of size (w, h) pixels around centre (x, y)."""
    (x, y), (w, h) = centre, size
    return [x - w / 2, y - h / 2, x + w / 2, y + h / 2, score, CLASS_IDS[kind]]


def identity(offset) -> tuple[float, float]:  # head angles as features, as the landmark peer passes them
    return float(offset[0]), float(offset[1])


def run(frames, config: MonitorConfig | None = None):
    monitor = DriverStateMonitor(config or MonitorConfig(), FPS)
    states = [monitor.update(i, f) for i, f in enumerate(frames)]
    return states, monitor.finish()


def seconds(n: float, **pose) -> list[np.ndarray]:
    return [face(**pose)] * round(n * FPS)


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]


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
    rows = np.array([[400.0, 100.0, 556.0, 300.0, 0.5, CLASS_IDS["face"]], [*FACE, 0.9, CLASS_IDS["face"]],
                     box((158, 190), (20, 10), "eye_opened"), box((218, 190), (20, 10), "eye_opened"),
                     box((178, 250), (50, 20), "mouth_opened", 0.6), box((178, 270), (50, 10), "mouth_closed", 0.5),
                     box((188, 260), (50, 40), "mouth_opened")], np.float32)
    features = face_features(rows)  # face centre (178, 200), 200 px tall
    assert features["eyes"] == pytest.approx((10 / 200, -10 / 200))  # the eyes' midpoint (188, 190)
    assert features["mouth"] == pytest.approx((10 / 200, 60 / 200))  # the best mouth, (188, 260)
    assert features["mouth_open_height"] == pytest.approx(40 / 200)


def test_only_features_centred_inside_the_face_box_count_its_edges_included():
    others = [box(centre, (50, 12), "mouth_opened", 0.95) for centre in ((60, 200), (300, 200), (178, 60), (178, 340))]
    features = face_features(np.array([*face(), *others], np.float32))  # a passenger's mouths all around
    assert features["mouth"] == pytest.approx((0.0, 0.26)) and features["mouth_open_height"] is None
    edges = {(100, 200): (-78 / 200, 0.0), (256, 200): (78 / 200, 0.0), (178, 100): (0.0, -0.5), (178, 300): (0.0, 0.5)}
    for centre, expected in edges.items():
        rows = np.array([[*FACE, 0.9, CLASS_IDS["face"]], box(centre, (50, 12), "mouth_closed")], np.float32)
        assert face_features(rows)["mouth"] == pytest.approx(expected), centre


@pytest.mark.parametrize("shift, corner", [((0, 0), (0, 1)), ((160, -100), (2, 3))])
def test_an_eye_seen_as_both_open_and_closed_is_one_eye(shift, corner):
    """The other-class box of the left eye, centred on a corner of the better box, scores between
    the two eyes: the eyes are still the left and the right one (the face also placed where x > y)."""
    rows = face()
    rows[2, 4] = 0.7  # the right eye
    left = rows[1, :4]
    rows = np.vstack([rows, box((left[corner[0]], left[corner[1]]), (20, 10), "eye_closed", 0.8)])
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
    short = HeadPose(FPS, baseline_s=1 / FPS, min_baseline_s=1 / FPS, limits=(20, 15, 15), features=("head",),
                     angles=identity)  # a one-frame baseline: usable at its frame, frozen after it
    assert short.update({"head": (5, 0)}) == (0.0, 0.0) and short.update({"head": (12, 3)}) == (7.0, 3.0)


def test_a_two_second_glance_does_not_alert_and_one_of_3_2_s_does_on_time():
    states, events = run(seconds(5) + seconds(2.0, yaw=45) + seconds(5))
    assert not any("distraction" in s.alerts for s in states) and of_type(events, "distraction") == []
    states, events = run(seconds(5) + seconds(3.2, yaw=45) + seconds(5))
    (event,) = of_type(events, "distraction")
    assert (event.start, event.end) == (pytest.approx(5 - 0.5 / FPS), pytest.approx(8.2 - 0.5 / FPS))
    fired = next(s for s in states if "distraction" in s.alerts)
    assert fired.index == 5 * FPS + 3 * FPS - 1 and event.alert == pytest.approx(fired.time_s)
    assert fired.level == 1 and states[fired.index - 1].alerts == ()


@pytest.mark.parametrize("size", [(400, 640), (640, 360)])  # the benchmark's close-ups and its small faces
def test_the_iris_locator_finds_a_drawn_iris_within_0_03_eye_widths(size):
    for seed in range(3):
        base = dataclasses.replace(base_scene(seed, size), eyes_closed=False, yaw=0.0, pitch=0.0)
        for gaze in (-1.0, -0.5, 0.0, 0.5, 1.0):
            image, objects = synth.render_scene(np.random.default_rng(seed), *size, dataclasses.replace(base, gaze=(gaze, 0.0)))
            rows = np.array([[*o["position"], 0.9, CLASS_IDS[o["class"]]] for o in objects], np.float32)
            assert iris_offset(image, rows) == pytest.approx(gaze * IRIS_TRAVEL[0], abs=0.03), (seed, gaze)
        closed, objects = synth.render_scene(np.random.default_rng(seed), *size, dataclasses.replace(base, eyes_closed=True))
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
    assert pose.update({**face_features(face(yaw=10)), "iris": 0.02 - EYE_RADIUS * math.sin(math.radians(25))}) \
        == pytest.approx((-15, 0), abs=0.5)  # head 10 right, eyes 25 left
    assert pose.update(face_features(face())) == pytest.approx((0, 0), abs=1e-3)  # no iris read: the head alone


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
    _, events = run(seconds(5) + seconds(4, pitch=30) + seconds(5) + seconds(4, pitch=-25) + seconds(5))
    assert len(of_type(events, "distraction")) == 2
    _, events = run(seconds(5) + seconds(6, yaw=15, pitch=10) + seconds(5))  # inside the on-road region
    assert [e.type for e in events] == []


def test_gaze_away_for_6_s_is_an_unresponsive_driver():
    states, events = run(seconds(5) + seconds(6.5, yaw=-50) + seconds(3))
    assert [e.type for e in events] == ["unresponsive"]
    alerts = [s.alerts for s in states]
    assert ("distraction",) in alerts and ("unresponsive",) in alerts
    first = next(s for s in states if "unresponsive" in s.alerts)
    assert first.index == 5 * FPS + 6 * FPS - 1 and first.level == 3


def test_vats_adds_short_glances_up_to_10_s_and_two_seconds_on_the_road_restarts_the_sum():
    sequence = seconds(5)
    for _ in range(6):  # 6 x 2 s away, 1 s on the road between: 10 s away after the fifth
        sequence += seconds(2, yaw=40) + seconds(1)
    states, events = run(sequence + seconds(4))
    (vats,) = of_type(events, "vats")
    assert vats.start == pytest.approx(5 - 0.5 / FPS) and vats.end == pytest.approx(5 + 6 * 3 - 1 - 0.5 / FPS)
    fired = next(s for s in states if "vats" in s.alerts)
    assert fired.time_s == pytest.approx(5 + 4 * 3 + 2 - 1 / FPS)  # the fifth glance's last frame
    assert vats.alert == pytest.approx(fired.time_s) and of_type(events, "distraction") == []
    restarted = seconds(5)
    for _ in range(6):  # the same glances, 2 s on the road between them: the sum restarts each time
        restarted += seconds(2, yaw=40) + seconds(2)
    states, events = run(restarted)
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
    states, events = run(seconds(5) + seconds(8, eyes=None) + seconds(3))
    (event,) = of_type(events, "degraded")
    fired = next(s for s in states if "degraded" in s.alerts)
    assert fired.time_s - event.start <= 10.0 and fired.time_s == pytest.approx(5 + 5 - 1 / FPS)
    _, events = run(seconds(5) + seconds(2.5, eyes=None) + seconds(5))  # eye rubbing, a hand passing
    assert events == []


def test_talking_opens_the_mouth_but_only_a_wide_opening_is_a_yawn():
    talking = []
    for _ in range(20):  # 0.2 s open, 0.13 s closed: bridged into one long opening of a moderate height
        talking += [face(mouth_height=0.09)] * 3 + [face()] * 2
    _, events = run(seconds(3) + talking + seconds(3))
    assert of_type(events, "yawn") == []
    _, events = run(seconds(3) + seconds(2, mouth_height=0.18) + seconds(3))
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
    states, _ = run(seconds(5) + seconds(6.5, yaw=50) + seconds(3))
    levels = [s.level for s in states]
    assert max(levels) == 3 and levels[-1] == 0 and levels[5 * FPS] == 0
    assert sorted(set(levels)) == [0, 1, 2, 3]


def test_benchmark_tables_on_short_protocol_and_alert_clips_with_their_true_boxes(tmp_path):
    from drowsy.monitor.benchmark import ClipSpec, false_alert_counts, hard_cases_table, run_clips, scores_table

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
    assert alerts["yawns_while_talking"] == 0 and alerts["alerts_while_rubbing"] == 0 and alerts["alerts_while_eating"] == 0
    runs[1]["found"]["truth"].append(Event("yawn", 10.0, 12.0, 11.0))  # one false alert in a minute
    assert false_alert_counts(runs, "truth")["per_hour"] == pytest.approx(60.0)
    rub = next(a for a in make_script("protocol", 150.0, 7, (240, 384)).actions if a.kind == "rub")
    runs[0]["found"]["truth"] += [Event("microsleep", rub.start, rub.end - 0.1, rub.start + 1.0),  # a hand read as closed eyes
                                  Event("phone", rub.start, rub.end)]  # not a drowsiness alert: not counted
    assert false_alert_counts(runs, "truth")["alerts_while_rubbing"] == 1
