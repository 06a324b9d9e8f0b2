"""This process's place in a (possibly distributed) run: rank, world size, device.

Under torchrun (WORLD_SIZE > 1) it joins the process group: NCCL on GPUs, gloo on CPUs.
"""

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

from drowsy.device import select_device

# Rank 0 validates alone while the others wait in the next gradient sync: allow a long validation.
GROUP_TIMEOUT = datetime.timedelta(hours=3)


@dataclasses.dataclass(frozen=True)
class Process:
    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that validates and writes files."""
        return self.rank == 0


def setup_process(device_name: str) -> Process:
    """Select the device and, under torchrun, bind this rank to its GPU and join the process group."""
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(device_name)
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=GROUP_TIMEOUT)
    return Process(rank, world_size, device)


def barrier(process: Process) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if process.distributed:
        dist.barrier()
