"""The GPU check script, dry-run on the CPU with a tiny model: it must work the first time a GPU is lent."""

import re
import subprocess
import sys

from drowsy.paths import REPO_ROOT


def test_gpu_check_runs_on_the_cpu():
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--model", "yolov5n",
               "--img-size", "128", "--batch", "4", "--steps", "4", "--images", "16"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("single process:"))
    assert re.search(r"single process: \d+\.\d images/s after the first epoch \(2 epochs of 16 images", line), line
    assert "autocast torch.bfloat16, gradient scaler off" in line
