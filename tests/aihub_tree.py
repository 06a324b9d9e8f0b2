"""Builds AIHub trees as downloaded (label JSON under `[라벨]` folders, images under `[원천]`), for the
tests of the AIHub reader and of `prepare`."""

import json

import cv2
import numpy as np

W, H = 80, 128  # portrait, like the controlled images (800x1280), scaled down
CONTROLLED = "Training/[라벨]bbox(통제환경)"
CONTROLLED_IMAGES = "Training/[원천]bbox(통제환경)"


def box(x1, y1, x2, y2, opened=None, visible=True):
    entry = {"isVisible": visible, "Position": [x1, y1, x2, y2]}
    if opened is not None:
        entry["Opened"] = opened
    return entry


def hidden():
    return {"isVisible": False, "Position": [0, 0, 0, 0]}


def label(name, boxes=None, size=(W, H), user=None, accessory=None):
    """An AIHub label document for image `name`."""
    boxes = boxes if boxes is not None else {
        "Face": box(20, 30, 60, 90), "Leye": box(28, 45, 38, 52, opened=True),
        "Reye": box(42, 45, 52, 52, opened=False), "Mouth": box(32, 70, 48, 80, opened=True),
        "Cigar": hidden(), "Phone": hidden(),
    }
    document = {"FileInfo": {"FileName": name, "Width": size[0], "Height": size[1], "Channel": 1},
                "ObjectInfo": {"KeyPoints": {}, "BoundingBox": boxes}}
    if user is not None:
        document["UserInfo"] = user
    if accessory is not None:
        document["Accessory"] = accessory
    return document


class Tree:
    """Writes an AIHub tree under `root`: `add` puts an image and its label JSON side by side."""

    def __init__(self, root):
        self.root = root
        self.image = np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)

    def image_at(self, folder, name, size=(W, H)):
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
        return self.label_at(f"{split}/[라벨]bbox({env})/{subject_folder}", stem,
                             document if document is not None else label(f"{stem}.jpg", **kwargs))


def controlled_stem(subject, frame, lighting="무광원", behaviour="정상주시"):
    return f"{subject:03d}_G1_01_{lighting}_계기판_{behaviour}_20200917_182234_{frame:05d}"
