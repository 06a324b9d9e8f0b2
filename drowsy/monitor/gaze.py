"""Where the driver looks, from the detector's boxes alone: head yaw and pitch from where the eyes and
the mouth sit inside the face box, relative to a per-driver baseline learned online.

A head that turns moves the eyes and the mouth across the face while the face's outline, the box the
detector draws, stays nearly where it was: a feature `FEATURE_DEPTH` face heights in front of the
head's axis moves by depth * sin(angle). So per feature (the midpoint of the two eyes, the mouth) the
offset from the face-box centre, in face heights and in the face's own frame (the eye line gives the
roll), is compared with that feature's baseline offset: yaw = asin(dx / depth), pitch = asin(dy / depth),
averaged over the features seen. The baseline is the median offset over the first `baseline_s` of the
stream (a driver who sits off-centre, or whose camera looks from the side, is at 0 by definition); it
is used from `min_baseline_s` of samples on and frozen once `baseline_s` of samples are in; samples
of glances away do not count towards it (`HeadPose`).

Eyes-only glances (the head still, the eyes turned: Euro NCAP's "lizard") do not move a box; they are
out of reach of this estimate (see the README, "Driver monitor").

numpy only, as the state machine.
"""

import bisect
import math
import statistics

import numpy as np

from drowsy import CLASS_IDS

FEATURE_DEPTH = 0.3  # face heights between a feature (eyes, mouth) and the head's axis of turn
_EYES = (CLASS_IDS["eye_opened"], CLASS_IDS["eye_closed"])
_MOUTHS = (CLASS_IDS["mouth_opened"], CLASS_IDS["mouth_closed"])


def face_features(rows: np.ndarray) -> dict | None:
    """Feature offsets of one frame's detections ([n, 6] rows, already filtered by score).

    Returns None without a face box, else {"eyes": (dx, dy) or None, "mouth": (dx, dy) or None,
    "mouth_open_height": the best mouth_opened box's height in face heights or None}: the midpoint of the two best eye boxes (one eye: None, its midpoint is
    unknown) and the best mouth box, inside the best face box, as offsets from the face-box centre in
    face heights, rotated into the face's frame by the eye line's roll.
    """
    faces = rows[rows[:, 5] == CLASS_IDS["face"]]
    if not len(faces):
        return None
    x1, y1, x2, y2 = faces[np.argmax(faces[:, 4]), :4]
    height = max(y2 - y1, 1.0)
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    inside = ((rows[:, 0] + rows[:, 2]) / 2 >= x1) & ((rows[:, 0] + rows[:, 2]) / 2 <= x2) \
        & ((rows[:, 1] + rows[:, 3]) / 2 >= y1) & ((rows[:, 1] + rows[:, 3]) / 2 <= y2)
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
    return {"eyes": offset(np.mean(eyes, axis=0)) if eyes is not None else None, "mouth": mouth,
            "mouth_open_height": opened}


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


class HeadPose:
    """Head yaw and pitch (degrees; + = towards the image's right / down) per frame, against a
    baseline learned online (see the module docstring). limits: the on-road region (yaw, pitch down,
    pitch up); once a feature has a baseline, only its samples inside that region still add to it, so
    glances away in the first minute do not drag the baseline towards where the driver glanced."""

    def __init__(self, fps: float, baseline_s: float, min_baseline_s: float, limits: tuple[float, float, float],
                 features: tuple[str, ...] = ("eyes", "mouth"), angles=None):
        self.size = max(round(baseline_s * fps), 1)
        self.min_size = max(round(min_baseline_s * fps), 1)
        self.limits = limits
        self.angles = angles or box_angles
        # per feature, the baseline samples' x and y, each kept sorted: the median of a growing sample
        # without sorting it again every frame
        self.samples = {name: ([], []) for name in features}
        self.baseline: dict[str, np.ndarray] = {}

    def update(self, features: dict | None) -> tuple[float, float] | None:
        """(yaw, pitch) of this frame, None when no feature with a usable baseline is seen.

        features: per feature named at construction its (x, y) this frame, or None when not seen (more
        keys are ignored); None: no face. By default the offsets of `face_features` turned into angles
        by `box_angles`; `angles` replaces that function, which takes a point minus its baseline (the
        landmark peer of benchmarks/monitor_events.py passes head angles and the identity)."""
        if features is None:
            return None
        angles = []
        for name, samples in self.samples.items():
            point = features[name]
            if point is None:
                continue
            base = self.baseline.get(name)
            angle = None if base is None else self.angles(np.asarray(point) - base)
            count = len(samples[0])
            if count < self.size and (angle is None or off_road_score(angle, *self.limits) < 1):
                for values, value in zip(samples, point):
                    bisect.insort(values, value)
                if count + 1 >= self.min_size:
                    self.baseline[name] = np.array([statistics.median(values) for values in samples])
                    angle = self.angles(np.asarray(point) - self.baseline[name])
            if angle is not None:
                angles.append(angle)
        if not angles:
            return None
        yaw, pitch = np.mean(angles, axis=0)
        return float(yaw), float(pitch)


def box_angles(offset: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of a feature's offset from its baseline, face heights."""
    dx, dy = np.clip(offset / FEATURE_DEPTH, -1.0, 1.0)
    return math.degrees(math.asin(dx)), math.degrees(math.asin(dy))


def off_road_score(pose: tuple[float, float] | None, yaw_limit: float, pitch_down_limit: float,
                   pitch_up_limit: float) -> float | None:
    """How far outside the on-road region a pose is: the largest of |yaw| / yaw_limit, pitch down /
    pitch_down_limit and pitch up / pitch_up_limit; 1 = on its edge, None when the pose is unknown."""
    if pose is None:
        return None
    yaw, pitch = pose
    return max(abs(yaw) / yaw_limit, pitch / pitch_down_limit, -pitch / pitch_up_limit)
