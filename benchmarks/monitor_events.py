"""The driver monitor against the driver-state protocol's events, on synthetic clips with a scripted truth.

Renders story clips (one drowsy phase each), protocol clips (every item of `drowsy.synth.clips.protocol`
in rounds: glances away of every length by the head and by the eyes alone, VATS, closures from
microsleep to unresponsive, yawns against talking, eating, eye rubbing, phone, smoking, sunglasses,
glare, the face out of frame), alert-driving clips and protocol clips with small faces (640x360),
then monitors each with its ground-truth boxes (the state machine's ceiling) and with the detector
(calibrated on the validation split), and prints per event type precision, recall, F1 and the onset
latency (median and worst: the alert's time minus the protocol's), the false alerts per hour of alert
driving, yawn alerts while talking, closure, yawn or degraded alerts while rubbing an eye or eating,
and recall on the hard cases. Goals (issue 13): F1 >= 0.9 for every type over >= 20 events each,
onset within 0.2 s of the protocol's time, <= 1 false alert per hour, no yawn alert while talking.

Beside drowsy, the landmark peer (MediaPipe Face Mesh: eye and mouth aspect ratios, head pose from the
mesh; `drowsy.eval.monitor_benchmark.PeerRules`) on the same clips, through drowsy's own state machine and
scorer, twice: with the open Driver-State-Detection project's thresholds, and with thresholds and pose
gains fitted to two clips of their own (a protocol and an alert clip, seeds 900 and 901). Its
environment (mediapipe==0.10.21, numpy<2, protobuf<5, opencv-python; about 1.1 GB) is created in
--peer-venv on the first run, from the package index; --no-peer leaves the peer out.

    python benchmarks/monitor_events.py [--weights weights/demo/finetune/best.pt] [--truth-boxes-only] [--no-peer]
        [--story 20] [--protocol-minutes 85] [--alert-minutes 60] [--small-faces-minutes 10] [--img 320]

Clips are kept in --out (default outputs/benchmarks/monitor_events) and reused by later runs; the
tables are written there as scores.csv, hard_cases.csv and false_alerts.json.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from drowsy.config import MonitorConfig
from drowsy.eval.monitor_benchmark import (
    ClipSpec,
    PeerRules,
    clip_set,
    false_alert_counts,
    fit_peer_rules,
    hard_cases_table,
    render_clip,
    run_clips,
    scores_table,
    unmatched_events,
)
from drowsy.monitor.calibration import calibrate, calibration_offsets
from drowsy.monitor.detect import build_detector
from drowsy.paths import resolve

PEER_REQUIREMENTS = ("mediapipe==0.10.21", "numpy<2", "protobuf<5", "opencv-python")


def peer_python(venv: Path) -> Path:
    """The peer environment's interpreter, the environment created first when it cannot import mediapipe."""
    python = venv / "bin" / "python"
    if (
        python.is_file()
        and subprocess.run([str(python), "-c", "import mediapipe"], capture_output=True).returncode == 0
    ):
        return python
    print(f"creating the peer's environment in {venv}: {' '.join(PEER_REQUIREMENTS)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], capture_output=True, text=True
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(
            f"{venv}: pip install {' '.join(PEER_REQUIREMENTS)} failed: {last} (run with --no-peer to skip the peer)"
        )
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/demo/finetune/best.pt", help="the detector (notebook 04's)")
    parser.add_argument("--calibrate", default="data/prepared/demo/val.json", help="labelled split to calibrate on")
    parser.add_argument("--truth-boxes-only", action="store_true", help="score the state machine alone")
    parser.add_argument("--story", type=int, default=20, help="story clips of 150 s (default 20)")
    parser.add_argument(
        "--protocol-minutes",
        type=float,
        default=85.0,
        help="protocol clips, minutes (default 85: about 20 rounds of every item)",
    )
    parser.add_argument("--alert-minutes", type=float, default=60.0, help="alert driving, minutes (default 60)")
    parser.add_argument(
        "--small-faces-minutes", type=float, default=10.0, help="protocol clips at 640x360, minutes (default 10)"
    )
    parser.add_argument("--img", type=int, default=320, help="detector input size, pixels (default 320)")
    parser.add_argument("--out", default="outputs/benchmarks/monitor_events", help="clips and tables")
    parser.add_argument("--no-peer", action="store_true", help="leave the MediaPipe Face Mesh peer out")
    parser.add_argument("--peer-venv", default="outputs/benchmarks/facemesh-venv", help="the peer's environment")
    args = parser.parse_args()

    out = resolve(args.out)
    detectors = build_detectors(args, MonitorConfig.from_yaml("data/monitor.yaml"), out)
    specs = clip_set(args.story, args.protocol_minutes, args.alert_minutes, args.small_faces_minutes)
    started = time.perf_counter()
    runs = run_clips(specs, out, detectors)
    minutes = sum(s.seconds for s in specs) / 60
    print(
        f"{len(specs)} clips, {minutes:.0f} min of video at 15 fps, monitored in {time.perf_counter() - started:.0f} s"
    )
    print_tables(runs, list(detectors), out)


def build_detectors(args: argparse.Namespace, config: MonitorConfig, out: Path) -> dict:
    """run_clips' detectors: the true boxes, drowsy's detector (calibrated) and the peer's two rule sets."""
    detectors = {"ground-truth boxes": {"config": config}}
    if not args.truth_boxes_only:
        detector = build_detector(args.weights, "torch", args.img)
        started = time.perf_counter()
        offsets = calibration_offsets(calibrate(detector, args.calibrate, config, args.img, progress=False))
        print(f"calibrated {args.weights} on {args.calibrate} in {time.perf_counter() - started:.0f} s")
        detectors["drowsy"] = {"config": config, "detector": detector, "img_size": args.img, "offsets": offsets}
    if not args.no_peer:
        python = peer_python(resolve(args.peer_venv))
        fitting = [
            render_clip(ClipSpec(script, 300.0, seed, (400, 640)), out / "peer-calibration")
            for script, seed in (("protocol", 900), ("alert", 901))
        ]
        fitted = fit_peer_rules(fitting, python)
        print(f"peer rules fitted on {len(fitting)} clips of their own: {fitted}")
        for label, rules in (("project thresholds", PeerRules()), ("fitted", fitted)):
            detectors[f"facemesh ({label})"] = {"peer": rules, "python": python, "config": config}
    return detectors


def print_tables(runs: list[dict], names: list[str], out: Path) -> None:
    """Scores per event type, recall on the hard cases and false alerts, printed and written to `out`."""
    scores = pd.concat({name: scores_table(runs, name) for name in names}, axis=1)
    hard = hard_cases_table(runs, names)
    alerts = {name: false_alert_counts(runs, name) for name in names}
    pd.set_option("display.width", 200)
    print("\nper event type (latency: alert time minus the protocol's, seconds):")
    print(scores.round(3).to_string())
    print("\nrecall on the hard cases (protocol clips):")
    print(hard.round(3).to_string())
    for name, numbers in alerts.items():
        print(
            f"\n{name}: {numbers['per_hour']:.2f} false alerts per hour over {numbers['hours']:.2f} h of alert "
            f"driving {numbers['by_type']}; yawn alerts while talking or laughing: {numbers['yawns_while_talking']}; "
            f"closure, yawn or degraded alerts while rubbing an eye: {numbers['alerts_while_rubbing']}, "
            f"while eating: {numbers['alerts_while_eating']}"
        )
    unmatched = {name: unmatched_events(runs, name) for name in names}
    for name, events in unmatched.items():
        counts = events.groupby(["outcome", "clip"]).size().to_dict()
        print(f"\n{name}: false and missed events by clip: {counts or 'none'}")
    scores.to_csv(out / "scores.csv")
    hard.to_csv(out / "hard_cases.csv")
    (out / "false_alerts.json").write_text(json.dumps(alerts, indent=1))
    pd.concat(unmatched, names=["detector", None]).round(2).to_csv(out / "unmatched.csv")
    written = ", ".join(str(out / f) for f in ("scores.csv", "hard_cases.csv", "false_alerts.json", "unmatched.csv"))
    print(f"\nwrote {written} (unmatched.csv: each false and missed event)")


if __name__ == "__main__":
    main()
