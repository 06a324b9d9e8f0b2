"""YOLOv5 models: every variant builds with its strides and anchors, fusing Conv+BatchNorm keeps the outputs."""

import io
import math

import numpy as np
import pytest
import torch

from drowsy.errors import DrowsyError
from drowsy.models.blocks import Conv
from drowsy.models.yolo import available_models, build_model, fuse_conv_bn, model_info

P5 = ["yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x"]
P6 = ["yolov5n6", "yolov5s6", "yolov5m6", "yolov5l6", "yolov5x6"]
P2 = ["yolov5n-p2"]  # a fourth head at stride 4, for small objects


def _randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine terms, so that folding BN is actually exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def test_every_variant_is_available():
    assert set(P5 + P6 + P2) | {"yolov5n-relu"} <= set(available_models())


def test_the_relu_variant_is_yolov5n_with_relu_in_every_conv_block_also_where_the_fused_kernel_would_run():
    silu, relu = build_model("yolov5n"), build_model("yolov5n-relu")
    relu.load_state_dict(silu.state_dict())  # the same layers and weights
    acts = {type(block.act) for block in relu.modules() if isinstance(block, Conv)}
    assert acts == {torch.nn.ReLU} and {type(b.act) for b in silu.modules() if isinstance(b, Conv)} == {torch.nn.SiLU}
    # CPU training, channels_last, 16 channels: the shape the fused BatchNorm+SiLU kernel takes for SiLU
    block = relu.backbone.stages[0][0]
    x = torch.randn(2, block.conv.in_channels, 16, 16).contiguous(memory_format=torch.channels_last)
    reference = torch.nn.functional.batch_norm(
        block.conv(x), None, None, block.bn.weight, block.bn.bias, training=True, eps=block.bn.eps
    )
    assert torch.allclose(block.train()(x), torch.relu(reference), atol=1e-5)


@pytest.mark.parametrize("name", P5 + P6 + P2)
def test_output_shapes(name):
    # Shapes do not depend on values: the larger variants run on meta tensors, which skips the compute.
    device = "cpu" if name in ("yolov5n", "yolov5n6", "yolov5n-p2") else "meta"
    size = 64
    with torch.device(device), torch.no_grad():
        model = build_model(name, num_classes=7, in_channels=1).eval()
        raw = model(torch.rand(2, 1, size, size))
    strides = {**dict.fromkeys(P5, [8, 16, 32]), **dict.fromkeys(P6, [8, 16, 32, 64]), "yolov5n-p2": [4, 8, 16, 32]}[
        name
    ]
    assert model.strides.shape == (len(strides),)
    assert model.anchors.shape == (len(strides), 3, 2)
    assert [tuple(level.shape) for level in raw] == [(2, 3, size // s, size // s, 12) for s in strides]


@pytest.mark.parametrize("in_channels", [1, 3])
def test_input_channels_and_rectangular_input(in_channels):
    model = build_model("yolov5n", num_classes=2, in_channels=in_channels).eval()
    with torch.no_grad():
        raw = model(torch.rand(1, in_channels, 128, 96))
    assert model.in_channels == in_channels and model.num_classes == 2
    assert model.strides.tolist() == [8, 16, 32]
    assert [tuple(level.shape) for level in raw] == [(1, 3, 16, 12, 7), (1, 3, 8, 6, 7), (1, 3, 4, 3, 7)]


@pytest.mark.parametrize(
    "name, unfused, fused",
    [
        # YOLOv5's own model summaries (80 classes, RGB): training (with BN) and fused counts.
        ("yolov5n", 1_872_157, 1_867_405),
        ("yolov5s", 7_235_389, 7_225_885),
    ],
)
def test_parameter_counts_match_yolov5(name, unfused, fused):
    model = build_model(name, num_classes=80, in_channels=3)
    assert model_info(model, 64)["params"] == pytest.approx(unfused, rel=1e-3)
    assert sum(p.numel() for p in fuse_conv_bn(model).parameters()) == pytest.approx(fused, rel=1e-3)


def test_the_p2_variant_adds_a_stride_4_head_on_the_backbones_first_stage():
    p5, p2 = build_model("yolov5n").eval(), build_model("yolov5n-p2").eval()
    assert p2.backbone.out_channels == [p2.backbone.stages[0][0].conv.out_channels, *p5.backbone.out_channels]
    assert p2.anchors.shape == (4, 3, 2) and torch.equal(p2.anchors[1:], p5.anchors)
    assert p2.anchors[0].prod(1).max() < p5.anchors[0].prod(1).min()  # the stride-4 anchors are the smallest
    extra = model_info(p2, 256)["gflops"] / model_info(p5, 256)["gflops"]
    assert 1.05 < extra < 1.3  # the stride-4 level's neck and head


def test_gflops_match_yolov5_and_scale_with_area():
    model = build_model("yolov5s", num_classes=80, in_channels=3)
    at_640 = model_info(model, 640)["gflops"]
    assert at_640 == pytest.approx(16.5, rel=0.02)  # YOLOv5's published figure at 640 px
    assert model_info(model, 1280)["gflops"] == pytest.approx(4 * at_640, rel=0.01)


def test_fused_model_matches_unfused():
    model = build_model("yolov5n").eval()
    _randomise_batchnorm(model)
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = model(images)
        fused = fuse_conv_bn(model)
        actual = fused(images)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, atol=1e-4, rtol=0)


def test_bfloat16_autocast_channels_last_matches_float32():
    model = build_model("yolov5n").eval()
    _randomise_batchnorm(model)
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            actual = model(images.to(memory_format=torch.channels_last))
    for a, e in zip(actual, expected):
        assert a.dtype == torch.bfloat16
        assert torch.isfinite(a).all()
        assert ((a.float() - e).norm() / e.norm()).item() < 0.02


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter; onnxscript is not installed
def test_onnx_export_runs_with_other_batch_and_size():
    onnxruntime = pytest.importorskip("onnxruntime")
    model = build_model("yolov5n").eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.rand(1, 1, 64, 64),),
        buffer,
        dynamo=False,
        input_names=["images"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}},
    )
    session = onnxruntime.InferenceSession(buffer.getvalue())
    images = torch.rand(2, 1, 96, 128)
    outputs = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images)
    for o, e in zip(outputs, expected):
        np.testing.assert_allclose(o, e.numpy(), atol=1e-4)


def test_head_bias_starts_at_object_and_class_priors():
    model = build_model("yolov5l6", num_classes=7)
    for conv, stride in zip(model.head.convs, model.strides.tolist()):
        bias = conv.bias.detach().view(3, 12)
        # Default conv init adds a small uniform term around the prior.
        assert bias[:, 4].mean().item() == pytest.approx(math.log(8 / (640 / stride) ** 2), abs=0.2)
        assert bias[:, 5:].mean().item() == pytest.approx(math.log(0.6 / (7 - 0.99)), abs=0.2)


def test_parameters_are_grouped_for_freezing_by_name():
    model = build_model("yolov5n6")
    names = [name for name, _ in model.named_parameters()]
    assert all(name.split(".")[0] in {"backbone", "neck", "head"} for name in names)
    backbone = {name for name in names if name.startswith("backbone.")}
    # The stem and the SPPF closing the backbone belong to it.
    assert any(name.startswith("backbone.stem.") for name in backbone)
    assert any(".cv2." in name and name.startswith("backbone.stages.4.2.") for name in backbone)
    assert {"anchors", "strides"} <= set(model.state_dict())
    assert model.strides.tolist() == [8, 16, 32, 64]


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(DrowsyError, match="unknown model 'yolov9'.*yolov5l6"):
        build_model("yolov9")


def test_model_from_yaml_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "architecture: p5\ndepth_multiple: 0.33\nwidth_multiple: 0.125\n"
        "anchors: [[4, 5, 8, 9, 12, 10], [20, 30, 40, 30, 50, 60], [90, 80, 120, 150, 300, 250]]\n"
    )
    model = build_model(path, num_classes=1)
    assert model.config_name == str(path)
    assert model.anchors[1, 2].tolist() == [50.0, 60.0]
    assert model.num_classes == 1


@pytest.mark.parametrize(
    "text, field",
    [
        ("architecture: p7\ndepth_multiple: 1\nwidth_multiple: 1\nanchors: [[1, 2], [3, 4], [5, 6]]\n", "architecture"),
        ("architecture: p5\ndepth_multiple: 1\nwidth_multiple: 1\nanchors: [[1, 2], [3, 4]]\n", "anchors"),
        ("architecture: p5\ndepth_multiple: 1\nwidth_multiple: 1\nanchors: [[1, 2], [3, 4], [5, -6]]\n", "anchors"),
        (
            "architecture: p5\ndepth_multiple: 0\nwidth_multiple: 1\nanchors: [[1, 2], [3, 4], [5, 6]]\n",
            "depth_multiple",
        ),
        (
            "architecture: p5\nactivation: gelu\ndepth_multiple: 1\nwidth_multiple: 1\n"
            "anchors: [[1, 2], [3, 4], [5, 6]]\n",
            "activation",
        ),
    ],
)
def test_bad_model_yaml_names_the_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DrowsyError, match=f"bad.yaml: field '{field}'"):
        build_model(path)
