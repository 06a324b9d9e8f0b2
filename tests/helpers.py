"""Helpers the tests share: image files, checkpoints, AIHub trees, and monitor frames."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from drowsy import CLASS_IDS, CLASSES
from drowsy.config import MonitorConfig, TrainConfig
from drowsy.models.checkpoint import save_checkpoint
from drowsy.models.yolo import build_model
from drowsy.monitor.events import Event
from drowsy.monitor.gaze import FEATURE_DEPTH
from drowsy.monitor.state import DriverStateMonitor

# ---------------------------------------------------------------------------------------------
# Labels and image files (hand-made JPEG and PNG bytes)


def write_image(path, width=32, height=18, channels=1):
    """A noisy image (so JPEG has real scan data) written with OpenCV; returns the path."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    return path


def encoded(suffix: str, width: int, height: int, channels: int = 1, params=()) -> bytes:
    shape = (height, width) if channels == 1 else (height, width, channels)
    ok, data = cv2.imencode(suffix, np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8), list(params))
    assert ok
    return data.tobytes()


SOI, EOI = b"\xff\xd8", b"\xff\xd9"


def jpeg_segment(marker: int, payload: bytes = b"") -> bytes:
    """FF `marker`, a big-endian length that counts itself, then `payload`."""
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_frame(width: int, height: int, channels: int = 1, marker: int = 0xC0) -> bytes:
    """A start-of-frame segment (8-bit samples) with one component entry per channel."""
    components = b"".join(bytes([i + 1, 0x11, 0]) for i in range(channels))
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return jpeg_segment(marker, b"\x08" + size + bytes([channels]) + components)


JFIF = jpeg_segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
SCAN = jpeg_segment(0xDA, bytes([1, 1, 0, 0, 63, 0])) + b"\x12\x34\x56"


def exif_app1(orientation: int, byte_order: str) -> bytes:
    """An APP1 segment holding a TIFF IFD with one entry, the orientation tag (SHORT)."""
    order = "little" if byte_order == "II" else "big"
    entry = (
        (0x0112).to_bytes(2, order)
        + (3).to_bytes(2, order)
        + (1).to_bytes(4, order)
        + orientation.to_bytes(2, order)
        + bytes(2)
    )
    tiff = (
        byte_order.encode()
        + (42).to_bytes(2, order)
        + (8).to_bytes(4, order)
        + (1).to_bytes(2, order)
        + entry
        + bytes(4)
    )
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def obj(cls, x1=10, y1=10, x2=30, y2=20) -> dict:
    """One labelled object: {"class", "position": [x1, y1, x2, y2]} (pixels, as given)."""
    return {"class": cls, "position": [x1, y1, x2, y2]}


# ---------------------------------------------------------------------------------------------
# Checkpoints and images for inference


IMG = 64  # network input of the tests, pixels


def make_checkpoint(path: Path, seed: int = 0, model_config: str = "yolov5n") -> Path:
    """A random yolov5n (or `model_config`) checkpoint that yields boxes of varied sizes and scores.

    Freshly initialised convolutions shrink activations layer after layer, so its head would see ~0
    and give every cell the same score; one train-mode pass over noise sets the BatchNorm statistics
    so features keep unit scale. Objectness and the face class are biased up so boxes pass conf.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(model_config, num_classes=len(CLASSES), in_channels=1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # running statistics = the plain average over the calibration pass
        model.train()(torch.rand(4, 1, 128, 128, generator=generator))
        for conv in model.head.convs:
            bias = conv.bias.view(model.num_anchors, -1)
            bias[:, 4] += 3
            bias[:, 5 + CLASSES.index("face")] += 2
    save_checkpoint(
        {
            "ema": model.state_dict(),
            "model_config": model_config,
            "num_classes": len(CLASSES),
            "in_channels": 1,
            "class_names": list(CLASSES),
            "config": {"img_size": IMG},
        },
        path,
    )
    return path


def noise_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Grayscale noise images of different shapes (landscape, portrait), uint8 [H, W]."""
    rng = np.random.default_rng(seed)
    shapes = [(36, 64), (80, 50), (45, 90), (64, 64)]
    return [rng.integers(0, 256, shapes[i % len(shapes)], dtype=np.uint8) for i in range(count)]


def tiny_config(prepared, run_dir, **overrides) -> TrainConfig:
    """A few short epochs of yolov5n at 96 px on the `tiny_dataset` fixture's manifests, on the CPU."""
    values = dict(
        train_manifest=str(prepared / "train.json"),
        val_manifest=str(prepared / "val.json"),
        run_dir=str(run_dir),
        model="yolov5n",
        img_size=96,
        batch=4,
        nominal_batch=8,
        epochs=3,
        epoch_parts=2,
        device="cpu",
        workers=0,
        cache=False,
        val_every=3,
        seed=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


# ---------------------------------------------------------------------------------------------
# AIHub trees as downloaded (label JSON under `[라벨]` folders, images under `[원천]`)


AIHUB_W, AIHUB_H = 80, 128  # portrait, like the controlled images (800x1280), scaled down
CONTROLLED = "Training/[라벨]bbox(통제환경)"
CONTROLLED_IMAGES = "Training/[원천]bbox(통제환경)"


def aihub_box(x1, y1, x2, y2, opened=None, visible=True):
    entry = {"isVisible": visible, "Position": [x1, y1, x2, y2]}
    if opened is not None:
        entry["Opened"] = opened
    return entry


def aihub_hidden():
    return {"isVisible": False, "Position": [0, 0, 0, 0]}


def aihub_label(name, boxes=None, size=(AIHUB_W, AIHUB_H), user=None, accessory=None):
    """An AIHub label document for image `name`."""
    boxes = (
        boxes
        if boxes is not None
        else {
            "Face": aihub_box(20, 30, 60, 90),
            "Leye": aihub_box(28, 45, 38, 52, opened=True),
            "Reye": aihub_box(42, 45, 52, 52, opened=False),
            "Mouth": aihub_box(32, 70, 48, 80, opened=True),
            "Cigar": aihub_hidden(),
            "Phone": aihub_hidden(),
        }
    )
    document = {
        "FileInfo": {"FileName": name, "Width": size[0], "Height": size[1], "Channel": 1},
        "ObjectInfo": {"KeyPoints": {}, "BoundingBox": boxes},
    }
    if user is not None:
        document["UserInfo"] = user
    if accessory is not None:
        document["Accessory"] = accessory
    return document


class AIHubTree:
    """Writes an AIHub tree under `root`: `add` puts an image and its label JSON side by side."""

    def __init__(self, root):
        self.root = root
        self.image = np.random.default_rng(0).integers(0, 256, (AIHUB_H, AIHUB_W), dtype=np.uint8)

    def image_at(self, folder, name, size=(AIHUB_W, AIHUB_H)):
        path = self.root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), cv2.resize(self.image, size))
        return path

    def label_at(self, folder, stem, document=None, text=None, data=None):
        path = self.root / folder / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            data = (text if text is not None else json.dumps(document, ensure_ascii=False)).encode("utf-8")
        path.write_bytes(data)
        return path

    def add(self, subject_folder, stem, document=None, env="통제환경", split="Training", **kwargs):
        self.image_at(f"{split}/[원천]bbox({env})/{subject_folder}", f"{stem}.jpg")
        return self.label_at(
            f"{split}/[라벨]bbox({env})/{subject_folder}",
            stem,
            document if document is not None else aihub_label(f"{stem}.jpg", **kwargs),
        )


def controlled_stem(subject, frame, lighting="무광원", behaviour="정상주시"):
    return f"{subject:03d}_G1_01_{lighting}_계기판_{behaviour}_20200917_182234_{frame:05d}"


# ---------------------------------------------------------------------------------------------
# Monitor frames: hand-made per-frame detections [n, 6] (x1, y1, x2, y2, score, class_id)


FPS = 15
FACE = (100.0, 100.0, 256.0, 300.0)  # x1, y1, x2, y2: 200 px tall, 156 wide, centre (178, 200)


def frame(
    eyes_closed=False, mouth_open=False, phone=False, cigarette=False, eyes_seen=True, score=0.9, face_score=0.9
) -> np.ndarray:
    """Detections of one hand-made frame: [n, 6] (x1, y1, x2, y2, score, class_id); every box scores
    `score` but the face, which scores `face_score` (None: no face box)."""
    names = ["mouth_opened" if mouth_open else "mouth_closed"]
    if eyes_seen:
        names += ["eye_closed" if eyes_closed else "eye_opened"] * 2
    boxes = {"phone": (60, 10, 90, 60), "cigar": (40, 40, 55, 45)}  # apart: two objects, not one in two classes
    names += ["phone"] * phone + ["cigar"] * cigarette
    rows = [[*boxes.get(n, (10, 10, 50, 50)), score, CLASS_IDS[n]] for n in names]
    rows += [[10, 10, 50, 50, face_score, CLASS_IDS["face"]]] if face_score is not None else []
    return np.array(rows, np.float32)


def faint_eyes(score: float, closed: bool = False) -> np.ndarray:
    """A face whose two eye boxes score `score` (a detector's faint guesses on sunglasses score low)."""
    eye = CLASS_IDS["eye_closed" if closed else "eye_opened"]
    return np.array(
        [
            [10, 10, 50, 50, 0.9, CLASS_IDS["face"]],
            [20, 25, 28, 29, 0.9, CLASS_IDS["mouth_closed"]],
            [15, 20, 22, 24, score, eye],
            [30, 20, 37, 24, score, eye],
        ],
        np.float32,
    )


def bite(score: float) -> np.ndarray:
    """A face with open eyes whose mouth boxes score `score`: mouth_opened tall as a yawn's (0.4 face
    heights), mouth_closed at half that (a detector's faint guesses on a hand holding a snack score low)."""
    return np.array(
        [
            [10, 10, 50, 50, 0.9, CLASS_IDS["face"]],
            [15, 20, 22, 24, 0.9, CLASS_IDS["eye_opened"]],
            [30, 20, 37, 24, 0.9, CLASS_IDS["eye_opened"]],
            [20, 30, 40, 46, score, CLASS_IDS["mouth_opened"]],
            [20, 35, 40, 40, score / 2, CLASS_IDS["mouth_closed"]],
        ],
        np.float32,
    )


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
            rows.append(
                [ex - 10, ey - 5, ex + 10, ey + 5, 0.9, CLASS_IDS[f"eye_{'closed' if eyes == 'closed' else 'opened'}"]]
            )
    mx, my = at((0.0, 0.26))
    half = mouth_height * height / 2
    kind = "mouth_opened" if mouth_height >= 0.08 else "mouth_closed"
    rows.append([mx - 25, my - half, mx + 25, my + half, 0.9, CLASS_IDS[kind]])
    return np.array(rows, np.float32)


def detection(centre, size, kind: str, score: float = 0.9) -> list[float]:
    """One detection row: a box of size (w, h) pixels around centre (x, y)."""
    (x, y), (w, h) = centre, size
    return [x - w / 2, y - h / 2, x + w / 2, y + h / 2, score, CLASS_IDS[kind]]


def identity(offset) -> tuple[float, float]:  # head angles as features, as the landmark peer passes them
    return float(offset[0]), float(offset[1])


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]


def run_frames(frames: list[np.ndarray], config: MonitorConfig | None = None, fps: float = FPS):
    """Feed frames in order; returns (per-frame states, events)."""
    monitor = DriverStateMonitor(config or MonitorConfig(), fps)
    states = [monitor.update(i, detections) for i, detections in enumerate(frames)]
    return states, monitor.finish()
