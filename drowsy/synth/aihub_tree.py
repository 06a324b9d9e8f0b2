"""The synthetic dataset in the public AIHub layout: its three subsets with their real folder and file
names (drowsy.data.meta), recordings of consecutive frames, one label JSON per image in AIHub's schema
(drowsy.data.aihub).

Each subject belongs to one subset (`SUBSET_SHARES`) and one side of AIHub's split (`VALIDATION_SHARE`
of the subjects under `Validation/`, the rest under `Training/`):
- controlled: `[원천]bbox(통제환경)/001_G1/001_G1_01_무광원_계기판_정상주시_20201101_000000_00000.jpg`, at `size`
  (800x1280 as the real images);
- real road: `[원천]bbox(실제도로환경)/1.버스/R_012_30_M/R_012_30_M_01_M0_G1_C0_01.jpg`, 0.9 x the width
  (720x1280 as the real ones); one recording in `SPACED_EVERY` has a space before the frame number;
- semi-controlled: `[원천]keypoint(준통제환경)/Q_020_40_F_02_M0_G0_C0/..._01.jpg` (one folder per sequence),
  720x1280, whose labels also carry 70 face key points; one sequence in `KEYPOINT_ONLY_EVERY` has key
  points and no boxes (counted apart by drowsy prepare, not trained on).
The first frame of the first real-road subject has a 0-byte label file, as some real ones do.

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

SUBSET_SHARES = {"controlled": 0.7, "real road": 0.2, "semi-controlled": 0.1}  # of the subjects
SUBSET_FOLDER = {
    "controlled": "bbox(통제환경)",
    "real road": "bbox(실제도로환경)",
    "semi-controlled": "keypoint(준통제환경)",
}
VALIDATION_SHARE = 0.1  # subjects under Validation/
VEHICLES = ("1.버스", "2.승용", "3.택시", "4.트럭")  # the real-road vehicle folders
SPACED_EVERY = 8  # real-road recordings: every 8th has "C0 01" instead of "C0_01" in its names
KEYPOINT_ONLY_EVERY = 10  # semi-controlled sequences: every 10th has key points and no boxes
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
    """Write `images` frames under OUT/Training/ and OUT/Validation/ (see the module docstring; `size` is
    the controlled images', the others are 0.9 x as wide) and their label JSONs; return OUT. The output
    is the same for any `workers`.

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
    subjects = -(-images // (frames * recordings_per_subject))
    real_road = [s for s in range(1, subjects + 1) if _subject(seed, s)[0] == "real road"]
    empty_label = (real_road[0] - 1) * recordings_per_subject * frames if real_road else -1
    settings = (out_dir, seed, tuple(size), frames, recordings_per_subject, empty_label)
    run_chunks(_write_frames, settings, images, workers, progress)
    return out_dir


def _subject(seed: int, subject: int) -> tuple[str, str]:
    """(subset, "Training" or "Validation") of a subject."""
    rng = np.random.default_rng([seed, subject, 1 << 23])
    subset = str(rng.choice(list(SUBSET_SHARES), p=list(SUBSET_SHARES.values())))
    return subset, "Validation" if rng.random() < VALIDATION_SHARE else "Training"


def _write_frames(
    out_dir: Path, seed: int, size: tuple[int, int], frames: int, per_subject: int, empty_label: int, start, stop
) -> list[None]:
    for index in range(start, stop):
        recording, frame = divmod(index, frames)
        subject = recording // per_subject + 1
        subset, split = _subject(seed, subject)
        frame_size = size if subset == "controlled" else (size[0] * 9 // 10, size[1])
        state, user, take = _frame_state(seed, frame_size, recording, frame, subject)
        image, objects = render_scene(np.random.default_rng([seed, recording, frame]), *frame_size, state)
        folder, name = _names(subset, subject, recording, frame, per_subject, state, user, take)
        images, labels = (out_dir / split / f"[{kind}]{SUBSET_FOLDER[subset]}" / folder for kind in ("원천", "라벨"))
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        encode_jpeg(images / f"{name}.jpg", image)
        document = _label(f"{name}.jpg", frame_size, objects, state, user)
        if subset == "semi-controlled":
            document["ObjectInfo"]["KeyPoints"] = face_keypoints(objects)
            if recording % KEYPOINT_ONLY_EVERY == 0:
                del document["ObjectInfo"]["BoundingBox"]
        if index == empty_label:
            (labels / f"{name}.json").write_bytes(b"")
        else:
            write_json(labels / f"{name}.json", document, indent=None)
    return [None] * (stop - start)


def _names(subset: str, subject: int, recording: int, frame: int, per_subject: int, state, user: dict, take):
    """(folder, file stem) of a frame in its subset's naming scheme (drowsy.data.meta)."""
    scenario = recording % per_subject + 1
    if subset == "controlled":
        stem = (
            f"{subject:03d}_G1_{scenario:02d}_{take.lighting}_{take.gaze_target}_{take.behaviour}"
            f"_20201101_{(recording * 7) % 24:02d}{(recording * 13) % 60:02d}00_{frame:05d}"
        )
        return f"{subject:03d}_G1", stem
    sex = "M" if user["Gender"] == "남" else "F"
    person = f"{'R' if subset == 'real road' else 'Q'}_{subject:03d}_{user['Age'] // 10 * 10}_{sex}"
    worn = f"M{int(state.mouth_cover == 'mask')}_G{int(state.glasses or state.sunglasses)}_C{int(state.cap)}"
    sequence = f"{person}_{scenario:02d}_{worn}"
    if subset == "semi-controlled":
        return sequence, f"{sequence}_{frame + 1:02d}"
    separator = " " if recording % SPACED_EVERY == SPACED_EVERY - 1 else "_"
    return f"{VEHICLES[subject % len(VEHICLES)]}/{person}", f"{sequence}{separator}{frame + 1:02d}"


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


def _frame_state(seed, size, recording: int, frame: int, subject: int):
    """(state, UserInfo, recording) of one frame: the recording's scene, moved smoothly in time."""
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
    who = np.random.default_rng([seed, subject, 1 << 22])
    user = {"ID": f"{subject:03d}", "Gender": str(who.choice(["남", "여"])), "Age": int(who.integers(21, 70))}
    return state, user, take


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


# 70 face key points in face-box units (0..1 across, 0..1 down): jaw 17, brows 2 x 5, nose 9, eyes 2 x 6,
# mouth 12 outer + 8 inner, pupils 2: the layout of AIHub's KeyPoints (Count 70)
_JAW = [(0.5 - 0.5 * math.cos(math.pi * k / 16), 0.4 + 0.6 * math.sin(math.pi * k / 16)) for k in range(17)]
_BROWS = [(x0 + 0.055 * k, 0.3 - 0.03 * math.sin(math.pi * k / 4)) for x0 in (0.18, 0.6) for k in range(5)]
_NOSE = [(0.5, 0.4 + 0.06 * k) for k in range(4)] + [(0.42 + 0.04 * k, 0.64) for k in range(5)]


def face_keypoints(objects: list[dict]) -> dict:
    """AIHub's `KeyPoints` of a rendered face: 70 points placed on its face box, the eyes and mouth on
    their own boxes where labelled; `{"Count": 0, "Points": []}` without a face. Numeric strings, as
    the real files have them."""
    boxes = {}
    for obj in objects:
        boxes.setdefault(obj["class"].split("_")[0], []).append(obj["position"])
    if "face" not in boxes:
        return {"Count": 0, "Points": []}
    x1, y1, x2, y2 = boxes["face"][0]
    w, h = x2 - x1, y2 - y1

    def on_face(u: float, v: float) -> tuple[float, float]:
        return x1 + u * w, y1 + v * h

    eyes = sorted(boxes.get("eye", []))
    if len(eyes) != 2:  # hidden or one-sided: where the template puts them
        eyes = [[*on_face(u - 0.1, 0.4), *on_face(u + 0.1, 0.46)] for u in (0.32, 0.68)]
    mouth = boxes.get("mouth", [[*on_face(0.35, 0.74), *on_face(0.65, 0.84)]])[0]
    points = [on_face(u, v) for u, v in _JAW + _BROWS + _NOSE]
    points += _ring(eyes[0], 6) + _ring(eyes[1], 6) + _ring(mouth, 12) + _ring(mouth, 8, scale=(0.6, 0.5))
    points += [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in eyes]  # the pupils: the eyes' centres
    return {"Count": len(points), "Points": [f"{value:.2f}" for point in points for value in point]}


def _ring(box, count: int, scale: tuple[float, float] = (1.0, 1.0)) -> list[tuple[float, float]]:
    """`count` points on the ellipse inscribed in `box` (x1, y1, x2, y2), its half-axes times `scale`."""
    x1, y1, x2, y2 = box
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, scale[0] * (x2 - x1) / 2, scale[1] * (y2 - y1) / 2
    return [
        (cx + rx * math.cos(2 * math.pi * k / count), cy + ry * math.sin(2 * math.pi * k / count)) for k in range(count)
    ]
