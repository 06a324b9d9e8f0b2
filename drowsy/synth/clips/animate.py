"""A script, animated: per-frame scene states and the per-frame truth.

The driver is one scene of `drowsy.synth`; the head drifts (a slow random walk of position, size, roll,
yaw, pitch and iris) while the script's actions play (kinds: `drowsy.synth.clips.script`).
"""

import dataclasses
import math
from collections import defaultdict

import numpy as np

from drowsy.monitor.gaze import EYE_RADIUS
from drowsy.synth.clips.script import TURN_S, Action, Script
from drowsy.synth.render import IRIS_TRAVEL
from drowsy.synth.scene import SceneState, accessories, hands_in_frame, sample_scene

OUT_S = 0.4  # the face leaves the frame and comes back this fast, centred likewise


def frame_truth(script: Script, frames: int, fps: float) -> list[dict]:
    """Per-frame true state: [{"index", "time_s", "eyes_closed", "mouth_open", "phone", "cigarette"}]."""
    lookup = _Lookup(script.actions)
    truth = []
    for index in range(frames):
        t = index / fps
        kinds = {a.kind for a in lookup.at(t) if a.covers(t)}
        truth.append(
            {
                "index": index,
                "time_s": round(t, 4),
                "eyes_closed": "closure" in kinds,
                "mouth_open": bool(kinds & {"yawn", "syllable"}),
                "phone": "phone" in kinds,
                "cigarette": "smoking" in kinds,
            }
        )
    return truth


class _Lookup:
    """The actions near a time, from one-second buckets (a clip has hundreds of actions)."""

    def __init__(self, actions: list[Action], reach: float = 0.5):
        self.buckets = defaultdict(list)
        for action in actions:
            for second in range(int(action.start - reach), int(action.end + reach) + 1):
                self.buckets[second].append(action)

    def at(self, t: float) -> list[Action]:
        return self.buckets.get(int(t), [])


def _random_walk(rng: np.random.Generator, frames: int, fps: float, tau: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Ornstein-Uhlenbeck walks [frames, k]: time constants `tau` (s), stationary std `sigma`."""
    keep = np.exp(-1.0 / (fps * tau))
    steps = rng.standard_normal((frames, len(tau))) * sigma * np.sqrt(1 - keep**2)
    walk = np.empty((frames, len(tau)))
    walk[0] = rng.standard_normal(len(tau)) * sigma
    for k in range(1, frames):
        walk[k] = keep * walk[k - 1] + steps[k]
    return walk


def _ramp(t: float, action: Action, rise: float) -> float:
    """0 outside `action`, rising to 1 within `rise` seconds of its start."""
    return min((t - action.start) / rise, 1.0) if action.covers(t) else 0.0


def _swing(t: float, action: Action, span: float) -> float:
    """0 -> 1 over `span` seconds centred on the action's start, back to 0 centred on its end."""
    rise = (t - action.start + span / 2) / span
    fall = (action.end + span / 2 - t) / span
    return float(np.clip(min(rise, fall), 0.0, 1.0))


def base_scene(seed: int, size: tuple[int, int]) -> SceneState:
    """The clip's driver: a scene of `drowsy.synth` with room for the drift and a nod, both eyes and
    the mouth visible, moderate blur and noise, clear glasses and a cap at their usual rates."""
    width, height = size
    rng = np.random.default_rng([seed, 2])
    base = sample_scene(rng, width, height)
    face_height = min(base.face_height, 0.55 * height)
    return dataclasses.replace(
        base,
        face_height=face_height,
        face_y=min(base.face_y, 0.92 * height - face_height / 2),
        hidden_eye=0,
        mouth_cover="none",
        blur=min(base.blur, 0.8),
        noise=min(base.noise, 4.0),
        phone="none",
        cigarette="none",
        **accessories(rng),
    )


def clip_states(
    script: Script, seconds: float, fps: float, seed: int, size: tuple[int, int] = (640, 360)
) -> tuple[list[SceneState], list[dict]]:
    """Everything about a clip but its pixels: per-frame scene states and per-frame truth (with the
    head's drawn yaw and pitch)."""
    width, height = size
    frames = round(seconds * fps)
    truth = frame_truth(script, frames, fps)
    base = base_scene(seed, size)
    rng = np.random.default_rng([seed, 3])
    nod_side = int(rng.choice([-1, 1]))  # where the head tips in a microsleep
    # head drift: x, y (face units), scale, roll (deg), gaze x, gaze y, brightness, yaw, pitch (deg); the
    # eyes on the road wander by 0.1 of the iris's travel (about 3.5 degrees) across
    walk = _random_walk(
        rng,
        frames,
        fps,
        np.array([4.0, 4.0, 6.0, 3.0, 0.8, 0.8, 8.0, 2.0, 2.0]),
        np.array([0.08, 0.04, 0.04, 4.0, 0.1, 0.4, 0.05, 4.0, 3.0]),
    )
    lookup = _Lookup(script.actions)
    states = []
    for frame, drift in zip(truth, walk):
        state = _animate(base, frame["index"] / fps, lookup.at(frame["index"] / fps), drift, nod_side, width)
        frame["yaw"], frame["pitch"] = round(state.yaw, 2), round(state.pitch, 2)
        states.append(state)
    return states, truth


def _animate(
    base: SceneState, t: float, near: list[Action], drift: np.ndarray, nod_side: int, width: int
) -> SceneState:
    """The scene at time `t` from the actions near it and the head's drift."""
    dx, dy, scale, roll, gx, gy, light, yaw, pitch = drift
    active = {a.kind: a for a in near if a.covers(t)}
    nod = max([_ramp(t, a, 0.6) for a in near if a.kind == "nod"], default=0.0)
    droop = "droop" in active
    target, away = 0.0, 0.0  # the yaw the eyes fixate (the road ahead, or where a glance goes), its weight
    for glance in (a for a in near if a.kind in ("glance", "eye_glance")):
        weight = _swing(t, glance, TURN_S)
        target, away = target + weight * glance.value[0], away + weight
        if glance.kind == "glance":
            yaw, pitch = yaw + weight * glance.value[0], pitch + weight * glance.value[1]
    # the eyes hold the target whatever the head's drift (the vestibulo-ocular reflex): turned by the
    # target's yaw less the head's, the iris EYE_RADIUS * sin(that) eye widths off centre; they wander
    # about the road, not about a glance's target
    gx = (1 - min(away, 1.0)) * gx + EYE_RADIUS * math.sin(math.radians(target - yaw)) / IRIS_TRAVEL[0]
    out = sum(_swing(t, a, OUT_S) * a.value for a in near if a.kind == "out")
    mouth = active.get("yawn") or active.get("syllable")
    gape = 0.5
    if "yawn" in active:
        yawn = active["yawn"]
        gape = float(0.7 + 0.2 * np.sin(np.pi * (t - yawn.start) / (yawn.end - yawn.start)))
    elif "syllable" in active:
        gape = active["syllable"].value
    face_height = base.face_height * (1 + scale)
    face_x = float(np.clip(base.face_x + dx * face_height, 0.45 * face_height, width - 0.45 * face_height))
    smoking = "smoking" in active
    return hands_in_frame(
        dataclasses.replace(
            base,
            face_x=face_x + out * (width + face_height),
            face_height=face_height,
            face_y=base.face_y + (dy + 0.03 * droop + 0.1 * nod) * face_height,
            roll=base.roll + roll + 8.0 * nod * nod_side,
            yaw=float(yaw),
            pitch=float(pitch),
            gaze=(float(np.clip(gx, -1, 1)), float(np.clip(gy + 0.5 * droop, -1, 1))),
            eyes_closed="closure" in active,
            mouth_open=mouth is not None,
            mouth_gape=gape,
            phone=active["phone"].value if "phone" in active else "none",
            cigarette=("mouth" if "puff" in active else "hand") if smoking else "none",
            hidden_eye=active["rub"].value if "rub" in active else 0,
            mouth_cover="hand" if "bite" in active else "none",
            food="bite" in active,
            sunglasses="sunglasses" in active,
            glare=active["glare"].value if "glare" in active else 0.0,
            brightness=float(np.clip(base.brightness + light, 0.7, 1.25)),
        ),
        width,
    )
