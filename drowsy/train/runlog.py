"""What a training run writes next to its weights, so any figure traces back to the run that made it:
`config.json` (resolved config, hyperparameters, code version, device, what was frozen, anchors) and
`metrics.jsonl` (one JSON line per epoch)."""

import json
import subprocess
from pathlib import Path

from drowsy import __version__
from drowsy.files import write_json
from drowsy.paths import REPO_ROOT


def code_version() -> str:
    """The git commit of the checkout (with -dirty), or the package version outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            # git runs the notebooks' clean filter (a Python start each) on files it cannot trust by their
            # stat data, as right after a checkout; killed early, it would never write the refreshed index
            timeout=30,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return __version__


class RunLog:
    """The run's `config.json` and `metrics.jsonl` in `run_dir`."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"

    def start(self, run_info: dict, start_epoch: int) -> None:
        """Write config.json; keep the metrics of epochs before `start_epoch` (a resumed run redoes the
        rest) and drop any later line."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "config.json", run_info, indent=2)
        lines = self.metrics_path.read_text().splitlines() if start_epoch and self.metrics_path.exists() else []
        kept = [line for line in lines if json.loads(line)["epoch"] < start_epoch]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def append(self, row: dict) -> None:
        """One epoch's line."""
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
