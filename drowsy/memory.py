"""Memory of a whole process tree: the main process, a notebook kernel, loader workers and their fork
server. PSS (proportional set size) counts a page shared by k processes as 1/k in each, so the sum over
a tree is what the tree really holds; RSS would count shared memory once per process."""

import os
from pathlib import Path

PROC = Path("/proc")


def process_pss(pid: int) -> int:
    """PSS of one process in bytes (`/proc/PID/smaps_rollup`); 0 when it has exited meanwhile."""
    return _proc_bytes(pid, "smaps_rollup", "Pss:")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (every thread's `children` list)."""
    found = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def tree(pid: int | None = None) -> list[int]:
    """`pid` (default: this process) and all its descendants."""
    found, pending = [], [pid or os.getpid()]
    while pending:
        current = pending.pop()
        if current not in found:
            found.append(current)
            pending += children(current)
    return found


def tree_pss(pid: int | None = None) -> int:
    """PSS in bytes of `pid` (default: this process) and all its descendants."""
    return sum(process_pss(p) for p in tree(pid))


def peak_rss(pid: int) -> int:
    """The most resident memory `pid` has held so far, in bytes (`VmHWM`, kept by the kernel: exact, not
    sampled; shared pages count in full); 0 when it has exited meanwhile."""
    return _proc_bytes(pid, "status", "VmHWM:")


def _proc_bytes(pid: int, file: str, key: str) -> int:
    """The kB value of the `key` line of /proc/PID/`file`, in bytes; 0 when the process has exited meanwhile."""
    try:
        text = (PROC / str(pid) / file).read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def available() -> bool:
    """Whether this system reports PSS (Linux 4.14 and newer)."""
    return (PROC / str(os.getpid()) / "smaps_rollup").exists()
