"""Image and box transforms for detection training: mosaic, random affine, brightness, flip
(the letterbox geometry they share with inference is in drowsy.data.geometry).

Pure numpy/cv2 functions. Images are uint8 [H, W] (grayscale) or [H, W, C]; boxes are
float32 [n, 4], xyxy, pixels of the image they come with; classes are [n] integer class ids.
All randomness comes from the `np.random.Generator` passed in, so a caller that seeds it per item
gets the same augmentation in any worker.

The augmentation recipe and its numbers (fill 114, mosaic centre range, box candidate rule)
follow YOLOv5 (https://github.com/ultralytics/yolov5, `utils/augmentations.py`), which the
winning solution trained with.
"""

import cv2
import numpy as np

from drowsy.data.geometry import FILL


def _paste(canvas: np.ndarray, image: np.ndarray, left: int, top: int) -> None:
    """Copy `image` onto `canvas` with its top-left corner at (left, top), cutting what falls off."""
    canvas_h, canvas_w = canvas.shape[:2]
    h, w = image.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, canvas_w), min(top + h, canvas_h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = image[y0 - top : y1 - top, x0 - left : x1 - left]


def mosaic4(
    images: list[np.ndarray],
    boxes_list: list[np.ndarray],
    classes_list: list[np.ndarray],
    size: int,
    rng: np.random.Generator,
    fill: int = FILL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join four images around a random centre on a [2*size, 2*size] canvas.

    images: four uint8 [h, w(, C)] images with long side <= size (as `resize_long_side` makes them).
    boxes_list: four [n_k, 4] float32, xyxy, pixels of their image; classes_list: four [n_k].
    Image k goes to quadrant k (top-left, top-right, bottom-left, bottom-right) with its inner
    corner on the centre; what falls off the canvas is cut, boxes are clipped to the canvas, and
    boxes left without area are dropped.
    Returns (uint8 [2*size, 2*size(, C)], boxes [m, 4] float32 xyxy canvas pixels, classes [m]).
    """
    if len(images) != 4 or len(boxes_list) != 4 or len(classes_list) != 4:
        raise ValueError("mosaic4 needs exactly four images, box arrays and class arrays")
    canvas_size = 2 * size
    canvas = np.full((canvas_size, canvas_size) + images[0].shape[2:], fill, np.uint8)
    # The centre stays in the middle half so that every quadrant keeps a useful part of its image.
    xc, yc = (int(v) for v in rng.integers(size // 2, size * 3 // 2, size=2, endpoint=True))
    placed_boxes = []
    for quadrant, (image, boxes) in enumerate(zip(images, boxes_list)):
        h, w = image.shape[:2]
        left = xc - w if quadrant in (0, 2) else xc
        top = yc - h if quadrant in (0, 1) else yc
        _paste(canvas, image, left, top)
        placed_boxes.append(boxes + np.array([left, top, left, top], np.float32))
    boxes = np.concatenate(placed_boxes).clip(0, canvas_size)
    classes = np.concatenate(classes_list)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return canvas, boxes[keep], classes[keep]


def _random_warp_matrix(
    rng: np.random.Generator,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    degrees: float,
    translate: float,
    scale: float,
    shear: float,
    perspective: float,
) -> tuple[np.ndarray, float]:
    """A random 3x3 warp: input centre to the origin, perspective, rotate + scale, shear, then move
    to a random point near the output centre. Returns (matrix float64 [3, 3], scale factor)."""
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    centre = np.eye(3)
    centre[:2, 2] = -in_w / 2, -in_h / 2
    tilt = np.eye(3)
    tilt[2, :2] = rng.uniform(-perspective, perspective, size=2)
    gain = rng.uniform(1 - scale, 1 + scale)
    rotation = np.eye(3)
    rotation[:2] = cv2.getRotationMatrix2D((0, 0), rng.uniform(-degrees, degrees), gain)
    skew = np.eye(3)
    skew[0, 1], skew[1, 0] = np.tan(np.radians(rng.uniform(-shear, shear, size=2)))
    shift = np.eye(3)
    shift[:2, 2] = rng.uniform(0.5 - translate, 0.5 + translate, size=2) * (out_w, out_h)
    return shift @ skew @ rotation @ tilt @ centre, gain


def _warp_boxes(boxes: np.ndarray, matrix: np.ndarray, projective: bool) -> np.ndarray:
    """Boxes [n, 4] xyxy through a 3x3 warp: the axis-aligned hull of their 4 warped corners."""
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2).astype(np.float64)
    points = np.concatenate([corners, np.ones((len(corners), 1))], axis=1) @ matrix.T
    xy = points[:, :2] / points[:, 2:3] if projective else points[:, :2]
    xy = xy.reshape(-1, 4, 2)
    return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).astype(np.float32)


def box_candidates(
    before: np.ndarray,
    after: np.ndarray,
    min_side: float = 2.0,
    min_area_ratio: float = 0.1,
    max_aspect: float = 20.0,
) -> np.ndarray:
    """Which warped boxes are still worth training on (YOLOv5's rule).

    before: [n, 4] boxes before the warp, already multiplied by its scale gain; after: [n, 4] warped
    and clipped; both xyxy pixels. Keeps boxes with both sides > min_side px, more than
    min_area_ratio of their area left, and a side ratio below max_aspect. Returns bool [n].
    """
    eps = 1e-16
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w1 / (h1 + eps), h1 / (w1 + eps))
    area_ratio = w1 * h1 / (w0 * h0 + eps)
    return (w1 > min_side) & (h1 > min_side) & (area_ratio > min_area_ratio) & (aspect < max_aspect)


def random_affine(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    shear: float = 0.0,
    perspective: float = 0.0,
    border: int = 0,
    fill: int = FILL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random warp of image and boxes (YOLOv5's `random_perspective` parameters).

    Rotation +/- degrees, scale gain in [1 - scale, 1 + scale], shear +/- degrees, perspective
    +/- fraction, and the image centre moved to (0.5 +/- translate) of the output size.
    border: pixels cut from each side of the output, so a [2S, 2S] mosaic canvas with border S // 2
    gives an [S, S] image. Boxes follow their 4 corners, are clipped to the output and filtered
    with `box_candidates`.
    image: uint8 [H, W(, C)]; boxes: [n, 4] float32 xyxy pixels; classes: [n].
    Returns (uint8 [H - 2*border, W - 2*border(, C)], boxes [m, 4] float32, classes [m]).
    """
    in_h, in_w = image.shape[:2]
    out_h, out_w = in_h - 2 * border, in_w - 2 * border
    matrix, gain = _random_warp_matrix(rng, (in_h, in_w), (out_h, out_w), degrees, translate, scale, shear, perspective)
    projective = perspective > 0
    if projective:
        image = cv2.warpPerspective(image, matrix, (out_w, out_h), borderValue=(fill,) * 4)
    elif not np.array_equal(matrix, np.eye(3)):
        image = cv2.warpAffine(image, matrix[:2], (out_w, out_h), borderValue=(fill,) * 4)
    warped = _warp_boxes(boxes, matrix, projective)
    warped[:, 0::2] = warped[:, 0::2].clip(0, out_w)
    warped[:, 1::2] = warped[:, 1::2].clip(0, out_h)
    keep = box_candidates(boxes * gain, warped)
    return image, warped[keep], classes[keep]


def augment_value(image: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply brightness by a random factor in [1 - gain, 1 + gain], saturating at 255.

    This is HSV "value" augmentation for grayscale images (and for gray replicated to 3 channels,
    where scaling every channel scales V and leaves hue and saturation alone). One 256-entry
    lookup table, so the cost does not depend on the factor. Returns a new image (or `image`
    itself when gain is 0).
    """
    if gain == 0:
        return image
    factor = 1 + rng.uniform(-gain, gain)
    table = np.clip(np.arange(256) * factor, 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


def flip_lr(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right. image: uint8 [H, W(, C)]; boxes: [n, 4] float32 xyxy pixels.

    cv2.flip returns a contiguous copy, which torch.from_numpy can take (a ::-1 view it cannot).
    """
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return cv2.flip(image, 1), flipped


# Where a pasted object's centre goes, relative to a face box of the target image: (x, y) as fractions of the
# face's width and height from its top-left corner. Phones at either ear (just outside the face box, clear of the
# eyes) or in front of the chest; cigarettes at a mouth corner (MOUTH: the face's mouth box, when it has one) or
# held beside the chin.
MOUTH = "mouth"
PASTE_SPOTS = {
    "phone": ((-0.12, 0.5), (1.12, 0.5), (0.5, 1.45)),
    "cigar": (MOUTH, MOUTH, (0.1, 1.05), (0.9, 1.05)),
}
PASTE_MARGIN = 0.15  # local background pasted around an object's box, fraction of its longer side (no masks here)


def copy_paste(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    pieces: list[tuple[np.ndarray, np.ndarray, str, float | None]],
    rng: np.random.Generator,
    class_ids: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object-level rebalancing (Ghiasi et al. 2021, "Simple Copy-Paste"; Dwibedi et al. 2017): paste each
    piece (crop uint8 [h, w] with its local background, the object's box [4] in the crop, its class name, its
    height over its own face's height or None) beside a random face of `image` at a plausible spot
    (`PASTE_SPOTS`), scaled to that face as it was to its own (x0.8-1.25), and add its box and class. A piece
    is left out when the image has no face, when its box would leave the image, or when the crop would cover an
    eye or another phone or cigarette (a cigarette may cover the mouth it is put to: that is what it looks
    like). Returns a new image and arrays; the inputs are not changed."""
    faces = boxes[classes == class_ids["face"]]
    if not len(faces) or not pieces:
        return image, boxes, classes
    image = image.copy()
    eyes = np.isin(classes, [class_ids["eye_opened"], class_ids["eye_closed"]])
    mouths = boxes[np.isin(classes, [class_ids["mouth_opened"], class_ids["mouth_closed"]])]
    added_boxes, added_classes = [], []
    for crop, box, name, relative in pieces:
        face = faces[rng.integers(len(faces))]
        face_h = face[3] - face[1]
        spot = PASTE_SPOTS[name][rng.integers(len(PASTE_SPOTS[name]))]
        gain = rng.uniform(0.8, 1.25) * (relative * face_h / (box[3] - box[1]) if relative else 1.0)
        centre = _spot_centre(spot, face, mouths, rng)
        if centre is None or gain <= 0:
            continue
        size = (max(round(crop.shape[1] * gain), 1), max(round(crop.shape[0] * gain), 1))
        scaled = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        gx, gy = size[0] / crop.shape[1], size[1] / crop.shape[0]
        object_centre = ((box[0] + box[2]) / 2 * gx, (box[1] + box[3]) / 2 * gy)
        left, top = round(centre[0] - object_centre[0]), round(centre[1] - object_centre[1])
        placed = np.array([left + box[0] * gx, top + box[1] * gy, left + box[2] * gx, top + box[3] * gy], np.float32)
        covered = np.array([left, top, left + size[0], top + size[1]], np.float32)
        blockers = boxes[eyes | np.isin(classes, [class_ids["phone"], class_ids["cigar"]])]
        if added_boxes:
            blockers = np.concatenate([blockers, np.stack(added_boxes)])
        if placed[0] < 0 or placed[1] < 0 or placed[2] > image.shape[1] or placed[3] > image.shape[0]:
            continue
        if len(blockers) and (_overlap(covered, blockers) > 0).any():
            continue
        _paste(image, scaled, left, top)
        added_boxes.append(placed)
        added_classes.append(class_ids[name])
    if not added_boxes:
        return image, boxes, classes
    return (
        image,
        np.concatenate([boxes, np.stack(added_boxes)]).astype(np.float32),
        np.concatenate([classes, np.asarray(added_classes, dtype=classes.dtype)]),
    )


def _spot_centre(spot, face: np.ndarray, mouths: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    """Pixels of a paste spot on `face`: a fraction of the face box, or a corner of the face's mouth (None when the
    face has no mouth box)."""
    if spot != MOUTH:
        return face[0] + spot[0] * (face[2] - face[0]), face[1] + spot[1] * (face[3] - face[1])
    centres = (mouths[:, :2] + mouths[:, 2:]) / 2
    inside = (
        (centres[:, 0] > face[0]) & (centres[:, 0] < face[2]) & (centres[:, 1] > face[1]) & (centres[:, 1] < face[3])
    )
    if not inside.any():
        return None
    mouth = mouths[inside][0]
    corner = mouth[0] if rng.random() < 0.5 else mouth[2]
    return float(corner), float((mouth[1] + mouth[3]) / 2)


def _overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection area of `box` [4] with each of `others` [n, 4] (xyxy), pixels."""
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def crop_with_background(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The object's box [4] (xyxy pixels of `image`) with `PASTE_MARGIN` of local background around it, cut at the
    image's edges: (crop uint8, the box in the crop's pixels)."""
    margin = PASTE_MARGIN * max(box[2] - box[0], box[3] - box[1]) + 2
    x0, y0 = max(int(box[0] - margin), 0), max(int(box[1] - margin), 0)
    x1, y1 = min(int(np.ceil(box[2] + margin)), image.shape[1]), min(int(np.ceil(box[3] + margin)), image.shape[0])
    return image[y0:y1, x0:x1].copy(), (box - np.array([x0, y0, x0, y0], np.float32)).astype(np.float32)
