"""YOLOv5 (v6.x) anchor-based detector: CSP backbone, PAN neck, Detect head, in plain PyTorch.

The layer layout is written out here; a variant YAML under data/models/ only picks the
architecture (p5: heads at strides 8/16/32, p6: 8/16/32/64, p2: 4/8/16/32 for small objects), the depth
and width multiples, the anchors and the activation (SiLU as YOLOv5; ReLU for INT8, see yolov5n-relu.yaml).
`YoloModel.forward` always returns raw predictions; decoding and NMS live in drowsy.infer.postprocess, target
assignment and the loss elsewhere.
"""

import dataclasses
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.flop_counter import FlopCounterMode

from drowsy.config import Params, load_yaml
from drowsy.errors import DrowsyError
from drowsy.models.blocks import ACTIVATIONS, C3, SPPF, Conv, cat_channels, use_activation
from drowsy.paths import DATA_DIR

MODELS_DIR = DATA_DIR / "models"
DEFAULT_MODEL = "yolov5n"  # what a run from scratch builds when no model is named
STEM_CHANNELS = 64
NECK_REPEATS = 3
# Backbone stages at full scale as (output channels, C3 repeats); each stage halves the resolution,
# so after the stride-2 stem stage i ends at stride 2 ** (i + 2). Detection uses the stages from
# FIRST_DETECTION_STAGE on: stage 1 (P3, stride 8) for p5 and p6, stage 0 (P2, stride 4) for p2.
STAGES = {
    "p2": ((128, 3), (256, 6), (512, 9), (1024, 3)),
    "p5": ((128, 3), (256, 6), (512, 9), (1024, 3)),
    "p6": ((128, 3), (256, 6), (512, 9), (768, 3), (1024, 3)),
}
FIRST_DETECTION_STAGE = {"p2": 0, "p5": 1, "p6": 1}


@dataclasses.dataclass(frozen=True)
class ModelSpec(Params):
    """One variant: `anchors` holds per stride level a flat list w1, h1, w2, h2, ... in pixels."""

    architecture: str
    depth_multiple: float
    width_multiple: float
    anchors: list
    activation: str = "silu"

    @property
    def num_levels(self) -> int:
        return len(STAGES[self.architecture]) - FIRST_DETECTION_STAGE[self.architecture]

    def anchor_tensor(self) -> torch.Tensor:
        """[nl, na, 2] float32, (w, h) pixels."""
        return torch.tensor(self.anchors, dtype=torch.float32).view(self.num_levels, -1, 2)

    def validate(self, source: str) -> "ModelSpec":
        if self.architecture not in STAGES:
            raise DrowsyError(
                f"{source}: field 'architecture': must be one of {', '.join(STAGES)}, got {self.architecture!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise DrowsyError(
                f"{source}: field 'activation': must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"
            )
        for name in ("depth_multiple", "width_multiple"):
            if not getattr(self, name) > 0:
                raise DrowsyError(f"{source}: field '{name}': must be positive")
        rows = self.anchors
        if (
            len(rows) != self.num_levels
            or not all(isinstance(r, list) for r in rows)
            or len({len(r) for r in rows}) != 1
            or len(rows[0]) % 2
            or not rows[0]
        ):
            raise DrowsyError(
                f"{source}: field 'anchors': need {self.num_levels} rows (one per stride level) "
                "of equal, even length (w1, h1, w2, h2, ...)"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for r in rows for v in r):
            raise DrowsyError(f"{source}: field 'anchors': every anchor side must be a positive number of pixels")
        return self


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round a scaled channel width up to a multiple of `divisor` (friendly to tensor-core tiles)."""
    return math.ceil(channels / divisor) * divisor


class CSPBackbone(nn.Module):
    """Stem (6x6 stride-2 Conv), then stages of stride-2 Conv + C3, with SPPF closing the last stage.

    forward: [B, C_in, S, S] -> list over detection levels of [B, out_channels[l], S / stride_l, S / stride_l].
    """

    def __init__(self, in_channels: int, stages: list[tuple[int, int]], stem_channels: int, first_detection: int):
        super().__init__()
        self.first_detection = first_detection
        self.stem = Conv(in_channels, stem_channels, 6, 2, 2)
        blocks, previous = [], stem_channels
        for channels, repeats in stages:
            blocks.append(nn.Sequential(Conv(previous, channels, 3, 2), C3(channels, channels, repeats)))
            previous = channels
        blocks[-1].append(SPPF(previous, previous))
        self.stages = nn.ModuleList(blocks)
        self.out_channels = [channels for channels, _ in stages[first_detection:]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features[self.first_detection :]


class PANNeck(nn.Module):
    """Path aggregation (Liu et al. 2018, https://arxiv.org/abs/1803.01534): a top-down pass spreads the
    coarse semantics to the fine levels, then a bottom-up pass brings fine localisation back up.

    forward: backbone features (fine to coarse, channels `channels[l]`) -> same shapes and channels.
    """

    def __init__(self, channels: list[int], repeats: int):
        super().__init__()
        levels = len(channels)
        # Top-down, from the second-coarsest level to the finest: 1x1 lateral Conv, upsample, concat, C3.
        self.lateral = nn.ModuleList(Conv(channels[i + 1], channels[i], 1) for i in range(levels - 1))
        self.top_down = nn.ModuleList(
            C3(2 * channels[i], channels[i], repeats, shortcut=False) for i in range(levels - 1)
        )
        # Bottom-up, from the second-finest level to the coarsest: stride-2 Conv, concat with the lateral.
        self.downsample = nn.ModuleList(Conv(channels[i], channels[i], 3, 2) for i in range(levels - 1))
        self.bottom_up = nn.ModuleList(
            C3(2 * channels[i], channels[i + 1], repeats, shortcut=False) for i in range(levels - 1)
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x = features[-1]
        laterals = [None] * (len(features) - 1)
        for i in reversed(range(len(features) - 1)):
            laterals[i] = self.lateral[i](x)
            x = self.top_down[i](cat_channels((self.upsample(laterals[i]), features[i])))
        outputs = [x]
        for i in range(len(features) - 1):
            x = self.bottom_up[i](cat_channels((self.downsample[i](x), laterals[i])))
            outputs.append(x)
        return outputs


class DetectHead(nn.Module):
    """One 1x1 conv per level predicting, per anchor, (tx, ty, tw, th, objectness, classes) logits.

    forward: list of [B, C_l, H_l, W_l] -> list of [B, na, H_l, W_l, 5 + num_classes].
    """

    def __init__(self, channels: list[int], num_anchors: int, num_classes: int, strides: list[float]):
        super().__init__()
        self.num_anchors = num_anchors
        self.num_outputs = 5 + num_classes
        self.convs = nn.ModuleList(nn.Conv2d(c, num_anchors * self.num_outputs, 1) for c in channels)
        self._init_biases(strides, num_classes)

    @torch.no_grad()
    def _init_biases(self, strides: list[float], num_classes: int) -> None:
        # Start the sigmoids near the true base rates instead of 0.5 (Lin et al. 2017, RetinaNet, sec. 4.1,
        # https://arxiv.org/abs/1708.02002): about 8 objects per 640 px image among the (640 / stride)^2
        # cells of a level, and a class probability of about 0.6 / (nc - 1). Otherwise the flood of
        # negative cells dominates the first updates and destabilises training from scratch.
        for conv, stride in zip(self.convs, strides):
            bias = conv.bias.view(self.num_anchors, self.num_outputs)
            bias[:, 4] += math.log(8 / (640 / stride) ** 2)
            bias[:, 5:] += math.log(0.6 / (num_classes - 0.99))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for conv, x in zip(self.convs, features):
            y = conv(x)
            batch, _, height, width = y.shape
            y = y.view(batch, self.num_anchors, self.num_outputs, height, width)
            outputs.append(y.permute(0, 1, 3, 4, 2).contiguous())
        return outputs


class YoloModel(nn.Module):
    """YOLOv5 detector. forward: images [B, in_channels, S, S] float (S a multiple of the largest stride)
    -> raw predictions, list over levels of [B, na, S / stride_l, S / stride_l, 5 + num_classes].

    Buffers: `anchors` [nl, na, 2] float32 (w, h) pixels, `strides` [nl] float32; both are saved in the
    state dict, so anchors refitted by autoanchor travel with the weights.
    """

    def __init__(self, spec: ModelSpec, num_classes: int = 7, in_channels: int = 1, config_name: str = "custom"):
        super().__init__()
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}")
        self.num_classes, self.in_channels, self.config_name = num_classes, in_channels, config_name
        stages = [
            (make_divisible(c * spec.width_multiple), max(round(n * spec.depth_multiple), 1))
            for c, n in STAGES[spec.architecture]
        ]
        first = FIRST_DETECTION_STAGE[spec.architecture]
        self.backbone = CSPBackbone(in_channels, stages, make_divisible(STEM_CHANNELS * spec.width_multiple), first)
        channels = self.backbone.out_channels
        self.neck = PANNeck(channels, max(round(NECK_REPEATS * spec.depth_multiple), 1))
        strides = [2.0 ** (i + 2) for i in range(first, len(stages))]
        anchors = spec.anchor_tensor()
        self.head = DetectHead(channels, anchors.shape[1], num_classes, strides)
        self.register_buffer("anchors", anchors)
        self.register_buffer("strides", torch.tensor(strides, dtype=torch.float32))
        use_activation(self, spec.activation)

    @property
    def num_levels(self) -> int:
        return self.anchors.shape[0]

    @property
    def num_anchors(self) -> int:
        return self.anchors.shape[1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.neck(self.backbone(x)))


def available_models() -> list[str]:
    return sorted(path.stem for path in MODELS_DIR.glob("*.yaml"))


def load_spec(config: str | Path) -> tuple[ModelSpec, str]:
    """A variant name ("yolov5l6") or a YAML path -> (validated spec, config name to rebuild it by)."""
    text = str(config)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path, name = Path(text), text
    else:
        path, name = MODELS_DIR / f"{text}.yaml", text
        if not path.is_file():
            raise DrowsyError(f"unknown model '{text}'; available: {', '.join(available_models())}")
    values = load_yaml(path)
    return ModelSpec.from_dict(values, str(path)).validate(str(path)), name


def build_model(config: str | Path, num_classes: int = 7, in_channels: int = 1) -> YoloModel:
    """Build a freshly initialised detector from a variant name or a model YAML path."""
    spec, name = load_spec(config)
    return YoloModel(spec, num_classes, in_channels, name)


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every Conv block's BatchNorm into its convolution for inference; puts the model in eval mode
    (the fold uses the running statistics) and returns it. Outputs are unchanged up to rounding."""
    model.eval()
    for block in model.modules():
        if isinstance(block, Conv) and isinstance(block.bn, nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = nn.Identity()
    return model


def model_info(model: nn.Module, img_size: int) -> dict:
    """Parameter count and GFLOPs (multiply-adds counted as 2) of one forward pass at img_size x img_size.

    FLOPs are counted on meta tensors, so nothing is computed or allocated, whatever the model size.
    """
    params = sum(p.numel() for p in model.parameters())
    meta_state = {
        name: torch.empty_like(t, device="meta") for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    dtype = next(model.parameters()).dtype
    images = torch.empty(1, model.in_channels, img_size, img_size, dtype=dtype, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        torch.func.functional_call(model, meta_state, (images,))
    return {"params": params, "gflops": counter.get_total_flops() / 1e9}
