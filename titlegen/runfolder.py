"""The run folder: every file `train` writes and `generate`, `evaluate`, `export` and `--resume`
read, saved and loaded here alone. Training and decoding both stand on this module; it imports
neither (the model is rebuilt through `model.build_model`).

    vocab.json        the vocabulary, its tokenizer and the data that built it
    config.json       the settings (data, model, train, decode), the per-epoch history, the best epoch
    model.weights.h5  the best weights so far
    checkpoint.npz    weights, optimizer state, epoch and step: what `train --resume` continues from
    metrics.csv       one row per epoch
    steps.csv         the loss of every batch

An ensemble's folder (MEMBERS > 1) holds config.json, with the ensemble's settings and the names
of its members' folders, and those folders, member_1 ... member_N: each a run folder as above,
with train.log, the member's output, beside its files.

Every file but steps.csv (appended line by line) is written to a temporary name and renamed (the
checkpoint also flushed to disk first), so a crash or `kill -9` at any moment leaves the previous
version or the new one, whole. An older config.json is read as it was meant (`upgraded`, `with_legacy`).
"""
import csv
import io
import itertools
import json
import os
import zipfile

import numpy as np

from .data import Vocab
from .files import replacing, write_json
from .errors import TitleError
from .faults import kill_point
from .runstate import RunState
from .settings import FIELDS, LEGACY, RUN, Settings

VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE = "vocab.json", "config.json", "model.weights.h5"
CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE = "checkpoint.npz", "metrics.csv", "steps.csv"
LOG_FILE = "train.log"  # an ensemble member's output
FORMAT = 2  # config.json's layout: 2 = settings in groups; before it, one flat dict
MEMBER_FOLDER = "member_{}"  # an ensemble's members, numbered from 1, each a run folder of its own


class RunFolder:
    """One run's folder: its files by name, saved and loaded. write=False (every worker of several
    but the chief) reads it and writes nothing: each save is skipped."""

    def __init__(self, path, write=True):
        self.path, self.write = path, write

    def file(self, name):
        return os.path.join(self.path, name)

    def check_free(self, overwrite, resume):
        """A fresh run (neither overwrite nor resume) may not replace the model or run already here
        (an ensemble's included)."""
        held = any(os.path.exists(self.file(n)) for n in (WEIGHTS_FILE, CHECKPOINT_FILE)) or self.holds_ensemble()
        if not resume and not overwrite and self.write and held:
            raise TitleError(f"{self.path} already holds a trained model or a run; pass --resume to continue it, "
                             "--overwrite to replace it, or --out DIR to train into another folder")

    def holds_ensemble(self):
        """Whether config.json here is an ensemble's."""
        if not os.path.exists(self.file(CONFIG_FILE)):
            return False
        with open(self.file(CONFIG_FILE), encoding="utf-8") as f:
            return "members" in json.load(f)

    def members(self, n):
        """The run folders of an ensemble of n members."""
        return [RunFolder(self.file(MEMBER_FOLDER.format(i)), self.write) for i in range(1, n + 1)]

    def write_ensemble(self, settings, vocab=None):
        """config.json of an ensemble: its settings, its members' folders and (once they have one)
        their vocabulary's fingerprint."""
        if self.write:
            os.makedirs(self.path, exist_ok=True)
            write_json(self.file(CONFIG_FILE), {
                "format": FORMAT, "settings": settings.to_dict(RUN),
                "members": [os.path.basename(m.path) for m in self.members(settings.train.members)],
                "vocab_fingerprint": vocab.fingerprint if vocab else None})

    def start(self, vocab=None):
        """Make the folder for a fresh run, removing a replaced run's files; save its vocabulary."""
        if not self.write:
            return
        os.makedirs(self.path, exist_ok=True)
        for name in (WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE):
            if os.path.exists(self.file(name)):
                os.remove(self.file(name))
        if vocab is not None:
            vocab.save(self.file(VOCAB_FILE))

    # -- vocabulary and settings

    def load_vocab(self):
        return Vocab.load(self.file(VOCAB_FILE))

    def write_record(self, settings, vocab, best=None, history=(), skipped=None):
        """config.json: the settings, the vocabulary's fingerprint, the best epoch, the history.
        Returns what it wrote."""
        record = {"format": FORMAT, "settings": settings.to_dict(RUN), "vocab_fingerprint": vocab.fingerprint,
                  "best": best, "history": list(history), "skipped": skipped}
        if self.write:
            write_json(self.file(CONFIG_FILE), record)
        return record

    def read_record(self):
        """config.json as written now (an older layout converted): (settings, record)."""
        with open(self.file(CONFIG_FILE), encoding="utf-8") as f:
            record = json.load(f)
        if record.get("format", 1) > FORMAT:
            raise TitleError(f"{self.file(CONFIG_FILE)} was written by a newer version of seq2seq-title "
                             f"(format {record['format']}); update this copy")
        if "format" not in record:
            record = {**record, "format": FORMAT, "settings": upgraded(record["settings"], record["model"])}
        record = {**record, "settings": with_legacy(record["settings"])}
        try:
            settings = Settings.from_dict(record["settings"])
        except TitleError as e:
            raise TitleError(f"{self.file(CONFIG_FILE)}: {e}; retrain, or restore the file") from None
        return settings, record

    # -- weights and checkpoint

    def save_weights(self, model):
        if not self.write:
            return
        path = self.file(WEIGHTS_FILE)
        with replacing(path, path[:-len(".weights.h5")] + ".tmp.weights.h5") as tmp:  # Keras insists on the suffix
            model.save_weights(tmp)

    def save_checkpoint(self, model, optimizer, state):
        """checkpoint.npz: weights, optimizer state, random generators' states and where the run
        stands (`state`, a RunState, as JSON), flushed to disk before it is renamed into place."""
        if not self.write:
            return
        arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
        arrays.update({f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
        arrays.update({f"random_{i}": np.asarray(v.numpy()) for i, v in enumerate(random_states(model))})
        arrays["state"] = np.array(json.dumps(state.to_dict(), ensure_ascii=False))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getbuffer()
        with replacing(self.file(CHECKPOINT_FILE)) as tmp, open(tmp, "wb") as f:
            f.write(data[:len(data) // 2])
            kill_point("checkpoint_write")  # the tests' kill -9 with half a checkpoint written
            f.write(data[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())
        folder = os.open(os.path.abspath(self.path), os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself reaches the disk
        finally:
            os.close(folder)

    def read_state(self):
        """The run's position and history (a RunState), without touching any model."""
        with self._checkpoint() as data:
            return RunState.from_dict(json.loads(str(data["state"])))

    def load_checkpoint(self, model, optimizer):
        """Restore the model's weights and the optimizer's state (built beforehand); return the state."""
        with self._checkpoint() as data:
            weights = [data[f"weight_{i}"] for i in range(len(model.get_weights()))]
            variables, randoms = optimizer.variables, random_states(model)
            expected = len(weights) + len(variables) + len(randoms)
            if f"weight_{len(weights)}" in data or len(data.files) != expected + 1:
                raise TitleError(f"{self.file(CHECKPOINT_FILE)} does not fit this model and optimizer "
                                 f"({len(data.files) - 1} arrays, expected {expected}); was it written by another run?")
            model.set_weights(weights)
            for i, v in enumerate(variables):
                v.assign(data[f"optimizer_{i}"])
            for i, v in enumerate(randoms):
                v.assign(data[f"random_{i}"])
            return RunState.from_dict(json.loads(str(data["state"])))

    def _checkpoint(self):
        path = self.file(CHECKPOINT_FILE)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise TitleError(f"{path}: no checkpoint to resume from") from None
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise TitleError(f"{path}: not a readable checkpoint ({e}); start again with --overwrite") from None

    # -- metrics

    def write_metrics(self, history):
        """metrics.csv: one row per epoch, its number, losses, dev ROUGE-L and readability, learning rate (with
        LR_PATIENCE), seconds and speed."""
        if not self.write:
            return
        keys = list(dict.fromkeys(k for h in history for k in h))  # as the epochs logged them
        columns = ([c for c in ("epoch", "stage", "loss") if c in keys] + [c for c in keys if c.startswith("val_")]
                   + [c for c in ("learning_rate", "seconds", "articles_per_s") if c in keys])
        with replacing(self.file(METRICS_FILE)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)

    def open_steps(self, keep):
        """steps.csv, written line by line (a crash loses no finished batch), holding its header and
        the first `keep` batches' lines: a resumed run drops what the interrupted one wrote after
        its checkpoint. Not writing: a file that keeps nothing."""
        if not self.write:
            return open(os.devnull, "w", encoding="utf-8")
        lines = ["epoch,step,loss\n"]
        if keep:
            with open(self.file(STEPS_FILE), encoding="utf-8") as f:
                lines = list(itertools.islice(f, keep + 1))
        f = open(self.file(STEPS_FILE), "w", encoding="utf-8", buffering=1)
        f.writelines(lines)
        return f


def upgraded(flat, model):
    """Settings groups from the first config.json layout: one flat dict, and the model's arguments
    beside it (copy_extra was always maxlen)."""
    values = {**{k: v for k, v in flat.items() if k in FIELDS}, **{k: v for k, v in model.items() if k in FIELDS}}
    groups = {}
    for name, value in values.items():
        groups.setdefault(FIELDS[name], {})[name] = value
    return groups


def with_legacy(groups):
    """Settings groups as this version stores them (RUN): a field stored in another group moves to
    its own, one of no stored group is dropped (GENERATE_BATCH_SIZE and the SERVE_ settings were
    stored in "decode", and then in "serve", before the serving command alone owned them), and
    those added since the run was written are filled in as it ran (settings.LEGACY: each such
    field's `legacy` value)."""
    placed = [(FIELDS[k], k, v) for k, v in LEGACY.items()]
    placed += [(FIELDS.get(k, name), k, v) for name, group in groups.items() for k, v in group.items()]
    regrouped = {}
    for name, key, value in placed:  # the stored value after LEGACY's
        if name in RUN:
            regrouped.setdefault(name, {})[key] = value
    return regrouped


def random_states(model):
    """The state of every random generator in the model (dropout's): what the next draw depends on."""
    return [layer.seed_generator.state for layer in model.layers if hasattr(layer, "seed_generator")]
