"""ONNX export: decoded outputs and final detections match PyTorch; dynamic and static graphs; the CLI."""

import sys

import onnx
import pytest
import torch

from drowsy import CLASSES
from drowsy.cli import main as cli_main
from drowsy.errors import DrowsyError
from drowsy.infer.export import export_onnx
from drowsy.infer.predict import Detector
from tests.helpers import IMG, make_checkpoint, noise_images


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, dynamic ONNX export of it)."""
    folder = tmp_path_factory.mktemp("export")
    checkpoint = make_checkpoint(folder / "random.pt")
    return checkpoint, export_onnx(checkpoint, folder / "dynamic.onnx", img_size=IMG, dynamic=True)


@pytest.fixture(scope="module")
def detectors(exported) -> tuple[Detector, Detector, Detector]:
    """(PyTorch detector, ONNX Runtime detector of its dynamic export, OpenVINO detector of the same file)."""
    checkpoint, onnx_path = exported
    return Detector(checkpoint, device="cpu"), Detector(onnx_path), Detector(onnx_path, openvino=True)


@pytest.mark.parametrize("runtime", [1, 2], ids=["onnxruntime", "openvino"])
def test_dynamic_graph_matches_pytorch_decoded_outputs(detectors, runtime):
    pytorch, graph = detectors[0], detectors[runtime]
    assert graph.backend == ("onnx", "openvino")[runtime - 1] and graph.fixed_batch is graph.fixed_size is None
    generator = torch.Generator().manual_seed(0)
    for shape in [(1, 1, 64, 64), (3, 1, 96, 128)]:  # two batch sizes, and non-square, on one graph
        images = torch.rand(shape, generator=generator)
        expected = pytorch.decoded_predictions(images)
        got = graph.decoded_predictions(images)
        assert got.shape == expected.shape
        # relative to the size of the value: pixel coordinates reach hundreds, probabilities are <= 1
        assert ((got - expected).abs() / (1 + expected.abs())).max() < 1e-3


@pytest.mark.parametrize("runtime", [1, 2], ids=["onnxruntime", "openvino"])
def test_onnx_detections_match_pytorch(detectors, runtime):
    pytorch, graph = detectors[0], detectors[runtime]
    images = noise_images(3)
    for tta in (False, True):
        expected = pytorch.detect(images, IMG, conf=0.05, tta=tta)
        got = graph.detect(images, IMG, conf=0.05, tta=tta)
        for e, g in zip(expected, got):
            assert len(e) == len(g) > 0
            assert (e[:, :4] - g[:, :4]).abs().max() < 0.5
            assert (e[:, 4] - g[:, 4]).abs().max() < 1e-3 and torch.equal(e[:, 5], g[:, 5])


def test_cli_static_export_fixes_the_input_and_keeps_metadata(exported, detectors, tmp_path, capsys):
    checkpoint, _ = exported
    static_path = tmp_path / "static.onnx"
    assert cli_main(["export", "--weights", str(checkpoint), "--out", str(static_path), "--img-size", "50"]) == 0
    assert "wrote" in capsys.readouterr().out
    graph = onnx.load(str(static_path))
    onnx.checker.check_model(graph)
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 1, 64, 64]  # 50 -> stride
    images = noise_images(3)
    for static in (Detector(static_path), Detector(static_path, openvino=True)):
        assert static.class_names == CLASSES and static.stride == 32 and static.in_channels == 1
        assert (static.fixed_batch, static.fixed_size) == (1, 64)
        # three images through a batch-1 graph, compared with the dynamic graph taking them at once
        for s, d in zip(
            static.detect(images, IMG, conf=0.05, batch=3), detectors[1].detect(images, IMG, conf=0.05, batch=3)
        ):
            # OpenVINO's float convolutions round in another order: 6e-5 relative on a box corner, measured
            torch.testing.assert_close(s, d, atol=1e-3, rtol=2e-4)
        with pytest.raises(DrowsyError, match="--dynamic"):
            static.detect(images, IMG, tta=True)


def test_openvino_is_refused_in_one_line_for_a_checkpoint_and_when_not_installed(exported, monkeypatch):
    checkpoint, onnx_path = exported
    with pytest.raises(DrowsyError, match=r"random.pt: OpenVINO runs an exported graph; export it"):
        Detector(checkpoint, openvino=True)
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an environment without the extra has
    with pytest.raises(DrowsyError, match=r"dynamic.onnx: OpenVINO is not installed \(pip install -e .\[openvino\]\)"):
        Detector(onnx_path, openvino=True)


@pytest.mark.parametrize("openvino", [False, True])
def test_onnx_without_drowsy_metadata_is_refused(tmp_path, openvino):

    node = onnx.helper.make_node("Identity", ["images"], ["predictions"])
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node],
        "plain",
        [tensor("images", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
        [tensor("predictions", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    with pytest.raises(DrowsyError, match="drowsy export"):
        Detector(tmp_path / "plain.onnx", openvino=openvino)
