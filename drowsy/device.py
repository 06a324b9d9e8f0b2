"""Devices, mixed precision and seeding, shared by training and inference."""

import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path

import numpy as np
import torch

from drowsy.errors import DrowsyError
from drowsy.progress import log

NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present where the NVIDIA kernel driver is loaded (Linux)
# The oldest driver each CUDA major version runs on (NVIDIA's minor-version compatibility: any 12.x toolkit on
# an R525 driver, any 13.x on R580).
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
LEGACY_WHEEL = "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu126"


def select_device(name: str) -> torch.device:
    """The device `name` ("auto", "cpu", "cuda", "cuda:N") names, checked: a CUDA device that this PyTorch
    build cannot run is one line saying what to install; "auto" takes the GPU when PyTorch can use it and
    says in one line why not when the machine has an NVIDIA driver PyTorch cannot use. "cuda:N" becomes the
    current device (or the pin-memory thread would open a context on GPU 0)."""
    if name == "auto":
        if torch.cuda.is_available():
            return _checked_gpu(torch.device("cuda"))
        if nvidia_driver():
            log(f"device auto: the CPU ({no_gpu_reason()})")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DrowsyError(f"device: {name!r} is not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise DrowsyError(f"device {name!r}: {no_gpu_reason()}; or use device=cpu")
    return _checked_gpu(device)


def nvidia_driver() -> str | None:
    """The loaded NVIDIA driver's version ("580.65.06"), or None where none is loaded."""
    try:
        words = NVIDIA_DRIVER.read_text().split()
    except OSError:
        return None
    return next((word for word in words if word[:1].isdigit() and word.count(".") >= 1), "unknown")


def no_gpu_reason() -> str:
    """Why PyTorch sees no CUDA GPU here, in words that say what to do."""
    build, driver = torch.version.cuda, nvidia_driver()
    if build is None:
        return f"PyTorch {torch.__version__} is a CPU-only build; install a CUDA build (README, GPU)"
    needed = MIN_DRIVER.get(int(build.split(".")[0]))
    if driver is None:
        return f"no NVIDIA driver is loaded ({NVIDIA_DRIVER} missing); PyTorch {torch.__version__} is for CUDA {build}"
    if needed and driver[:1].isdigit() and int(driver.split(".")[0]) < needed:
        return (
            f"PyTorch {torch.__version__} is built for CUDA {build}, which needs NVIDIA driver >= {needed}, and this "
            f"machine has {driver}: update the driver, or install the CUDA 12.6 build ({LEGACY_WHEEL})"
        )
    return f"PyTorch {torch.__version__} (CUDA {build}, NVIDIA driver {driver}) sees no GPU (CUDA_VISIBLE_DEVICES?)"


def _checked_gpu(device: torch.device) -> torch.device:
    """`device` when this PyTorch build has kernels for its GPU, else a one-line DrowsyError saying which
    build to install; "cuda:N" is made the current device."""
    if device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise DrowsyError(f"device 'cuda:{device.index}': only {torch.cuda.device_count()} GPU(s) visible")
        torch.cuda.set_device(device)
    major, minor = torch.cuda.get_device_capability(device)
    built = torch.cuda.get_arch_list()
    if not runs_on(built, major, minor):
        if (major, minor) < (7, 5):
            fix = f"install the CUDA 12.6 build, the last with kernels for it: {LEGACY_WHEEL}"
        else:
            fix = "install a PyTorch build whose CUDA version supports it (README, GPU)"
        raise DrowsyError(
            f"{torch.cuda.get_device_name(device)} is sm_{major}{minor}, and PyTorch {torch.__version__} (CUDA "
            f"{torch.version.cuda}) has kernels for {' '.join(built) or 'no GPU'} only: {fix}"
        )
    return device


def runs_on(built: list[str], major: int, minor: int) -> bool:
    """Whether kernels built for `built` (torch.cuda.get_arch_list(): "sm_80", "compute_120", ...) run on a GPU
    of compute capability major.minor: machine code of the same major version and a minor at most the GPU's,
    or PTX of a version at most the GPU's (compiled by the driver on first use)."""
    for arch in built:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")  # sm_90a, sm_100f: architecture-specific variants of sm_90, sm_100
        if not digits.isdigit():
            continue
        built_major, built_minor = divmod(int(digits), 10)
        if kind == "sm" and built_major == major and built_minor <= minor:
            return True
        if kind == "compute" and (built_major, built_minor) <= (major, minor):
            return True
    return False


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
