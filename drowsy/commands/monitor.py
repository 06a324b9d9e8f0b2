"""`drowsy monitor`: drowsiness and distraction events from a video, a folder of frames or a camera."""

import argparse

from drowsy.commands.options import field_help, positive_int, renamed

HELP = "monitor a driver video, frames folder or camera: states, PERCLOS, alerts, events.json, annotated video"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    renamed(parser, "--img", "--img-size")
    _detector_arguments(parser)
    _calibration_arguments(parser)
    _run_arguments(parser)


def _detector_arguments(parser: argparse.ArgumentParser) -> None:
    """What the monitor watches and with what: the detector (or a clip's true boxes) and the source."""
    parser.add_argument("--weights", metavar="W", help="detector checkpoint (.pt) or exported model (.onnx)")
    parser.add_argument(
        "--truth-frames",
        metavar="JSON",
        help="instead of a detector: a clip's frames.json, its ground-truth boxes as detections",
    )
    runtime = parser.add_mutually_exclusive_group()
    runtime.add_argument(
        "--onnx",
        action="store_true",
        help="run the checkpoint with ONNX Runtime (exported to OUT on first use) instead of PyTorch bf16",
    )
    runtime.add_argument(
        "--openvino",
        action="store_true",
        help="run the checkpoint's ONNX graph (or the .onnx given) with OpenVINO (pip install -e .[openvino])",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", metavar="FILE", help="video file (e.g. clip.mp4 of drowsy synth --video)")
    source.add_argument("--frames", metavar="DIR", help="folder of .jpg/.png frames, in name order")
    source.add_argument("--camera", type=int, metavar="N", help="camera index (runs until Ctrl-C or --max-frames)")
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="writes events.json, timeline.png, timeline.csv, annotated.mp4, summary.json",
    )
    parser.add_argument("--config", default="data/monitor.yaml", help="thresholds (default data/monitor.yaml)")
    parser.add_argument("--img-size", type=positive_int, default=416, help=_run_help("img_size"))


def _calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """The detector's per-signal score calibration: fitted now, or read from an earlier fit."""
    calibration = parser.add_mutually_exclusive_group()
    calibration.add_argument(
        "--calibrate",
        metavar="SPLIT",
        help="fit the detector's per-signal score calibration on a labelled split of drowsy "
        "prepare (e.g. data/prepared/demo/val.json), write OUT/calibration.json, use it",
    )
    calibration.add_argument(
        "--calibration",
        metavar="JSON",
        help="use a calibration.json written by an earlier --calibrate at the same --img-size",
    )
    parser.add_argument(
        "--calibrate-images",
        type=int,
        default=0,
        metavar="N",
        help="with --calibrate: N images of the split, spread evenly over it (default 0: all)",
    )


def _run_help(name: str) -> str:
    from drowsy.config import MonitorRun

    return field_help(MonitorRun, name)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the run goes: batching, threads, frame rate, length, scoring and what it writes."""
    parser.add_argument("--batch", type=positive_int, default=4, help=_run_help("batch"))
    parser.add_argument("--threads", type=positive_int, default=1, help=_run_help("threads"))
    parser.add_argument("--fps", type=float, help=_run_help("fps"))
    parser.add_argument("--max-frames", type=positive_int, help=_run_help("max_frames"))
    parser.add_argument(
        "--truth",
        metavar="JSON",
        help="the clip's events.json: print event scores (and false alerts per hour where it "
        "has alert-free stretches) against it",
    )
    parser.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from drowsy.errors import DrowsyError

    if (args.weights is None) == (args.truth_frames is None):
        raise DrowsyError("monitor: give exactly one of --weights or --truth-frames")
    source = next((s for s in (args.video, args.frames, args.camera) if s is not None), None)
    if source is None and args.weights is not None:
        raise DrowsyError("monitor: give one of --video, --frames or --camera")
    if args.weights is None and (args.calibrate or args.calibration):
        raise DrowsyError("monitor: --calibrate and --calibration calibrate a detector; give --weights")

    from drowsy.config import MonitorConfig, MonitorRun
    from drowsy.monitor.calibration import calibrate, calibration_offsets, load_offsets, write_calibration
    from drowsy.monitor.detect import build_detector
    from drowsy.monitor.runner import run_monitor
    from drowsy.paths import resolve

    config = MonitorConfig.from_yaml(args.config)
    detector, offsets = None, None
    if args.weights is not None:
        backend = "openvino" if args.openvino else "onnx" if args.onnx else "torch"
        detector = build_detector(args.weights, backend, args.img_size, export_dir=args.out)
    if args.calibrate:
        calibration = calibrate(
            detector, args.calibrate, config, args.img_size, progress=not args.quiet, images=args.calibrate_images
        )
        _print_calibration(calibration, write_calibration(calibration, resolve(args.out) / "calibration.json"))
        offsets = calibration_offsets(calibration)
    elif args.calibration:
        offsets = load_offsets(args.calibration, args.img_size)
    run = MonitorRun(
        source,
        args.out,
        truth_frames=args.truth_frames,
        truth_events=args.truth,
        fps=args.fps,
        img_size=args.img_size,
        batch=args.batch,
        threads=args.threads,
        annotate=not args.no_video,
        max_frames=args.max_frames,
        progress=not args.quiet,
    )
    summary = run_monitor(run, detector, config, offsets)
    _print_summary(summary)
    return 0


def _print_calibration(calibration: dict, path) -> None:
    print(f"calibrated on {calibration['split']} at {calibration['img_size']} px:")
    for signal, entry in calibration["signals"].items():
        fit = (
            f"offset {entry['offset']:+.2f}, {entry['criterion']} {entry['fit']:.3f}"
            if entry["fitted"]
            else "offset 0 (one state only in the split)"
        )
        print(f"  {signal:<12}{fit} on {entry['images']} images ({entry['positives']} positive)")
    print(f"wrote {path}")


def _print_summary(summary: dict) -> None:
    metrics = summary["metrics"]
    print(
        f"{summary['frames']} frames at {summary['fps']:g} fps from {summary['source']}; "
        f"{summary['fps_achieved']:.1f} frames/s achieved ({summary['backend']})"
    )
    perclos = "--" if metrics["perclos_mean"] is None else f"{metrics['perclos_mean']:.3f}"
    print(
        f"PERCLOS mean {perclos}, max {metrics['perclos_max']:.3f}; {metrics['blinks_per_min']:.1f} blinks/min; "
        f"longest closure {metrics['longest_closure_s']:.2f} s; {metrics['yawns']} yawns"
    )
    from drowsy.monitor.events import ALERT_EVENTS

    print("events: " + ", ".join(f"{kind} {metrics[f'{kind}_events']}" for kind in ALERT_EVENTS))
    if "scores" in summary:
        print(
            f"{'type':<14}{'precision':>10}{'recall':>8}{'f1':>7}{'tp':>5}{'fp':>5}{'fn':>5}"
            f"{'latency median':>16}{'worst':>8}"
        )
        for kind, s in summary["scores"].items():
            latency = "".join(
                f"{v:>+8.2f}" if v is not None else f"{'--':>8}" for v in (s["latency_median"], s["latency_worst"])
            )
            print(
                f"{kind:<14}{s['precision']:>10.3f}{s['recall']:>8.3f}{s['f1']:>7.3f}"
                f"{s['tp']:>5}{s['fp']:>5}{s['fn']:>5}{latency:>24}"
            )
    if summary.get("false_alerts_per_hour") is not None:
        print(f"false alerts per hour of alert driving: {summary['false_alerts_per_hour']:.2f}")
    print("wrote " + ", ".join(summary["files"].values()))
