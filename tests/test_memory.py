"""Process-tree memory (drowsy.memory): which processes a tree holds, and a process's exact peak."""

import os
import subprocess
import sys

import pytest

from drowsy import memory

pytestmark = pytest.mark.skipif(not memory.available(), reason="reads /proc/PID/smaps_rollup (Linux)")

# a child that starts a grandchild, says both pids, then waits
PARENT = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print(child.pid, flush=True); sys.stdin.readline(); child.kill()"
)
# allocates and touches 256 MB, frees it, then waits
PEAK = (
    "import sys; block = bytearray(256 * 2**20); block[::4096] = b'x' * len(block[::4096]); del block; "
    "print('freed', flush=True); sys.stdin.readline()"
)


def waiting(code: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def test_the_tree_holds_children_and_grandchildren_and_their_pss():
    parent, grandchild = waiting(PARENT)
    try:
        pids = memory.tree()
        assert parent.pid in pids and int(grandchild) in pids and pids[0] == os.getpid()
        assert memory.tree_pss() == pytest.approx(sum(memory.process_pss(p) for p in pids), rel=0.05)
        assert memory.tree_pss(parent.pid) > memory.process_pss(parent.pid) > 0
    finally:
        parent.communicate("\n", timeout=30)


def test_peak_rss_keeps_the_high_water_mark_after_memory_is_freed():
    process, said = waiting(PEAK)
    try:
        assert said == "freed"
        assert memory.peak_rss(process.pid) >= 256 * 2**20 > 2 * memory.process_pss(process.pid)
    finally:
        process.communicate("\n", timeout=30)
    assert memory.peak_rss(process.pid) == memory.process_pss(process.pid) == 0  # exited
