"""Option helpers the commands share: integer checks and refusing an option's former spelling."""

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def renamed(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """An option's former spelling: refused in one line naming the current one, not silently ignored."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{old} is now {new}")

    parser.add_argument(old, action=Renamed, nargs="?", help=argparse.SUPPRESS)
