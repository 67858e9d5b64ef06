import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, make_corpus, run_cli, tiny_settings, write_jsonl
from titlegen.checkpoint import read_state
from titlegen.data import TitleError
from titlegen.train import (CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE, load_trained, resume_settings, train)

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


def test_resume_after_kill_9_follows_the_uninterrupted_run(tmp_path, long_corpus):
    settings = {"epochs": 3, "steps_per_epoch": None, "batch_size": 4, "checkpoint_steps": 1, "shuffle": True,
                "shuffle_buffer": 16, "bucket": True, "bucket_window": 5, "char_size": 16, "hidden_size": 32}
    whole = str(tmp_path / "whole")
    train(tiny_settings(*long_corpus, **settings), whole, log=lambda _: None)

    killed = str(tmp_path / "killed")
    script = KILLED_RUN.format(root=ROOT, tests=os.path.join(ROOT, "tests"), settings=settings)
    process = subprocess.Popen([sys.executable, "-c", script, *long_corpus, killed],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = os.path.join(killed, CHECKPOINT_FILE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:  # kill it in the middle of epoch 2
        if os.path.exists(checkpoint) and (lambda s: (s["epoch"], s["step"]) >= (2, 5))(read_state(checkpoint)):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait(60) == -signal.SIGKILL, "the run ended before it could be killed"
    state = read_state(checkpoint)  # the last good checkpoint loads
    assert state["epoch"] < 3 and not state["done"]

    logs = []
    train(resume_settings(killed), killed, resume=True, log=logs.append)
    assert f"resuming {killed} at epoch {state['epoch']}, step {state['step']} of 24" in logs

    # the same batches with the same weights and optimizer state: the same loss at every step
    whole_steps, resumed_steps = rows(os.path.join(whole, STEPS_FILE)), rows(os.path.join(killed, STEPS_FILE))
    assert [(r["epoch"], r["step"]) for r in resumed_steps] == [(r["epoch"], r["step"]) for r in whole_steps]
    assert len(whole_steps) == 72
    np.testing.assert_allclose([float(r["loss"]) for r in resumed_steps], [float(r["loss"]) for r in whole_steps],
                               rtol=1e-6)
    for a, b in zip(rows(os.path.join(whole, METRICS_FILE)), rows(os.path.join(killed, METRICS_FILE))):
        assert a["epoch"] == b["epoch"]
        np.testing.assert_allclose([float(a["loss"]), float(a["val_loss"])], [float(b["loss"]), float(b["val_loss"])],
                                   rtol=1e-6)
    for w, k in zip(load_trained(whole)[0].get_weights(), load_trained(killed)[0].get_weights()):
        np.testing.assert_allclose(w, k, rtol=1e-5, atol=1e-6)

    with pytest.raises(TitleError, match="finished after epoch 3"):
        train(resume_settings(killed), killed, resume=True, log=lambda _: None)
    with pytest.raises(TitleError, match="batch_size cannot change"):
        resume_settings(killed, batch_size=8)


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
    state = read_state(os.path.join(out, CHECKPOINT_FILE))
    assert 3 <= state["step"] < 100 and state["epoch"] == 1  # saved at the batch it stopped after, not the last 1000th
    assert f"interrupted at epoch 1, step {state['step']}: checkpoint saved" in stderr
    assert "Traceback" not in stderr
    assert len(rows(steps)) == state["step"]

    result = run_cli("train", "--out", out, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {out} at epoch 1, step {state['step']} of 100" in result.stdout
    assert [int(r["step"]) for r in rows(steps)] == list(range(1, 101))
    assert read_state(os.path.join(out, CHECKPOINT_FILE))["done"] == "1 epochs"

    refused = run_cli("train", "--out", out, "--resume", "--batch-size", "4")
    assert refused.returncode == 2 and "only --epochs" in refused.stderr
