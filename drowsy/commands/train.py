"""`drowsy train`: the training engine from a shell (same options as notebooks 03/04).

Every TrainConfig field is an option (`--img-size 640`). `--config PRESET` starts from a preset, the
notebooks' schema (`drowsy train --config data/presets/full.yaml --stage finetune` is notebook 04's run);
options given on the command line override it.
Runs under torchrun for DDP: `torchrun --nproc_per_node=2 -m drowsy train ...`.
"""

import argparse
import dataclasses

HELP = "train or fine-tune a detector (baseline, fine-tune, resume; DDP under torchrun)"


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drowsy.config import TrainConfig, field_comments

    comments = field_comments(TrainConfig)
    parser.add_argument(
        "--config",
        metavar="PRESET",
        help="a preset (data/presets/NAME.yaml), as the notebooks take it; options override it",
    )
    parser.add_argument(
        "--stage",
        choices=("baseline", "finetune"),
        default="baseline",
        help="with --config: the run of notebook 03 (baseline, on the diet set) or of 04 (finetune)",
    )
    for field in dataclasses.fields(TrainConfig):
        kind = (
            _bool
            if field.type in (bool, "bool")
            else {"int": int, "float": float}.get(getattr(field.type, "__name__", field.type), str)
        )
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=kind,
            default=None,
            help=f"{comments[field.name]} (default: {field.default!r})",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from drowsy.train.engine import train

    summary = train(build_config(args), progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary
        print(json.dumps({k: v for k, v in summary.items() if k != "metrics"}))
    return 0


def build_config(args: argparse.Namespace):
    """The run's TrainConfig: the preset's stage (notebook 03's or 04's), or the defaults, with the options
    given on the command line over it. A preset key no notebook takes ends in one line."""
    from drowsy.config import TrainConfig
    from drowsy.notebooks import BaselineParams, FinetuneParams, check_preset, params_of

    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None
    }
    if not args.config:
        return TrainConfig.from_dict(given, "drowsy train options")
    notebook, stage = {"baseline": ("03_train_baseline", BaselineParams), "finetune": ("04_finetune", FinetuneParams)}[
        args.stage
    ]
    params = stage.from_dict(params_of(notebook, check_preset(args.config)), args.config)
    return dataclasses.replace(params.train_config(), **given)


def options_of(config) -> list[str]:
    """A TrainConfig as this command's options (`--img-size 1280 ...`), e.g. to rerun it under torchrun."""
    return [
        arg
        for f in dataclasses.fields(config)
        for arg in (f"--{f.name.replace('_', '-')}", str(getattr(config, f.name)))
    ]
