"""The synthetic dataset in the public AIHub layout: one folder per subject, recordings of consecutive
frames, one label JSON per image in AIHub's schema (see drowsy.data.aihub), names in the controlled scheme.

A recording is one (subject, scenario, lighting, gaze target, behaviour) and `frames` consecutive
frames of it: the driver moves smoothly, so frames of one recording are near duplicates, as in the
real videos. The gaze target in the name turns the head towards it (`GAZE_POSES`); the behaviour in
the name drives the content (drowsy -> eyes closed, yawning -> mouth
open, phone call -> phone, smoking -> cigarette) at the rates that give the real class table
(`CLASS_RATES`); the lighting condition sets the light's direction and strength. Each subject keeps
one identity and one cabin across its recordings. Recording r, frame f depend only on (seed, r, f).
"""

import dataclasses
import math
from pathlib import Path

import numpy as np

from drowsy.data.meta import GAZE_TARGET, LIGHTING
from drowsy.files import write_json
from drowsy.synth.competition import encode_jpeg, run_chunks
from drowsy.synth.render import render_scene
from drowsy.synth.scene import (
    CLASS_RATES,
    EYES_CLOSED_RATE,
    GAZE_POSES,
    MOUTH_OPEN_RATE,
    MOUTH_VISIBLE_RATE,
    SceneState,
    accessories,
    hands_in_frame,
    phone_hold,
    room_below,
    sample_scene,
)

ENVIRONMENT_FOLDER = "bbox(통제환경)"
YAWN_RATE = MOUTH_OPEN_RATE * MOUTH_VISIBLE_RATE  # images with an open mouth
# behaviour (Korean, as in the file names) -> share of recordings; the rest are "정상주시" (normal)
BEHAVIOUR_RATES = {
    "졸음재현": EYES_CLOSED_RATE,
    "하품재현": YAWN_RATE,
    "통화재현": CLASS_RATES["phone"],
    "흡연재현": CLASS_RATES["cigar"],
}
BEHAVIOURS = ["정상주시", *BEHAVIOUR_RATES]
# lighting -> (gain range, direction the image brightens towards in degrees, gradient strength)
LIGHTING_LOOK = {
    "무광원": ((0.45, 0.6), 0.0, 0.05),
    "정면광원": ((1.05, 1.25), 90.0, 0.1),
    "좌측광원": ((0.8, 1.0), 180.0, 0.55),
    "우측광원": ((0.8, 1.0), 0.0, 0.55),
    "후면광원": ((0.6, 0.75), 270.0, 0.6),
}
_EYE_KEYS = ("Reye", "Leye")  # the driver's right eye shows on the image's left


def write_aihub_tree(
    out_dir,
    images: int,
    seed: int = 0,
    size: tuple[int, int] = (800, 1280),
    frames: int = 3,
    recordings_per_subject: int = 6,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write `images` frames under OUT/Training/[원천]bbox(통제환경)/<subject>_G1/ and their label JSONs
    under [라벨]bbox(통제환경); return OUT. The output is the same for any `workers`.

    `frames` per recording and `recordings_per_subject` shrink for small sets so that there are at
    least 10 subjects (a split by subject needs several).
    """
    recordings_per_subject = max(1, min(recordings_per_subject, images // (10 * frames)))
    frames = max(1, min(frames, images // 10))
    if images < 0 or workers < 1 or frames < 1 or recordings_per_subject < 1:
        raise ValueError(
            f"images must be >= 0 and workers, frames, recordings_per_subject >= 1, got {images}, "
            f"{workers}, {frames}, {recordings_per_subject}"
        )
    out_dir = Path(out_dir)
    run_chunks(_write_frames, (out_dir, seed, tuple(size), frames, recordings_per_subject), images, workers, progress)
    return out_dir


def _write_frames(
    out_dir: Path, seed: int, size: tuple[int, int], frames: int, per_subject: int, start: int, stop: int
) -> list[None]:
    for index in range(start, stop):
        recording, frame = divmod(index, frames)
        subject = recording // per_subject + 1
        state, name, user = _frame_state(seed, size, recording, frame, subject, per_subject)
        image, objects = render_scene(np.random.default_rng([seed, recording, frame]), *size, state)
        folder = f"{subject:03d}_G1"
        images, labels = (out_dir / "Training" / f"[{kind}]{ENVIRONMENT_FOLDER}" / folder for kind in ("원천", "라벨"))
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        encode_jpeg(images / f"{name}.jpg", image)
        write_json(labels / f"{name}.json", _label(f"{name}.jpg", size, objects, state, user), indent=None)
    return [None] * (stop - start)


@dataclasses.dataclass(frozen=True)
class _Recording:
    behaviour: str
    lighting: str
    gaze_target: str
    base: SceneState


def _recording(seed: int, size: tuple[int, int], recording: int, subject: int) -> _Recording:
    rng = np.random.default_rng([seed, recording, 1 << 20])
    who = np.random.default_rng([seed, subject, 1 << 21])  # the same face and cabin in every recording
    behaviour = str(rng.choice(BEHAVIOURS, p=[1 - sum(BEHAVIOUR_RATES.values()), *BEHAVIOUR_RATES.values()]))
    lighting = str(rng.choice(list(LIGHTING)))
    gains, angle, strength = LIGHTING_LOOK[lighting]
    base = _act(sample_scene(rng, *size), behaviour, rng, size)
    gaze_target = str(rng.choice(list(GAZE_TARGET)))
    yaw, pitch = GAZE_POSES[GAZE_TARGET[gaze_target]]
    base = dataclasses.replace(
        base,
        identity_seed=int(who.integers(2**31)),
        clutter_seed=int(who.integers(2**31)),
        brightness=rng.uniform(*gains),
        light_angle=angle + rng.uniform(-15, 15),
        light_strength=strength,
        yaw=yaw + rng.uniform(-6, 6),
        pitch=pitch + rng.uniform(-5, 5),
        **accessories(rng, covers=True),
    )
    return _Recording(behaviour, lighting, gaze_target, base)


def _act(state: SceneState, behaviour: str, rng: np.random.Generator, size: tuple[int, int]) -> SceneState:
    """The scene with the content its behaviour implies, and nothing the other behaviours would add (a
    phone call holds the phone where `phone_hold` says: at the ear or in front of the chest)."""
    mouth_visible = behaviour == "하품재현" or (
        state.mouth_cover == "none"
        and rng.random() < (MOUTH_VISIBLE_RATE - YAWN_RATE) / (1 - YAWN_RATE) / MOUTH_VISIBLE_RATE
    )
    cover = "none" if mouth_visible else ("hand" if state.mouth_cover == "hand" else "mask")
    cigarette = "none"
    if behaviour == "흡연재현":
        cigarette = "mouth" if mouth_visible and rng.random() < 0.7 else "hand"
    phone = "none"
    if behaviour == "통화재현":
        phone = phone_hold(rng, room_below(state.face_y, state.face_height, size[1]))
    return hands_in_frame(
        dataclasses.replace(
            state,
            eyes_closed=behaviour == "졸음재현",
            mouth_open=behaviour == "하품재현",
            mouth_cover=cover,
            food=state.food and cover == "hand",
            phone=phone,
            cigarette=cigarette,
        ),
        size[0],
    )


def _frame_state(seed, size, recording: int, frame: int, subject: int, per_subject: int):
    """(state, file stem, UserInfo) of one frame: the recording's scene, moved smoothly in time."""
    take = _recording(seed, size, recording, subject)
    base, t = take.base, frame / 10.0
    phase = recording * 0.7
    state = dataclasses.replace(
        base,
        face_x=base.face_x + 0.03 * base.face_height * math.sin(2 * math.pi * 0.3 * t + phase),
        face_y=base.face_y + 0.02 * base.face_height * math.sin(2 * math.pi * 0.2 * t + 2 * phase),
        roll=base.roll + 3.0 * math.sin(2 * math.pi * 0.25 * t + phase),
        yaw=base.yaw + 2.0 * math.sin(2 * math.pi * 0.15 * t + phase),
        gaze=(float(np.clip(base.gaze[0] + 0.3 * math.sin(t + phase), -1, 1)), base.gaze[1]),
    )
    stem = (
        f"{subject:03d}_G1_{recording % per_subject + 1:02d}_{take.lighting}_{take.gaze_target}_{take.behaviour}"
        f"_20201101_{(recording * 7) % 24:02d}{(recording * 13) % 60:02d}00_{frame:05d}"
    )
    who = np.random.default_rng([seed, subject, 1 << 22])
    user = {"ID": f"{subject:03d}", "Gender": str(who.choice(["남", "여"])), "Age": int(who.integers(21, 70))}
    return state, stem, user


def _label(file_name: str, size: tuple[int, int], objects: list[dict], state: SceneState, user: dict) -> dict:
    """The AIHub label document of one rendered frame."""
    boxes = {
        key: {"isVisible": False, "Position": [0, 0, 0, 0]}
        for key in ("Face", "Leye", "Reye", "Mouth", "Cigar", "Phone")
    }
    eyes = sorted((obj for obj in objects if obj["class"].startswith("eye")), key=lambda o: o["position"][0])
    # two eyes: by their order across the image (a turned head can put both on one side of the face's
    # centre); one: the side that is not behind a hand
    sides = {id(obj): side for obj, side in zip(eyes, (-1, 1) if len(eyes) == 2 else (-state.hidden_eye or -1,))}
    for obj in objects:
        cls, position = obj["class"], obj["position"]
        if cls.startswith("eye"):
            key = _EYE_KEYS[sides[id(obj)] > 0]
        else:
            key = {"face": "Face", "phone": "Phone", "cigar": "Cigar"}.get(cls, "Mouth")
        boxes[key] = {"isVisible": True, "Position": position}
        if key in ("Leye", "Reye", "Mouth"):
            boxes[key]["Opened"] = cls.endswith("opened")
    return {
        "FileInfo": {"FileName": file_name, "Width": size[0], "Height": size[1], "Channel": 1},
        "UserInfo": user,
        "Accessory": {
            "Mask": state.mouth_cover == "mask",
            "Glasses": state.glasses or state.sunglasses,
            "Cap": state.cap,
        },
        "ObjectInfo": {"KeyPoints": {}, "BoundingBox": boxes},
    }
