"""Drawing with exact boxes: a grey canvas that blends anti-aliased polygons, and the shapes.

Every labelled part is a polygon in a local frame (`Frame`), so its box is the exact extent of
the drawn geometry after rotation, clipped to the image.

Coordinates: pixel centres sit at integer xy while drawing; boxes are xyxy in pixel *edges*
(pixel i spans [i, i + 1]), so a box covering the whole image is [0, 0, W, H].
"""

import dataclasses
import functools

import cv2
import numpy as np

_SUBPIXEL_BITS = 4  # cv2 fixed-point drawing: polygons keep 1/16 px precision
_SUPERSAMPLE = 4  # labelled parts are filled at 4x resolution per axis, then averaged


Box = tuple[float, float, float, float]  # xyxy pixel edges


class Canvas:
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
            cv2.fillPoly(
                mask, [np.rint(fine * (1 << _SUBPIXEL_BITS)).astype(np.int32)], 255, cv2.LINE_8, _SUBPIXEL_BITS
            )
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
        return (
            max(left + 0.5 - grow, 0.0),
            max(top + 0.5 - grow, 0.0),
            min(right + 0.5 + grow, self.width),
            min(bottom + 0.5 + grow, self.height),
        )

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


def union(*boxes: Box | None) -> Box | None:
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


def ellipse(
    cx: float, cy: float, ax: float, ay: float, start: float = 0.0, stop: float = 360.0, n: int = 40
) -> np.ndarray:
    """Points [n, 2] on an ellipse arc, angles in degrees (0 = +x, 90 = +y, i.e. down)."""
    return _unit_arc(float(start), float(stop), n) * (ax, ay) + (cx, cy)


def ribbon(curve: np.ndarray, thickness: float) -> np.ndarray:
    """A band of `thickness` along a polyline [n, 2]: its outline polygon [2n, 2]."""
    tangent = np.concatenate([curve[1:2] - curve[:1], curve[2:] - curve[:-2], curve[-1:] - curve[-2:-1]])
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.sqrt((normal * normal).sum(1, keepdims=True))
    offset = normal * (thickness / 2)
    return np.concatenate([curve + offset, (curve - offset)[::-1]])


def rounded_rect(cx: float, cy: float, w: float, h: float, r: float, angle: float = 0.0) -> np.ndarray:
    """Rounded rectangle centred at (cx, cy), rotated by `angle` degrees: polygon [32, 2]."""
    corners = [
        (w / 2 - r, h / 2 - r, 0),
        (-w / 2 + r, h / 2 - r, 90),
        (-w / 2 + r, -h / 2 + r, 180),
        (w / 2 - r, -h / 2 + r, 270),
    ]
    outline = np.concatenate([ellipse(x, y, r, r, a, a + 90, 8) for x, y, a in corners])
    return _rotate(outline, angle) + (cx, cy)


def capsule(start: np.ndarray, stop: np.ndarray, radius: float) -> np.ndarray:
    """A stick with round ends from `start` to `stop` (each [2]): polygon [32, 2]."""
    delta = np.asarray(stop) - np.asarray(start)
    length = float(np.hypot(*delta))
    centre = (np.asarray(start) + np.asarray(stop)) / 2
    angle = np.degrees(np.arctan2(delta[1], delta[0]))
    return rounded_rect(centre[0], centre[1], length + 2 * radius, 2 * radius, radius, angle)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    return points @ np.array([[c, s], [-s, c]])


def inside_ellipse(points: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Pull points [n, 2] outside an axis-aligned ellipse onto its outline, towards its centre.

    Keeps an iris inside its eye (or teeth inside a mouth) without a second coverage mask;
    for the small overlaps here it is visually the same as intersecting the shapes.
    """
    offset = points - (cx, cy)
    reach = np.sqrt(((offset / (ax, ay)) ** 2).sum(1, keepdims=True))
    return offset / np.maximum(reach, 1.0) + (cx, cy)


@dataclasses.dataclass(frozen=True)
class Frame:
    """Maps local points (face units) to image pixels: scaled by the face height, rotated, moved.

    yaw, pitch (degrees, + = towards the image's right / down): a head turn, drawn in 2.5-D for points
    `depth` face units in front of the head's axis: x -> x cos(yaw) + depth sin(yaw), y likewise with
    the pitch (`turned`); 0 leaves the points as they are.
    """

    origin: tuple[float, float]
    scale: float
    angle: float
    yaw: float = 0.0
    pitch: float = 0.0
    depth: float = 0.0

    def place(self, points: np.ndarray) -> np.ndarray:
        if self.yaw or self.pitch:
            yaw, pitch = np.deg2rad(self.yaw), np.deg2rad(self.pitch)
            points = np.stack(
                [
                    points[:, 0] * np.cos(yaw) + self.depth * np.sin(yaw),
                    points[:, 1] * np.cos(pitch) + self.depth * np.sin(pitch),
                ],
                1,
            )
        return _rotate(points * self.scale, self.angle) + self.origin

    def turned(self, yaw: float, pitch: float, depth: float) -> "Frame":
        """The same frame for points `depth` face units in front of the axis, the head turned."""
        return dataclasses.replace(self, yaw=yaw, pitch=pitch, depth=depth)

    def px(self, pixels: float) -> float:
        """A length in pixels, in face units."""
        return pixels / self.scale
