"""Notebook 05's ablation: every inference variant of the recipe scored on the same images.

Variants: the baseline and the fine-tuned model, each with and without test-time augmentation, and
their ensemble (with TTA) fused by the recipe's join-then-NMS and by weighted boxes fusion. The
original never published this table.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from drowsy import CLASSES
from drowsy.data.labels import read_labels
from drowsy.data.meta import english_name
from drowsy.eval.metrics import evaluate_detections
from drowsy.files import read_gray, write_json
from drowsy.infer.postprocess import to_records
from drowsy.infer.predict import Detector, predict_ensemble, predict_folder
from drowsy.paths import require, resolve
from drowsy.viz.figures import draw_record

MADE_BY = "notebooks/03_train_baseline.ipynb and 04_finetune.ipynb (drowsy train)"
# name -> (stages ensembled, test-time augmentation, fusion), in the table's order
VARIANTS = {
    "baseline": (("baseline",), False, "nms"),
    "baseline + TTA": (("baseline",), True, "nms"),
    "fine-tuned": (("finetune",), False, "nms"),
    "fine-tuned + TTA": (("finetune",), True, "nms"),
    "ensemble + TTA, NMS": (("baseline", "finetune"), True, "nms"),
    "ensemble + TTA, WBF": (("baseline", "finetune"), True, "wbf"),
}


def variants(weights: dict[str, Path]) -> dict[str, dict]:
    """name -> predict_ensemble options (weights, tta, fuse) for every variant of VARIANTS."""
    return {
        name: {"weights": [weights[stage] for stage in stages], "tta": tta, "fuse": fuse}
        for name, (stages, tta, fuse) in VARIANTS.items()
    }


def stage_weights(weights_dir: str | Path) -> dict[str, Path]:
    """The two trained models under `weights_dir` (best validation mAP@0.75 of each stage)."""
    root = Path(weights_dir)
    return {stage: require(root / stage / "best.pt", MADE_BY) for stage in ("baseline", "finetune")}


def submission_options(variant: str, weights: dict[str, Path], table: pd.DataFrame) -> tuple[str, dict]:
    """The variant the submission uses: `variant`, or the ablation's best mAP@0.75 for "best"."""
    name = table["mAP@0.75"].idxmax() if variant == "best" else variant
    return name, variants(weights)[name]


ABLATION_CHUNK = 256  # images decoded at a time


def run_ablation(
    variant_options: dict[str, dict],
    image_root: Path,
    records: list[dict],
    *,
    img_size: int,
    conf: float,
    iou: float,
    max_det: int,
    batch: int,
    device: str,
    amp: bool,
    progress: bool = True,
) -> tuple[pd.DataFrame, str, list[dict]]:
    """Predict `records`' images with every variant and score them; the prediction settings are
    `drowsy.infer.predict.predict_ensemble`'s.

    Returns (table, best, predictions): table rows are variants, columns per-class AP@0.75, mAP@0.75,
    mAP@0.5 and ms per image (the models' time alone, decoding excluded); best is the variant with
    the highest mAP@0.75 and predictions its competition-format records. Images are decoded
    `ABLATION_CHUNK` at a time and every variant runs on each chunk, so memory holds one chunk of
    images and compact detection arrays, and the records of two variants at the most, not all six.
    """
    root, names = resolve(image_root), [r["file_name"] for r in records]
    detectors: dict = {}
    members = {
        variant: [detectors.setdefault(w, Detector(w, device, amp)) for w in options["weights"]]
        for variant, options in variant_options.items()
    }
    detections = {variant: [] for variant in variant_options}
    seconds = dict.fromkeys(variant_options, 0.0)
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # cv2 decodes without the GIL
        for start in range(0, len(names), ABLATION_CHUNK):
            images = list(pool.map(read_gray, [root / name for name in names[start : start + ABLATION_CHUNK]]))
            for variant, options in variant_options.items():
                started = time.perf_counter()
                detections[variant] += predict_ensemble(
                    members[variant], images, img_size, conf, iou, max_det, options["tta"], options["fuse"], batch
                )
                seconds[variant] += time.perf_counter() - started
    rows, best, kept = {}, None, []
    for variant in variant_options:
        predicted = to_records(names, detections.pop(variant))
        scores = evaluate_detections(records, predicted)
        rows[variant] = {
            **{c: s["AP75"] for c, s in scores["per_class"].items()},
            "mAP@0.75": scores["mAP75"],
            "mAP@0.5": scores["mAP50"],
            "ms/image": 1000 * seconds[variant] / max(len(names), 1),
        }
        if best is None or scores["mAP75"] > rows[best]["mAP@0.75"]:
            best, kept = variant, predicted
        if progress:
            print(
                f"{variant:<22} mAP@0.75 {scores['mAP75']:.4f}  mAP@0.5 {scores['mAP50']:.4f}  "
                f"{rows[variant]['ms/image']:.1f} ms/image"
            )
    return pd.DataFrame(rows).T, best, kept


def plot_ablation(table: pd.DataFrame):
    """Bars: mAP@0.75 and mAP@0.5 per variant (left), AP@0.75 per class and variant (right)."""
    fig, (means, per_class) = plt.subplots(1, 2, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    long = table[["mAP@0.75", "mAP@0.5"]].reset_index(names="variant").melt("variant", var_name="metric")
    sns.barplot(long, y="variant", x="value", hue="metric", ax=means)
    means.set(xlim=(0, 1), xlabel="mAP", ylabel="", title="Mean AP per variant")
    classes = [c for c in CLASSES if c in table]
    long = table[classes].reset_index(names="variant").melt("variant", var_name="class", value_name="AP@0.75")
    sns.barplot(long, x="class", y="AP@0.75", hue="variant", ax=per_class)
    per_class.set(ylim=(0, 1), xlabel="", title="AP@0.75 per class")
    per_class.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_predictions_vs_truth(
    image_root: Path, truth: list[dict], predicted: list[dict], n: int = 6, min_score: float = 0.25
):
    """n rows: ground truth (left) beside the predictions scoring at least `min_score` (right)."""
    predicted_by_name = {r["file_name"]: r for r in predicted}
    fig, axes = plt.subplots(n, 2, figsize=(10, 2.9 * n), squeeze=False)
    for (left, right), record in zip(axes, truth[:n]):
        shown = predicted_by_name[record["file_name"]]
        shown = {**shown, "objects": [o for o in shown["objects"] if o["confidence_score"] >= min_score]}
        draw_record(left, resolve(image_root), record)
        draw_record(right, resolve(image_root), shown)
        left.set_title(f"truth: {english_name(record['file_name'])}", fontsize=8)
        right.set_title(f"predicted (score >= {min_score})", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def score_submission(labels_path: str, submission_path: str | Path) -> dict | None:
    """Scores of a submission against test labels, or None when there are none (the real test set)."""
    if not labels_path or not resolve(labels_path).exists():
        return None
    return evaluate_detections(read_labels(resolve(labels_path)), read_labels(resolve(submission_path)))


def predict_and_score(
    options: dict, images_dir: str, out: Path, labels: str, predict_options: dict
) -> tuple[dict, dict | None]:
    """Predict every image of `images_dir` with a variant's `options` (weights, tta, fuse) into `out`, then
    score the file against `labels`: `predict_folder`'s stats and `score_submission`'s scores."""
    stats = predict_folder(
        options["weights"], images_dir, out, tta=options["tta"], fuse=options["fuse"], **predict_options
    )
    return stats, score_submission(labels, stats["out"])


def write_scores(
    path: str | Path, validation: pd.DataFrame, test_scores: dict | None, held_out_scores: dict | None = None
) -> Path:
    """`ensemble_scores.json` for the run summary: each row {mAP50, mAP75, per_class_AP75}; the test set's and
    the held-out family's scores (`score_submission`) where there are some."""

    def row(mAP50, mAP75, per_class):
        return {
            "mAP50": float(mAP50),
            "mAP75": float(mAP75),
            "per_class_AP75": {k: float(v) for k, v in per_class.items()},
        }

    classes = [c for c in CLASSES if c in validation]
    scores = {f"val: {name}": row(r["mAP@0.5"], r["mAP@0.75"], r[classes]) for name, r in validation.iterrows()}
    for name, scored in (("test: submission", test_scores), ("held-out family: submission", held_out_scores)):
        if scored:
            scores[name] = row(scored["mAP50"], scored["mAP75"], {c: s["AP75"] for c, s in scored["per_class"].items()})
    return write_json(path, scores, indent=2)
