"""The closing summary of run_all.sh reads back what the chain wrote, test score included."""

import json

import yaml

from drowsy.viz.summary import main


def test_summary_shows_validation_and_test_scores(tmp_path, capsys):
    per_class = {"face": 0.9, "phone": 0.5}
    run = tmp_path / "weights" / "baseline"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        json.dumps({"epoch": 0, "loss_box": 0.1})
        + "\n"
        + json.dumps({"epoch": 1, "loss_box": 0.1, "mAP50": 0.8, "mAP75": 0.7, "mAP50_95": 0.6, "per_class": per_class})
        + "\n"
    )
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "ensemble_scores.json").write_text(
        json.dumps({"test: submission": {"mAP50": 0.95, "mAP75": 0.61, "per_class_AP75": per_class}})
    )
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"weights_dir": str(tmp_path / "weights"), "out_dir": str(out)}))
    main([str(preset), "--seconds", "90"])
    printed = capsys.readouterr().out
    assert "AP@0.75 per class (validation, test):" in printed and "total time: 1.5 min" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["stages"]["baseline"]["mAP75"] == 0.7
    assert report["stages"]["test: submission"]["mAP75"] == 0.61
