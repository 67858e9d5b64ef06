"""kill -9 anywhere: one run from the command line, killed at six moments in turn and resumed after
each, ends as the run that was never killed (titlegen/faults.py places the kills)."""
import csv
import json
import os
import signal

import numpy as np
import pytest

import config
from conftest import ROOT, TINY_CONFIG, last_line, make_corpus, train_cli, write_jsonl
from titlegen.runfolder import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, STEPS_FILE, RunFolder
from titlegen.trained import load_trained
from titlegen.settings import load
from titlegen.train import train

TINY = TINY_CONFIG + """BATCH_SIZE = 4
EPOCHS = 3
CHECKPOINT_STEPS = 5
SHUFFLE = True
SHUFFLE_BUFFER = 16
BUCKET = True
BUCKET_WINDOW = 3
"""


def rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_whole(out):
    """Every file a kill can leave behind still reads."""
    if os.path.exists(os.path.join(out, CONFIG_FILE)):
        with open(os.path.join(out, CONFIG_FILE), encoding="utf-8") as f:
            json.load(f)
    if os.path.exists(os.path.join(out, CHECKPOINT_FILE)):
        RunFolder(out).read_state()
    if os.path.exists(os.path.join(out, "model.weights.h5")):
        load_trained(out)


@pytest.mark.multiprocess
def test_kill_9_at_six_moments_and_resume_each_time(tmp_path):
    tiny = tmp_path / "tiny.py"
    tiny.write_text(TINY, encoding="utf-8")
    train_path = write_jsonl(tmp_path / "train.jsonl", make_corpus(48, seed=1))
    dev_path = write_jsonl(tmp_path / "dev.jsonl", make_corpus(8, seed=2))
    out = str(tmp_path / "killed")
    fresh = [str(tiny), "--train", train_path, "--dev", dev_path, "--out", out]
    resume = [str(tiny), "--out", out, "--resume"]

    # during the data scan of a fresh run: nothing is written, so there is nothing to resume
    result = train_cli(fresh, kill_at="scan:30")
    assert result.returncode == -signal.SIGKILL and not os.path.exists(out)
    refused = train_cli(resume)
    assert refused.returncode == 2 and "nothing to resume" in last_line(refused.stderr)

    moments = [(fresh, "step:7"),  # mid-epoch, two batches after the checkpoint at step 5
               (resume, "scan:20"),  # the resumed run's check of the training data
               (resume, "dev:2"),  # the dev pass at the end of epoch 1
               (resume, "epoch_end:1"),  # epoch 1's weights and metrics written, its checkpoint not
               (resume, "checkpoint_write:2")]  # half of a checkpoint (epoch 2, step 5) on disk
    positions = []
    for args, moment in moments:
        result = train_cli(args, kill_at=moment)
        assert result.returncode == -signal.SIGKILL, (moment, result.stderr[-2000:])
        assert_whole(out)
        state = RunFolder(out).read_state()
        positions.append((state.epoch, state.step))
    assert positions == [(1, 5), (1, 5), (1, 10), (1, 10), (2, 0)]

    result = train_cli(resume)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {out} at epoch 2, step 0 of 12" in result.stdout

    whole = str(tmp_path / "whole")
    flags = {"train_path": train_path, "dev_path": dev_path}
    train(load(config, ROOT, [str(tiny)], flags), whole, log=lambda _: None)
    assert rows(os.path.join(out, STEPS_FILE)) == rows(os.path.join(whole, STEPS_FILE))
    assert len(rows(os.path.join(whole, STEPS_FILE))) == 36
    columns = ("epoch", "loss", "val_loss")
    assert [[r[c] for c in columns] for r in rows(os.path.join(out, METRICS_FILE))] == \
        [[r[c] for c in columns] for r in rows(os.path.join(whole, METRICS_FILE))]
    for a, b in zip(load_trained(out)[0].get_weights(), load_trained(whole)[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not [name for name in os.listdir(out) if ".tmp" in name]  # the half checkpoint was replaced
