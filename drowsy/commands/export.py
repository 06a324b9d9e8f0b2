"""`drowsy export`: a checkpoint to ONNX, decoding inside the graph."""

import argparse

from drowsy.commands.options import positive_int, renamed

HELP = "export a checkpoint's EMA model to ONNX, fp32 or INT8 (decoded outputs; dynamic batch and size with --dynamic)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    renamed(parser, "--img", "--img-size")
    parser.add_argument("--weights", required=True, metavar="W.pt", help="drowsy checkpoint")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx", help="ONNX file to write")
    parser.add_argument(
        "--img-size", type=int, default=640, help="input size in pixels, rounded up to the stride (default 640)"
    )
    parser.add_argument("--dynamic", action="store_true", help="free batch, height and width axes (needed for TTA)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="statically quantize to INT8 (the stem and the decoding stay float); needs --calibrate",
    )
    parser.add_argument(
        "--calibrate",
        metavar="SPLIT",
        help="with --int8: a split of drowsy prepare to calibrate on (train.json: not the images you score on)",
    )
    parser.add_argument(
        "--calibrate-images",
        type=positive_int,
        default=100,
        metavar="N",
        help="with --int8: images of the split, spread evenly over it (default 100)",
    )


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from drowsy.errors import DrowsyError
    from drowsy.infer.export import export_onnx

    if args.int8 != (args.calibrate is not None):
        raise DrowsyError("export: --int8 needs --calibrate SPLIT (and --calibrate only goes with --int8)")
    options = {"img_size": args.img_size, "dynamic": args.dynamic, "opset": args.opset}
    if args.int8:
        from drowsy.infer.quantize import quantize_onnx

        with tempfile.TemporaryDirectory() as scratch:
            fp32 = export_onnx(args.weights, Path(scratch) / "fp32.onnx", **options)
            path = quantize_onnx(fp32, args.out, args.calibrate, args.calibrate_images)
    else:
        path = export_onnx(args.weights, args.out, **options)
    shape = "dynamic batch and size" if args.dynamic else "batch 1, fixed size"
    precision = f"INT8, calibrated on {args.calibrate_images} images of {args.calibrate}" if args.int8 else "fp32"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {shape}, {precision})")
    return 0
