"""Every notebook runs headless with the smoke preset, in order, so a notebook can never rot.

The chain writes only under tmp_path: the preset's paths are overridden there.
"""

import json
from pathlib import Path

import papermill
import pytest

from drowsy.config import load_yaml
from drowsy.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def smoke_parameters(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("smoke")
    parameters = load_yaml(REPO_ROOT / "data/presets/smoke.yaml")
    for key in ("raw_dir", "test_dir", "test_labels", "prepared_dir", "weights_dir", "out_dir"):
        parameters[key] = str(root / Path(parameters[key]).relative_to(Path(parameters[key]).parts[0]))
    return parameters


def test_notebooks_are_committed_clean():
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{notebook.name} has outputs"
        assert "parameters" in code[0]["metadata"].get("tags", []), f"{notebook.name}: first code cell not tagged"
        assert not any(line.lstrip().startswith(("def ", "class ")) for c in code for line in "".join(c["source"]).splitlines()), \
            f"{notebook.name} defines a function or class: it belongs in the package"


@pytest.mark.filterwarnings("ignore:Passed unknown parameter")
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_with_smoke_preset(notebook, smoke_parameters, tmp_path_factory):
    # module-scoped parameters and name order make 01 -> 06 run as one chain on the same files
    out = Path(smoke_parameters["out_dir"]) / "notebooks" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(notebook), str(out), parameters=smoke_parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path_factory.getbasetemp()))
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_missing_input_names_the_notebook_that_makes_it(tmp_path):
    notebook = REPO_ROOT / "notebooks/03_train_baseline.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="run notebooks/02_build_diet.ipynb"):
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"),
                                   parameters={"prepared_dir": str(tmp_path / "nothing"), "epochs": 1},
                                   kernel_name="python3", progress_bar=False)
