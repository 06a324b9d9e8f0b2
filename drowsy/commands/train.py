"""`drowsy train`: the training engine from a shell (same options as notebooks 03/04).

Every TrainConfig field is an option (`--img-size 640`); `--config FILE` reads them from YAML first.
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
    from drowsy.config import TrainConfig

    parser.add_argument("--config", help="YAML file of options (command-line options override it)")
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
            help=f"default: {field.default!r}",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from drowsy.config import TrainConfig, load_yaml
    from drowsy.train.engine import train

    values = load_yaml(args.config) if args.config else {}
    values.update(
        {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    )
    config = TrainConfig.from_dict(values, args.config or "drowsy train options")
    summary = train(config, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary
        print(json.dumps({k: v for k, v in summary.items() if k != "metrics"}))
    return 0
