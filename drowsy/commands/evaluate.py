"""`drowsy evaluate`: score a submission-format predictions file against labels, COCOeval-exact."""

import argparse
import json
import math

from drowsy.commands.options import renamed

HELP = (
    "score predictions (submission JSON) against labels: COCO mAP@0.5, @0.75 (the competition's), @0.5:0.95, "
    "and AP@0.75 by object size (COCO's small, medium, large)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    renamed(parser, "--max-dets", "--max-det")
    parser.add_argument(
        "--labels", required=True, metavar="JSON", help="ground truth: competition labels.json or a manifest"
    )
    parser.add_argument("--predictions", required=True, metavar="JSON", help="predictions in the submission format")
    parser.add_argument(
        "--max-det", type=int, default=100, help="detections scored per image and class (default 100, as COCO)"
    )
    parser.add_argument(
        "--by",
        action="append",
        metavar="KEY",
        default=[],
        help="also score each value of this meta key apart (lighting, behaviour, glasses, subject, "
        "...; the labels must be a manifest of drowsy prepare, or carry AIHub file names); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from drowsy.data.labels import read_labels
    from drowsy.errors import DrowsyError
    from drowsy.eval.metrics import evaluate_by_size, evaluate_detections
    from drowsy.eval.slices import evaluate_by, slice_table
    from drowsy.paths import resolve

    if args.max_det < 1:
        raise DrowsyError(f"evaluate: field 'max_det': must be >= 1, got {args.max_det}")
    for path, role in ((args.labels, "labels"), (args.predictions, "predictions")):
        if not resolve(path).is_file():
            raise DrowsyError(f"{resolve(path)}: {role} file not found")
    ground_truth = _checked(read_labels(args.labels), args.labels, scored=False)
    predictions = _checked(read_labels(args.predictions), args.predictions, scored=True)
    if not any(record["objects"] for record in ground_truth):
        raise DrowsyError(f"{args.labels}: field 'objects': no record has any object, nothing to score against")
    try:
        result = evaluate_detections(ground_truth, predictions, max_dets=args.max_det)
    except ValueError as err:
        # With both files well formed, what is left to reject is predictions for unknown images.
        raise DrowsyError(f"{args.predictions}: {err} (labels: {args.labels})") from None
    sizes = evaluate_by_size(ground_truth, predictions, max_dets=args.max_det)
    slices = {key: evaluate_by(ground_truth, predictions, key, args.max_det) for key in args.by}
    if args.json:
        print(json.dumps({**result, "by_size": sizes, **({"by": slices} if slices else {})}))
        return 0
    print(_table(result))
    print(f"\nAP@0.75 by object size (COCO's areas; objects in brackets):\n{slice_table(sizes, 'size').to_string()}")
    for key, rows in slices.items():
        print(f"\nAP@0.75 by {key} (objects in brackets):\n{slice_table(rows, key).to_string()}")
    return 0


def _checked(records: list, path: str, scored: bool) -> list[dict]:
    """The records, if each is `{"file_name": str, "objects": [{"class", "position"[, "confidence_score"]}]}`
    with a file name of its own, known classes and finite numbers; else a one-line DrowsyError
    naming file, record and field."""
    from drowsy import CLASS_IDS
    from drowsy.errors import DrowsyError

    first_record: dict[str, int] = {}
    for i, record in enumerate(records):
        name = record.get("file_name") if isinstance(record, dict) else None
        where = f"{path}: record {i} ({name})"
        if not isinstance(name, str):
            raise DrowsyError(f"{path}: record {i}: field 'file_name': missing or not a string")
        if name in first_record:
            raise DrowsyError(f"{where}: field 'file_name': repeats record {first_record[name]}")
        first_record[name] = i
        if not isinstance(record.get("objects"), list):
            raise DrowsyError(f"{where}: field 'objects': missing or not a list")
        for j, obj in enumerate(record["objects"]):
            problem = _object_problem(obj, CLASS_IDS, scored)
            if problem:
                raise DrowsyError(f"{where}: field 'objects[{j}]{problem[0]}': {problem[1]}")
    return records


def _object_problem(obj, class_ids, scored: bool) -> tuple[str, str] | None:
    """(field suffix, what is wrong) for a malformed object, else None."""
    if not isinstance(obj, dict):
        return "", f"must be an object, got {type(obj).__name__}"
    if obj.get("class") not in class_ids:
        return ".class", f"unknown class {obj.get('class')!r}"
    position = obj.get("position")
    if not (isinstance(position, list) and len(position) == 4 and all(map(_finite, position))):
        return ".position", f"must be 4 finite numbers [x1, y1, x2, y2], got {position!r}"
    if scored and not _finite(obj.get("confidence_score")):
        return ".confidence_score", f"must be a finite number, got {obj.get('confidence_score')!r}"
    return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table(result: dict) -> str:
    import pandas as pd

    table = pd.DataFrame.from_dict(result["per_class"], orient="index", columns=["AP50", "AP75", "AP50_95"])
    table.loc["mean"] = [result["mAP50"], result["mAP75"], result["mAP50_95"]]
    return (
        f"{result['images']} images, {result['predictions']} predictions\n"
        f"{table.to_string(float_format='{:.4f}'.format)}\n"
        f"competition metric (mAP@0.75): {result['mAP75']:.4f}"
    )
