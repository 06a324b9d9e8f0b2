"""The closing summary of `./run_all.sh`: what the chain produced, where it is, and how good it is.

    python -m drowsy.viz.summary data/presets/demo.yaml --seconds 512

Prints per-class AP@0.75 of every stage that ran and writes `<out_dir>/metrics.json`.
"""

import argparse

import pandas as pd

from drowsy.config import load_yaml
from drowsy.files import read_json, write_json
from drowsy.paths import resolve
from drowsy.viz.runs import read_history


def collect(preset: dict) -> dict:
    """Last validation metrics of the baseline and fine-tune runs, and notebook 05's scores if present."""
    weights_dir, out_dir = resolve(preset["weights_dir"]), resolve(preset["out_dir"])
    stages = {}
    for stage in ("baseline", "finetune"):
        if (weights_dir / stage / "metrics.jsonl").exists():
            validated = read_history(weights_dir / stage).dropna(subset=["mAP75"])
            if len(validated):
                last = validated.iloc[-1]
                stages[stage] = {
                    "mAP50": last["mAP50"],
                    "mAP75": last["mAP75"],
                    "per_class_AP75": last.filter(like="AP75_").rename(lambda k: k.removeprefix("AP75_")).to_dict(),
                    "weights": str(weights_dir / stage / "best.pt"),
                }
    ensemble_file = out_dir / "ensemble_scores.json"
    if ensemble_file.exists():
        stages.update(read_json(ensemble_file))
    return stages


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="the preset YAML the chain ran with")
    parser.add_argument("--seconds", type=float, default=None, help="wall time of the chain")
    args = parser.parse_args(argv)
    preset = load_yaml(args.preset)
    out_dir = resolve(preset["out_dir"])
    stages = collect(preset)
    metrics = {
        "preset": args.preset,
        "seconds": args.seconds,
        "stages": stages,
        "notebooks": str(out_dir / "notebooks"),
        "figures": str(out_dir / "figures"),
        "weights": str(resolve(preset["weights_dir"])),
    }
    write_json(out_dir / "metrics.json", metrics, indent=2)

    print("\n== summary")
    if stages:
        table = pd.DataFrame(
            {name: s["per_class_AP75"] | {"mAP@0.75": s["mAP75"], "mAP@0.5": s["mAP50"]} for name, s in stages.items()}
        )
        tested = any(name.startswith("test") for name in stages)  # notebook 05's "test: submission"
        print("AP@0.75 per class (validation" + (", test" if tested else "") + "):")
        print(table.round(4).to_string())
    if args.seconds is not None:
        print(f"total time: {args.seconds / 60:.1f} min")
    for key in ("notebooks", "figures", "weights"):
        print(f"{key}: {metrics[key]}")
    print(f"metrics: {out_dir / 'metrics.json'}")


if __name__ == "__main__":
    main()
