"""Score calibration of a detector for the monitor: per signal, a log-odds offset fitted on labelled
images (`calibrate`), written to and read from calibration.json."""

import math
from pathlib import Path

import numpy as np

from drowsy.config import MonitorConfig
from drowsy.errors import DrowsyError
from drowsy.files import read_gray, read_json, write_json
from drowsy.monitor.detect import detect_frames
from drowsy.monitor.state import CALIBRATED, SEEN, frame_scores, logit, sigmoid
from drowsy.paths import resolve
from drowsy.progress import progress as progress_bar

# The classes whose boxes make each signal's true state in a labelled image: (yes classes, no class);
# with no "no" class, the signal is true when any of the "yes" classes is labelled.
SIGNAL_CLASSES = {
    "eyes_closed": (("eye_closed",), "eye_opened"),
    "mouth_open": (("mouth_opened",), "mouth_closed"),
    "phone": (("phone",), None),
    "cigarette": (("cigar",), None),
    "eyes_seen": (("eye_opened", "eye_closed"), None),
    "mouth_seen": (("mouth_opened", "mouth_closed"), None),
}


def image_states(objects: list[dict]) -> dict[str, bool | None]:
    """True per-signal state of a labelled image (objects as in labels.json): eyes / mouth None when
    not labelled or labelled both ways (one eye open, one closed); phone, cigarette: any such box;
    eyes_seen: any eye box (the synthetic data, like AIHub's, labels no eye hidden by sunglasses,
    a glare or a hand); mouth_seen: any mouth box (none is labelled under a mask or a hand)."""
    names = [obj["class"] for obj in objects]
    states = {}
    for signal, (yes, no) in SIGNAL_CLASSES.items():
        has_yes = any(name in names for name in yes)
        if no is None:
            states[signal] = has_yes
        else:
            has_no = no in names
            states[signal] = has_yes if has_yes != has_no else None
    return states


# What each signal's boundary maximises on the labelled images. Balanced accuracy (mean of the true-positive and
# true-negative rates) weighs both states equally however rare one is: right for eyes and mouths, whose two states
# are both common and both matter. A phone or a cigarette is in a few images of a split (15 of the demo's 300):
# there a missed one would cost as much as 19 images falsely flagged, which puts the boundary where phone-like
# shapes pass and the monitor raises phone alerts all along some drivers' clips (RESULTS.md, monitor benchmark).
# F1 counts the flagged images that are wrong against the ones found and ignores the plentiful true negatives.
CRITERIA = {signal: "F1" if signal in ("phone", "cigarette") else "balanced accuracy" for signal in CALIBRATED}


def fit_offset(logits: np.ndarray, positive: np.ndarray, criterion: str = "balanced accuracy") -> tuple[float, float]:
    """The boundary on `logits` that best separates `positive` from the rest by `criterion` ("balanced accuracy"
    or "F1", see CRITERIA): (offset, the criterion's value there). Of the equally good boundaries, the middle of
    their range in score, not in log-odds: where one side's scores all sit near 1 (open mouths with no closed-mouth
    box, log-odds up to 13.8), the log-odds middle would ask a clip's yawn for 0.999."""
    logits, positive = np.asarray(logits, np.float64), np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise ValueError("fit_offset needs both states among the samples")
    order = np.argsort(logits, kind="stable")
    values, labels = logits[order], positive[order]
    distinct = np.flatnonzero(np.diff(values) > 0)  # boundary between values[k] and values[k + 1]
    candidates = np.concatenate([[-1], distinct, [len(values) - 1]])  # k = -1: everything counts as positive
    true_negatives = np.concatenate([[0], np.cumsum(~labels)])[candidates + 1]
    true_positives = labels.sum() - np.concatenate([[0], np.cumsum(labels)])[candidates + 1]
    if criterion == "F1":
        false_positives = (~labels).sum() - true_negatives
        score = 2 * true_positives / (labels.sum() + true_positives + false_positives)
    else:
        score = (true_positives / labels.sum() + true_negatives / (~labels).sum()) / 2
    best = np.flatnonzero(score >= score.max() - 1e-12)
    below = values[candidates[best[0]]] if candidates[best[0]] >= 0 else values[0] - 1.0
    above = values[candidates[best[-1]] + 1] if candidates[best[-1]] + 1 < len(values) else values[-1] + 1.0
    return float(logit((sigmoid(below) + sigmoid(above)) / 2)), float(score.max())


def calibrate(
    detector,
    split: str | Path,
    config: MonitorConfig | None = None,
    img_size: int = 416,
    iou: float = 0.7,
    batch: int = 8,
    progress: bool = True,
    images: int = 0,
) -> dict:
    """Fit each signal's log-odds offset (see `frame_scores`) on a labelled split of `drowsy prepare`
    (`images` of its records spread evenly over it, or all of them when 0).

    A detector's class scores are not a calibrated vote between classes: trained on the natural class
    balance, a 20-epoch demo model gave a closed eye eye_closed ~0.2 and eye_opened ~0.5, so c / (c + o)
    never passed 0.5 although the two scores ranked closed eyes almost perfectly (eye_closed AP 0.93). The
    offset moves each signal's 0.5 to the boundary that best separates the split's images by their
    labelled state (`fit_offset`); the on/off thresholds of the config then sit around it.
    Returns {"split", "img_size", "min_score", "signals": {signal: {"offset", "criterion", "fit",
    "images", "positives", "fitted", "logits", "states"}}}: per signal the images where both the truth
    and the score are known, their raw log-odds and true states (for `plot_calibration`); a signal with
    one state only in the split keeps offset 0 ("fitted": false).
    """
    from drowsy.data.labels import load_manifest, spread

    config = config or MonitorConfig()
    manifest = load_manifest(split)
    samples = {signal: ([], []) for signal in CALIBRATED}  # per signal: raw logits, true states
    records = spread(manifest.records, images)
    with progress_bar(desc="calibrate", total=len(records), unit="img", enabled=progress) as bar:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            images = [read_gray(manifest.image_root / record["file_name"]) for record in chunk]
            for scores, record in zip(_raw_scores(detector, images, img_size, config.min_score, iou), chunk):
                _add_samples(samples, scores, image_states(record["objects"]))
            bar.update(len(chunk))
    floor = float(logit(config.min_score))
    signals = {
        signal: _fit_signal(logits, states, CRITERIA[signal], floor if signal in SEEN else None)
        for signal, (logits, states) in samples.items()
    }
    return {"split": str(manifest.path), "img_size": img_size, "min_score": config.min_score, "signals": signals}


def _raw_scores(detector, images: list[np.ndarray], img_size: int, min_score: float, iou: float) -> list[dict]:
    """Per image, in order, the uncalibrated per-signal scores (`frame_scores`) of its detections."""
    scores = [None] * len(images)
    for same in _same_shape_runs(images):  # detect_frames letterboxes one shape at a time
        detections = detect_frames(detector, [images[i] for i in same], img_size, min_score, iou)
        for i, frame_detections in zip(same, detections):
            scores[i] = frame_scores(frame_detections, min_score, exclusive=False)
    return scores


def _add_samples(samples: dict[str, tuple[list, list]], scores: dict, truth: dict) -> None:
    """Append one image's raw log-odds and true state to each signal where both are known."""
    for signal, (logits, states) in samples.items():
        if scores[signal] is not None and truth[signal] is not None:
            logits.append(float(logit(scores[signal])))
            states.append(truth[signal])


def _fit_signal(logits: list[float], states: list[bool], criterion: str, floor: float | None = None) -> dict:
    """One signal's entry of `calibrate`'s result: offset 0 ("fitted": false) unless both states occur;
    "fit": the `criterion`'s value at the boundary (None when not fitted).

    floor: the lowest offset allowed, also the offset when not fitted (eyes_seen, mouth_seen:
    logit(min_score), where any eye or mouth box the monitor keeps counts as seen, as without calibration)."""
    fitted = 0 < sum(states) < len(states)
    offset, fit = fit_offset(logits, states, criterion) if fitted else (floor or 0.0, None)
    if floor is not None:
        offset = max(offset, floor)
    return {
        "offset": offset,
        "criterion": criterion,
        "fit": fit,
        "images": len(states),
        "positives": int(sum(states)),
        "fitted": fitted,
        "logits": [round(v, 4) for v in logits],
        "states": states,
    }


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
    return write_json(path, calibration, indent=None)


def load_offsets(path: str | Path, img_size: int) -> dict[str, float]:
    """The per-signal offsets of a calibration.json (`drowsy monitor --calibrate` writes one), fitted at
    `img_size`: scores change with the input size, so offsets from another size are refused."""
    path = resolve(path)
    document = read_json(path)
    if isinstance(document, dict) and document.get("img_size") != img_size:
        raise DrowsyError(
            f"{path}: field 'img_size': calibrated at {document.get('img_size')} pixels, "
            f"the monitor runs at {img_size}; calibrate again at this size"
        )
    signals = document.get("signals") if isinstance(document, dict) else None
    if not isinstance(signals, dict):
        raise DrowsyError(f"{path}: field 'signals': expected a mapping of signal -> {{\"offset\": ...}}")
    offsets = {}
    for signal, entry in signals.items():
        if signal not in CALIBRATED:
            raise DrowsyError(f"{path}: record '{signal}': unknown signal (have {', '.join(CALIBRATED)})")
        offset = entry.get("offset") if isinstance(entry, dict) else None
        if not isinstance(offset, (int, float)) or not math.isfinite(offset):
            raise DrowsyError(f"{path}: record '{signal}': field 'offset': expected a finite number, got {offset!r}")
        offsets[signal] = float(offset)
    return offsets
