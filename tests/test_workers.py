"""Two worker processes on this machine (MultiWorkerMirroredStrategy over TF_CONFIG), trained from
the command line as users would on two machines; and a worker killed with kill -9."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import config
from conftest import ROOT, TINY_CONFIG, make_corpus, write_jsonl
from titlegen.cluster import local_tf_configs
from titlegen.runfolder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, STEPS_FILE, VOCAB_FILE, WEIGHTS_FILE,
                                RunFolder)
from titlegen.trained import load_trained
from titlegen.settings import load
from titlegen.train import train

RUN_FILES = {VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE}


def start_workers(args, tmp, tf_configs):
    """`python seq2seq_title.py train ARGS --strategy multiworker` as worker 0 (the chief) and 1."""
    processes = []
    for index, tf_config in enumerate(tf_configs):
        scratch = os.path.join(tmp, f"tmp{index}")  # where a worker would leave temporary files
        os.makedirs(scratch, exist_ok=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": scratch,
               "TF_CONFIG": tf_config}
        processes.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", *args,
                                           "--strategy", "multiworker"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    return processes


def losses(folder):
    with open(os.path.join(folder, STEPS_FILE), encoding="utf-8") as f:
        return [float(line.split(",")[2]) for line in list(f)[1:]]


def single_process(tiny, args, out):
    """The same run in this process, on one device: the reference."""
    flags = {"train_path": args[0], "dev_path": args[1], **args[2]}
    train(load(config, ROOT, [tiny], flags), out, log=lambda _: None)
    return out


def assert_same_run(got, expected):
    np.testing.assert_allclose(losses(got), losses(expected), rtol=1e-5)
    for a, b in zip(load_trained(got)[0].get_weights(), load_trained(expected)[0].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY_CONFIG, encoding="utf-8")
    return str(path)


@pytest.mark.multiprocess
def test_two_workers_train_as_one_process(tmp_path, tiny):
    train_path = write_jsonl(tmp_path / "train.jsonl", make_corpus(48, seed=1))
    dev_path = write_jsonl(tmp_path / "dev.jsonl", make_corpus(8, seed=2))
    out = str(tmp_path / "two")
    workers = start_workers([tiny, "--train", train_path, "--dev", dev_path, "--out", out, "--epochs", "2",
                             "--batch-size", "16"], str(tmp_path), local_tf_configs(2))
    for process in workers:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    one = single_process(tiny, (train_path, dev_path, {"epochs": 2, "batch_size": 16}), str(tmp_path / "one"))
    assert len(losses(out)) == 6  # 3 batches of 16, two epochs: each worker took 8 articles of every batch
    assert_same_run(out, one)
    assert set(os.listdir(out)) == RUN_FILES  # the chief's files, whole, and nothing else
    assert os.listdir(tmp_path / "tmp0") == [] and os.listdir(tmp_path / "tmp1") == []  # nothing left elsewhere


@pytest.mark.multiprocess
@pytest.mark.parametrize("killed", [0, 1], ids=["chief", "other"])
def test_a_killed_worker_stops_the_other_and_resume_finishes(tmp_path, tiny, killed):
    train_path = write_jsonl(tmp_path / "train.jsonl", make_corpus(160, seed=1))
    dev_path = write_jsonl(tmp_path / "dev.jsonl", make_corpus(8, seed=2))
    out = str(tmp_path / "two")
    args = [tiny, "--train", train_path, "--dev", dev_path, "--out", out, "--epochs", "2", "--batch-size", "4",
            "--checkpoint-steps", "5"]
    workers = start_workers(args, str(tmp_path), local_tf_configs(2))
    steps = os.path.join(out, STEPS_FILE)
    deadline = time.time() + 240
    while time.time() < deadline and not (os.path.exists(steps) and len(open(steps).readlines()) > 13):
        assert all(p.poll() is None for p in workers), [p.communicate()[1][-2000:] for p in workers]
        time.sleep(0.05)
    workers[killed].send_signal(signal.SIGKILL)
    killed_at = time.time()
    survivor = workers[1 - killed]
    _, stderr = survivor.communicate(timeout=120)
    assert time.time() - killed_at < 60  # it noticed, and did not hang
    assert workers[killed].wait(30) == -signal.SIGKILL
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert survivor.returncode == 2, stderr[-3000:]
    assert last.startswith("error: a training process stopped answering") and "train --resume" in last, last
    state = RunFolder(out).read_state()  # whole: the last checkpoint loads
    assert state.epoch == 1 and state.step % 5 == 0 and not state.done

    workers = start_workers([tiny, "--out", out, "--resume"], str(tmp_path), local_tf_configs(2))
    for process in workers:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    one = single_process(tiny, (train_path, dev_path, {"epochs": 2, "batch_size": 4, "checkpoint_steps": 5}),
                         str(tmp_path / "one"))
    assert len(losses(out)) == 80
    assert_same_run(out, one)
    assert set(os.listdir(out)) == RUN_FILES
