"""This process's place in a (possibly distributed) run: rank, world size, device, its node's ranks.

Under torchrun (WORLD_SIZE > 1) it joins the process group: NCCL on GPUs, gloo on CPUs.
"""

import contextlib
import dataclasses
import datetime
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from drowsy.device import select_device
from drowsy.errors import DrowsyError

T = TypeVar("T")

# Rank 0 validates alone while the others wait in the next gradient sync: allow a long validation.
GROUP_TIMEOUT = datetime.timedelta(hours=3)


@dataclasses.dataclass(frozen=True)
class Process:
    rank: int
    world_size: int
    device: torch.device
    local_rank: int = 0  # this rank's place among the ranks of its node (machine)
    local_world_size: int = 1  # how many ranks run on its node

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that validates and writes files."""
        return self.rank == 0


SINGLE_PROCESS = Process(0, 1, torch.device("cpu"))  # a run without torchrun, as far as sharing goes


def setup_process(device_name: str) -> Process:
    """Select the device and, under torchrun, bind this rank to its GPU and join the process group."""
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(device_name)
    if world_size == 1:
        return Process(rank, world_size, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=GROUP_TIMEOUT)
    # torchrun says how many ranks share this node; under a launcher that does not, each rank is on its own
    node = (local_rank, int(os.environ["LOCAL_WORLD_SIZE"])) if "LOCAL_WORLD_SIZE" in os.environ else (0, 1)
    return Process(rank, world_size, device, *node)


@contextlib.contextmanager
def joined(device_name: str) -> Iterator[Process]:
    """This process's place in the run (`setup_process`) for the block; under torchrun it leaves the
    process group when the block ends, however it ends. A rank that exits with the group still up can
    abort in its teardown (seen here: SIGABRT, "terminate called without an active exception", in about
    one of three runs where the ranks stop together on an error)."""
    process = setup_process(device_name)
    try:
        yield process
    finally:
        if process.distributed and dist.is_initialized():
            dist.destroy_process_group()


def barrier(process: Process) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if process.distributed:
        dist.barrier()


def all_agree(process: Process, answer: bool) -> bool:
    """Whether every rank answered yes (one process: its answer), so that all take the same branch."""
    if not process.distributed:
        return answer
    answers: list = [None] * process.world_size
    dist.all_gather_object(answers, answer)
    return all(answers)


def together(process: Process, action: Callable[[], T]) -> T:
    """`action()` on every rank; where it fails on one rank it fails on all (that rank raising its own
    error, the others one line), instead of the others waiting in the next collective for the timeout."""
    try:
        result, error = action(), None
    except Exception as caught:  # any failure: the other ranks must hear of it before it propagates
        result, error = None, caught
    if not all_agree(process, error is None):
        if error is not None:
            raise error
        raise DrowsyError("stopped: another rank failed (its own line says why)")
    return result


def node_shared_file(process: Process, folder: Path, size: int) -> int:
    """An open descriptor (read-write) of a new file of `size` bytes in `folder`, the same file for every
    rank of this node (in one process, its own). Its space is reserved up front where the system can
    (a full shared memory is then an error here, not a crash when a page is first written). It is
    unlinked before this returns, once every rank has opened it or failed to: it lives as long as a
    process holds it open or mapped, so a crash leaves nothing behind."""
    name = [f"drowsy-{uuid.uuid4().hex}"]
    if process.distributed:
        dist.broadcast_object_list(name, src=0)
    path = folder / f"{name[0]}-{process.rank - process.local_rank}"  # named after the node's first rank
    first = process.local_rank == 0
    created = together(process, lambda: _create(path, size) if first else None)
    try:
        opened = together(process, lambda: None if first else os.open(path, os.O_RDWR))
    except Exception:
        if first:
            os.close(created)
        raise
    finally:
        if first:
            path.unlink()
    return created if first else opened


def _create(path: Path, size: int) -> int:
    """A new file of `size` bytes, its space reserved where posix_fallocate exists; a one-line error
    naming the file when there is no room."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)
    except OSError as error:
        os.close(fd)
        path.unlink()
        raise DrowsyError(
            f"image cache: cannot reserve {size / 2**30:.2f} GB in {path.parent} ({error.strerror}): "
            "set cache false or cache_gb lower, or give it more room (Docker: --shm-size)"
        ) from None
    return fd
