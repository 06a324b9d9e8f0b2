"""Where the driver looks, from the detector's boxes and the irises inside them: head yaw and pitch from
where the eyes and the mouth sit inside the face box, relative to a per-driver baseline learned online,
plus the eyes' own yaw.

A head that turns moves the eyes and the mouth across the face while the face's outline, the box the
detector draws, stays nearly where it was: a feature `FEATURE_DEPTH` face heights in front of the
head's axis moves by depth * sin(angle). So per feature (the midpoint of the two eyes, the mouth) the
offset from the face-box centre, in face heights and in the face's own frame (the eye line gives the
roll), is compared with that feature's baseline offset: yaw = asin(dx / depth), pitch = asin(dy / depth),
averaged over the features seen. The baseline is the median offset over the first `baseline_s` of the
stream (a driver who sits off-centre, or whose camera looks from the side, is at 0 by definition); it
is used from `min_baseline_s` of samples on and frozen once `baseline_s` of samples are in; samples
of glances away do not count towards it (`HeadPose`).

Eyes-only glances (the head still, the eyes turned: Euro NCAP's "lizard") move no box; they move the
iris inside the eye. `iris_offset` finds the iris in each open eye's box on the frame itself, and
`HeadPose` adds the eyes' own yaw (`eye_angle`, against a baseline learned as the head's) to the
head's: the pose is where the eyes look, not only where the head points.

numpy only, as the state machine.
"""

import bisect
import math
import statistics

import numpy as np

from drowsy import CLASS_IDS

FEATURE_DEPTH = 0.3  # face heights between a feature (eyes, mouth) and the head's axis of turn
# An eyeball's radius in eye widths (about 12 mm in a 30 mm wide eye opening): an eye turned by an
# angle a moves its iris EYE_RADIUS * sin(a) eye widths across the opening.
EYE_RADIUS = 0.4
_EYES = (CLASS_IDS["eye_opened"], CLASS_IDS["eye_closed"])
_MOUTHS = (CLASS_IDS["mouth_opened"], CLASS_IDS["mouth_closed"])


def face_features(rows: np.ndarray) -> dict | None:
    """Feature offsets of one frame's detections ([n, 6] rows, already filtered by score).

    Returns None without a face box, else {"eyes": (dx, dy) or None, "mouth": (dx, dy) or None,
    "mouth_open_height": the best mouth_opened box's height in face heights or None}: the midpoint of
    the two best eye boxes (one eye: None, its midpoint is unknown) and the best mouth box, inside the
    best face box, as offsets from the face-box centre in face heights, rotated into the face's frame
    by the eye line's roll.
    """
    faces = rows[rows[:, 5] == CLASS_IDS["face"]]
    if not len(faces):
        return None
    x1, y1, x2, y2 = faces[np.argmax(faces[:, 4]), :4]
    height = max(y2 - y1, 1.0)
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    inside = (
        ((rows[:, 0] + rows[:, 2]) / 2 >= x1)
        & ((rows[:, 0] + rows[:, 2]) / 2 <= x2)
        & ((rows[:, 1] + rows[:, 3]) / 2 >= y1)
        & ((rows[:, 1] + rows[:, 3]) / 2 <= y2)
    )
    eyes = _two_eyes(rows[inside & np.isin(rows[:, 5], _EYES)])
    mouths = rows[inside & np.isin(rows[:, 5], _MOUTHS)]
    roll = 0.0
    if eyes is not None:
        (lx, ly), (rx, ry) = sorted(eyes, key=lambda p: p[0])
        roll = math.atan2(ry - ly, rx - lx)
    cos, sin = math.cos(-roll), math.sin(-roll)

    def offset(point) -> tuple[float, float]:
        dx, dy = (np.asarray(point) - centre) / height
        return float(cos * dx - sin * dy), float(sin * dx + cos * dy)

    mouth = opened = None
    if len(mouths):
        best = mouths[np.argmax(mouths[:, 4])]
        mouth = offset(((best[0] + best[2]) / 2, (best[1] + best[3]) / 2))
        open_rows = mouths[mouths[:, 5] == CLASS_IDS["mouth_opened"]]
        if len(open_rows):
            top = open_rows[np.argmax(open_rows[:, 4])]
            opened = float((top[3] - top[1]) / height)
    return {
        "eyes": offset(np.mean(eyes, axis=0)) if eyes is not None else None,
        "mouth": mouth,
        "mouth_open_height": opened,
    }


def _two_eyes(eyes: np.ndarray):
    """Centres of the two best eye boxes that are not the same eye (a box whose centre lies inside a
    better one is that eye's other-class box); None unless two are found."""
    centres = []
    for x1, y1, x2, y2, *_ in eyes[np.argsort(-eyes[:, 4])]:
        centre = ((x1 + x2) / 2, (y1 + y2) / 2)
        if all(not (b[0] <= centre[0] <= b[2] and b[1] <= centre[1] <= b[3]) for _, b in centres):
            centres.append((centre, (x1, y1, x2, y2)))
        if len(centres) == 2:
            return [c for c, _ in centres]
    return None


class _Median:
    """The running median of up to `size` points of `dims` coordinates, each coordinate kept sorted (no
    re-sorting every frame); known from `min_size` points on, frozen at `size`."""

    def __init__(self, size: int, min_size: int, dims: int = 2):
        self.size, self.min_size = size, min_size
        self.values = tuple([] for _ in range(dims))
        self.median: np.ndarray | None = None

    @property
    def full(self) -> bool:
        return len(self.values[0]) >= self.size

    def add(self, point) -> None:
        for values, value in zip(self.values, point):
            bisect.insort(values, value)
        if len(self.values[0]) >= self.min_size:
            self.median = np.array([statistics.median(values) for values in self.values])


class HeadPose:
    """Where the driver looks: yaw and pitch (degrees; + = towards the image's right / down) per frame,
    the head's against a baseline learned online (see the module docstring) plus the eyes' own yaw
    when their iris is measured. limits: the on-road region (yaw, pitch down, pitch up); once a
    feature has a baseline, only its samples inside that region still add to it, so glances away in
    the first minute do not drag the baseline towards where the driver glanced."""

    def __init__(
        self,
        fps: float,
        baseline_s: float,
        min_baseline_s: float,
        limits: tuple[float, float, float],
        features: tuple[str, ...] = ("eyes", "mouth"),
        angles=None,
    ):
        size, min_size = max(round(baseline_s * fps), 1), max(round(min_baseline_s * fps), 1)
        self.limits = limits
        self.angles = angles or box_angles
        self.baselines = {name: _Median(size, min_size) for name in features}
        self.iris = _Median(size, min_size, dims=1)  # the eyes' own horizontal offset (`iris_offset`)

    def update(self, features: dict | None) -> tuple[float, float] | None:
        """(yaw, pitch) of this frame, None when no feature with a usable baseline is seen.

        features: per feature named at construction its (x, y) this frame, or None when not seen, and
        optionally "iris": the eyes' `iris_offset` (None or absent: the head's pose alone; more keys are
        ignored); None: no face. By default the offsets of `face_features` turned into angles
        by `box_angles`; `angles` replaces that function, which takes a point minus its baseline (the
        landmark peer of benchmarks/monitor_events.py passes head angles and the identity)."""
        if features is None:
            return None
        angles = []
        for name, baseline in self.baselines.items():
            point = features[name]
            if point is None:
                continue
            angle = None if baseline.median is None else self.angles(np.asarray(point) - baseline.median)
            if not baseline.full and (angle is None or off_road_score(angle, *self.limits) < 1):
                baseline.add(point)
                if baseline.median is not None:
                    angle = self.angles(np.asarray(point) - baseline.median)
            if angle is not None:
                angles.append(angle)
        head = tuple(float(v) for v in np.mean(angles, axis=0)) if angles else None
        iris = features.get("iris")
        eyes = None
        if iris is not None:
            eyes = None if self.iris.median is None else eye_angle(iris - self.iris.median[0])
            yaw, pitch = head or (0.0, 0.0)
            if not self.iris.full and off_road_score((yaw + (eyes or 0.0), pitch), *self.limits) < 1:
                self.iris.add((iris,))
                eyes = eye_angle(iris - self.iris.median[0]) if self.iris.median is not None else None
        if head is None:
            return None
        return (head[0] + eyes, head[1]) if eyes is not None else head


def box_angles(offset: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of a feature's offset from its baseline, face heights."""
    dx, dy = np.clip(offset / FEATURE_DEPTH, -1.0, 1.0)
    return math.degrees(math.asin(dx)), math.degrees(math.asin(dy))


def eye_angle(offset: float) -> float:
    """An eye's yaw in degrees from its iris offset against the baseline, eye widths (`EYE_RADIUS`)."""
    return math.degrees(math.asin(float(np.clip(offset / EYE_RADIUS, -1.0, 1.0))))


def iris_offset(image: np.ndarray, rows: np.ndarray) -> float | None:
    """Where the irises sit across the open eyes: the mean over the two best eye_opened boxes of the
    iris centre's offset from the box centre, in box widths (+ = towards the image's right); None
    without an open eye box or a readable iris.

    image: the frame, grey [H, W] or BGR [H, W, 3], in the pixels of `rows` ([n, 6] detections). In the
    middle half of the box's height (clear of the lashes) and its inner 80 % of width (clear of the
    corners), the iris is the darkest band of columns one iris wide (0.3 box widths); its centre is
    the darkness-weighted mean column inside that band.
    """
    if image.ndim == 3:
        image = image.mean(axis=2)
    eyes = rows[rows[:, 5] == CLASS_IDS["eye_opened"]]
    offsets = []
    for x1, y1, x2, y2, *_ in eyes[np.argsort(-eyes[:, 4])][:2]:
        width, height = x2 - x1, y2 - y1
        c1, c2 = int(round(x1 + 0.1 * width)), int(round(x2 - 0.1 * width))
        r1, r2 = int(round(y1 + 0.25 * height)), int(round(y2 - 0.25 * height))
        c1, r1 = max(c1, 0), max(r1, 0)
        crop = image[r1:r2, c1:c2].astype(np.float32)
        band = max(int(round(0.3 * width)), 1)
        if crop.shape[0] < 1 or crop.shape[1] <= band:
            continue
        darkness = crop.max() - crop.mean(axis=0)  # per column
        sums = np.convolve(darkness, np.ones(band), "valid")
        left = int(np.argmax(sums))
        weights = darkness[left : left + band]
        if weights.sum() <= 0:
            continue
        centre = c1 + left + float((weights * np.arange(band)).sum() / weights.sum()) + 0.5
        offsets.append((centre - (x1 + x2) / 2) / width)
    return float(np.mean(offsets)) if offsets else None


def off_road_score(
    pose: tuple[float, float] | None, yaw_limit: float, pitch_down_limit: float, pitch_up_limit: float
) -> float | None:
    """How far outside the on-road region a pose is: the largest of |yaw| / yaw_limit, pitch down /
    pitch_down_limit and pitch up / pitch_up_limit; 1 = on its edge, None when the pose is unknown."""
    if pose is None:
        return None
    yaw, pitch = pose
    return max(abs(yaw) / yaw_limit, pitch / pitch_down_limit, -pitch / pitch_up_limit)
