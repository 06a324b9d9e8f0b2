"""`drowsy export`: a checkpoint to ONNX, decoding inside the graph."""

import argparse

from drowsy.commands.options import renamed

HELP = "export a checkpoint's EMA model to ONNX (decoded outputs; dynamic batch and size with --dynamic)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    renamed(parser, "--img", "--img-size")
    parser.add_argument("--weights", required=True, metavar="W.pt", help="drowsy checkpoint")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx", help="ONNX file to write")
    parser.add_argument(
        "--img-size", type=int, default=640, help="input size in pixels, rounded up to the stride (default 640)"
    )
    parser.add_argument("--dynamic", action="store_true", help="free batch, height and width axes (needed for TTA)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")


def run(args: argparse.Namespace) -> int:
    from drowsy.infer.export import export_onnx

    path = export_onnx(args.weights, args.out, img_size=args.img_size, dynamic=args.dynamic, opset=args.opset)
    shape = "dynamic batch and size" if args.dynamic else "batch 1, fixed size"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {shape})")
    return 0
