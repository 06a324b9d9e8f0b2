"""`drowsy` command line: one sub-command per module in `drowsy/commands/`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args)`.
Modules are imported only when their command runs, so `drowsy synth` does not import torch.
"""

import argparse
import importlib
import sys

from drowsy.errors import DrowsyError

COMMANDS = ("synth", "prepare", "train", "evaluate", "predict", "export", "monitor")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="drowsy", description="Inattentive-driver detection.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name in COMMANDS:
        module = importlib.import_module(f"drowsy.commands.{name}")
        # no abbreviations: an old spelling must not pass as a prefix of a new one (--img of --img-size)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP, allow_abbrev=False)
        if name == chosen:
            module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except DrowsyError as err:
        print(f"drowsy: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drowsy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
