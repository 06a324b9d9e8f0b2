"""`run_monitor` and `drowsy monitor`: a short synthetic clip end to end, with its ground-truth boxes and
with a detector."""

import json

import cv2
import pytest
import torch

from drowsy import CLASSES
from drowsy.cli import main as cli_main
from drowsy.config import MonitorRun
from drowsy.models.checkpoint import save_checkpoint
from drowsy.models.yolo import build_model
from drowsy.monitor.detect import build_detector
from drowsy.monitor.events import load_events, score_events
from drowsy.monitor.runner import run_monitor
from drowsy.synth.clips.write import write_clip
from drowsy.synth.competition import write_dataset


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """A 40 s synthetic clip at 10 fps (320x180) whose script has a microsleep, yawns and a phone."""
    return write_clip(tmp_path_factory.mktemp("clip"), seconds=40, fps=10, seed=22, size=(320, 180), progress=False)


def test_clip_end_to_end_with_ground_truth_boxes(short_clip, tmp_path):
    clip_dir = short_clip.parent
    summary = run_monitor(
        MonitorRun(
            short_clip,
            tmp_path,
            truth_frames=clip_dir / "frames.json",
            truth_events=clip_dir / "events.json",
            progress=False,
        )
    )
    truth = load_events(clip_dir / "events.json")
    assert {"microsleep", "yawn", "phone"} <= {e.type for e in truth}
    scores = score_events(load_events(tmp_path / "events.json"), truth)
    for kind in ("microsleep", "yawn", "phone"):
        assert scores[kind]["f1"] == 1.0, (kind, scores[kind])
    assert summary["scores"]["yawn"] == scores["yawn"]
    assert summary["frames"] == 400 and summary["metrics"]["yawns"] == scores["yawn"]["tp"]
    for name in ("timeline.png", "timeline.csv", "annotated.mp4", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    video = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 400
    video.release()


def test_cli_prints_scores_and_reports_a_missing_camera(short_clip, tmp_path, capsys):
    clip_dir = short_clip.parent
    code = cli_main(
        [
            "monitor",
            "--truth-frames",
            str(clip_dir / "frames.json"),
            "--out",
            str(tmp_path),
            "--truth",
            str(clip_dir / "events.json"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "400 frames at 10 fps" in out
    assert any(line.startswith("microsleep") and line.split()[3] == "1.000" for line in out.splitlines())
    code = cli_main(
        ["monitor", "--truth-frames", str(clip_dir / "frames.json"), "--camera", "63", "--out", str(tmp_path)]
    )
    assert code == 2 and "drowsy: error: camera 63: not available" in capsys.readouterr().err


def random_weights(path) -> str:
    """An untrained yolov5n in the checkpoint layout: the detector branch's plumbing, not its accuracy."""
    torch.manual_seed(0)
    model = build_model("yolov5n", num_classes=len(CLASSES), in_channels=1)
    save_checkpoint(
        {
            "ema": model.state_dict(),
            "model_config": "yolov5n",
            "num_classes": len(CLASSES),
            "in_channels": 1,
            "class_names": list(CLASSES),
        },
        path,
    )
    return str(path)


def test_detector_path_runs_on_video_frames(short_clip, tmp_path):
    """The detector branch end to end (decode, batch, detect, annotate) with an untrained yolov5n."""
    weights = random_weights(tmp_path / "random.pt")
    detector = build_detector(weights, "torch", img_size=64)
    summary = run_monitor(
        MonitorRun(short_clip, tmp_path / "out", img_size=64, batch=3, max_frames=10, progress=False), detector
    )
    assert summary["frames"] == 10 and summary["backend"] == "pytorch bf16 autocast"
    assert len((tmp_path / "out" / "timeline.csv").read_text().splitlines()) == 11
    video = cv2.VideoCapture(str(tmp_path / "out" / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    video.release()


def test_cli_calibrates_then_reuses_the_calibration(short_clip, tmp_path, capsys):
    labels = write_dataset(tmp_path / "data", 12, seed=5, size=(160, 96), progress=False)
    manifest = tmp_path / "val.json"
    manifest.write_text(
        json.dumps(
            {
                "image_root": str(tmp_path / "data" / "images"),
                "annotations": [
                    {**r, "width": 160, "height": 96, "channels": 1}
                    for r in json.loads(labels.read_text())["annotations"]
                ],
            }
        )
    )
    weights = random_weights(tmp_path / "random.pt")
    base = [
        "monitor",
        "--weights",
        weights,
        "--video",
        str(short_clip),
        "--img-size",
        "64",
        "--max-frames",
        "6",
        "--no-video",
        "--quiet",
    ]
    assert cli_main(base + ["--out", str(tmp_path / "a"), "--calibrate", str(manifest)]) == 0
    assert "calibrated on" in capsys.readouterr().out
    calibration = json.loads((tmp_path / "a" / "calibration.json").read_text())
    assert calibration["img_size"] == 64 and calibration["signals"]["phone"]["images"] == 12
    offsets = {signal: entry["offset"] for signal, entry in calibration["signals"].items()}
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["offsets"] == offsets
    assert (
        cli_main(base + ["--out", str(tmp_path / "b"), "--calibration", str(tmp_path / "a" / "calibration.json")]) == 0
    )
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["offsets"] == offsets
    at_416 = [("416" if arg == "64" else arg) for arg in base]
    code = cli_main(at_416 + ["--out", str(tmp_path / "c"), "--calibration", str(tmp_path / "a" / "calibration.json")])
    assert code == 2 and "calibrated at 64 pixels, the monitor runs at 416" in capsys.readouterr().err


def test_cli_renders_an_alert_clip_and_reports_its_false_alerts_per_hour(tmp_path, capsys):
    clip = tmp_path / "alert"
    assert (
        cli_main(
            ["synth", "--video", str(clip), "--script", "alert", "--seconds", "40", "--fps", "10", "--size", "160x256"]
        )
        == 0
    )
    assert json.loads((clip / "events.json").read_text())["alert_free"] == [[0.0, 40.0]]
    capsys.readouterr()
    code = cli_main(
        [
            "monitor",
            "--truth-frames",
            str(clip / "frames.json"),
            "--out",
            str(tmp_path / "out"),
            "--truth",
            str(clip / "events.json"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "false alerts per hour of alert driving: 0.00" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["false_alerts_per_hour"] == 0.0 and set(summary["scores"]) == {"blink"}


def test_openvino_backend_runs_the_exported_graph(short_clip, tmp_path):
    detector = build_detector(random_weights(tmp_path / "random.pt"), "openvino", img_size=64)
    assert detector.backend == "openvino" and (tmp_path / "random.dynamic.onnx").is_file()
    summary = run_monitor(
        MonitorRun(short_clip, tmp_path / "out", img_size=64, batch=3, max_frames=6, annotate=False, progress=False),
        detector,
    )
    assert summary["frames"] == 6 and summary["backend"] == "openvino fp32"


def test_onnx_backend_exports_once_and_rebuilds_a_stale_export(short_clip, tmp_path):
    import os

    weights = random_weights(tmp_path / "random.pt")
    detector = build_detector(weights, "onnx", img_size=64)
    exported = tmp_path / "random.dynamic.onnx"
    assert detector.backend == "onnx" and exported.is_file()
    summary = run_monitor(
        MonitorRun(short_clip, tmp_path / "out", img_size=64, batch=3, max_frames=6, annotate=False, progress=False),
        detector,
    )
    assert summary["frames"] == 6 and summary["backend"] == "onnxruntime fp32"
    os.utime(exported, (1_000_000, 1_000_000))  # an export older than its weights: stale
    build_detector(weights, "onnx", img_size=64)
    rebuilt = exported.stat().st_mtime
    assert rebuilt > os.stat(weights).st_mtime - 1
    build_detector(weights, "onnx", img_size=64)  # up to date: reused, not exported again
    assert exported.stat().st_mtime == rebuilt
