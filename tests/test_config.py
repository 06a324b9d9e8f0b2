"""Typed configurations: a wrong type in one line, hyperparameter files, the monitor's thresholds file and
run settings."""

import dataclasses
import json

import pytest

from drowsy.config import Hyp, MonitorConfig, MonitorRun, load_yaml
from drowsy.errors import DrowsyError
from drowsy.notebooks import BaselineParams
from drowsy.paths import REPO_ROOT


def test_config_file_matches_defaults_and_rejects_unknown_keys(tmp_path):
    assert MonitorConfig.from_yaml("data/monitor.yaml") == MonitorConfig()
    values = load_yaml("data/monitor.yaml")
    bad = tmp_path / "monitor.yaml"
    bad.write_text(json.dumps({**values, "perclos_treshold": 0.2}))
    with pytest.raises(DrowsyError, match="monitor.yaml: unknown key.*perclos_treshold"):
        MonitorConfig.from_yaml(bad)
    bad.write_text(json.dumps({**values, "phone_off": 0.9}))
    with pytest.raises(DrowsyError, match="monitor.yaml: field 'phone_off'"):
        MonitorConfig.from_yaml(bad)
    with pytest.raises(DrowsyError, match="field 'blink_max_s'"):
        dataclasses.replace(MonitorConfig(), blink_max_s=3.0).check()
    with pytest.raises(DrowsyError, match=r"field 'face_min_score': must be in \[0, 1\), got 1.5"):
        dataclasses.replace(MonitorConfig(), face_min_score=1.5).check()
    with pytest.raises(
        DrowsyError, match="field 'face_min_score': need min_score <= face_min_score, got 0.05 and 0.01"
    ):
        dataclasses.replace(MonitorConfig(), face_min_score=0.01).check()


def test_a_monitor_run_takes_a_path_or_a_camera_index_and_names_a_bad_field():
    assert MonitorRun.from_dict({"source": 0}).source == 0
    run = MonitorRun.from_dict({"source": "clip.mp4", "img_size": 320, "max_frames": None})
    assert (run.source, run.img_size, run.batch, run.max_frames) == ("clip.mp4", 320, 4, None)
    with pytest.raises(DrowsyError, match="^monitor run: unknown key.*img; known: .*img_size"):
        MonitorRun.from_dict({"source": 0, "img": 320}, "monitor run")
    with pytest.raises(DrowsyError, match="^monitor run: field 'batch' must be int, got '4'$"):
        MonitorRun.from_dict({"source": 0, "batch": "4"}, "monitor run")


def test_a_wrong_parameter_type_is_one_line():
    with pytest.raises(DrowsyError, match="^parameters: field 'deterministic' must be bool, got 'no'$"):
        BaselineParams.from_dict({"deterministic": "no"})


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "data").glob("hyp.*.yaml")), ids=lambda p: p.name)
def test_every_hyperparameter_file_loads_as_floats(path):
    hyp = Hyp.load(path)
    values = hyp.to_dict()
    assert values.pop("copy_paste_classes") == "phone,cigar" and all(isinstance(v, float) for v in values.values())
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
