"""Copy-paste of rare objects (drowsy.data.augment.copy_paste, the `copy_paste` hyperparameters): where the
pieces go, that their boxes stay exact through mosaic and the affine warp, that it is seeded like every other
draw, and that it changes nothing while off."""

import cv2
import numpy as np
import pytest
import torch

from drowsy import CLASS_IDS
from drowsy.data.augment import MOUTH, PASTE_SPOTS, copy_paste, crop_with_background
from drowsy.data.dataset import DetectionDataset, EpochPartsSampler, build_loader
from drowsy.errors import DrowsyError

SIZE = 128
HYP = {"mosaic": 1.0, "translate": 0.1, "scale": 0.3, "hsv_v": 0.4, "fliplr": 0.5}
PASTED = 250  # phones and cigarettes are the only pixels this bright; faces 110, eyes 60, mouths 80, background 30
SHADES = {"face": 110, "eye_opened": 60, "mouth_closed": 80, "phone": PASTED, "cigar": PASTED}


def draw(image: np.ndarray, objects: list[tuple[str, list[int]]]) -> list[dict]:
    for name, (x1, y1, x2, y2) in objects:
        image[y1:y2, x1:x2] = SHADES[name]
    return [{"class": name, "position": [float(v) for v in box]} for name, box in objects]


def face_at(x: int, y: int) -> list[tuple[str, list[int]]]:
    """A 40x48 face with two eyes and a mouth, top-left corner at (x, y)."""
    return [
        ("face", [x, y, x + 40, y + 48]),
        ("eye_opened", [x + 8, y + 14, x + 16, y + 19]),
        ("eye_opened", [x + 24, y + 14, x + 32, y + 19]),
        ("mouth_closed", [x + 13, y + 34, x + 27, y + 39]),
    ]


@pytest.fixture
def records(tmp_path):
    """Twelve 160x120 frames, a face in each; a phone held in every fourth, a cigarette in every sixth."""
    rng = np.random.default_rng(1)
    records = []
    for i in range(12):
        image = np.full((120, 160), 30, np.uint8)
        x, y = int(rng.integers(30, 90)), int(rng.integers(5, 50))
        objects = face_at(x, y)
        if i % 4 == 0:
            objects.append(("phone", [x + 42, y + 10, x + 52, y + 30]))
        if i % 6 == 1:
            objects.append(("cigar", [x + 27, y + 35, x + 39, y + 38]))
        records.append({"file_name": f"{i}.png", "width": 160, "height": 120, "objects": draw(image, objects)})
        assert cv2.imwrite(str(tmp_path / f"{i}.png"), image)
    return records


def target_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((160, 160), 30, np.uint8)
    objects = draw(image, face_at(60, 40))
    boxes = np.array([o["position"] for o in objects], np.float32)
    return image, boxes, np.array([CLASS_IDS[o["class"]] for o in objects])


def piece(name: str, size: tuple[int, int]) -> tuple:
    source = np.full((60, 60), 30, np.uint8)
    box = np.array([20, 20, 20 + size[0], 20 + size[1]], np.float32)
    source[20 : 20 + size[1], 20 : 20 + size[0]] = PASTED
    crop, in_crop = crop_with_background(source, box)
    return crop, in_crop, name, None


@pytest.mark.parametrize("name, size", [("phone", (10, 20)), ("cigar", (12, 3))])
def test_a_pasted_object_lands_at_a_spot_of_its_class_with_its_exact_box_and_never_on_an_eye(name, size):
    placed = 0
    for seed in range(60):
        image, boxes, classes = target_image()
        rng = np.random.default_rng(seed)
        out, out_boxes, out_classes = copy_paste(image, boxes, classes, [piece(name, size)], rng, CLASS_IDS)
        np.testing.assert_array_equal(out_boxes[: len(boxes)], boxes)  # the others kept
        if len(out_boxes) == len(boxes):
            continue
        placed += 1
        assert out_classes[-1] == CLASS_IDS[name]
        x1, y1, x2, y2 = out_boxes[-1]
        # the box is the object's pixels, to the pixel its edges blend into the background when scaled: the
        # object at its centre, and every pixel brighter than a face within a pixel of it, on all four sides
        assert out[int((y1 + y2) / 2), int((x1 + x2) / 2)] == PASTED
        bright = np.argwhere(out > SHADES["face"] + 20)
        assert abs(bright[:, 0].min() - y1) <= 1 and abs(bright[:, 1].min() - x1) <= 1
        assert abs(bright[:, 0].max() + 1 - y2) <= 1 and abs(bright[:, 1].max() + 1 - x2) <= 1
        for eye in boxes[classes == CLASS_IDS["eye_opened"]].astype(int):
            np.testing.assert_array_equal(out[eye[1] : eye[3], eye[0] : eye[2]], 60)  # eyes untouched
        centre = ((x1 + x2) / 2, (y1 + y2) / 2)
        spots = [(60 + 40 * spot[0], 40 + 48 * spot[1]) for spot in PASTE_SPOTS[name] if spot != MOUTH]
        if name == "cigar":
            spots += [(73, 36.5 + 40), (87, 36.5 + 40)]  # the mouth's corners, at its middle height
        # a spot, give or take the rounding of a corner and the scaled margin
        assert min(abs(centre[0] - sx) + abs(centre[1] - sy) for sx, sy in spots) <= 2, (seed, centre)
    assert placed > 20


def test_a_piece_is_scaled_to_the_target_face_as_it_was_to_its_own():
    image, boxes, classes = target_image()  # a face 48 px tall
    crop, in_crop, name, _ = piece("phone", (10, 20))
    _, out_boxes, _ = copy_paste(
        image, boxes, classes, [(crop, in_crop, name, 0.5)], np.random.default_rng(3), CLASS_IDS
    )
    height = out_boxes[-1][3] - out_boxes[-1][1]
    assert 0.8 * 24 - 1 <= height <= 1.25 * 24 + 1  # half the face, jittered x0.8-1.25


def test_no_face_no_paste():
    image = np.full((100, 100), 30, np.uint8)
    boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    out, out_boxes, _ = copy_paste(
        image, boxes, classes, [piece("phone", (10, 20))], np.random.default_rng(0), CLASS_IDS
    )
    assert out is image and len(out_boxes) == 0


def rare_targets(dataset: DetectionDataset, epochs: int = 3) -> list[tuple[torch.Tensor, list]]:
    out = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            image, targets, _ = dataset[index]
            rare = [t for t in targets.tolist() if int(t[0]) in (CLASS_IDS["phone"], CLASS_IDS["cigar"])]
            out.append((image, rare))
    return out


def test_pasted_boxes_follow_mosaic_and_the_affine_warp(tmp_path, records):
    pasting = DetectionDataset(tmp_path, records, SIZE, HYP | {"copy_paste": 1.0}, augment=True)
    plain = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    pasted = rare_targets(pasting)
    for image, rare in pasted:
        for _, cx, cy, _, _ in rare:
            assert image[0, int(cy), int(cx)] > 140  # the centre is on the object (a brightness gain of 0.6 at most)
    counts = [sum(len(rare) for _, rare in items) for items in (pasted, rare_targets(plain))]
    assert counts[0] > 1.3 * counts[1]


def test_copy_paste_is_seeded_and_the_same_in_any_worker(tmp_path, records):
    hyp = HYP | {"copy_paste": 0.8}
    dataset = DetectionDataset(tmp_path, records, SIZE, hyp, augment=True, seed=2)
    twin = DetectionDataset(tmp_path, records, SIZE, hyp, augment=True, seed=2)
    for index in range(len(dataset)):
        torch.testing.assert_close(dataset[index][1], twin[index][1], rtol=0, atol=0)
        torch.testing.assert_close(dataset[index][0], twin[index][0], rtol=0, atol=0)
    in_main = build_loader(dataset, 4, workers=0, sampler=EpochPartsSampler(len(dataset), 1))
    in_workers = build_loader(dataset, 4, workers=2, sampler=EpochPartsSampler(len(dataset), 1))
    for loader in (in_main, in_workers):
        loader.dataset.set_epoch(1)
        loader.sampler.set_epoch(1)
    for (images_a, targets_a, _), (images_b, targets_b, _) in zip(list(in_main), list(in_workers), strict=True):
        torch.testing.assert_close(images_a, images_b, rtol=0, atol=0)
        torch.testing.assert_close(targets_a, targets_b, rtol=0, atol=0)


def test_copy_paste_off_changes_no_draw(tmp_path, records):
    # runs trained before copy-paste existed stay the same to the bit: while off it draws no random number
    without = DetectionDataset(tmp_path, records, SIZE, HYP, augment=True)
    off = DetectionDataset(
        tmp_path, records, SIZE, HYP | {"copy_paste": 0.0, "copy_paste_classes": "phone"}, augment=True
    )
    for index in range(len(without)):
        for a, b in zip(without[index][:2], off[index][:2]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_class_that_cannot_be_pasted_is_one_line(tmp_path, records):
    with pytest.raises(
        DrowsyError, match=r"^hyp: field 'copy_paste_classes': 'face' cannot be pasted \(one of phone, cigar\)$"
    ):
        DetectionDataset(
            tmp_path, records, SIZE, HYP | {"copy_paste": 0.5, "copy_paste_classes": "phone,face"}, augment=True
        )
