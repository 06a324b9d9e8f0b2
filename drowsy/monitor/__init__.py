"""Driver-state monitor: per-frame detections -> eye, mouth, phone, cigarette and gaze states ->
drowsiness, distraction and degraded-monitoring events with start, end and alert times.

Definitions follow Euro NCAP's driver-state protocol and driver-monitoring practice (every default is
in data/monitor.yaml with its source):
- an eye closure is a blink up to `blink_max_s` (0.5 s, not an alert), a microsleep from
  `microsleep_s` (1 s), a sleep from `sleep_s` (3 s) and an unresponsive driver from `unresponsive_s`
  (6 s); each closure is one event, named by the longest of these it reached;
- PERCLOS is the share of time the eyes are closed over a `perclos_window_s` (60 s) window; the driver
  is drowsy while it stays above `drowsy_perclos_on` (0.15);
- a yawn is the mouth open, as wide as `yawn_min_height` of the face, for `yawn_min_s` (1 s) or more;
  phone use and smoking are a phone or a cigarette present, with the driver's face in the frame (a face box
  scoring `face_min_score`), for at least `phone_min_s` / `smoking_min_s`;
- the head's yaw and pitch come from where the eyes and the mouth sit in the face box, against a
  per-driver baseline (`gaze`); one glance beyond the on-road region for `distraction_s` (3 s) is a
  distraction, for `unresponsive_s` an unresponsive driver; glances adding up to `vats_total_s` (10 s)
  within `vats_window_s` (30 s) are VATS (`attention`);
- the eyes not measurable for `degraded_s` (5 s) is degraded monitoring;
- every live alert has a level on the alert ladder (pre-alert, prompt, final alert; `attention`).

Each signal goes score -> hysteresis -> debouncing: a per-frame score (None when the eyes, the mouth or
the pose are not measurable, and for a phone or a cigarette when no face is seen) switches the signal on at
`*_on` and off below `*_off`; dropouts up to `*_max_gap_s` inside a run are bridged and runs shorter than
`min_state_s` are flicker. Events carry the times where their evidence began and ended, not when it
became conclusive: the live alerts in `FrameState` fire when it does (a microsleep 1 s into the closure),
and each event records that moment as its `alert` time. A drowsy event is dated by the
centres of the windows whose PERCLOS passes the threshold, so it covers the drowsy minutes themselves
instead of lagging them by half a window as the trailing (live) PERCLOS does.

The thresholds are `drowsy.config.MonitorConfig` (data/monitor.yaml), checked on load. Modules, from
the core outwards:
- `events`: the `Event` type (truth and predictions alike), events.json, and scoring events against
  the truth (matching, precision, recall, onset latency, false alerts per hour);
- `gaze`: head pose from boxes and its online baseline; `attention`: VATS and the alert ladder;
- `state`: the state machine, numpy only: `frame_scores`, `DriverStateMonitor` (streaming; memory
  bounded by one PERCLOS window) and its per-frame `FrameState`;
- `sources`: `FrameSource` (video file, folder of frames, camera), batches decoded ahead in a thread,
  `truth_detections` (a clip's ground-truth boxes as detections);
- `detect`: `detect_frames` (a detector on a batch of frames), `build_detector`;
- `calibration`: per-signal score offsets fitted on labelled images (`calibrate`), calibration.json;
- `runner`: `run_monitor`, which drives the state machine from a source with a detector or with a
  clip's ground-truth boxes and writes events.json, timeline.png/.csv, summary.json and annotated.mp4;
- `draw`: the annotated frame and the plots (timeline, calibration, one frame per alert).

`import drowsy.monitor.state` loads the state machine alone, without OpenCV, PyTorch or matplotlib.
The event benchmark over synthetic clips is `drowsy.eval.monitor_benchmark`.
"""
