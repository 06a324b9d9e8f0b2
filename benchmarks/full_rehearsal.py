"""The `full` preset's whole chain rehearsed on a small synthetic set: notebooks 01-06 with
`-f data/presets/full.yaml`, overriding only what makes the run small (the data, the epochs, the sample
sizes) and, on a CPU, the model and device. Every other setting is the full preset's own: 1280 px, batch
16, eight loader workers, the p6 hyperparameters, the one-time resize, validation on a subset,
checkpoints every 10 epochs, prediction at 1536 px with TTA, the monitor at 1280 px.

Run it before renting GPU hours, on the machine that will train (`--device cuda --model yolov5l6`), to
see every notebook go through with the real recipe's settings; on this CPU it takes about 6 minutes.
Prints each notebook's seconds, the peak PSS of its whole process tree (sampled) and the largest peak
RSS of one process in it (the kernel's); a failing notebook ends the run with its error.

    python benchmarks/full_rehearsal.py [--images 400] [--format aihub|competition] [--test-images 30]
                                        [--model yolov5n] [--device cpu] [--epochs 2] [--keep DIR]
"""

import argparse
import json
import tempfile
from pathlib import Path

from notebook_memory import full_preset_command, peaks

from drowsy.files import write_json
from drowsy.paths import REPO_ROOT
from drowsy.synth.aihub_tree import write_aihub_tree
from drowsy.synth.competition import write_dataset

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VAL_IMAGES = 48


def overrides(folder: Path, args: argparse.Namespace) -> dict:
    """What differs from data/presets/full.yaml: a small set, a few epochs, small samples."""
    batches = 1  # each epoch draws about one batch of 16 from the diet set (a quarter of the train split)
    return dict(
        raw_dir=str(folder / "raw"),
        test_dir=str(folder / "test"),
        test_labels=str(folder / "test_labels.json"),
        prepared_dir=str(folder / "prepared"),
        weights_dir=str(folder / "weights"),
        out_dir=str(folder / "out"),
        val_size=VAL_IMAGES,
        model=args.model,
        device=args.device,
        epochs=args.epochs,
        epoch_parts=max(args.images // 4 // (16 * batches), 1),
        finetune_epochs=1,
        finetune_epoch_parts=max(args.images // (16 * batches), 1),
        val_every=1,
        val_subset=VAL_IMAGES // 3,
        ablation_images=VAL_IMAGES // 3,
        calibration_images=VAL_IMAGES // 3,
        clip_seconds=20,
        protocol_seconds=30,
        alert_seconds=20,
        clip_fps=10,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="synthetic training images")
    parser.add_argument(
        "--format",
        choices=["aihub", "competition"],
        default="aihub",
        help="training set as an AIHub tree of 800x1280 frames (hard-linked by the resize) or in "
        "the competition layout at 1920x1080 (copied to 1280 px by notebook 02)",
    )
    parser.add_argument("--test-images", type=int, default=30, help="synthetic 1920x1080 test images")
    parser.add_argument("--model", default="yolov5n", help="full.yaml trains yolov5l6; yolov5n keeps a CPU run short")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write everything here (executed notebooks in DIR/notebooks)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        if args.format == "aihub":
            write_aihub_tree(folder / "raw", args.images, seed=11, size=(800, 1280), progress=False)
        else:  # larger than the training size: notebook 02 copies them once to 1280 px
            write_dataset(folder / "raw", args.images, seed=11, size=(1920, 1080), progress=False)
        write_dataset(
            folder / "test",
            args.test_images,
            seed=12,
            size=(1920, 1080),
            labels_path=folder / "test_labels.json",
            progress=False,
        )
        write_json(folder / "overrides.json", overrides(folder, args))
        (folder / "notebooks").mkdir(exist_ok=True)
        print(f"{'notebook':<28}{'seconds':>9}{'peak tree PSS GB':>18}{'largest peak RSS GB':>21}", flush=True)
        for notebook in NOTEBOOKS:
            command = full_preset_command(
                notebook, folder / "notebooks" / notebook.name, "-f", str(folder / "overrides.json")
            )
            pss, rss, seconds = peaks(command, what=notebook.stem)
            print(f"{notebook.stem:<28}{seconds:>9.0f}{pss:>18.2f}{rss:>21.2f}", flush=True)
        summary = json.loads((folder / "weights" / "finetune" / "config.json").read_text())["config"]
        print(
            f"every notebook ran with the full preset's settings ({summary['img_size']} px, batch {summary['batch']}, "
            f"{summary['workers']} workers, {args.model} on {args.device})"
        )


if __name__ == "__main__":
    main()
