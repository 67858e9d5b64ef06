import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import model_settings, slow_but, stub_search
from titlegen.data import END, START
from titlegen.decode import IncrementalDecoder, NaiveDecoder
from titlegen.search import repeated_ngrams
from titlegen.layers import MaskedMaxPool, MultiHeadAttention, SelfModulatedLayerNorm
from titlegen.model import ModelParts, build_model


def test_self_modulated_layer_norm_by_hand():
    layer = SelfModulatedLayerNorm(hidden=2)
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]], dtype="float32")
    cond = np.array([[[0.5, -0.5]]], dtype="float32")
    layer.build((x.shape, cond.shape))
    for dense in (layer.beta_1, layer.gamma_1, layer.beta_2, layer.gamma_2):
        dense.kernel.assign(np.zeros(dense.kernel.shape))
    layer.gamma_2.bias.assign([1.0, 0.0, -1.0, 0.5])  # γ
    layer.beta_2.bias.assign([0.0, 1.0, 0.0, 0.0])  # β
    norm = (x[0, 0] - 2.5) / math.sqrt(1.25 + 1e-14)  # mean 2.5, variance 1.25
    expected = norm * (np.array([1.0, 0.0, -1.0, 0.5]) + 1) + np.array([0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(layer([x, cond]))[0, 0], expected, rtol=1e-5, atol=1e-6)


def test_multi_head_attention_by_hand():
    layer = MultiHeadAttention(heads=2, size_per_head=1)
    q = np.array([[[1.0, 2.0]]], dtype="float32")
    kv = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], dtype="float32")  # the last key is padding
    mask = np.array([[True, True, False]])
    layer.build((q.shape, kv.shape, kv.shape, mask.shape))
    for dense in (layer.q_dense, layer.k_dense, layer.v_dense):
        dense.kernel.assign(np.eye(2))
    out = np.asarray(layer([q, kv, kv, mask]))[0, 0]
    # head 0 sees dimension 0: scores q0 * k0 = [1, 0]; head 1 sees dimension 1: [0, 2]
    a0 = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
    a1 = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
    np.testing.assert_allclose(out, [a0 @ [1.0, 0.0], a1 @ [0.0, 1.0]], rtol=1e-6)


def test_masked_max_pool_ignores_padding():
    x = np.array([[[1.0, -5.0], [3.0, -7.0], [100.0, 100.0]]], dtype="float32")
    out = MaskedMaxPool()([x, np.array([[True, True, False]])])
    assert np.asarray(out).tolist() == [[[3.0, -5.0]]]


def test_2019_model_is_padding_invariant_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(model_settings(12, char_size=16, version="2019"))
    assert ModelParts.of(model).version == "2019" and ModelParts.of(build_model(model_settings(12, char_size=8, hidden_size=16))).version == "2018"
    short, long = [4, 5, 6, 7, 8], [9, 10, 11, 4, 5, 6, 7, 8, 9, 10]
    y = np.array([[2, 4, 5], [2, 6, 7]])
    alone = np.asarray(model([np.array([short, short]), y]))[0]
    in_batch = np.asarray(model([np.array([short + [0] * 5, long]), y]))[0]
    np.testing.assert_allclose(in_batch, alone, atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_array_equal(np.asarray(loaded([np.array([short, short]), y]))[0], alone)


def banned_ids(prefix, n):
    """The ids repeated_ngrams bars after one beam's prefix (START first), in a buffer with room to spare."""
    yid = np.zeros((1, 10), dtype="int32")
    yid[0, :len(prefix)] = prefix
    banned = repeated_ngrams(tf.constant(yid), tf.constant(len(prefix) - 1), n, 8)
    return {int(i) + END for i in np.flatnonzero(banned.numpy()[0])}


def test_banned_ids_by_hand():
    assert banned_ids([2, 4, 5, 4], 2) == {5}  # 4 was followed by 5 before
    assert banned_ids([2, 4, 5, 4], 1) == {4, 5}  # no character twice
    assert banned_ids([2, 4, 5, 4, 5], 3) == {4}  # 4 5 was followed by 4 before
    assert banned_ids([2, 4, 5], 3) == set()
    assert banned_ids([2, 4, 4, 4], 2) == {4}  # 4 4 was followed by 4: counted once


def repeat_lover(vocab_size=8):
    """Always likes id 4 best, then 5, then END."""
    def next_probs(yid):
        p = np.full((len(yid), vocab_size), 0.01)
        p[:, 4], p[:, 5], p[:, 3] = 0.5, 0.3, 0.1
        return p
    return next_probs


def test_decoding_options_on_a_stub():
    assert stub_search(repeat_lover(), topk=1, max_len=4).tolist() == [2, 4, 4, 4, 4]
    assert stub_search(repeat_lover(), topk=1, max_len=4, no_repeat_ngram=1).tolist() == [2, 4, 5, 3]
    # 4 4 5 4, then both 4 and 5 would repeat a bigram (4 4, 4 5): END
    assert stub_search(repeat_lover(), topk=1, max_len=6, no_repeat_ngram=2).tolist() == [2, 4, 4, 5, 4, END]


def test_min_len_holds_end_back():
    def ends(yid):  # END is always the likeliest
        return np.tile([0.0, 0.0, 0.0, 0.9, 0.05, 0.05, 0.0, 0.0], (len(yid), 1))
    assert stub_search(ends, topk=2, max_len=5).tolist() == [START, END]
    # END is barred for two steps; the tie between 4 and 5 goes to the lower id
    assert stub_search(ends, topk=2, max_len=5, min_len=2).tolist() == [START, 4, 4, END]


OPTIONS = [(1, {}), (3, {}), (5, {}), (3, {"min_len": 4}), (3, {"no_repeat_ngram": 1}),
           (5, {"no_repeat_ngram": 2, "min_len": 2}), (1, {"no_repeat_ngram": 2, "min_len": 3}),
           (3, {"length_penalty": 1.0}), (5, {"length_penalty": 0.6, "no_repeat_ngram": 2, "min_len": 3}),
           (1, {"max_len": 5, "length_penalty": 2.0})]


@pytest.mark.parametrize("version", slow_but("2019", "2018", "2019"))
@pytest.mark.parametrize("topk, options", OPTIONS)
def test_incremental_gives_the_naive_titles_with_options(version, topk, options):
    keras.utils.set_random_seed(3)
    model = build_model(model_settings(40, char_size=16, hidden_size=32, version=version))
    rng = np.random.default_rng(0)
    articles = [rng.integers(4, 40, size=n).tolist() for n in (5, 30, 12, 21)]
    options = {"max_len": 12, **options}
    naive = NaiveDecoder(model, topk, **options)(articles)
    assert [t.tolist() for t in IncrementalDecoder(model, topk, **options)(articles)] == [t.tolist() for t in naive]
    if options.get("no_repeat_ngram") == 1:
        assert all(len(set(t[1:].tolist())) == len(t) - 1 for t in naive)


def test_length_normalisation_by_hand():
    table = {(START,): [0, 0, 0, 0.4, 0.6, 0, 0, 0], (START, 4): [0, 0, 0, 0.5, 0, 0.5, 0, 0]}

    def next_probs(yid):
        return np.array([table.get(tuple(r), [0.125] * 8) for r in yid])

    # finished: [END] scores log .4 / (6/6)^α; [4 END] scores log(.6 * .5) / (7/6)^α; both found by step 1
    # α = 1: -0.916 against -1.032, the empty title wins
    assert stub_search(next_probs, topk=2, max_len=5, length_penalty=1.0).tolist() == [START, END]
    # α = 2: -0.916 against -0.885, the longer one
    assert stub_search(next_probs, topk=2, max_len=5, length_penalty=2.0).tolist() == [START, 4, END]
    # the blog's search: [4] (.6) beats [END] (.4) at step 0; then [4 5] and [4 END] tie at .3 and
    # the tie goes to the lower id, END, which is the best beam: stop
    assert stub_search(next_probs, topk=2, max_len=5).tolist() == [START, 4, END]


def hand_set_model(version):
    """A model whose every step gives the same probabilities, set by hand: all weights zero but the
    logits' bias, so the head's output is the bias and probs = softmax((bias + χ) / 2), χ = 1 on the
    article's characters. Chosen: p(END) = .3, p(4) = .4, p(5) = .2, p(6) = p(7) = .05."""
    model = build_model(model_settings(8, char_size=8, hidden_size=8, version=version))
    model.set_weights([np.zeros(w.shape) for w in model.get_weights()])
    p = np.array([1e-12, 1e-12, 1e-12, 0.3, 0.4, 0.2, 0.05, 0.05])
    chi = np.array([0, 0, 0, 0, 1, 1, 1, 0])  # the article [4, 5, 6]
    model.get_layer("logits").bias.assign(2 * np.log(p) - chi)
    return model, [[4, 5, 6]]


@pytest.mark.parametrize("version", ["2018", "2019"])
@pytest.mark.parametrize("decoder", [NaiveDecoder, IncrementalDecoder])
def test_both_decoders_on_a_model_set_by_hand(version, decoder):
    model, article = hand_set_model(version)
    probs = np.asarray(model([np.array(article), np.array([[START, 4]])]))[0]
    np.testing.assert_allclose(probs[:, END:], [[0.3, 0.4, 0.2, 0.05, 0.05]] * 2, rtol=1e-5)

    def title(**options):
        return decoder(model, 3, 4, **options)(article)[0].tolist()

    assert title() == [START, 4, 4, 4, 4]  # 4ⁿ stays the best beam and never ends
    # 4 may not repeat: [4 END] .4·.3 and [END 4] .3·.4 tie, the first beam's candidate first: it ends
    assert title(no_repeat_ngram=1) == [START, 4, END]
    # α = 1: [END] (log .3 / 1) is finished at step 0; at step 1 [4 END] (log .12 / (7/6)) and
    # [5 END] (log .06 / (7/6)) finish too, three in all: the search stops and [END] wins
    assert title(length_penalty=1.0) == [START, END]
    assert title(min_len=1, length_penalty=1.0) == [START, 4, END]  # END barred at step 0
    assert decoder(model, 1, 4, no_repeat_ngram=1)(article)[0].tolist() == [START, 4, END]  # greedy


def test_length_normalisation_works_with_either_decoder():
    from titlegen.data import Vocab
    from titlegen.decode import Titler
    keras.utils.set_random_seed(4)
    model, vocab = build_model(model_settings(12, char_size=8, hidden_size=16)), Vocab(list("abcdefgh"), 1)
    articles = ["abcdefgh", "hgfe", "aabbccdd"]
    naive = Titler(model, vocab, 400, "naive", 3, 8, length_penalty=1.0)(articles)
    assert Titler(model, vocab, 400, "incremental", 3, 8, length_penalty=1.0)(articles) == naive
