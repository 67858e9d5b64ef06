"""The sequence-level stage (titlegen/sequence.py): its risk and rewards by hand, the sampler, one
step that favours the better candidate, the stage inside `train`, on two replicas, and kill -9."""
import math
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import config
from conftest import (ROOT, TINY_CONFIG, make_corpus, model_settings, on_one_and_two_replicas, slow_but, tiny_settings,
                      train_cli, write_jsonl)
from titlegen.data import END, START, TitleError, UNK
from titlegen.metrics import example_scores, lcs_f, rouge_l
from titlegen.model import build_model, named_inputs, title_log_probs
from titlegen.runfolder import METRICS_FILE, STEPS_FILE, RunFolder
from titlegen.trained import load_trained
from titlegen.search import sample
from titlegen.devices import make_optimizer, make_sequence_step
from titlegen.sequence import candidate_arrays, costs_of, distinct, sequence_risk
from titlegen.settings import load
from titlegen.train import train


def test_risk_of_two_articles_by_hand():
    log_probs = tf.constant([[-1.0, -2.0, -3.0], [-2.0, -2.0, -1.0]])
    costs = tf.constant([[0.2, 0.5, 1.0], [0.4, 0.1, 0.9]])
    valid = tf.constant([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # article 2's third candidate repeats one
    risk = sequence_risk(log_probs, costs, valid, sharpness=0.5).numpy()
    # article 1: Q ∝ exp(0.5 · log p) = e^-0.5, e^-1, e^-1.5
    q = np.array([math.exp(-0.5), math.exp(-1.0), math.exp(-1.5)])
    q /= q.sum()  # 0.50648, 0.30720, 0.18632
    assert risk[0] == pytest.approx(0.2 * q[0] + 0.5 * q[1] + 1.0 * q[2], rel=1e-6)  # 0.44122
    assert risk[0] == pytest.approx(0.441216, abs=1e-5)
    # article 2: its two distinct candidates equally likely, the repeat left out: (0.4 + 0.1) / 2
    assert risk[1] == pytest.approx(0.25, rel=1e-6)


def test_costs_by_hand_under_both_rewards():
    assert rouge_l("我爱北京", "我爱上海北京") == pytest.approx(example_scores("我爱北京", "我爱上海北京")["rouge-l"])
    assert lcs_f("北京北京北京", "北京") == pytest.approx(2 * 2 / (6 + 2))  # LCS 2 over 6 and 2 characters
    assert rouge_l("北京北京北京", "北京") == pytest.approx(1.0)  # CLGE's package: 2 distinct characters, both matched
    a, b, c, d, e, f = range(10, 16)
    reference = [START, a, b, c, d, e, f, END]
    titles = [[START, a, b, e, f, END],  # test_evaluate's 我爱北京 against 我爱上海北京: F 0.8 under both
              [START, a, b, a, b, a, b, END],  # a stutter: LCS a b
              [START, END]]  # nothing: F 0
    # Lin's: P = R = 2/6, F 1/3. CLGE's counts distinct ids: P = 2/2, R = 2/6, F = 2·(1/3)/(4/3) = 1/2
    assert costs_of(titles, reference) == pytest.approx([0.2, 2 / 3, 1.0])
    assert costs_of(titles, reference, "clge") == pytest.approx([0.2, 1 / 2, 1.0])
    # an unknown matches nothing, not even the reference's own unknown: LCS a over 2 and 7 ids
    assert costs_of([[START, UNK, a, END]], [START, UNK, a, b, c, d, e, f, END]) == pytest.approx([1 - 2 / 9])
    assert distinct([[2, 5, 3], [2, 6, 3], [2, 5, 3]]) == [1.0, 1.0, 0.0]


def test_sample_draws_from_the_given_probabilities():
    size = 8  # ids 4..7 are characters; each step's probabilities are set here
    def chain(yid, t, state, memory):  # one-hot: after START comes 4, then 5, 6, then END
        last = yid[:, t]
        nxt = tf.where(last == START, 4, tf.where(last >= 6, END, last + 1))
        return tf.one_hot(nxt, size), state

    memory = {"m": tf.zeros([2, 1])}
    ids, lengths = sample(chain, memory, {}, 3, 6, tf.constant([1, 2]))
    assert lengths.numpy().tolist() == [5] * 6
    assert ids.numpy().tolist() == [[START, 4, 5, 6, END, 0, 0]] * 6

    def uniform(yid, t, state, memory):  # every character equally likely (END too), ids below END never
        return tf.concat([tf.fill([tf.shape(yid)[0], END], 0.5), tf.fill([tf.shape(yid)[0], size - END], 0.1)],
                         axis=1), state
    first, _ = sample(uniform, memory, {}, 3, 6, tf.constant([1, 2]))
    again, _ = sample(uniform, memory, {}, 3, 6, tf.constant([1, 2]))
    other, _ = sample(uniform, memory, {}, 3, 6, tf.constant([1, 3]))
    assert first.numpy().tolist() == again.numpy().tolist() and first.numpy().tolist() != other.numpy().tolist()
    drawn = first.numpy()[:, 1:]
    assert drawn.min() >= 0 and not np.isin(drawn, [1, 2]).any()  # pads after END, never UNK or START
    for row in first.numpy():  # nothing after END
        ends = list(row).index(END) if END in row else len(row)
        assert not row[ends + 1:].any()


def test_sample_from_the_most_likely_alone():
    def skewed(yid, t, state, memory):  # END 0.1; ids 4..7: 0.4, 0.3, 0.1, 0.1
        return tf.tile(tf.constant([[0.0, 0.0, 0.0, 0.1, 0.4, 0.3, 0.1, 0.1]]), [tf.shape(yid)[0], 1]), state

    ids, lengths = sample(skewed, {"m": tf.zeros([4, 1])}, {}, 2, 6, tf.constant([5, 6]), top=2)
    drawn = ids.numpy()[:, 1:]
    assert set(drawn.ravel()) == {4, 5} and lengths.numpy().tolist() == [7] * 8  # END is not among the top 2


def test_candidates_are_the_reference_the_beam_title_then_draws():
    x = np.array([[4, 5, 6], [7, 8, 0]], np.int32)
    y = np.array([[START, 4, 5, END], [START, 9, END, 0]], np.int32)
    beam, drawn = [[START, 4, END], [START, 7, END]], [[START, 6, END], [START, 9, END]]
    train = tiny_settings("t", "d", seq_candidates=3, seq_reference=True, seq_beam=True).train
    inputs, cands, costs, valid, counts = candidate_arrays(
        {"article": x, "title": y}, FixedCandidates([[b, d] for b, d in zip(beam, drawn)]), train, [1, 2])
    assert cands.tolist() == [[[START, 4, 5, END], [START, 4, END, 0], [START, 6, END, 0]],
                              [[START, 9, END, 0], [START, 7, END, 0], [START, 9, END, 0]]]
    # the reference's cost is 0; a drawn title equal to it is left out of the risk
    assert costs[:, 0].tolist() == [0.0, 0.0] and valid.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert costs[0, 1] == pytest.approx(1 - 2 * 1 / (1 + 2)) and counts.tolist() == [5.0, 2.0]


class FixedCandidates:
    """A decoder whose candidates are set: search gives each article's first, sample the rest."""

    def __init__(self, titles):
        self.titles = titles

    def search(self, inputs):
        return [t[0] for t in self.titles], None

    def sample(self, inputs, n, seed, top=0):
        return [t[1:1 + n] for t in self.titles]


def tiny_model(vocab_size=10, **changes):
    """A tiny model and its Adam."""
    keras.utils.set_random_seed(5)
    settings = model_settings(vocab_size, char_size=8, hidden_size=16, **changes)
    model = build_model(settings)
    optimizer = make_optimizer(1e-3, False)
    optimizer.build(model.trainable_variables)
    return model, optimizer


@pytest.mark.parametrize("copy", slow_but(True, False, True))  # the copy model runs every part
def test_one_step_raises_the_candidate_with_the_higher_reward(copy):
    model, optimizer = tiny_model(copy=copy)
    x = np.array([[4, 5, 6, 7, 8], [9, 8, 7, 0, 0]], np.int32)
    y = np.array([[START, 4, 5, 6, END], [START, 9, 8, END, 0]], np.int32)
    good = [[START, 4, 5, 6, END], [START, 9, 8, END]]  # the references: ROUGE-L F 1
    bad = [[START, 7, 7, 7, 7, END], [START, 5, END]]  # nothing in common: F 0
    batch = {"article": x, "title": y, **({"article_extended": x} if copy else {})}
    train = tiny_settings("t", "d", seq_candidates=2, seq_beam=True, seq_ce_weight=0.0, seq_sharpness=1.0,
                          label_smoothing=0.0).train
    step = make_sequence_step(model, optimizer, tf.distribute.get_strategy(),
                              FixedCandidates([[g, b] for g, b in zip(good, bad)]), train)

    def log_p(titles):
        t = np.zeros((2, 6), np.int32)
        for i, title in enumerate(titles):
            t[i, :len(title)] = title
        return title_log_probs(t[:, 1:], model(named_inputs(x, t[:, :-1], x if copy else None))).numpy()

    before_good, before_bad = log_p(good), log_p(bad)
    q = np.exp(before_good) / (np.exp(before_good) + np.exp(before_bad))
    loss = step(batch, [7, 0])
    assert loss == pytest.approx(np.mean(1 - q), rel=1e-4)  # λ = 0: the risk alone, costs 0 and 1
    assert (log_p(good) > before_good).all() and (log_p(bad) < before_bad).all()


@pytest.mark.slow
def test_the_stage_on_two_replicas_gives_the_single_device_loss():
    out = on_one_and_two_replicas(
        "from titlegen.decoders import IncrementalDecoder\nfrom titlegen.devices import make_sequence_step\n"
        "train = tiny_settings('t', 'd', seq_candidates=3, seq_beam=True, seq_ce_weight=0.3, seq_sharpness=1.0).train",
        "make_sequence_step(model, optimizer, strategy, IncrementalDecoder(model, decoding(topk=3, max_title_len=8)), "
        "train)", "step(batch, [7, i])")
    assert out["two"]["replicas"] == 2
    np.testing.assert_allclose(out["two"]["losses"], out["one"]["losses"], rtol=1e-5)
    for a, b in zip(out["one"]["weights"], out["two"]["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-6)


STAGE = {"epochs": 2, "seq_epochs": 2, "monitor": "val_rouge_l", "val_rouge_samples": 4, "decoder": "incremental",
         "steps_per_epoch": None}


@pytest.mark.slow
def test_the_stage_follows_teacher_forcing_from_its_best_weights(tmp_path, corpus):
    out = str(tmp_path / "m")
    _, _, record = train(tiny_settings(*corpus, **STAGE, copy=True), out, log=lambda _: None)
    assert [(h["epoch"], h["stage"]) for h in record["history"]] == [
        (1, "teacher"), (2, "teacher"), (3, "sequence"), (4, "sequence")]
    state = RunFolder(out).read_state()
    assert (state.stage, state.seq_start, state.epoch, state.done) == ("sequence", 3, 5, "4 epochs")
    with open(os.path.join(out, METRICS_FILE), encoding="utf-8") as f:
        assert f.readline().startswith("epoch,stage,loss,val_loss,val_rouge_l,val_lcs_f,val_repeat")
    best = max(h["val_rouge_l"] for h in record["history"][2:])
    assert record["best"]["value"] == best and record["best"]["epoch"] >= 3  # the kept weights: the stage's best
    assert state.teacher_best["epoch"] <= 2

    # a finished run continues with the stage: `train --resume --seq-epochs N`
    plain = str(tmp_path / "plain")
    train(tiny_settings(*corpus, **{**STAGE, "seq_epochs": 0}), plain, log=lambda _: None)
    from titlegen.train import resume_settings
    lines = []
    _, _, record = train(resume_settings(plain, seq_epochs=1), plain, resume=True, log=lines.append)
    assert [h.get("stage") for h in record["history"]] == [None, None, "sequence"]
    assert any(line.startswith("sequence-level stage: 1 epochs") for line in lines)


def test_stage_settings_are_checked(tmp_path, corpus):
    with pytest.raises(TitleError, match="set MONITOR = 'val_rouge_l'"):
        train(tiny_settings(*corpus, seq_epochs=1), str(tmp_path / "a"), log=lambda _: None)
    with pytest.raises(TitleError, match="SEQ_CANDIDATES must be at least 2"):
        train(tiny_settings(*corpus, **STAGE, seq_candidates=1), str(tmp_path / "b"), log=lambda _: None)
    with pytest.raises(TitleError, match="SEQ_CE_WEIGHT must be at least 0 and at most 1, got 1.5"):
        train(tiny_settings(*corpus, **STAGE, seq_ce_weight=1.5), str(tmp_path / "c"), log=lambda _: None)


SEQUENCE_CONFIG = TINY_CONFIG + """BATCH_SIZE = 4
EPOCHS = 1
SEQ_EPOCHS = 1
CHECKPOINT_STEPS = 5
SHUFFLE = True
BUCKET = True
MONITOR = "val_rouge_l"
VAL_ROUGE_SAMPLES = 4
COPY = True
"""


def csv_rows(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.mark.multiprocess
def test_kill_9_in_the_stage_and_at_its_start_resumes_exactly(tmp_path):
    tiny = tmp_path / "tiny.py"
    tiny.write_text(SEQUENCE_CONFIG, encoding="utf-8")
    train_path = write_jsonl(tmp_path / "train.jsonl", make_corpus(48, seed=1))
    dev_path = write_jsonl(tmp_path / "dev.jsonl", make_corpus(8, seed=2))
    out = str(tmp_path / "killed")
    resume = [str(tiny), "--out", out, "--resume"]
    # 12 batches an epoch: the stage starts at epoch 2 (step 13 of the run)
    for args, moment, position in [
            ([str(tiny), "--train", train_path, "--dev", dev_path, "--out", out], "epoch_end:1", (1, 10)),
            (resume, "step:4", (2, 0)),  # epoch 1's last two batches, then the stage's 2nd (its start checkpointed)
            (resume, "step:7", (2, 5))]:  # the stage's 7th, after its checkpoint at step 5
        result = train_cli(args, kill_at=moment)
        assert result.returncode == -signal.SIGKILL, (moment, result.stderr[-2000:])
        state = RunFolder(out).read_state()
        assert (state.epoch, state.step) == position, moment
    result = train_cli(resume)
    assert result.returncode == 0, result.stderr[-2000:]

    whole = str(tmp_path / "whole")
    train(load(config, ROOT, [str(tiny)], {"train_path": train_path, "dev_path": dev_path}), whole,
          log=lambda _: None)
    assert csv_rows(os.path.join(out, STEPS_FILE)) == csv_rows(os.path.join(whole, STEPS_FILE))
    assert len(csv_rows(os.path.join(whole, STEPS_FILE))) == 1 + 24
    drop_seconds = [[c for i, c in enumerate(r.split(",")) if i < 8] for r in csv_rows(os.path.join(out, METRICS_FILE))]
    assert drop_seconds == [[c for i, c in enumerate(r.split(",")) if i < 8]
                            for r in csv_rows(os.path.join(whole, METRICS_FILE))]
    for a, b in zip(load_trained(out)[0].get_weights(), load_trained(whole)[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
