"""Shared fixtures: a tiny synthetic dataset, prepared once per test session."""

import pytest

from drowsy.data.prepare import prepare_dataset
from drowsy.synth.competition import write_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """40 synthetic 320x180 images prepared into train/val/diet manifests. Returns the prepared folder."""
    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root / "raw", images=40, seed=3, size=(320, 180), progress=False)
    prepare_dataset(root / "raw", root / "prepared", val_size=8, seed=0, progress=False)
    return root / "prepared"
