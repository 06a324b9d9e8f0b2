"""Driver-monitoring events on a clip's time line: the `Event` type, events.json files and scoring
predictions against the truth.

An event is `Event(type, start, end, alert)`: a type from EVENT_TYPES, the interval [start, end) in
seconds from the clip start and, for the types that alert, when it became conclusive (the truth: when
the protocol says it does; a prediction: when the monitor's alert fired). events.json (written by
`drowsy.synth.clips.write_clip` for the truth and by `drowsy.monitor.run_monitor` for predictions):
`{"fps", "frames", "seconds", "events": [{"type", "start", "end", "alert"?}, ...], "alert_free"?}`,
events sorted by start; the truth's optional `alert_free`, [[start, end], ...], lists stretches of
alert driving where no alert is scripted (false alerts per hour are counted there).

Scoring matches events of the same type one to one by their overlap in time, measured as IoU
(intersection over union of the two intervals): all candidate pairs with IoU >= `min_overlap` are
taken greedily, largest IoU first, each event at most once. Events of one type rarely overlap each
other, so greedy almost never differs from an optimal (Hungarian) assignment and needs no solver.

The numpy-only state machine (`drowsy.monitor.state`) imports `Event` from here, so `drowsy.files`,
which loads OpenCV, is imported inside the two functions that read or write a file.
"""

import dataclasses
import math
import statistics
from pathlib import Path

from drowsy.errors import DrowsyError
from drowsy.paths import resolve

EVENT_TYPES = (
    "blink",
    "microsleep",
    "sleep",
    "unresponsive",
    "drowsy",
    "yawn",
    "distraction",
    "vats",
    "phone",
    "smoking",
    "degraded",
)
ALERT_EVENTS = EVENT_TYPES[1:]  # every type but the blink warns the driver
MIN_OVERLAP = 0.5  # temporal IoU for a match, as the 0.5 box IoU of PASCAL VOC detection scoring


@dataclasses.dataclass(frozen=True)
class Event:
    """One event on a clip's time line: type in EVENT_TYPES, [start, end) in seconds from the clip start,
    alert: when it became conclusive (seconds; None where it does not alert or is not known)."""

    type: str
    start: float
    end: float
    alert: float | None = None

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


def as_events(items) -> list[Event]:
    """Events from Event objects or {"type", "start", "end"} dicts (times in seconds)."""
    return [
        item
        if isinstance(item, Event)
        else Event(item["type"], float(item["start"]), float(item["end"]), _optional(item.get("alert")))
        for item in items
    ]


def _optional(value) -> float | None:
    return None if value is None else float(value)


def load_events(path: str | Path) -> list[Event]:
    """Read events.json; a malformed record ends in one line naming the file, the record and the field."""
    from drowsy.files import read_json

    path = resolve(path)
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise DrowsyError(f"{path}: field 'events': expected a list of {{type, start, end}} records")
    events = []
    for i, record in enumerate(document["events"]):
        if not isinstance(record, dict):
            raise DrowsyError(f"{path}: record {i}: expected an object with type, start, end")
        if record.get("type") not in EVENT_TYPES:
            raise DrowsyError(
                f"{path}: record {i}: field 'type': must be one of {', '.join(EVENT_TYPES)}, got {record.get('type')!r}"
            )
        for field in ("start", "end", "alert"):
            value = record.get(field)
            if field == "alert" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DrowsyError(f"{path}: record {i}: field '{field}': must be a number of seconds, got {value!r}")
        if record["end"] < record["start"]:
            raise DrowsyError(f"{path}: record {i}: field 'end': {record['end']} is before start {record['start']}")
        events.append(
            Event(record["type"], float(record["start"]), float(record["end"]), _optional(record.get("alert")))
        )
    return events


def load_alert_free(path: str | Path) -> list[tuple[float, float]]:
    """The truth's alert-free stretches ([] when events.json has none)."""
    from drowsy.files import read_json

    path = resolve(path)
    stretches = read_json(path).get("alert_free", [])
    for i, stretch in enumerate(stretches):
        if not (isinstance(stretch, list) and len(stretch) == 2 and stretch[0] <= stretch[1]):
            raise DrowsyError(
                f"{path}: alert_free record {i}: expected [start, end] with start <= end, got {stretch!r}"
            )
    return [(float(a), float(b)) for a, b in stretches]


def false_alerts(predicted, alert_free: list[tuple[float, float]]) -> list[Event]:
    """The alerts (events of ALERT_EVENTS, at their alert time, else their start) inside the alert-free
    stretches."""
    return [
        e
        for e in as_events(predicted)
        if e.type in ALERT_EVENTS and any(a <= (e.alert if e.alert is not None else e.start) < b for a, b in alert_free)
    ]


def false_alerts_per_hour(predicted, alert_free: list[tuple[float, float]]) -> float | None:
    """`false_alerts` per hour of the alert-free stretches; None when there are none."""
    hours = sum(end - start for start, end in alert_free) / 3600
    return len(false_alerts(predicted, alert_free)) / hours if hours > 0 else None


def write_events(
    path: str | Path, events: list[Event], fps: float, frames: int, alert_free: list[tuple[float, float]] | None = None
) -> Path:
    """Write events.json, events sorted by start, times rounded to 1 ms (`alert` only where known,
    `alert_free` only when given). Returns the path."""
    from drowsy.files import write_json

    document = {
        "fps": fps,
        "frames": frames,
        "seconds": round(frames / fps, 3),
        "events": [event_record(e) for e in sorted(as_events(events), key=lambda e: (e.start, e.type))],
    }
    if alert_free is not None:
        document["alert_free"] = [[round(a, 3), round(b, 3)] for a, b in alert_free]
    return write_json(path, document, indent=1)


def event_record(event: Event) -> dict:
    """An event as its events.json record (times rounded to 1 ms)."""
    record = {"type": event.type, "start": round(event.start, 3), "end": round(event.end, 3)}
    if event.alert is not None:
        record["alert"] = round(event.alert, 3)
    return record


def temporal_iou(a: Event, b: Event) -> float:
    """Intersection over union of two time intervals (0 when they do not touch)."""
    intersection = min(a.end, b.end) - max(a.start, b.start)
    if intersection <= 0:
        return 0.0
    return intersection / (max(a.end, b.end) - min(a.start, b.start))


def match_events(predicted, truth, min_overlap: float = MIN_OVERLAP) -> list[tuple[int, int, float]]:
    """One-to-one matches between events of the same type: (predicted index, truth index, IoU),
    greedily by IoU (largest first; ties: earlier truth, then earlier prediction), IoU >= min_overlap."""
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
    predicted, truth = as_events(predicted), as_events(truth)
    candidates = []
    for p, pred in enumerate(predicted):
        for t, true in enumerate(truth):
            iou = temporal_iou(pred, true) if pred.type == true.type else 0.0
            if iou >= min_overlap:
                candidates.append((-iou, t, p))
    matches, used_pred, used_truth = [], set(), set()
    for neg_iou, t, p in sorted(candidates):
        if p not in used_pred and t not in used_truth:
            used_pred.add(p)
            used_truth.add(t)
            matches.append((p, t, -neg_iou))
    return sorted(matches, key=lambda m: m[1])


def score_events(predicted, truth, min_overlap: float = MIN_OVERLAP, types=None) -> dict[str, dict]:
    """Precision, recall and F1 per event type after `match_events`.

    predicted, truth: Event objects or {"type", "start", "end"} dicts. types: the types to report
    (default: every type present in either list, in EVENT_TYPES order). Returns
    {type: {"precision", "recall", "f1", "tp", "fp", "fn", "latency_median", "latency_worst"}}; a ratio
    with a zero denominator is 0.0 (no predictions: precision 0; nothing to find: recall 0), so a type
    with neither scores all zeros. The latencies are over matches where both events have an alert time:
    the prediction's alert minus the truth's (seconds; the worst is the one furthest from 0; None without
    such matches).
    """
    predicted, truth = as_events(predicted), as_events(truth)
    if types is None:
        present = {e.type for e in predicted + truth}
        types = [t for t in EVENT_TYPES if t in present] + sorted(present - set(EVENT_TYPES))
    matches = match_events(predicted, truth, min_overlap)
    matched_types = [predicted[p].type for p, _, _ in matches]
    scores = {}
    for kind in types:
        latencies = [
            predicted[p].alert - truth[t].alert
            for p, t, _ in matches
            if predicted[p].type == kind and predicted[p].alert is not None and truth[t].alert is not None
        ]
        tp = matched_types.count(kind)
        fp = sum(e.type == kind for e in predicted) - tp
        fn = sum(e.type == kind for e in truth) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[kind] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "latency_median": statistics.median(latencies) if latencies else None,
            "latency_worst": max(latencies, key=abs) if latencies else None,
        }
    return scores


def event_table(predicted, truth, min_overlap: float = MIN_OVERLAP):
    """Every event of both lists in one pandas DataFrame, one row per match, miss or false alarm.

    Columns: type, outcome ("match", "missed", "false alarm"), truth_start, truth_end, pred_start,
    pred_end (seconds; NaN where absent), iou. Sorted by type, then time.
    """
    import pandas as pd

    predicted, truth = as_events(predicted), as_events(truth)
    matches = match_events(predicted, truth, min_overlap)
    rows = [_row("match", truth[t], predicted[p], iou) for p, t, iou in matches]
    matched_pred, matched_truth = {p for p, _, _ in matches}, {t for _, t, _ in matches}
    rows += [_row("missed", e, None, 0.0) for t, e in enumerate(truth) if t not in matched_truth]
    rows += [_row("false alarm", None, e, 0.0) for p, e in enumerate(predicted) if p not in matched_pred]
    columns = ["type", "outcome", "truth_start", "truth_end", "pred_start", "pred_end", "iou"]
    table = pd.DataFrame(rows, columns=columns)
    order = {kind: i for i, kind in enumerate(EVENT_TYPES)}
    table["_order"] = table["type"].map(order).fillna(len(order))
    table["_time"] = table["truth_start"].fillna(table["pred_start"])
    return table.sort_values(["_order", "_time"]).drop(columns=["_order", "_time"]).reset_index(drop=True)


def _row(outcome: str, true: Event | None, pred: Event | None, iou: float) -> dict:
    nan = float("nan")
    return {
        "type": (true or pred).type,
        "outcome": outcome,
        "truth_start": true.start if true else nan,
        "truth_end": true.end if true else nan,
        "pred_start": pred.start if pred else nan,
        "pred_end": pred.end if pred else nan,
        "iou": round(iou, 3),
    }
