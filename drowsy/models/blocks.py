"""Building blocks of the YOLOv5 (v6.x) detector: Conv, Bottleneck, C3 and SPPF.

Every block maps a float tensor [B, C_in, H, W] to [B, C_out, H', W'] and keeps the batch and
memory format of its input, so the whole model runs in channels_last and under autocast.
"""

import torch
from torch import nn

from . import fused


class _ChannelConcat(torch.autograd.Function):
    """torch.cat along channels whose backward gives each input a dense gradient.

    cat's own backward hands each input a channel slice of the output's gradient; in channels_last that
    slice is strided, and SiLU's backward kernel runs about 5x slower on it (CPU, [16, 16, 80, 80] bf16:
    3.5 ms, against 0.7 ms to copy the slice and run on the copy).
    """

    @staticmethod
    def forward(ctx, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.channels = [t.shape[1] for t in tensors]
        return torch.cat(tensors, dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(g.clone() for g in grad.split(ctx.channels, dim=1))  # clone: dense, same memory format


def cat_channels(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """torch.cat(tensors, dim=1); when gradients are tracked, with dense input gradients (_ChannelConcat)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _ChannelConcat.apply(*tensors)
    return torch.cat(tensors, dim=1)


ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU}  # a model file's `activation`: the name -> its module


class Conv(nn.Module):
    """Convolution (no bias) -> BatchNorm -> SiLU (or the activation `use_activation` sets). 'Same' padding
    for odd kernels unless given."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int | None = None
    ):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        # eps and momentum as YOLOv5 sets them: the recipe's hyperparameters were tuned with these.
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if type(self.act) is nn.SiLU and fused.applies(x, self.bn):  # CPU training: one kernel (fused.py)
            return fused.bn_silu(x, self.bn)
        return self.act(self.bn(x))


def use_activation(model: nn.Module, name: str) -> None:
    """Give every Conv block of `model` the activation `name` (a key of ACTIVATIONS)."""
    for block in model.modules():
        if isinstance(block, Conv):
            block.act = ACTIVATIONS[name](inplace=True)


class Bottleneck(nn.Module):
    """1x1 then 3x3 Conv, with a residual connection when asked and the widths agree."""

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 0.5):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, hidden, 1)
        self.cv2 = Conv(hidden, out_channels, 3)
        self.residual = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.residual else y


class C3(nn.Module):
    """CSP block: one branch runs `repeats` Bottlenecks, the other is a plain 1x1 Conv; both halves are
    concatenated and mixed by a 1x1 Conv (Wang et al. 2019, CSPNet, https://arxiv.org/abs/1911.11929)."""

    def __init__(self, in_channels: int, out_channels: int, repeats: int = 1, shortcut: bool = True):
        super().__init__()
        hidden = out_channels // 2
        self.cv1 = Conv(in_channels, hidden, 1)
        self.cv2 = Conv(in_channels, hidden, 1)
        self.cv3 = Conv(2 * hidden, out_channels, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, expansion=1.0) for _ in range(repeats)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(cat_channels((self.m(self.cv1(x)), self.cv2(x))))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools see 5, 9 and 13 px windows, the same
    receptive fields as SPP's parallel pools at a fraction of the cost."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5):
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = Conv(in_channels, hidden, 1)
        self.cv2 = Conv(4 * hidden, out_channels, 1)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        p1 = self.pool(x)
        p2 = self.pool(p1)
        return self.cv2(cat_channels((x, p1, p2, self.pool(p2))))
