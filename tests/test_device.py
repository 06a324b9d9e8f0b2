"""Process settings of drowsy.device: the C allocator keeps freed memory for the next training step; the
mixed-precision dtype (and gradient scaler) each device gets."""

import subprocess
import sys

import pytest
import torch

from drowsy.device import autocast, autocast_dtype, needs_grad_scaler, reuse_freed_memory

# Three training steps of yolov5n at the demo's batch and size in a fresh process; prints page faults per step.
STEPS = """
import resource, sys
import torch
from drowsy import CLASSES
from drowsy.device import reuse_freed_memory
from drowsy.models import build_model
torch.manual_seed(0)
if sys.argv[1] == "tuned":
    assert reuse_freed_memory()
model = build_model("yolov5n", num_classes=len(CLASSES), in_channels=1).to(memory_format=torch.channels_last)
images = torch.rand(16, 1, 320, 320).contiguous(memory_format=torch.channels_last)
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sum(output.float().square().mean() for output in model(images))
    loss.backward()
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def faults_per_step(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return float(result.stdout)


def test_freed_memory_is_reused_across_training_steps():
    if not reuse_freed_memory():  # glibc only; elsewhere the function changes nothing
        pytest.skip("no glibc mallopt here")
    default, tuned = faults_per_step("default"), faults_per_step("tuned")
    # measured: ~2,400 page faults per step with glibc's defaults, ~1 with the setting (and 245 vs 202 ms
    # per step); ~29,000 vs ~900 with PyTorch's BatchNorm and SiLU ops instead of the fused kernel
    assert tuned < default / 4, (default, tuned)


@pytest.mark.parametrize("capability, dtype, scaler", [((7, 0), torch.float16, True),  # V100
                                                       ((7, 5), torch.float16, True),  # T4
                                                       ((8, 0), torch.bfloat16, False),  # A100
                                                       ((9, 0), torch.bfloat16, False)])  # H100
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
