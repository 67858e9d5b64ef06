import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, make_corpus, run_cli, tiny_settings, write_jsonl
from titlegen.data import TitleError
from titlegen.runfolder import CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE, RunFolder
from titlegen.trained import load_trained
from titlegen.train import resume_settings, train

KILLED_RUN = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from conftest import tiny_settings
from titlegen.train import train
train(tiny_settings(*sys.argv[1:3], **{settings!r}), sys.argv[3], log=lambda _: None)
"""


def rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def long_corpus(tmp_path):
    return (write_jsonl(tmp_path / "train.jsonl", make_corpus(96, seed=1)),
            write_jsonl(tmp_path / "dev.jsonl", make_corpus(8, seed=2)))


def assert_same_run(a, b):
    """Two run folders hold the same run: every batch's loss, every epoch's losses and the best
    weights, bitwise (steps.csv's 9 significant digits are a float32 exactly)."""
    assert rows(os.path.join(a, STEPS_FILE)) == rows(os.path.join(b, STEPS_FILE))
    columns = ("epoch", "loss", "val_loss")
    assert [[r[c] for c in columns] for r in rows(os.path.join(a, METRICS_FILE))] == \
        [[r[c] for c in columns] for r in rows(os.path.join(b, METRICS_FILE))]
    for w, k in zip(load_trained(a)[0].get_weights(), load_trained(b)[0].get_weights(), strict=True):
        np.testing.assert_array_equal(w, k)


RESUMED = {"epochs": 3, "steps_per_epoch": None, "batch_size": 4, "checkpoint_steps": 1, "shuffle": True,
           "shuffle_buffer": 16, "bucket": True, "bucket_window": 5, "char_size": 16, "hidden_size": 32}


@pytest.mark.slow
def test_two_uninterrupted_runs_are_equal(tmp_path, long_corpus):
    """What the kill -9 test asks of a resumed run holds first between two plain ones."""
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    for out in (first, second):
        train(tiny_settings(*long_corpus, **{**RESUMED, "epochs": 2}), out, log=lambda _: None)
    assert_same_run(first, second)


def test_resume_after_kill_9_follows_the_uninterrupted_run(tmp_path, long_corpus):
    settings = RESUMED
    whole = str(tmp_path / "whole")
    train(tiny_settings(*long_corpus, **settings), whole, log=lambda _: None)

    killed = str(tmp_path / "killed")
    script = KILLED_RUN.format(root=ROOT, tests=os.path.join(ROOT, "tests"), settings=settings)
    process = subprocess.Popen([sys.executable, "-c", script, *long_corpus, killed],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = os.path.join(killed, CHECKPOINT_FILE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:  # kill it in the middle of epoch 2
        if os.path.exists(checkpoint) and (lambda s: (s.epoch, s.step) >= (2, 5))(RunFolder(killed).read_state()):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait(60) == -signal.SIGKILL, "the run ended before it could be killed"
    state = RunFolder(killed).read_state()  # the last good checkpoint loads
    assert state.epoch < 3 and not state.done

    logs = []
    train(resume_settings(killed), killed, resume=True, log=logs.append)
    assert f"resuming {killed} at epoch {state.epoch}, step {state.step} of 24" in logs

    # the same batches with the same weights and optimizer state: the same loss at every step, bit for bit
    assert_same_run(whole, killed)
    assert len(rows(os.path.join(whole, STEPS_FILE))) == 72

    with pytest.raises(TitleError, match="finished after epoch 3"):
        train(resume_settings(killed), killed, resume=True, log=lambda _: None)
    with pytest.raises(TitleError, match="batch_size cannot change"):
        resume_settings(killed, batch_size=8)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", make_corpus(200, seed=3))
    out = str(tmp_path / "model")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", "--train", train_path,
                                "--no-dev", "--out", out, "--epochs", "1", "--batch-size", "2",
                                "--checkpoint-steps", "1000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    steps = os.path.join(out, STEPS_FILE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(steps) and os.path.getsize(steps) > len("epoch,step,loss\n") + 3 * 12:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    state = RunFolder(out).read_state()
    assert 3 <= state.step < 100 and state.epoch == 1  # saved at the batch it stopped after, not the last 1000th
    assert f"interrupted at epoch 1, step {state.step}: checkpoint saved" in stderr
    assert "Traceback" not in stderr
    assert len(rows(steps)) == state.step

    result = run_cli("train", "--out", out, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {out} at epoch 1, step {state.step} of 100" in result.stdout
    assert [int(r["step"]) for r in rows(steps)] == list(range(1, 101))
    assert RunFolder(out).read_state().done == "1 epochs"

    refused = run_cli("train", "--out", out, "--resume", "--batch-size", "4")
    assert refused.returncode == 2 and "only --epochs" in refused.stderr
