"""Accuracy after the same number of training images: drowsy against the mainstream peer (ultralytics).

    python benchmarks/train_accuracy.py [--train 800] [--val 200] [--epochs 10] [--img 320] [--batch 16]

Both train a YOLOv5-n-sized detector from scratch on the same synthetic training images (drowsy.synth,
640x360 grayscale) for the same number of epochs, image size and batch, on this CPU with the same
thread count, each with its own trainer and default recipe:
- drowsy: `drowsy train` with the demo preset's settings (yolov5n, its hyp file and nominal batch,
  1 loader worker, RAM cache), validating once at the end;
- ultralytics (optional `pip install -e .[bench]`, never imported by the package): `YOLO("yolov5nu.yaml")
  .train(...)` with its defaults (nominal batch 64, mosaic closed for the last 10 epochs, AMP only on
  CUDA), RAM cache, 1 worker, validating once at the end (as it always does on the final epoch).
Then both predict the same held-out synthetic images (conf 0.001, NMS IoU 0.6, at most 300 per image)
and drowsy's COCO evaluator scores both, so the numbers compare. Prints per trainer: images seen,
training wall time and end-to-end images/s (loader, validation and checkpoints included), mAP@0.5,
mAP@0.75 (the competition's metric) and mAP@[.5:.95].
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from drowsy import CLASSES
from drowsy.config import load_yaml
from drowsy.labels import read_labels
from drowsy.metrics import evaluate_detections
from drowsy.predict import predict_folder
from drowsy.paths import REPO_ROOT
from drowsy.synth import write_dataset

SYNTH_SIZE = (640, 360)
CONF, IOU, MAX_DET = 0.001, 0.6, 300


def synthetic_split(folder: Path, images: int, seed: int) -> list[dict]:
    labels = write_dataset(folder, images, seed=seed, size=SYNTH_SIZE, progress=False)
    return read_labels(labels)


def train_drowsy(folder: Path, train: Path, val: Path, args) -> tuple[Path, float]:
    """`drowsy train` in its own process with the demo preset's settings; returns (last.pt, seconds)."""
    preset = load_yaml(REPO_ROOT / "data/presets/demo.yaml")
    width, height = SYNTH_SIZE
    manifests = {}
    for name, split in (("train", train), ("val", val)):
        records = [{**r, "width": width, "height": height} for r in read_labels(split / "labels.json")]
        manifests[name] = folder / f"{name}_manifest.json"
        manifests[name].write_text(json.dumps({"image_root": str(split / "images"), "annotations": records}))
    out = folder / "drowsy_run"
    command = [sys.executable, "-m", "drowsy", "train", "--train-manifest", str(manifests["train"]),
               "--val-manifest", str(manifests["val"]), "--out-dir", str(out), "--model", preset["model"],
               "--img-size", str(args.img), "--batch", str(args.batch), "--nominal-batch", str(preset["nominal_batch"]),
               "--hyp", str(REPO_ROOT / preset["hyp"]), "--workers", str(preset["workers"]),
               "--epochs", str(args.epochs), "--epoch-parts", "1", "--val-every", str(args.epochs),
               "--device", "cpu", "--seed", str(args.seed), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    return out / "last.pt", time.perf_counter() - start


def yolo_dataset(folder: Path, splits: dict[str, Path]) -> Path:
    """The peer's layout (images/<split>, labels/<split>/*.txt with class cx cy w h in 0-1) as links to
    the same JPEGs, and its data.yaml with drowsy's class order."""
    width, height = SYNTH_SIZE
    class_id = {name: i for i, name in enumerate(CLASSES)}
    root = folder / "yolo"
    for split, source in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for record in read_labels(source / "labels.json"):
            (root / "images" / split / record["file_name"]).symlink_to(source / "images" / record["file_name"])
            lines = []
            for obj in record["objects"]:
                x1, y1, x2, y2 = obj["position"]
                lines.append(f"{class_id[obj['class']]} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                             f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
            (root / "labels" / split / Path(record["file_name"]).with_suffix(".txt")).write_text("\n".join(lines))
    data = root / "data.yaml"
    data.write_text(json.dumps({"path": str(root), "train": "images/train", "val": "images/val",
                                "names": dict(enumerate(CLASSES))}))
    return data


def _peer_main(connection, data: str, val_images: str, project: str, args) -> None:
    """In a spawned process: train the peer, predict the validation images; sends (seconds, records)."""
    torch.set_num_threads(args.threads)
    from ultralytics import YOLO  # benchmark-only peer

    model = YOLO("yolov5nu.yaml")
    start = time.perf_counter()
    model.train(data=data, epochs=args.epochs, imgsz=args.img, batch=args.batch, device="cpu", workers=1,
                pretrained=False, amp=False, cache="ram", val=False, plots=False, seed=args.seed, deterministic=True,
                project=project, name="peer", exist_ok=True, verbose=False)
    seconds = time.perf_counter() - start
    records = []
    paths = sorted(Path(val_images).glob("*.jpg"))
    for path, result in zip(paths, model.predict(source=[str(p) for p in paths], imgsz=args.img, conf=CONF, iou=IOU,
                                                 max_det=MAX_DET, device="cpu", verbose=False, stream=True)):
        boxes = result.boxes
        records.append({"file_name": path.name, "objects": [
            {"class": CLASSES[int(c)], "position": [round(v, 1) for v in xyxy], "confidence_score": round(s, 4)}
            for xyxy, s, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())]})
    connection.send((seconds, records))
    connection.close()


def train_peer(folder: Path, train: Path, val: Path, args) -> tuple[float, list[dict]] | None:
    try:
        import ultralytics  # noqa: F401  (only to say whether the peer is installed)
    except ImportError:
        print("ultralytics not installed (pip install -e .[bench]): no peer to compare with")
        return None
    os.environ.setdefault("YOLO_OFFLINE", "1")  # read by the peer at import: no network, settings kept here
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder / "ultralytics"))
    os.environ.setdefault("YOLO_VERBOSE", "False")
    data = yolo_dataset(folder, {"train": train, "val": val})
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_peer_main, args=(sender, str(data), str(val / "images"), str(folder), args))
    process.start()
    result = receiver.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=800, help="synthetic training images")
    parser.add_argument("--val", type=int, default=200, help="synthetic held-out images to score")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--img", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of both trainers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        train, val = folder / "train", folder / "val"
        synthetic_split(train, args.train, seed=args.seed + 1)
        truth = synthetic_split(val, args.val, seed=args.seed + 2)
        seen = args.train * args.epochs
        print(f"{args.train} training images x {args.epochs} epochs = {seen} images seen, img {args.img}, batch "
              f"{args.batch}, {args.threads} threads; scoring {args.val} held-out images")
        rows = []
        weights, seconds = train_drowsy(folder, train, val, args)
        stats = predict_folder([weights], val / "images", folder / "drowsy_predictions.json", img_size=args.img,
                               conf=CONF, iou=IOU, max_det=MAX_DET, device="cpu", progress=False)
        predictions = read_labels(stats["out"])
        rows.append(("drowsy yolov5n (demo preset)", seconds, evaluate_detections(truth, predictions)))
        peer = train_peer(folder, train, val, args)
        if peer:
            seconds, predictions = peer
            rows.append(("ultralytics yolov5nu (defaults)", seconds, evaluate_detections(truth, predictions)))

    print(f"\n{'trainer':34} {'images':>7} {'train s':>8} {'images/s':>9} {'mAP@0.5':>8} {'mAP@0.75':>9} {'mAP@.5:.95':>11}")
    for name, seconds, metrics in rows:
        print(f"{name:34} {seen:7d} {seconds:8.0f} {seen / seconds:9.1f} {metrics['mAP50']:8.3f} "
              f"{metrics['mAP75']:9.3f} {metrics['mAP50_95']:11.3f}")
    if len(rows) == 2:
        print(f"drowsy / ultralytics: {rows[1][1] / rows[0][1]:.2f}x faster end to end, "
              f"mAP@0.75 {rows[0][2]['mAP75'] - rows[1][2]['mAP75']:+.3f}")


if __name__ == "__main__":
    main()
