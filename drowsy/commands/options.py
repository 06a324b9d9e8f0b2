"""Option helpers the commands share: integer checks, refusing an option's former spelling, and help taken
from the field comments the notebooks' parameter cells show."""

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


def field_help(params, name: str, default=None) -> str:
    """--help of an option that is field `name` of dataclass `params` (a notebook's parameters, TrainConfig,
    MonitorRun): the field's comment, what it means and its unit, as the parameter cell shows it, and the
    option's own default (the field's when not given: a notebook's defaults are the demo's, a command's
    may be the recipe's)."""
    from drowsy.config import field_comments

    default = params.__dataclass_fields__[name].default if default is None else default
    return f"{field_comments(params)[name]} (default: {default})".replace("%", "%%")
