"""The notebooks: each parameters cell equals its dataclass's defaults and the training stages share
TrainConfig's fields; every notebook runs headless with the smoke preset, in order, so a notebook can never
rot, and each is checked for what it promises, from the files it writes."""

import ast
import dataclasses
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import torch

from drowsy import CLASSES
from drowsy.config import TrainConfig, field_comments, load_yaml
from drowsy.errors import DrowsyError
from drowsy.eval.ablation import VARIANTS
from drowsy.models.yolo import DEFAULT_MODEL
from drowsy.monitor.events import load_events
from drowsy.notebooks import (
    NOTEBOOK_PARAMS,
    SHARED_TRAIN_FIELDS,
    BaselineParams,
    FinetuneParams,
    check_preset,
    injected_names,
    parameters_cell,
    params_of,
    save_as_committed,
    write_notebook_params,
)
from drowsy.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def smoke_parameters(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("smoke")
    parameters = load_yaml(REPO_ROOT / "data/presets/smoke.yaml")
    for key in ("raw_dir", "test_dir", "test_labels", "prepared_dir", "weights_dir", "out_dir"):
        parameters[key] = str(root / Path(parameters[key]).relative_to(Path(parameters[key]).parts[0]))
    return parameters


def test_notebooks_are_committed_as_the_git_filter_stores_them():
    # ./run_all.sh sets up nbstripout as the git filter (outputs, counts and language_info stripped): a
    # notebook committed in exactly its output form stays clean in `git status` after JupyterLab saves it
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbstripout",
            "--verify",
            "--extra-keys",
            "metadata.language_info",
            *map(str, NOTEBOOKS),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    installed = re.search(r'--display-name "([^"]+)"', (REPO_ROOT / "run_all.sh").read_text()).group(1)
    for notebook in NOTEBOOKS:  # the kernel run_all.sh installs: JupyterLab's autosave leaves the name alone
        assert json.loads(notebook.read_text())["metadata"]["kernelspec"]["display_name"] == installed
    attributes = (REPO_ROOT / ".gitattributes").read_text().splitlines()
    assert "*.ipynb filter=nbstripout" in attributes


def test_notebooks_are_committed_clean():
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{notebook.name} has outputs"
        assert "parameters" in code[0]["metadata"].get("tags", []), f"{notebook.name}: first code cell not tagged"
        assert not any(
            line.lstrip().startswith(("def ", "class ")) for c in code for line in "".join(c["source"]).splitlines()
        ), f"{notebook.name} defines a function or class: it belongs in the package"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_with_smoke_preset(notebook, smoke_parameters, tmp_path_factory, caplog):
    # module-scoped parameters and name order make 01 -> 06 run as one chain on the same files
    out = Path(smoke_parameters["out_dir"]) / "notebooks" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=params_of(notebook.stem, smoke_parameters),  # as ./run_all.sh passes them
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path_factory.getbasetemp()),
    )
    assert "Passed unknown parameter" not in caplog.text
    PROMISES[notebook.stem](smoke_parameters)


def manifest_names(path: Path) -> list[str]:
    return [a["file_name"] for a in json.loads(path.read_text())["annotations"]]


def explored(p: dict) -> None:
    figures = {f.stem for f in (Path(p["out_dir"]) / "figures").glob("01_*.png") if f.stat().st_size > 0}
    assert {"01_class_counts", "01_objects_per_image", "01_cooccurrence", "01_box_sizes", "01_samples"} <= figures


def diet_built(p: dict) -> None:
    prepared = Path(p["prepared_dir"])
    train, val, diet = (manifest_names(prepared / f"{name}.json") for name in ("train", "val", "diet"))
    report = json.loads((prepared / "report.json").read_text())
    kept = report["totals"]["records"]["kept"]
    assert report["totals"]["records"]["read"] == kept + report["totals"]["records"]["dropped"]
    assert len(train) + len(val) == kept and not set(train) & set(val)  # every kept image in one split
    assert diet and set(diet) <= set(train)  # the diet set is drawn from train only
    for name, names in (("train", train), ("val", val), ("diet", diet)):
        split = report["splits"][name]
        assert split["images"] == len(names)
        assert sum(split["objects_per_class"].values()) == split["objects"]
    assert report["split"]["val_images"] == len(val) <= p["val_size"]


def trained(stage: str, epochs_key: str):
    def check(p: dict) -> None:
        run = Path(p["weights_dir"]) / stage
        config = json.loads((run / "config.json").read_text())["config"]
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert config["epochs"] == p[epochs_key] and [m["epoch"] for m in lines] == list(range(p[epochs_key]))
        assert all({"loss_box", "mAP75", "per_class"} <= set(m) for m in lines)
        last, best = (torch.load(run / name, map_location="cpu", weights_only=True) for name in ("last.pt", "best.pt"))
        assert last["epoch"] == p[epochs_key] and 1 <= best["epoch"] <= p[epochs_key]  # epochs done
        assert last["model"].keys() == best["model"].keys() and last["class_names"] == list(CLASSES)
        if stage == "finetune":  # starts from the baseline's weights
            assert Path(config["weights"]).parent == Path(p["weights_dir"]) / "baseline"

    return check


def ensembled(p: dict) -> None:
    out = Path(p["out_dir"])
    table = json.loads((out / "ensemble_scores.json").read_text())
    val_classes = {
        o["class"]
        for a in json.loads((Path(p["prepared_dir"]) / "val.json").read_text())["annotations"]
        for o in a["objects"]
    }
    assert {f"val: {name}" for name in VARIANTS} <= set(table)
    if p.get("held_out_dir"):  # the held-out family scored beside the test set, with its raised props
        assert {"test: submission", "held-out family: submission"} <= set(table)
    for name in VARIANTS:
        assert set(table[f"val: {name}"]["per_class_AP75"]) == val_classes
    figures = {f.stem for f in (out / "figures").glob("05_*.png") if f.stat().st_size > 0}
    assert {"05_ablation", "05_pr_curves", "05_confusion", "05_by_size", "05_predictions"} <= figures
    tests = sorted(f.name for f in Path(p["test_dir"]).rglob("*.jpg"))
    submission = json.loads((out / "submission.json").read_text())["annotations"]
    assert sorted(Path(a["file_name"]).name for a in submission) == tests  # one entry per test image
    for entry in submission:
        assert set(entry) == {"file_name", "objects"}
        assert all(o["class"] in CLASSES and len(o["position"]) == 4 for o in entry["objects"])


def monitored(p: dict) -> None:
    monitor = Path(p["out_dir"]) / "monitor"
    truth = {e.type for e in load_events(monitor / "clip" / "events.json")}
    for name in ("ground_truth_boxes", "detector"):
        summary = json.loads((monitor / name / "summary.json").read_text())
        load_events(summary["files"]["events"])
        assert truth <= set(summary["scores"]), name  # every type of the truth scored
    scores = json.loads((monitor / "ground_truth_boxes" / "summary.json").read_text())["scores"]
    assert all(scores[kind]["f1"] == 1.0 for kind in truth - {"drowsy"})  # 30 s: shorter than PERCLOS's window


PROMISES = {
    "01_explore_imbalance": explored,
    "02_build_diet": diet_built,
    "03_train_baseline": trained("baseline", "epochs"),
    "04_finetune": trained("finetune", "finetune_epochs"),
    "05_ensemble_predict": ensembled,
    "06_driver_monitor": monitored,
}


def test_missing_input_names_the_notebook_that_makes_it(tmp_path):
    notebook = REPO_ROOT / "notebooks/03_train_baseline.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="run notebooks/02_build_diet.ipynb"):
        papermill.execute_notebook(
            str(notebook),
            str(tmp_path / "out.ipynb"),
            parameters={
                "prepared_dir": str(tmp_path / "nothing"),
                "weights_dir": str(tmp_path / "weights"),
                "epochs": 1,
            },
            kernel_name="python3",
            progress_bar=False,
        )


def cell_values(name: str) -> dict:
    """name -> value of every assignment in the notebook's cell tagged `parameters` (one scalar per line,
    as the parameters cell is read by people and by papermill)."""
    cells = json.loads((REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    [cell] = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    assert all(node.lineno == node.end_lineno for node in tree.body), f"{name}: a parameter spans several lines"
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


def test_every_notebook_is_listed():
    assert sorted(NOTEBOOK_PARAMS) == sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("name", sorted(NOTEBOOK_PARAMS))
def test_parameters_cell_equals_the_dataclass_defaults(name):
    defaults = {f.name: f.default for f in dataclasses.fields(NOTEBOOK_PARAMS[name])}
    cell = cell_values(name)
    assert cell == defaults  # same names, same values
    # == takes True for 1: the types must agree too (an int is a fine float, as from_dict accepts it)
    assert all(type(cell[k]) is type(v) or (type(v) is float and type(cell[k]) is int) for k, v in defaults.items())


@pytest.mark.parametrize("name", sorted(NOTEBOOK_PARAMS))
def test_parameters_cell_is_written_from_the_dataclass_with_every_fields_comment(name):
    cells = json.loads((REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    [cell] = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert "".join(cell["source"]) == parameters_cell(name)
    comments = field_comments(NOTEBOOK_PARAMS[name])
    assert set(comments) == {f.name for f in dataclasses.fields(NOTEBOOK_PARAMS[name])}  # each says what it is
    for line in cell["source"]:
        field, comment = line.split(" = ")[0], line.rstrip("\n").split("  # ", 1)[1]
        assert comment == comments[field]


def test_a_field_made_in_code_carries_its_comment_and_shared_fields_keep_train_configs():
    comments, train = field_comments(BaselineParams), field_comments(TrainConfig)
    assert (
        comments["img_size"] == train["img_size"]
        and comments["model"] == "variant from data/models/ (the recipe: yolov5l6)"
    )
    assert comments["overwrite"] == train["overwrite"].replace("<run_dir>", "<weights_dir>/<stage>")
    assert comments["prepared_dir"].startswith("manifests from notebook 02")


def test_both_training_stages_take_every_shared_train_config_field():
    stage_specific = {
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
    }
    assert set(SHARED_TRAIN_FIELDS) == {f.name for f in dataclasses.fields(TrainConfig)} - stage_specific
    assert {"deterministic", "compile"} <= set(SHARED_TRAIN_FIELDS)
    for stage in (BaselineParams, FinetuneParams):
        config = stage.from_dict({"deterministic": False, "compile": True, "batch": 3}).train_config()
        assert (config.deterministic, config.compile, config.batch) == (False, True, 3)
    finetune = FinetuneParams(weights_dir="w").train_config()
    assert (finetune.weights, finetune.run_dir, finetune.freeze) == ("w/baseline/last.pt", "w/finetune", "backbone")


def test_the_demo_preset_is_every_notebooks_defaults():
    demo = load_yaml(REPO_ROOT / "data/presets/demo.yaml")
    for name, params in NOTEBOOK_PARAMS.items():
        defaults, share = params().to_dict(), params_of(name, demo)
        assert {key: defaults[key] for key in share} == share, name
    # what the training notebooks do not set comes from TrainConfig's defaults: the demo's as well
    # (TrainConfig's model "" builds DEFAULT_MODEL, the variant notebook 03 names)
    expected = TrainConfig(train_manifest="data/prepared/demo/diet.json", model=DEFAULT_MODEL)
    assert BaselineParams().train_config() == expected


@pytest.mark.parametrize("preset", sorted((REPO_ROOT / "data/presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_key_of_every_preset_is_taken_by_a_notebook(preset):
    assert check_preset(preset) == load_yaml(preset)


def test_a_typo_in_a_preset_stops_in_one_line_naming_the_nearest_parameter(tmp_path):
    preset = tmp_path / "typo.yaml"
    preset.write_text("epoch: 3\nmodel: yolov5s\n")
    with pytest.raises(DrowsyError, match=r"typo.yaml: unknown parameter 'epoch' \(did you mean 'epochs'\?\)$"):
        check_preset(preset)
    with pytest.raises(DrowsyError, match="unknown parameter 'epoch'"):
        write_notebook_params(preset, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # stopped before writing anything
    preset.write_text("colour: red\n")
    with pytest.raises(DrowsyError, match=r"typo.yaml: unknown parameter 'colour'$"):
        check_preset(preset)


def test_each_notebook_is_passed_only_its_own_share_of_a_preset(tmp_path):
    write_notebook_params(REPO_ROOT / "data/presets/full.yaml", tmp_path)
    full = load_yaml(REPO_ROOT / "data/presets/full.yaml")
    shares = {name: load_yaml(tmp_path / f"{name}.yaml") for name in NOTEBOOK_PARAMS}
    assert shares["03_train_baseline"]["epochs"] == 300 and "finetune_epochs" not in shares["03_train_baseline"]
    assert shares["05_ensemble_predict"]["predict_batch"] == full["predict_batch"]
    assert set().union(*shares.values()) == set(full)


def test_papermill_parameters_a_notebook_takes_pass_and_a_typo_stops_the_config_cell(tmp_path):
    assert injected_names({"In": ["", "# Parameters\nepochs = 3\nseed = 1\n", "params"]}) == ["epochs", "seed"]
    assert injected_names({"In": ["", "x = 1"]}) == [] and injected_names({}) == []
    namespace = {**BaselineParams().to_dict(), "In": ["# Parameters\nepochs = 3\nfinetune_epochs = 9\n"]}
    assert BaselineParams.from_notebook(namespace).epochs == BaselineParams().epochs  # a key of notebook 04 passes
    with pytest.raises(DrowsyError, match=r"^parameters: unknown parameter 'epoch' \(did you mean 'epochs'\?\)$"):
        BaselineParams.from_notebook({**namespace, "In": ["# Parameters\nepoch = 3\n"]})
    with pytest.raises(papermill.PapermillExecutionError, match=r"unknown parameter 'epoch' \(did you mean 'epochs'"):
        papermill.execute_notebook(
            str(REPO_ROOT / "notebooks" / "03_train_baseline.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"epoch": 3},
            kernel_name="python3",
            progress_bar=False,
        )


def test_jupyterlab_saves_a_run_notebook_exactly_as_committed_and_other_notebooks_as_they_are(tmp_path):
    committed = (REPO_ROOT / "notebooks" / "01_explore_imbalance.ipynb").read_text()
    executed = nbformat.reads(committed, as_version=4)
    executed.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    for number, cell in enumerate(c for c in executed.cells if c.cell_type == "code"):
        cell.execution_count = number + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="figures\n")]
    manager = type("ContentsManager", (), {"root_dir": str(REPO_ROOT)})()
    model = {"type": "notebook", "content": json.loads(nbformat.writes(executed))}
    save_as_committed(model, "notebooks/01_explore_imbalance.ipynb", manager)
    assert nbformat.writes(model["content"]) + "\n" == committed
    elsewhere = {"type": "notebook", "content": json.loads(nbformat.writes(executed))}
    save_as_committed(elsewhere, "outputs/demo/notebooks/01_explore_imbalance.ipynb", manager)
    assert elsewhere["content"]["cells"][2]["outputs"]  # an executed copy keeps its outputs
    # ./run_all.sh registers it where jupyter_server reads it (the environment's config, for every contents
    # manager), under a name that imports
    config = re.search(
        r"echo '(.+)' \\\n\s*> \.venv/etc/jupyter/jupyter_server_config\.json", (REPO_ROOT / "run_all.sh").read_text()
    )
    hook = json.loads(config.group(1))["ContentsManager"]["pre_save_hook"]
    module, name = hook.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is save_as_committed
