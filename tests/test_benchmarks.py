"""The benchmark scripts: the GPU check dry-run on the CPU with a tiny model (it must work the first time a GPU
is lent), the mutation table's counting, and the files the event benchmark writes."""

import importlib.util
import json
import re
import subprocess
import sys

from drowsy.paths import REPO_ROOT


def test_gpu_checks_dry_run_runs_every_check_on_the_cpu_and_skips_only_what_needs_cuda(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checks = {line["check"]: line for line in json.loads(out.read_text())["checks"]}
    statuses = {name: line["status"] for name, line in checks.items()}
    assert statuses == {
        "environment": "skipped",  # the GPU, its architecture against the build's
        "shared memory": "ok",
        "bf16 step": "ok",
        "loader": "ok",
        "training step": "ok",
        "fp16 scaler": "ok",  # with PyTorch's CPU scaler in the dry run
        "determinism": "ok",
        "DDP": "ok",  # gloo on 2 CPU processes
        "inference": "ok",
    }
    assert checks["training step"]["images_per_s"] > 0 and checks["training step"]["timed_steps"] == 4
    assert "with the scaler in last.pt (scale 65536.0), resumed" in checks["fp16 scaler"]["figures"]
    assert (
        "identical weights: True" in checks["DDP"]["figures"]
        and "stopped on rank 1's SIGTERM" in checks["DDP"]["figures"]
    )
    for line in checks.values():  # the printed table: one line per check, as in the JSON
        assert re.search(rf"^{line['check']}\s+{line['status']}\s+", result.stdout, re.MULTILINE), line["check"]


def _mutation_script():
    spec = importlib.util.spec_from_file_location("mutation", REPO_ROOT / "benchmarks" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mutation_table_counts_per_module_and_scores_killed_over_checked(tmp_path):
    mutation = _mutation_script()
    statuses = {
        "drowsy.data.labels.x_read__mutmut_1": "killed",
        "drowsy.data.labels.x_read__mutmut_2": "killed",
        "drowsy.data.labels.x_read__mutmut_3": "survived",
        "drowsy.data.labels.x_read__mutmut_4": "no tests",
        "drowsy.data.labels.x_read__mutmut_5": "timeout",
        "drowsy.data.labels.x_read__mutmut_6": "not checked",
        "drowsy.monitor.state.xǁDriverStateMonitorǁupdate__mutmut_1": "killed",
    }
    listed = {"drowsy.data.labels.x_read__mutmut_3"}
    rows = mutation.table(statuses, listed)
    # module, mutants, killed, survived (no tests counts as survived), explained, timeouts, not run, score
    assert rows == [("data.labels", 6, 2, 2, 1, 1, 1, 2 / 5), ("monitor.state", 1, 1, 0, 0, 0, 0, 1.0)]
    (tmp_path / "MUTANTS.md").write_text(
        "# notes\n- drowsy.data.labels.x_read__mutmut_3: `>` -> `>=`; equivalent\n"
        "not a list line drowsy.data.labels.x_read__mutmut_4\n",
        encoding="utf-8",
    )
    assert mutation.explained(tmp_path / "MUTANTS.md") == listed
    assert mutation.explained(tmp_path / "missing.md") == set()


def test_the_event_benchmark_writes_its_tables_and_each_false_and_missed_event(tmp_path, capsys):
    from drowsy.eval.monitor_benchmark import ClipSpec
    from drowsy.monitor.events import Event

    spec = importlib.util.spec_from_file_location("monitor_events", REPO_ROOT / "benchmarks" / "monitor_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = [Event("phone", 10.0, 16.0, 12.0), Event("yawn", 30.0, 33.0, 31.0)]
    runs = [
        {
            "spec": ClipSpec("story", 60.0, 3, (240, 384)),
            "truth": truth,
            "alert_free": [(50.0, 60.0)],
            "found": {"perfect": list(truth), "model": [Event("phone", 40.0, 45.0, 42.0), truth[1]]},
        }
    ]
    module.print_tables(runs, ["perfect", "model"], tmp_path)
    printed = capsys.readouterr().out
    assert "perfect: false and missed events by clip: none" in printed
    assert "model: false and missed events by clip: {('false', 'story-3-240x384'): 1, ('missed', 'story-3" in printed
    unmatched = (tmp_path / "unmatched.csv").read_text().splitlines()
    assert unmatched[1:] == [
        "model,0,story-3-240x384,false,phone,40.0,45.0",
        "model,1,story-3-240x384,missed,phone,10.0,16.0",
    ]
    assert {p.name for p in tmp_path.iterdir()} == {
        "scores.csv",
        "hard_cases.csv",
        "false_alerts.json",
        "unmatched.csv",
    }
