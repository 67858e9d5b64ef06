"""The beam search, written once in `keras.ops` for every decoder and backend: the blog's rules and
every decoding option.

Apart from the model, as keras-hub's samplers are, it asks `next_probs(yid, t, cache, memory) ->
(probabilities (n, V), new cache)` for every beam, n = articles × topk: yid (n, max_len + 1) holds
each beam's START and t ids (zeros after), `cache` any nested structure of one row per beam
(reordered here with the beams), `memory` one of one row per article, shared by its beams (rows
k·i … k·i + k - 1). The naive decoder's function re-runs the whole model; the incremental one
advances it one step (`TitleModel.call_with_cache`).

The blog's rules: a beam scores its summed log(p + 1e-6) (float64); ids below END are never chosen;
step 0 expands START once; each later step keeps the best topk of the topk × topk candidates, the
lower index first among equals; an article is done when its best beam ends with END; after max_len
(max_title_len) steps its best beam is its title (stop_at_end=False always runs max_len steps, for benchmarks).
Options beyond the blog (settings.Decode's fields; config.py's names upper-cased), off by default:
min_title_len (END barred before that many characters), no_repeat_ngram (an id that would repeat
an n-gram of its beam is barred), no_new_double (an id never follows itself unless its article has
it twice in a row: `article`, the articles' ids as titles spell them), length_penalty α > 0
(Wu et al. 2016: an ending beam leaves as a finished title scored log p / ((5 + n) / 6) ** α, n its
ids after START; done when topk titles are finished or no beam is left; the best finished wins).

The search runs in one compiled loop (`backend.compiled`). Once a quarter of the articles in it are
done they leave it (their beams, cache and memory gathered away), so later steps cost what the
remaining articles cost; on JAX, whose compiled loops keep their shapes, nobody leaves.
"""
import numpy as np
from keras import ops, tree

from . import backend
from .data import END, START

NEG_INF = -np.inf


class BeamSearch:
    """The search of one decoder: `next_probs` and `options` (a settings.Decode, its max_title_len
    set), compiled for the model's `variables` (None: run eagerly, as the tests' hand-set
    probabilities are, or inside a graph being built, as the export's)."""

    def __init__(self, next_probs, options, stop_at_end=True, variables=None, leave=backend.DYNAMIC):
        self.next_probs, self.options, self.stop_at_end, self.leave = next_probs, options, stop_at_end, leave
        self.k, self.max_len = options.topk, options.max_title_len
        self.run = self.search if variables is None else backend.compiled(self.search, variables)

    def __call__(self, memory, cache, article):
        """Titles for a batch of articles as NumPy arrays; `article` (batch, L): their ids as a title
        spells them (a copying model's extended ids), zeros after. Returns (ids (batch, max_len + 1),
        START first and zeros after the title; lengths (batch,); scores (batch,), the title's summed
        log(p + 1e-6))."""
        with backend.x64():
            return tuple(ops.convert_to_numpy(x) for x in self.run(memory, cache, ops.convert_to_tensor(article)))

    def search(self, memory, cache, article):
        """The search as tensors: (ids, lengths, scores), as `__call__` gives them."""
        loop = self.start(memory, cache, article)
        batch = ops.shape(loop["done"])[0]
        found = {"ids": ops.zeros((batch, self.max_len + 1), "int32"), "lengths": ops.zeros((batch,), "int32"),
                 "scores": ops.zeros((batch,), "float64")}  # each article's title, once it has one

        def cond(t, loop, found):
            return ops.logical_and(t < self.max_len, ops.logical_not(ops.all(loop["done"])))

        def body(t, loop, found):
            t, loop, ended, title = self.step(t, loop)
            found = record(found, loop["article"], ended, title)
            if self.leave:  # once a quarter of the articles in the loop are done, they leave it
                done = ops.sum(ops.cast(loop["done"], "int32"))
                loop = ops.cond(4 * done >= ops.shape(loop["done"])[0], lambda: leave(loop, self.k), lambda: loop)
            return t, loop, found

        t, loop, found = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), loop, found))
        # the articles still searched: the best finished title if there is one, else the best beam
        last = best_beam(loop, t + 1)
        if self.options.length_penalty:
            last = pick(loop["finished"] > 0, loop["best"], last)
        found = record(found, loop["article"], ops.logical_not(loop["done"]), last)
        return found["ids"], found["lengths"], found["scores"]

    def start(self, memory, cache, article):
        """The loop before the first step: one beam per article expands START (the others at -inf)."""
        k, width = self.k, self.max_len + 1
        batch = ops.shape(tree.flatten(memory)[0])[0]
        yid = ops.concatenate([ops.full((batch, k, 1), START, "int32"), ops.zeros((batch, k, width - 1), "int32")],
                              axis=2)
        first = ops.convert_to_tensor(np.array([[0.0] + [NEG_INF] * (k - 1)]), "float64")
        loop = {"yid": yid, "scores": ops.broadcast_to(first, (batch, k)), "done": ops.zeros((batch,), "bool"),
                "article": ops.arange(batch, dtype="int32"), "cache": cache, "memory": memory}
        if self.options.no_new_double:
            loop["doubled"] = doubled_ids(ops.convert_to_tensor(article, "int32"))
        if self.options.length_penalty:  # the best finished title, and how many have finished
            loop.update(best={"ids": ops.zeros((batch, width), "int32"), "lengths": ops.zeros((batch,), "int32"),
                              "scores": ops.zeros((batch,), "float64"),
                              "normalised": ops.full((batch,), NEG_INF, "float64")},
                        finished=ops.zeros((batch,), "int32"))
        return loop

    def step(self, t, loop):
        """One step: every beam's k best next ids, the best k of the k × k the new beams. Returns
        (t + 1, the loop, the articles that end at this step, their titles)."""
        options, k = self.options, self.k
        b = ops.shape(loop["done"])[0]
        yid = ops.reshape(loop["yid"], (b * k, self.max_len + 1))
        probs, cache = self.next_probs(yid, t, loop["cache"], loop["memory"])
        doubled = ops.repeat(loop["doubled"], k, axis=0) if "doubled" in loop else None
        log_p, ids = best_next(probs, t, yid, k, options.min_title_len, options.no_repeat_ngram, doubled)
        candidates = {"scores": ops.reshape(loop["scores"][:, :, None] + ops.reshape(log_p, (b, k, k)), (b, k * k)),
                      "ids": ops.reshape(ids, (b, k * k)) + END}
        loop = {**loop, "cache": cache}
        if options.length_penalty:
            loop, ended, title = normalised_step(t, loop, candidates, k, options.length_penalty)
        else:
            loop = advance(t, loop, candidates, k)  # the blog's: done when the best beam ends
            ended = ops.equal(loop["yid"][:, 0, t + 1], END) if self.stop_at_end else ops.zeros((b,), "bool")
            title = best_beam(loop, t + 2)
        ended = ops.logical_and(ended, ops.logical_not(loop["done"]))
        loop["done"] = ops.logical_or(loop["done"], ended)
        return t + 1, loop, ended, title


def record(found, articles, ended, title):
    """`found` (a title per article of the batch) with the titles of the loop's rows that ended
    written at their articles' places (`articles`: the article each row holds)."""
    out = {}
    for key, value in found.items():
        rows = ops.where(ops.reshape(ended, (-1,) + (1,) * (len(value.shape) - 1)), title[key],
                         ops.take(value, articles, axis=0))
        out[key] = ops.scatter_update(value, articles[:, None], rows)
    return out


def leave(loop, k):
    """The loop without its done articles: their beams, cache and memory gathered away (shapes change:
    TensorFlow's graphs and PyTorch take it, JAX's compiled loops do not)."""
    keep = ops.cast(ops.nonzero(ops.logical_not(loop["done"]))[0], "int32")
    keep_rows = ops.reshape(keep[:, None] * k + ops.arange(k, dtype="int32")[None], (-1,))
    per_article = {key: tree.map_structure(lambda x: ops.take(x, keep, axis=0), value)
                   for key, value in loop.items() if key != "cache"}
    return {**per_article, "cache": tree.map_structure(lambda s: ops.take(s, keep_rows, axis=0), loop["cache"])}


def normalised_step(t, loop, candidates, k, length_penalty):
    """Length normalisation: every finite candidate that ends is a finished title (the best kept by
    normalised score, an earlier one winning a tie); the best k of the others are the new beams.
    Returns the loop, which articles are done (k titles finished, or no beam left) and their titles."""
    scores, ids = candidates["scores"], candidates["ids"]
    ends = ops.logical_and(ops.equal(ids, END), scores > NEG_INF)
    first, at = backend.top_k(ops.where(ends, scores, NEG_INF), 1)  # the best ending candidate
    first, at = first[:, 0], at[:, 0]
    normalised = first / ops.power((5.0 + ops.cast(t + 1, "float64")) / 6.0, length_penalty)
    width = ops.shape(loop["yid"])[2]
    ended_title = {"ids": ops.take_along_axis(loop["yid"], (at // k)[:, None, None], axis=1)[:, 0]
                   + END * ops.one_hot(t + 1, width, dtype="int32")[None],
                   "lengths": ops.full(ops.shape(first), t + 2, "int32"), "scores": first, "normalised": normalised}
    better = ops.logical_and(ops.any(ends, axis=1), normalised > loop["best"]["normalised"])
    best = pick(better, ended_title, loop["best"])
    finished = loop["finished"] + ops.cast(ops.sum(ops.cast(ends, "int32"), axis=1), "int32")
    before = best_beam(loop, t + 1)  # the title if nothing finished and no beam is left
    new = advance(t, loop, {"scores": ops.where(ops.equal(ids, END), NEG_INF, scores), "ids": ids}, k)
    new.update(best=best, finished=finished)
    ended = ops.logical_or(finished >= k, ops.logical_not(new["scores"][:, 0] > NEG_INF))
    return new, ended, pick(finished > 0, best, before)


def pick(condition, a, b):
    """Per article, a's entries where condition holds, else b's (for the keys of b)."""
    return {key: ops.where(ops.reshape(condition, (-1,) + (1,) * (len(value.shape) - 1)), a[key], value)
            for key, value in b.items()}


def advance(t, loop, candidates, k):
    """The best k candidates become the beams: their ids appended at column t + 1, their caches
    taken from the beams they continue."""
    b, width = ops.shape(loop["yid"])[0], ops.shape(loop["yid"])[2]
    scores, chosen = backend.top_k(candidates["scores"], k)  # best first, the lower index among equals
    parent = chosen // k
    new_ids = ops.take_along_axis(candidates["ids"], chosen, axis=1)
    column = ops.one_hot(t + 1, width, dtype="int32")  # still zero in every beam
    yid = ops.take_along_axis(loop["yid"], parent[:, :, None], axis=1) + new_ids[:, :, None] * column
    rows = ops.reshape(parent + ops.arange(b, dtype="int32")[:, None] * k, (-1,))
    return {**loop, "yid": yid, "scores": scores,
            "cache": tree.map_structure(lambda s: ops.take(s, rows, axis=0), loop["cache"])}


def best_beam(loop, length):
    """Each article's best beam as a title of `length` ids."""
    return {"ids": loop["yid"][:, 0], "lengths": ops.full(ops.shape(loop["scores"])[:1], length, "int32"),
            "scores": loop["scores"][:, 0]}


def best_next(probs, t, yid, k, min_len=0, no_repeat_ngram=0, doubled=None):
    """Each beam's k best next ids (minus END) and their scores log(p + 1e-6), ids below END never
    chosen, the options' bans at -inf: (n, k) each, best first, the lower id first among equals.
    Only the k best p + 1e-6 (float64) are logged, not all V; should two nearly-zero p (< 1e-12) log
    to one float64 (a tie the log's order breaks by id), or an id be banned, every id is logged."""
    shifted = ops.cast(probs[:, END:], "float64") + 1e-6
    size = ops.shape(shifted)[1]
    bans = []
    if min_len:  # END (column 0) not before min_len characters
        bans.append(ops.logical_and(t < min_len, ops.equal(ops.arange(size, dtype="int32"), 0)[None]))
    if no_repeat_ngram:
        bans.append(repeated_ngrams(yid, t, no_repeat_ngram, size))
    if doubled is not None:
        bans.append(new_doubles(yid, t, doubled, size))

    def ban(x):  # -inf where an option forbids the id
        for banned in bans:
            x = ops.where(banned, NEG_INF, x)
        return x

    top, ids = backend.top_k(ban(shifted), k)
    return ops.cond(ops.all(top[:, -1] >= 1e-6 + 1e-12),
                    lambda: (ops.log(top), ids),
                    lambda: backend.top_k(ban(ops.log(shifted)), k))


def repeated_ngrams(yid, t, n, size):
    """(beams, size) True where id END + column would repeat an n-gram of its beam (yid (beams, L),
    START then t ids)."""
    beams, width = ops.shape(yid)[0], ops.shape(yid)[1]
    j = ops.arange(width, dtype="int32")
    match = ops.logical_and(j >= 1, j <= t - n + 1)  # window starts after START
    match = ops.broadcast_to(match[None, :], (beams, width))
    for i in range(n - 1):  # the window's first n-1 ids equal the beam's last n-1
        shifted = ops.concatenate([yid[:, i:], ops.zeros_like(yid[:, :i])], axis=1)
        match = ops.logical_and(match, ops.equal(shifted, yid[:, t - n + 2 + i][:, None]))
    following = ops.concatenate([yid[:, n - 1:], ops.zeros_like(yid[:, :n - 1])], axis=1)
    ids = ops.clip(following - END, 0, size - 1)  # in range where there is no match (which adds 0)
    beam = ops.broadcast_to(ops.arange(beams, dtype="int32")[:, None], (beams, width))
    counts = ops.scatter(ops.reshape(ops.stack([beam, ids], axis=-1), (-1, 2)),
                         ops.reshape(ops.cast(match, "int32"), (-1,)), (beams, size))  # repeats add up
    return counts > 0


def spelled(inputs):
    """The articles' ids as their titles spell them, what the search reads as `article`: a copying
    model's extended ids, else the ids (`inputs`: the model's inputs by name)."""
    return inputs.get("article_extended", inputs["article"])


def doubled_ids(article):
    """(batch, L - 1): each article's ids that stand twice in a row in it (at the first of the two), 0
    elsewhere; ids below END (padding, <unk>) never count."""
    first = article[:, :-1]
    twice = ops.logical_and(ops.equal(first, article[:, 1:]), first >= END)
    return ops.where(twice, first, ops.zeros_like(first))


def new_doubles(yid, t, doubled, size):
    """(beams, size) True at the column of each beam's last id (END + column) unless its article
    has that id twice in a row (`doubled`: doubled_ids of each beam's article): a character never
    follows itself where the article does not write it so. START (t = 0) bans nothing."""
    last = yid[:, t]
    allowed = ops.any(ops.equal(doubled, last[:, None]), axis=1)
    same = ops.equal(ops.arange(size, dtype="int32")[None, :] + END, last[:, None])
    return ops.logical_and(same, ops.logical_not(allowed)[:, None])


def sample(next_probs, memory, cache, n, max_len, seed, top=0):
    """n titles per article drawn from the model, one character at a time (ids below END never
    drawn; top > 0: from each step's `top` most likely ids alone, renormalised): ids (batch·n,
    max_len + 1), START first and zeros after END; lengths (batch·n,) counting START and END. An
    article's titles are rows n·i … n·i + n - 1, as its beams are in `beam_search`. `seed`: two
    int32s; the draws depend on it and the step alone (stateless), so a resumed run draws the same."""
    rows = ops.shape(tree.flatten(memory)[0])[0] * n
    width = max_len + 1
    yid = ops.concatenate([ops.full((rows, 1), START, "int32"), ops.zeros((rows, max_len), "int32")], axis=1)
    lengths = ops.full((rows,), width, "int32")  # a title that never ends has max_len characters after START

    def body(t, yid, lengths, done, cache):
        probs, cache = next_probs(yid, t, cache, memory)
        logits = ops.log(ops.cast(probs[:, END:], "float32") + 1e-12)
        if top:  # the others at -inf
            kth = ops.top_k(logits, top)[0][:, -1:]
            logits = ops.where(logits >= kth, logits, NEG_INF)
        drawn = backend.categorical(logits, seed, t) + END
        drawn = ops.where(done, 0, drawn)  # ended titles stay padded
        yid = yid + drawn[:, None] * ops.one_hot(t + 1, width, dtype="int32")[None]
        ended = ops.equal(drawn, END)
        return t + 1, yid, ops.where(ended, t + 2, lengths), ops.logical_or(done, ended), cache

    def cond(t, yid, lengths, done, cache):
        return ops.logical_and(t < max_len, ops.logical_not(ops.all(done)))

    _, yid, lengths, _, _ = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), yid, lengths,
                                                       ops.zeros((rows,), "bool"), cache))
    return yid, lengths
