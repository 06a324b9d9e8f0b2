"""Progress: bars where someone watches, one closing line per stage in logs."""

import pytest
from tqdm.auto import tqdm

from drowsy.progress import bars_wanted, log, progress


def test_line_mode_prints_one_closing_line_per_stage(monkeypatch, capsys):
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    assert list(progress(range(5), desc="synth", unit="img")) == [0, 1, 2, 3, 4]
    with progress(total=3, desc="predict", unit="img") as bar:
        bar.update(2)
        bar.set_postfix({"box": "0.1"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("synth: 5 img in ") and lines[1].startswith("predict: 2 img in ")
    assert lines[1].endswith("[box=0.1]")


def test_inner_stages_and_disabled_bars_print_nothing(monkeypatch, capsys):
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    assert list(progress(range(3), desc="epoch 1/3", leave=False)) == [0, 1, 2]
    assert list(progress(range(3), desc="validate", enabled=False)) == [0, 1, 2]
    log("epoch 1/3 loss box 0.1")
    assert capsys.readouterr().out == "epoch 1/3 loss box 0.1\n"


def test_bars_mode_gives_a_tqdm_bar(monkeypatch):
    monkeypatch.setenv("DROWSY_PROGRESS", "bars")
    with progress(range(2), desc="x") as bar:
        assert isinstance(bar, tqdm)


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DROWSY_PROGRESS", "lines")
    assert not bars_wanted()
    monkeypatch.setenv("DROWSY_PROGRESS", "bar")
    with pytest.raises(ValueError, match="DROWSY_PROGRESS must be one of auto, bars, lines, got 'bar'"):
        bars_wanted()
