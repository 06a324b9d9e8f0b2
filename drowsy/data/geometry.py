"""Letterbox geometry: how an original image becomes the network's input, and back.

One home for it, so training, validation, prediction, the ablation and the monitor all map boxes
the same way. A `Letterbox` says `network = original * ratio + pad`, then mirrored left-right when
`flip_width` is set; `drowsy.infer.postprocess` inverts it.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

FILL = 114  # grey of letterbox padding and of canvas areas no image covers (YOLOv5's value)


@dataclass(frozen=True)
class Letterbox:
    """How an original image maps into the network image: `net = original * ratio + pad`; when
    `flip_width` > 0 the network image was then mirrored left-right (x -> flip_width - x)."""

    ratio: float
    pad: tuple[int, int]  # (left, top), pixels of the network image
    flip_width: int = 0  # width of the mirrored network image, pixels; 0 = not mirrored


def fit_img_size(img_size: int, stride: int) -> int:
    """The smallest multiple of `stride` (pixels) that is >= img_size: the network halves the
    resolution log2(stride) times, so its input must divide evenly."""
    return max(math.ceil(img_size / stride), 1) * stride


def _scaled_size(hw: tuple[int, int], size: int) -> tuple[float, tuple[int, int]]:
    """Ratio that brings the long side of an (h, w) image to `size`, and the resulting (w, h)."""
    h, w = hw
    ratio = size / max(h, w)
    return ratio, (max(1, round(w * ratio)), max(1, round(h * ratio)))


def letterbox_geometry(original_hw: tuple[int, int], size: int) -> Letterbox:
    """The letterbox that `letterbox(image, size)` applies to an image of `original_hw` = (h, w)."""
    ratio, (w, h) = _scaled_size(original_hw, size)
    return Letterbox(ratio, ((size - w) // 2, (size - h) // 2))


def resized_hw(hw: tuple[int, int], size: int) -> tuple[int, int]:
    """(h, w) of an (h, w) image after `resize_long_side(image, size)`, without the image."""
    _, (w, h) = _scaled_size(hw, size)
    return h, w


def resize_long_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the long side is `size`, keeping the aspect ratio.

    INTER_AREA when shrinking (averages source pixels, no aliasing), INTER_LINEAR when growing
    (INTER_AREA gains nothing there and is slower). Returns `image` itself when no resize is needed.
    """
    ratio, wh = _scaled_size(image.shape[:2], size)
    if wh == (image.shape[1], image.shape[0]):
        return image
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, wh, interpolation=interpolation)


def pad_to(image: np.ndarray, hw: tuple[int, int], pad: tuple[int, int], fill: int = FILL) -> np.ndarray:
    """Place `image` (no larger than hw) at `pad` = (left, top) on an [h, w] canvas of `fill`."""
    h, w = image.shape[:2]
    left, top = pad
    if (h, w) == hw:
        return image
    return cv2.copyMakeBorder(
        image, top, hw[0] - h - top, left, hw[1] - w - left, cv2.BORDER_CONSTANT, value=(fill,) * 4
    )


def letterbox(image: np.ndarray, size: int, fill: int = FILL) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad (centred) to a square.

    image: uint8 [H, W] or [H, W, C]. Returns (uint8 [size, size(, C)], Letterbox).
    """
    geometry = letterbox_geometry(image.shape[:2], size)
    return pad_to(resize_long_side(image, size), (size, size), geometry.pad, fill), geometry


def rect_letterbox(images: list[np.ndarray], size: int, stride: int) -> tuple[np.ndarray, Letterbox]:
    """YOLOv5's "rect" letterbox of equally sized images: the long side scaled to `size` (a multiple of
    `stride`), the short side padded (centred) only up to the next multiple of `stride` instead of to
    a square: a 16:9 frame at 320 becomes 320x192, 40 % less computation at the same scale.

    images: uint8 [H, W], all of one shape. Returns (uint8 [B, h, w], their common Letterbox).
    """
    height, width = images[0].shape[:2]
    resized = [resize_long_side(image, size) for image in images]
    inner_h, inner_w = resized[0].shape[:2]
    net_hw = (fit_img_size(inner_h, stride), fit_img_size(inner_w, stride))
    pad = ((net_hw[1] - inner_w) // 2, (net_hw[0] - inner_h) // 2)
    padded = np.stack([pad_to(image, net_hw, pad) for image in resized])
    return padded, Letterbox(size / max(height, width), pad)


def letterbox_boxes(boxes: np.ndarray, geometry: Letterbox) -> np.ndarray:
    """Original-image boxes -> network-image boxes (not mirrored). boxes: [n, 4] float32, xyxy, pixels."""
    left, top = geometry.pad
    return (boxes * geometry.ratio + np.array([left, top, left, top], np.float32)).astype(np.float32)
