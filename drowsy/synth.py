"""The embedded synthetic dataset: grey (IR-like) in-cabin driver scenes with exact boxes.

The competition data is not public, so this module writes the same on-disk layout
(`OUT/images/*.jpg` + `OUT/labels.json`) from drawn scenes: one driver with eyes open or closed,
mouth open, closed or hidden (face mask, hand), sometimes a phone or a cigarette, in front of
cabin clutter (seat, window, pillar, belt) under a lighting gradient, blur and sensor noise.

Per-image class counts follow the raw train table of the original solution (`CLASS_RATES`), so
the imbalance the diet set fights is really there. Every part is a polygon in the head's frame,
so its box is the exact extent of the drawn geometry after rotation, clipped to the image.

Coordinates: pixel centres sit at integer xy while drawing; boxes are xyxy in pixel *edges*
(pixel i spans [i, i + 1]), so a box covering the whole image is [0, 0, W, H].
"""

import contextlib
import dataclasses
import functools
import itertools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from drowsy.progress import progress as progress_bar

# Mean objects per image in the raw train split (solution.md: class counts / 253,224 images).
CLASS_RATES = {
    "eye_opened": 419_135 / 253_224,
    "eye_closed": 74_551 / 253_224,
    "mouth_opened": 35_233 / 253_224,
    "mouth_closed": 127_282 / 253_224,
    "face": 253_167 / 253_224,
    "phone": 11_792 / 253_224,
    "cigar": 10_499 / 253_224,
}
HIDDEN_EYE_RATE = 2.0 - CLASS_RATES["eye_opened"] - CLASS_RATES["eye_closed"]  # one eye behind a hand
EYES_CLOSED_RATE = CLASS_RATES["eye_closed"] / (2.0 - HIDDEN_EYE_RATE)
MOUTH_VISIBLE_RATE = CLASS_RATES["mouth_opened"] + CLASS_RATES["mouth_closed"]
MOUTH_OPEN_RATE = CLASS_RATES["mouth_opened"] / MOUTH_VISIBLE_RATE  # among visible mouths

JPEG_QUALITY = 90
_CHUNK = 64  # images per task handed to a worker process
_SUBPIXEL_BITS = 4  # cv2 fixed-point drawing: polygons keep 1/16 px precision
_SUPERSAMPLE = 4  # labelled parts are filled at 4x resolution per axis, then averaged
_GAUSS_QUANTILES = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


@dataclasses.dataclass(frozen=True)
class SceneState:
    """Everything that decides one scene; `dataclasses.replace` animates it (see drowsy.clips).

    Lengths in pixels unless said otherwise; "face units" are multiples of the face height;
    angles in degrees (positive = clockwise on screen); grey levels 0-255. Sides: -1 = image
    left, +1 = image right. Identity (proportions, tones) and the cabin layout are drawn from
    their own seeds so they stay fixed while the rest moves.
    """

    face_x: float  # face ellipse centre
    face_y: float
    face_height: float
    roll: float  # in-plane head rotation
    gaze: tuple[float, float]  # iris offset in [-1, 1] of its travel, (x, y)
    eyes_closed: bool
    hidden_eye: int  # 0: none; -1/+1: that eye is covered by a hand (not labelled)
    mouth_open: bool
    mouth_gape: float  # open-mouth height / mouth width
    mouth_cover: str  # "none" | "mask" (face mask) | "hand"; a covered mouth is not labelled
    hand_side: int  # side the hand over the mouth comes from
    phone: str  # "none" | "ear" | "hand"
    phone_side: int
    phone_place: tuple[float, float, float]  # (x, y) in front of the chest from the face centre in
    # face units (for "hand"), tilt in degrees (both; at the ear its size, turned outwards)
    cigarette: str  # "none" | "mouth" | "hand"
    cigarette_side: int
    cigarette_angle: float  # below horizontal ("mouth") or off vertical ("hand"), pointing outwards
    seat: tuple[float, float]  # headrest centre, pixels (the seat back stands below it)
    brightness: float  # global gain
    light_angle: float  # direction in which the lighting gradient brightens
    light_strength: float  # gradient amplitude, fraction of the gain
    blur: float  # gaussian sigma, pixels (below 0.3: none)
    noise: float  # sensor noise sigma, grey levels
    identity_seed: int
    clutter_seed: int


@dataclasses.dataclass(frozen=True)
class _Identity:
    """A driver's look, drawn from `SceneState.identity_seed`; lengths in face units."""

    aspect: float  # face width / height
    skin: float
    hair: float
    hair_long: bool
    shirt: float
    brow: float
    eye_spacing: float  # between eye centres
    eye_width: float
    eye_height: float  # open eye
    eye_level: float  # eye centre y from face centre
    sclera: float
    iris: float
    mouth_level: float
    mouth_width: float
    lips: float
    teeth: float
    mask: float
    phone_body: float
    phone_screen: float
    belt: float
    belt_side: int  # shoulder the seat belt comes over


def _identity(seed: int) -> _Identity:
    rng = np.random.default_rng(seed)
    aspect = rng.uniform(0.72, 0.82)
    skin = rng.uniform(140, 210)
    eye_width = rng.uniform(0.21, 0.25) * aspect  # a little large: eyes stay a few pixels tall at 320 px
    return _Identity(
        aspect=aspect, skin=skin, hair=rng.uniform(15, 70), hair_long=bool(rng.random() < 0.3),
        shirt=rng.uniform(30, 200), brow=rng.uniform(20, 70),
        eye_spacing=rng.uniform(0.38, 0.44) * aspect, eye_width=eye_width,
        eye_height=eye_width * rng.uniform(0.44, 0.52), eye_level=rng.uniform(-0.1, -0.06),
        sclera=min(skin + rng.uniform(25, 45), 250.0), iris=rng.uniform(35, 90),
        mouth_level=rng.uniform(0.24, 0.28), mouth_width=rng.uniform(0.33, 0.4) * aspect,
        lips=skin - rng.uniform(30, 50), teeth=rng.uniform(175, 230), mask=rng.uniform(170, 240),
        phone_body=rng.uniform(15, 45), phone_screen=rng.uniform(120, 230), belt=rng.uniform(50, 120),
        belt_side=int(rng.choice([-1, 1])),
    )


def sample_scene(rng: np.random.Generator, width: int, height: int) -> SceneState:
    """A random scene for a `width` x `height` image, with the class rates of `CLASS_RATES`."""
    aspect_guess = 0.8  # only to keep the face inside the frame before the identity is known
    face_height = min(rng.uniform(0.35, 0.7) * height, 0.6 * width / aspect_guess)
    half_w = 0.7 * aspect_guess * face_height
    face_x = rng.uniform(half_w, width - half_w)
    face_y = rng.uniform(0.5 * face_height + 0.04 * height, 0.97 * height - 0.5 * face_height)
    hidden_eye = int(rng.choice([-1, 1])) if rng.random() < HIDDEN_EYE_RATE else 0
    mouth_visible = rng.random() < MOUTH_VISIBLE_RATE
    mouth_open = mouth_visible and rng.random() < MOUTH_OPEN_RATE
    # one hand near the face is enough: a hidden eye pairs with a face mask, not a second hand
    mouth_cover = "none" if mouth_visible else ("mask" if hidden_eye or rng.random() < 0.7 else "hand")
    phone = rng.choice(["ear", "hand"], p=[0.6, 0.4]) if rng.random() < CLASS_RATES["phone"] else "none"
    room = (height - face_y) / face_height - 0.1  # below the face, in face units
    if phone == "hand" and room < 0.8:  # no room in front of the chest: at most a third cut off
        phone = "ear"
    phone_side = int(rng.choice([-1, 1]))
    cigarette = "none"
    if rng.random() < CLASS_RATES["cigar"]:
        cigarette = "mouth" if mouth_visible and not mouth_open and rng.random() < 0.7 else "hand"
    cigarette_side = -phone_side  # keeps a phone and a cigarette hand apart
    reach = min(0.6, (face_x / face_height) - 0.2, (width - face_x) / face_height - 0.2)
    phone_xy = (rng.uniform(-reach, reach), rng.uniform(0.8, max(min(1.05, room), 0.8)))
    return SceneState(
        face_x=face_x, face_y=face_y, face_height=face_height,
        roll=float(np.clip(rng.normal(0, 5), -14, 14)),
        gaze=(rng.uniform(-1, 1), rng.uniform(-1, 1)),
        eyes_closed=bool(rng.random() < EYES_CLOSED_RATE), hidden_eye=hidden_eye,
        mouth_open=bool(mouth_open), mouth_gape=rng.uniform(0.5, 0.85), mouth_cover=mouth_cover,
        hand_side=int(rng.choice([-1, 1])),
        phone=str(phone), phone_side=phone_side,
        phone_place=(*phone_xy, rng.uniform(-25, 25)),
        cigarette=cigarette, cigarette_side=cigarette_side,
        cigarette_angle=rng.uniform(10, 40) if cigarette == "mouth" else rng.uniform(10, 45),
        seat=(face_x + rng.uniform(-0.1, 0.1) * face_height, face_y - rng.uniform(0.1, 0.25) * face_height),
        brightness=rng.uniform(0.75, 1.2), light_angle=rng.uniform(0, 360),
        light_strength=rng.uniform(0, 0.35), blur=rng.uniform(0, 1.2) if rng.random() < 0.6 else 0.0,
        noise=rng.uniform(1, 7), identity_seed=int(rng.integers(2**31)), clutter_seed=int(rng.integers(2**31)),
    )


Box = tuple[float, float, float, float]  # xyxy pixel edges


class _Canvas:
    """A uint8 grey image [H, W] that blends anti-aliased polygons into itself.

    Labelled parts and shaded fills blend through an exact coverage mask; unlabelled flat fills
    (clutter, hands) go straight through cv2's cheaper anti-aliased fill. With `trace`, for
    checking boxes in tests: `owner` [H, W] int16 says which labelled part covered each pixel
    last by more than half (-1: something else or nothing), and `coverage[part]` [H, W] float32
    is the part's own coverage (0-1) before anything was drawn over it.
    """

    def __init__(self, width: int, height: int, trace: bool = False):
        self.pixels = np.zeros((height, width), np.uint8)
        self.width, self.height = width, height
        self.owner = np.full((height, width), -1, np.int16) if trace else None
        self.coverage: dict[int, np.ndarray] = {}

    @staticmethod
    def _coverage(polygons: list[np.ndarray], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Area each pixel of the window [y0:y1, x0:x1] has inside the polygons: [h, w] float32 0-1.

        Written by hand because cv2's anti-aliased fill snaps y to whole pixels and grows shapes
        by ~0.5 px; filling at 4x and averaging puts edges within a subpixel of the geometry.
        """
        scale = _SUPERSAMPLE
        mask = np.zeros(((y1 - y0) * scale, (x1 - x0) * scale), np.uint8)
        for polygon in polygons:  # one call per polygon: cv2 would XOR overlapping ones
            fine = (polygon - (x0, y0) + 0.5) * scale - 0.5
            if fine.min() < -1 or fine[:, 0].max() > mask.shape[1] or fine[:, 1].max() > mask.shape[0]:
                # cv2 misplaces the edges of polygons reaching far outside the mask: cut them first
                fine = _clip_polygon(fine, -1, -1, mask.shape[1], mask.shape[0])
                if not len(fine):
                    continue
            cv2.fillPoly(mask, [np.rint(fine * (1 << _SUBPIXEL_BITS)).astype(np.int32)], 255, cv2.LINE_8,
                         _SUBPIXEL_BITS)
        coverage = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        return coverage.astype(np.float32) * (1 / 255)

    def _extent(self, polygons: list[np.ndarray]) -> Box | None:
        """Box of the polygons' parts inside the image, in pixel edges (+0.5 from pixel centres)."""
        points = polygons[0] if len(polygons) == 1 else np.concatenate(polygons)
        (left, top), (right, bottom) = points.min(0).tolist(), points.max(0).tolist()
        if left < -0.5 or top < -0.5 or right > self.width - 0.5 or bottom > self.height - 0.5:
            # a tilted shape across the border: the box of what is left, not the clipped box
            clipped = [_clip_polygon(p, -0.5, -0.5, self.width - 0.5, self.height - 0.5) for p in polygons]
            clipped = [p for p in clipped if len(p)]
            if not clipped:
                return None
            points = np.concatenate(clipped)
            (left, top), (right, bottom) = points.min(0).tolist(), points.max(0).tolist()
        if right <= left or bottom <= top:
            return None
        # pixel centres -> pixel edges (+0.5); the fill also covers the subpixels its outline
        # touches, so a filled shape comes out half a subpixel larger on every side
        grow = 0.5 / _SUPERSAMPLE
        return (max(left + 0.5 - grow, 0.0), max(top + 0.5 - grow, 0.0),
                min(right + 0.5 + grow, self.width), min(bottom + 0.5 + grow, self.height))

    def paint(self, polygons: list[np.ndarray], fill, owner: int = -1) -> Box | None:
        """Blend `fill` over `polygons` (each [n, 2] float, image xy).

        fill: a grey level, or `fill(x [1, w], y [h, 1]) -> [h, w]` float for shading.
        owner: an `OWNERS` id for a labelled part, whose box (the extent of the polygons inside
        the image, or None when none of them is) is returned; -1 for anything else (returns None).
        """
        precise = callable(fill) or owner >= 0  # shaded, or a labelled part whose box must match
        if precise or self.owner is not None:  # needs a coverage mask over the polygons' extent
            points = polygons[0] if len(polygons) == 1 else np.concatenate(polygons)
            (left, top), (right, bottom) = points.min(0).tolist(), points.max(0).tolist()
            x0, y0 = max(int(left) - 1, 0), max(int(top) - 1, 0)
            x1, y1 = min(int(right) + 3, self.width), min(int(bottom) + 3, self.height)
            if x1 <= x0 or y1 <= y0:
                return None
            alpha = self._coverage(polygons, x0, y0, x1, y1)
        if precise:
            roi = self.pixels[y0:y1, x0:x1]
            value = fill(np.arange(x0, x1)[None, :], np.arange(y0, y1)[:, None]) if callable(fill) else fill
            blend = roi.astype(np.float32)
            blend += alpha * (value - blend)
            roi[:] = cv2.convertScaleAbs(blend)  # saturating round to uint8
        else:  # clutter: cv2's own anti-aliasing is fine and much cheaper
            for polygon in polygons:
                points = np.rint(polygon * (1 << _SUBPIXEL_BITS)).astype(np.int32)
                cv2.fillPoly(self.pixels, [points], float(fill), cv2.LINE_AA, _SUBPIXEL_BITS)
        if self.owner is not None:
            self.owner[y0:y1, x0:x1][alpha > 0.5] = owner
            if owner >= 0:
                coverage = self.coverage.setdefault(owner, np.zeros(self.owner.shape, np.float32))
                np.maximum(coverage[y0:y1, x0:x1], alpha, out=coverage[y0:y1, x0:x1])
        return self._extent(polygons) if owner >= 0 else None


def _clip_polygon(polygon: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of polygon [n, 2] inside the rectangle, [m, 2] (m may be 0)."""
    for axis, limit, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        if not len(polygon):
            break
        inside = polygon[:, axis] <= limit if keep_below else polygon[:, axis] >= limit
        kept = []
        for i in range(len(polygon)):
            prev, cur = polygon[i - 1], polygon[i]
            if inside[i] != inside[i - 1]:  # the edge crosses the limit: keep the crossing point
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                kept.append(prev + t * (cur - prev))
            if inside[i]:
                kept.append(cur)
        polygon = np.array(kept).reshape(-1, 2)
    return polygon


def _union(*boxes: Box | None) -> Box | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    x1s, y1s, x2s, y2s = zip(*boxes)
    return min(x1s), min(y1s), max(x2s), max(y2s)


# ---- shapes, in a local frame (face units unless said otherwise) -----------------------------

@functools.lru_cache(maxsize=256)
def _unit_arc(start: float, stop: float, n: int) -> np.ndarray:
    t = np.deg2rad(np.linspace(start, stop, n, endpoint=stop - start < 360))
    return np.stack([np.cos(t), np.sin(t)], 1)


def _ellipse(cx: float, cy: float, ax: float, ay: float, start: float = 0.0, stop: float = 360.0,
             n: int = 40) -> np.ndarray:
    """Points [n, 2] on an ellipse arc, angles in degrees (0 = +x, 90 = +y, i.e. down)."""
    return _unit_arc(float(start), float(stop), n) * (ax, ay) + (cx, cy)


def _ribbon(curve: np.ndarray, thickness: float) -> np.ndarray:
    """A band of `thickness` along a polyline [n, 2]: its outline polygon [2n, 2]."""
    tangent = np.concatenate([curve[1:2] - curve[:1], curve[2:] - curve[:-2], curve[-1:] - curve[-2:-1]])
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.sqrt((normal * normal).sum(1, keepdims=True))
    offset = normal * (thickness / 2)
    return np.concatenate([curve + offset, (curve - offset)[::-1]])


def _rounded_rect(cx: float, cy: float, w: float, h: float, r: float, angle: float = 0.0) -> np.ndarray:
    """Rounded rectangle centred at (cx, cy), rotated by `angle` degrees: polygon [32, 2]."""
    corners = [(w / 2 - r, h / 2 - r, 0), (-w / 2 + r, h / 2 - r, 90), (-w / 2 + r, -h / 2 + r, 180),
               (w / 2 - r, -h / 2 + r, 270)]
    outline = np.concatenate([_ellipse(x, y, r, r, a, a + 90, 8) for x, y, a in corners])
    return _rotate(outline, angle) + (cx, cy)


def _capsule(start: np.ndarray, stop: np.ndarray, radius: float) -> np.ndarray:
    """A stick with round ends from `start` to `stop` (each [2]): polygon [32, 2]."""
    delta = np.asarray(stop) - np.asarray(start)
    length = float(np.hypot(*delta))
    centre = (np.asarray(start) + np.asarray(stop)) / 2
    angle = np.degrees(np.arctan2(delta[1], delta[0]))
    return _rounded_rect(centre[0], centre[1], length + 2 * radius, 2 * radius, radius, angle)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    return points @ np.array([[c, s], [-s, c]])


def _inside_ellipse(points: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Pull points [n, 2] outside an axis-aligned ellipse onto its outline, towards its centre.

    Keeps an iris inside its eye (or teeth inside a mouth) without a second coverage mask;
    for the small overlaps here it is visually the same as intersecting the shapes.
    """
    offset = points - (cx, cy)
    reach = np.sqrt(((offset / (ax, ay)) ** 2).sum(1, keepdims=True))
    return offset / np.maximum(reach, 1.0) + (cx, cy)


@dataclasses.dataclass(frozen=True)
class _Frame:
    """Maps local points (face units) to image pixels: scaled by the face height, rotated, moved."""

    origin: tuple[float, float]
    scale: float
    angle: float

    def place(self, points: np.ndarray) -> np.ndarray:
        return _rotate(points * self.scale, self.angle) + self.origin

    def px(self, pixels: float) -> float:
        """A length in pixels, in face units."""
        return pixels / self.scale


# ---- scene parts -----------------------------------------------------------------------------

# Owner ids of the traced parts (tests check their boxes against the pixels they own).
OWNERS = {"face": 0, "eye_left": 1, "eye_right": 2, "mouth": 3, "phone": 4, "cigar": 5}


def _draw_cabin(canvas: _Canvas, state: SceneState, body: _Frame) -> None:
    """Background clutter: roof, window with scenery, pillar, headrest, seat back."""
    rng = np.random.default_rng(state.clutter_seed)
    w, h = canvas.width, canvas.height
    canvas.pixels[:] = round(rng.uniform(35, 110))
    side = rng.choice([-1, 1])
    edge = w * rng.uniform(0.12, 0.3)
    x_in = edge if side < 0 else w - edge  # inner border of the side window
    x_out = -2 if side < 0 else w + 2
    top, bottom = h * rng.uniform(0.05, 0.2), h * rng.uniform(0.45, 0.75)
    window = np.array([[x_out, top], [x_in, top + 0.1 * h], [x_in + side * 0.1 * w, bottom], [x_out, bottom]])
    canvas.paint([window], rng.uniform(130, 235))
    for _ in range(rng.integers(2, 5)):  # outside scenery: trees, buildings
        sx, sy = rng.uniform(min(x_in, x_out), max(x_in, x_out)), rng.uniform(top, bottom)
        canvas.paint([_ellipse(sx, sy, rng.uniform(5, 0.1 * w), rng.uniform(5, 0.1 * h))], rng.uniform(60, 250))
    pillar_x = x_in + side * 0.02 * w
    canvas.paint([_capsule(np.array([pillar_x, -10]), np.array([pillar_x + side * 0.12 * w, h + 10]),
                           0.03 * w)], rng.uniform(15, 60))
    canvas.paint([np.array([[-2, -2], [w + 2, -2], [w + 2, top * 0.7], [-2, top * 0.5]])], rng.uniform(20, 70))
    seat_tone = rng.uniform(35, 120)
    sx, sy = state.seat
    canvas.paint([_rounded_rect(sx, h * 1.1, body.scale * 2.4, 1.4 * h, 0.2 * body.scale)], seat_tone * 0.85)
    canvas.paint([_rounded_rect(sx, sy, body.scale * 0.95, body.scale * 0.55, body.scale * 0.15)], seat_tone)


def _draw_body(canvas: _Canvas, ident: _Identity, state: SceneState, body: _Frame) -> None:
    """Hair (behind the face), shoulders, seat belt and neck; `body` is the unrolled face frame."""
    head = _head_frame(state)
    half = ident.aspect / 2
    if ident.hair_long:
        canvas.paint([head.place(_rounded_rect(0, 0.1, 2 * half + 0.22, 1.1, 0.3))], ident.hair)
    canvas.paint([head.place(_ellipse(0, -0.06, half + 0.07, 0.58))], ident.hair)
    torso = np.array([[-0.2, 0.62], [0.2, 0.62], [1.1, 0.85], [1.35, 3.0], [-1.35, 3.0], [-1.1, 0.85]])
    canvas.paint([body.place(torso)], ident.shirt)
    belt = np.array([[ident.belt_side * 0.95, 0.8], [-ident.belt_side * 0.6, 3.0]])
    canvas.paint([body.place(_ribbon(belt, 0.16))], ident.belt)
    canvas.paint([body.place(np.array([[-0.17, 0.2], [0.17, 0.2], [0.19, 0.72], [-0.19, 0.72]]))],
                 ident.skin * 0.72)


def _head_frame(state: SceneState) -> _Frame:
    return _Frame((state.face_x, state.face_y), state.face_height, state.roll)


def _draw_face(canvas: _Canvas, ident: _Identity, state: SceneState, head: _Frame) -> Box | None:
    """Face ellipse with radial shading and side light, brows, nose; returns the face box."""
    light = np.deg2rad(state.light_angle)
    ax, ay = ident.aspect / 2 * head.scale, 0.5 * head.scale
    fx, fy = head.origin

    def shading(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = (x - fx) / ax, (y - fy) / ay
        return ident.skin * (1.0 - 0.22 * (dx * dx + dy * dy) + 0.12 * (dx * np.cos(light) + dy * np.sin(light)))

    box = canvas.paint([head.place(_ellipse(0, 0, ident.aspect / 2, 0.5, n=64))], shading, owner=OWNERS["face"])
    brow_y = ident.eye_level - ident.eye_height * 0.5 - 0.06
    for side in (-1, 1):
        brow = _ellipse(side * ident.eye_spacing / 2, brow_y + 0.05, ident.eye_width * 0.62, 0.06, 200, 340, 12)
        canvas.paint([head.place(_ribbon(brow, max(0.022, head.px(2.0))))], ident.brow)
        canvas.paint([head.place(_ellipse(side * 0.04, 0.13, 0.022, 0.012, n=16))], ident.skin * 0.35)  # nostril
    nose = _ribbon(_ellipse(0, 0.07, 0.06, 0.05, 30, 150, 12), max(0.012, head.px(1.5)))
    canvas.paint([head.place(nose)], ident.skin * 0.8)
    return box


def _draw_eye(canvas: _Canvas, ident: _Identity, state: SceneState, head: _Frame, side: int) -> Box | None:
    """One eye: bright sclera, iris, pupil, glint, lash line (open) or lid and lash arc (closed)."""
    owner = OWNERS["eye_left" if side < 0 else "eye_right"]
    cx, cy, ew, eh = side * ident.eye_spacing / 2, ident.eye_level, ident.eye_width, ident.eye_height
    lash_width = max(0.12 * eh, head.px(1.6))
    if state.eyes_closed:
        crease = _ellipse(cx, cy, ew / 2, 0.35 * eh, 180, 360, 16)
        lash = _ellipse(cx, cy, ew / 2, 0.25 * eh, 0, 180, 16)
        return _union(canvas.paint([head.place(np.concatenate([crease, lash]))], ident.skin * 0.82, owner=owner),
                      canvas.paint([head.place(_ribbon(crease, 0.6 * lash_width))], ident.skin * 0.6, owner=owner),
                      canvas.paint([head.place(_ribbon(lash, 1.6 * lash_width))], 25.0, owner=owner))
    box = canvas.paint([head.place(_ellipse(cx, cy, ew / 2, eh / 2, n=32))], ident.sclera, owner=owner)
    radius = 0.38 * eh
    ix, iy = cx + state.gaze[0] * 0.18 * ew, cy + state.gaze[1] * 0.08 * eh
    for scale, dx, tone, n in ((1.0, 0.0, ident.iris, 24), (0.45, 0.0, 12.0, 16), (0.2, -0.35, 250.0, 12)):
        disc = _ellipse(ix + dx * radius, iy + dx * radius, scale * radius, scale * radius, n=n)  # iris, pupil, glint
        canvas.paint([head.place(_inside_ellipse(disc, cx, cy, ew / 2, eh / 2))], tone, owner=owner)
    lash = _ellipse(cx, cy, ew / 2, eh / 2, 180, 360, 16)
    return _union(box, canvas.paint([head.place(_ribbon(lash, lash_width))], 20.0, owner=owner))


def _draw_mouth(canvas: _Canvas, ident: _Identity, state: SceneState, head: _Frame) -> Box | None:
    """Open: lips ring around a dark cavity with teeth and tongue; closed: lips with a dark line."""
    owner, my, mw = OWNERS["mouth"], ident.mouth_level, ident.mouth_width
    if not state.mouth_open:
        box = canvas.paint([head.place(_ellipse(0, my, mw / 2, 0.13 * mw))], ident.lips, owner=owner)
        x = np.linspace(-0.46, 0.46, 14) * mw
        line = np.stack([x, my + 0.03 * mw * (1 - (x / (0.46 * mw)) ** 2)], 1)  # a slight smile, inside the lips
        canvas.paint([head.place(_ribbon(line, max(0.04 * mw, head.px(1.6))))], 20.0, owner=owner)
        return box
    half_h = state.mouth_gape * mw / 2
    my += 0.5 * (half_h - 0.13 * mw)  # a jaw opens downwards: the upper lip stays near its place
    box = canvas.paint([head.place(_ellipse(0, my, 0.42 * mw, half_h))], ident.lips, owner=owner)
    cavity = (0.0, my, 0.34 * mw, 0.78 * half_h)
    canvas.paint([head.place(_ellipse(*cavity))], 18.0, owner=owner)
    teeth = _rounded_rect(0, my - 0.78 * half_h, 0.4 * mw, 0.36 * half_h, 0.02)
    tongue = _ellipse(0, my + 0.7 * half_h, 0.22 * mw, 0.35 * half_h)
    for part, tone in ((teeth, ident.teeth), (tongue, 75.0)):
        canvas.paint([head.place(_inside_ellipse(part, *cavity))], tone, owner=owner)
    return box


def _draw_face_mask(canvas: _Canvas, ident: _Identity, head: _Frame) -> None:
    """A surgical mask from the nose bridge down to the chin, inside the face outline."""
    half = ident.aspect / 2 * 0.97
    top = 0.07  # at the cheeks; the nose bridge lifts the middle to 0.02
    start = np.degrees(np.arcsin(top / 0.485))
    lower = _ellipse(0, 0, half, 0.485, start, 180 - start, 24)
    upper = _ellipse(0, top, half * np.cos(np.deg2rad(start)), 0.05, 180, 360, 12)[1:-1]
    canvas.paint([head.place(np.concatenate([lower, upper]))], ident.mask)
    for y in (0.16, 0.26, 0.36):
        reach = half * np.sqrt(1 - (y / 0.485) ** 2) - 0.01  # the mask's edge at this height
        pleat = np.array([[-reach, y], [reach, y + 0.01]])
        canvas.paint([head.place(_ribbon(pleat, max(0.01, head.px(1.2))))], ident.mask * 0.82)


def _draw_hand(canvas: _Canvas, ident: _Identity, frame: _Frame, palm: tuple[float, float], angle: float,
               size: float = 1.0, thumb: int = 1) -> None:
    """A hand: palm with four fingers pointing along `angle` (degrees) and a thumb, outlined.

    thumb: +1 puts the thumb 90 degrees clockwise of the fingers, -1 the other way.
    """
    skin = ident.skin * 0.95
    direction = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
    across = np.array([-direction[1], direction[0]])
    base = np.asarray(palm) + direction * 0.1 * size
    sticks = [(base + across * k * 0.055 * size, direction, 0.22 * size * (1 - 0.12 * abs(k - 0.5)))
              for k in (-1.5, -0.5, 0.5, 1.5)]
    sticks.append((np.asarray(palm) + thumb * across * 0.13 * size, (direction + thumb * across) / np.sqrt(2),
                   0.16 * size))
    for root, pointing, length in sticks:
        stick = (root, root + pointing * length)
        canvas.paint([frame.place(_capsule(*stick, 0.032 * size))], skin * 0.6)  # outline
        canvas.paint([frame.place(_capsule(*stick, 0.026 * size))], skin)
    canvas.paint([frame.place(_rounded_rect(palm[0], palm[1], 0.26 * size, 0.24 * size, 0.08 * size,
                                            angle + 90))], skin)


def _draw_phone(canvas: _Canvas, ident: _Identity, state: SceneState, head: _Frame, body: _Frame) -> Box | None:
    """A dark rounded phone with a lit screen, at the ear or held in front of the chest, hand behind it."""
    side = state.phone_side
    if state.phone == "ear":
        frame, tilt = head, side * abs(state.phone_place[2])
        cx, cy, w, h = side * (ident.aspect / 2 + 0.07), 0.08, 0.2, 0.52
        _draw_hand(canvas, ident, frame, (cx + side * 0.06, cy + 0.16), -90 - side * 20, 0.9)
    else:
        frame, tilt = body, state.phone_place[2]
        (cx, cy), w, h = state.phone_place[:2], 0.32, 0.6
        _draw_hand(canvas, ident, frame, (cx, cy + 0.2), -90 + tilt, 1.1)
    body_box = canvas.paint([frame.place(_rounded_rect(cx, cy, w, h, 0.05, tilt))], ident.phone_body,
                            owner=OWNERS["phone"])
    screen = _rounded_rect(cx, cy, w * 0.82, h * 0.78, 0.02, tilt)
    canvas.paint([frame.place(screen)], ident.phone_screen, owner=OWNERS["phone"])
    return body_box


def _draw_cigarette(canvas: _Canvas, ident: _Identity, state: SceneState, head: _Frame) -> Box | None:
    """A thin bright stick with a tan filter and a glowing tip, in the mouth corner or in a hand."""
    side, angle = state.cigarette_side, np.deg2rad(state.cigarette_angle)
    radius = max(0.016, head.px(1.6))
    if state.cigarette == "mouth":
        direction = np.array([side * np.cos(angle), np.sin(angle)])
        # held in the lips' corner: its round end touches the corner, the mouth stays whole
        start = np.array([side * 0.5 * ident.mouth_width, ident.mouth_level]) + direction * radius
    else:
        palm = (side * (ident.aspect / 2 + 0.16), 0.42)
        _draw_hand(canvas, ident, head, palm, -90 + side * 15, 0.9)
        start = np.asarray(palm) + np.array([0, -0.12])
        direction = np.array([side * np.sin(angle), -np.cos(angle)])
    length = 0.3
    filter_end = start + direction * 0.3 * length
    stop = start + direction * length
    owner = OWNERS["cigar"]
    return _union(canvas.paint([head.place(_capsule(start, filter_end, radius))], 170.0, owner=owner),
                  canvas.paint([head.place(_capsule(filter_end, stop, radius))], 238.0, owner=owner),
                  canvas.paint([head.place(_ellipse(*stop, 1.3 * radius, 1.3 * radius, n=16))], 255.0, owner=owner))


def _finish(canvas: _Canvas, state: SceneState, rng: np.random.Generator) -> np.ndarray:
    """Lighting gradient, optical blur and sensor noise: canvas -> uint8 [H, W]."""
    h, w = canvas.height, canvas.width
    angle = np.deg2rad(state.light_angle)
    slope = 2 * state.light_strength * state.brightness
    ramp_x = np.linspace(-0.5, 0.5, w, dtype=np.float32) * float(slope * np.cos(angle))
    ramp_y = np.linspace(-0.5, 0.5, h, dtype=np.float32) * float(slope * np.sin(angle)) + state.brightness
    image = cv2.multiply(canvas.pixels, ramp_x[None, :] + ramp_y[:, None], dtype=cv2.CV_8U)
    if state.blur >= 0.3:
        image = cv2.GaussianBlur(image, (0, 0), state.blur)
    # gaussian noise from one random byte per pixel through a quantile table (10x faster than
    # rng.normal); addWeighted saturates once, after removing the table's +128 offset
    table = np.clip(np.rint(_GAUSS_QUANTILES * state.noise) + 128, 0, 255).astype(np.uint8)
    noise = cv2.LUT(np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w), table)
    return cv2.addWeighted(image, 1.0, noise, 1.0, -128.0, dtype=cv2.CV_8U)


def _render(rng: np.random.Generator, width: int, height: int, state: SceneState,
            trace: bool = False) -> tuple[np.ndarray, list[tuple[str, Box]], _Canvas]:
    """Draw `state`; returns the image, (class, box) pairs and the canvas (its trace for tests)."""
    ident = _identity(state.identity_seed)
    head = _head_frame(state)
    body = _Frame(head.origin, head.scale, 0.0)
    canvas = _Canvas(width, height, trace)
    _draw_cabin(canvas, state, body)
    _draw_body(canvas, ident, state, body)
    objects = [("face", _draw_face(canvas, ident, state, head))]
    eye_class = "eye_closed" if state.eyes_closed else "eye_opened"
    for side in (-1, 1):
        if side != state.hidden_eye:
            objects.append((eye_class, _draw_eye(canvas, ident, state, head, side)))
    if state.mouth_cover == "none":
        mouth_class = "mouth_opened" if state.mouth_open else "mouth_closed"
        objects.append((mouth_class, _draw_mouth(canvas, ident, state, head)))
    elif state.mouth_cover == "mask":
        _draw_face_mask(canvas, ident, head)
    else:
        _draw_hand(canvas, ident, head, (0.1 * state.hand_side, ident.mouth_level + 0.03),
                   180 if state.hand_side > 0 else 0, thumb=-state.hand_side)  # thumb under the chin
    if state.hidden_eye:
        eye_x = state.hidden_eye * ident.eye_spacing / 2
        _draw_hand(canvas, ident, head, (eye_x + state.hidden_eye * 0.02, ident.eye_level + 0.04), -90,
                   thumb=state.hidden_eye)  # thumb outwards, clear of the other eye
    if state.cigarette != "none":
        objects.append(("cigar", _draw_cigarette(canvas, ident, state, head)))
    if state.phone != "none":
        objects.append(("phone", _draw_phone(canvas, ident, state, head, body)))
    return _finish(canvas, state, rng), [(c, box) for c, box in objects if box is not None], canvas


def render_scene(rng: np.random.Generator, width: int, height: int,
                 state: SceneState | None = None) -> tuple[np.ndarray, list[dict]]:
    """Render one scene (a random one from `rng` when `state` is None).

    Returns the image, uint8 [height, width] grey, and its objects in the competition format:
    `[{"class": name, "position": [x1, y1, x2, y2]}]`, xyxy pixel edges rounded to 0.1.
    `rng` also draws the sensor noise, so the same generator state gives the same bytes.
    """
    state = sample_scene(rng, width, height) if state is None else state
    image, objects, _ = _render(rng, width, height, state)
    return image, [{"class": c, "position": [round(float(v), 1) for v in box]} for c, box in objects]


def image_name(index: int) -> str:
    return f"image_{index:08d}.jpg"


def _write_images(out_dir: Path, seed: int, size: tuple[int, int], start: int, stop: int) -> list[dict]:
    """Render and write images start..stop-1; image i depends only on (seed, i)."""
    records = []
    for index in range(start, stop):
        image, objects = render_scene(np.random.default_rng([seed, index]), *size)
        name = image_name(index)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"{out_dir / name}: JPEG encoding failed")
        (out_dir / name).write_bytes(encoded.tobytes())
        records.append({"file_name": name, "objects": objects})
    return records


def write_dataset(out_dir, images: int, seed: int = 0, size: tuple[int, int] = (640, 360), labels_path=None,
                  workers: int = 1, progress: bool = True) -> Path:
    """Write `images` scenes to OUT/images/image_XXXXXXXX.jpg and their labels; return the labels path.

    size: (width, height) in pixels. labels_path: where labels.json goes (default OUT/labels.json;
    elsewhere for a test set whose labels are kept apart). The output is the same for any `workers`.
    """
    if images < 0 or workers < 1:
        raise ValueError(f"images must be >= 0 and workers >= 1, got {images} and {workers}")
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    labels_path = Path(labels_path) if labels_path is not None else out_dir / "labels.json"
    starts = range(0, images, _CHUNK)
    chunks = (itertools.repeat(image_dir), itertools.repeat(seed), itertools.repeat(tuple(size)), starts,
              [min(start + _CHUNK, images) for start in starts])
    records: list[dict] = []
    # spawned, not forked: a fork copies OpenCV's thread pool mid-use and can hang the child;
    # one OpenCV thread per worker, the parallelism is theirs
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=cv2.setNumThreads,
                               initargs=(1,)) if workers > 1 else None
    with pool or contextlib.nullcontext(), progress_bar(total=images, desc="synth", unit="img", enabled=progress) as bar:
        for chunk in (pool.map if pool else map)(_write_images, *chunks):
            records.extend(chunk)
            bar.update(len(chunk))
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels_path.write_text(json.dumps({"annotations": records}))
    return labels_path
