"""The driver-state machine: per-frame detections -> per-signal scores -> debounced states, PERCLOS,
live alerts and finished events (the definitions are in the package docstring, `drowsy.monitor`).

numpy only, by design: it runs wherever detections come from (a detector, a clip's ground truth, a
replayed log) without PyTorch, OpenCV or plotting libraries, and tests/monitor/test_state.py checks that
importing it loads none of them. Memory stays bounded by one PERCLOS window, however long the stream.
"""

import dataclasses
import math
from collections import deque

import numpy as np

from drowsy import CLASS_IDS, CLASSES
from drowsy.config import MonitorConfig
from drowsy.infer.boxes import iou_with
from drowsy.monitor.attention import AlertLadder, Vats
from drowsy.monitor.events import ALERT_EVENTS, Event
from drowsy.monitor.gaze import HeadPose, face_features, iris_offset, off_road_score

DETECTOR_SIGNALS = ("eyes_closed", "mouth_open", "phone", "cigarette")  # scored from class scores (`frame_scores`)
CALIBRATED = DETECTOR_SIGNALS + ("eyes_seen", "mouth_seen")  # the scores `calibrate` fits an offset to
SEEN = {"eyes_seen": "eyes_closed", "mouth_seen": "mouth_open"}  # the signal each measurability score gates
SAME_OBJECT_IOU = 0.5  # a phone box and a cigar box overlapping this much are one object (`frame_scores`)
SIGNALS = DETECTOR_SIGNALS + ("eyes_off_road", "eyes_unseen")
# Events made from a finished run of a signal: (the shortest run's event, the config key of its
# minimum duration), from the longest: an eye closure is a blink or, by its length, a microsleep, a
# sleep or an unresponsive driver; a glance away a distraction or an unresponsive driver.
SIGNAL_EVENTS = {
    "eyes_closed": (("unresponsive", "unresponsive_s"), ("sleep", "sleep_s"), ("microsleep", "microsleep_s")),
    "eyes_off_road": (("unresponsive", "unresponsive_s"), ("distraction", "distraction_s")),
    "mouth_open": (("yawn", "yawn_min_s"),),
    "phone": (("phone", "phone_min_s"),),
    "cigarette": (("smoking", "smoking_min_s"),),
    "eyes_unseen": (("degraded", "degraded_s"),),
}
_EPS = 1e-6  # seconds: frame times are products of float steps


@dataclasses.dataclass(frozen=True)
class FrameState:
    """What the monitor knows after one frame.

    scores: per signal of SIGNALS, the frame's score (None when not measurable): eyes_closed,
    mouth_open (0 unless the mouth is open as wide as a yawn's, `yawn_min_height`), phone, cigarette in
    [0, 1]; eyes_off_road = `gaze.off_road_score` (1 = the edge of the on-road region); eyes_unseen 1 or 0.
    states: per signal, the debounced state (True = eyes closed, mouth open, phone / cigarette present,
    eyes off the road, eyes not measurable). pose: head (yaw, pitch) in degrees against the driver's
    baseline, None when unknown. level: the alert ladder's level (0 none, 1 pre-alert, 2 prompt, 3 final).
    perclos: share of the last `perclos_window_s` the eyes were closed (None until
    `perclos_min_window_s` of seen eyes). blink_rate: blinks per minute over the same window (or None).
    closure_s: length of the eye closure in progress (0 when open). alerts: ALERT_EVENTS active now.
    ended: events completed at this frame (they start earlier).
    """

    index: int
    time_s: float
    scores: dict
    states: dict
    perclos: float | None
    blink_rate: float | None
    closure_s: float
    pose: tuple[float, float] | None
    level: int
    alerts: tuple[str, ...]
    ended: tuple[Event, ...]


def frame_scores(
    detections, min_score: float = 0.0, offsets: dict[str, float] | None = None, exclusive: bool = True
) -> dict[str, float | None]:
    """Per-signal scores of one frame: DETECTOR_SIGNALS, eyes_seen and mouth_seen.

    detections: [n, 6] (x1, y1, x2, y2, score, class_id with CLASSES ids): an array, a torch tensor
    (read through its `cpu()`, no torch import) or anything np.asarray takes; detections scoring under
    `min_score` are ignored. eyes_closed = c / (c + o) of the best eye_closed
    (c) and eye_opened (o) scores, so it passes 0.5 when the most confident eye box says closed, None
    when no eye is seen; mouth_open likewise from mouth_opened / mouth_closed; phone and cigarette:
    the best phone / cigar score (0 when none); eyes_seen, mouth_seen: the best eye / mouth box's score
    (0 when none).
    offsets: per signal of CALIBRATED, a log-odds offset fitted by `calibrate`; a score s becomes
    sigmoid(logit(s) - offset), which passes 0.5 at the decision boundary found on labelled images.
    With an eyes_seen offset, eyes whose calibrated eyes_seen stays under 0.5 count as not seen
    (eyes_closed None): the faint eye boxes a detector still draws on sunglasses or a glare; likewise
    mouth_seen and mouth_open: the faint mouth boxes on a hand holding a snack to the mouth, which
    read as a wide-open mouth (a yawn) otherwise.
    exclusive: a phone box and a cigar box on the same object (IoU >= SAME_OBJECT_IOU) are one object
    of the better-scoring class (after calibration): a phone held to the mouth is not also a cigarette.
    """
    rows = detection_rows(detections, min_score)
    offsets = offsets or {}
    if offsets:
        rows = rows.copy()
        for signal, name in (("phone", "phone"), ("cigarette", "cigar")):
            of_class = rows[:, 5] == CLASS_IDS[name]
            rows[of_class, 4] = _calibrated(rows[of_class, 4], offsets.get(signal, 0.0))
    if exclusive:
        rows = _one_class_per_object(rows)
    best = np.zeros(len(CLASSES))
    np.maximum.at(best, rows[:, 5].astype(np.int64), rows[:, 4])
    ids = CLASS_IDS
    scores = {
        "eyes_closed": _share(best[ids["eye_closed"]], best[ids["eye_opened"]]),
        "mouth_open": _share(best[ids["mouth_opened"]], best[ids["mouth_closed"]]),
        "phone": float(best[ids["phone"]]),
        "cigarette": float(best[ids["cigar"]]),
        "eyes_seen": float(max(best[ids["eye_closed"]], best[ids["eye_opened"]])),
        "mouth_seen": float(max(best[ids["mouth_opened"]], best[ids["mouth_closed"]])),
    }
    if offsets:
        for name in ("eyes_closed", "mouth_open", *SEEN):
            if scores[name] is not None:
                scores[name] = float(_calibrated(scores[name], offsets.get(name, 0.0)))
        for seen, gated in SEEN.items():
            if seen in offsets and scores[seen] < 0.5:
                scores[gated] = None
    return scores


def _one_class_per_object(rows: np.ndarray) -> np.ndarray:
    """Rows without the phone / cigar boxes that overlap a better-scoring box of the other of the two
    classes at IoU >= SAME_OBJECT_IOU."""
    ids = (CLASS_IDS["phone"], CLASS_IDS["cigar"])
    objects = np.flatnonzero(np.isin(rows[:, 5], ids))
    keep = np.ones(len(rows), bool)
    for i in objects:
        rivals = objects[(rows[objects, 5] != rows[i, 5]) & (rows[objects, 4] > rows[i, 4])]
        if len(rivals) and (iou_with(rows[i, :4], rows[rivals, :4]) >= SAME_OBJECT_IOU).any():
            keep[i] = False
    return rows[keep]


def detection_rows(detections, min_score: float = 0.0) -> np.ndarray:
    """Detections as a float32 [n, 6] array, those scoring under `min_score` dropped."""
    if hasattr(detections, "cpu"):
        detections = detections.detach().cpu()
    rows = np.asarray(detections, dtype=np.float32).reshape(-1, 6)
    return rows[rows[:, 4] >= min_score]


def _share(yes: float, no: float) -> float | None:
    return float(yes / (yes + no)) if yes + no > 0 else None


def logit(score):
    """log-odds of a score, clipped to [1e-6, 1 - 1e-6] first (a missing box scores 0)."""
    score = np.clip(score, 1e-6, 1 - 1e-6)
    return np.log(score / (1 - score))


def sigmoid(log_odds):
    """The score of a log-odds (or of an array of them): `logit`'s inverse."""
    return 1 / (1 + np.exp(-log_odds))


def _calibrated(score, offset: float):
    """sigmoid(logit(score) - offset): a score (or an array of them) moved by a fitted log-odds offset."""
    return sigmoid(logit(score) - offset)


class _Signal:
    """One on/off signal: hysteresis on a score, then debouncing into runs (start, end) in seconds.

    A sample taken at `time_s` stands for the half step around it (clipped at 0): the best guess for
    where a state that began between two frames began. A run begins at its first active sample and
    ends where its last one ends; inactive stretches of up to `max_gap_s` inside it are bridged.
    A run is reported when it is over (`max_gap_s` after its last active sample) if it lasted `min_s`,
    as (start, end, reached): `reached` maps each of `marks` (durations, seconds) that the run reached to
    the time of the sample at which it did (where the live alert of that length fired).
    """

    def __init__(self, on: float, off: float, min_s: float, max_gap_s: float, marks: tuple[float, ...] = ()):
        self.on, self.off, self.min_s, self.max_gap_s, self.marks = on, off, min_s, max_gap_s, marks
        self.high = False  # hysteresis state, kept through samples where the score is unknown
        self.active = False  # the last sample counted as on
        self.run: list[float] | None = None  # [start, end] of the run in progress
        self.reached: dict[float, float] = {}

    def update(self, time_s: float, step_s: float, score: float | None) -> tuple | None:
        """Feed one sample (score None = not seen: no evidence, so not active). Returns a run that ended."""
        if score is not None:
            self.high = score >= self.on or (self.high and score >= self.off)
        self.active = self.high and score is not None
        if self.active:
            if self.run is None:
                self.run = [max(time_s - step_s / 2, 0.0), 0.0]
            self.run[1] = time_s + step_s / 2
            for mark in self.marks:
                if mark not in self.reached and self.duration >= mark - _EPS:
                    self.reached[mark] = time_s
        elif self.run is not None and time_s + step_s / 2 - self.run[1] > self.max_gap_s + _EPS:
            return self.finish()
        return None

    def finish(self) -> tuple | None:
        """Close the run in progress; returns (start, end, reached) if it lasted `min_s`."""
        run, reached, self.run, self.reached = self.run, self.reached, None, {}
        if run is None or run[1] - run[0] < self.min_s - _EPS:
            return None
        return run[0], run[1], reached

    @property
    def duration(self) -> float:
        """Length of the run in progress, seconds (0 when none)."""
        return self.run[1] - self.run[0] if self.run is not None else 0.0

    @property
    def on_now(self) -> bool:
        """A run is in progress and already long enough to count."""
        return self.run is not None and self.duration >= self.min_s - _EPS


class _PerclosWindow:
    """Eye states of the last `size` frames: the closed share among frames where the eyes were seen."""

    def __init__(self, size: int, min_seen: int):
        self.size, self.min_seen = size, min_seen
        self.codes: deque[int] = deque()  # per frame: 1 closed, 0 open, -1 not seen
        self.first = 0  # frame index of codes[0]
        self.closed = self.seen = 0

    def push(self, code: int) -> None:
        self.codes.append(code)
        self.closed += code == 1
        self.seen += code >= 0
        if len(self.codes) > self.size:
            self.pop()

    def pop(self) -> None:
        code = self.codes.popleft()
        self.first += 1
        self.closed -= code == 1
        self.seen -= code >= 0

    def perclos(self) -> float | None:
        return self.closed / self.seen if self.seen >= self.min_seen else None

    def centre_s(self, fps: float) -> float:
        """Centre of the window's time span, seconds (frame i is taken at i / fps)."""
        return (2 * self.first + len(self.codes) - 1) / (2 * fps)


def _empty_stats() -> dict:
    """The counters `DriverStateMonitor.metrics` summarises, before the first frame."""
    return {
        "frames": 0,
        "blinks": 0,
        "eyes_unseen": 0,
        "perclos_max": 0.0,
        "perclos_sum": 0.0,
        "perclos_frames": 0,
        "longest_closure_s": 0.0,
        "off_road": 0,
        "pose_frames": 0,
    }


class DriverStateMonitor:
    """Streaming driver state: `update` once per frame, in order, then `finish` once at the end.

    Memory stays bounded by one PERCLOS window of per-frame eye states and one gaze baseline, however
    long the stream. offsets: per-signal log-odds offsets from `calibrate` (see `frame_scores`); None
    uses the raw scores. head_features, head_angles: what `update_scores` gets for the head pose
    (`gaze.HeadPose`'s features and angles; by default the box offsets that `update` measures).
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        fps: float = 15.0,
        offsets: dict[str, float] | None = None,
        head_features: tuple[str, ...] = ("eyes", "mouth"),
        head_angles=None,
    ):
        config = config or MonitorConfig()
        config.check()
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        c = self.config = config
        self.fps, self.step = float(fps), 1.0 / fps
        self.offsets = offsets  # per-signal score calibration (`calibrate`), None: the detector's own scores
        self.signals = {
            "eyes_closed": _Signal(
                c.eyes_closed_on,
                c.eyes_closed_off,
                c.min_state_s,
                c.eyes_max_gap_s,
                (c.microsleep_s, c.sleep_s, c.unresponsive_s),
            ),
            "mouth_open": _Signal(c.mouth_open_on, c.mouth_open_off, c.min_state_s, c.mouth_max_gap_s, (c.yawn_min_s,)),
            "phone": _Signal(c.phone_on, c.phone_off, c.min_state_s, c.phone_max_gap_s, (c.phone_min_s,)),
            "cigarette": _Signal(
                c.cigarette_on, c.cigarette_off, c.min_state_s, c.cigarette_max_gap_s, (c.smoking_min_s,)
            ),
            "eyes_off_road": _Signal(
                1.0, c.off_road_off, c.min_state_s, c.gaze_max_gap_s, (c.distraction_s, c.unresponsive_s)
            ),
            "eyes_unseen": _Signal(0.5, 0.5, c.min_state_s, c.degraded_max_gap_s, (c.degraded_s,)),
        }
        self.pose = HeadPose(
            fps,
            c.gaze_baseline_s,
            c.gaze_min_baseline_s,
            (c.yaw_limit, c.pitch_down_limit, c.pitch_up_limit),
            head_features,
            head_angles,
        )
        self.vats = Vats(c.vats_total_s, c.vats_window_s, c.vats_reset_s, _EPS)
        self.ladder = AlertLadder(c.prompt_after_s, c.final_after_s, c.recovery_s, c.cooldown_s)
        self.window = _PerclosWindow(
            max(round(c.perclos_window_s * fps), 1), max(math.ceil(c.perclos_min_window_s * fps - _EPS), 1)
        )
        # The same PERCLOS values twice: dated by the window's end for the live alarm, by its centre for the event.
        drowsy = (c.drowsy_perclos_on, c.drowsy_perclos_off, c.drowsy_min_s, c.drowsy_max_gap_s)
        self.drowsy_live, self.drowsy = _Signal(*drowsy), _Signal(*drowsy)
        self.events: list[Event] = []
        self.blink_ends: deque[float] = deque()  # end times of the blinks in the PERCLOS window
        self.last_index = -1
        self.stats = _empty_stats()

    def update(self, frame_index: int, detections, image: np.ndarray | None = None) -> FrameState:
        """Take one frame's detections ([n, 6] x1, y1, x2, y2, score, class_id; as `frame_scores` takes them).

        frame_index: position in the stream (time = frame_index / fps), increasing. image: the frame
        itself (grey or BGR, in the detections' pixels), or None; with it, the irises of open eyes
        (`gaze.iris_offset`) add the eyes' own turn to the head's pose. Without a face box scoring
        `face_min_score`, phone and cigarette are not measurable (None): no driver, no one's object.
        """
        rows = detection_rows(detections, self.config.min_score)
        scores = frame_scores(rows, 0.0, self.offsets)
        faces = rows[rows[:, 5] == CLASS_IDS["face"], 4]
        if not len(faces) or faces.max() < self.config.face_min_score:
            scores["phone"] = scores["cigarette"] = None  # no driver in the frame: an object there is no one's
        features = face_features(rows)
        height = features["mouth_open_height"] if features is not None else None
        if scores["mouth_open"] is not None and (height is None or height < self.config.yawn_min_height):
            scores["mouth_open"] = 0.0  # open, but not as wide as a yawn (talking, laughing)
        if (
            features is not None
            and image is not None
            and scores["eyes_closed"] is not None
            and scores["eyes_closed"] < 0.5
        ):
            features["iris"] = iris_offset(image, rows)
        return self.update_scores(frame_index, scores, features)

    def update_scores(self, frame_index: int, scores: dict, features: dict | None) -> FrameState:
        """Take one frame's measurements from any perception: per signal of DETECTOR_SIGNALS its score
        in [0, 1] (None: not measurable; mouth_open already 0 for a mouth not open as wide as a yawn's)
        and the head features for `gaze.HeadPose` (None: no face; an "iris" entry adds the eyes' own
        turn). `update` measures both from detections (and the frame).
        """
        if frame_index <= self.last_index:
            raise ValueError(f"frame_index must increase: {frame_index} after {self.last_index}")
        self.last_index = frame_index
        time_s = frame_index / self.fps
        c = self.config
        pose = self.pose.update(features)
        scores = {
            **{name: scores[name] for name in DETECTOR_SIGNALS},
            "eyes_off_road": off_road_score(pose, c.yaw_limit, c.pitch_down_limit, c.pitch_up_limit),
            "eyes_unseen": float(scores["eyes_closed"] is None),
        }
        ended = []
        for name, signal in self.signals.items():
            run = signal.update(time_s, self.step, scores[name])
            if run is not None:
                ended += self._signal_events(name, run)
            if name == "eyes_off_road":
                vats = self.vats.update(time_s, self.step, signal.run, run)
                ended += [vats] if vats is not None else []
        eyes = self.signals["eyes_closed"]
        self.window.push(-1 if scores["eyes_closed"] is None else int(eyes.active))
        perclos = self.window.perclos()
        self.drowsy_live.update(time_s, self.step, perclos)  # its runs are the live alarm, not events
        ended += self._drowsy_sample(perclos)
        self._count(scores, perclos, pose)
        self.events += ended
        alerts = self._alerts()
        attentive = scores["eyes_closed"] is not None and not eyes.active and not self.signals["eyes_off_road"].active
        return FrameState(
            index=frame_index,
            time_s=time_s,
            scores=scores,
            states={name: signal.on_now for name, signal in self.signals.items()},
            perclos=perclos,
            blink_rate=self._blink_rate(time_s),
            closure_s=eyes.duration if eyes.on_now else 0.0,
            pose=pose,
            level=self.ladder.update(time_s, alerts, attentive),
            alerts=alerts,
            ended=tuple(ended),
        )

    def finish(self) -> list[Event]:
        """End of stream: close every run in progress (the PERCLOS windows shrink to the last
        `perclos_min_window_s`, mirroring how they grew at the start). Returns all events, by start."""
        while self.window.codes and self.window.perclos() is not None:
            self.window.pop()
            self.events += self._drowsy_sample(self.window.perclos())
        run = self.drowsy.finish()
        if run is not None:
            self.events.append(Event("drowsy", *run[:2]))
        for name, signal in self.signals.items():
            run = signal.finish()
            if run is not None:
                self.events += self._signal_events(name, run)
        vats = self.vats.finish()
        self.events += [vats] if vats is not None else []
        return sorted(self.events, key=lambda e: (e.start, e.type))

    def metrics(self) -> dict:
        """Clip-level numbers: frames, seconds, perclos_max / perclos_mean (trailing window), blinks,
        blinks_per_min, longest_closure_s, yawns, eyes_unseen_share, off_road_share (of the frames with
        a known pose), and per alert type its event count."""
        s = self.stats
        seconds = s["frames"] / self.fps
        longest = max(s["longest_closure_s"], self.signals["eyes_closed"].duration)
        counts = {f"{kind}_events": sum(e.type == kind for e in self.events) for kind in ALERT_EVENTS}
        return {
            "frames": s["frames"],
            "seconds": seconds,
            "perclos_max": s["perclos_max"],
            "perclos_mean": s["perclos_sum"] / s["perclos_frames"] if s["perclos_frames"] else None,
            "blinks": s["blinks"],
            "blinks_per_min": s["blinks"] / seconds * 60 if seconds else 0.0,
            "longest_closure_s": longest,
            "yawns": counts["yawn_events"],
            "eyes_unseen_share": s["eyes_unseen"] / s["frames"] if s["frames"] else 0.0,
            "off_road_share": s["off_road"] / s["pose_frames"] if s["pose_frames"] else None,
            **counts,
        }

    def _signal_events(self, name: str, run: tuple) -> list[Event]:
        start, end, reached = run
        duration = end - start
        if name == "eyes_closed":
            self.stats["longest_closure_s"] = max(self.stats["longest_closure_s"], duration)
            if duration <= self.config.blink_max_s + _EPS:
                self.stats["blinks"] += 1
                self.blink_ends.append(end)
                return [Event("blink", start, end)]
        for kind, key in SIGNAL_EVENTS[name]:
            threshold = getattr(self.config, key)
            if duration >= threshold - _EPS:
                return [Event(kind, start, end, reached.get(threshold))]
        return []  # a long blink (PERCLOS counts it) or a short glance (VATS counts it)

    def _drowsy_sample(self, perclos: float | None) -> list[Event]:
        run = self.drowsy.update(self.window.centre_s(self.fps), self.step, perclos)
        return [Event("drowsy", *run[:2])] if run is not None else []

    def _blink_rate(self, time_s: float) -> float | None:
        span = min(time_s + self.step, self.config.perclos_window_s)
        while self.blink_ends and self.blink_ends[0] < time_s + self.step - span:
            self.blink_ends.popleft()
        if span < self.config.perclos_min_window_s - _EPS:
            return None
        return len(self.blink_ends) / span * 60

    def _alerts(self) -> tuple[str, ...]:
        c, s = self.config, self.signals
        closed, away = s["eyes_closed"].duration, s["eyes_off_road"].duration
        alerts = {
            "microsleep": c.microsleep_s - _EPS <= closed < c.sleep_s - _EPS,
            "sleep": c.sleep_s - _EPS <= closed < c.unresponsive_s - _EPS,
            "unresponsive": max(closed, away) >= c.unresponsive_s - _EPS,
            "drowsy": self.drowsy_live.on_now,
            "yawn": s["mouth_open"].duration >= c.yawn_min_s - _EPS,
            "distraction": c.distraction_s - _EPS <= away < c.unresponsive_s - _EPS,
            "vats": self.vats.on_now,
            "phone": s["phone"].duration >= c.phone_min_s - _EPS,
            "smoking": s["cigarette"].duration >= c.smoking_min_s - _EPS,
            "degraded": s["eyes_unseen"].duration >= c.degraded_s - _EPS,
        }
        return tuple(kind for kind in ALERT_EVENTS if alerts[kind])

    def _count(self, scores: dict, perclos: float | None, pose) -> None:
        s = self.stats
        s["frames"] += 1
        s["eyes_unseen"] += scores["eyes_closed"] is None
        if pose is not None:
            s["pose_frames"] += 1
            s["off_road"] += self.signals["eyes_off_road"].active
        if perclos is not None:
            s["perclos_max"] = max(s["perclos_max"], perclos)
            s["perclos_sum"] += perclos
            s["perclos_frames"] += 1
