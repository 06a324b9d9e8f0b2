"""Typed run configuration: notebook parameters and YAML files become frozen dataclasses.

A notebook's `parameters` cell holds one scalar per line; the cell after it calls
`SomeParams.from_namespace(globals())`. Presets and hyperparameter files go through `from_dict`,
which also rejects keys the dataclass does not know.
"""

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from drowsy.errors import DrowsyError
from drowsy.paths import resolve


def _type_ok(value, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:  # an int is a fine float (papermill passes `-p lr 1` as int)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every typed configuration. Subclasses are plain frozen dataclasses with defaults."""

    @classmethod
    def from_dict(cls, values: dict, source: str = "parameters"):
        """Build from a mapping; unknown keys and wrong types end in one line naming `source`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise DrowsyError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            if not _type_ok(value, hints[name]):
                raise DrowsyError(
                    f"{source}: field '{name}' must be {_type_name(hints[name])}, got {value!r}"
                )
        return cls(**values)

    @classmethod
    def from_namespace(cls, namespace: dict, source: str = "notebook parameters"):
        """Build from a notebook's globals: picks exactly this dataclass's fields."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in namespace]
        if missing:
            raise DrowsyError(f"{source}: missing parameter(s) {', '.join(missing)}")
        return cls.from_dict({n: namespace[n] for n in names}, source)

    @classmethod
    def from_yaml(cls, path: str | Path):
        path = resolve(path)
        return cls.from_dict(load_yaml(path), str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; a missing file or a non-mapping is a one-line error."""
    path = resolve(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DrowsyError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise DrowsyError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise DrowsyError(f"{path}: expected a mapping of names to values")
    return values
