"""The driver-state machine: per-frame detections -> per-signal scores -> debounced states, PERCLOS,
live alerts and finished events (the definitions are in the package docstring, `drowsy.monitor`).

numpy only, by design: it runs wherever detections come from (a detector, a clip's ground truth, a
replayed log) without PyTorch, OpenCV or plotting libraries, and tests/test_monitor.py checks that
importing it loads none of them. Memory stays bounded by one PERCLOS window, however long the stream.
"""

import dataclasses
import math
from collections import deque

import numpy as np

from drowsy import CLASS_IDS, CLASSES
from drowsy.events import Event
from drowsy.monitor.config import MonitorConfig

SIGNALS = ("eyes_closed", "mouth_open", "phone", "cigarette")
ALERT_TYPES = ("microsleep", "drowsy", "yawn", "phone", "smoking")
# Event made from a finished run of a signal, and the config key of its minimum duration.
# (The eyes are special: one run is a blink, a microsleep or neither, by its length.)
SIGNAL_EVENTS = {"mouth_open": ("yawn", "yawn_min_s"), "phone": ("phone", "phone_min_s"),
                 "cigarette": ("smoking", "smoking_min_s")}
_EPS = 1e-6  # seconds: frame times are products of float steps


@dataclasses.dataclass(frozen=True)
class FrameState:
    """What the monitor knows after one frame.

    scores: per signal of SIGNALS, the frame's score in [0, 1], None when the eyes / mouth are not seen.
    states: per signal, the debounced state (True = eyes closed, mouth open, phone / cigarette present).
    perclos: share of the last `perclos_window_s` the eyes were closed (None until
    `perclos_min_window_s` of seen eyes). blink_rate: blinks per minute over the same window (or None).
    closure_s: length of the eye closure in progress (0 when open). alerts: ALERT_TYPES active now.
    ended: events completed at this frame (they start earlier).
    """

    index: int
    time_s: float
    scores: dict
    states: dict
    perclos: float | None
    blink_rate: float | None
    closure_s: float
    alerts: tuple[str, ...]
    ended: tuple[Event, ...]


def frame_scores(detections, min_score: float = 0.0, offsets: dict[str, float] | None = None) -> dict[str, float | None]:
    """Per-signal scores of one frame.

    detections: [n, 6] (x1, y1, x2, y2, score, class_id with CLASSES ids): an array, a torch tensor
    (read through its `cpu()`, no torch import) or anything np.asarray takes; detections scoring under
    `min_score` are ignored. eyes_closed = c / (c + o) of the best eye_closed
    (c) and eye_opened (o) scores, so it passes 0.5 when the most confident eye box says closed, None
    when no eye is seen; mouth_open likewise from mouth_opened / mouth_closed; phone and cigarette:
    the best phone / cigar score (0 when none).
    offsets: per signal, a log-odds offset fitted by `calibrate`; a score s becomes
    sigmoid(logit(s) - offset), which passes 0.5 at the decision boundary found on labelled images.
    """
    if hasattr(detections, "cpu"):
        detections = detections.detach().cpu()
    rows = np.asarray(detections, dtype=np.float32).reshape(-1, 6)
    rows = rows[rows[:, 4] >= min_score]
    best = np.zeros(len(CLASSES))
    np.maximum.at(best, rows[:, 5].astype(np.int64), rows[:, 4])
    ids = CLASS_IDS
    scores = {
        "eyes_closed": _share(best[ids["eye_closed"]], best[ids["eye_opened"]]),
        "mouth_open": _share(best[ids["mouth_opened"]], best[ids["mouth_closed"]]),
        "phone": float(best[ids["phone"]]),
        "cigarette": float(best[ids["cigar"]]),
    }
    if offsets:
        scores = {name: None if score is None else _sigmoid(logit(score) - offsets.get(name, 0.0))
                  for name, score in scores.items()}
    return scores


def _share(yes: float, no: float) -> float | None:
    return float(yes / (yes + no)) if yes + no > 0 else None


def logit(score):
    """log-odds of a score, clipped to [1e-6, 1 - 1e-6] first (a missing box scores 0)."""
    score = np.clip(score, 1e-6, 1 - 1e-6)
    return np.log(score / (1 - score))


def _sigmoid(value: float) -> float:
    return float(1 / (1 + math.exp(-value)))


class _Signal:
    """One on/off signal: hysteresis on a score, then debouncing into runs (start, end) in seconds.

    A sample taken at `time_s` stands for the half step around it (clipped at 0): the best guess for
    where a state that began between two frames began. A run begins at its first active sample and
    ends where its last one ends; inactive stretches of up to `max_gap_s` inside it are bridged.
    A run is reported when it is over (`max_gap_s` after its last active sample) if it lasted `min_s`.
    """

    def __init__(self, on: float, off: float, min_s: float, max_gap_s: float):
        self.on, self.off, self.min_s, self.max_gap_s = on, off, min_s, max_gap_s
        self.high = False  # hysteresis state, kept through samples where the score is unknown
        self.active = False  # the last sample counted as on
        self.run: list[float] | None = None  # [start, end] of the run in progress

    def update(self, time_s: float, step_s: float, score: float | None) -> tuple[float, float] | None:
        """Feed one sample (score None = not seen: no evidence, so not active). Returns a run that ended."""
        if score is not None:
            self.high = score >= self.on or (self.high and score >= self.off)
        self.active = self.high and score is not None
        if self.active:
            if self.run is None:
                self.run = [max(time_s - step_s / 2, 0.0), 0.0]
            self.run[1] = time_s + step_s / 2
        elif self.run is not None and time_s + step_s / 2 - self.run[1] > self.max_gap_s + _EPS:
            return self.finish()
        return None

    def finish(self) -> tuple[float, float] | None:
        """Close the run in progress; returns it if it lasted `min_s`."""
        run, self.run = self.run, None
        if run is None or run[1] - run[0] < self.min_s - _EPS:
            return None
        return run[0], run[1]

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


class DriverStateMonitor:
    """Streaming driver state: `update` once per frame, in order, then `finish` once at the end.

    Memory stays bounded by one PERCLOS window of per-frame eye states, however long the stream.
    offsets: per-signal log-odds offsets from `calibrate` (see `frame_scores`); None uses the raw scores.
    """

    def __init__(self, config: MonitorConfig | None = None, fps: float = 15.0,
                 offsets: dict[str, float] | None = None):
        config = config or MonitorConfig()
        config.check()
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        c = self.config = config
        self.fps, self.step = float(fps), 1.0 / fps
        self.offsets = offsets  # per-signal score calibration (`calibrate`), None: the detector's own scores
        self.signals = {
            "eyes_closed": _Signal(c.eyes_closed_on, c.eyes_closed_off, c.min_state_s, c.eyes_max_gap_s),
            "mouth_open": _Signal(c.mouth_open_on, c.mouth_open_off, c.min_state_s, c.mouth_max_gap_s),
            "phone": _Signal(c.phone_on, c.phone_off, c.min_state_s, c.phone_max_gap_s),
            "cigarette": _Signal(c.cigarette_on, c.cigarette_off, c.min_state_s, c.cigarette_max_gap_s),
        }
        self.window = _PerclosWindow(max(round(c.perclos_window_s * fps), 1),
                                     max(math.ceil(c.perclos_min_window_s * fps - _EPS), 1))
        # The same PERCLOS values twice: dated by the window's end for the live alarm, by its centre for the event.
        drowsy = (c.drowsy_perclos_on, c.drowsy_perclos_off, c.drowsy_min_s, c.drowsy_max_gap_s)
        self.drowsy_live, self.drowsy = _Signal(*drowsy), _Signal(*drowsy)
        self.events: list[Event] = []
        self.blink_ends: deque[float] = deque()  # end times of the blinks in the PERCLOS window
        self.last_index = -1
        self.stats = {"frames": 0, "blinks": 0, "eyes_unseen": 0, "perclos_max": 0.0, "perclos_sum": 0.0,
                      "perclos_frames": 0, "longest_closure_s": 0.0}

    def update(self, frame_index: int, detections) -> FrameState:
        """Take one frame's detections ([n, 6] x1, y1, x2, y2, score, class_id; as `frame_scores` takes them).

        frame_index: position in the stream (time = frame_index / fps), increasing.
        """
        if frame_index <= self.last_index:
            raise ValueError(f"frame_index must increase: {frame_index} after {self.last_index}")
        self.last_index = frame_index
        time_s = frame_index / self.fps
        scores = frame_scores(detections, self.config.min_score, self.offsets)
        ended = []
        for name, signal in self.signals.items():
            run = signal.update(time_s, self.step, scores[name])
            if run is not None:
                ended += self._signal_events(name, run)
        eyes = self.signals["eyes_closed"]
        self.window.push(-1 if scores["eyes_closed"] is None else int(eyes.active))
        perclos = self.window.perclos()
        self.drowsy_live.update(time_s, self.step, perclos)  # its runs are the live alarm, not events
        ended += self._drowsy_sample(perclos)
        self._count(scores, perclos)
        self.events += ended
        return FrameState(
            index=frame_index, time_s=time_s, scores=scores,
            states={name: signal.on_now for name, signal in self.signals.items()},
            perclos=perclos, blink_rate=self._blink_rate(time_s),
            closure_s=eyes.duration if eyes.on_now else 0.0,
            alerts=self._alerts(), ended=tuple(ended),
        )

    def finish(self) -> list[Event]:
        """End of stream: close every run in progress (the PERCLOS windows shrink to the last
        `perclos_min_window_s`, mirroring how they grew at the start). Returns all events, by start."""
        while self.window.codes and self.window.perclos() is not None:
            self.window.pop()
            self.events += self._drowsy_sample(self.window.perclos())
        run = self.drowsy.finish()
        if run is not None:
            self.events.append(Event("drowsy", *run))
        for name, signal in self.signals.items():
            run = signal.finish()
            if run is not None:
                self.events += self._signal_events(name, run)
        return sorted(self.events, key=lambda e: (e.start, e.type))

    def metrics(self) -> dict:
        """Clip-level numbers: frames, seconds, perclos_max / perclos_mean (trailing window), blinks,
        blinks_per_min, longest_closure_s, yawns, eyes_unseen_share, and per alert type its event count."""
        s = self.stats
        seconds = s["frames"] / self.fps
        longest = max(s["longest_closure_s"], self.signals["eyes_closed"].duration)
        counts = {f"{kind}_events": sum(e.type == kind for e in self.events) for kind in ALERT_TYPES}
        return {
            "frames": s["frames"], "seconds": seconds, "perclos_max": s["perclos_max"],
            "perclos_mean": s["perclos_sum"] / s["perclos_frames"] if s["perclos_frames"] else None,
            "blinks": s["blinks"], "blinks_per_min": s["blinks"] / seconds * 60 if seconds else 0.0,
            "longest_closure_s": longest, "yawns": counts["yawn_events"],
            "eyes_unseen_share": s["eyes_unseen"] / s["frames"] if s["frames"] else 0.0, **counts,
        }

    def _signal_events(self, name: str, run: tuple[float, float]) -> list[Event]:
        start, end = run
        duration = end - start
        if name == "eyes_closed":
            self.stats["longest_closure_s"] = max(self.stats["longest_closure_s"], duration)
            if duration >= self.config.microsleep_s - _EPS:
                return [Event("microsleep", start, end)]
            if duration <= self.config.blink_max_s + _EPS:
                self.stats["blinks"] += 1
                self.blink_ends.append(end)
                return [Event("blink", start, end)]
            return []  # a long closure: PERCLOS counts it, no event of its own
        kind, min_key = SIGNAL_EVENTS[name]
        return [Event(kind, start, end)] if duration >= getattr(self.config, min_key) - _EPS else []

    def _drowsy_sample(self, perclos: float | None) -> list[Event]:
        run = self.drowsy.update(self.window.centre_s(self.fps), self.step, perclos)
        return [Event("drowsy", *run)] if run is not None else []

    def _blink_rate(self, time_s: float) -> float | None:
        span = min(time_s + self.step, self.config.perclos_window_s)
        while self.blink_ends and self.blink_ends[0] < time_s + self.step - span:
            self.blink_ends.popleft()
        if span < self.config.perclos_min_window_s - _EPS:
            return None
        return len(self.blink_ends) / span * 60

    def _alerts(self) -> tuple[str, ...]:
        c, s = self.config, self.signals
        alerts = [
            ("microsleep", s["eyes_closed"].duration >= c.microsleep_s - _EPS),
            ("drowsy", self.drowsy_live.on_now),
            ("yawn", s["mouth_open"].duration >= c.yawn_min_s - _EPS),
            ("phone", s["phone"].duration >= c.phone_min_s - _EPS),
            ("smoking", s["cigarette"].duration >= c.smoking_min_s - _EPS),
        ]
        return tuple(kind for kind, on in alerts if on)

    def _count(self, scores: dict, perclos: float | None) -> None:
        s = self.stats
        s["frames"] += 1
        s["eyes_unseen"] += scores["eyes_closed"] is None
        if perclos is not None:
            s["perclos_max"] = max(s["perclos_max"], perclos)
            s["perclos_sum"] += perclos
            s["perclos_frames"] += 1
