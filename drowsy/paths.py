"""Where things live. Relative paths in parameters resolve against the repository root, so every
notebook and command works from any working directory."""

from pathlib import Path

from drowsy.errors import DrowsyError

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"


def resolve(path: str | Path) -> Path:
    """Absolute paths stay; relative ones are taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def require(path: str | Path, made_by: str) -> Path:
    """Resolve `path` and fail with one line naming what makes it when it is missing."""
    resolved = resolve(path)
    if not resolved.exists():
        raise DrowsyError(f"{resolved} not found: run {made_by} first")
    return resolved
