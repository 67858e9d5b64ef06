"""The one beam search (titlegen/search.py): the blog's rules and every decoding option, on
probabilities set by hand, and both decoders giving the same titles with each option."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import decoding, model_settings, slow_but, stub_search, titler_of
from titlegen.data import END, START, UNK
from titlegen.decoders import IncrementalDecoder, NaiveDecoder
from titlegen.model import build_model, named_inputs
from titlegen.search import doubled_ids, new_doubles, repeated_ngrams

V = 7  # pad unk start end, and characters 4 5 6


def table_model(table, default=None):
    """A stub model: the next-id probabilities for each prefix, set by hand."""
    calls = []

    def next_probs(yid):
        calls.append(yid.copy())
        return np.array([table.get(tuple(row), default) for row in yid], dtype="float32")

    next_probs.calls = calls
    return next_probs


#            pad  unk  start end  4    5    6
P_START = [0.0, 0.9, 0.9, 0.1, 0.5, 0.3, 0.1]  # unk and start score highest but can never be chosen
P_4 = [0.9, 0.9, 0.9, 0.2, 0.1, 0.6, 0.1]
P_5 = [0.0, 0.0, 0.0, 0.9, 0.03, 0.03, 0.04]
P_45 = [0.0, 0.0, 0.0, 0.5, 0.3, 0.1, 0.1]
UNIFORM = [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]


def test_beam_search_by_hand():
    model = table_model({(START,): P_START, (START, 4): P_4, (START, 5): P_5, (START, 4, 5): P_45},
                        default=UNIFORM)
    ids = stub_search(model, topk=2, max_title_len=10)
    # step 0: 4 (.5) and 5 (.3). step 1: [4 5] .5*.6 = .30 beats [5 END] .3*.9 = .27; the best does
    # not end, so the search goes on. step 2: [4 5 END] .30*.5 = .15 is best and ends: returned.
    assert ids.tolist() == [START, 4, 5, END]
    assert len(model.calls) == 3
    assert [c.tolist() for c in model.calls[2]] == [[START, 4, 5], [START, 5, END]]  # best first


def test_best_beam_ending_stops_at_once():
    p_4 = P_4.copy()
    p_4[END], p_4[5] = 0.95, 0.01  # now [4 END] = .5*.95 = .475 is the best at step 1
    model = table_model({(START,): P_START, (START, 4): p_4, (START, 5): P_5})
    assert stub_search(model, topk=2, max_title_len=10).tolist() == [START, 4, END]
    assert len(model.calls) == 2


def test_no_end_returns_the_best_after_max_len_steps():
    never_end = [0.0, 0.0, 0.0, 0.0, 0.2, 0.7, 0.1]
    ids = stub_search(table_model({}, default=never_end), topk=3, max_title_len=4)
    assert ids.tolist() == [START, 5, 5, 5, 5]


def test_special_ids_are_never_chosen():
    special_heavy = [0.99, 0.99, 0.99, 1e-9, 1e-9, 1e-9, 1e-9]  # only ties among ids >= END
    for topk in (1, 2, 3):
        ids = stub_search(table_model({}, default=special_heavy), topk=topk, max_title_len=5)
        assert min(ids[1:]) >= END
        assert START not in ids[1:].tolist() and UNK not in ids.tolist()


def random_model(seed, vocab_size=9):
    """Fixed pseudo-random next-id probabilities for every prefix."""
    def next_probs(yid):
        out = []
        for row in yid:
            rng = np.random.default_rng([seed] + row.tolist())
            p = rng.random(vocab_size) ** 3
            out.append(p / p.sum())
        return np.array(out, dtype="float32")
    return next_probs


def greedy(next_probs, max_len):
    yid = [START]
    for _ in range(max_len):
        p = next_probs(np.array([yid]))[0]
        yid.append(END + int(np.argmax(p[END:])))
        if yid[-1] == END:
            break
    return yid


@pytest.mark.parametrize("seed", range(20))
def test_topk_1_is_greedy(seed):
    model = random_model(seed)
    assert stub_search(model, topk=1, max_title_len=12).tolist() == greedy(model, 12)


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


def test_new_doubles_by_hand():
    # pad, unk, start never count; 6 stands twice twice over; 5 once
    article = tf.constant([[5, 5, 4, 0, 0], [4, 6, 6, 6, 1], [1, 1, 0, 0, 0]], tf.int32)
    assert doubled_ids(article).numpy().tolist() == [[5, 0, 0, 0], [0, 6, 6, 0], [0, 0, 0, 0]]
    # two beams whose last ids (t = 2) are 5 and 4; columns 0-4 stand for ids END-7
    yid = tf.constant([[START, 4, 5, 0], [START, 5, 4, 0]], tf.int32)

    def banned(doubled, t=2):
        return [{int(i) + END for i in np.flatnonzero(row)} for row in new_doubles(yid, tf.constant(t), doubled, 5)]

    doubled = doubled_ids(article[:2])
    assert banned(doubled) == [set(), {4}]  # the first article doubles 5, the second only 6
    assert banned(tf.reverse(doubled, [0])) == [{5}, {4}]  # articles swapped: 5 is not doubled in the second
    assert banned(doubled, t=0) == [set(), set()]  # after START nothing is barred


def repeat_lover(vocab_size=8):
    """Always likes id 4 best, then 5, then END."""
    def next_probs(yid):
        p = np.full((len(yid), vocab_size), 0.01)
        p[:, 4], p[:, 5], p[:, 3] = 0.5, 0.3, 0.1
        return p
    return next_probs


def test_decoding_options_on_a_stub():
    assert stub_search(repeat_lover(), topk=1, max_title_len=4).tolist() == [2, 4, 4, 4, 4]
    assert stub_search(repeat_lover(), topk=1, max_title_len=4, no_repeat_ngram=1).tolist() == [2, 4, 5, 3]
    # 4 4 5 4, then both 4 and 5 would repeat a bigram (4 4, 4 5): END
    assert stub_search(repeat_lover(), topk=1, max_title_len=6, no_repeat_ngram=2).tolist() == [2, 4, 4, 5, 4, END]
    # 4 never follows itself, as its article never writes 4 4; one that does lets it
    assert stub_search(repeat_lover(), topk=1, max_title_len=4, no_new_double=True, article=(4, 5, 4)).tolist() \
        == [2, 4, 5, 4, 5]
    assert stub_search(repeat_lover(), topk=1, max_title_len=4, no_new_double=True, article=(5, 4, 4)).tolist() \
        == [2, 4, 4, 4, 4]


def test_min_len_holds_end_back():
    def ends(yid):  # END is always the likeliest
        return np.tile([0.0, 0.0, 0.0, 0.9, 0.05, 0.05, 0.0, 0.0], (len(yid), 1))
    assert stub_search(ends, topk=2, max_title_len=5).tolist() == [START, END]
    # END is barred for two steps; the tie between 4 and 5 goes to the lower id
    assert stub_search(ends, topk=2, max_title_len=5, min_title_len=2).tolist() == [START, 4, 4, END]


OPTIONS = [(1, {}), (3, {}), (5, {}), (3, {"min_title_len": 4}), (3, {"no_repeat_ngram": 1}),
           (5, {"no_repeat_ngram": 2, "min_title_len": 2}), (1, {"no_repeat_ngram": 2, "min_title_len": 3}),
           (3, {"length_penalty": 1.0}), (5, {"length_penalty": 0.6, "no_repeat_ngram": 2, "min_title_len": 3}),
           (1, {"max_title_len": 5, "length_penalty": 2.0}), (3, {"no_new_double": True}),
           (5, {"no_new_double": True, "no_repeat_ngram": 3, "length_penalty": 0.6})]


@pytest.mark.parametrize("version", slow_but("2019", "2018", "2019"))
@pytest.mark.parametrize("topk, options", OPTIONS)
def test_incremental_gives_the_naive_titles_with_options(version, topk, options):
    keras.utils.set_random_seed(3)
    settings = model_settings(40, char_size=16, hidden_size=32, version=version)
    model = build_model(settings)
    rng = np.random.default_rng(0)
    articles = [rng.integers(4, 40, size=n).tolist() for n in (5, 30, 12, 21)] + [[7, 7, 9, 9, 30, 30, 30, 5]]
    options = decoding(topk=topk, **{"max_title_len": 12, **options})
    naive = NaiveDecoder(model, options)({"article": articles})
    assert [t.tolist() for t in IncrementalDecoder(model, options)({"article": articles})] == [t.tolist() for t in naive]
    if options.no_repeat_ngram == 1:
        assert all(len(set(t[1:].tolist())) == len(t) - 1 for t in naive)
    if options.no_new_double:  # a character twice in a row only where its article has it so
        for title, article in zip(naive, articles):
            doubled = {x for x, y in zip(article, article[1:]) if x == y}
            assert all(a != b or a in doubled for a, b in zip(title[1:].tolist(), title[2:].tolist()))


def test_length_normalisation_by_hand():
    table = {(START,): [0, 0, 0, 0.4, 0.6, 0, 0, 0], (START, 4): [0, 0, 0, 0.5, 0, 0.5, 0, 0]}

    def next_probs(yid):
        return np.array([table.get(tuple(r), [0.125] * 8) for r in yid])

    # finished: [END] scores log .4 / (6/6)^α; [4 END] scores log(.6 * .5) / (7/6)^α; both found by step 1
    # α = 1: -0.916 against -1.032, the empty title wins
    assert stub_search(next_probs, topk=2, max_title_len=5, length_penalty=1.0).tolist() == [START, END]
    # α = 2: -0.916 against -0.885, the longer one
    assert stub_search(next_probs, topk=2, max_title_len=5, length_penalty=2.0).tolist() == [START, 4, END]
    # the blog's search: [4] (.6) beats [END] (.4) at step 0; then [4 5] and [4 END] tie at .3 and
    # the tie goes to the lower id, END, which is the best beam: stop
    assert stub_search(next_probs, topk=2, max_title_len=5).tolist() == [START, 4, END]


def hand_set_model(version):
    """A model whose every step gives the same probabilities, set by hand: all weights zero but the
    logits' bias, so the head's output is the bias and probs = softmax((bias + χ) / 2), χ = 1 on the
    article's characters. Chosen: p(END) = .3, p(4) = .4, p(5) = .2, p(6) = p(7) = .05."""
    settings = model_settings(8, char_size=8, hidden_size=8, version=version)
    model = build_model(settings)
    model.set_weights([np.zeros(w.shape) for w in model.get_weights()])
    p = np.array([1e-12, 1e-12, 1e-12, 0.3, 0.4, 0.2, 0.05, 0.05])
    chi = np.array([0, 0, 0, 0, 1, 1, 1, 0])  # the article [4, 5, 6]
    model.get_layer("logits").bias.assign(2 * np.log(p) - chi)
    return model, settings, [[4, 5, 6]]


@pytest.mark.parametrize("version", ["2018", "2019"])
@pytest.mark.parametrize("decoder", [NaiveDecoder, IncrementalDecoder])
def test_both_decoders_on_a_model_set_by_hand(version, decoder):
    model, settings, article = hand_set_model(version)
    probs = np.asarray(model(named_inputs(np.array(article), np.array([[START, 4]]))))[0]
    np.testing.assert_allclose(probs[:, END:], [[0.3, 0.4, 0.2, 0.05, 0.05]] * 2, rtol=1e-5)

    def title(**options):
        return decoder(model, decoding(topk=3, max_title_len=4, **options))({"article": article})[0].tolist()

    assert title() == [START, 4, 4, 4, 4]  # 4ⁿ stays the best beam and never ends
    # 4 may not repeat: [4 END] .4·.3 and [END 4] .3·.4 tie, the first beam's candidate first: it ends
    assert title(no_repeat_ngram=1) == [START, 4, END]
    # α = 1: [END] (log .3 / 1) is finished at step 0; at step 1 [4 END] (log .12 / (7/6)) and
    # [5 END] (log .06 / (7/6)) finish too, three in all: the search stops and [END] wins
    assert title(length_penalty=1.0) == [START, END]
    assert title(min_title_len=1, length_penalty=1.0) == [START, 4, END]  # END barred at step 0
    greedy = decoding(topk=1, max_title_len=4, no_repeat_ngram=1)
    assert decoder(model, greedy)({"article": article})[0].tolist() == [START, 4, END]


def test_length_normalisation_works_with_either_decoder():
    from titlegen.data import Vocab
    keras.utils.set_random_seed(4)
    settings = model_settings(12, char_size=8, hidden_size=16)
    model, vocab = build_model(settings), Vocab(list("abcdefgh"), 1)
    articles = ["abcdefgh", "hgfe", "aabbccdd"]
    naive = titler_of(model, vocab, "naive", 3, 8, length_penalty=1.0)(articles)
    assert titler_of(model, vocab, "incremental", 3, 8, length_penalty=1.0)(articles) == naive
