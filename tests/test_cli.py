"""The `drowsy` command line: an option's former spelling is refused naming the current one, no option is
taken from an abbreviation (which would let an old spelling pass as a prefix of a new one), and `drowsy
train --config` takes a preset as the notebooks do."""

import argparse

import pytest

from drowsy.cli import main
from drowsy.config import MonitorRun, TrainConfig, field_comments, load_yaml
from drowsy.errors import DrowsyError
from drowsy.notebooks import BaselineParams, DietParams, EnsembleParams, params_of
from drowsy.paths import REPO_ROOT


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["predict", "--weights", "w.pt", "--images", "in", "--out", "o.json", "--img", "320"],
            "--img is now --img-size",
        ),
        (["export", "--weights", "w.pt", "--out", "o.onnx", "--img", "320"], "--img is now --img-size"),
        (["monitor", "--weights", "w.pt", "--video", "v.mp4", "--out", "o", "--img", "320"], "--img is now --img-size"),
        (
            ["evaluate", "--labels", "l.json", "--predictions", "p.json", "--max-dets", "3"],
            "--max-dets is now --max-det",
        ),
    ],
    ids=["predict", "export", "monitor", "evaluate"],
)
def test_a_former_option_spelling_is_refused_naming_the_current_one(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"drowsy {argv[0]}: error: {message}"


def test_options_are_not_taken_from_abbreviations(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--weights", "w.pt", "--images", "in", "--out", "o.json", "--img-s", "320"])
    assert "unrecognized arguments: --img-s 320" in capsys.readouterr().err


def train_config(argv: list[str]):
    from drowsy.commands import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return train.build_config(parser.parse_args(argv))


def test_drowsy_train_takes_a_preset_as_the_notebooks_do_and_options_over_it():
    full = REPO_ROOT / "data/presets/full.yaml"
    assert (
        train_config(["--config", str(full)])
        == BaselineParams.from_dict(params_of("03_train_baseline", load_yaml(full))).train_config()
    )
    finetune = train_config(["--config", str(full), "--stage", "finetune", "--workers", "2"])
    assert (finetune.epochs, finetune.freeze, finetune.weights, finetune.workers) == (
        50,
        "backbone",
        "weights/full/baseline/last.pt",
        2,
    )
    assert train_config([]) == TrainConfig()  # without a preset: the defaults, the demo's


def test_drowsy_train_refuses_a_preset_key_no_notebook_takes(tmp_path):
    preset = tmp_path / "typo.yaml"
    preset.write_text("epoch: 3\n")
    with pytest.raises(DrowsyError, match=r"typo.yaml: unknown parameter 'epoch' \(did you mean 'epochs'\?\)$"):
        train_config(["--config", str(preset)])


@pytest.mark.parametrize(
    "command, config, field, option, default",
    [
        ("train", TrainConfig, "img_size", "--img-size", 256),
        ("monitor", MonitorRun, "batch", "--batch", 4),
        ("predict", EnsembleParams, "predict_img_size", "--img-size", 1536),  # notebook 05's cell
        ("predict", EnsembleParams, "predict_batch", "--batch", 8),
        ("prepare", DietParams, "val_size", "--val-size", 20000),  # notebook 02's cell
    ],
)
def test_help_gives_an_option_its_fields_comment_and_default(command, config, field, option, default, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    option_help = shown[shown.index(f" {option} ") :]
    assert option_help.split(maxsplit=2)[2].startswith(f"{field_comments(config)[field]} (default: {default})")


def test_a_train_config_passes_through_its_options_unchanged():
    # how benchmarks/gpu_check.py reruns a run under torchrun
    from drowsy.commands.train import options_of

    config = TrainConfig(img_size=1280, batch=8, weights="", freeze="backbone", resume=True, cache_gb=2.5)
    assert train_config(options_of(config)) == config
