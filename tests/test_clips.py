"""Synthetic video clips: the event script keeps its definitions, frames agree with it, the mp4 reads back."""

import json

import cv2
import numpy as np
import pytest

from drowsy import clips
from drowsy.cli import main
from drowsy.events import EVENT_TYPES, Event

EPS = 1e-6


def _during(events, kind, t):
    return any(e.type == kind and e.covers(t) for e in events)


@pytest.mark.parametrize("seconds", [30.0, 75.0, 180.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_events_keep_their_definitions(seconds, seed):
    events, closures = clips.plan_events(seconds, seed)
    assert events == sorted(events, key=lambda e: (e.start, e.type))
    for event in events:
        low, high = clips.DURATIONS[event.type]
        assert low - EPS <= event.end - event.start <= high + EPS, event
        assert 0 <= event.start < event.end <= seconds
    blinks = [e.start for e in events if e.type == "blink"]
    assert len(blinks) >= seconds / 12 and np.all(np.diff(blinks) >= clips.BLINK_EVERY[0] - EPS)
    drowsy = [e for e in events if e.type == "drowsy"]
    for sleep in (e for e in events if e.type == "microsleep"):  # a drowsy phase ends in a microsleep
        assert any(d.start <= sleep.start and sleep.end == d.end for d in drowsy)
    for closure in closures:  # long blinks: longer than a blink, shorter than a microsleep, while drowsy
        assert clips.DURATIONS["blink"][1] < closure.end - closure.start < clips.DURATIONS["microsleep"][0]
        assert any(d.start <= closure.start and closure.end <= d.end for d in drowsy)
    for yawn in (e for e in events if e.type == "yawn"):  # a mouth holding a cigarette does not yawn
        assert not any(e.type == "smoking" and e.start < yawn.end and yawn.start < e.end for e in events)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drowsy_phase_lifts_perclos_over_60_s_above_0_2(seed):
    fps, seconds = 10.0, 180.0
    events, closures = clips.plan_events(seconds, seed)
    truth = clips.frame_truth(events, closures, int(seconds * fps), fps)
    closed = np.array([f["eyes_closed"] for f in truth], float)
    window = int(60 * fps)
    perclos = np.convolve(closed, np.ones(window) / window, "valid")  # window ending at frame k + window - 1
    drowsy = [e for e in events if e.type == "drowsy"]
    assert len(drowsy) == 1
    ends = (np.arange(len(perclos)) + window) / fps
    assert perclos[(ends > drowsy[0].start) & (ends <= drowsy[0].end + 1)].max() > 0.2
    alert = (ends - 60 > drowsy[0].end) | (ends < drowsy[0].start)  # windows that miss the drowsy phase
    assert alert.any() and perclos[alert].max() < 0.15


def test_clip_plan_is_deterministic_per_seed():
    first, second, other = (clips.clip_states(20.0, 5.0, seed, (160, 96)) for seed in (4, 4, 5))
    assert first == second
    assert first[2] != other[2] and first[0] != other[0]


def test_write_clip_frames_agree_with_events_and_mp4_reads_back(tmp_path):
    fps, seconds, size = 2.0, 75.0, (160, 96)
    clip = clips.write_clip(tmp_path, seconds, fps, seed=1, size=size, progress=False)
    assert clip == tmp_path / "clip.mp4"
    meta = json.loads((tmp_path / "events.json").read_text())
    frames = json.loads((tmp_path / "frames.json").read_text())["frames"]
    assert (meta["fps"], meta["frames"], meta["seconds"]) == (fps, 150, seconds) and len(frames) == 150
    events = [Event(**e) for e in meta["events"]]
    assert {e.type for e in events} == set(EVENT_TYPES)  # this seed plays every kind of event
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
    assert main(["synth", "--video", str(tmp_path / "clip"), "--seconds", "2", "--fps", "4", "--seed", "3",
                 "--size", "96x64"]) == 0
    assert {p.name for p in (tmp_path / "clip").iterdir()} == {"clip.mp4", "frames.json", "events.json"}
    capsys.readouterr()
    assert main(["synth", "--video", str(tmp_path / "bad"), "--size", "96by64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drowsy: error: --size") and err.count("\n") == 1
