import numpy as np
import pytest

from conftest import stub_search
from titlegen.data import END, START, UNK

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
    ids = stub_search(model, topk=2, max_len=10)
    # step 0: 4 (.5) and 5 (.3). step 1: [4 5] .5*.6 = .30 beats [5 END] .3*.9 = .27; the best does
    # not end, so the search goes on. step 2: [4 5 END] .30*.5 = .15 is best and ends: returned.
    assert ids.tolist() == [START, 4, 5, END]
    assert len(model.calls) == 3
    assert [c.tolist() for c in model.calls[2]] == [[START, 4, 5], [START, 5, END]]  # best first


def test_best_beam_ending_stops_at_once():
    p_4 = P_4.copy()
    p_4[END], p_4[5] = 0.95, 0.01  # now [4 END] = .5*.95 = .475 is the best at step 1
    model = table_model({(START,): P_START, (START, 4): p_4, (START, 5): P_5})
    assert stub_search(model, topk=2, max_len=10).tolist() == [START, 4, END]
    assert len(model.calls) == 2


def test_no_end_returns_the_best_after_max_len_steps():
    never_end = [0.0, 0.0, 0.0, 0.0, 0.2, 0.7, 0.1]
    ids = stub_search(table_model({}, default=never_end), topk=3, max_len=4)
    assert ids.tolist() == [START, 5, 5, 5, 5]


def test_special_ids_are_never_chosen():
    special_heavy = [0.99, 0.99, 0.99, 1e-9, 1e-9, 1e-9, 1e-9]  # only ties among ids >= END
    for topk in (1, 2, 3):
        ids = stub_search(table_model({}, default=special_heavy), topk=topk, max_len=5)
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
    assert stub_search(model, topk=1, max_len=12).tolist() == greedy(model, 12)
