"""Parameters in one place: every notebook's parameters cell equals its dataclass's defaults, the
training stages share TrainConfig's fields, and hyperparameter files load into a typed dataclass."""

import ast
import dataclasses
import json

import pytest

from drowsy.errors import DrowsyError
from drowsy.params import (
    SHARED_TRAIN_FIELDS,
    BaselineParams,
    DietParams,
    DriverMonitorParams,
    EnsembleParams,
    ExploreParams,
    FinetuneParams,
    Hyp,
    TrainConfig,
)
from drowsy.paths import REPO_ROOT

NOTEBOOK_PARAMS = {
    "01_explore_imbalance": ExploreParams, "02_build_diet": DietParams, "03_train_baseline": BaselineParams,
    "04_finetune": FinetuneParams, "05_ensemble_predict": EnsembleParams, "06_driver_monitor": DriverMonitorParams,
}


def parameters_cell(name: str) -> dict:
    """name -> value of every assignment in the notebook's cell tagged `parameters`."""
    cells = json.loads((REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    [cell] = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


def test_every_notebook_is_listed():
    assert sorted(NOTEBOOK_PARAMS) == sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("name", sorted(NOTEBOOK_PARAMS))
def test_parameters_cell_equals_the_dataclass_defaults(name):
    defaults = {f.name: f.default for f in dataclasses.fields(NOTEBOOK_PARAMS[name])}
    cell = parameters_cell(name)
    assert cell == defaults  # same names, same values
    # == takes True for 1: the types must agree too (an int is a fine float, as from_dict accepts it)
    assert all(type(cell[k]) is type(v) or (type(v) is float and type(cell[k]) is int) for k, v in defaults.items())


def test_both_training_stages_take_every_shared_train_config_field():
    stage_specific = {"train_manifest", "val_manifest", "run_dir", "model", "hyp", "epochs", "epoch_parts", "weights",
                      "freeze", "autoanchor"}
    assert set(SHARED_TRAIN_FIELDS) == {f.name for f in dataclasses.fields(TrainConfig)} - stage_specific
    assert {"deterministic", "compile"} <= set(SHARED_TRAIN_FIELDS)
    for stage in (BaselineParams, FinetuneParams):
        config = stage.from_dict({"deterministic": False, "compile": True, "batch": 3}).train_config()
        assert (config.deterministic, config.compile, config.batch) == (False, True, 3)
    finetune = FinetuneParams(weights_dir="w").train_config()
    assert (finetune.weights, finetune.run_dir, finetune.freeze) == ("w/baseline/last.pt", "w/finetune", "backbone")


def test_a_wrong_parameter_type_is_one_line():
    with pytest.raises(DrowsyError, match="^parameters: field 'deterministic' must be bool, got 'no'$"):
        BaselineParams.from_dict({"deterministic": "no"})


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "data").glob("hyp.*.yaml")), ids=lambda p: p.name)
def test_every_hyperparameter_file_loads_as_floats(path):
    hyp = Hyp.load(path)
    assert all(isinstance(v, float) for v in hyp.to_dict().values())
    assert hyp.lr0 > 0 and 0 < hyp.lrf <= 1


def write_hyp(tmp_path, **changes) -> str:
    text = (REPO_ROOT / "data/hyp.scratch-p6.yaml").read_text().splitlines()
    lines = [line for line in text if line.split(":")[0] not in changes]
    lines += [f"{k}: {v}" for k, v in changes.items() if v is not None]
    (tmp_path / "hyp.yaml").write_text("\n".join(lines))
    return str(tmp_path / "hyp.yaml")


def test_hyperparameter_file_errors_name_the_file_and_the_key(tmp_path):
    with pytest.raises(DrowsyError, match=r"hyp\.yaml: missing key\(s\) mosaic$"):
        Hyp.load(write_hyp(tmp_path, mosaic=None))
    with pytest.raises(DrowsyError, match=r"hyp\.yaml: unknown key\(s\) mosiac"):
        Hyp.load(write_hyp(tmp_path, mosiac=1.0))
    with pytest.raises(DrowsyError, match=r"hyp\.yaml: field 'lr0' must be float, got 'fast'"):
        Hyp.load(write_hyp(tmp_path, lr0="fast"))
    assert Hyp.load(write_hyp(tmp_path, label_smoothing=0.1)).label_smoothing == 0.1  # the one optional key
