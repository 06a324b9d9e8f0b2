"""The in-car question, one table: ONNX fp32 against INT8 on this CPU, speed, size and accuracy.

    python benchmarks/deploy.py [--weights weights/demo/finetune/best.pt] [--val data/prepared/demo/val.json]
                                [--img-size 320] [--calibrate-images 100] [--runs 200]

Exports the checkpoint to ONNX (fp32) and quantizes it (`drowsy export --int8`, calibrated on the first
`--calibrate-images` of the validation split, spread evenly), then prints per backend: ms per image at
batch 1 on one thread (the in-car case; median of `--runs` forward passes of a letterboxed image, the
graph alone), ms per image at batch 8 on all threads (a dynamic export), the file's size, and the val
mAP@0.75 overall and per class (scored as `drowsy predict --images val.json` and `drowsy evaluate` do).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from drowsy import CLASSES
from drowsy.data.labels import load_manifest
from drowsy.eval.metrics import evaluate_detections
from drowsy.files import read_json
from drowsy.infer.export import export_onnx
from drowsy.infer.predict import Detector, predict_folder
from drowsy.infer.quantize import quantize_onnx


def forward_ms(path: Path, batch: int, threads: int, runs: int) -> float:
    """Median ms per image of the graph alone on random pixels."""
    detector = Detector(path, onnx_threads=threads)
    size = detector.fixed_size or int(detector.session.get_modelmeta().custom_metadata_map["drowsy_img_size"])
    pixels = {"images": np.random.default_rng(0).random((batch, 1, size, size), dtype=np.float32)}
    for _ in range(10):
        detector.session.run(None, pixels)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.session.run(None, pixels)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / batch


def accuracy(path: Path, val: str, img_size: int, folder: Path) -> dict:
    out = folder / f"{path.stem}.json"
    predict_folder([path], val, out, img_size=img_size, batch=8, progress=False)
    truth = load_manifest(val).records
    return evaluate_detections(truth, read_json(out)["annotations"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/demo/finetune/best.pt")
    parser.add_argument("--val", default="data/prepared/demo/val.json")
    parser.add_argument("--img-size", type=int, default=320)
    parser.add_argument("--calibrate-images", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        graphs = {}
        for dynamic in (False, True):
            fp32 = export_onnx(args.weights, folder / f"fp32_{dynamic}.onnx", img_size=args.img_size, dynamic=dynamic)
            int8 = quantize_onnx(fp32, folder / f"int8_{dynamic}.onnx", args.val, args.calibrate_images)
            graphs[dynamic] = {"ONNX fp32": fp32, "ONNX INT8": int8}
        header = ["backend", "ms/img b1 1 thread", "ms/img b8 all threads", "MB", "mAP@0.75", *CLASSES]
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for name, path in graphs[False].items():
            scores = accuracy(path, args.val, args.img_size, folder)
            row = [
                name,
                f"{forward_ms(path, 1, 1, args.runs):.2f}",
                f"{forward_ms(graphs[True][name], 8, 0, args.runs // 4):.2f}",
                f"{path.stat().st_size / 1e6:.1f}",
                f"{scores['mAP75']:.4f}",
                *(f"{scores['per_class'][c]['AP75']:.3f}" for c in CLASSES),
            ]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
