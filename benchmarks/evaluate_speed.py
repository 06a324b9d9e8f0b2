"""How long `drowsy.eval.metrics.evaluate_detections` takes to score a test-set-sized submission.

Synthetic data shaped like the competition test set: 35,631 images, about 4 objects each (face,
two eyes, mouth, sometimes a phone or a cigar), about 30 predictions each (jittered copies of the
objects plus clutter, a few images with the full 300), in submission format (0.1 px, 4 decimals).
Target: <= 10 s on a 2-core machine.

    python benchmarks/evaluate_speed.py [--images 35631] [--seed 0]
"""

import argparse
import time

import numpy as np

from drowsy import CLASSES
from drowsy.eval.metrics import evaluate_detections

WIDTH, HEIGHT = 1280, 720
MAX_PREDICTIONS = 300  # the recipe's per-image cap after NMS


def synthetic_image(rng: np.random.Generator, index: int, predictions: int | None = None) -> tuple[dict, dict]:
    """One ground-truth record and its prediction record (`predictions` boxes; default: 20-40, 300 in 1 %)."""
    face_x, face_y = rng.uniform(300, 900), rng.uniform(100, 400)
    face = np.array([face_x, face_y, face_x + 250, face_y + 300])
    parts = [
        (4, face),
        (rng.integers(0, 2), face + [40, 80, -150, -190]),  # eyes: opened (0) or closed (1)
        (rng.integers(0, 2), face + [150, 80, -40, -190]),
        (2 + rng.integers(0, 2), face + [80, 200, -80, -40]),  # mouth: opened (2) or closed (3)
    ]
    if rng.random() < 0.1:
        parts.append((5 + rng.integers(0, 2), face + [200, 150, 60, 60]))  # phone or cigar
    classes = np.array([c for c, _ in parts])
    boxes = np.stack([b for _, b in parts])

    count = MAX_PREDICTIONS if rng.random() < 0.01 else int(rng.integers(20, 41))
    count = count if predictions is None else predictions
    source = rng.integers(0, len(boxes), count)
    jitter = rng.normal(0, 6, (count, 4))
    predicted = np.clip(boxes[source] + jitter, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    predicted[:, 2:] = np.maximum(predicted[:, 2:], predicted[:, :2] + 1)
    predicted_classes = np.where(rng.random(count) < 0.1, rng.integers(0, len(CLASSES), count), classes[source])
    scores = rng.uniform(0.006, 1.0, count)

    file_name = f"image_{index:014d}.jpg"
    truth = {
        "file_name": file_name,
        "objects": [{"class": CLASSES[c], "position": b.round(1).tolist()} for c, b in zip(classes, boxes)],
    }
    prediction = {
        "file_name": file_name,
        "objects": [
            {"class": CLASSES[c], "position": b.round(1).tolist(), "confidence_score": round(float(s), 4)}
            for c, b, s in zip(predicted_classes, predicted, scores)
        ],
    }
    return truth, prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=35_631)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    ground_truth, predictions = zip(*(synthetic_image(rng, i) for i in range(args.images)))
    start, start_cpu = time.perf_counter(), time.process_time()
    result = evaluate_detections(list(ground_truth), list(predictions))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    # CPU seconds tell the cost when other processes share the cores; wall seconds are the target.
    print(
        f"{result['images']} images, {result['predictions']} predictions: scored in {seconds:.2f} s "
        f"({cpu_seconds:.2f} CPU s; mAP75 {result['mAP75']:.4f})"
    )


if __name__ == "__main__":
    main()
