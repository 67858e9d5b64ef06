"""Ensembles (MEMBERS > 1): the mean of the members' probabilities, by hand and through both
decoders and export; `train --members N` training each member as `train --seed` would."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from keras import ops

from conftest import (ROOT, TINY_CONFIG, compile_model, decoding, last_line, make_corpus, model_settings, run_cli,
                      slow_but, titler_of, write_jsonl)
from titlegen.data import END, START, TitleError, Vocab, encode_example, pad, padded
from titlegen.decoders import IncrementalDecoder, NaiveDecoder
from titlegen.ensemble import Ensemble, mean_probs
from titlegen.export import export
from titlegen.train_ensemble import machine_cores, shares
from titlegen.model import build_model, model_inputs
from titlegen.runfolder import RunFolder
from titlegen.trained import load_trained
from titlegen.search import BeamSearch

MAXLEN, MAX_LEN = 24, 8
ARTICLES = ["春夏秋冬山水日月", "风雨花草" * 5, "山", "草花雨风月日水山冬秋夏春", "亮春夏晶秋冬亮山水"]


def trained(seed, version="2018", copy=False):
    """A tiny model trained a few steps from its own seed: (model, vocab, its settings)."""
    keras.utils.set_random_seed(seed)
    rows = make_corpus(64, seed=5)
    vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), 1)
    settings = model_settings(len(vocab), char_size=16, hidden_size=32, version=version, copy=copy, maxlen=MAXLEN)
    model = compile_model(build_model(settings), 1e-2)
    for i in range(0, 64, 16):
        model.train_on_batch(*model_inputs(padded([encode_example(vocab, r["title"], r["content"], MAXLEN, copy)
                                                   for r in rows[i:i + 16]])))
    return model, vocab, settings


@pytest.fixture(scope="module", ids=str, params=slow_but((("2019", True),), (("2018", False),), (("2018", True),),
                                                         (("2019", True),)))
def pair(request):
    """Two models of one vocabulary and settings from two seeds, that vocabulary and those settings."""
    version, copy = request.param
    (a, vocab, settings), (b, _, _) = trained(1, version, copy), trained(2, version, copy)
    return a, b, vocab, settings


def test_mean_probs_by_hand():
    got = mean_probs([ops.convert_to_tensor([[0.6, 0.4], [1.0, 0.0]]), ops.convert_to_tensor([[0.2, 0.8], [0.0, 1.0]]),
                      ops.convert_to_tensor([[0.1, 0.9], [0.5, 0.5]])])
    np.testing.assert_allclose(ops.convert_to_numpy(got), [[0.3, 0.7], [0.5, 0.5]], rtol=1e-6)


class SetModel:
    """A member whose next-id probabilities are set by hand, step by step (one article, one row per
    beam), with a model's decoding interface."""
    settings, max_title_len = None, 5

    def __init__(self, steps):
        self.steps = np.array(steps, "float32")  # (steps, V)

    def encode(self, inputs):
        return {"rows": ops.zeros((1, 1))}

    def start_cache(self, memory, rows):
        return {"t": ops.zeros((rows,), "int32")}

    def call_with_cache(self, last, cache, memory):
        return ops.take(self.steps, cache["t"], axis=0), {"t": cache["t"] + 1}


def test_beam_search_follows_the_mean_not_either_member():
    """Ids 4 (a) and 5 (b). Member A: a 0.6, b 0.4; member B: a 0, b 1; both then END. Greedy
    search takes a with A alone, b with the ensemble (mean: a 0.3, b 0.7), scored log 0.7 + log 1."""
    first_a, first_b, then_end = [0, 0, 0, 0, 0.6, 0.4], [0, 0, 0, 0, 0.0, 1.0], [0, 0, 0, 1.0, 0, 0]
    a, b = SetModel([first_a, then_end, then_end]), SetModel([first_b, then_end, then_end])

    def search(model):  # one article
        def next_probs(yid, t, cache, memory):
            return model.call_with_cache(yid[:, t], cache, memory)

        memory = model.encode({"article": np.zeros((1, 1), "int32")})
        ids, lengths, scores = BeamSearch(next_probs, decoding(topk=1, max_title_len=5))(
            memory, model.start_cache(memory, 1), np.zeros((1, 1), "int32"))
        return list(ids[0][:lengths[0]]), float(scores[0])

    assert search(a)[0] == [START, 4, END]
    ids, score = search(Ensemble([a, b]))
    assert ids == [START, 5, END]
    np.testing.assert_allclose(score, np.log(0.7 + 1e-6) + np.log(1.0 + 1e-6), rtol=1e-6)


def test_a_step_is_the_mean_of_the_members_steps(pair):
    a, b, vocab, settings = pair
    ensemble = Ensemble([a, b])
    x = pad([vocab.encode(t, MAXLEN) for t in ARTICLES[:2]])
    inputs = {"article": x, **({"article_extended": x} if settings.copy else {})}
    k, last = 2, ops.convert_to_tensor([START] * 4)
    memory = ensemble.encode(inputs)
    probs, cache = ensemble.call_with_cache(last, ensemble.start_cache(memory, 4), memory)
    alone = [ops.convert_to_numpy(m.call_with_cache(last, m.start_cache(m.encode(inputs), 4), m.encode(inputs))[0])
             for m in (a, b)]
    np.testing.assert_allclose(ops.convert_to_numpy(probs), (alone[0] + alone[1]) / 2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # the members differ: a real mean
    assert len(cache) == 2 and k * 2 == probs.shape[0]


def test_both_decoders_give_the_ensembles_titles(pair):
    """The naive decoder (the members' whole models, averaged) and the incremental one (their steps,
    averaged): the same titles and scores. And an ensemble of one model is that model."""
    a, b, vocab, _ = pair
    both = Ensemble([a, b])
    naive = titler_of(both, vocab, "naive", 3, MAX_LEN)
    incremental = titler_of(both, vocab, "incremental", 3, MAX_LEN)
    titles = incremental(ARTICLES)
    assert naive(ARTICLES) == titles
    assert titler_of(Ensemble([a]), vocab, "incremental", 3, MAX_LEN)(ARTICLES) == \
        titler_of(a, vocab, "incremental", 3, MAX_LEN)(ARTICLES)
    inputs = incremental.encode(ARTICLES)[0]
    options = decoding(topk=3, max_title_len=MAX_LEN)
    np.testing.assert_allclose(NaiveDecoder(both, options).search(inputs)[1],
                               IncrementalDecoder(both, options).search(inputs)[1], rtol=1e-5)


@pytest.mark.slow
def test_exported_ensemble_writes_its_titles(tmp_path):
    from test_export import served

    (a, vocab, _), (b, _, _) = trained(1, "2018", True), trained(2, "2018", True)
    titler = titler_of(Ensemble([a, b]), vocab, "incremental", 3, MAX_LEN)
    path = export(titler, str(tmp_path / "exported"))
    assert served(path, ARTICLES, tmp_path)["title"] == titler(ARTICLES)


def test_shares():
    assert shares(2, [0, 1]) == [([0], None), ([1], None)]
    assert shares(2, [0, 1, 2, 3, 4]) == [([0, 1], None), ([2, 3, 4], None)]
    assert shares(3, [0, 1]) == [([0, 1], 1)] * 3  # more members than cores: one thread each, all at once
    assert shares(2, [5]) == [([5], 1)] * 2


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    """`train --members 2` for two short epochs on a tiny corpus, through the command line."""
    folder = tmp_path_factory.mktemp("ensemble")
    write_jsonl(folder / "train.jsonl", make_corpus(48, seed=1))
    write_jsonl(folder / "dev.jsonl", make_corpus(8, seed=2))
    (folder / "tiny.py").write_text(TINY_CONFIG, encoding="utf-8")
    args = [str(folder / "tiny.py"), "--train", str(folder / "train.jsonl"), "--dev", str(folder / "dev.jsonl"),
            "--epochs", "2", "--steps-per-epoch", "2", "--copy"]
    result = run_cli("train", *args, "--members", "2", "--out", str(folder / "ens"))
    assert result.returncode == 0, result.stderr
    return folder, args, result


def train_alone(args, seed, cores, out):
    """`train ARGS --seed SEED --out OUT` on those cores; returns OUT."""
    alone = subprocess.run([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", *args, "--seed", str(seed),
                            "--out", str(out)], capture_output=True, text=True, timeout=300,
                           preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert alone.returncode == 0, alone.stderr
    return out


def assert_same_run(a, b):
    """Two run folders with the same batch losses and the same weights, bit for bit."""
    assert (a / "steps.csv").read_text() == (b / "steps.csv").read_text()
    for got, want in zip(load_trained(str(a))[0].get_weights(), load_trained(str(b))[0].get_weights()):
        np.testing.assert_array_equal(got, want)


def test_each_member_trains_as_train_with_its_seed(ensemble_run):
    """member_i is `train --seed SEED + i - 1` on the same cores: the same losses and weights, bit for bit."""
    folder, args, result = ensemble_run
    assert "[member_2] epoch 2:" in result.stdout and "generate --model" in result.stdout
    cores, threads = shares(2, machine_cores())[1]
    group = cores[:1] if threads else cores  # a member with one thread computes what one core does
    assert_same_run(folder / "ens" / "member_2", train_alone(args, 8, group, folder / "alone"))
    seeds = [json.loads((folder / "ens" / f"member_{i}" / "config.json").read_text())["settings"]["train"]["seed"]
             for i in (1, 2)]
    assert seeds == [7, 8]


@pytest.mark.multiprocess
def test_more_members_than_cores_start_at_once_with_one_thread_each(ensemble_run, tmp_path):
    """Three members on two cores (or on one): all three train at once, and member_2, with one
    thread on both cores, writes the losses and weights of member_2 on a core of its own."""
    folder, args, _ = ensemble_run
    cores = machine_cores()[:2]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", *args, "--members", "3",
                             "--out", str(tmp_path / "ens")], capture_output=True, text=True, timeout=300,
                            preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert result.returncode == 0, result.stderr
    where = f"CPU core{'s' if len(cores) > 1 else ''} {', '.join(map(str, cores))} with one thread"
    assert [line for line in result.stdout.splitlines() if where in line] == [
        f"member_{i}: seed {6 + i}, started on {where}; its output is in {tmp_path / 'ens' / f'member_{i}' / 'train.log'}"
        for i in (1, 2, 3)]
    starts = [line for line in result.stdout.splitlines() if line.startswith("member_") or "] epoch 1:" in line]
    assert all(line.startswith("member_") for line in starts[:3])  # none waited for another's epochs
    own, threads = shares(2, machine_cores())[1]
    one_core = folder / "ens" / "member_2" if len(own) == 1 or threads == 1 else train_alone(
        args, 8, cores[:1], tmp_path / "alone")  # the fixture's member_2 had a core of its own, or one thread
    assert_same_run(tmp_path / "ens" / "member_2", one_core)


def test_generate_and_evaluate_read_the_ensemble(ensemble_run):
    folder, _, _ = ensemble_run
    ens = str(folder / "ens")
    model, vocab, settings = load_trained(ens)
    assert isinstance(model, Ensemble) and len(model.models) == 2 and settings.train.members == 2
    expected = titler_of(model, vocab, "incremental", 3, 10)(["春夏秋冬山水日月"])[0]
    result = run_cli("generate", "春夏秋冬山水日月", "--model", ens, "--config", str(folder / "tiny.py"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"
    result = run_cli("evaluate", str(folder / "tiny.py"), "--model", ens, "--data", str(folder / "dev.jsonl"))
    assert result.returncode == 0 and "ROUGE-L" in result.stdout, result.stderr


def test_resume_trains_only_the_members_not_finished(ensemble_run, tmp_path):
    folder, _, _ = ensemble_run
    ens = tmp_path / "ens"
    shutil.copytree(folder / "ens", ens)
    finished = (ens / "member_1" / "model.weights.h5").stat().st_mtime_ns
    steps = (ens / "member_2" / "steps.csv").read_text()
    shutil.rmtree(ens / "member_2")  # stopped before its first checkpoint
    result = run_cli("train", str(folder / "tiny.py"), "--out", str(ens), "--resume")
    assert result.returncode == 0, result.stderr
    assert "member_1: seed" not in result.stdout and "member_2: seed 8, started" in result.stdout
    assert (ens / "member_1" / "model.weights.h5").stat().st_mtime_ns == finished
    assert (ens / "member_2" / "steps.csv").read_text() == steps


def test_ensemble_errors(ensemble_run, tmp_path):
    folder, args, _ = ensemble_run
    result = run_cli("train", *args, "--members", "0", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "MEMBERS must be at least 1" in result.stderr
    result = run_cli("train", *args, "--members", "2", "--out", str(folder / "ens"))
    assert result.returncode == 2 and "already holds" in result.stderr
    result = run_cli("train", str(folder / "tiny.py"), "--out", str(folder / "ens"), "--resume", "--members", "3")
    assert result.returncode == 2 and "members cannot change" in result.stderr
    half = tmp_path / "half"
    shutil.copytree(folder / "ens", half)
    os.remove(half / "member_2" / "model.weights.h5")
    result = run_cli("generate", "春夏", "--model", str(half))
    assert result.returncode == 2
    assert last_line(result.stderr) == (f"error: the ensemble in {half} is not trained yet (member_2 without "
                                        f"model.weights.h5); `train --resume --out {half}` trains it")
    odd = tmp_path / "odd"  # a member whose stored model differs: the members are decoded with one settings.Model
    shutil.copytree(folder / "ens", odd)
    with open(odd / "member_2" / "config.json", encoding="utf-8") as f:
        record = json.load(f)
    record["settings"]["model"]["mask_encoder"] = not record["settings"]["model"]["mask_encoder"]  # the same weights
    with open(odd / "member_2" / "config.json", "w", encoding="utf-8") as f:
        json.dump(record, f)
    with pytest.raises(TitleError, match="member_2 in .* has another vocabulary or model than member_1"):
        load_trained(str(odd))


@pytest.mark.multiprocess
def test_sigterm_stops_every_member_at_a_checkpoint_and_resume_finishes(tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", make_corpus(200, seed=3))
    out = tmp_path / "ens"
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", "--train", train_path,
                                "--no-dev", "--out", str(out), "--epochs", "1", "--batch-size", "2",
                                "--checkpoint-steps", "1000", "--members", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    steps = [out / f"member_{i}" / "steps.csv" for i in (1, 2)]
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if all(s.exists() and len(s.read_text().splitlines()) > 4 for s in steps):
            process.send_signal(signal.SIGTERM)  # to the ensemble's process alone: it stops the members
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert last_line(stderr).startswith("interrupted: each member's checkpoint is saved")
    started = [i for i in (1, 2) if (out / f"member_{i}" / "checkpoint.npz").exists()]
    assert started == [1, 2]  # side by side, on one core too
    states = {i: RunFolder(str(out / f"member_{i}")).read_state() for i in started}
    assert all(3 <= s.step < 100 and s.epoch == 1 for s in states.values())  # stopped mid-epoch, saved
    assert [len(steps[i - 1].read_text().splitlines()) - 1 for i in started] == [s.step for s in states.values()]

    result = run_cli("train", "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    for i, s in states.items():
        assert f"[member_{i}] resuming {out / f'member_{i}'} at epoch 1, step {s['step']} of 100" in result.stdout
    assert all([int(r.split(",")[1]) for r in s.read_text().splitlines()[1:]] == list(range(1, 101)) for s in steps)
