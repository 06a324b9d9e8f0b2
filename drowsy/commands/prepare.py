"""`drowsy prepare RAW OUT`: validate labels, split train/val, build the diet set, write manifests."""

import argparse
import functools

from drowsy.commands.options import field_help
from drowsy.data.split import SPLITS, VAL_SIZE

HELP = (
    "validate raw data (competition folder or AIHub tree), split train/val, build the diet set; "
    "write manifests and a report to OUT"
)


def _count(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "raw",
        metavar="RAW",
        help="competition folder (images/ + labels.json) or AIHub tree "
        "(Training/, Validation/ with [원천]/[라벨] folders); read only (raw_dir)",
    )
    parser.add_argument(
        "out", metavar="OUT", help="folder for train.json, val.json, diet.json and report.json (prepared_dir)"
    )
    from drowsy.notebooks import DietParams  # notebook 02's parameters: the same settings

    described = functools.partial(field_help, DietParams)

    parser.add_argument("--val-size", type=lambda t: _count(t, 0), help=described("val_size", VAL_SIZE))
    parser.add_argument("--split", choices=SPLITS, default="draw", help=described("split", "draw"))
    parser.add_argument("--seed", type=int, default=0, help=described("seed", 0))
    parser.add_argument(
        "--format",
        dest="raw_format",
        choices=("auto", "competition", "aihub"),
        default="auto",
        help=described("raw_format", "auto"),
    )
    parser.add_argument("--images", metavar="DIR", help=described("images_dir", "RAW"))
    parser.add_argument("--group-by", metavar="KEY", help=described("group_by", "none"))
    parser.add_argument("--export", choices=("yolo", "coco"), help=described("export", "none"))
    parser.add_argument("--resize", type=lambda t: _count(t, 32), default=0, metavar="PX", help=described("resize", 0))
    parser.add_argument(
        "--workers",
        type=lambda t: _count(t, 1),
        default=None,
        help="threads reading image headers (default 2; more help on a cold disk)",
    )


def run(args: argparse.Namespace) -> int:
    from drowsy.data.prepare import prepare_dataset, summarize
    from drowsy.errors import DrowsyError

    if args.split == "aihub" and (args.val_size is not None or args.group_by):
        raise DrowsyError(
            "prepare: --split aihub takes the Validation/ folders as they are; drop --val-size/--group-by"
        )
    report = prepare_dataset(
        args.raw,
        args.out,
        val_size=VAL_SIZE if args.val_size is None else args.val_size,
        split=args.split,
        seed=args.seed,
        export=args.export,
        workers=args.workers,
        raw_format=args.raw_format,
        images_dir=args.images,
        group_by=args.group_by,
        resize=args.resize,
    )
    print(summarize(report))
    return 0
