"""The benchmark scripts: the GPU check dry-run on the CPU with a tiny model (it must work the first time a GPU
is lent), and the mutation table's counting."""

import importlib.util
import re
import subprocess
import sys

from drowsy.paths import REPO_ROOT


def test_gpu_check_runs_on_the_cpu():
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "gpu_check.py"),
        "--device",
        "cpu",
        "--model",
        "yolov5n",
        "--img-size",
        "128",
        "--batch",
        "4",
        "--steps",
        "4",
        "--images",
        "16",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("single process:"))
    assert re.search(r"single process: \d+\.\d images/s after the first epoch \(2 epochs of 16 images", line), line
    assert "autocast torch.bfloat16, gradient scaler off" in line


def _mutation_script():
    spec = importlib.util.spec_from_file_location("mutation", REPO_ROOT / "benchmarks" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mutation_table_counts_per_module_and_scores_killed_over_checked(tmp_path):
    mutation = _mutation_script()
    statuses = {
        "drowsy.data.labels.x_read__mutmut_1": "killed",
        "drowsy.data.labels.x_read__mutmut_2": "killed",
        "drowsy.data.labels.x_read__mutmut_3": "survived",
        "drowsy.data.labels.x_read__mutmut_4": "no tests",
        "drowsy.data.labels.x_read__mutmut_5": "timeout",
        "drowsy.data.labels.x_read__mutmut_6": "not checked",
        "drowsy.monitor.state.xǁDriverStateMonitorǁupdate__mutmut_1": "killed",
    }
    listed = {"drowsy.data.labels.x_read__mutmut_3"}
    rows = mutation.table(statuses, listed)
    # module, mutants, killed, survived (no tests counts as survived), explained, timeouts, not run, score
    assert rows == [("data.labels", 6, 2, 2, 1, 1, 1, 2 / 5), ("monitor.state", 1, 1, 0, 0, 0, 0, 1.0)]
    (tmp_path / "MUTANTS.md").write_text(
        "# notes\n- drowsy.data.labels.x_read__mutmut_3: `>` -> `>=`; equivalent\n"
        "not a list line drowsy.data.labels.x_read__mutmut_4\n",
        encoding="utf-8",
    )
    assert mutation.explained(tmp_path / "MUTANTS.md") == listed
    assert mutation.explained(tmp_path / "missing.md") == set()
