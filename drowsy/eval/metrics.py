"""Detection metrics: COCOeval-exact AP (the competition scored mAP at IoU 0.75), PR curves and a
confusion matrix, from competition-format records (plotted by `drowsy.eval.plots`).

Ground truth records are labels.json / manifest records
`{"file_name", "objects": [{"class", "position": [x1, y1, x2, y2]}]}` (pixels); predictions are
submission records whose objects also carry `"confidence_score"`.

AP comes from faster-coco-eval (a C++ COCOeval that matches pycocotools): 101-point interpolated
precision, area range "all", at most `max_dets` detections per image and class. Objects are first
flattened into numpy arrays; sorting, the per-image-and-class cap and all box IoUs are done there
in a few vectorised passes, so the Python side of COCOeval only sees small annotation dicts. That
keeps a 35,631-image submission (about a million boxes) within seconds
(`benchmarks/evaluate_speed.py`).
"""

import itertools
from dataclasses import dataclass

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

from drowsy import CLASSES
from drowsy.files import gc_paused
from drowsy.progress import progress as progress_bar

# COCOeval's "all" area range: the only one evaluated unless sizes are asked for (which costs their accumulation).
_AREA_ALL = (0.0, 1e5**2)
# COCO's object sizes, by box area in pixels of the original image (COCOeval's areaRng: both ends included).
SIZE_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
_SHOWN_NAMES = 5  # how many offending file names an error message lists


@dataclass(frozen=True)
class _Boxes:
    """The objects of a list of records, flattened: one row per object.

    image: [N] int64, index of the record in the ground truth; class_id: [N] int64;
    xyxy: [N, 4] float64, pixels; score: [N] float64 (ones for ground truth).
    """

    image: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    def select(self, rows: np.ndarray) -> "_Boxes":
        """The rows picked by a boolean mask or an index array, in that order."""
        return _Boxes(self.image[rows], self.class_id[rows], self.xyxy[rows], self.score[rows])


@dataclass(frozen=True)
class _CocoRun:
    """The accumulated result of one COCOeval run.

    precision: [T, R, K, A] float64, interpolated precision per IoU threshold, recall threshold, class and
    area range (the run's; "all" alone unless sizes were asked for), at the run's max_dets; -1 for a class
    without ground truth in the range.
    """

    precision: np.ndarray
    iou_thresholds: np.ndarray  # [T] 0.50, 0.55, ..., 0.95
    recall_thresholds: np.ndarray  # [R] 0.00, 0.01, ..., 1.00


def evaluate_detections(
    ground_truth: list[dict], predictions: list[dict], classes=CLASSES, max_dets: int = 100
) -> dict:
    """COCO AP of `predictions` against `ground_truth`, overall and per class.

    Returns `{"mAP50", "mAP75", "mAP50_95", "per_class": {name: {"AP50", "AP75", "AP50_95"}},
    "images": <ground-truth records>, "predictions": <predicted objects given>}`.
    A class without ground-truth objects is left out of the means and of `per_class` (COCOeval
    marks it -1). Ground-truth images without a prediction record count as all missed.
    Raises ValueError for predictions of images missing from the ground truth, a file name listed
    twice, an unknown class name, a position that is not 4 numbers and a ground truth without objects.
    """
    return _summary(
        _run_cocoeval(ground_truth, predictions, classes, max_dets),
        classes,
        len(ground_truth),
        sum(len(r["objects"]) for r in predictions),
    )


def evaluate_arrays(
    ground_truth: list[dict], file_names: list[str], detections: list, classes=CLASSES, max_dets: int = 100
) -> dict:
    """`evaluate_detections` of predictions given as arrays, as validation makes them: per image of
    `file_names` one [n, 6] float32 array or tensor (x1, y1, x2, y2 pixels, score, class id), rounded
    like a submission (0.1 px, 4 decimals), so the result is the same to the bit as scoring
    `drowsy.infer.postprocess.to_records` of them, without a dict per box (20,000 images x 300 boxes)."""
    image_index = _image_index(ground_truth, file_names)
    rows = [np.asarray(d, dtype=np.float32).reshape(-1, 6) for d in detections]
    flat = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
    # float32 times 10 or 10^4 is exact in float64, so rint rounds as Python's round() does in to_records
    values = flat.astype(np.float64)
    predicted = _Boxes(
        np.repeat([image_index[n] for n in file_names], [len(r) for r in rows]).astype(np.int64),
        values[:, 5].astype(np.int64),
        np.round(values[:, :4], 1),
        np.round(values[:, 4], 4),
    )
    truth = _flatten(ground_truth, image_index, {name: k for k, name in enumerate(classes)}, scored=False)
    return _summary(
        _score(truth, predicted, len(ground_truth), classes, max_dets), classes, len(ground_truth), len(predicted)
    )


def evaluate_by_size(
    ground_truth: list[dict], predictions: list[dict], classes=CLASSES, max_dets: int = 100
) -> list[dict]:
    """AP@0.75 by COCO object size (`SIZE_RANGES`: small, medium, large box areas in original pixels), as
    COCOeval's area ranges score it: objects of other sizes and the predictions matching them are set aside,
    unmatched predictions of other sizes too. One row per size, in the shape of `drowsy.eval.slices.evaluate_by`
    (so `slice_table` and `plot_slices` show it): `{"value", "images" (with an object of the size), "objects":
    {class: n}, "AP75": {class: AP or None where the size has none of the class}, "mAP75"}` (None when the
    size has no object at all)."""
    truth, predicted = _flatten_pair(ground_truth, predictions, classes)
    run = _score(truth, predicted, len(ground_truth), classes, max_dets, tuple(SIZE_RANGES.values()))
    ap75 = run.precision[_threshold_index(run.iou_thresholds, 0.75)].mean(axis=0)  # [K, A]
    xywh = _xywh(truth)
    areas = xywh[:, 2] * xywh[:, 3]
    rows = []
    for a, (label, (low, high)) in enumerate(SIZE_RANGES.items()):
        inside = (areas >= low) & (areas <= high)
        counts = np.bincount(truth.class_id[inside], minlength=len(classes))
        present = ap75[:, a] > -1
        rows.append(
            {
                "value": _size_name(label, low, high),
                "images": len(np.unique(truth.image[inside])),
                "objects": {name: int(counts[k]) for k, name in enumerate(classes)},
                "AP75": {name: float(ap75[k, a]) if present[k] else None for k, name in enumerate(classes)},
                "mAP75": float(ap75[present, a].mean()) if present.any() else None,
            }
        )
    return rows


def _size_name(label: str, low: float, high: float) -> str:
    """ "small (< 32x32 px)", "medium (32x32-96x96 px)", "large (> 96x96 px)": the range as box areas."""
    low_side, high_side = round(low**0.5), round(high**0.5)
    if low == 0:
        return f"{label} (< {high_side}x{high_side} px)"
    if high >= _AREA_ALL[1]:
        return f"{label} (> {low_side}x{low_side} px)"
    return f"{label} ({low_side}x{low_side}-{high_side}x{high_side} px)"


def _summary(run: "_CocoRun", classes, images: int, predictions: int) -> dict:
    """evaluate_detections' dict from a COCOeval run."""
    per_iou = run.precision[..., 0].mean(axis=1)  # [T, K]: AP per IoU threshold and class, area "all"
    present = per_iou[0] > -1
    if not present.any():
        raise ValueError("the ground truth has no objects: nothing to score")
    ap50 = per_iou[_threshold_index(run.iou_thresholds, 0.5)]
    ap75 = per_iou[_threshold_index(run.iou_thresholds, 0.75)]
    ap50_95 = per_iou.mean(axis=0)
    return {
        "mAP50": float(ap50[present].mean()),
        "mAP75": float(ap75[present].mean()),
        "mAP50_95": float(ap50_95[present].mean()),
        "per_class": {
            name: {"AP50": float(ap50[k]), "AP75": float(ap75[k]), "AP50_95": float(ap50_95[k])}
            for k, name in enumerate(classes)
            if present[k]
        },
        "images": images,
        "predictions": predictions,
    }


def pr_curves(
    ground_truth: list[dict], predictions: list[dict], iou: float = 0.75, classes=CLASSES, max_dets: int = 100
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """COCOeval's interpolated precision-recall curves at IoU `iou` (one of 0.50, 0.55, ..., 0.95).

    Returns {class name: (recall [101] float64, precision [101] float64)} for the classes that have
    ground truth; the mean of a curve's precision is the class's AP at that IoU.
    """
    run = _run_cocoeval(ground_truth, predictions, classes, max_dets)
    precision = run.precision[_threshold_index(run.iou_thresholds, iou), :, :, 0]  # [R, K], area "all"
    return {
        name: (run.recall_thresholds.copy(), precision[:, k].copy())
        for k, name in enumerate(classes)
        if precision[0, k] > -1
    }


def confusion_matrix(
    ground_truth: list[dict],
    predictions: list[dict],
    iou: float = 0.5,
    conf: float = 0.25,
    classes=CLASSES,
    progress: bool = False,
) -> np.ndarray:
    """Counts of (predicted class, true class) pairs: [nc + 1, nc + 1] int64.

    Rows are predicted classes, columns true classes; the last row and column are "background"
    (a missed object counts in the last row, a prediction matching no object in the last column).
    Predictions scoring at least `conf` are matched to objects of any class greedily, highest IoU
    first, each at most once, when their IoU is at least `iou`.
    """

    truth, predicted = _flatten_pair(ground_truth, predictions, classes)
    predicted = predicted.select(predicted.score >= conf)
    background = len(classes)
    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)
    truth_matched = np.zeros(len(truth), dtype=bool)
    predicted_matched = np.zeros(len(predicted), dtype=bool)
    image_rows = zip(_rows_by_image(truth.image, len(ground_truth)), _rows_by_image(predicted.image, len(ground_truth)))
    for truth_rows, predicted_rows in progress_bar(
        image_rows, total=len(ground_truth), desc="confusion", enabled=progress
    ):
        if len(truth_rows) == 0 or len(predicted_rows) == 0:
            continue
        for p, t in _greedy_matches(predicted.xyxy[predicted_rows], truth.xyxy[truth_rows], iou):
            matrix[predicted.class_id[predicted_rows[p]], truth.class_id[truth_rows[t]]] += 1
            predicted_matched[predicted_rows[p]] = True
            truth_matched[truth_rows[t]] = True
    np.add.at(matrix[background], truth.class_id[~truth_matched], 1)
    np.add.at(matrix[:, background], predicted.class_id[~predicted_matched], 1)
    return matrix


def _flatten_pair(ground_truth: list[dict], predictions: list[dict], classes) -> tuple[_Boxes, _Boxes]:
    image_index = _image_index(ground_truth, [r["file_name"] for r in predictions])
    class_index = {name: k for k, name in enumerate(classes)}
    return (
        _flatten(ground_truth, image_index, class_index, scored=False),
        _flatten(predictions, image_index, class_index, scored=True),
    )


def _image_index(ground_truth: list[dict], predicted_names: list[str]) -> dict[str, int]:
    """file name -> index of its ground-truth record; ValueError for a name listed twice on either side
    or a predicted image the ground truth does not have."""
    image_index = {r["file_name"]: i for i, r in enumerate(ground_truth)}
    _reject_repeated_names([r["file_name"] for r in ground_truth], image_index)
    _reject_repeated_names(predicted_names, set(predicted_names))
    unknown = [name for name in predicted_names if name not in image_index]
    if unknown:
        raise ValueError(
            f"{len(unknown)} predicted image(s) not in the ground truth: {', '.join(unknown[:_SHOWN_NAMES])}"
        )
    return image_index


def _reject_repeated_names(names: list[str], distinct_names) -> None:
    if len(distinct_names) == len(names):
        return
    seen, repeated = set(), []
    for name in names:
        if name in seen:
            repeated.append(name)
        seen.add(name)
    raise ValueError(f"file name(s) listed more than once: {', '.join(repeated[:_SHOWN_NAMES])}")


def _flatten(records: list[dict], image_index: dict[str, int], class_index: dict[str, int], scored: bool) -> _Boxes:
    counts = np.fromiter((len(r["objects"]) for r in records), dtype=np.int64, count=len(records))
    images = np.fromiter((image_index[r["file_name"]] for r in records), dtype=np.int64, count=len(records))
    objects = list(itertools.chain.from_iterable(r["objects"] for r in records))
    try:
        class_id = np.fromiter((class_index[o["class"]] for o in objects), dtype=np.int64, count=len(objects))
    except KeyError as err:
        raise ValueError(f"unknown class {err.args[0]!r}; known: {', '.join(class_index)}") from None
    if any(len(o["position"]) != 4 for o in objects):
        raise ValueError("every position must be 4 numbers [x1, y1, x2, y2]")
    # One flat pass over the coordinates is about twice as fast as np.array on a list of lists.
    positions = itertools.chain.from_iterable(o["position"] for o in objects)
    xyxy = np.fromiter(positions, dtype=np.float64, count=4 * len(objects)).reshape(-1, 4)
    if scored:
        score = np.fromiter((o["confidence_score"] for o in objects), dtype=np.float64, count=len(objects))
    else:
        score = np.ones(len(objects))
    return _Boxes(np.repeat(images, counts), class_id, xyxy, score)


class _GivenIoUEval(COCOeval_faster):
    """COCOeval on boxes whose IoUs were computed beforehand in one vectorised pass (`_pair_ious`),
    instead of in one Python call per image and class."""

    def __init__(self, truth: COCO, predictions: COCO, ious: dict[tuple[int, int], np.ndarray]):
        super().__init__(truth, predictions, iouType="bbox")
        self.given_ious = ious

    def computeIoU(self, imgId, catId):
        return self.given_ious.get((imgId, catId), [])


def _run_cocoeval(ground_truth: list[dict], predictions: list[dict], classes, max_dets: int) -> _CocoRun:
    truth, predicted = _flatten_pair(ground_truth, predictions, classes)
    return _score(truth, predicted, len(ground_truth), classes, max_dets)


def _score(
    truth: _Boxes, predicted: _Boxes, num_images: int, classes, max_dets: int, area_ranges=(_AREA_ALL,)
) -> _CocoRun:
    """COCOeval of flattened boxes (`_flatten`) of `num_images` ground-truth images, for each area range."""
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    num_classes = len(classes)
    truth = truth.select(np.lexsort((truth.class_id, truth.image)))
    # Sorted by (image, class, descending score), stably, the predictions are in the order
    # COCOeval ranks them, so IoU rows line up; only the `max_dets` best of an image and class count.
    predicted = predicted.select(np.lexsort((-predicted.score, _group(predicted, num_classes))))
    predicted = predicted.select(_rank_in_run(_group(predicted, num_classes)) < max_dets)
    with gc_paused():  # millions of small objects would set off full collections again and again
        images = [{"id": i + 1} for i in range(num_images)]
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
        evaluator = _GivenIoUEval(
            COCO({"images": images, "categories": categories, "annotations": _coco_annotations(truth, False)}),
            COCO({"images": images, "categories": categories, "annotations": _coco_annotations(predicted, True)}),
            _pair_ious(truth, predicted, num_classes),
        )
        evaluator.params.maxDets = [max_dets]
        evaluator.params.areaRng = [list(area) for area in area_ranges]
        evaluator.params.areaRngLbl = [str(k) for k in range(len(area_ranges))]
        evaluator.evaluate()
        evaluator.accumulate()
    return _CocoRun(
        precision=np.asarray(evaluator.eval["precision"])[:, :, :, :, 0],
        iou_thresholds=np.asarray(evaluator.params.iouThrs),
        recall_thresholds=np.asarray(evaluator.params.recThrs),
    )


def _group(boxes: _Boxes, num_classes: int) -> np.ndarray:
    """[N] int64 key of each box's (image, class) pair."""
    return boxes.image * num_classes + boxes.class_id


def _rank_in_run(sorted_keys: np.ndarray) -> np.ndarray:
    """[N] int64 position of each element within its run of equal keys (keys sorted)."""
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return np.arange(len(sorted_keys)) - np.repeat(starts, np.diff(np.r_[starts, len(sorted_keys)]))


def _xywh(boxes: _Boxes) -> np.ndarray:
    """[N, 4] float64 COCO boxes (x, y, width, height)."""
    xywh = boxes.xyxy.copy()
    xywh[:, 2:] -= xywh[:, :2]
    return xywh


def _coco_annotations(boxes: _Boxes, scored: bool) -> list[dict]:
    """COCO annotations without "bbox": COCOeval's C++ core reads only id, area, iscrowd and score,
    and the IoUs are given. Ids start at 1 because COCOeval uses id 0 for "unmatched"."""
    xywh = _xywh(boxes)
    ids, images, categories = np.arange(1, len(boxes) + 1), boxes.image + 1, boxes.class_id + 1
    areas = xywh[:, 2] * xywh[:, 3]
    rows = zip(ids.tolist(), images.tolist(), categories.tolist(), areas.tolist(), boxes.score.tolist())
    if scored:
        return [
            {"id": i, "image_id": im, "category_id": c, "area": a, "iscrowd": 0, "score": s} for i, im, c, a, s in rows
        ]
    return [{"id": i, "image_id": im, "category_id": c, "area": a, "iscrowd": 0} for i, im, c, a, _ in rows]


def _pair_ious(truth: _Boxes, predicted: _Boxes, num_classes: int) -> dict[tuple[int, int], np.ndarray]:
    """IoU matrices [predictions, objects] float64 keyed by COCO (image id, category id), for every
    image and class having both; rows and columns in the order of the inputs, which are sorted by
    (image, class). The arithmetic is COCO's bbIou on the same xywh numbers, so are the bits."""
    truth_groups, predicted_groups = _group(truth, num_classes), _group(predicted, num_classes)
    first_truth = np.searchsorted(truth_groups, predicted_groups, side="left")
    truth_count = np.searchsorted(truth_groups, predicted_groups, side="right") - first_truth
    # One row per (prediction, object of the same image and class), predictions outer.
    predicted_index = np.repeat(np.arange(len(predicted)), truth_count)
    truth_index = np.repeat(first_truth, truth_count) + _rank_in_run(predicted_index)

    d, g = _xywh(predicted)[predicted_index], _xywh(truth)[truth_index]
    width = np.minimum(d[:, 0] + d[:, 2], g[:, 0] + g[:, 2]) - np.maximum(d[:, 0], g[:, 0])
    height = np.minimum(d[:, 1] + d[:, 3], g[:, 1] + g[:, 3]) - np.maximum(d[:, 1], g[:, 1])
    intersection = width * height
    union = d[:, 2] * d[:, 3] + g[:, 2] * g[:, 3] - intersection
    iou = np.divide(intersection, union, out=np.zeros(len(intersection)), where=(width > 0) & (height > 0))

    pair_groups = predicted_groups[predicted_index]
    starts = np.flatnonzero(np.r_[True, pair_groups[1:] != pair_groups[:-1]]) if len(pair_groups) else pair_groups
    keys, columns = pair_groups[starts].tolist(), truth_count[predicted_index[starts]].tolist()
    return {
        (key // num_classes + 1, key % num_classes + 1): block.reshape(-1, num_objects)
        for key, block, num_objects in zip(keys, np.split(iou, starts[1:]), columns)
    }


def _threshold_index(thresholds: np.ndarray, iou: float) -> int:
    # The grid is linspace(0.5, 0.95, 10): compare with a tolerance, never by exact float equality.
    hits = np.flatnonzero(np.isclose(thresholds, iou))
    if len(hits) != 1:
        raise ValueError(f"IoU {iou} is not on COCOeval's grid {np.round(thresholds, 2).tolist()}")
    return int(hits[0])


def _rows_by_image(image: np.ndarray, num_images: int) -> list[np.ndarray]:
    """Row indices of each image's boxes: a list of num_images int64 arrays."""
    order = np.argsort(image, kind="stable")
    return np.split(order, np.searchsorted(image[order], np.arange(1, num_images)))


def _greedy_matches(predicted_xyxy: np.ndarray, true_xyxy: np.ndarray, iou: float) -> list[tuple[int, int]]:
    """(prediction, object) index pairs, highest IoU first, each side used once, IoU >= `iou`."""
    import torch
    from torchvision.ops import box_iou

    overlaps = box_iou(torch.from_numpy(predicted_xyxy), torch.from_numpy(true_xyxy)).numpy()
    candidates = np.argwhere(overlaps >= iou)
    candidates = candidates[np.argsort(-overlaps[candidates[:, 0], candidates[:, 1]], kind="stable")]
    used_predicted, used_true, pairs = set(), set(), []
    for p, t in candidates.tolist():
        if p not in used_predicted and t not in used_true:
            used_predicted.add(p)
            used_true.add(t)
            pairs.append((p, t))
    return pairs
