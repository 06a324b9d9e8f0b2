"""Devices, mixed precision and seeding, shared by training and inference."""

import contextlib
import ctypes
import ctypes.util
import os

import numpy as np
import torch

from drowsy.errors import DrowsyError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DrowsyError(f"device '{name}' asked for, but no CUDA GPU is available (use device=cpu)")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting to be deterministic; harmless on the CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new tensor with NaN, a fill kernel per allocation (6-9% of a
        # CPU training step); every kernel here writes its whole output, so the fill only costs time.
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = True


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def reuse_freed_memory() -> bool:
    """Keep freed memory in the C heap for the next training step instead of returning it to the OS.

    With glibc's defaults a CPU training step hands its activations back to the kernel and gets fresh
    zeroed pages for the next step's: at the demo settings (yolov5n, 320 px, batch 16) ~14,000 page
    faults per step (~2,400 with the fused BatchNorm+SiLU kernel). Raising the mmap threshold to
    glibc's maximum (32 MiB) and the trim threshold to 1 GiB keeps them: ~700 faults per step, +5-8 %
    images/s (interleaved runs: 61.7 and 62.9 without, 68.2 and 67.0 with); with the fused kernel ~1
    fault and 202 instead of 245 ms per step. The memory held is what the next step needs anyway: the
    peak RSS of a short demo training run went from 1.23 to 1.25-1.29 GB. Process-wide and permanent;
    glibc only (Linux): returns False, changing nothing, elsewhere.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):  # no C library with mallopt (macOS, Windows)
        return False
    return all(
        mallopt(option, value) == 1
        for option, value in ((_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 2**30), (_M_TOP_PAD, 64 * 2**20))
    )


NATIVE_BF16_CAPABILITY = (8, 0)  # CUDA compute capability with bf16 tensor cores (A100, RTX 30xx, H100, ...)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision dtype on `device`: bf16 on the CPU (AMX/AVX-512) and on GPUs where bf16 is
    native, fp16 on older GPUs (V100, T4). `torch.cuda.is_bf16_supported()` is no guide there: it is
    true on them too, through a slow emulation, and would leave fp16 and its gradient scaler unused."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < NATIVE_BF16_CAPABILITY:
        return torch.float16
    return torch.bfloat16


def needs_grad_scaler(device: torch.device, amp: bool) -> bool:
    """Whether training needs fp16's gradient scaler (bf16 has fp32's exponent range, no scaler)."""
    return amp and device.type == "cuda" and autocast_dtype(device) == torch.float16


def autocast(device: torch.device, enabled: bool):
    """Autocast to `autocast_dtype(device)`, or nothing when not `enabled`."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype(device))
