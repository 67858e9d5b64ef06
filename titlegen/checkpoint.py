"""The resumable state of a training run in one file: weights, optimizer state, and where the run
stands (epoch, step, history) as JSON.

The file is written to a temporary name, flushed to disk, then renamed over the old one, so a
crash or `kill -9` at any moment leaves either the previous checkpoint or the new one, whole.
"""
import json
import os
import zipfile

import numpy as np

from .data import TitleError


def save_checkpoint(path, model, optimizer, state):
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    arrays["state"] = np.array(json.dumps(state, ensure_ascii=False))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself reaches the disk
    finally:
        os.close(folder)


def read_state(path):
    """The run's position and history, without touching any model."""
    with _open(path) as data:
        return json.loads(str(data["state"]))


def load_checkpoint(path, model, optimizer):
    """Restore the model's weights and the optimizer's state (built beforehand); return the state."""
    with _open(path) as data:
        weights = [data[f"weight_{i}"] for i in range(len(model.get_weights()))]
        variables = optimizer.variables
        if f"weight_{len(weights)}" in data or len(data.files) != len(weights) + len(variables) + 1:
            raise TitleError(f"{path} does not fit this model and optimizer ({len(data.files) - 1} arrays, "
                             f"expected {len(weights) + len(variables)}); was it written by another run?")
        model.set_weights(weights)
        for i, v in enumerate(variables):
            v.assign(data[f"optimizer_{i}"])
        return json.loads(str(data["state"]))


def _open(path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TitleError(f"{path}: no checkpoint to resume from") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise TitleError(f"{path}: not a readable checkpoint ({e}); start again with --overwrite") from None
