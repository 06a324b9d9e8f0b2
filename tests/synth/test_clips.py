"""Synthetic video clips: the event script keeps its definitions, frames agree with it, the mp4 reads back."""

import json

import cv2
import numpy as np
import pytest

from drowsy.cli import main
from drowsy.monitor.events import EVENT_TYPES, Event
from drowsy.synth.clips.animate import clip_states, frame_truth
from drowsy.synth.clips.protocol import ITEMS, alert_script, protocol_script
from drowsy.synth.clips.script import BLINK_EVERY, DURATIONS, ONSET_S, Script, away_interval, plan_events
from drowsy.synth.clips.write import SCRIPTS, make_script, write_clip
from drowsy.synth.render import render_scene

EPS = 1e-6


def _during(events, kind, t):
    return any(e.type == kind and e.covers(t) for e in events)


@pytest.mark.parametrize("seconds", [30.0, 75.0, 180.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_events_keep_their_definitions(seconds, seed):
    events, closures = plan_events(seconds, seed)
    assert events == sorted(events, key=lambda e: (e.start, e.type))
    for event in events:
        low, high = DURATIONS[event.type]
        assert low - EPS <= event.end - event.start <= high + EPS, event
        assert 0 <= event.start < event.end <= seconds
    blinks = [e.start for e in events if e.type == "blink"]
    assert len(blinks) >= seconds / 12 and np.all(np.diff(blinks) >= BLINK_EVERY[0] - EPS)
    drowsy = [e for e in events if e.type == "drowsy"]
    for sleep in (e for e in events if e.type == "microsleep"):  # a drowsy phase ends in a microsleep
        assert any(d.start <= sleep.start and sleep.end == d.end for d in drowsy)
    for closure in closures:  # long blinks: longer than a blink, shorter than a microsleep, while drowsy
        assert DURATIONS["blink"][1] < closure.end - closure.start < DURATIONS["microsleep"][0]
        assert any(d.start <= closure.start and closure.end <= d.end for d in drowsy)
    for yawn in (e for e in events if e.type == "yawn"):  # a mouth holding a cigarette does not yawn
        assert not any(e.type == "smoking" and e.start < yawn.end and yawn.start < e.end for e in events)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drowsy_phase_lifts_perclos_over_60_s_above_0_2(seed):
    fps, seconds = 10.0, 180.0
    events, closures = plan_events(seconds, seed)
    script = make_script("story", seconds, seed)
    truth = frame_truth(script, int(seconds * fps), fps)
    events = script.events
    closed = np.array([f["eyes_closed"] for f in truth], float)
    window = int(60 * fps)
    perclos = np.convolve(closed, np.ones(window) / window, "valid")  # window ending at frame k + window - 1
    drowsy = [e for e in events if e.type == "drowsy"]
    assert len(drowsy) == 1
    ends = (np.arange(len(perclos)) + window) / fps
    assert perclos[(ends > drowsy[0].start) & (ends <= drowsy[0].end + 1)].max() > 0.2
    alert = (ends - 60 > drowsy[0].end) | (ends < drowsy[0].start)  # windows that miss the drowsy phase
    assert alert.any() and perclos[alert].max() < 0.15


@pytest.mark.parametrize("kind", SCRIPTS)
def test_clip_plan_is_deterministic_per_seed(kind):
    first, second, other = (make_script(kind, 60.0, seed) for seed in (4, 4, 5))
    assert first == second and first != other
    states = [clip_states(script, 20.0, 5.0, seed, (160, 96)) for script, seed in ((first, 4), (second, 4))]
    assert states[0] == states[1]


def test_write_clip_frames_agree_with_events_and_mp4_reads_back(tmp_path):
    fps, seconds, size = 2.0, 75.0, (160, 96)
    clip = write_clip(tmp_path, seconds, fps, seed=1, size=size, progress=False)
    assert clip == tmp_path / "clip.mp4"
    meta = json.loads((tmp_path / "events.json").read_text())
    frames = json.loads((tmp_path / "frames.json").read_text())["frames"]
    assert (meta["fps"], meta["frames"], meta["seconds"]) == (fps, 150, seconds) and len(frames) == 150
    events = [Event(**e) for e in meta["events"]]
    story_types = {"blink", "microsleep", "drowsy", "yawn", "phone", "smoking"}
    assert {e.type for e in events} == story_types  # this seed plays every kind of event of the story
    for frame in frames:
        t = frame["index"] / fps
        assert frame["time_s"] == pytest.approx(t, abs=1e-4)
        if _during(events, "blink", t) or _during(events, "microsleep", t):
            assert frame["eyes_closed"]
        elif frame["eyes_closed"]:  # the long blinks of a drowsy phase are not events of their own
            assert _during(events, "drowsy", t)
        assert frame["mouth_open"] == _during(events, "yawn", t)
        assert frame["phone"] == _during(events, "phone", t)
        assert frame["cigarette"] == _during(events, "smoking", t)
        classes = [o["class"] for o in frame["objects"]]
        assert classes.count("face") == 1
        assert classes.count("eye_closed" if frame["eyes_closed"] else "eye_opened") == 2
        assert ("mouth_opened" if frame["mouth_open"] else "mouth_closed") in classes
        assert ("phone" in classes) == frame["phone"] and ("cigar" in classes) == frame["cigarette"]

    video = cv2.VideoCapture(str(clip))
    assert video.isOpened()
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 150
    read = 0
    while True:
        ok, image = video.read()
        if not ok:
            break
        assert image.shape[:2] == (size[1], size[0])
        read += 1
    video.release()
    assert read == 150


def test_cli_video_mode(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "--video",
                str(tmp_path / "clip"),
                "--seconds",
                "2",
                "--fps",
                "4",
                "--seed",
                "3",
                "--size",
                "96x64",
            ]
        )
        == 0
    )
    assert {p.name for p in (tmp_path / "clip").iterdir()} == {"clip.mp4", "frames.json", "events.json"}
    capsys.readouterr()
    assert main(["synth", "--video", str(tmp_path / "bad"), "--size", "96by64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drowsy: error: --size") and err.count("\n") == 1


def test_protocol_script_plays_every_item_with_its_definitions():
    script = protocol_script(900.0, seed=3)
    counts = {kind: sum(e.type == kind for e in script.events) for kind in EVENT_TYPES}
    for kind in ("microsleep", "sleep", "unresponsive", "yawn", "distraction", "vats", "phone", "smoking", "degraded"):
        assert counts[kind] >= 3, kind
    assert counts["drowsy"] == 0 and script.alert_free == []
    closures = [a for a in script.actions if a.kind == "closure"]
    glances = [a for a in script.actions if a.kind == "glance"]
    for event in script.events:
        length = event.end - event.start
        if event.type in ("microsleep", "sleep") or (
            event.type == "unresponsive" and any(c.start == event.start for c in closures)
        ):
            low, high = {"microsleep": (1.0, 3.0), "sleep": (3.0, 6.0), "unresponsive": (6.0, 99)}[event.type]
            assert low + 0.25 <= length <= high - 0.25 or (high == 99 and length >= 6.25), event
        if event.type in ("distraction", "unresponsive") and any(g.start == event.start for g in glances):
            assert length >= 3.25 and (event.type == "unresponsive") == (length >= 6.0), event
        if event.type == "vats":  # glances inside it add up to 10 s by the alert time, each shorter than 3 s
            inside = [away_interval(g) for g in glances]
            inside = [(a, b) for a, b in inside if event.start <= a and b <= event.end]
            assert all(b - a < 3.0 for a, b in inside) and len(inside) >= 5
            away = sum(min(b, event.alert) - a for a, b in inside if a < event.alert)
            assert away == pytest.approx(10.0, abs=2e-3)
            gaps = [c - b for (_, b), (c, _) in zip(inside, inside[1:])]
            assert max(gaps) < 2.0  # never long enough on the road to restart the sum
        if event.alert is not None and event.type != "vats":
            assert event.alert == pytest.approx(event.start + ONSET_S[event.type], abs=1e-3)
    short = [
        g
        for g in glances
        if g.end - g.start < 2.5
        and not any(e.start < g.end and g.start < e.end for e in script.events if e.type == "vats")
    ]
    assert short and all(1.5 - EPS <= g.end - g.start <= 2.3 + EPS for g in short)  # the glances that must not alert
    eyes_only = [a for a in script.actions if a.kind == "eye_glance"]  # "lizard": the head still
    assert eyes_only and all(27 <= abs(g.value[0]) <= 35 and g.value[1] == 0 for g in eyes_only)
    distractions = {(e.start, e.end) for e in script.events if e.type == "distraction"}
    for glance in eyes_only:
        length = glance.end - glance.start
        assert (1.5 - EPS <= length <= 2.3 + EPS and away_interval(glance) not in distractions) or (
            3.3 - EPS <= length <= 5.0 + EPS and away_interval(glance) in distractions
        ), glance


def test_alert_script_has_only_blinks_and_is_alert_free():
    script = alert_script(600.0, seed=1)
    assert {e.type for e in script.events} == {"blink"} and script.alert_free == [(0.0, 600.0)]
    kinds = {a.kind for a in script.actions}
    assert (
        {"glance", "eye_glance", "syllable", "closure"}
        <= kinds
        <= {"glance", "eye_glance", "syllable", "closure", "rub", "eat", "bite"}
    )
    assert all(a.end - a.start <= 1.5 + EPS for a in script.actions if a.kind in ("glance", "eye_glance"))
    assert all(abs(a.value[0]) <= 35 for a in script.actions if a.kind == "eye_glance")  # within the eyes' reach


def test_protocol_clip_frames_show_turns_covers_and_talking(tmp_path):
    fps, size = 5.0, (320, 180)
    write_clip(tmp_path, 240.0, fps, seed=2, size=size, progress=False, script="protocol")
    frames = json.loads((tmp_path / "frames.json").read_text())["frames"]
    meta = json.loads((tmp_path / "events.json").read_text())
    script = make_script("protocol", 240.0, 2, size)
    assert [Event(**e) for e in meta["events"]] == script.events
    by_kind = {}
    for action in script.actions:
        by_kind.setdefault(action.kind, []).append(action)
    for frame in frames:
        t = frame["time_s"]
        classes = [o["class"] for o in frame["objects"]]
        eyes = classes.count("eye_opened") + classes.count("eye_closed")
        covered = [a for k in ("sunglasses", "glare") for a in by_kind.get(k, []) if a.covers(t)]
        if covered:
            assert eyes == 0  # drawn but hidden: not labelled
        if any(a.covers(t) and a.start + 0.3 < t < a.end - 0.3 for a in by_kind.get("out", [])):
            assert classes == []  # the face is out of frame
        if any(a.start + 0.2 < t < a.end - 0.2 for a in by_kind.get("glance", [])):
            glance = next(a for a in by_kind["glance"] if a.start + 0.2 < t < a.end - 0.2)
            assert abs(frame["yaw"] - glance.value[0]) < 20 and abs(frame["pitch"] - glance.value[1]) < 20
        if any(a.covers(t) for a in by_kind.get("syllable", [])):
            mouth = [o for o in frame["objects"] if o["class"] == "mouth_opened"]
            face = [o for o in frame["objects"] if o["class"] == "face"]
            assert frame["mouth_open"] and mouth and face
            (_, y1, _, y2), (_, fy1, _, fy2) = mouth[0]["position"], face[0]["position"]
            assert (y2 - y1) / (fy2 - fy1) < 0.12  # talking never opens the mouth as wide as a yawn


def test_a_meal_is_bites_that_hide_the_mouth_and_chewing_narrower_than_talking():
    from drowsy.synth.clips.protocol import SYLLABLES, meal

    actions = meal(np.random.default_rng(4), 1.0, 11.0)
    (span,) = [a for a in actions if a.kind == "eat"]
    bites = [a for a in actions if a.kind == "bite"]
    chews = [a for a in actions if a.kind == "syllable"]
    assert (span.start, span.end) == (1.0, 11.0) and len(bites) >= 2 and chews
    assert all(span.start <= a.start and a.end <= span.end for a in bites + chews)
    assert all(not (b.start < c.end and c.start < b.end) for b in bites for c in chews)  # no chewing mid-bite
    assert max(c.value for c in chews) <= SYLLABLES["chew"][1][1] < SYLLABLES["talk"][1][1]
    assert "eat" in ITEMS and any(a.kind == "eat" for a in protocol_script(900.0, seed=3).actions)
    states, truth = clip_states(Script([], actions), 12.0, 5.0, seed=4, size=(320, 180))
    for state, frame in zip(states, truth):
        biting = any(b.start + 0.1 < frame["time_s"] < b.end - 0.1 for b in bites)
        if biting:
            assert state.mouth_cover == "hand" and state.food
            _, objects = render_scene(np.random.default_rng(0), 320, 180, state)
            assert not {"mouth_opened", "mouth_closed"} & {o["class"] for o in objects}  # the snack hides it
        elif not any(b.covers(frame["time_s"]) for b in bites):
            assert state.mouth_cover == "none" and not state.food


def test_the_eyes_hold_the_road_or_the_glance_target_against_the_heads_drift():
    from drowsy.monitor.gaze import EYE_RADIUS, eye_angle
    from drowsy.synth.clips.script import Action
    from drowsy.synth.render import IRIS_TRAVEL

    glances = [Action("glance", 10.0, 13.0, (45.0, 5.0)), Action("eye_glance", 25.0, 28.0, (-30.0, 0.0))]
    states, truth = clip_states(Script([], glances), 300.0, 5.0, seed=6, size=(320, 180))
    gaze = np.array([s.yaw + eye_angle(s.gaze[0] * IRIS_TRAVEL[0]) for s in states])  # where the eyes point
    head = np.array([s.yaw for s in states])
    t = np.array([f["time_s"] for f in truth])
    road = ~np.any([(g.start - 1.0 < t) & (t < g.end + 1.0) for g in glances], axis=0)
    assert np.ptp(head[road]) > 15.0  # the head drifts; the eyes wander on their own (3.5 degrees), not with it
    assert np.abs(gaze[road]).max() < 14.0 and abs(np.corrcoef(gaze[road], head[road])[0, 1]) < 0.3
    for glance in glances:
        held = (glance.start + 0.2 < t) & (t < glance.end - 0.2)
        assert np.abs(gaze[held] - glance.value[0]).max() < 0.5, glance.kind  # fixated: no wander
    assert EYE_RADIUS * abs(max(s.gaze[0] for s in states)) <= 1.0
