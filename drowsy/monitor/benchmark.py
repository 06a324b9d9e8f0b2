"""The monitor's event benchmark: sets of synthetic clips (story, protocol, alert driving), monitored
with their ground-truth boxes and with a detector, scored per event type over all clips together.

Used by benchmarks/monitor_events.py (the full set: >= 20 events of every type, >= 60 min of alert
driving) and by notebook 06 (a small set). Which types a clip scores follows its script: story clips
the storyline's types, protocol clips every alert type but `drowsy` (their 6-8 s closures lift PERCLOS
over the drowsy threshold; drowsiness there follows from the script, it is not scripted), alert clips
none: every alert in them is a false alert.
"""

import dataclasses
import math
from pathlib import Path

import pandas as pd

from drowsy.clips import make_script, write_clip
from drowsy.events import ALERT_EVENTS, false_alerts, load_alert_free, load_events, match_events, score_events
from drowsy.monitor.runner import run_monitor
from drowsy.progress import log

SCORED = {"story": ("microsleep", "drowsy", "yawn", "phone", "smoking"),
          "protocol": tuple(t for t in ALERT_EVENTS if t != "drowsy"), "alert": ()}
HARD_CASES = ("sunglasses", "glare", "face out of frame", "head turns", "eye closures", "small faces")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """One clip of a set: its script, length, seed, size (width, height) and a label for its rows."""

    script: str
    seconds: float
    seed: int
    size: tuple[int, int]
    label: str = "close-up"

    @property
    def name(self) -> str:
        return f"{self.script}-{self.seed}-{self.size[0]}x{self.size[1]}"


def clip_set(story: int, protocol_minutes: float, alert_minutes: float, small_faces_minutes: float,
             size: tuple[int, int] = (400, 640), clip_minutes: float = 5.0) -> list[ClipSpec]:
    """Story clips of 150 s (one drowsy phase each), protocol and alert clips of `clip_minutes`, and
    protocol clips at 640x360 (a face a third as tall: "small faces")."""
    def parts(minutes: float) -> list[float]:
        count = math.ceil(minutes / clip_minutes - 1e-9) if minutes > 0 else 0
        return [60.0 * minutes / count] * count

    specs = [ClipSpec("story", 150.0, seed, size) for seed in range(story)]
    specs += [ClipSpec("protocol", s, 100 + i, size) for i, s in enumerate(parts(protocol_minutes))]
    specs += [ClipSpec("alert", s, 200 + i, size) for i, s in enumerate(parts(alert_minutes))]
    specs += [ClipSpec("protocol", s, 300 + i, (640, 360), "small faces") for i, s in enumerate(parts(small_faces_minutes))]
    return specs


def run_clips(specs: list[ClipSpec], out_dir: str | Path, detectors: dict, fps: float = 15.0,
              progress: bool = True) -> list[dict]:
    """Render each clip (kept when already there) and monitor it with every detector of `detectors`
    ({name: run_monitor keyword arguments}, e.g. {"ground-truth boxes": {}, "drowsy": {"detector": ...}}).
    Returns per clip {"spec", "truth", "alert_free", "found": {name: events}}."""
    out_dir = Path(out_dir)
    runs = []
    for number, spec in enumerate(specs, 1):
        folder = out_dir / spec.name
        if not (folder / "events.json").is_file():
            write_clip(folder, spec.seconds, fps, spec.seed, spec.size, progress=False, script=spec.script)
        found = {}
        for name, kwargs in detectors.items():
            source = None if "detector" not in kwargs else folder / "clip.mp4"
            truth_frames = folder / "frames.json" if "detector" not in kwargs else None
            summary = run_monitor(source, out_dir=folder / name.replace(" ", "_"), truth_frames=truth_frames,
                                  annotate=False, progress=False, **kwargs)
            found[name] = load_events(summary["files"]["events"])
        runs.append({"spec": spec, "truth": load_events(folder / "events.json"),
                     "alert_free": load_alert_free(folder / "events.json"), "found": found})
        if progress:
            log(f"monitor benchmark: clip {number}/{len(specs)} {spec.name} done")
    return runs


def scores_table(runs: list[dict], name: str) -> pd.DataFrame:
    """Per event type, over every clip that scores it (`drowsy.events.score_events` on all clips at
    once, each clip's events moved to a time span of its own): truth events, precision, recall, F1,
    onset latency median and worst (seconds, prediction's alert minus the protocol's)."""
    found, truth, offset = [], [], 0.0
    for run in runs:
        scored = SCORED[run["spec"].script]
        for events, pooled in ((run["found"][name], found), (run["truth"], truth)):
            pooled += [dataclasses.replace(e, start=e.start + offset, end=e.end + offset,
                                           alert=None if e.alert is None else e.alert + offset)
                       for e in events if e.type in scored]
        offset += run["spec"].seconds + 3600.0  # far apart: no event matches one of another clip
    kinds = [kind for kind in ALERT_EVENTS if any(e.type == kind for e in truth)]
    scores = score_events(found, truth, types=kinds)
    rows = [{"type": kind, "events": s["tp"] + s["fn"], "precision": s["precision"], "recall": s["recall"],
             "f1": s["f1"], "latency_median": _or_nan(s["latency_median"]), "latency_worst": _or_nan(s["latency_worst"])}
            for kind, s in scores.items()]
    return pd.DataFrame(rows).set_index("type")


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def false_alert_counts(runs: list[dict], name: str) -> dict:
    """Alerts in the alert-free stretches (`drowsy.events.false_alerts`): per hour, hours, and the
    count per type; and yawn alerts found while the driver talks or laughs, in any clip."""
    alert_runs = [r for r in runs if r["alert_free"]]
    hours = sum(b - a for r in alert_runs for a, b in r["alert_free"]) / 3600
    counts = {}
    for run in alert_runs:
        for event in false_alerts(run["found"][name], run["alert_free"]):
            counts[event.type] = counts.get(event.type, 0) + 1
    return {"hours": hours, "per_hour": sum(counts.values()) / hours if hours else None, "by_type": counts,
            "yawns_while_talking": sum(_yawns_while_talking(r, name) for r in runs)}


def _yawns_while_talking(run: dict, name: str) -> int:
    spec = run["spec"]
    syllables = [a for a in make_script(spec.script, spec.seconds, spec.seed, spec.size).actions if a.kind == "syllable"]
    return sum(any(a.start < e.end and e.start < a.end for a in syllables)
               for e in run["found"][name] if e.type == "yawn")


def hard_cases_table(runs: list[dict], names: list[str]) -> pd.DataFrame:
    """Recall on the hard cases (HARD_CASES), per detector: truth events of protocol clips by what
    causes them (the script's action at the event's start)."""
    rows = {case: {"events": 0, **{n: 0 for n in names}} for case in HARD_CASES}
    for run in (r for r in runs if r["spec"].script == "protocol"):
        spec = run["spec"]
        actions = make_script(spec.script, spec.seconds, spec.seed, spec.size).actions
        for event in (e for e in run["truth"] if e.type in SCORED["protocol"]):
            for case in _cases(event, actions, spec):
                rows[case]["events"] += 1
                for n in names:
                    rows[case][n] += any(t == 0 for _, t, _ in match_events(run["found"][n], [event]))
    table = pd.DataFrame(rows).T
    for n in names:
        table[n] = table[n] / table["events"].where(table["events"] > 0)
    return table.rename(columns={n: f"recall ({n})" for n in names})


def _cases(event, actions, spec: ClipSpec) -> list[str]:
    cases = ["small faces"] if spec.label == "small faces" else []
    cause = min((a for a in actions if a.kind in ("sunglasses", "glare", "out", "glance", "closure")),
                key=lambda a: abs(a.start - event.start), default=None)
    if cause is None or abs(cause.start - event.start) > 0.2:
        return cases
    return cases + [{"sunglasses": "sunglasses", "glare": "glare", "out": "face out of frame", "glance": "head turns",
                     "closure": "eye closures"}[cause.kind]]

