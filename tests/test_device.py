"""Process settings of drowsy.device: the C allocator keeps freed memory for the next training step; the
mixed-precision dtype (and gradient scaler) each device gets."""

import subprocess
import sys

import pytest
import torch

import drowsy.device as device_module
from drowsy.device import autocast, autocast_dtype, needs_grad_scaler, reuse_freed_memory, runs_on, select_device
from drowsy.errors import DrowsyError

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


# torch.cuda.get_arch_list() of the CUDA 13 builds (Turing and newer) and of the CUDA 12.6 build
CUDA13_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
CUDA126_ARCHS = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]


@pytest.fixture
def gpu(monkeypatch):
    """A pretend machine with one GPU: set `capability`, `archs` on the returned object; `current` records
    set_device calls."""

    class Gpu:
        capability, archs, name, current = (8, 0), CUDA13_ARCHS, "NVIDIA A100", []

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: Gpu.capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: Gpu.archs)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: Gpu.name)
    monkeypatch.setattr(torch.cuda, "set_device", Gpu.current.append)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    return Gpu


def test_a_gpu_the_build_has_no_kernels_for_is_refused_in_one_line_naming_the_wheel(gpu):
    gpu.capability, gpu.name = (7, 0), "Tesla V100-SXM2-32GB"
    with pytest.raises(DrowsyError) as caught:
        select_device("cuda")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("Tesla V100-SXM2-32GB is sm_70, and PyTorch")
    assert "has kernels for sm_75 sm_80" in message and "whl/cu126" in message
    with pytest.raises(DrowsyError, match="is sm_70"):
        select_device("auto")  # auto takes the GPU, and the same check
    gpu.archs = CUDA126_ARCHS
    assert select_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize(
    "capability, archs, runs",
    [
        ((8, 6), ["sm_80"], True),  # machine code of the same major, lower minor
        ((8, 0), ["sm_86"], False),  # not the other way round
        ((9, 0), ["sm_80", "sm_86"], False),  # nor across majors
        ((12, 1), CUDA13_ARCHS, True),  # PTX (compute_120) compiled by the driver
        ((10, 3), ["sm_100f"], True),  # an architecture-family variant counts as its version
        ((7, 0), CUDA13_ARCHS, False),
        ((7, 0), [], False),  # a CPU-only build lists nothing
    ],
)
def test_which_builds_run_on_which_gpu(capability, archs, runs):
    assert runs_on(archs, *capability) is runs


def test_cuda_n_becomes_the_current_device_and_a_missing_one_is_one_line(gpu):
    assert select_device("cuda:0") == torch.device("cuda", 0) and gpu.current == [torch.device("cuda", 0)]
    with pytest.raises(DrowsyError, match=r"^device 'cuda:3': only 1 GPU\(s\) visible$"):
        select_device("cuda:3")
    with pytest.raises(DrowsyError, match="'gpu' is not a device"):
        select_device("gpu")


@pytest.mark.parametrize(
    "build, driver_file, says",
    [
        (None, None, r"PyTorch .* is a CPU-only build; install a CUDA build"),
        (
            "13.0",
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n",
            r"built for CUDA 13.0, which needs NVIDIA driver >= 580, and this machine has 535.104.05: .*whl/cu126",
        ),
        ("12.6", None, r"no NVIDIA driver is loaded \(.* missing\); PyTorch .* is for CUDA 12.6"),
        (
            "12.6",
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build\n",
            r"\(CUDA 12.6, NVIDIA driver 580.65.06\) sees no GPU",
        ),
    ],
)
def test_no_gpu_names_the_build_and_the_driver_it_needs(monkeypatch, tmp_path, build, driver_file, says):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", build)
    driver = tmp_path / "version"
    if driver_file:
        driver.write_text(driver_file)
    monkeypatch.setattr(device_module, "NVIDIA_DRIVER", driver)
    with pytest.raises(DrowsyError, match=rf"^device 'cuda': .*{says}.*; or use device=cpu$"):
        select_device("cuda")


def test_auto_says_why_it_falls_back_to_the_cpu_only_where_there_is_an_nvidia_driver(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    driver = tmp_path / "version"
    monkeypatch.setattr(device_module, "NVIDIA_DRIVER", driver)
    assert select_device("auto") == torch.device("cpu") and capsys.readouterr().out == ""
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n")
    assert select_device("auto") == torch.device("cpu")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("device auto: the CPU (PyTorch") and "driver >= 580" in lines[0]
