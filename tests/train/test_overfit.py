"""A detector that cannot memorise 8 images cannot learn anything: train on them, score on them."""

import json

import yaml

from drowsy.config import TrainConfig, load_yaml
from drowsy.data.labels import load_manifest
from drowsy.train.engine import train


def test_model_overfits_eight_images(tiny_dataset, tmp_path):
    manifest = load_manifest(tiny_dataset / "train.json")
    eight = {"image_root": str(manifest.image_root), "annotations": manifest.records[:8]}
    (tmp_path / "eight.json").write_text(json.dumps(eight))

    hyp = load_yaml("data/hyp.scratch-p6.yaml")
    hyp.update(mosaic=0.0, scale=0.0, translate=0.0, fliplr=0.0, hsv_v=0.0, warmup_epochs=0.0, lr0=0.02)
    (tmp_path / "hyp.yaml").write_text(yaml.safe_dump(hyp))

    config = TrainConfig(
        train_manifest=str(tmp_path / "eight.json"),
        val_manifest=str(tmp_path / "eight.json"),
        run_dir=str(tmp_path / "run"),
        model="yolov5n",
        hyp=str(tmp_path / "hyp.yaml"),
        img_size=128,
        batch=8,
        nominal_batch=8,
        epochs=360,
        epoch_parts=1,
        device="cpu",
        workers=0,
        cache=True,
        val_every=360,
        autoanchor=True,
        seed=0,
    )
    summary = train(config, progress=False)
    assert summary["metrics"]["mAP50"] >= 0.9, summary["metrics"]
