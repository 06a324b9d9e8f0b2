"""BatchNorm + SiLU fused into one kernel for CPU training (bn_silu.cpp, built on first use).

In a CPU training step of the n model (bf16, channels_last), PyTorch's BatchNorm and SiLU ops took
about 30 % of the time: eight passes over every activation per step, the sigmoid computed twice. The
fused kernel makes four and computes it once (see bn_silu.cpp), for one more activation-sized
tensor kept for the backward pass. It gives the same batch statistics, running statistics and
gradients as `silu(batch_norm(x))` up to float rounding, and the same bits whatever the thread
count.

It applies to training-mode `nn.BatchNorm2d` on channels_last float32/bfloat16 CPU tensors with a
multiple of 16 channels, which is how `drowsy.train.engine` trains the models on a CPU; everything else
(GPU, eval mode, SyncBatchNorm, NCHW) runs the PyTorch ops. The first use compiles the kernel with
the C++ compiler and ninja (about 25 s on 2 cores, then cached under ~/.cache/torch_extensions);
where that fails the PyTorch ops run, after one warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

_SOURCE = Path(__file__).with_name("bn_silu.cpp")
_extension = None  # the built module, False when the build failed
_enabled = True


def set_enabled(enabled: bool) -> bool:
    """Turn the fused kernel on or off (for comparisons); returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, enabled
    return previous


def _cpu_tag() -> str:
    """A short tag of this CPU's instruction sets: the build uses -march=native, so a cache shared
    between different machines must not hand one machine's build to another."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return hashlib.sha1(f"{platform.machine()} {flags}".encode()).hexdigest()[:8]


def extension():
    """The compiled kernel module, building it on first call; None where it cannot be built."""
    global _extension
    if _extension is None:
        start = time.perf_counter()
        if shutil.which("ninja") is None:  # pip's ninja sits beside this interpreter, maybe not on PATH
            os.environ["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
        try:
            cpp_logger = logging.getLogger("torch.utils.cpp_extension")
            level = cpp_logger.level
            cpp_logger.setLevel(logging.ERROR)  # importing it on a CPU-only machine warns "No CUDA runtime"
            try:
                from torch.utils.cpp_extension import load
            finally:
                cpp_logger.setLevel(level)

            # -ffast-math only when compiling: linked with it, the library would set the process's
            # float mode to flush denormals to zero
            wide = ["-mprefer-vector-width=512"] if platform.machine().lower() in ("x86_64", "amd64") else []
            _extension = load(
                name=f"drowsy_bn_silu_{_cpu_tag()}",
                sources=[str(_SOURCE)],
                extra_cflags=["-O3", "-march=native", *wide, "-ffast-math", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
        except Exception as error:  # no compiler, no ninja, unsupported platform: the PyTorch ops still work
            message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            warnings.warn(f"fused BatchNorm+SiLU kernel unavailable, using PyTorch ops: {message}", stacklevel=2)
            _extension = False
        else:
            if time.perf_counter() - start > 2:
                print(
                    f"drowsy: built the fused BatchNorm+SiLU CPU kernel in {time.perf_counter() - start:.0f} s "
                    f"(once per machine; cached in {Path(_extension.__file__).parent})",
                    file=sys.stderr,
                )
    return _extension or None


def applies(x: torch.Tensor, bn: nn.Module) -> bool:
    """Whether the fused kernel computes `silu(bn(x))` for this input and module."""
    return (
        _enabled
        and type(bn) is nn.BatchNorm2d
        and bn.training
        and bn.affine
        and bn.track_running_stats
        and bn.momentum is not None
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.shape[1] % 16 == 0
        and x.is_contiguous(memory_format=torch.channels_last)
        and extension() is not None
    )


class _BatchNormSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, bn):
        y, gate, mean, invstd = extension().forward(
            x, weight, bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps
        )
        ctx.save_for_backward(x, gate, weight, bias, mean, invstd)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, gate, weight, bias, mean, invstd = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = extension().backward(grad, x, gate, weight, bias, mean, invstd)
        return grad_x, grad_weight, grad_bias, None


def bn_silu(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """`silu(bn(x))` for a training-mode BatchNorm2d, updating its running statistics as it would;
    only where `applies(x, bn)`."""
    bn.num_batches_tracked.add_(1)
    return _BatchNormSiLU.apply(x, bn.weight, bn.bias, bn)
