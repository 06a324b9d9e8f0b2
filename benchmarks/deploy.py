"""The in-car question, one table: every backend on this CPU: speed, size, memory, accuracy.

    python benchmarks/deploy.py [--weights weights/demo/finetune/best.pt [W.pt ...]] [--val data/prepared/demo/val.json]
                                [--calibrate data/prepared/demo/train.json] [--calibrate-images 100]
                                [--img-size 320] [--runs 200]

Runs each checkpoint (its rows named by its model: yolov5n, the in-car yolov5n-relu) with PyTorch (fp32, bf16
autocast), exports it to ONNX (fp32) and quantizes it (`drowsy export --int8`, calibrated on `--calibrate-images`
of the `--calibrate` split, spread evenly: by default the training split, so that the scored images are not the
calibration images), runs both graphs with ONNX Runtime and, where it is installed (`pip install -e
.[openvino]`), with OpenVINO, then prints per backend: ms per image at batch 1 on one thread (the in-car case;
median of `--runs` forward passes on random pixels, the network alone, decoding included), ms per image at batch
8 on all threads (a dynamic export), the file's size (the checkpoint's for PyTorch), the peak memory (PSS) of a
fresh process doing the batch-1 one-thread passes, `drowsy monitor`'s frames per second on a 20 s synthetic clip
(one thread, one frame per call, no video written), and the val mAP@0.75 overall and per class (scored as
`drowsy predict --images val.json` and `drowsy evaluate` do; on 300 images a class moves by 0.02-0.16 between
two graphs that agree to 0.03 on thousands, so compare classes on a larger `--val`: docs/prediction.md).

Speed only, for the comparison, where it is importable: ultralytics' YOLOv5n-sized model in fp32 (the peer;
`pip install -e .[bench]`).
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from infer_speed import torch_forward, ultralytics_model
from notebook_memory import peaks

from drowsy import CLASSES
from drowsy.config import MonitorConfig, MonitorRun
from drowsy.data.labels import load_manifest
from drowsy.eval.metrics import evaluate_detections
from drowsy.eval.plots import DEPLOY_TABLE
from drowsy.files import read_json, write_json
from drowsy.infer.export import export_onnx
from drowsy.infer.predict import Detector, predict_folder
from drowsy.infer.quantize import quantize_onnx
from drowsy.models.checkpoint import load_checkpoint
from drowsy.monitor.runner import run_monitor
from drowsy.paths import resolve
from drowsy.synth.clips.write import write_clip


def median_ms(forward, size: int, batch: int, threads: int, runs: int) -> float:
    """Median ms per image of `forward` on random pixels [batch, 1, size, size]; `threads` sets PyTorch's
    (0: one per core); ONNX Runtime and OpenVINO take theirs when the model is opened."""
    pixels = torch.from_numpy(np.random.default_rng(0).random((batch, 1, size, size), dtype=np.float32))
    before = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        with torch.inference_mode():
            for _ in range(10):
                forward(pixels)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                forward(pixels)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 1000 * statistics.median(times) / batch


def forward_ms(path: Path, size: int, batch: int, threads: int, runs: int, how: dict) -> float:
    """`median_ms` of a drowsy detector (decoding included, no NMS) made with the Detector options `how`
    ({"amp": True}, {"openvino": True}); `threads` 0: the library's own choice."""
    detector = Detector(path, device="cpu", onnx_threads=threads or None, **how)
    return median_ms(detector.decoded_predictions, size, batch, threads, runs)


def forward_only(path: str, size: int, how: dict) -> None:
    """The in-car process (`--forward-only`): one detector, one thread, batch 1, 50 forward passes."""
    torch.set_num_threads(1)
    detector = Detector(path, device="cpu", onnx_threads=1, **how)
    pixels = torch.rand(1, 1, size, size)
    for _ in range(50):
        detector.decoded_predictions(pixels)


def peak_mib(path: Path, size: int, how: dict, name: str) -> float:
    """Peak PSS of a fresh process running `forward_only` (imports, model, runtime, activations), MiB."""
    command = [sys.executable, __file__, "--forward-only", str(path), str(size), json.dumps(how)]
    return peaks(command, what=name)[0] * 1024


def monitor_fps(path: Path, how: dict, clip: Path, size: int, folder: Path) -> float:
    """Frames per second of `drowsy monitor` on the clip (decoding, detection, state; no video written),
    one compute thread, one frame per detector call."""
    run = MonitorRun(
        source=clip, out_dir=folder / "monitor", img_size=size, batch=1, threads=1, annotate=False, progress=False
    )
    return run_monitor(run, Detector(path, device="cpu", onnx_threads=1, **how), MonitorConfig())["fps_achieved"]


def accuracy(path: Path, val: str, img_size: int, folder: Path, how: dict) -> dict:
    out = folder / f"{path.stem}_{'_'.join(how) or 'plain'}.json"
    predict_folder([path], val, out, img_size=img_size, batch=8, device="cpu", progress=False, **how)
    truth = load_manifest(val).records
    return evaluate_detections(truth, read_json(out)["annotations"])


def peer_rows(size: int, runs: int) -> list[dict]:
    """ultralytics' YOLOv5n-sized model in fp32 (NCHW, BatchNorm fused), speed only; [] when not installed."""
    model = ultralytics_model()
    if model is None:
        return []
    forward = torch_forward(model, channels_last=False, amp=False)
    return [
        speed_row(
            "ultralytics yolov5nu fp32 (peer)",
            median_ms(forward, size, 1, 1, runs),
            median_ms(forward, size, 8, 0, runs // 4),
        )
    ]


def speed_row(name: str, ms_batch1: float, ms_batch8: float, megabytes: float | None = None) -> dict:
    """A row with speed (and size) only: the columns nobody measured for it are None."""
    return {
        "backend": name,
        "ms_batch1_1thread": round(ms_batch1, 2),
        "ms_batch8_all_threads": round(ms_batch8, 2),
        "MB": None if megabytes is None else round(megabytes, 1),
        "peak_MiB": None,
        "monitor_fps_1thread": None,
        "mAP75": None,
        **dict.fromkeys(CLASSES),
    }


def model_rows(weights: Path, args: argparse.Namespace, clip: Path, folder: Path) -> list[dict]:
    """The rows of one checkpoint: PyTorch fp32 and bf16, its ONNX fp32 graph and INT8 copy run by ONNX Runtime
    and, where it is installed, by OpenVINO; each backend's name starts with the checkpoint's model."""
    model = load_checkpoint(weights)["model_config"]
    folder.mkdir(parents=True)
    # backend -> (file at batch 1, file at batch 8, Detector options)
    backends = {"PyTorch fp32": (weights, weights, {}), "PyTorch bf16": (weights, weights, {"amp": True})}
    graphs = {}
    for dynamic in (False, True):
        fp32 = export_onnx(weights, folder / f"fp32_{dynamic}.onnx", img_size=args.img_size, dynamic=dynamic)
        graphs[dynamic] = (
            fp32,
            quantize_onnx(fp32, folder / f"int8_{dynamic}.onnx", args.calibrate, args.calibrate_images),
        )
    for i, precision in enumerate(("fp32", "INT8")):
        backends[f"ONNX {precision}"] = (graphs[False][i], graphs[True][i], {})
        if importlib.util.find_spec("openvino"):
            backends[f"OpenVINO {precision}"] = (graphs[False][i], graphs[True][i], {"openvino": True})
    rows = []
    for name, (single, batched, how) in backends.items():
        scores = accuracy(single, args.val, args.img_size, folder, how)
        rows.append(
            {
                "backend": f"{model} {name}",
                "ms_batch1_1thread": round(forward_ms(single, args.img_size, 1, 1, args.runs, how), 2),
                "ms_batch8_all_threads": round(forward_ms(batched, args.img_size, 8, 0, args.runs // 4, how), 2),
                "MB": round(single.stat().st_size / 1e6, 1),
                "peak_MiB": round(peak_mib(single, args.img_size, how, name)),
                "monitor_fps_1thread": round(monitor_fps(batched, how, clip, args.img_size, folder), 1),
                "mAP75": round(scores["mAP75"], 4),
                **{cls: round(scores["per_class"][cls]["AP75"], 3) for cls in CLASSES},
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", default=["weights/demo/finetune/best.pt"], help="one or more")
    parser.add_argument(
        "--val",
        default="data/prepared/demo/val.json",
        help="the labelled split scored (thousands of images tell classes apart to 0.03; docs/prediction.md)",
    )
    parser.add_argument("--img-size", type=int, default=320)
    parser.add_argument("--calibrate", default="data/prepared/demo/train.json", help="the INT8 calibration split")
    parser.add_argument("--calibrate-images", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default=DEPLOY_TABLE, help="the table as JSON, for notebook 05")
    parser.add_argument("--forward-only", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forward_only:
        forward_only(args.forward_only[0], int(args.forward_only[1]), json.loads(args.forward_only[2]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        clip = write_clip(folder / "clip", 20, 15, seed=0, size=(400, 640), progress=False)
        rows = []
        for i, weights in enumerate(map(Path, args.weights)):
            rows += model_rows(weights, args, clip, folder / f"model_{i}")
        rows += peer_rows(args.img_size, args.runs)
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join("-" if value is None else str(value) for value in row.values()) + " |")
    calibrated = {"calibrate": args.calibrate, "calibrate_images": args.calibrate_images}
    write_json(
        args.out, {"weights": args.weights, "img_size": args.img_size, "val": args.val, **calibrated, "rows": rows}
    )
    print(f"wrote {resolve(args.out)} (notebook 05 plots it)")


if __name__ == "__main__":
    main()
