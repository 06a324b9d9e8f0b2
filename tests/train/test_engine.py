"""The training engine: reproducibility, resume after a crash or a signal, checkpoints, overfitting."""

import dataclasses
import json
import pickle
import signal

import pytest
import torch

from drowsy.errors import DrowsyError
from drowsy.infer.predict import load_inference_model
from drowsy.models.blocks import Conv
from drowsy.models.checkpoint import load_checkpoint, save_checkpoint
from drowsy.train.engine import train
from drowsy.train.loss import YoloLoss
from tests.helpers import tiny_config


def final_weights(run_dir) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)["ema"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class InterruptAt:
    """A YoloLoss stand-in that does something at its `at`-th call (0-based), then behaves normally."""

    def __init__(self, at: int, action):
        self.calls, self.at, self.action = 0, at, action

    def __call__(self, model, hyp):
        loss = YoloLoss(model, hyp)

        def compute(raw, targets):
            if self.calls == self.at:
                self.action()
            self.calls += 1
            return loss(raw, targets)

        return compute


@pytest.fixture(scope="module")
def reference_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    summary = train(tiny_config(tiny_dataset, out), progress=False)
    return out, summary


def test_same_seed_gives_identical_weights(tiny_dataset, reference_run, tmp_path):
    train(tiny_config(tiny_dataset, tmp_path), progress=False)
    assert_same_weights(final_weights(reference_run[0]), final_weights(tmp_path))


def test_different_seed_gives_different_weights(tiny_dataset, reference_run, tmp_path):
    train(tiny_config(tiny_dataset, tmp_path, seed=2, epochs=1), progress=False)
    ema = final_weights(tmp_path)
    assert any(not torch.equal(ema[k], v) for k, v in final_weights(reference_run[0]).items())


def test_crash_then_resume_equals_uninterrupted(tiny_dataset, reference_run, tmp_path):
    def crash():
        raise RuntimeError("simulated crash (power loss)")

    # 3 batches per epoch (40 images -> 32 train, /2 parts = 16 -> 4 batches of 4); crash in epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_config(tiny_dataset, tmp_path), progress=False, loss_factory=InterruptAt(6, crash))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    train(tiny_config(tiny_dataset, tmp_path, resume=True), progress=False)
    assert_same_weights(final_weights(reference_run[0]), final_weights(tmp_path))
    epochs_logged = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs_logged == [0, 1, 2]


def test_checkpoints_every_n_epochs_and_resume_stays_exact(tiny_dataset, reference_run, tmp_path):
    def crash():
        raise RuntimeError("simulated crash")

    # 4 batches per epoch: call 6 is in epoch 2, call 10 in epoch 3; last.pt only after epochs 2 and 3
    with pytest.raises(RuntimeError):
        train(
            tiny_config(tiny_dataset, tmp_path / "a", checkpoint_every=2),
            progress=False,
            loss_factory=InterruptAt(6, crash),
        )
    assert not (tmp_path / "a" / "last.pt").exists()
    with pytest.raises(RuntimeError):
        train(
            tiny_config(tiny_dataset, tmp_path / "b", checkpoint_every=2),
            progress=False,
            loss_factory=InterruptAt(10, crash),
        )
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    train(tiny_config(tiny_dataset, tmp_path / "b", checkpoint_every=2, resume=True), progress=False)
    assert_same_weights(final_weights(reference_run[0]), final_weights(tmp_path / "b"))
    # by time instead: a due time already passed at every epoch's end
    with pytest.raises(RuntimeError):
        train(
            tiny_config(tiny_dataset, tmp_path / "c", checkpoint_every=100, checkpoint_minutes=1e-9),
            progress=False,
            loss_factory=InterruptAt(6, crash),
        )
    assert load_checkpoint(tmp_path / "c" / "last.pt")["epoch"] == 1


def test_validations_before_the_last_use_the_subset(tiny_dataset, tmp_path):
    summary = train(tiny_config(tiny_dataset, tmp_path, epochs=2, val_every=1, val_subset=3), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = json.loads((tiny_dataset / "val.json").read_text())["annotations"]
    assert [row["val_images"] for row in rows] == [3, len(val)] and len(val) > 3
    assert summary["metrics"]["mAP75"] == rows[-1]["mAP75"]


def test_a_bad_checkpoint_cadence_is_one_line(tiny_dataset, tmp_path):
    with pytest.raises(DrowsyError, match="checkpoint_every must be >= 1"):
        tiny_config(tiny_dataset, tmp_path, checkpoint_every=0)


def test_sigterm_saves_mid_epoch_and_resume_equals_uninterrupted(tiny_dataset, reference_run, tmp_path):
    summary = train(
        tiny_config(tiny_dataset, tmp_path),
        progress=False,
        loss_factory=InterruptAt(4, lambda: signal.raise_signal(signal.SIGTERM)),
    )
    assert summary["stopped"] and summary["epochs_done"] == 1 and summary["last"].endswith("last.pt")
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert (checkpoint["epoch"], checkpoint["batches_done"]) == (1, 2)  # stopped at the next optimizer step
    resumed = train(tiny_config(tiny_dataset, tmp_path, resume=True), progress=False)
    assert_same_weights(final_weights(reference_run[0]), final_weights(tmp_path))
    assert not resumed["stopped"] and resumed["epochs_done"] == 3
    assert resumed["metrics"] == reference_run[1]["metrics"]  # the same weights validate the same


def test_checkpoint_loads_with_weights_only_and_holds_the_run(reference_run):
    out, summary = reference_run
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 3 and checkpoint["class_names"][4] == "face"
    assert checkpoint["config"]["img_size"] == 96 and checkpoint["hyp"]["lr0"] == 0.01
    assert summary["best"] == str(out / "best.pt") and (out / "best.pt").exists()
    # validated once (val_every 3 of 3 epochs): best is that validation, kept in both checkpoints
    assert summary["best_map75"] == summary["metrics"]["mAP75"] == checkpoint["best_map75"]
    run = json.loads((out / "config.json").read_text())
    assert run["config"]["seed"] == 1 and run["code_version"]


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_checkpoint_with_python_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"ema": Payload()}, f)
    with pytest.raises(DrowsyError, match="refused"):
        load_checkpoint(path)


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"a": torch.ones(2)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"a": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_non_finite_loss_stops_with_clear_error(tiny_dataset, tmp_path):
    def poisoned(model, hyp):  # the first batch only: the second (the optimizer step's, batch 4 of nominal 8) is fine
        loss, calls = YoloLoss(model, hyp), []

        def compute(logits, targets):
            calls.append(1)
            value, parts = loss(logits, targets)
            return (value * float("nan") if len(calls) == 1 else value), parts

        return compute

    with pytest.raises(DrowsyError, match=r"^non-finite loss at epoch 1, batch 1; .* no checkpoint written yet"):
        train(tiny_config(tiny_dataset, tmp_path, epochs=1), progress=False, loss_factory=poisoned)


def test_non_finite_gradient_of_a_finite_loss_stops_training_with_one_line(tiny_dataset, tmp_path):
    def nan_gradient(model, hyp):
        loss = YoloLoss(model, hyp)

        def compute(logits, targets):
            value, parts = loss(logits, targets)
            # sqrt(0) adds 0 to the loss, and its infinite slope times 0 makes every gradient NaN
            return value + (logits[0].float().sum() * 0).sqrt(), parts

        return compute

    with pytest.raises(
        DrowsyError,
        match=r"^non-finite gradient at epoch 1, batch \d+ \(the loss was finite\); "
        "training stopped, no checkpoint written yet",
    ):
        train(tiny_config(tiny_dataset, tmp_path, epochs=1), progress=False, loss_factory=nan_gradient)


def test_freeze_backbone_freezes_exactly_the_backbone(tiny_dataset, reference_run, tmp_path):
    baseline = reference_run[0] / "last.pt"
    train(
        tiny_config(tiny_dataset, tmp_path, weights=str(baseline), freeze="backbone", epochs=1, autoanchor=False),
        progress=False,
    )
    before, after = load_checkpoint(baseline)["ema"], load_checkpoint(tmp_path / "last.pt")["model"]
    backbone = [k for k in after if k.startswith("backbone.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # incl. BatchNorm statistics
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("head."))
    frozen = json.loads((tmp_path / "config.json").read_text())["frozen"]
    assert frozen and all(name.startswith("backbone.") for name in frozen)


@pytest.mark.parametrize("model, built", [("", "yolov5n"), ("yolov5n-relu", "yolov5n-relu")])
def test_a_fine_tune_builds_the_weights_own_model_or_converts_them_to_a_variant_of_the_same_layers(
    tiny_dataset, reference_run, tmp_path, model, built
):
    # yolov5n -> yolov5n-relu: the in-car model from a trained one (docs/prediction.md#int8)
    baseline = reference_run[0] / "last.pt"
    train(
        tiny_config(tiny_dataset, tmp_path, weights=str(baseline), model=model, epochs=1, autoanchor=False),
        progress=False,
    )
    assert load_checkpoint(tmp_path / "last.pt")["model_config"] == built
    rebuilt, _ = load_inference_model(tmp_path / "best.pt")
    activation = torch.nn.ReLU if built.endswith("relu") else torch.nn.SiLU
    assert {type(block.act) for block in rebuilt.modules() if isinstance(block, Conv)} == {activation}


def test_a_model_the_weights_do_not_fit_is_one_line(tiny_dataset, reference_run, tmp_path):
    with pytest.raises(
        DrowsyError, match=r"last.pt: field 'model_config': its weights \('yolov5n'\) do not fit model 'yolov5s' \("
    ):
        train(
            tiny_config(tiny_dataset, tmp_path, weights=str(reference_run[0] / "last.pt"), model="yolov5s"),
            progress=False,
        )


def test_freeze_unknown_module_is_an_error(tiny_dataset, reference_run, tmp_path):
    with pytest.raises(DrowsyError, match="no module named 'backbnoe'"):
        train(
            tiny_config(tiny_dataset, tmp_path, weights=str(reference_run[0] / "last.pt"), freeze="backbnoe"),
            progress=False,
        )


def test_resume_without_a_last_checkpoint_starts_from_scratch(tiny_dataset, reference_run, tmp_path):
    summary = train(tiny_config(tiny_dataset, tmp_path, resume=True), progress=False)
    assert summary["epochs_done"] == 3 and not summary["stopped"]
    assert_same_weights(final_weights(reference_run[0]), final_weights(tmp_path))


def test_resume_keeps_the_best_score_and_best_pt_of_the_epochs_before(tiny_dataset, tmp_path):
    def crash():
        raise RuntimeError("simulated crash")

    every_epoch = {"val_every": 1}
    reference = train(tiny_config(tiny_dataset, tmp_path / "a", **every_epoch), progress=False)
    with pytest.raises(RuntimeError):  # call 10: epoch 3, after two validations
        train(
            tiny_config(tiny_dataset, tmp_path / "b", **every_epoch),
            progress=False,
            loss_factory=InterruptAt(10, crash),
        )
    before = load_checkpoint(tmp_path / "b" / "last.pt")["best_map75"]
    resumed = train(tiny_config(tiny_dataset, tmp_path / "b", resume=True, **every_epoch), progress=False)
    assert before >= 0 and resumed["best_map75"] == reference["best_map75"] >= before
    best = [torch.load(run / "best.pt", weights_only=True) for run in (tmp_path / "a", tmp_path / "b")]
    assert best[0]["epoch"] == best[1]["epoch"]
    assert_same_weights(best[0]["ema"], best[1]["ema"])


def test_a_first_signal_asks_to_stop_a_second_stops_at_once_and_handlers_are_restored():
    from drowsy.train.engine import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_folder_that_holds_a_run_is_not_trained_over_unless_told(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "run", epochs=1, val_every=1)
    train(config, progress=False)
    first = final_weights(tmp_path / "run")
    with pytest.raises(
        DrowsyError, match=r"run already holds a run \(last.pt\): resume=True continues it, overwrite=True"
    ):
        train(config, progress=False)
    assert all(torch.equal(first[k], v) for k, v in final_weights(tmp_path / "run").items())  # nothing replaced
    assert train(dataclasses.replace(config, overwrite=True), progress=False)["epochs_done"] == 1
    assert train(dataclasses.replace(config, resume=True), progress=False)["epochs_done"] == 1  # already finished
