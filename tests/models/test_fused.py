"""The fused BatchNorm+SiLU CPU kernel: equal to PyTorch in outputs and gradients, in training and in eval mode."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from drowsy.models import fused
from drowsy.models.blocks import Conv

CHANNELS_LAST = torch.channels_last


@pytest.fixture
def pytorch_ops():
    """Within the test: the plain PyTorch ops instead of the fused kernel."""

    def run(function, *args):
        previous = fused.set_enabled(False)
        try:
            return function(*args)
        finally:
            fused.set_enabled(previous)

    return run


def _batchnorm(channels: int, seed: int) -> nn.BatchNorm2d:
    generator = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels, eps=1e-3, momentum=0.03)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=generator))
        bn.running_mean.copy_(torch.randn(channels, generator=generator))
        bn.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
    return bn


def _inputs(shape, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    # a mean far from 0 next to a small spread: the variance must not cancel out
    x = (torch.randn(shape, generator=generator) * 2 + 6).to(dtype).contiguous(memory_format=CHANNELS_LAST)
    grad = torch.randn(shape, generator=generator).to(dtype).contiguous(memory_format=CHANNELS_LAST)
    return x, grad


def _pytorch_bn_silu(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.silu(bn(x))


def _train_step(bn: nn.BatchNorm2d, x: torch.Tensor, grad: torch.Tensor, bn_silu=fused.bn_silu) -> dict:
    x = x.clone().requires_grad_()
    y = bn_silu(x, bn)
    y.backward(grad)
    return {
        "y": y.detach(),
        "grad_x": x.grad,
        "grad_weight": bn.weight.grad,
        "grad_bias": bn.bias.grad,
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
        "batches": bn.num_batches_tracked.clone(),
    }


def test_the_kernel_builds_here_and_leaves_float_modes_alone():
    assert fused.extension() is not None  # CI has a C++ compiler and ninja: a failed build must not pass quietly
    # built with -ffast-math: linked with it, the library would switch the process to flush denormals to 0
    assert (torch.tensor([1e-39]) * 0.5).item() > 0


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 2e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("shape", [(4, 16, 33, 17), (2, 48, 8, 8), (8, 256, 5, 5)])
def test_matches_batchnorm_then_silu(dtype, tolerance, shape):
    x, grad = _inputs(shape, dtype, seed=1)
    bn_fused, bn_plain = _batchnorm(shape[1], seed=2), _batchnorm(shape[1], seed=2)
    assert fused.applies(x, bn_fused)
    got = _train_step(bn_fused, x, grad)
    want = _train_step(bn_plain, x, grad, bn_silu=_pytorch_bn_silu)
    for key, expected in want.items():
        actual = got[key]
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, key
        scale = expected.float().abs().max().clamp_min(1e-6)
        assert ((actual.float() - expected.float()).abs().max() / scale).item() < tolerance, key
    assert got["y"].is_contiguous(memory_format=CHANNELS_LAST)
    assert got["grad_x"].is_contiguous(memory_format=CHANNELS_LAST)
    assert got["batches"].item() == 1


def test_same_bits_with_any_thread_count():
    x, grad = _inputs((4, 32, 40, 24), torch.bfloat16, seed=3)
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_train_step(_batchnorm(32, seed=4), x, grad))
    finally:
        torch.set_num_threads(previous)
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key


def test_applies_only_to_cpu_training_in_channels_last():
    x, _ = _inputs((2, 16, 8, 8), torch.bfloat16, seed=5)
    bn = _batchnorm(16, seed=6)
    assert fused.applies(x, bn)
    assert not fused.applies(x.contiguous(), bn)  # NCHW
    assert not fused.applies(x.half(), bn)
    x24, _ = _inputs((2, 24, 8, 8), torch.bfloat16, seed=5)
    assert not fused.applies(x24, _batchnorm(24, seed=6))  # channels not a multiple of 16
    assert not fused.applies(x, bn.eval())  # running statistics: the PyTorch ops
    sync = nn.SyncBatchNorm(16)
    assert not fused.applies(x, sync)
    cumulative = _batchnorm(16, seed=6)
    cumulative.momentum = None
    assert not fused.applies(x, cumulative)
    previous = fused.set_enabled(False)
    try:
        assert not fused.applies(x, _batchnorm(16, seed=6))
    finally:
        fused.set_enabled(previous)


def test_conv_block_trains_the_same_either_way(pytorch_ops):
    def train(block: Conv, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = block(x)
        y.float().square().mean().backward()
        return y.detach(), block.conv.weight.grad

    torch.manual_seed(7)
    block = Conv(8, 32, 3).to(memory_format=CHANNELS_LAST).train()
    twin = Conv(8, 32, 3).to(memory_format=CHANNELS_LAST).train()
    twin.load_state_dict(block.state_dict())
    x = torch.randn(4, 8, 20, 20).contiguous(memory_format=CHANNELS_LAST)
    y_fused, grad_fused = train(block, x)
    y_plain, grad_plain = pytorch_ops(train, twin, x)
    assert (y_fused.float() - y_plain.float()).abs().max() < 0.05 * y_plain.float().abs().max()
    assert (grad_fused - grad_plain).abs().max() < 0.05 * grad_plain.abs().max()
    assert torch.allclose(block.bn.running_mean, twin.bn.running_mean, rtol=1e-2, atol=1e-3)
    with torch.no_grad():  # eval mode: the PyTorch ops on the running statistics, the same module output
        assert torch.equal(block.eval()(x), F.silu(block.bn(block.conv(x))))
