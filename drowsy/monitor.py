"""Driver-state monitor: per-frame detections -> eye, mouth, phone and cigarette states -> drowsiness
and distraction events with start and end times.

Definitions follow driver-monitoring practice (solution.md, "What peers do"; every default is in
data/monitor.yaml with its source):
- eyes closed continuously for `microsleep_s` (2 s) or more is a microsleep; a closure of at most
  `blink_max_s` is a blink (not an alert); closures in between count towards PERCLOS only;
- PERCLOS is the share of time the eyes are closed over a `perclos_window_s` (60 s) window; the driver
  is drowsy while it stays above `drowsy_perclos_on` (0.15);
- a yawn is the mouth open for `yawn_min_s` (1 s) or more; phone use and smoking are a phone or a
  cigarette present for at least `phone_min_s` / `smoking_min_s`.

Each signal goes score -> hysteresis -> debouncing: a per-frame score in [0, 1] (None when the eyes or
the mouth are not seen) switches the signal on at `*_on` and off below `*_off`; dropouts up to
`*_max_gap_s` inside a run are bridged and runs shorter than `min_state_s` are flicker. Events carry
the times where their evidence began and ended, not when it became conclusive: the live alerts in
`FrameState` fire when it does (a microsleep 2 s into the closure). A drowsy event is dated by the
centres of the windows whose PERCLOS passes the threshold, so it covers the drowsy minutes themselves
instead of lagging them by half a window as the trailing (live) PERCLOS does.

`DriverStateMonitor` is the streaming core (numpy only; memory bounded by one PERCLOS window);
`run_monitor` drives it from a video, a folder of frames or a camera, with a detector or with a clip's
ground-truth boxes, and writes events.json, timeline.png/.csv and annotated.mp4.
"""

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from drowsy import CLASS_IDS, CLASSES
from drowsy.clips import Event
from drowsy.config import Params
from drowsy.errors import DrowsyError
from drowsy.events import load_events, score_events, write_events
from drowsy.labels import read_json
from drowsy.paths import resolve

SIGNALS = ("eyes_closed", "mouth_open", "phone", "cigarette")
ALERT_TYPES = ("microsleep", "drowsy", "yawn", "phone", "smoking")
# Event made from a finished run of a signal, and the config key of its minimum duration.
# (The eyes are special: one run is a blink, a microsleep or neither, by its length.)
SIGNAL_EVENTS = {"mouth_open": ("yawn", "yawn_min_s"), "phone": ("phone", "phone_min_s"),
                 "cigarette": ("smoking", "smoking_min_s")}
MAX_DETECTIONS = 50  # per frame: one driver has a face, two eyes, a mouth, a phone, a cigarette
FOLDER_FPS = 15.0  # frame rate assumed for a folder of images when none is given (the demo clips')
_EPS = 1e-6  # seconds: frame times are products of float steps


@dataclasses.dataclass(frozen=True)
class MonitorConfig(Params):
    """Thresholds of the driver-state monitor (data/monitor.yaml cites the source of each default).

    Scores are in [0, 1], durations and windows in seconds. Per signal, `*_on` / `*_off` are the
    hysteresis thresholds of its per-frame score and `*_max_gap_s` the longest dropout that does not
    end a run of it.
    """

    min_score: float = 0.05
    min_state_s: float = 0.1
    eyes_closed_on: float = 0.6
    eyes_closed_off: float = 0.4
    eyes_max_gap_s: float = 0.2
    blink_max_s: float = 0.5
    microsleep_s: float = 2.0
    perclos_window_s: float = 60.0
    perclos_min_window_s: float = 20.0
    drowsy_perclos_on: float = 0.15
    drowsy_perclos_off: float = 0.12
    drowsy_min_s: float = 5.0
    drowsy_max_gap_s: float = 5.0
    mouth_open_on: float = 0.6
    mouth_open_off: float = 0.4
    mouth_max_gap_s: float = 0.3
    yawn_min_s: float = 1.0
    phone_on: float = 0.5
    phone_off: float = 0.3
    phone_max_gap_s: float = 1.0
    phone_min_s: float = 2.0
    cigarette_on: float = 0.5
    cigarette_off: float = 0.3
    cigarette_max_gap_s: float = 1.5
    smoking_min_s: float = 2.0

    @classmethod
    def from_dict(cls, values: dict, source: str = "monitor config"):
        config = super().from_dict(values, source)
        config.check(source)
        return config

    def check(self, source: str = "monitor config") -> None:
        """Raise DrowsyError naming `source` and the first field whose value makes no sense."""
        for field, reason in self._problems():
            raise DrowsyError(f"{source}: field '{field}': {reason}")

    def _problems(self):
        for prefix in ("eyes_closed", "mouth_open", "phone", "cigarette", "drowsy_perclos"):
            on, off = getattr(self, f"{prefix}_on"), getattr(self, f"{prefix}_off")
            if not 0 <= off <= on <= 1:
                yield f"{prefix}_off", f"need 0 <= {prefix}_off <= {prefix}_on <= 1, got {off} and {on}"
        if not 0 <= self.min_score < 1:
            yield "min_score", f"must be in [0, 1), got {self.min_score}"
        for field in dataclasses.fields(self):
            if field.name.endswith("_s") and getattr(self, field.name) < 0:
                yield field.name, f"must be >= 0 seconds, got {getattr(self, field.name)}"
        if not self.min_state_s <= self.blink_max_s <= self.microsleep_s:
            yield "blink_max_s", (f"need min_state_s <= blink_max_s <= microsleep_s, got {self.min_state_s}, "
                                  f"{self.blink_max_s}, {self.microsleep_s}")
        if not 0 < self.perclos_min_window_s <= self.perclos_window_s:
            yield "perclos_min_window_s", (f"need 0 < perclos_min_window_s <= perclos_window_s, got "
                                           f"{self.perclos_min_window_s} and {self.perclos_window_s}")


@dataclasses.dataclass(frozen=True)
class DriverMonitorParams(Params):
    """Parameters of notebooks/06_driver_monitor.ipynb."""

    weights_dir: str = "weights/demo"
    prepared_dir: str = "data/prepared/demo"
    out_dir: str = "outputs/demo"
    clip_seconds: float = 90.0
    clip_fps: float = 15.0
    seed: int = 0
    monitor_img_size: int = 416
    monitor_config: str = "data/monitor.yaml"
    backend: str = "torch"

    def __post_init__(self):
        if self.backend not in ("torch", "onnx"):
            raise DrowsyError(f"parameters: field 'backend' must be 'torch' or 'onnx', got {self.backend!r}")
        if not (self.clip_seconds > 0 and self.clip_fps > 0 and self.monitor_img_size > 0):
            raise DrowsyError("parameters: fields 'clip_seconds', 'clip_fps', 'monitor_img_size' must be > 0, got "
                              f"{self.clip_seconds}, {self.clip_fps}, {self.monitor_img_size}")


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

    detections: [n, 6] (x1, y1, x2, y2, score, class_id with CLASSES ids), a torch tensor or an array;
    detections scoring under `min_score` are ignored. eyes_closed = c / (c + o) of the best eye_closed
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
        scores = {name: None if score is None else _sigmoid(_logit(score) - offsets.get(name, 0.0))
                  for name, score in scores.items()}
    return scores


def _share(yes: float, no: float) -> float | None:
    return float(yes / (yes + no)) if yes + no > 0 else None


def _logit(score):
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
        """Take one frame's detections ([n, 6] x1, y1, x2, y2, score, class_id; tensor or array).

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


# ------------------------------------------------------------------------------ sources and detections


def truth_detections(frames_json: str | Path) -> tuple[list[np.ndarray], float]:
    """A clip's ground-truth boxes (frames.json of `drowsy.clips.write_clip`) as perfect detections.

    Returns (per frame float32 [n, 6]: x1, y1, x2, y2 pixels, score 1, class_id; the clip's fps).
    """
    path = resolve(frames_json)
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("frames"), list) or "fps" not in document:
        raise DrowsyError(f"{path}: field 'frames': expected {{\"fps\", \"frames\": [...]}} "
                          "as written by drowsy synth --video")
    detections = []
    for i, frame in enumerate(document["frames"]):
        rows = []
        for obj in frame.get("objects", []):
            if obj.get("class") not in CLASS_IDS:
                raise DrowsyError(f"{path}: record {i}: field 'class': unknown class {obj.get('class')!r}")
            rows.append([*obj["position"], 1.0, CLASS_IDS[obj["class"]]])
        detections.append(np.array(rows, np.float32).reshape(-1, 6))
    return detections, float(document["fps"])


class FrameSource:
    """Grayscale frames (uint8 [H, W]) from a video file, a folder of images or a camera index.

    Attributes: name, fps (frames per second), length (frames, None for a camera).
    Use as a context manager; `read()` returns the next frame or None at the end.
    """

    def __init__(self, source: str | int | Path, fps: float | None = None):
        import cv2

        self._cv2 = cv2
        self._capture, self._paths = None, None
        if isinstance(source, int) or str(source).isdigit():
            self._open_camera(int(source), fps)
            return
        path = resolve(source)
        if path.is_dir():
            from drowsy.predict import list_images

            self._paths = deque(list_images(path))
            self.name, self.fps, self.length = str(path), fps or FOLDER_FPS, len(self._paths)
            return
        if not path.is_file():
            raise DrowsyError(f"{path}: video not found")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise DrowsyError(f"{path}: not a readable video (OpenCV cannot open it)")
        self.name = str(path)
        self.fps = fps or self._capture.get(cv2.CAP_PROP_FPS) or FOLDER_FPS
        self.length = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def _open_camera(self, index: int, fps: float | None) -> None:
        logging = self._cv2.utils.logging
        level = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)  # a missing camera makes every backend log its own failure
        try:
            self._capture = self._cv2.VideoCapture(index)
        finally:
            logging.setLogLevel(level)
        if not self._capture.isOpened():
            self._capture.release()
            raise DrowsyError(f"camera {index}: not available (OpenCV cannot open it; check the index, "
                              "that it is plugged in and not used by another program)")
        self.name, self.length = f"camera {index}", None
        self.fps = fps or self._capture.get(self._cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray | None:
        if self._paths is not None:
            return self._read_image() if self._paths else None
        ok, frame = self._capture.read()
        if not ok:
            return None
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame

    def _read_image(self) -> np.ndarray:
        from drowsy.dataset import read_gray

        path = self._paths.popleft()
        image = read_gray(path)
        self._shape = getattr(self, "_shape", image.shape)
        if image.shape != self._shape:
            raise DrowsyError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels, but the first frame is "
                              f"{self._shape[1]}x{self._shape[0]}; frames of a stream share one size")
        return image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _frame_batches(source: FrameSource, batch: int, limit: int | None):
    """Lists of up to `batch` frames, decoded one batch ahead in a thread (OpenCV decoding releases
    the GIL, so it overlaps detection)."""

    def read_batch(count: int) -> list[np.ndarray]:
        frames = []
        while len(frames) < count and (frame := source.read()) is not None:
            frames.append(frame)
        return frames

    remaining = math.inf if limit is None else limit
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read_batch, min(batch, remaining))
        while True:
            frames = pending.result()
            remaining -= len(frames)
            if not frames:
                return
            pending = pool.submit(read_batch, min(batch, remaining))
            yield frames


def detect_frames(detector, frames: list[np.ndarray], img_size: int, conf: float, iou: float,
                  max_det: int = MAX_DETECTIONS) -> list:
    """Detections of equally sized frames through a rectangular letterbox.

    The long side is scaled to `img_size` (rounded up to the detector's stride) as in
    `Detector.detect`, but the short side is padded only up to the next stride multiple instead of to a
    square: a 16:9 frame at 320 becomes 320x192, 40 % less computation at the same scale (YOLOv5's
    "rect" inference). Needs a PyTorch detector or an ONNX one exported with dynamic axes.
    frames: uint8 [H, W]. Returns per frame float32 [n, 6] (x1, y1, x2, y2 original pixels, score, class_id).
    """
    import cv2
    import torch

    from drowsy.augment import FILL, Letterbox, resize_long_side
    from drowsy.postprocess import non_max_suppression
    from drowsy.predict import View, clip_candidates, fit_img_size, to_original_pixels

    size = fit_img_size(img_size, detector.stride)
    height, width = frames[0].shape[:2]
    resized = [resize_long_side(frame, size) for frame in frames]
    inner_h, inner_w = resized[0].shape[:2]
    net_h, net_w = fit_img_size(inner_h, detector.stride), fit_img_size(inner_w, detector.stride)
    left, top = (net_w - inner_w) // 2, (net_h - inner_h) // 2
    padded = np.stack([cv2.copyMakeBorder(image, top, net_h - inner_h - top, left, net_w - inner_w - left,
                                          cv2.BORDER_CONSTANT, value=FILL) for image in resized])
    pixels = torch.from_numpy(padded)[:, None].float().div_(255).expand(-1, detector.in_channels, -1, -1)
    geometry = Letterbox(size / max(height, width), (left, top))
    decoded = to_original_pixels(detector.raw_predictions(pixels).float(), View(size), [geometry] * len(frames))
    candidates = [clip_candidates(image[image[:, 4] > conf], (height, width)) for image in decoded]
    return [non_max_suppression(c[None], conf_thres=conf, iou_thres=iou, max_det=max_det)[0] for c in candidates]


def build_detector(weights: str | Path, backend: str = "torch", img_size: int = 416,
                   export_dir: str | Path | None = None):
    """A `drowsy.predict.Detector` for the monitor on the CPU.

    backend "torch": the checkpoint with bf16 autocast; "onnx": ONNX Runtime, on the .onnx given, or on
    an export of the checkpoint to `export_dir` (default: next to it) with dynamic batch and size.
    """
    from drowsy.predict import Detector

    weights = resolve(weights)
    if backend not in ("torch", "onnx"):
        raise DrowsyError(f"monitor: field 'backend': must be 'torch' or 'onnx', got {backend!r}")
    if backend == "torch" or weights.suffix.lower() == ".onnx":
        return Detector(weights, device="cpu", amp=backend == "torch")
    from drowsy.export import export_onnx

    if not weights.is_file():
        raise DrowsyError(f"{weights}: weights not found")
    onnx_path = resolve(export_dir or weights.parent) / f"{weights.stem}.dynamic.onnx"
    if not onnx_path.is_file() or onnx_path.stat().st_mtime < weights.stat().st_mtime:
        export_onnx(weights, onnx_path, img_size=img_size, dynamic=True)
    return Detector(onnx_path)


# ------------------------------------------------------------------------------ calibration

# The classes whose boxes make each signal's true state in a labelled image (yes, no).
SIGNAL_CLASSES = {"eyes_closed": ("eye_closed", "eye_opened"), "mouth_open": ("mouth_opened", "mouth_closed"),
                  "phone": ("phone", None), "cigarette": ("cigar", None)}


def image_states(objects: list[dict]) -> dict[str, bool | None]:
    """True per-signal state of a labelled image (objects as in labels.json): eyes / mouth None when
    not labelled or labelled both ways (one eye open, one closed); phone, cigarette: any such box."""
    names = [obj["class"] for obj in objects]
    states = {}
    for signal, (yes, no) in SIGNAL_CLASSES.items():
        if no is None:
            states[signal] = yes in names
        else:
            has_yes, has_no = yes in names, no in names
            states[signal] = has_yes if has_yes != has_no else None
    return states


def fit_offset(logits: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The boundary on `logits` that best separates `positive` from the rest: (offset, balanced accuracy).

    Balanced accuracy (mean of the true-positive and true-negative rates) weighs both states equally
    however rare one is. Of the equally good boundaries, the middle of their range: the widest margin.
    """
    logits, positive = np.asarray(logits, np.float64), np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise ValueError("fit_offset needs both states among the samples")
    order = np.argsort(logits, kind="stable")
    values, labels = logits[order], positive[order]
    distinct = np.flatnonzero(np.diff(values) > 0)  # boundary between values[k] and values[k + 1]
    candidates = np.concatenate([[-1], distinct, [len(values) - 1]])  # k = -1: everything counts as positive
    true_negatives = np.concatenate([[0], np.cumsum(~labels)])[candidates + 1]
    true_positives = labels.sum() - np.concatenate([[0], np.cumsum(labels)])[candidates + 1]
    balanced = (true_positives / labels.sum() + true_negatives / (~labels).sum()) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    below = values[candidates[best[0]]] if candidates[best[0]] >= 0 else values[0] - 1.0
    above = values[candidates[best[-1]] + 1] if candidates[best[-1]] + 1 < len(values) else values[-1] + 1.0
    return float((below + above) / 2), float(balanced.max())


def calibrate(detector, split: str | Path, config: MonitorConfig | None = None, img_size: int = 416,
              iou: float = 0.7, batch: int = 8, progress: bool = True) -> dict:
    """Fit each signal's log-odds offset (see `frame_scores`) on a labelled split of `drowsy prepare`.

    A detector's class scores are not a calibrated vote between classes: trained on the natural class
    balance, a 20-epoch demo model gave a closed eye eye_closed ~0.2 and eye_opened ~0.5, so c / (c + o)
    never passed 0.5 although the two scores ranked closed eyes almost perfectly (eye_closed AP 0.93). The
    offset moves each signal's 0.5 to the boundary that best separates the split's images by their
    labelled state (`fit_offset`); the on/off thresholds of the config then sit around it.
    Returns {"split", "img_size", "min_score", "signals": {signal: {"offset", "balanced_accuracy",
    "images", "positives", "fitted", "logits", "states"}}}: per signal the images where both the truth
    and the score are known, their raw log-odds and true states (for `plot_calibration`); a signal with
    one state only in the split keeps offset 0 ("fitted": false).
    """
    from tqdm import tqdm

    from drowsy.dataset import read_gray
    from drowsy.labels import load_manifest

    config = config or MonitorConfig()
    manifest = load_manifest(split)
    samples = {signal: ([], []) for signal in SIGNALS}  # per signal: raw logits, true states
    records = manifest.records
    with tqdm(total=len(records), desc="calibrate", unit="img", disable=not progress) as bar:
        for start in range(0, len(records), batch):
            chunk = records[start:start + batch]
            images = [read_gray(manifest.image_root / record["file_name"]) for record in chunk]
            for same in _same_shape_runs(images):  # detect_frames letterboxes one shape at a time
                detections = detect_frames(detector, [images[i] for i in same], img_size, config.min_score, iou)
                for i, frame_detections in zip(same, detections):
                    scores, truth = frame_scores(frame_detections, config.min_score), image_states(chunk[i]["objects"])
                    for signal, (logits, states) in samples.items():
                        if scores[signal] is not None and truth[signal] is not None:
                            logits.append(float(_logit(scores[signal])))
                            states.append(truth[signal])
            bar.update(len(chunk))
    signals = {}
    for signal, (logits, states) in samples.items():
        fitted = 0 < sum(states) < len(states)
        offset, balanced = fit_offset(logits, states) if fitted else (0.0, None)
        signals[signal] = {"offset": offset, "balanced_accuracy": balanced, "images": len(states),
                           "positives": int(sum(states)), "fitted": fitted,
                           "logits": [round(v, 4) for v in logits], "states": states}
    return {"split": str(manifest.path), "img_size": img_size, "min_score": config.min_score, "signals": signals}


def _same_shape_runs(images: list[np.ndarray]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, image in enumerate(images):
        if runs and images[runs[-1][0]].shape == image.shape:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def calibration_offsets(calibration: dict) -> dict[str, float]:
    """The per-signal offsets of `calibrate`'s result, as `frame_scores` and `run_monitor` take them."""
    return {signal: entry["offset"] for signal, entry in calibration["signals"].items()}


def write_calibration(calibration: dict, path: str | Path) -> Path:
    """Write `calibrate`'s result as JSON (`load_offsets` reads it back); returns the path."""
    path = resolve(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration))
    return path


def load_offsets(path: str | Path, img_size: int) -> dict[str, float]:
    """The per-signal offsets of a calibration.json (`drowsy monitor --calibrate` writes one), fitted at
    `img_size`: scores change with the input size, so offsets from another size are refused."""
    path = resolve(path)
    document = read_json(path)
    if isinstance(document, dict) and document.get("img_size") != img_size:
        raise DrowsyError(f"{path}: field 'img_size': calibrated at {document.get('img_size')} pixels, "
                          f"the monitor runs at {img_size}; calibrate again at this size")
    signals = document.get("signals") if isinstance(document, dict) else None
    if not isinstance(signals, dict):
        raise DrowsyError(f"{path}: field 'signals': expected a mapping of signal -> {{\"offset\": ...}}")
    offsets = {}
    for signal, entry in signals.items():
        if signal not in SIGNALS:
            raise DrowsyError(f"{path}: record '{signal}': unknown signal (have {', '.join(SIGNALS)})")
        offset = entry.get("offset") if isinstance(entry, dict) else None
        if not isinstance(offset, (int, float)) or not math.isfinite(offset):
            raise DrowsyError(f"{path}: record '{signal}': field 'offset': expected a finite number, got {offset!r}")
        offsets[signal] = float(offset)
    return offsets


# ------------------------------------------------------------------------------ the runner


def run_monitor(source, detector=None, out_dir: str | Path = "outputs/monitor", config: MonitorConfig | None = None, *,
                truth_frames: str | Path | None = None, truth_events: str | Path | None = None,
                fps: float | None = None, img_size: int = 416, iou: float = 0.7, batch: int = 4,
                threads: int | None = 1, annotate: bool = True, max_frames: int | None = None,
                offsets: dict[str, float] | None = None, progress: bool = True) -> dict:
    """Monitor a video file, a folder of frames or a camera index and write the results to `out_dir`.

    detector: a `drowsy.predict.Detector` (see `build_detector`), run at `img_size` on batches of
    `batch` frames; or None with `truth_frames` (a clip's frames.json) to feed the ground-truth boxes
    instead, which scores the state machine apart from the model (`source` may then be None: no video).
    offsets: per-signal score calibration of the detector (`calibrate`, `load_offsets`); None: raw scores.
    truth_events: the clip's events.json, to score against. fps: frame rate when the source has none
    (folders: default 15). A camera runs until Ctrl-C or `max_frames`. threads: PyTorch intra-op
    threads during the run (restored afterwards; None keeps PyTorch's setting). One by default: the
    decoding thread has the other core, and one compute thread keeps its pace when other processes
    share the CPU, where several OpenMP threads stall waiting on each other (2-core machine under load:
    124 frames/s with 1 thread, 7.5 with 2; benchmarks/monitor_speed.py).
    Writes events.json (the truth's schema), timeline.csv (per-frame scores, states, PERCLOS, alerts),
    timeline.png and, with `annotate` and a source, annotated.mp4 (boxes, states, alerts).
    Returns a summary: source, backend, frames, fps (the stream's), fps_achieved (frames per wall-clock
    second, decoding to writing), offsets (the calibration used, or None), metrics
    (DriverStateMonitor.metrics), scores (with truth_events), files.
    """
    if (detector is None) == (truth_frames is None):
        raise DrowsyError("monitor: give exactly one of a detector (weights) or truth_frames (frames.json)")
    if source is None and detector is not None:
        raise DrowsyError("monitor: field 'source': a detector needs a video, a frames folder or a camera")
    if detector is not None and tuple(detector.class_names) != CLASSES:
        raise DrowsyError(f"{detector.weights}: field 'class_names': {list(detector.class_names)}, "
                          f"the monitor needs {list(CLASSES)}")
    config = config or MonitorConfig.from_yaml("data/monitor.yaml")
    out_dir = resolve(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth, truth_fps = truth_detections(truth_frames) if truth_frames is not None else (None, None)
    true_events = load_events(truth_events) if truth_events is not None else None
    source = FrameSource(source, fps or truth_fps) if source is not None else None
    stream_fps = source.fps if source is not None else truth_fps
    with source or contextlib.nullcontext(), _torch_threads(threads):
        started = time.perf_counter()
        monitor, records = DriverStateMonitor(config, stream_fps, offsets), []
        annotated = out_dir / "annotated.mp4" if annotate and source is not None else None
        frames = _monitor_loop(monitor, records, source, detector, truth, annotated, img_size, iou, batch,
                               max_frames, progress)
        events = monitor.finish()
        seconds = time.perf_counter() - started
    name = source.name if source is not None else str(resolve(truth_frames))
    if frames == 0:
        raise DrowsyError(f"{name}: no frames could be read")
    return _write_results(out_dir, monitor, records, events, frames, seconds, stream_fps, true_events, annotated,
                          name, _backend_name(detector))


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _backend_name(detector) -> str:
    if detector is None:
        return "ground truth"
    if detector.backend == "onnx":
        return "onnxruntime fp32"
    return "pytorch bf16 autocast" if detector.amp else "pytorch fp32"


def _monitor_loop(monitor, records, source, detector, truth, annotated, img_size, iou, batch, max_frames,
                  progress) -> int:
    """Feed every frame to the monitor (and the annotated video); returns the number of frames."""
    from tqdm import tqdm  # plain text bars: papermill keeps them readable in the executed notebook

    limits = [n for n in (None if truth is None else len(truth), max_frames) if n is not None]
    limit = min(limits) if limits else None  # frames to read (a video's own count can be approximate)
    writer, index = None, 0
    bar = tqdm(total=limit or source.length, desc="monitor", unit="frame", disable=not progress)
    batches = (_frame_batches(source, batch, limit) if source is not None
               else ([None] * min(batch, limit - i) for i in range(0, limit, batch)))
    try:
        for frames in batches:
            detections = (truth[index:index + len(frames)] if truth is not None else
                          detect_frames(detector, frames, img_size, monitor.config.min_score, iou))
            for frame, frame_detections in zip(frames, detections):
                state = monitor.update(index, frame_detections)
                records.append(_record(state))
                if annotated is not None:
                    writer = writer or _open_writer(annotated, frame.shape, monitor.fps)
                    writer.write(draw_frame(frame, frame_detections, state))
                index += 1
            bar.update(len(frames))
    except KeyboardInterrupt:  # a camera runs until stopped; what was seen is still written
        print("monitor: interrupted, writing what was seen", file=sys.stderr)
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    return index


def _open_writer(path: Path, shape: tuple[int, int], fps: float):
    import cv2

    height, width = shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height), isColor=True)
    if not writer.isOpened():
        raise OSError(f"{path}: cv2.VideoWriter cannot write 'mp4v'")
    return writer


def _record(state: FrameState) -> dict:
    """One timeline.csv row: time, per signal score (NaN = not seen) and state, PERCLOS, alerts."""
    row = {"index": state.index, "time_s": state.time_s}
    for name in SIGNALS:
        score = state.scores[name]
        row[f"{name}_score"] = math.nan if score is None else score
        row[name] = state.states[name]
    row["perclos"] = math.nan if state.perclos is None else state.perclos
    row["blink_rate"] = math.nan if state.blink_rate is None else state.blink_rate
    row["closure_s"] = state.closure_s
    row["alerts"] = " ".join(state.alerts)
    return row


def _write_results(out_dir: Path, monitor: DriverStateMonitor, records: list[dict], events: list[Event], frames: int,
                   seconds: float, fps: float, truth: list[Event] | None, annotated: Path | None, name: str,
                   backend: str) -> dict:
    import matplotlib.pyplot as plt
    import pandas as pd

    timeline = pd.DataFrame(records)
    timeline.to_csv(out_dir / "timeline.csv", index=False)
    events_path = write_events(out_dir / "events.json", events, fps, frames)
    figure = plot_timeline(timeline, events, truth, monitor.config)
    figure.savefig(out_dir / "timeline.png", dpi=100)
    plt.close(figure)
    summary = {
        "source": name, "backend": backend, "frames": frames, "fps": fps,
        "fps_achieved": frames / seconds if seconds > 0 else 0.0, "offsets": monitor.offsets,
        "metrics": monitor.metrics(),
        "files": {"events": str(events_path), "timeline": str(out_dir / "timeline.png"),
                  "timeline_csv": str(out_dir / "timeline.csv")},
    }
    if annotated is not None:
        summary["files"]["annotated"] = str(annotated)
    if truth is not None:
        summary["scores"] = score_events(events, truth)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ------------------------------------------------------------------------------ drawing

# BGR colours per class id: open things green/cyan, closed eyes red, phone/cigarette magenta/yellow.
CLASS_COLOURS = ((80, 200, 80), (60, 60, 240), (0, 160, 255), (200, 200, 0), (200, 200, 200), (220, 60, 220),
                 (0, 230, 230))
DRAW_MIN_SCORE = 0.25  # boxes drawn in the annotated video; weaker ones still count for the states
ALERT_LABELS = {"microsleep": "MICROSLEEP", "drowsy": "DROWSY", "yawn": "YAWN", "phone": "PHONE", "smoking": "SMOKING"}


def draw_frame(gray: np.ndarray, detections, state: FrameState) -> np.ndarray:
    """The frame in colour (uint8 [H, W, 3] BGR) with its boxes scoring DRAW_MIN_SCORE or more (xyxy
    pixels), the driver state at the top and the active alerts on a red band at the bottom."""
    import cv2

    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if hasattr(detections, "cpu"):
        detections = detections.detach().cpu()
    for x1, y1, x2, y2, score, class_id in np.asarray(detections, np.float32).reshape(-1, 6).tolist():
        if score < DRAW_MIN_SCORE:
            continue
        colour = CLASS_COLOURS[int(class_id)]
        cv2.rectangle(image, (round(x1), round(y1)), (round(x2), round(y2)), colour, 1)
        cv2.putText(image, f"{CLASSES[int(class_id)]} {score:.2f}", (round(x1), max(round(y1) - 3, 8)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    for row, text in enumerate(_state_lines(state)):
        _text(image, text, (6, 16 + 18 * row), (255, 255, 255))
    if state.alerts:
        height, width = image.shape[:2]
        cv2.rectangle(image, (0, height - 26), (width, height), (0, 0, 200), -1)
        _text(image, "  ".join(ALERT_LABELS[a] for a in state.alerts), (8, height - 8), (255, 255, 255))
    return image


def _state_lines(state: FrameState) -> list[str]:
    eyes = ("unseen" if state.scores["eyes_closed"] is None else
            f"closed {state.closure_s:.1f} s" if state.states["eyes_closed"] else "open")
    mouth = ("unseen" if state.scores["mouth_open"] is None else
             "open" if state.states["mouth_open"] else "closed")
    perclos = "--" if state.perclos is None else f"{state.perclos:.0%}"
    blinks = "--" if state.blink_rate is None else f"{state.blink_rate:.0f}/min"
    return [f"t {state.time_s:6.1f} s  eyes {eyes}  mouth {mouth}",
            f"PERCLOS {perclos}  blinks {blinks}" + "  phone" * state.states["phone"]
            + "  cigarette" * state.states["cigarette"]]


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text with a dark outline, readable on any background."""
    import cv2

    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def plot_timeline(timeline, events: list[Event], truth: list[Event] | None = None,
                  config: MonitorConfig | None = None):
    """Figure of a monitored clip over time: per signal its score (dots) and debounced state (shaded),
    PERCLOS (live: trailing window; dashed: the same windows dated by their centres, as drowsy events
    are) with the drowsy threshold, and the events (solid) over the truth (hatched, when given).

    timeline: DataFrame of timeline.csv rows (`run_monitor`). Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    config = config or MonitorConfig()
    figure, axes = plt.subplots(6, 1, figsize=(12, 10), sharex=True,
                                gridspec_kw={"height_ratios": [1, 1, 1, 1, 1.4, 2]})
    time_s = timeline["time_s"].to_numpy()
    labels = {"eyes_closed": "eyes closed", "mouth_open": "mouth open", "phone": "phone", "cigarette": "cigarette"}
    for axis, name in zip(axes, SIGNALS):
        axis.fill_between(time_s, 0, timeline[name].astype(float), step="post", color="tab:red", alpha=0.25,
                          linewidth=0, label="state")
        axis.plot(time_s, timeline[f"{name}_score"], ".", markersize=2, color="black", label="score")
        axis.set_ylim(-0.05, 1.05)
        axis.set_ylabel(labels[name], rotation=0, ha="right", va="center")
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    _plot_perclos(axes[4], timeline, config)
    _plot_events(axes[5], events, truth)
    axes[5].set_xlabel("time (s)")
    axes[5].set_xlim(0, time_s[-1] + time_s[1] if len(time_s) > 1 else 1)
    figure.tight_layout()
    return figure


def _plot_perclos(axis, timeline, config: MonitorConfig) -> None:
    time_s = timeline["time_s"].to_numpy()
    step = time_s[1] - time_s[0] if len(time_s) > 1 else 1.0
    span = np.minimum(time_s, config.perclos_window_s - step)  # of the trailing window ending at each frame
    axis.plot(time_s, timeline["perclos"], color="tab:blue", label="PERCLOS (trailing window, live)")
    axis.plot(time_s - span / 2, timeline["perclos"], "--", color="tab:blue", alpha=0.6,
              label="same, at window centre")
    axis.axhline(config.drowsy_perclos_on, color="tab:red", linewidth=1, label="drowsy threshold")
    axis.set_ylabel("PERCLOS", rotation=0, ha="right", va="center")
    axis.set_ylim(0, max(0.5, float(np.nan_to_num(timeline["perclos"].max())) * 1.1))
    axis.legend(loc="upper left", fontsize=8, ncol=3)


def _plot_events(axis, events: list[Event], truth: list[Event] | None) -> None:
    kinds = ALERT_TYPES + ("blink",)
    colours = dict(zip(kinds, ("tab:red", "tab:orange", "tab:purple", "tab:green", "tab:brown", "tab:gray")))
    for row, kind in enumerate(kinds):
        spans = [(e.start, e.end - e.start) for e in events if e.type == kind]
        axis.broken_barh(spans, (row + 0.05, 0.4), color=colours[kind])
        if truth is not None:
            true_spans = [(e.start, e.end - e.start) for e in truth if e.type == kind]
            axis.broken_barh(true_spans, (row - 0.45, 0.4), facecolor="none", edgecolor=colours[kind], hatch="///")
    axis.set_yticks(range(len(kinds)), kinds)
    axis.set_ylim(-0.6, len(kinds) - 0.4)
    axis.set_ylabel("events\n(solid: found\nhatched: truth)" if truth is not None else "events",
                    rotation=0, ha="right", va="center")


def plot_calibration(calibration: dict):
    """Per signal, histograms of the raw log-odds on the calibration images by true state, with the
    fitted boundary (`calibrate`'s result). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(SIGNALS), figsize=(4 * len(SIGNALS), 3))
    for axis, signal in zip(axes, SIGNALS):
        entry = calibration["signals"][signal]
        # no box at all is log-odds -13.8; the plot clips at +-8 so the informative middle stays readable
        logits, states = np.clip(entry["logits"], -8, 8), np.asarray(entry["states"], bool)
        bins = np.linspace(logits.min(), logits.max(), 30) if len(logits) else 10
        yes, no = SIGNAL_CLASSES[signal]
        for chosen, label, colour in ((~states, f"no {yes}" if no is None else no, "tab:blue"),
                                      (states, yes, "tab:red")):
            axis.hist(logits[chosen], bins=bins, color=colour, alpha=0.6, label=f"{label} ({chosen.sum()})")
        axis.axvline(entry["offset"], color="black", linestyle="--", label=f"boundary {entry['offset']:.2f}")
        axis.axvline(0, color="gray", linewidth=0.8)
        axis.set_yscale("log")
        accuracy = "" if entry["balanced_accuracy"] is None else f", balanced acc. {entry['balanced_accuracy']:.3f}"
        axis.set_title(f"{signal}{accuracy}", fontsize=10)
        axis.set_xlabel("raw score, log-odds (clipped at ±8)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_event_frames(video: str | Path, events: list[Event], types=ALERT_TYPES, columns: int = 3):
    """One frame of `video` (annotated.mp4) per event type in `types`, from the end of its first event
    (a quarter second before it, when the live alert has had time to fire). Returns a matplotlib
    Figure; types without an event are left out."""
    import cv2
    import matplotlib.pyplot as plt

    chosen = [next((e for e in sorted(events, key=lambda e: e.start) if e.type == kind), None) for kind in types]
    chosen = [e for e in chosen if e is not None]
    rows = max(math.ceil(len(chosen) / columns), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3 * rows), squeeze=False)
    capture = cv2.VideoCapture(str(resolve(video)))
    fps = capture.get(cv2.CAP_PROP_FPS) or FOLDER_FPS
    for axis, event in zip(axes.flat, chosen):
        shown_s = max(event.end - 0.25, event.start)
        capture.set(cv2.CAP_PROP_POS_FRAMES, round(shown_s * fps))
        ok, frame = capture.read()
        if ok:
            axis.imshow(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        axis.set_title(f"{event.type} {event.start:.1f}-{event.end:.1f} s, frame at {shown_s:.1f} s", fontsize=10)
    capture.release()
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    return figure
