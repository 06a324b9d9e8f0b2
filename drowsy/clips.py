"""Synthetic driver video clips with a scripted ground truth, for the driver-state monitor.

A clip is one driver from `drowsy.synth`, animated: the head drifts (a slow random walk of
position, size, roll and gaze) while a script of events plays. The events follow common
driver-monitoring definitions (solution.md, "What peers do"): blinks, microsleeps (eyes closed
for 2 s or more), drowsy phases (long blinks so frequent that PERCLOS over 60 s passes 0.2),
yawns (mouth open 1.5 s or more), phone use and smoking.

`write_clip` writes OUT/clip.mp4, OUT/frames.json (per-frame boxes and true state) and
OUT/events.json. Times are seconds from the clip start; frame i shows time i / fps.
"""

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from drowsy import synth
from drowsy.events import Event
from drowsy.files import write_json
from drowsy.progress import progress as progress_bar

# Duration ranges in seconds, the definitions the script keeps to.
DURATIONS = {
    "blink": (0.1, 0.4),
    "microsleep": (2.0, 4.0),
    "drowsy": (12.0, 75.0),  # 45-75 s where the clip allows (see DROWSY_WANTED), shorter in short clips
    "yawn": (1.5, 4.0),
    "phone": (5.0, 15.0),
    "smoking": (8.0, 20.0),
}
DROWSY_WANTED = (45.0, 75.0)  # long enough for PERCLOS over 60 s to pass 0.2; at most 45% of a clip
BLINK_EVERY = (2.0, 6.0)  # start to start of normal blinks
LONG_BLINK = (0.4, 1.2)  # eye closures inside a drowsy phase: longer than a blink, shorter than a microsleep
LONG_BLINK_GAP = (1.0, 3.0)  # eyes open between them
PUFF = (2.0, 4.0)  # while smoking: cigarette at the mouth ...
PUFF_PAUSE = (3.0, 6.0)  # ... then in the hand


def _event(kind: str, start: float, duration: float) -> Event:
    """Times on a millisecond grid; the duration is rounded on its own so it stays in its range."""
    start = round(start, 3)
    return Event(kind, start, round(start + round(duration, 3), 3))


def _free(t0: float, t1: float, busy: list[Event]) -> bool:
    return all(t1 <= e.start or t0 >= e.end for e in busy)


def plan_events(seconds: float, seed: int) -> tuple[list[Event], list[Event]]:
    """The script of a clip: (events sorted by start, eye closures of the drowsy phases).

    A storyline of phone use, smoking and one drowsy phase (ending in a microsleep), in random
    order with plain driving between; then yawns where the mouth is free; then normal blinks
    everywhere the eyes are not already scripted. What does not fit in `seconds` is left out.
    """
    rng = np.random.default_rng([seed, 1])
    activities: list[Event] = []
    t = rng.uniform(1.0, 3.0)
    for kind in rng.permutation(["phone", "smoking", "drowsy"]).tolist():
        t += rng.uniform(3.0, 8.0)
        low, high = DURATIONS[kind]
        if kind == "drowsy":
            duration = min(rng.uniform(*DROWSY_WANTED), 0.45 * seconds)
        else:
            duration = rng.uniform(low, high)
        if duration < low or t + duration > seconds - 1.0:
            continue
        activities.append(_event(kind, t, duration))
        t += duration
    closures: list[Event] = []  # inside drowsy phases: long blinks, then the microsleep at the end
    for phase in [e for e in activities if e.type == "drowsy"]:
        asleep = round(rng.uniform(*DURATIONS["microsleep"]), 3)
        sleep = Event("microsleep", round(phase.end - asleep, 3), phase.end)
        activities.append(sleep)
        t = phase.start + rng.uniform(*LONG_BLINK_GAP)
        while True:
            closure = _event("long_blink", t, rng.uniform(*LONG_BLINK))
            if closure.end + LONG_BLINK_GAP[0] > sleep.start:
                break
            closures.append(closure)
            t = closure.end + rng.uniform(*LONG_BLINK_GAP)
    events = activities + _plan_yawns(rng, seconds, activities) + _plan_blinks(rng, seconds, activities)
    return sorted(events, key=lambda e: (e.start, e.type)), closures


def _plan_yawns(rng: np.random.Generator, seconds: float, activities: list[Event]) -> list[Event]:
    """Up to two yawns in each drowsy phase and one elsewhere, never while phoning, smoking or asleep."""
    busy = [e for e in activities if e.type != "drowsy"]
    windows = [(e.start, e.end, 2) for e in activities if e.type == "drowsy"] + [(0.0, seconds, 1)]
    yawns: list[Event] = []
    for start, end, wanted in windows:
        placed = 0
        for _ in range(20 * wanted):  # a few random tries per wanted yawn
            yawn = _event("yawn", rng.uniform(start, end), rng.uniform(*DURATIONS["yawn"]))
            if yawn.end <= end and _free(yawn.start - 1.0, yawn.end + 1.0, busy + yawns):
                yawns.append(yawn)
                placed += 1
                if placed == wanted:
                    break
    return yawns


def _plan_blinks(rng: np.random.Generator, seconds: float, activities: list[Event]) -> list[Event]:
    """Normal blinks every 2-6 s outside drowsy phases (which script their own eye closures)."""
    busy = [e for e in activities if e.type in ("drowsy", "microsleep")]
    blinks, t = [], rng.uniform(0.5, BLINK_EVERY[1])
    while t < seconds:
        blink = _event("blink", t, rng.uniform(*DURATIONS["blink"]))
        if blink.end <= seconds and _free(blink.start - 0.5, blink.end + 0.5, busy):
            blinks.append(blink)
        t += rng.uniform(*BLINK_EVERY)
    return blinks


def frame_truth(events: list[Event], closures: list[Event], frames: int, fps: float) -> list[dict]:
    """Per-frame true state: [{"index", "time_s", "eyes_closed", "mouth_open", "phone", "cigarette"}]."""
    eye_events = [e for e in events if e.type in ("blink", "microsleep")] + closures
    by_type = {kind: [e for e in events if e.type == kind] for kind in ("yawn", "phone", "smoking")}
    truth = []
    for index in range(frames):
        t = index / fps
        truth.append({
            "index": index, "time_s": round(t, 4),
            "eyes_closed": any(e.covers(t) for e in eye_events),
            "mouth_open": any(e.covers(t) for e in by_type["yawn"]),
            "phone": any(e.covers(t) for e in by_type["phone"]),
            "cigarette": any(e.covers(t) for e in by_type["smoking"]),
        })
    return truth


def _random_walk(rng: np.random.Generator, frames: int, fps: float, tau: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Ornstein-Uhlenbeck walks [frames, k]: time constants `tau` (s), stationary std `sigma`."""
    keep = np.exp(-1.0 / (fps * tau))
    steps = rng.standard_normal((frames, len(tau))) * sigma * np.sqrt(1 - keep**2)
    walk = np.empty((frames, len(tau)))
    walk[0] = rng.standard_normal(len(tau)) * sigma
    for k in range(1, frames):
        walk[k] = keep * walk[k - 1] + steps[k]
    return walk


def _ramp(t: float, event: Event, rise: float) -> float:
    """0 outside `event`, rising to 1 within `rise` seconds of its start."""
    return min((t - event.start) / rise, 1.0) if event.covers(t) else 0.0


def clip_states(seconds: float, fps: float, seed: int,
                size: tuple[int, int] = (640, 360)) -> tuple[list[synth.SceneState], list[dict], list[Event]]:
    """Everything about a clip but its pixels: per-frame scene states, per-frame truth, events."""
    width, height = size
    frames = round(seconds * fps)
    events, closures = plan_events(seconds, seed)
    truth = frame_truth(events, closures, frames, fps)
    rng = np.random.default_rng([seed, 2])
    base = synth.sample_scene(rng, width, height)
    face_height = min(base.face_height, 0.55 * height)  # room for the drift and a nod
    base = dataclasses.replace(base, face_height=face_height,
                               face_y=min(base.face_y, 0.92 * height - face_height / 2), hidden_eye=0,
                               mouth_cover="none", blur=min(base.blur, 0.8), noise=min(base.noise, 4.0))
    nod_side = int(rng.choice([-1, 1]))  # where the head tips in a microsleep
    # head drift: x, y (face units), scale, roll (deg), gaze x, gaze y, brightness
    walk = _random_walk(rng, frames, fps, np.array([4.0, 4.0, 6.0, 3.0, 0.8, 0.8, 8.0]),
                        np.array([0.08, 0.04, 0.04, 4.0, 0.5, 0.4, 0.05]))
    room = (height - base.face_y) / base.face_height - 0.1  # as in synth.sample_scene
    phone_modes = {e: str(rng.choice(["ear", "hand"])) if room >= 0.8 else "ear" for e in events if e.type == "phone"}
    puffs = {e: _puff_schedule(rng, e) for e in events if e.type == "smoking"}
    states = []
    for frame, (dx, dy, scale, roll, gx, gy, light) in zip(truth, walk):
        t = frame["index"] / fps
        nod = max([_ramp(t, e, 0.6) for e in events if e.type == "microsleep"], default=0.0)
        droop = any(e.covers(t) for e in events if e.type == "drowsy")
        yawn = next((e for e in events if e.type == "yawn" and e.covers(t)), None)
        phone = next((e for e in phone_modes if e.covers(t)), None)
        smoking = next((e for e in puffs if e.covers(t)), None)
        face_height = base.face_height * (1 + scale)
        states.append(dataclasses.replace(
            base,
            face_x=float(np.clip(base.face_x + dx * face_height, 0.45 * face_height, width - 0.45 * face_height)),
            face_y=base.face_y + (dy + 0.03 * droop + 0.1 * nod) * face_height,
            face_height=face_height, roll=base.roll + roll + 8.0 * nod * nod_side,
            gaze=(float(np.clip(gx, -1, 1)), float(np.clip(gy + 0.5 * droop, -1, 1))),
            eyes_closed=frame["eyes_closed"], mouth_open=frame["mouth_open"],
            mouth_gape=float(0.5 + 0.35 * np.sin(np.pi * (t - yawn.start) / (yawn.end - yawn.start))) if yawn else 0.5,
            phone=phone_modes[phone] if phone else "none",
            cigarette=("mouth" if any(p.covers(t) for p in puffs[smoking]) else "hand") if smoking else "none",
            brightness=float(np.clip(base.brightness + light, 0.7, 1.25)),
        ))
    return states, truth, events


def _puff_schedule(rng: np.random.Generator, smoking: Event) -> list[Event]:
    """Intervals of a smoking event with the cigarette at the mouth (in the hand between them)."""
    puffs, t = [], smoking.start + rng.uniform(0.0, 1.0)
    while t < smoking.end:
        puff = _event("puff", t, rng.uniform(*PUFF))
        puffs.append(puff)
        t = puff.end + rng.uniform(*PUFF_PAUSE)
    return puffs


def write_clip(out_dir, seconds: float, fps: float, seed: int, size: tuple[int, int] = (640, 360),
               progress: bool = True) -> Path:
    """Render a clip to OUT/clip.mp4 (grey, 'mp4v') with OUT/frames.json and OUT/events.json.

    frames.json: {"fps", "width", "height", "frames": [{"index", "time_s", "eyes_closed",
    "mouth_open", "phone", "cigarette", "objects": [{"class", "position": [x1, y1, x2, y2]}]}]}
    (boxes as in labels.json). events.json: {"fps", "frames", "seconds", "events": [{"type",
    "start", "end"}]}, sorted by start. Returns the path of clip.mp4.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds} and {fps}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width, height = size
    states, truth, events = clip_states(seconds, fps, seed, size)
    clip_path = out_dir / "clip.mp4"
    _render_video(clip_path, states, truth, fps, seed, size, progress)
    write_json(out_dir / "frames.json", {"fps": fps, "width": width, "height": height, "frames": truth}, indent=None)
    write_json(out_dir / "events.json", {
        "fps": fps, "frames": len(truth), "seconds": seconds,
        "events": [dataclasses.asdict(e) for e in events],
    }, indent=1)
    return clip_path


def _render_video(path: Path, states: list[synth.SceneState], truth: list[dict], fps: float, seed: int,
                  size: tuple[int, int], progress: bool) -> None:
    """Render every frame's scene into the video at `path`; adds each frame's boxes to its truth
    record as "objects". Frame i draws its noise from its own generator, so a frame does not depend
    on the ones before it."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height), isColor=False)
    if not writer.isOpened():
        raise OSError(f"{path}: cv2.VideoWriter cannot write 'mp4v'")
    try:
        for frame, state in progress_bar(zip(truth, states), desc="clip", total=len(states), unit="frame",
                                         enabled=progress):
            image, objects = synth.render_scene(np.random.default_rng([seed, 3, frame["index"]]), width, height, state)
            writer.write(image)
            frame["objects"] = objects
    finally:
        writer.release()
