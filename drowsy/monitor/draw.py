"""Pictures of the monitor: an annotated video frame (boxes, state, alerts), the timeline of a
monitored clip, the calibration histograms and one frame per alert type."""

import math
from pathlib import Path

import numpy as np

from drowsy import CLASSES
from drowsy.config import MonitorConfig
from drowsy.monitor.attention import LEVEL_NAMES
from drowsy.monitor.calibration import SIGNAL_CLASSES
from drowsy.monitor.events import ALERT_EVENTS, Event
from drowsy.monitor.sources import FOLDER_FPS
from drowsy.monitor.state import CALIBRATED, SIGNALS, FrameState
from drowsy.paths import resolve

# BGR colours per class id: open things green/cyan, closed eyes red, phone/cigarette magenta/yellow.
CLASS_COLOURS = (
    (80, 200, 80),
    (60, 60, 240),
    (0, 160, 255),
    (200, 200, 0),
    (200, 200, 200),
    (220, 60, 220),
    (0, 230, 230),
)
DRAW_MIN_SCORE = 0.25  # boxes drawn in the annotated video; weaker ones still count for the states
BAND_COLOURS = ((0, 0, 0), (0, 140, 255), (0, 0, 220), (0, 0, 140))  # BGR per alert level: orange, red, dark red


def draw_frame(gray: np.ndarray, detections, state: FrameState) -> np.ndarray:
    """The frame in colour (uint8 [H, W, 3] BGR) with its boxes scoring DRAW_MIN_SCORE or more (xyxy
    pixels), the driver state at the top and the active alerts on a band at the bottom, coloured by the
    alert ladder's level (orange pre-alert, red prompt, dark red final alert)."""
    import cv2

    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if hasattr(detections, "cpu"):
        detections = detections.detach().cpu()
    for x1, y1, x2, y2, score, class_id in np.asarray(detections, np.float32).reshape(-1, 6).tolist():
        if score < DRAW_MIN_SCORE:
            continue
        colour = CLASS_COLOURS[int(class_id)]
        cv2.rectangle(image, (round(x1), round(y1)), (round(x2), round(y2)), colour, 1)
        cv2.putText(
            image,
            f"{CLASSES[int(class_id)]} {score:.2f}",
            (round(x1), max(round(y1) - 3, 8)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            colour,
            1,
            cv2.LINE_AA,
        )
    for row, text in enumerate(_state_lines(state)):
        _text(image, text, (6, 16 + 18 * row), (255, 255, 255))
    if state.alerts:
        height, width = image.shape[:2]
        cv2.rectangle(image, (0, height - 26), (width, height), BAND_COLOURS[max(state.level, 1)], -1)
        text = f"{LEVEL_NAMES[state.level].upper()}: " + "  ".join(a.upper() for a in state.alerts)
        _text(image, text, (8, height - 8), (255, 255, 255))
    return image


def _state_lines(state: FrameState) -> list[str]:
    eyes = (
        "unseen"
        if state.scores["eyes_closed"] is None
        else f"closed {state.closure_s:.1f} s"
        if state.states["eyes_closed"]
        else "open"
    )
    mouth = "unseen" if state.scores["mouth_open"] is None else "open" if state.states["mouth_open"] else "closed"
    perclos = "--" if state.perclos is None else f"{state.perclos:.0%}"
    blinks = "--" if state.blink_rate is None else f"{state.blink_rate:.0f}/min"
    pose = "--" if state.pose is None else f"yaw {state.pose[0]:+.0f} pitch {state.pose[1]:+.0f}"
    road = " off road" if state.states["eyes_off_road"] else ""
    return [
        f"t {state.time_s:6.1f} s  eyes {eyes}  mouth {mouth}",
        f"PERCLOS {perclos}  blinks {blinks}"
        + "  phone" * state.states["phone"]
        + "  cigarette" * state.states["cigarette"],
        f"head {pose}{road}",
    ]


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text with a dark outline, readable on any background."""
    import cv2

    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def plot_timeline(timeline, events: list[Event], truth: list[Event] | None = None, config: MonitorConfig | None = None):
    """Figure of a monitored clip over time: per signal its score (dots) and debounced state (shaded),
    the head pose (yaw, pitch) against the on-road region, PERCLOS (live: trailing window; dashed: the
    same windows dated by their centres, as drowsy events are) with the drowsy threshold, the alert
    ladder's level, and the events (solid) over the truth (hatched, when given).

    timeline: DataFrame of timeline.csv rows (`run_monitor`). Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    config = config or MonitorConfig()
    rows = len(SIGNALS)
    figure, axes = plt.subplots(
        rows + 4, 1, figsize=(12, 16), sharex=True, gridspec_kw={"height_ratios": [1] * rows + [1.6, 1.4, 0.8, 3.2]}
    )
    time_s = timeline["time_s"].to_numpy()
    for axis, name in zip(axes, SIGNALS):
        axis.fill_between(
            time_s,
            0,
            timeline[name].astype(float),
            step="post",
            color="tab:red",
            alpha=0.25,
            linewidth=0,
            label="state",
        )
        axis.plot(time_s, timeline[f"{name}_score"].clip(upper=1.5), ".", markersize=2, color="black", label="score")
        axis.set_ylim(-0.05, 1.55 if name == "eyes_off_road" else 1.05)
        axis.set_ylabel(name.replace("_", " "), rotation=0, ha="right", va="center")
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    _plot_pose(axes[rows], timeline, config)
    _plot_perclos(axes[rows + 1], timeline, config)
    axes[rows + 2].step(time_s, timeline["level"], where="post", color="tab:red")
    axes[rows + 2].set_yticks(range(4), LEVEL_NAMES, fontsize=7)
    axes[rows + 2].set_ylabel("alert level", rotation=0, ha="right", va="center")
    _plot_events(axes[-1], events, truth)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, time_s[-1] + time_s[1] if len(time_s) > 1 else 1)
    figure.tight_layout()
    return figure


def _plot_pose(axis, timeline, config: MonitorConfig) -> None:
    """Head yaw and pitch (degrees, against the driver's baseline) with the on-road region's edges."""
    time_s = timeline["time_s"].to_numpy()
    axis.plot(time_s, timeline["yaw"], color="tab:purple", linewidth=1, label="yaw (+ right)")
    axis.plot(time_s, timeline["pitch"], color="tab:olive", linewidth=1, label="pitch (+ down)")
    for limit, colour in (
        (config.yaw_limit, "tab:purple"),
        (-config.yaw_limit, "tab:purple"),
        (config.pitch_down_limit, "tab:olive"),
        (-config.pitch_up_limit, "tab:olive"),
    ):
        axis.axhline(limit, color=colour, linestyle=":", linewidth=0.8)
    axis.set_ylabel("head pose (deg)", rotation=0, ha="right", va="center")
    axis.set_ylim(-75, 75)
    axis.legend(loc="upper left", fontsize=8, ncol=2)


def _plot_perclos(axis, timeline, config: MonitorConfig) -> None:
    time_s = timeline["time_s"].to_numpy()
    step = time_s[1] - time_s[0] if len(time_s) > 1 else 1.0
    span = np.minimum(time_s, config.perclos_window_s - step)  # of the trailing window ending at each frame
    axis.plot(time_s, timeline["perclos"], color="tab:blue", label="PERCLOS (trailing window, live)")
    axis.plot(time_s - span / 2, timeline["perclos"], "--", color="tab:blue", alpha=0.6, label="same, at window centre")
    axis.axhline(config.drowsy_perclos_on, color="tab:red", linewidth=1, label="drowsy threshold")
    axis.set_ylabel("PERCLOS", rotation=0, ha="right", va="center")
    axis.set_ylim(0, max(0.5, float(np.nan_to_num(timeline["perclos"].max())) * 1.1))
    axis.legend(loc="upper left", fontsize=8, ncol=3)


def _plot_events(axis, events: list[Event], truth: list[Event] | None) -> None:
    import matplotlib

    kinds = ALERT_EVENTS + ("blink",)
    palette = matplotlib.colormaps["tab20"]
    colours = {kind: palette(2 * i % 20 + 2 * i // 20) for i, kind in enumerate(kinds)}
    for row, kind in enumerate(kinds):
        spans = [(e.start, e.end - e.start) for e in events if e.type == kind]
        axis.broken_barh(spans, (row + 0.05, 0.4), color=colours[kind])
        if truth is not None:
            true_spans = [(e.start, e.end - e.start) for e in truth if e.type == kind]
            axis.broken_barh(true_spans, (row - 0.45, 0.4), facecolor="none", edgecolor=colours[kind], hatch="///")
    axis.set_yticks(range(len(kinds)), kinds)
    axis.set_ylim(-0.6, len(kinds) - 0.4)
    axis.set_ylabel(
        "events\n(solid: found\nhatched: truth)" if truth is not None else "events", rotation=0, ha="right", va="center"
    )


def plot_calibration(calibration: dict):
    """Per signal, histograms of the raw log-odds on the calibration images by true state, with the
    fitted boundary (`calibrate`'s result). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(CALIBRATED), figsize=(4 * len(CALIBRATED), 3))
    for axis, signal in zip(axes, CALIBRATED):
        entry = calibration["signals"][signal]
        # no box at all is log-odds -13.8; the plot clips at +-8 so the informative middle stays readable
        logits, states = np.clip(entry["logits"], -8, 8), np.asarray(entry["states"], bool)
        bins = np.linspace(logits.min(), logits.max(), 30) if len(logits) else 10
        yes, no = SIGNAL_CLASSES[signal]
        yes = " / ".join(yes)
        for chosen, label, colour in (
            (~states, f"no {yes}" if no is None else no, "tab:blue"),
            (states, yes, "tab:red"),
        ):
            axis.hist(logits[chosen], bins=bins, color=colour, alpha=0.6, label=f"{label} ({chosen.sum()})")
        axis.axvline(entry["offset"], color="black", linestyle="--", label=f"boundary {entry['offset']:.2f}")
        axis.axvline(0, color="gray", linewidth=0.8)
        axis.set_yscale("log")
        fit = "" if entry["fit"] is None else f", {entry['criterion']} {entry['fit']:.3f}"
        axis.set_title(f"{signal}{fit}", fontsize=10)
        axis.set_xlabel("raw score, log-odds (clipped at ±8)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_event_frames(video: str | Path, events: list[Event], types=ALERT_EVENTS, columns: int = 3):
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
