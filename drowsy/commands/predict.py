"""`drowsy predict`: detections for every image of a folder, written as a competition submission."""

import argparse
import functools

from drowsy.commands.options import field_help, positive_int, renamed

HELP = "predict a folder of images (or a manifest) with one model or an ensemble (optional TTA); write submission JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    renamed(parser, "--img", "--img-size")
    parser.add_argument(
        "--weights",
        nargs="+",
        required=True,
        metavar="W",
        help="checkpoints (.pt) or exported models (.onnx, run by ONNX Runtime); several = ensemble",
    )
    parser.add_argument(
        "--openvino",
        action="store_true",
        help="run the .onnx weights with OpenVINO instead of ONNX Runtime (pip install -e .[openvino])",
    )
    parser.add_argument(
        "--images",
        required=True,
        metavar="DIR|JSON",
        help="folder of .jpg/.jpeg/.png images (or a competition folder holding images/), or a manifest of drowsy "
        "prepare (val.json: its images, named by their file_name, as drowsy evaluate --labels val.json expects)",
    )
    parser.add_argument("--out", required=True, metavar="JSON", help="submission file to write")
    from drowsy.notebooks import EnsembleParams  # notebook 05's parameters: the same settings

    described = functools.partial(field_help, EnsembleParams)

    parser.add_argument("--img-size", type=positive_int, default=1536, help=described("predict_img_size", 1536))
    parser.add_argument("--conf", type=float, default=0.006, help=described("conf", 0.006))
    parser.add_argument("--iou", type=float, default=0.7, help=described("iou", 0.7))
    parser.add_argument("--max-det", type=positive_int, default=300, help=described("max_det", 300))
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: scales 1, 0.83 (mirrored), 0.67")
    parser.add_argument(
        "--fuse",
        choices=("nms", "wbf"),
        default="nms",
        help="join members and run one NMS (the recipe), or weighted boxes fusion (default nms)",
    )
    parser.add_argument("--batch", type=positive_int, default=8, help=described("predict_batch", 8))
    parser.add_argument("--device", default="auto", help=described("device", "auto"))
    parser.add_argument("--amp", action="store_true", help=described("amp", "off"))
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from drowsy.infer.predict import predict_folder

    stats = predict_folder(
        args.weights,
        args.images,
        args.out,
        img_size=args.img_size,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        tta=args.tta,
        fuse=args.fuse,
        batch=args.batch,
        device=args.device,
        amp=args.amp,
        progress=not args.quiet,
        openvino=args.openvino,
    )
    print(
        f"{stats['images']} images, {stats['detections']} detections in {stats['seconds']:.1f} s "
        f"({stats['images_per_second']:.1f} images/s), {len(stats['unreadable'])} unreadable -> {stats['out']}"
    )
    return 0
