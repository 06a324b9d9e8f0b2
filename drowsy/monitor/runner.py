"""`run_monitor`: a source and a detector (or a clip's ground-truth boxes) through the state machine,
frame by frame, to events.json, timeline.csv/.png, summary.json and the annotated video."""

import contextlib
import math
import sys
import time
from pathlib import Path

from drowsy import CLASSES
from drowsy.config import MonitorConfig, MonitorRun
from drowsy.errors import DrowsyError
from drowsy.files import write_json
from drowsy.monitor.detect import detect_frames
from drowsy.monitor.draw import draw_frame, plot_timeline
from drowsy.monitor.events import Event, false_alerts_per_hour, load_alert_free, load_events, score_events, write_events
from drowsy.monitor.sources import FrameSource, frame_batches, truth_detections
from drowsy.monitor.state import SIGNALS, DriverStateMonitor, FrameState
from drowsy.paths import resolve
from drowsy.progress import log
from drowsy.progress import progress as progress_bar


def run_monitor(
    run: MonitorRun, detector=None, config: MonitorConfig | None = None, offsets: dict[str, float] | None = None
) -> dict:
    """Monitor a video file, a folder of frames or a camera index and write the results to `run.out_dir`.

    detector: a `drowsy.infer.predict.Detector` (see `build_detector`), run at `run.img_size` on batches
    of `run.batch` frames; or None with `run.truth_frames` (a clip's frames.json) to feed the
    ground-truth boxes instead, which scores the state machine apart from the model (`run.source` may
    then be None: no video). config: the thresholds (None: data/monitor.yaml). offsets: per-signal
    score calibration of the detector (`calibrate`, `load_offsets`); None: raw scores.
    `run.truth_events`: the clip's events.json, to score against. A camera runs until Ctrl-C or
    `run.max_frames`. `run.threads`: PyTorch intra-op threads during the run (restored afterwards;
    None keeps PyTorch's setting). One by default: the decoding thread has the other core, and one
    compute thread keeps its pace when other processes share the CPU, where several OpenMP threads
    stall waiting on each other (benchmarks/monitor_speed.py).
    Writes events.json (the truth's schema), timeline.csv (per-frame scores, states, PERCLOS, alerts),
    timeline.png and, with `run.annotate` and a source, annotated.mp4 (boxes, states, alerts).
    Returns a summary: source, backend, frames, fps (the stream's), fps_achieved (frames per wall-clock
    second, decoding to writing), offsets (the calibration used, or None), metrics
    (DriverStateMonitor.metrics), scores (with truth_events: `drowsy.monitor.events.score_events` per
    type present, with onset latencies), false_alerts_per_hour (when truth_events has alert-free
    stretches), files.
    """
    source, truth_frames, truth_events = run.source, run.truth_frames, run.truth_events
    _check_inputs(source, detector, truth_frames)
    config = config or MonitorConfig.from_yaml("data/monitor.yaml")
    out_dir = resolve(run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth, truth_fps = truth_detections(truth_frames) if truth_frames is not None else (None, None)
    true_events = load_events(truth_events) if truth_events is not None else None
    alert_free = load_alert_free(truth_events) if truth_events is not None else []
    source = FrameSource(source, run.fps or truth_fps) if source is not None else None
    stream_fps = source.fps if source is not None else truth_fps
    limits = [n for n in (None if truth is None else len(truth), run.max_frames) if n is not None]
    limit = min(limits) if limits else None  # frames to read (a video's own count can be approximate)
    with source or contextlib.nullcontext(), _torch_threads(run.threads):
        started = time.perf_counter()
        monitor = DriverStateMonitor(config, stream_fps, offsets)
        annotated = out_dir / "annotated.mp4" if run.annotate and source is not None else None
        records = _monitor_loop(
            monitor,
            _batches(source, run.batch, limit),
            _detections_of(detector, truth, run.img_size, config.min_score, run.iou),
            annotated,
            total=limit if limit is not None else source.length,
            progress=run.progress,
        )
        events = monitor.finish()
        seconds = time.perf_counter() - started
    name = source.name if source is not None else str(resolve(truth_frames))
    if not records:
        raise DrowsyError(f"{name}: no frames could be read")
    summary = {
        "source": name,
        "backend": _backend_name(detector),
        "frames": len(records),
        "fps": stream_fps,
        "fps_achieved": len(records) / seconds if seconds > 0 else 0.0,
        "offsets": monitor.offsets,
    }
    if alert_free:
        summary["false_alerts_per_hour"] = false_alerts_per_hour(events, alert_free)
    return _write_results(out_dir, summary, monitor, records, events, true_events, annotated)


def _check_inputs(source, detector, truth_frames) -> None:
    """Refuse a run without exactly one of a detector and ground-truth boxes, or a detector the monitor cannot read."""
    if (detector is None) == (truth_frames is None):
        raise DrowsyError("monitor: give exactly one of a detector (weights) or truth_frames (frames.json)")
    if source is None and detector is not None:
        raise DrowsyError("monitor: field 'source': a detector needs a video, a frames folder or a camera")
    if detector is not None and tuple(detector.class_names) != CLASSES:
        raise DrowsyError(
            f"{detector.weights}: field 'class_names': {list(detector.class_names)}, the monitor needs {list(CLASSES)}"
        )


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
    runtime = {"torch": "pytorch", "onnx": "onnxruntime", "openvino": "openvino"}[detector.backend]
    return f"{runtime} {detector.precision}"


def _batches(source: FrameSource | None, batch: int, limit: int | None):
    """Lists of up to `batch` frames of the source; without one (ground-truth boxes alone, `limit`
    frames) lists of None in their place."""
    if source is not None:
        return frame_batches(source, batch, limit)
    return ([None] * min(batch, limit - i) for i in range(0, limit, batch))


def _detections_of(detector, truth: list | None, img_size: int, min_score: float, iou: float):
    """A function (index of the first frame, frames) -> their detections: the clip's ground-truth
    boxes when given, else the detector's on the frames."""
    if truth is not None:
        return lambda start, frames: truth[start : start + len(frames)]
    return lambda start, frames: detect_frames(detector, frames, img_size, min_score, iou)


def _monitor_loop(
    monitor: DriverStateMonitor, batches, detections_of, annotated: Path | None, total: int | None, progress: bool
) -> list[dict]:
    """Feed every frame to the monitor (and the annotated video); returns the timeline rows, one per frame."""
    writer, records = None, []
    bar = progress_bar(desc="monitor", total=total, unit="frame", enabled=progress)
    try:
        for frames in batches:
            for frame, frame_detections in zip(frames, detections_of(len(records), frames)):
                state = monitor.update(len(records), frame_detections, frame)
                records.append(_record(state))
                if annotated is not None:
                    writer = writer or _open_writer(annotated, frame.shape, monitor.fps)
                    writer.write(draw_frame(frame, frame_detections, state))
            bar.update(len(frames))
    except KeyboardInterrupt:  # a camera runs until stopped; what was seen is still written
        log("monitor: interrupted, writing what was seen", file=sys.stderr)
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    return records


def _open_writer(path: Path, shape: tuple[int, int], fps: float):
    import cv2

    height, width = shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height), isColor=True)
    if not writer.isOpened():
        raise OSError(f"{path}: cv2.VideoWriter cannot write 'mp4v'")
    return writer


def _record(state: FrameState) -> dict:
    """One timeline.csv row: time, per signal score (NaN = not seen) and state, PERCLOS, head yaw and
    pitch, the alert level, alerts."""
    row = {"index": state.index, "time_s": state.time_s}
    for name in SIGNALS:
        score = state.scores[name]
        row[f"{name}_score"] = math.nan if score is None else score
        row[name] = state.states[name]
    row["perclos"] = math.nan if state.perclos is None else state.perclos
    row["blink_rate"] = math.nan if state.blink_rate is None else state.blink_rate
    row["closure_s"] = state.closure_s
    row["yaw"], row["pitch"] = state.pose if state.pose is not None else (math.nan, math.nan)
    row["level"] = state.level
    row["alerts"] = " ".join(state.alerts)
    return row


def _write_results(
    out_dir: Path,
    summary: dict,
    monitor: DriverStateMonitor,
    records: list[dict],
    events: list[Event],
    truth: list[Event] | None,
    annotated: Path | None,
) -> dict:
    """Write timeline.csv, events.json, timeline.png and summary.json; returns `summary` completed
    with the metrics, the files and, with `truth`, the event scores."""
    import matplotlib.pyplot as plt
    import pandas as pd

    timeline = pd.DataFrame(records)
    timeline.to_csv(out_dir / "timeline.csv", index=False)
    events_path = write_events(out_dir / "events.json", events, summary["fps"], summary["frames"])
    figure = plot_timeline(timeline, events, truth, monitor.config)
    figure.savefig(out_dir / "timeline.png", dpi=100)
    plt.close(figure)
    summary = {
        **summary,
        "metrics": monitor.metrics(),
        "files": {
            "events": str(events_path),
            "timeline": str(out_dir / "timeline.png"),
            "timeline_csv": str(out_dir / "timeline.csv"),
        },
    }
    if annotated is not None:
        summary["files"]["annotated"] = str(annotated)
    if truth is not None:
        summary["scores"] = score_events(events, truth)
    write_json(out_dir / "summary.json", summary, indent=1)
    return summary
