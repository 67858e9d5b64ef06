"""The training levers beyond the blog (dropout, title dropout, label smoothing, weight averaging):
each off by default, each checked against numbers worked out by hand."""
import csv
import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from conftest import model_settings, slow_but, tiny_settings, titler_of
from titlegen.data import END, PAD, START, UNK, pad
from titlegen.errors import TitleError
from titlegen.model import build_model, named_inputs, summed_title_loss, unlikelihood_terms
from titlegen.runfolder import STEPS_FILE
from titlegen.runstate import RunState
from titlegen.devices import make_optimizer, make_train_step
from titlegen.train import AveragedWeights, resume_settings, train


def test_label_smoothing_by_hand():
    # two targets (ids 1 and 2) and a pad; three output ids
    probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.2, 0.3, 0.5]]], dtype="float32")
    target = np.array([[1, 2, 0]])
    plain = -np.log(0.3) - np.log(0.8)
    assert float(summed_title_loss(target, probs)) == pytest.approx(plain, rel=1e-6)
    uniform = -(np.log(0.5) + np.log(0.3) + np.log(0.2)) / 3 - (np.log(0.1) + np.log(0.1) + np.log(0.8)) / 3
    smoothed = float(summed_title_loss(target, probs, 0.1))
    assert smoothed == pytest.approx(0.9 * plain + 0.1 * uniform, rel=1e-6)


def test_unlikelihood_by_hand():
    """Two titles of three steps, six ids: row 0's targets 4, 4, END; row 1's 5, END, PAD. A step's
    candidates are the ids its title's targets held before it, the target itself left out: none at
    row 0's first two steps (4 is the target again), {4} at its third; none, then {5} in row 1; the
    PAD step counts for nothing. α = 0.5."""
    probs = np.array([[[0, 0, 0, .1, .6, .3], [0, 0, 0, .2, .7, .1], [0, 0, 0, .4, .5, .1]],
                      [[0, 0, 0, .1, .1, .8], [0, 0, 0, .6, .2, .2], [0, 0, 0, .5, .5, 0]]], dtype="float32")
    target = np.array([[4, 4, 3], [5, 3, 0]])
    cross_entropy = -(np.log(.6) + np.log(.7) + np.log(.4) + np.log(.8) + np.log(.6))
    unlikely = -np.log(1 - .5) - np.log(1 - .2)  # row 0 step 3: p(4) = .5; row 1 step 2: p(5) = .2
    assert float(summed_title_loss(target, probs)) == pytest.approx(cross_entropy, rel=1e-6)
    assert float(summed_title_loss(target, probs, unlikelihood=0.5)) == \
        pytest.approx(cross_entropy + 0.5 * unlikely, rel=1e-6)
    terms = ops.convert_to_numpy(unlikelihood_terms(target, probs))
    np.testing.assert_allclose(terms, [[0, 0, -np.log(.5)], [0, -np.log(.8), -np.log(.5)]], rtol=1e-6)


@pytest.mark.parametrize("version", slow_but("2018", "2018", "2019"))
def test_dropout_acts_only_while_training(version):
    keras.utils.set_random_seed(1)
    settings = model_settings(12, char_size=8, hidden_size=16, version=version)
    plain, dropped = build_model(settings), build_model(dataclasses.replace(settings, dropout=0.5))
    assert {l.name for l in dropped.layers} - {l.name for l in plain.layers} == \
        {"embedding_dropout", "lstm_dropout", "head_dropout"}
    for layer in plain.layers:  # the same layers, given the same weights
        dropped.get_layer(layer.name).set_weights(layer.get_weights())
    x, y = pad([[4, 5, 6, 7], [8, 9]]), np.array([[2, 4, 5], [2, 6, 0]])
    np.testing.assert_array_equal(np.asarray(plain(named_inputs(x, y))), np.asarray(dropped(named_inputs(x, y))))
    assert not np.allclose(np.asarray(plain(named_inputs(x, y))), np.asarray(dropped(named_inputs(x, y), training=True)))
    vocab_chars = list("abcdefgh")
    from titlegen.data import Vocab
    vocab = Vocab(vocab_chars, 1)
    articles = ["abcdefgh", "hgfedcba" * 3]
    titles = titler_of(plain, vocab, "naive", 3, 8)(articles)
    assert titler_of(dropped, vocab, "naive", 3, 8)(articles) == titles
    assert titler_of(dropped, vocab, "incremental", 3, 8)(articles) == titles


def test_title_dropout_by_hand():
    """Each title character is read as UNK at the rate while training; PAD, START and END never,
    and outside training nothing changes."""
    from titlegen.layers import TitleDropout

    ids = np.array([[START, 4, 5, 6, END, PAD], [START, 7, UNK, PAD, PAD, PAD]], dtype="int32")
    everything = np.where(ids > END, UNK, ids)
    np.testing.assert_array_equal(np.asarray(TitleDropout(1.0, seed=3)(ids, training=True)), everything)
    np.testing.assert_array_equal(np.asarray(TitleDropout(1.0, seed=3)(ids)), ids)
    np.testing.assert_array_equal(np.asarray(TitleDropout(0.0, seed=3)(ids, training=True)), ids)
    chars = np.full((100, 100), 9, dtype="int32")
    layer = TitleDropout(0.3, seed=3)
    first, second = (np.asarray(layer(chars, training=True)) for _ in range(2))
    assert set(np.unique(first)) == {UNK, 9} and not np.array_equal(first, second)  # a new draw each batch
    assert abs((first == UNK).mean() - 0.3) < 0.02  # 10,000 draws: the binomial's sd is 0.0046


def test_title_dropout_is_the_model_reading_unk_while_training():
    """At rate 1 the training model is the plain model reading every title character as UNK; the
    layer is created last, so the same seed draws the same weights with it or without it, and
    outside training the two models agree."""
    keras.utils.set_random_seed(4)
    plain = build_model(model_settings(12, char_size=8, hidden_size=16, copy=True))
    keras.utils.set_random_seed(4)
    dropped = build_model(model_settings(12, char_size=8, hidden_size=16, copy=True, title_dropout=1.0))
    assert {l.name for l in dropped.layers} - {l.name for l in plain.layers} == {"title_dropout"}
    for a, b in zip(plain.get_weights(), dropped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x, y = pad([[4, 5, 6, 7], [8, 9]]), np.array([[START, 4, 12], [START, 6, END]])  # 12: a copied character
    extended = np.array([[4, 5, 6, 12], [8, 9, 0, 0]])
    np.testing.assert_array_equal(np.asarray(dropped(named_inputs(x, y, extended))), np.asarray(plain(named_inputs(x, y, extended))))
    read_as_unk = np.where(y > END, UNK, y)
    np.testing.assert_allclose(np.asarray(dropped(named_inputs(x, y, extended), training=True)),
                               np.asarray(plain(named_inputs(x, read_as_unk, extended))), rtol=1e-6, atol=1e-7)
    assert not np.allclose(np.asarray(dropped(named_inputs(x, y, extended), training=True)),
                           np.asarray(plain(named_inputs(x, y, extended))))


@pytest.mark.parametrize("version", ["2018", "2019"])
def test_recurrent_dropout_drops_only_the_lstm_states_while_training(version):
    """The same seed draws the same weights with recurrent dropout or without it, and outside
    training the two models agree (to float rounding: with recurrent dropout Keras's LSTM cell
    multiplies gate by gate, its implementation 1). While training they part, and only through
    the LSTMs' states: with every recurrent kernel zeroed (the state then adds nothing to a step),
    the training model is the plain model again."""
    shape = {"char_size": 8, "hidden_size": 16, "version": version}
    keras.utils.set_random_seed(4)
    plain = build_model(model_settings(12, **shape))
    keras.utils.set_random_seed(4)
    dropped = build_model(model_settings(12, recurrent_dropout=0.5, **shape))
    for a, b in zip(plain.get_weights(), dropped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x, y = pad([[4, 5, 6, 7, 8, 9, 10, 11], [8, 9, 4]]), np.array([[START, 4, 5, 6], [START, 6, 7, END]])
    np.testing.assert_allclose(np.asarray(dropped(named_inputs(x, y))), np.asarray(plain(named_inputs(x, y))), rtol=1e-6, atol=1e-7)
    parted = np.abs(np.asarray(dropped(named_inputs(x, y), training=True)) - np.asarray(plain(named_inputs(x, y)))).max()
    assert parted > 2e-6  # an untrained model's probabilities are near uniform, so they part by little
    cells = [cell for model in (plain, dropped) for layer in model.layers for cell in lstm_cells(layer)]
    assert len(cells) == 2 * 6  # per model: two BiLSTMs (two cells each) and two decoder LSTMs
    assert {cell.recurrent_dropout for cell in cells} == {0.0, 0.5}
    for cell in cells:
        cell.recurrent_kernel.assign(np.zeros(cell.recurrent_kernel.shape, "float32"))
    np.testing.assert_allclose(np.asarray(dropped(named_inputs(x, y), training=True)), np.asarray(plain(named_inputs(x, y))),
                               rtol=1e-6, atol=1e-7)


def lstm_cells(layer):
    """The LSTM cells of a layer: a Bidirectional's two, an LSTM's one, else none."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer.cell, layer.backward_layer.cell]
    return [layer.cell] if isinstance(layer, keras.layers.LSTM) else []


def test_averaged_weights_by_hand():
    keras.utils.set_random_seed(2)
    model = build_model(model_settings(12, char_size=8, hidden_size=16))
    optimizer = make_optimizer(1e-2, False, ema=0.75)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, tf.distribute.get_strategy())
    x, y = pad([[4, 5, 6, 7], [8, 9]]), np.array([[2, 4, 5, 3], [2, 6, 3, 0]])
    seen = [[v.numpy() for v in model.trainable_variables]]
    for _ in range(3):
        step({"article": x, "title": y})
        seen.append([v.numpy() for v in model.trainable_variables])
    # Keras's average: the weights after the first step, then a <- 0.75 a + 0.25 w after every other
    expected = seen[1]
    for weights in seen[2:]:
        expected = [0.75 * a + 0.25 * w for a, w in zip(expected, weights)]
    with AveragedWeights(model, optimizer):
        for v, e in zip(model.trainable_variables, expected, strict=True):
            np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-7)
    for v, w in zip(model.trainable_variables, seen[-1]):  # training's own weights come back
        np.testing.assert_array_equal(v.numpy(), w)


def trained_whole_and_resumed(tmp_path, corpus, levers, epochs, first):
    """The same run twice: `epochs` in one go, and `first` epochs then --resume to `epochs`.
    Returns the two folders (whole, parted)."""
    whole, parted = str(tmp_path / "whole"), str(tmp_path / "parted")
    train(tiny_settings(*corpus, epochs=epochs, **levers), whole, log=lambda _: None)
    train(tiny_settings(*corpus, epochs=first, **levers), parted, log=lambda _: None)
    train(resume_settings(parted, epochs=epochs), parted, resume=True, log=lambda _: None)
    return whole, parted


def csv_rows(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_levers_resume_exactly(tmp_path, corpus):
    """Dropout's random states, the averaged weights and the smoothed loss all pass through the
    checkpoint: one epoch, then --resume for a second, is two epochs in one go, bit for bit."""
    levers = {"dropout": 0.3, "title_dropout": 0.2, "label_smoothing": 0.1, "ema": 0.9, "steps_per_epoch": None,
              "checkpoint_steps": 1}
    whole, parted = trained_whole_and_resumed(tmp_path, corpus, levers, epochs=2, first=1)

    assert len(csv_rows(whole, STEPS_FILE)) == 6 and csv_rows(whole, STEPS_FILE) == csv_rows(parted, STEPS_FILE)
    from titlegen.trained import load_trained
    for a, b in zip(load_trained(whole)[0].get_weights(), load_trained(parted)[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_cut_counts_from_the_best_epoch_or_the_last_cut():
    """LR_PATIENCE 2, LR_FACTOR 0.5, best epoch 1: cuts after epochs 3 and 5; a new best at 6
    restarts the count, so the next cut is after epoch 8."""
    from titlegen.train import Run
    optimizer = make_optimizer(1e-3, False)
    run = Run.__new__(Run)
    run.settings = tiny_settings("t", "d", lr_patience=2, lr_factor=0.5)
    run.optimizer, run.state, run.log = optimizer, RunState(8, 3, best={"epoch": 1}), lambda _: None
    rates = {}
    for epoch in range(2, 9):
        if epoch == 6:
            run.state.best = {"epoch": 6}
        run.cut_learning_rate(epoch)
        rates[epoch] = float(optimizer.learning_rate)
    assert rates == pytest.approx({2: 1e-3, 3: 5e-4, 4: 5e-4, 5: 2.5e-4, 6: 2.5e-4, 7: 2.5e-4, 8: 1.25e-4})


def test_time_left_counts_the_epochs_left_at_the_last_pace_by_hand():
    """EPOCHS 10 after epoch 4 at 90 s: 6 epochs, 9.0 min; PATIENCE 3 with the best at 3 ends it
    after 2 more (3.0 min); a 20-minute TIME_LIMIT with 12 min spent ends it sooner; the stage adds
    its epochs; the last epoch has nothing left."""
    from titlegen.train import time_left
    train = tiny_settings("t", "d", epochs=10, patience=3).train
    state = RunState(8, 3, best={"epoch": 3}, seconds=720.0)
    assert time_left(train, state, 4, 90.0) == ("  6 more epochs: about 9.0 min left at 90 s each; 3.0 min if no "
                                                "better val_loss comes in 2 (PATIENCE 3)")
    assert time_left(tiny_settings("t", "d", epochs=10, time_limit=20.0).train, state, 4, 90.0) == (
        "  6 more epochs: about 9.0 min left at 90 s each; TIME_LIMIT (20 min) ends it sooner")
    assert time_left(tiny_settings("t", "d", epochs=2, seq_epochs=3).train, RunState(8, 3), 1, 30.0) == (
        "  1 more epoch: about 0.5 min left at 30 s each, then the sequence-level stage's 3")
    assert time_left(train, state, 10, 90.0) is None
    assert time_left(train, RunState(8, 3, best={"epoch": 9}), 9, 60.0) == "  1 more epoch: about 1.0 min left at 60 s each"


def test_cosine_decay_sets_each_batch_rate_by_hand_and_resumes_exactly(tmp_path, corpus):
    """LR_DECAY_EPOCHS 2 over 3 batches an epoch: after k batches the rate is
    0.02 * (1 + cos(pi * k / 6)) / 2, so metrics.csv reads 0.01 after epoch 1 (k = 3) and 0 after
    epoch 2; and 1 epoch, then --resume to 2, trains bit for bit as 2 in one go (the step count
    that drives the rate is in the checkpoint)."""
    levers = {"lr_decay_epochs": 2, "learning_rate": 0.02, "steps_per_epoch": 3, "checkpoint_steps": 1}
    whole, parted = trained_whole_and_resumed(tmp_path, corpus, levers, epochs=2, first=1)

    rates = [float(r["learning_rate"]) for r in csv_rows(whole, "metrics.csv")]
    assert rates == pytest.approx([0.01, 0.0], rel=1e-6, abs=1e-9)
    optimizer = make_optimizer(0.02, False, decay_steps=6)
    for k in range(7):
        optimizer.iterations.assign(k)
        by_hand = 0.01 * (1 + np.cos(np.pi * k / 6))
        assert float(optimizer.learning_rate) == pytest.approx(by_hand, rel=1e-6, abs=1e-9)
    assert len(csv_rows(whole, STEPS_FILE)) == 6 and csv_rows(whole, STEPS_FILE) == csv_rows(parted, STEPS_FILE)
    assert [r["learning_rate"] for r in csv_rows(parted, "metrics.csv")] == [r["learning_rate"] for r in
                                                                          csv_rows(whole, "metrics.csv")]


def test_cosine_decay_and_learning_rate_cuts_are_one_or_the_other(tmp_path, corpus):
    with pytest.raises(TitleError, match="LR_DECAY_EPOCHS and LR_PATIENCE"):
        train(tiny_settings(*corpus, lr_decay_epochs=2, lr_patience=1), str(tmp_path / "a"), log=lambda _: None)
    with pytest.raises(TitleError, match="LR_DECAY_EPOCHS must be"):
        train(tiny_settings(*corpus, lr_decay_epochs=0), str(tmp_path / "b"), log=lambda _: None)
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")


@pytest.mark.slow
def test_learning_rate_cuts_follow_the_dev_loss_and_resume_exactly(tmp_path, corpus):
    """A run whose dev loss stalls: each epoch's rate in metrics.csv is the last one's, halved
    exactly when the epoch before was LR_PATIENCE (1) epochs past the best or the last cut; and 3
    epochs, then --resume to 6, trains bit for bit as 6 in one go (the rate is in the checkpoint)."""
    levers = {"lr_patience": 1, "lr_factor": 0.5, "learning_rate": 0.2, "checkpoint_steps": 1}
    whole, parted = trained_whole_and_resumed(tmp_path, corpus, levers, epochs=6, first=3)

    metrics = csv_rows(whole, "metrics.csv")
    best, last_cut, rate, cuts = float("inf"), 0, 0.2, 0
    for epoch, row in enumerate(metrics, 1):
        assert float(row["learning_rate"]) == pytest.approx(rate)
        if float(row["val_loss"]) <= best:
            best, best_epoch = float(row["val_loss"]), epoch
        if epoch - max(best_epoch, last_cut) >= 1:
            rate, last_cut, cuts = rate * 0.5, epoch, cuts + 1
    assert cuts >= 1  # the dev loss did stall: the cut was exercised
    assert csv_rows(whole, STEPS_FILE) == csv_rows(parted, STEPS_FILE)
    assert [r["learning_rate"] for r in csv_rows(parted, "metrics.csv")] == [r["learning_rate"] for r in metrics]
