"""Accuracy after the same number of training images: drowsy against the mainstream peer (ultralytics).

    python benchmarks/train_accuracy.py [--train 800] [--val 200] [--epochs 10]

Both train a YOLOv5-n-sized detector from scratch on the same synthetic training images (drowsy.synth,
640x360 grayscale) for the same number of epochs, at the demo preset's image size and batch, on this
CPU with the same thread count, each with its own trainer and default recipe:
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
from train_speed import (
    SYNTH_SIZE,
    demo_train_arguments,
    peer_environment,
    synthetic_records,
    write_manifest,
)

from drowsy import CLASSES
from drowsy.config import load_yaml
from drowsy.data.labels import read_labels
from drowsy.eval.metrics import evaluate_detections
from drowsy.infer.predict import predict_folder
from drowsy.paths import REPO_ROOT

CONF, IOU, MAX_DET = 0.001, 0.6, 300


def train_drowsy(folder: Path, splits: dict[str, list[dict]], args) -> tuple[Path, float]:
    """`drowsy train` in its own process with the demo preset's settings; returns (last.pt, seconds)."""
    manifests = [
        write_manifest(folder / f"{name}_manifest.json", folder / name / "images", records)
        for name, records in splits.items()
    ]
    out = folder / "drowsy_run"
    command = [sys.executable, "-m", "drowsy", *demo_train_arguments(*manifests, out, args.epochs, seed=args.seed)]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    return out / "last.pt", time.perf_counter() - start


def yolo_dataset(folder: Path, splits: dict[str, list[dict]]) -> Path:
    """The peer's layout (images/<split>, labels/<split>/*.txt with class cx cy w h in 0-1) as links to
    the same JPEGs, and its data.yaml with drowsy's class order."""
    width, height = SYNTH_SIZE
    class_id = {name: i for i, name in enumerate(CLASSES)}
    root = folder / "yolo"
    for split, records in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for record in records:
            (root / "images" / split / record["file_name"]).symlink_to(folder / split / "images" / record["file_name"])
            lines = []
            for obj in record["objects"]:
                x1, y1, x2, y2 = obj["position"]
                lines.append(
                    f"{class_id[obj['class']]} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                    f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
                )
            (root / "labels" / split / Path(record["file_name"]).with_suffix(".txt")).write_text("\n".join(lines))
    data = root / "data.yaml"
    data.write_text(
        json.dumps({"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(CLASSES))})
    )
    return data


def _peer_main(connection, data: str, val_images: str, project: str, img_size: int, batch: int, args) -> None:
    """In a spawned process: train the peer, predict the validation images; sends (seconds, records)."""
    torch.set_num_threads(args.threads)
    from ultralytics import YOLO  # benchmark-only peer

    model = YOLO("yolov5nu.yaml")
    start = time.perf_counter()
    model.train(
        data=data,
        epochs=args.epochs,
        imgsz=img_size,
        batch=batch,
        device="cpu",
        workers=1,
        pretrained=False,
        amp=False,
        cache="ram",
        val=False,
        plots=False,
        seed=args.seed,
        deterministic=True,
        project=project,
        name="peer",
        exist_ok=True,
        verbose=False,
    )
    seconds = time.perf_counter() - start
    records = []
    paths = sorted(Path(val_images).glob("*.jpg"))
    for path, result in zip(
        paths,
        model.predict(
            source=[str(p) for p in paths],
            imgsz=img_size,
            conf=CONF,
            iou=IOU,
            max_det=MAX_DET,
            device="cpu",
            verbose=False,
            stream=True,
        ),
    ):
        boxes = result.boxes
        records.append(
            {
                "file_name": path.name,
                "objects": [
                    {"class": CLASSES[int(c)], "position": [round(v, 1) for v in xyxy], "confidence_score": round(s, 4)}
                    for xyxy, s, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())
                ],
            }
        )
    connection.send((seconds, records))
    connection.close()


def train_peer(
    folder: Path, splits: dict[str, list[dict]], img_size: int, batch: int, args
) -> tuple[float, list[dict]] | None:
    try:
        import ultralytics  # noqa: F401  (only to say whether the peer is installed)
    except ImportError:
        print("ultralytics not installed (pip install -e .[bench]): no peer to compare with")
        return None
    peer_environment(folder)
    data = yolo_dataset(folder, splits)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_peer_main, args=(sender, str(data), str(folder / "val" / "images"), str(folder), img_size, batch, args)
    )
    process.start()
    result = receiver.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=800, help="synthetic training images")
    parser.add_argument("--val", type=int, default=200, help="synthetic held-out images to score")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of both trainers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    preset = load_yaml(REPO_ROOT / "data/presets/demo.yaml")
    img_size, batch = preset["img_size"], preset["batch"]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        splits = {
            "train": synthetic_records(folder / "train", args.train, seed=args.seed + 1),
            "val": synthetic_records(folder / "val", args.val, seed=args.seed + 2),
        }
        seen = args.train * args.epochs
        print(
            f"{args.train} training images x {args.epochs} epochs = {seen} images seen, img {img_size}, batch "
            f"{batch}, {args.threads} threads; scoring {args.val} held-out images"
        )
        rows = []
        weights, seconds = train_drowsy(folder, splits, args)
        stats = predict_folder(
            [weights],
            folder / "val" / "images",
            folder / "drowsy_predictions.json",
            img_size=img_size,
            conf=CONF,
            iou=IOU,
            max_det=MAX_DET,
            device="cpu",
            progress=False,
        )
        predictions = read_labels(stats["out"])
        rows.append(("drowsy yolov5n (demo preset)", seconds, evaluate_detections(splits["val"], predictions)))
        peer = train_peer(folder, splits, img_size, batch, args)
        if peer:
            seconds, predictions = peer
            rows.append(("ultralytics yolov5nu (defaults)", seconds, evaluate_detections(splits["val"], predictions)))

    print(
        f"\n{'trainer':34} {'images':>7} {'train s':>8} {'images/s':>9} {'mAP@0.5':>8} {'mAP@0.75':>9} "
        f"{'mAP@.5:.95':>11}"
    )
    for name, seconds, metrics in rows:
        print(
            f"{name:34} {seen:7d} {seconds:8.0f} {seen / seconds:9.1f} {metrics['mAP50']:8.3f} "
            f"{metrics['mAP75']:9.3f} {metrics['mAP50_95']:11.3f}"
        )
    if len(rows) == 2:
        print(
            f"drowsy / ultralytics: {rows[1][1] / rows[0][1]:.2f}x faster end to end, "
            f"mAP@0.75 {rows[0][2]['mAP75'] - rows[1][2]['mAP75']:+.3f}"
        )


if __name__ == "__main__":
    main()
