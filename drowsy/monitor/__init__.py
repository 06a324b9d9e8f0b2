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

Modules, from the core outwards:
- `config`: `MonitorConfig`, the thresholds, checked on load;
- `state`: the state machine, numpy only: `frame_scores`, `DriverStateMonitor` (streaming; memory
  bounded by one PERCLOS window) and its per-frame `FrameState`; events are `drowsy.events.Event`;
- `sources`: `FrameSource` (video file, folder of frames, camera), batches decoded ahead in a thread,
  `truth_detections` (a clip's ground-truth boxes as detections);
- `detect`: `detect_frames` (a detector on a batch of frames), `build_detector`;
- `calibration`: per-signal score offsets fitted on labelled images (`calibrate`), calibration.json;
- `runner`: `run_monitor`, which drives the state machine from a source with a detector or with a
  clip's ground-truth boxes and writes events.json, timeline.png/.csv, summary.json and annotated.mp4;
- `draw`: the annotated frame and the plots (timeline, calibration, one frame per alert).

The names below are importable from `drowsy.monitor`; each loads its module on first use (PEP 562), so
`import drowsy.monitor.state` loads the state machine alone, without OpenCV, PyTorch or matplotlib.
"""

import importlib

_MODULE_OF = {
    "MonitorConfig": "config",
    "ALERT_TYPES": "state", "SIGNALS": "state", "DriverStateMonitor": "state", "FrameState": "state",
    "frame_scores": "state",
    "FOLDER_FPS": "sources", "FrameSource": "sources", "truth_detections": "sources",
    "MAX_DETECTIONS": "detect", "build_detector": "detect", "detect_frames": "detect",
    "SIGNAL_CLASSES": "calibration", "calibrate": "calibration", "calibration_offsets": "calibration",
    "fit_offset": "calibration", "image_states": "calibration", "load_offsets": "calibration",
    "write_calibration": "calibration",
    "run_monitor": "runner",
    "draw_frame": "draw", "plot_calibration": "draw", "plot_event_frames": "draw", "plot_timeline": "draw",
}
__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
