"""Notebook 05's ablation: images streamed in chunks give the same table and predictions as one pass."""

import pytest

from drowsy.data.labels import load_manifest, spread
from drowsy.eval import ablation
from drowsy.notebooks import EnsembleParams
from drowsy.train.engine import train
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def weights(tiny_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ablation_model")
    train(tiny_config(tiny_dataset, run_dir, epochs=2, epoch_parts=1, val_every=5), progress=False)
    return {"baseline": run_dir / "best.pt", "finetune": run_dir / "last.pt"}


def canonical(record: dict) -> tuple:
    return record["file_name"], sorted((o["class"], o["position"], o["confidence_score"]) for o in record["objects"])


def test_chunked_ablation_equals_one_pass(tiny_dataset, weights, monkeypatch):
    val = load_manifest(tiny_dataset / "val.json")
    params = EnsembleParams(predict_img_size=128, device="cpu", amp=False, predict_batch=2, conf=0.001)
    options = {
        name: o for name, o in ablation.variants(weights).items() if name in ("fine-tuned", "ensemble + TTA, WBF")
    }
    whole = ablation.run_ablation(options, val.image_root, val.records, **params.predict_options(), progress=False)
    monkeypatch.setattr(ablation, "ABLATION_CHUNK", 3)  # 8 val images: chunks of 3, 3 and 2
    chunked = ablation.run_ablation(options, val.image_root, val.records, **params.predict_options(), progress=False)
    assert whole[1] == chunked[1] == whole[0]["mAP@0.75"].idxmax()
    # the same detections per image; the order of those whose scores round alike (a 2-epoch model
    # scores hundreds of boxes 0.002) may differ with the images batched alongside
    assert [canonical(r) for r in whole[2]] == [canonical(r) for r in chunked[2]] and len(whole[2]) == len(val.records)
    columns = [c for c in whole[0].columns if c != "ms/image"]
    assert whole[0][columns].equals(chunked[0][columns])


def test_spread_covers_the_whole_list():
    assert spread(range(10), 3) == [0, 4, 9] and spread(range(10), 10) == spread(range(10), 0) == list(range(10))
    assert spread(list("abcdef"), 2) == ["a", "f"] and spread(list("abc"), 1) == ["a"]
