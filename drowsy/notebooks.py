"""The parameters of each notebook (notebooks/NN_*.ipynb): one frozen dataclass per notebook.

The defaults are the demo's (data/presets/demo.yaml), so a notebook run as it opens, in JupyterLab or
by papermill without `-f`, runs the demo; the recipe is `-f data/presets/full.yaml`. A notebook's
`parameters` cell holds one scalar per line, equal to its dataclass's defaults (tests keep the cells,
the dataclasses and the demo preset equal); the cell after it calls `SomeParams.from_notebook(globals())`,
which refuses a parameter no notebook takes (`-p epoch 3`: "did you mean 'epochs'?") and wrong types
in one line. A preset is checked the same way (`check_preset`; ./run_all.sh passes each notebook only
its own share of it). The two training notebooks share every
`drowsy.config.TrainConfig` field that is not stage-specific, derived below rather than copied, so a
new engine option reaches both notebooks.
"""

import argparse
import ast
import dataclasses
import difflib
import json
import sys
from pathlib import Path

import yaml

from drowsy.config import Params, TrainConfig, field_comments, load_yaml
from drowsy.data.prepare import FORMATS
from drowsy.data.split import SPLITS
from drowsy.errors import DrowsyError
from drowsy.monitor.detect import BACKENDS
from drowsy.paths import resolve
from drowsy.synth.demo_data import LAYOUTS, parse_size


@dataclasses.dataclass(frozen=True)
class NotebookParams(Params):
    """Base of each notebook's parameters."""

    @classmethod
    def from_notebook(cls, namespace: dict):
        """The config cell's call: a parameter papermill passed that no notebook takes ends the run in one
        line naming the nearest known name; then this notebook's parameters from `namespace`."""
        check_names(injected_names(namespace), "parameters")
        return cls.from_namespace(namespace)


def _check_format(raw_format: str) -> None:
    if raw_format not in FORMATS:
        raise DrowsyError(f"parameters: field 'raw_format' must be one of {', '.join(FORMATS)}, got {raw_format!r}")


@dataclasses.dataclass(frozen=True)
class ExploreParams(NotebookParams):
    """Parameters of notebooks/01_explore_imbalance.ipynb."""

    raw_dir: str = "data/datasets/demo/train"  # competition folder or AIHub tree; synthesised there if it has no data
    raw_format: str = "auto"  # what raw_dir holds: "competition", "aihub" or "auto" (labels.json or [라벨] folders)
    images_dir: str = ""  # an AIHub tree's images folder when not under raw_dir ("": raw_dir)
    test_dir: str = "data/datasets/demo/test"  # test images/ folder; a synthetic one is written when missing
    test_labels: str = "data/datasets/demo/test_labels.json"  # labels of the synthetic test set, kept apart from it
    synth_images: int = 6000  # images to synthesise when raw_dir holds no data (0: never synthesise)
    synth_test_images: int = 500  # synthetic test images (0: none)
    held_out_dir: str = "data/datasets/demo/held_out"  # held-out family images/ (poses training never sees)
    held_out_labels: str = "data/datasets/demo/held_out_labels.json"  # its labels, kept apart from it
    synth_held_out_images: int = 300  # synthetic held-out family images, phones and cigarettes raised (0: none)
    synth_format: str = "aihub"  # layout of the synthetic training set: "aihub" (the public tree) or "competition"
    synth_size: str = "800x1280"  # synthetic image size, WIDTHxHEIGHT pixels (real controlled images: 800x1280)
    seed: int = 0  # seed of the synthetic data (test set: seed + 1, held-out family: seed + 2) and of the samples
    out_dir: str = "outputs/demo"  # figures go to out_dir/figures/01_*.png
    samples: int = 12  # sample images drawn with their boxes

    def __post_init__(self):
        parse_size(self.synth_size)  # fail in the config cell, not after minutes of work
        _check_format(self.raw_format)
        if self.synth_format not in LAYOUTS:
            raise DrowsyError(
                f"parameters: field 'synth_format' must be one of {', '.join(LAYOUTS)}, got {self.synth_format!r}"
            )


@dataclasses.dataclass(frozen=True)
class DietParams(NotebookParams):
    """Parameters of notebooks/02_build_diet.ipynb."""

    raw_dir: str = "data/datasets/demo/train"  # competition folder or AIHub tree (notebook 01 makes the demo one)
    raw_format: str = "auto"  # what raw_dir holds: "competition", "aihub" or "auto" (labels.json or [라벨] folders)
    images_dir: str = ""  # an AIHub tree's images folder when not under raw_dir ("": raw_dir)
    prepared_dir: str = "data/prepared/demo"  # output: train.json, val.json, diet.json, report.json
    val_size: int = 300  # validation images (capped at 20% of the usable images)
    seed: int = 0  # seed of the train/val split
    split: str = "draw"  # "draw": val drawn with seed (val_size, group_by); "aihub": the Validation/ folders
    group_by: str = "subject"  # meta key kept on one side of the split ("subject": no driver in both; "": random)
    export: str = ""  # also export the splits as "yolo" (txt labels) or "coco" (json) under prepared_dir ("": none)
    resize: int = 0  # copy the images once to prepared_dir/images, long side at most this many pixels (0: off)
    out_dir: str = "outputs/demo"  # figures go to out_dir/figures/02_*.png

    def __post_init__(self):
        _check_format(self.raw_format)
        if self.split not in SPLITS:
            raise DrowsyError(f"parameters: field 'split' must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.export not in ("", "yolo", "coco"):
            raise DrowsyError(f"parameters: field 'export' must be '', 'yolo' or 'coco', got {self.export!r}")


def _field(default, comment: str) -> dataclasses.Field:
    """A field made in code, with the comment a source line would carry (`field_comments` reads both)."""
    return dataclasses.field(default=default, metadata={"comment": comment})


# TrainConfig fields each stage sets from its own parameters; every other field is shared by both
# training notebooks under its TrainConfig name and default.
STAGE_SPECIFIC = (
    "train_manifest",
    "val_manifest",
    "run_dir",
    "model",
    "hyp",
    "epochs",
    "epoch_parts",
    "weights",
    "freeze",
    "autoanchor",
)
SHARED_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in STAGE_SPECIFIC)

_TRAIN_COMMENTS = field_comments(TrainConfig)
STAGE_DIRS = ("prepared_dir", "weights_dir", "out_dir")
_StageBase = dataclasses.make_dataclass(
    "_StageBase",
    [
        (
            "prepared_dir",
            str,
            _field("data/prepared/demo", "manifests from notebook 02 (03: diet.json, 04: train.json; val.json)"),
        ),
        (
            "weights_dir",
            str,
            _field("weights/demo", "runs go to <weights_dir>/<stage>; 04 starts from baseline/last.pt"),
        ),
        ("out_dir", str, _field("outputs/demo", "figures go to <out_dir>/figures")),
    ]
    + [
        (f.name, f.type, _field(f.default, _TRAIN_COMMENTS[f.name].replace("<run_dir>", "<weights_dir>/<stage>")))
        for f in dataclasses.fields(TrainConfig)
        if f.name in SHARED_TRAIN_FIELDS
    ],
    bases=(NotebookParams,),
    frozen=True,
)


@dataclasses.dataclass(frozen=True)
class StageParams(_StageBase):
    """Parameters both training notebooks share: where the files are, and the shared TrainConfig fields."""

    def shared(self) -> dict:
        return {name: getattr(self, name) for name in SHARED_TRAIN_FIELDS}


@dataclasses.dataclass(frozen=True)
class BaselineParams(StageParams):
    """Parameters of notebooks/03_train_baseline.ipynb: the diet set, scratch hyperparameters."""

    model: str = "yolov5n"  # variant from data/models/ (the recipe: yolov5l6)
    hyp: str = "data/hyp.scratch-demo.yaml"  # hyperparameter file (the recipe: data/hyp.scratch-p6.yaml)
    epochs: int = 25  # epochs (each samples len/epoch_parts images)
    epoch_parts: int = 1  # an epoch is 1/epoch_parts of the diet set, drawn with replacement

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            train_manifest=str(Path(self.prepared_dir) / "diet.json"),
            val_manifest=str(Path(self.prepared_dir) / "val.json"),
            run_dir=str(Path(self.weights_dir) / "baseline"),
            model=self.model,
            hyp=self.hyp,
            epochs=self.epochs,
            epoch_parts=self.epoch_parts,
            **self.shared(),
        )


@dataclasses.dataclass(frozen=True)
class FinetuneParams(StageParams):
    """Parameters of notebooks/04_finetune.ipynb: the natural distribution, the backbone frozen, from
    03's last weights."""

    finetune_hyp: str = "data/hyp.finetune-simple.yaml"  # hyperparameter file
    finetune_epochs: int = 3  # epochs
    finetune_epoch_parts: int = 1  # an epoch is 1/finetune_epoch_parts of the train split, with replacement
    freeze: str = "backbone"  # comma-separated module-name prefixes to freeze ("": none)

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            train_manifest=str(Path(self.prepared_dir) / "train.json"),
            val_manifest=str(Path(self.prepared_dir) / "val.json"),
            run_dir=str(Path(self.weights_dir) / "finetune"),
            weights=str(Path(self.weights_dir) / "baseline" / "last.pt"),
            freeze=self.freeze,
            hyp=self.finetune_hyp,
            epochs=self.finetune_epochs,
            epoch_parts=self.finetune_epoch_parts,
            autoanchor=False,
            **self.shared(),
        )


@dataclasses.dataclass(frozen=True)
class EnsembleParams(NotebookParams):
    """Parameters of notebooks/05_ensemble_predict.ipynb."""

    prepared_dir: str = "data/prepared/demo"  # val.json from notebook 02
    weights_dir: str = "weights/demo"  # <weights_dir>/baseline/best.pt and finetune/best.pt (notebooks 03, 04)
    test_dir: str = "data/datasets/demo/test"  # test images (images/ inside)
    test_labels: str = "data/datasets/demo/test_labels.json"  # "" when unknown (the real test set)
    held_out_dir: str = "data/datasets/demo/held_out"  # held-out family images from notebook 01 ("": none)
    held_out_labels: str = "data/datasets/demo/held_out_labels.json"  # its labels
    out_dir: str = "outputs/demo"  # submission.json, ensemble_scores.json, figures/
    predict_img_size: int = 320  # network input for prediction, pixels (the recipe: 1536)
    conf: float = 0.006  # score threshold (the recipe: 0.006)
    iou: float = 0.7  # NMS IoU threshold, also the WBF clustering IoU (the recipe: 0.7)
    max_det: int = 300  # boxes kept per image
    predict_batch: int = 16  # images per forward pass
    device: str = "cpu"  # "auto", "cpu", "cuda", "cuda:1" (ONNX models run on the CPU)
    amp: bool = True  # bf16 autocast on CPU, fp16/bf16 on CUDA (checkpoints; ONNX runs fp32)
    val_images: int = 0  # score on the first N val images (0: all)
    ablation_images: int = 0  # the ablation scores N of those, spread evenly over them (0: all)
    predicted_samples: int = 6  # images in the prediction-vs-truth grid
    submission_variant: str = "best"  # variant that writes the submission: "best" (by val mAP@0.75) or a name
    slice_by: str = "lighting,behaviour,glasses,mask,cap"  # meta keys to score val by (comma-separated; "": none)

    def __post_init__(self):
        from drowsy.eval.ablation import VARIANTS  # torch: not needed to read the parameters or --help

        known = ("best", *VARIANTS)
        if self.submission_variant not in known:
            raise DrowsyError(
                f"submission_variant: expected one of {', '.join(map(repr, known))}, got {self.submission_variant!r}"
            )

    def predict_options(self) -> dict:
        """The prediction settings, as `run_ablation` and `predict_folder` take them."""
        return {
            "img_size": self.predict_img_size,
            "conf": self.conf,
            "iou": self.iou,
            "max_det": self.max_det,
            "batch": self.predict_batch,
            "device": self.device,
            "amp": self.amp,
        }


@dataclasses.dataclass(frozen=True)
class DriverMonitorParams(NotebookParams):
    """Parameters of notebooks/06_driver_monitor.ipynb."""

    weights_dir: str = "weights/demo"  # reads <weights_dir>/finetune/best.pt (notebook 04)
    prepared_dir: str = "data/prepared/demo"  # <prepared_dir>/val.json (notebook 02): labelled images to calibrate on
    out_dir: str = "outputs/demo"  # writes <out_dir>/monitor: the clips, the monitor's outputs, figures
    clip_seconds: float = 90.0  # length of the story clip (blinks, yawns, phone, smoking, a drowsy phase), seconds
    protocol_seconds: float = 240.0  # length of the protocol clip (every protocol item about once), seconds
    alert_seconds: float = 120.0  # length of the alert-driving clip (nothing to alert on), seconds
    clip_size: str = "400x640"  # clip frame size WxH: portrait close-ups like the training images
    clip_fps: float = 15.0  # frames per second of the clips
    seed: int = 0  # seed of the clips' scripts and pixels
    monitor_img_size: int = 320  # detector input size, pixels (the demo trains at 256 and predicts at 320)
    monitor_config: str = "data/monitor.yaml"  # thresholds of the state machine
    backend: str = "torch"  # "torch" (PyTorch, bf16 autocast), "onnx" (ONNX Runtime) or "openvino" (its graph)
    device: str = "cpu"  # where the calibration runs ("auto", "cpu", "cuda"; the monitor itself runs on the CPU)
    calibration_images: int = 0  # calibrate on N val images spread evenly over the split (0: all)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise DrowsyError(f"parameters: field 'backend' must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not (
            min(self.clip_seconds, self.protocol_seconds, self.alert_seconds, self.clip_fps) > 0
            and self.monitor_img_size > 0
        ):
            raise DrowsyError(
                "parameters: fields 'clip_seconds', 'protocol_seconds', 'alert_seconds', 'clip_fps', "
                f"'monitor_img_size' must be > 0, got {self.clip_seconds}, {self.protocol_seconds}, "
                f"{self.alert_seconds}, {self.clip_fps}, {self.monitor_img_size}"
            )
        parse_size(self.clip_size, field="clip_size", minimum=64)

    @property
    def size(self) -> tuple[int, int]:
        """clip_size as (width, height)."""
        return parse_size(self.clip_size, field="clip_size", minimum=64)


# ----------------------------------------------------------------------------- unknown parameters

NOTEBOOK_PARAMS = {
    "01_explore_imbalance": ExploreParams,
    "02_build_diet": DietParams,
    "03_train_baseline": BaselineParams,
    "04_finetune": FinetuneParams,
    "05_ensemble_predict": EnsembleParams,
    "06_driver_monitor": DriverMonitorParams,
}


def parameter_names() -> set[str]:
    """Every parameter some notebook takes."""
    return {field.name for params in NOTEBOOK_PARAMS.values() for field in dataclasses.fields(params)}


def check_names(names, source: str) -> None:
    """One line naming the first of `names` that no notebook takes, and the nearest name that one does."""
    known = parameter_names()
    for name in sorted(set(names) - known):
        nearest = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean '{nearest[0]}'?)" if nearest else ""
        raise DrowsyError(f"{source}: unknown parameter '{name}'{hint}")


def check_preset(path: str | Path) -> dict:
    """A preset's values, after checking that some notebook takes each key."""
    values = load_yaml(path)
    check_names(values, str(resolve(path)))
    return values


def injected_names(namespace: dict) -> list[str]:
    """The names papermill's injected-parameters cell (`-p name value`, `-f preset.yaml`) assigned, read
    from the kernel's input history (`In`); none when the notebook runs as it opened (JupyterLab)."""
    injected = [source for source in namespace.get("In", []) if source.startswith("# Parameters\n")]
    if not injected:
        return []
    return [target.id for node in ast.parse(injected[-1]).body for target in getattr(node, "targets", [])]


def params_of(notebook: str, values: dict) -> dict:
    """The part of a preset's `values` that `notebook` takes."""
    names = {field.name for field in dataclasses.fields(NOTEBOOK_PARAMS[notebook])}
    return {key: value for key, value in values.items() if key in names}


def write_notebook_params(preset: str | Path, out_dir: str | Path) -> None:
    """Check a preset, then write `out_dir/<notebook>.yaml`: each notebook's share of it, so that papermill
    is passed no parameter its notebook does not take (./run_all.sh)."""
    values = check_preset(preset)
    out_dir = resolve(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for notebook in NOTEBOOK_PARAMS:
        text = yaml.safe_dump(params_of(notebook, values), sort_keys=False, allow_unicode=True)
        (out_dir / f"{notebook}.yaml").write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- the notebooks' files


def parameters_cell(notebook: str) -> str:
    """The `parameters` cell of `notebook`, written from its dataclass: one `name = default  # comment` line
    per field, the comment being the field's (`field_comments`), so the cell, the dataclass and the
    command line's --help say the same (a test keeps each notebook's cell equal to this text)."""
    params = NOTEBOOK_PARAMS[notebook]
    comments, own = field_comments(params), vars(params).get("__annotations__", {})
    # where the files are, then what this notebook sets itself, then what it shares with the other stage
    shared_last = sorted(dataclasses.fields(params), key=lambda f: f.name not in own and f.name not in STAGE_DIRS)
    lines = []
    for field in shared_last:
        value = json.dumps(field.default, ensure_ascii=False) if isinstance(field.default, str) else repr(field.default)
        lines.append(f"{field.name} = {value}  # {comments[field.name]}")
    return "\n".join(lines)


STRIPPED_METADATA = ["metadata.language_info"]  # what JupyterLab fills in beyond what git stores


def save_as_committed(model: dict, path: str, contents_manager, **kwargs) -> None:
    """JupyterLab's pre-save hook (./run_all.sh registers it in the environment's Jupyter config): a
    notebook of notebooks/ is saved without outputs, execution counts and `STRIPPED_METADATA`, exactly as
    the git filter (nbstripout) stores it, so running it leaves `git status` clean; papermill's executed
    copies go to outputs/. Other notebooks are saved as they are."""
    import nbformat
    from nbstripout import strip_output

    on_disk = (Path(contents_manager.root_dir) / path).resolve()
    if model.get("type") == "notebook" and on_disk.parent == resolve("notebooks"):
        notebook = nbformat.from_dict(model["content"])
        model["content"] = strip_output(
            notebook, keep_output=False, keep_count=False, keep_id=False, extra_keys=STRIPPED_METADATA
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m drowsy.notebooks PRESET OUT_DIR`: check PRESET, write each notebook's share to OUT_DIR."""
    parser = argparse.ArgumentParser(description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("preset", help="a preset file (data/presets/NAME.yaml)")
    parser.add_argument("out_dir", help="folder for <notebook>.yaml")
    args = parser.parse_args(argv)
    try:
        write_notebook_params(args.preset, args.out_dir)
    except DrowsyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
