"""Checkpoints: plain dicts of tensors and Python scalars, written atomically, read with
`torch.load(..., weights_only=True)` so a checkpoint can never run code on load.

Layout (all keys always present):
    model:       state_dict of the training weights (float32)
    ema:         state_dict of the EMA weights (what evaluation and prediction use)
    ema_updates: int
    optimizer:   optimizer.state_dict()
    scaler:      GradScaler state_dict ({} unless CUDA fp16)
    epoch:       epochs completed
    batches_done: batches of the epoch `epoch` already trained (0 at an epoch boundary)
    best_map75:  best validation mAP@0.75 so far (-1 before the first validation)
    model_config: variant name or YAML path given to build_model
    num_classes, in_channels: ints
    class_names: list[str]
    config:      the resolved training configuration (dict of scalars)
    hyp:         the hyperparameters (dict of floats)
    code_version: git commit (with "-dirty") or package version
"""

import os
import pickle
import tempfile
from pathlib import Path

import torch

from drowsy.errors import DrowsyError

REQUIRED_KEYS = ("ema", "model_config", "num_classes", "in_channels", "class_names")


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write to a temporary file in the same folder, flush to disk, then rename over `path`,
    so a crash mid-write never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict:
    """Load a drowsy checkpoint on the CPU; refuse anything that needs arbitrary unpickling."""
    path = Path(path)
    if not path.is_file():
        raise DrowsyError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DrowsyError(
            f"{path}: refused: holds arbitrary Python objects, not a drowsy checkpoint ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise DrowsyError(f"{path}: not a readable checkpoint ({str(err).splitlines()[0][:160]})") from None
    if not isinstance(checkpoint, dict):
        raise DrowsyError(f"{path}: not a drowsy checkpoint (not a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise DrowsyError(f"{path}: not a drowsy checkpoint (missing {', '.join(missing)})")
    return checkpoint


def load_weights(
    model: torch.nn.Module, checkpoint: dict, key: str, path: str | Path, field: str, hint: str = ""
) -> None:
    """`model.load_state_dict(checkpoint[key])`; weights that do not fit the model built (`model.config_name`)
    end in one line naming the file, `field`, the checkpoint's model and the model built, then `hint`."""
    try:
        model.load_state_dict(checkpoint[key])
    except RuntimeError as err:
        raise DrowsyError(
            f"{path}: field '{field}': its weights ('{checkpoint['model_config']}') do not fit model "
            f"'{model.config_name}' ({str(err).splitlines()[0][:120]}){hint}"
        ) from None
