"""Process settings of drowsy.device: the C allocator keeps freed memory for the next training step; the
mixed-precision dtype (and gradient scaler) each device gets."""

import subprocess
import sys

import pytest
import torch

from drowsy.device import autocast, autocast_dtype, needs_grad_scaler, reuse_freed_memory

# A 16 MiB malloc in a fresh process, and where it lands: glibc's default mmap threshold (128 KiB)
# maps it on its own (returned to the OS when freed); under reuse_freed_memory's 32 MiB it comes from
# the heap, which keeps it for the next step. Page faults per training step, default against tuned:
# benchmarks/memory_reuse.py.
WHERE = """
import ctypes, ctypes.util, sys
from drowsy.device import reuse_freed_memory
if sys.argv[1] == "tuned":
    assert reuse_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
address = libc.malloc(16 * 2**20)
for line in open("/proc/self/maps"):
    span, *rest = line.split()
    low, high = (int(x, 16) for x in span.split("-"))
    if low <= address < high:
        print(rest[4] if len(rest) >= 5 else "anonymous mapping")
"""


def region_of_a_large_allocation(mode: str) -> str:
    result = subprocess.run([sys.executable, "-c", WHERE, mode], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_freed_memory_stays_in_the_heap_under_the_setting():
    if not reuse_freed_memory():  # glibc only; elsewhere the function changes nothing
        pytest.skip("no glibc mallopt here")
    assert region_of_a_large_allocation("default") == "anonymous mapping"
    assert region_of_a_large_allocation("tuned") == "[heap]"


@pytest.mark.parametrize(
    "capability, dtype, scaler",
    [
        ((7, 0), torch.float16, True),  # V100
        ((7, 5), torch.float16, True),  # T4
        ((8, 0), torch.bfloat16, False),  # A100
        ((9, 0), torch.bfloat16, False),
    ],
)  # H100
def test_fp16_and_its_scaler_where_bf16_is_not_native(monkeypatch, capability, dtype, scaler):
    # torch.cuda.is_bf16_supported() says True on a V100 or T4 too (emulated): it must not decide
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    gpu = torch.device("cuda", 0)
    assert autocast_dtype(gpu) == dtype
    assert needs_grad_scaler(gpu, amp=True) is scaler
    assert needs_grad_scaler(gpu, amp=False) is False


def test_bf16_and_no_scaler_on_the_cpu():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) == torch.bfloat16 and not needs_grad_scaler(cpu, amp=True)
    with autocast(cpu, True):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
