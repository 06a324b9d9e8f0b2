"""Inference: view mapping (TTA), ensembles, batching, folders with odd files, the submission file, the CLI."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from drowsy import CLASSES
from drowsy.cli import main as cli_main
from drowsy.data.geometry import Letterbox
from drowsy.errors import DrowsyError
from drowsy.infer.export import export_onnx
from drowsy.infer.postprocess import to_candidates, to_records
from drowsy.infer.predict import Detector, View, predict_ensemble, predict_folder, tta_views
from tests.helpers import IMG, make_checkpoint, noise_images


def by_class_and_score(detections: torch.Tensor) -> torch.Tensor:
    """[n, 6] detections in a canonical order (class, then score, then x1), to compare unordered sets."""
    order = np.lexsort(detections[:, [0, 4, 5]].T.numpy())
    return detections[torch.from_numpy(order)]


def write_jpg(path: Path, image: np.ndarray) -> None:
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "random.pt")


@pytest.fixture(scope="module")
def detector(checkpoint) -> Detector:
    return Detector(checkpoint, device="cpu")


class BrightBoxDetector(Detector):
    """Stands in for a trained model: 'detects' the bright pixels of each network input as one
    class-0 box, so where its boxes land in the original image depends only on the view mapping."""

    def __init__(self):
        self.weights, self.backend, self.device, self.amp = Path("bright-box"), "stub", torch.device("cpu"), False
        self.stride, self.in_channels, self.class_names = 8, 1, CLASSES
        self.num_classes, self.fixed_batch, self.fixed_size = len(CLASSES), None, None

    def decoded_predictions(self, batch: torch.Tensor) -> torch.Tensor:
        rows = torch.zeros(len(batch), 1, 5 + self.num_classes)
        for row, image in zip(rows, batch[:, 0]):
            ys, xs = (image > 0.5).nonzero(as_tuple=True)
            x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
            row[0, :6] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 1.0, 1.0])
        return rows


def test_tta_views_follow_the_recipe_scales():
    assert tta_views(1536, 64, tta=False) == [View(1536, False)]
    assert tta_views(1536, 64, tta=True) == [View(1536, False), View(1280, True), View(1024, False)]


def test_mirrored_view_maps_a_hand_made_box_back():
    # A 200 x 100 image letterboxed to 100: ratio 0.5, 25 px of padding on top. Its box x 20..60, y 30..70
    # is x 10..30, y 40..60 in the network input, and x 70..90 once the input is mirrored.
    decoded = torch.tensor([[[80.0, 50.0, 20.0, 20.0, 0.9, 0.8]]])
    [restored] = to_candidates(decoded, [Letterbox(0.5, (0, 25), flip_width=100)], [(100, 200)], conf=0.5)
    torch.testing.assert_close(restored, torch.tensor([[40.0, 50.0, 40.0, 40.0, 0.9, 0.8]]))


def test_tta_views_agree_on_an_asymmetric_object():
    image = np.full((120, 200), 40, np.uint8)
    image[30:70, 20:60] = 255  # left of centre: a box not mapped back through the mirror lands at x 140..180
    truth = torch.tensor([20.0, 30.0, 60.0, 70.0])
    stub = BrightBoxDetector()
    for view in tta_views(128, stub.stride, tta=True):
        [single] = predict_ensemble([stub], [image], view.size, conf=0.5, tta=False)
        assert single[0, :4] == pytest.approx(truth, abs=2.5)
    [joined] = stub.detect([image], 128, conf=0.5, tta=True)
    assert len(joined) == 1  # the three views' boxes coincide, so NMS keeps one
    assert joined[0, :4] == pytest.approx(truth, abs=2.5)
    [mirrored] = stub.detect([cv2.flip(image, 1)], 128, conf=0.5, tta=True)
    assert mirrored[0, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([200, 0, 200, 0]) == pytest.approx(
        joined[0, :4], abs=1e-3
    )


def test_batched_equals_one_by_one(detector):
    images = noise_images(4)
    batched = detector.detect(images, IMG, conf=0.05, batch=4)
    for image, together in zip(images, batched):
        [alone] = detector.detect([image], IMG, conf=0.05, batch=1)
        assert len(alone) == len(together) > 0
        torch.testing.assert_close(alone, together, atol=1e-3, rtol=0)


def test_detections_lie_inside_the_original_image(detector):
    for image, found in zip(noise_images(4), detector.detect(noise_images(4), IMG, conf=0.05, tta=True)):
        height, width = image.shape
        assert len(found) > 0
        assert (found[:, :4] >= 0).all() and (found[:, [0, 2]] <= width).all() and (found[:, [1, 3]] <= height).all()
        assert (found[:, 2] >= found[:, 0]).all() and (found[:, 4] > 0.05).all()


def test_nms_ensemble_of_a_model_with_itself_is_the_model(detector):
    images = noise_images(3)
    for tta in (False, True):
        alone = detector.detect(images, IMG, conf=0.05, tta=tta)
        doubled = predict_ensemble([detector, detector], images, IMG, conf=0.05, tta=tta, fuse="nms")
        for a, b in zip(alone, doubled):
            assert len(a) > 0
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_wbf_ensemble_of_a_model_with_itself_keeps_its_boxes(detector):
    images = noise_images(3)
    alone = detector.detect(images, IMG, conf=0.05)
    fused = predict_ensemble([detector, detector], images, IMG, conf=0.05, fuse="wbf")
    for a, b in zip(alone, fused):
        assert len(a) == len(b) > 0
        torch.testing.assert_close(by_class_and_score(a), by_class_and_score(b), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "options, field",
    [
        ({"fuse": "mean"}, "fuse"),
        ({"conf": 1.5}, "conf"),
        ({"iou": 0.0}, "iou"),
        ({"max_det": 0}, "max_det"),
    ],
)
def test_bad_options_are_one_line_errors(detector, options, field):
    with pytest.raises(DrowsyError, match=f"field '{field}'") as error:
        predict_ensemble([detector], noise_images(1), IMG, **options)
    assert "\n" not in str(error.value)


def test_no_weights_is_an_error(tmp_path):
    with pytest.raises(DrowsyError, match="field 'weights'"):
        predict_folder([], tmp_path, tmp_path / "out.json")


def test_records_round_positions_and_scores_and_keep_empty_images():
    detections = [
        torch.tensor([[10.04, 20.06, 30.56, 40.949, 0.123456, 4.0], [0.0, 1.0, 2.0, 3.0, 0.00999, 6.0]]),
        torch.zeros(0, 6),
    ]
    records = to_records(["a.jpg", "b.jpg"], detections)
    assert records == [
        {
            "file_name": "a.jpg",
            "objects": [
                {"class": "face", "position": [10.0, 20.1, 30.6, 40.9], "confidence_score": 0.1235},
                {"class": "cigar", "position": [0.0, 1.0, 2.0, 3.0], "confidence_score": 0.01},
            ],
        },
        {"file_name": "b.jpg", "objects": []},
    ]


def test_predict_folder_writes_one_entry_per_image(checkpoint, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    names = ["b.jpg", "a.PNG", "운전자_01.JPEG"]
    for name, image in zip(names, noise_images(3)):
        (folder / name).write_bytes(cv2.imencode(".png" if name.endswith("PNG") else ".jpg", image)[1].tobytes())
    (folder / "notes.txt").write_text("not an image")
    stats = predict_folder(
        [checkpoint],
        tmp_path,
        tmp_path / "out" / "submission.json",
        img_size=IMG,
        conf=0.05,
        device="cpu",
        progress=False,
    )
    document = json.loads((tmp_path / "out" / "submission.json").read_text(encoding="utf-8"))
    records = document["annotations"]
    assert [r["file_name"] for r in records] == sorted(names)
    assert stats["images"] == 3 and stats["unreadable"] == []
    assert stats["detections"] == sum(len(r["objects"]) for r in records) > 0
    for obj in (obj for r in records for obj in r["objects"]):
        assert set(obj) == {"class", "position", "confidence_score"} and obj["class"] in CLASSES
        assert all(round(v, 1) == v for v in obj["position"])
        assert round(obj["confidence_score"], 4) == obj["confidence_score"]
        assert obj["confidence_score"] > 0.05


def test_predict_folder_without_detections_still_lists_every_image(checkpoint, tmp_path):
    for name, image in zip(["x.jpg", "y.jpg"], noise_images(2)):
        write_jpg(tmp_path / name, image)
    predict_folder([checkpoint], tmp_path, tmp_path / "s.json", img_size=IMG, conf=0.999, device="cpu", progress=False)
    records = json.loads((tmp_path / "s.json").read_text())["annotations"]
    assert records == [{"file_name": "x.jpg", "objects": []}, {"file_name": "y.jpg", "objects": []}]


def test_empty_folder_gives_an_empty_submission_and_a_warning(checkpoint, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    stats = predict_folder(
        [checkpoint], tmp_path / "images", tmp_path / "s.json", img_size=IMG, device="cpu", progress=False
    )
    assert stats["images"] == 0
    assert json.loads((tmp_path / "s.json").read_text()) == {"annotations": []}
    assert "warning" in capsys.readouterr().err


def test_corrupt_images_get_empty_entries_not_a_crash(checkpoint, tmp_path):
    good, truncated = noise_images(2)
    write_jpg(tmp_path / "good.jpg", good)
    whole = cv2.imencode(".jpg", truncated)[1].tobytes()
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    (tmp_path / "empty.png").write_bytes(b"")
    stats = predict_folder(
        [checkpoint], tmp_path, tmp_path / "s.json", img_size=IMG, conf=0.05, device="cpu", progress=False
    )
    records = {r["file_name"]: r["objects"] for r in json.loads((tmp_path / "s.json").read_text())["annotations"]}
    assert sorted(records) == ["empty.png", "good.jpg", "random.jpg", "truncated.jpg"]
    unreadable = {u["file_name"] for u in stats["unreadable"]}
    # Whether half a JPEG decodes (grey below the cut) depends on the libjpeg build; either way it is listed.
    assert {"empty.png", "random.jpg"} <= unreadable <= {"empty.png", "random.jpg", "truncated.jpg"}
    assert all(records[name] == [] for name in unreadable) and records["good.jpg"]


def test_img_size_is_rounded_up_to_the_stride(checkpoint, tmp_path):
    write_jpg(tmp_path / "a.jpg", noise_images(1)[0])
    stats = predict_folder([checkpoint], tmp_path, tmp_path / "s.json", img_size=50, device="cpu", progress=False)
    assert stats["img_size"] == 64


def test_cli_writes_a_submission(checkpoint, tmp_path, capsys):
    for name, image in zip(["a.jpg", "b.jpg"], noise_images(2)):
        write_jpg(tmp_path / name, image)
    out = tmp_path / "submission.json"
    code = cli_main(
        [
            "predict",
            "--weights",
            str(checkpoint),
            str(checkpoint),
            "--images",
            str(tmp_path),
            "--out",
            str(out),
            "--img-size",
            str(IMG),
            "--conf",
            "0.05",
            "--tta",
            "--fuse",
            "wbf",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 0
    assert [r["file_name"] for r in json.loads(out.read_text())["annotations"]] == ["a.jpg", "b.jpg"]
    assert "2 images" in capsys.readouterr().out


def test_cli_runs_an_exported_graph_with_openvino_as_onnx_runtime_does(checkpoint, tmp_path):
    write_jpg(tmp_path / "a.jpg", noise_images(1)[0])
    graph = export_onnx(checkpoint, tmp_path / "m.onnx", img_size=IMG, dynamic=True)
    submissions = []
    for flags in ([], ["--openvino"]):
        out = tmp_path / f"submission{len(flags)}.json"
        command = ["predict", "--weights", str(graph), "--images", str(tmp_path), "--out", str(out)]
        assert cli_main([*command, "--img-size", str(IMG), "--conf", "0.05", "--quiet", *flags]) == 0
        submissions.append(json.loads(out.read_text())["annotations"][0]["objects"])
    assert len(submissions[0]) == len(submissions[1]) > 0
    for ours, theirs in zip(*submissions):
        assert ours["class"] == theirs["class"] and np.allclose(ours["position"], theirs["position"], atol=0.15)


def test_cli_reports_missing_weights_in_one_line(tmp_path, capsys):
    code = cli_main(
        [
            "predict",
            "--weights",
            str(tmp_path / "nope.pt"),
            "--images",
            str(tmp_path),
            "--out",
            str(tmp_path / "s.json"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("drowsy: error:") and "nope.pt" in error and error.count("\n") == 1
