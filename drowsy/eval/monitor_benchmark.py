"""The monitor's event benchmark: sets of synthetic clips (story, protocol, alert driving), monitored
with their ground-truth boxes and with a detector, scored per event type over all clips together.

Used by benchmarks/monitor_events.py (the full set: >= 20 events of every type, >= 60 min of alert
driving) and by notebook 06 (a small set). Which types a clip scores follows its script: story clips
the storyline's types, protocol clips every alert type but `drowsy` (their 6-8 s closures lift PERCLOS
over the drowsy threshold; drowsiness there follows from the script, it is not scripted), alert clips
none: every alert in them is a false alert.

The landmark peer (issue 13): MediaPipe Face Mesh measures (benchmarks/facemesh_peer.py, run in its own
virtual environment) turned into drowsy's signals by `PeerRules` and monitored by drowsy's own state
machine and event rules, so the two differ in what they see, not in how events are timed or scored.
"""

import dataclasses
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from drowsy.config import MonitorRun
from drowsy.errors import DrowsyError
from drowsy.monitor.events import ALERT_EVENTS, false_alerts, load_alert_free, load_events, match_events, score_events
from drowsy.monitor.runner import run_monitor
from drowsy.monitor.state import DriverStateMonitor
from drowsy.paths import REPO_ROOT
from drowsy.progress import log
from drowsy.synth.clips.write import make_script, write_clip

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "facemesh_peer.py"

SCORED = {
    "story": ("microsleep", "drowsy", "yawn", "phone", "smoking"),
    "protocol": tuple(t for t in ALERT_EVENTS if t != "drowsy"),
    "alert": (),
}
HARD_CASES = (
    "sunglasses",
    "glare",
    "face out of frame",
    "head turns",
    "eyes-only glances",
    "eye closures",
    "small faces",
)


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


def clip_set(
    story: int,
    protocol_minutes: float,
    alert_minutes: float,
    small_faces_minutes: float,
    size: tuple[int, int] = (400, 640),
    clip_minutes: float = 5.0,
) -> list[ClipSpec]:
    """Story clips of 150 s (one drowsy phase each), protocol and alert clips of `clip_minutes`, and
    protocol clips at 640x360 (a face a third as tall: "small faces")."""

    def parts(minutes: float) -> list[float]:
        count = math.ceil(minutes / clip_minutes - 1e-9) if minutes > 0 else 0
        return [60.0 * minutes / count] * count

    specs = [ClipSpec("story", 150.0, seed, size) for seed in range(story)]
    specs += [ClipSpec("protocol", s, 100 + i, size) for i, s in enumerate(parts(protocol_minutes))]
    specs += [ClipSpec("alert", s, 200 + i, size) for i, s in enumerate(parts(alert_minutes))]
    specs += [
        ClipSpec("protocol", s, 300 + i, (640, 360), "small faces") for i, s in enumerate(parts(small_faces_minutes))
    ]
    return specs


def run_clips(
    specs: list[ClipSpec], out_dir: str | Path, detectors: dict, fps: float = 15.0, progress: bool = True
) -> list[dict]:
    """Render each clip (kept when already there) and monitor it with every detector of `detectors`
    ({name: run_monitor's detector, config and offsets, and MonitorRun fields}, e.g. {"ground-truth boxes": {},
    "drowsy": {"detector": ..., "img_size": 320}}).
    A detector may also be the landmark peer: {"peer": PeerRules, "python": the peer environment's
    interpreter, "config": MonitorConfig}. Returns per clip {"spec", "truth", "alert_free", "found": {name: events}}."""
    out_dir = Path(out_dir)
    runs = []
    for number, spec in enumerate(specs, 1):
        folder = render_clip(spec, out_dir, fps)
        found = {}
        for name, kwargs in detectors.items():
            if "peer" in kwargs:
                found[name] = landmark_events(
                    peer_measurements(folder, kwargs["python"]), kwargs["config"], kwargs["peer"]
                )
                continue
            objects = {key: kwargs[key] for key in ("detector", "config", "offsets") if key in kwargs}
            truth_frames = folder / "frames.json" if "detector" not in kwargs else None
            run = MonitorRun(
                folder / "clip.mp4",
                folder / name.replace(" ", "_"),
                truth_frames=truth_frames,  # the
                annotate=False,
                progress=False,  # frames too: the irises
                **{key: value for key, value in kwargs.items() if key not in objects},
            )
            summary = run_monitor(run, **objects)
            found[name] = load_events(summary["files"]["events"])
        runs.append(
            {
                "spec": spec,
                "truth": load_events(folder / "events.json"),
                "alert_free": load_alert_free(folder / "events.json"),
                "found": found,
            }
        )
        if progress:
            log(f"monitor benchmark: clip {number}/{len(specs)} {spec.name} done")
    return runs


def render_clip(spec: ClipSpec, out_dir: Path, fps: float = 15.0) -> Path:
    """The clip's folder under `out_dir`, rendered unless it is already there."""
    folder = Path(out_dir) / spec.name
    if not (folder / "events.json").is_file():
        write_clip(folder, spec.seconds, fps, spec.seed, spec.size, progress=False, script=spec.script)
    return folder


@dataclasses.dataclass(frozen=True)
class PeerRules:
    """From the landmark peer's measures to drowsy's signals: eyes closed while the eye aspect ratio
    is under `ear_closed`, a yawn's mouth while the mouth aspect ratio is over `mar_yawn`, the head's
    yaw and pitch multiplied by the gains. The defaults are the open Driver-State-Detection project's
    (--ear_thresh 0.15; its pose limits of 20 degrees are drowsy's yaw limit) and, as that project has
    no yawn rule, MAR 0.6, a common yawn threshold of landmark monitors; `fit_peer_rules` fits them
    to the synthetic faces instead."""

    ear_closed: float = 0.15
    mar_yawn: float = 0.6
    yaw_gain: float = 1.0
    pitch_gain: float = 1.0


def peer_measurements(folder: Path, python: str | Path) -> dict:
    """The clip's Face Mesh measures (facemesh.json, made by PEER_SCRIPT in the peer's environment
    `python` unless already there): {"fps", "frames": per frame {"ear", "mar", "yaw", "pitch", "iris"} or None}."""
    path = Path(folder) / "facemesh.json"
    if not path.is_file():
        result = subprocess.run(
            [str(python), str(PEER_SCRIPT), str(Path(folder) / "clip.mp4"), str(path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise DrowsyError(f"{PEER_SCRIPT}: failed on {folder / 'clip.mp4'}: {last}")
    return json.loads(path.read_text())


def landmark_events(measurements: dict, config, rules: PeerRules) -> list:
    """The peer's measures through drowsy's state machine (`DriverStateMonitor.update_scores`, head
    angles for the pose with the same per-driver baseline, plus the eyes' own turn from the iris offset
    of open eyes, as drowsy's); the peer sees no phone or cigarette."""
    monitor = DriverStateMonitor(
        config,
        measurements["fps"],
        head_features=("head",),
        head_angles=lambda offset: (float(offset[0]), float(offset[1])),
    )
    for index, frame in enumerate(measurements["frames"]):
        if frame is None:
            monitor.update_scores(
                index, {"eyes_closed": None, "mouth_open": None, "phone": 0.0, "cigarette": 0.0}, None
            )
            continue
        closed = frame["ear"] < rules.ear_closed
        scores = {
            "eyes_closed": float(closed),
            "mouth_open": float(frame["mar"] > rules.mar_yawn),
            "phone": 0.0,
            "cigarette": 0.0,
        }
        head = (frame["yaw"] * rules.yaw_gain, frame["pitch"] * rules.pitch_gain)
        monitor.update_scores(index, scores, {"head": head, "iris": None if closed else frame.get("iris")})
    return monitor.finish()


def fit_peer_rules(folders: list[Path], python: str | Path) -> PeerRules:
    """PeerRules fitted to clips with their truth (clips of their own, not the scored ones): the EAR
    and MAR thresholds that best separate (balanced accuracy) closed from open eyes and yawns from a
    mouth open to talk or laugh, over the frames where the mesh found a face; the gains as the inverse
    of the peer's response per degree of the true head angle (`_response`)."""
    rows = []
    for folder in folders:
        truth = json.loads((Path(folder) / "frames.json").read_text())
        yawns = [e for e in load_events(Path(folder) / "events.json") if e.type == "yawn"]
        for frame, measured in zip(truth["frames"], peer_measurements(folder, python)["frames"]):
            if measured is None or frame["yaw"] is None:
                continue
            yawning = any(e.start <= frame["time_s"] <= e.end for e in yawns)
            rows.append(
                (
                    frame["eyes_closed"],
                    yawning,
                    frame["mouth_open"] and not yawning,
                    frame["yaw"],
                    frame["pitch"],
                    measured["ear"],
                    measured["mar"],
                    measured["yaw"],
                    measured["pitch"],
                )
            )
    if not rows:
        raise DrowsyError(f"{folders[0] if folders else 'fit_peer_rules'}: no frame where the mesh found a face")
    r = np.array(rows, dtype=float)
    closed, yawning, talking = r[:, 0] == 1, r[:, 1] == 1, r[:, 2] == 1
    return PeerRules(
        ear_closed=_best_threshold(r[closed, 5], r[~closed, 5]),
        mar_yawn=-_best_threshold(-r[yawning, 6], -r[talking, 6]),
        yaw_gain=1 / _response(r[:, 3], r[:, 7]),
        pitch_gain=1 / _response(r[:, 4], r[:, 8]),
    )


def _best_threshold(below: np.ndarray, above: np.ndarray) -> float:
    """The threshold t that best separates `below` (< t) from `above` (>= t) by balanced accuracy."""
    if not len(below) or not len(above):
        raise DrowsyError("fit_peer_rules: the calibration clips need frames of both states")
    values = np.unique(np.concatenate([below, above]))
    candidates = (values[1:] + values[:-1]) / 2 if len(values) > 1 else values  # halfway between seen values
    recall_below = np.searchsorted(np.sort(below), candidates, side="left") / len(below)
    recall_above = 1 - np.searchsorted(np.sort(above), candidates, side="left") / len(above)
    return float(candidates[np.argmax(recall_below + recall_above)])


def _response(truth: np.ndarray, peer: np.ndarray) -> float:
    """Degrees of the peer's angle per degree of the true one: the least-squares line through the
    medians of three groups of frames, turned one way (truth <= -10 degrees), ahead (|truth| < 5) and
    the other way (>= 10). Group medians, not every frame: thousands of frames ahead, where the mesh's
    angle scatters by +-10 degrees, would otherwise outweigh the turns the gain is for."""
    groups = [truth <= -10, np.abs(truth) < 5, truth >= 10]
    points = np.array([(np.median(truth[g]), np.median(peer[g])) for g in groups if g.any()])
    if len(points) < 2:
        raise DrowsyError("fit_peer_rules: the calibration clips need frames turned away and ahead")
    return float(np.polyfit(points[:, 0], points[:, 1], 1)[0])


def scores_table(runs: list[dict], name: str) -> pd.DataFrame:
    """Per event type, over every clip that scores it (`drowsy.monitor.events.score_events` on all clips at
    once, each clip's events moved to a time span of its own): truth events, precision, recall, F1,
    onset latency median and worst (seconds, prediction's alert minus the protocol's)."""
    found, truth, offset = [], [], 0.0
    for run in runs:
        scored = SCORED[run["spec"].script]
        for events, pooled in ((run["found"][name], found), (run["truth"], truth)):
            pooled += [
                dataclasses.replace(
                    e, start=e.start + offset, end=e.end + offset, alert=None if e.alert is None else e.alert + offset
                )
                for e in events
                if e.type in scored
            ]
        offset += run["spec"].seconds + 3600.0  # far apart: no event matches one of another clip
    kinds = [kind for kind in ALERT_EVENTS if any(e.type == kind for e in truth)]
    scores = score_events(found, truth, types=kinds)
    rows = [
        {
            "type": kind,
            "events": s["tp"] + s["fn"],
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1"],
            "latency_median": _or_nan(s["latency_median"]),
            "latency_worst": _or_nan(s["latency_worst"]),
        }
        for kind, s in scores.items()
    ]
    return pd.DataFrame(rows).set_index("type")


def unmatched_events(runs: list[dict], name: str) -> pd.DataFrame:
    """The events `scores_table` counts against `name`, to look at: per clip, each found event that matches no
    true one ("false") and each true event that no found one matches ("missed"), of the types the clip scores.
    Columns: clip, outcome, type, start, end (seconds)."""
    rows = []
    for run in runs:
        scored = SCORED[run["spec"].script]
        found = [e for e in run["found"][name] if e.type in scored]
        truth = [e for e in run["truth"] if e.type in scored]
        matches = match_events(found, truth)
        for outcome, events, matched in (
            ("false", found, {p for p, _, _ in matches}),
            ("missed", truth, {t for _, t, _ in matches}),
        ):
            rows += [
                {"clip": run["spec"].name, "outcome": outcome, "type": e.type, "start": e.start, "end": e.end}
                for i, e in enumerate(events)
                if i not in matched
            ]
    return pd.DataFrame(rows, columns=["clip", "outcome", "type", "start", "end"])


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def false_alert_counts(runs: list[dict], name: str) -> dict:
    """Alerts in the alert-free stretches (`drowsy.monitor.events.false_alerts`): per hour, hours, and the
    count per type; in any clip, yawn alerts found while the driver talks or laughs, and closure, yawn
    or degraded alerts found while a hand rubs an eye or while eating (Euro NCAP: none of these counts
    as drowsiness)."""
    alert_runs = [r for r in runs if r["alert_free"]]
    hours = sum(b - a for r in alert_runs for a, b in r["alert_free"]) / 3600
    counts = {}
    for run in alert_runs:
        for event in false_alerts(run["found"][name], run["alert_free"]):
            counts[event.type] = counts.get(event.type, 0) + 1
    return {
        "hours": hours,
        "per_hour": sum(counts.values()) / hours if hours else None,
        "by_type": counts,
        "yawns_while_talking": sum(_found_during(r, name, "syllable", ("yawn",)) for r in runs),
        "alerts_while_rubbing": sum(_found_during(r, name, "rub", MISREAD_ALERTS) for r in runs),
        "alerts_while_eating": sum(_found_during(r, name, "eat", MISREAD_ALERTS) for r in runs),
    }


MISREAD_ALERTS = ("microsleep", "sleep", "unresponsive", "yawn", "degraded")  # what rubbing or eating must not raise


def _found_during(run: dict, name: str, action: str, types: tuple[str, ...]) -> int:
    """Events of `types` found by `name` that overlap an action of kind `action` of the clip's script."""
    spec = run["spec"]
    actions = [a for a in make_script(spec.script, spec.seconds, spec.seed, spec.size).actions if a.kind == action]
    return sum(any(a.start < e.end and e.start < a.end for a in actions) for e in run["found"][name] if e.type in types)


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
    cause = min(
        (a for a in actions if a.kind in ("sunglasses", "glare", "out", "glance", "eye_glance", "closure")),
        key=lambda a: abs(a.start - event.start),
        default=None,
    )
    if cause is None or abs(cause.start - event.start) > 0.2:
        return cases
    return cases + [
        {
            "sunglasses": "sunglasses",
            "glare": "glare",
            "out": "face out of frame",
            "glance": "head turns",
            "eye_glance": "eyes-only glances",
            "closure": "eye closures",
        }[cause.kind]
    ]
