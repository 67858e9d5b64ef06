"""The beam search, written once for every decoder: the blog's rules and every decoding option.

Apart from the model, as keras-hub's samplers are, it asks `next_probs(yid, t, state, memory) ->
(probabilities (n, V), new state)` for every beam, n = articles × topk: yid (n, max_len + 1) holds
each beam's START and t ids (zeros after), `state` any nested structure of one row per beam
(reordered here with the beams), `memory` one of one row per article, shared by its beams (rows
k·i … k·i + k - 1). The naive decoder's function re-runs the whole model; the incremental one
advances it one step.

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
Once a quarter of the articles in the loop are done they leave it (their memory, beams and states
gathered away), so later steps cost what the remaining articles cost.
"""
import numpy as np
import tensorflow as tf

from .data import END, START

NEG_INF = np.float64(-np.inf)  # a NumPy scalar: a tensor made at import would start TensorFlow's runtime, and
# MultiWorkerMirroredStrategy must configure it first


def beam_search(next_probs, memory, state, options, article, stop_at_end=True):
    """Titles for a batch of articles, searched as `options` (a settings.Decode, its max_title_len
    set) say; `article` (batch, L): their ids as a title spells them (a copying model's extended
    ids), zeros after. Returns (ids (batch, max_len + 1), START first and zeros after the title;
    lengths (batch,); scores (batch,), the title's summed log(p + 1e-6))."""
    k, max_len, length_penalty = options.topk, options.max_title_len, options.length_penalty
    doubled = doubled_ids(article) if options.no_new_double else None
    width = max_len + 1
    batch = tf.shape(tf.nest.flatten(memory)[0])[0]
    title = {"ids": tf.zeros([batch, width], tf.int32), "lengths": tf.zeros([batch], tf.int32),
             "scores": tf.zeros([batch], tf.float64)}
    loop = {"yid": tf.concat([tf.fill([batch, k, 1], START), tf.zeros([batch, k, max_len], tf.int32)], axis=2),
            # step 0 expands the first beam only: the others start at -inf
            "scores": tf.tile(tf.constant([[0.0] + [-np.inf] * (k - 1)], tf.float64), [batch, 1]),
            "done": tf.zeros([batch], tf.bool), "article": tf.range(batch), "state": state, "memory": memory}
    if length_penalty:  # the best finished title, and how many have finished
        loop.update(best={**title, "normalised": tf.fill([batch], NEG_INF)}, finished=tf.zeros([batch], tf.int32))

    def body(t, loop, found):
        b = tf.shape(loop["article"])[0]
        yid = tf.reshape(loop["yid"], [b * k, width])
        probs, state = next_probs(yid, t, loop["state"], loop["memory"])
        # each beam's k best: (b·k, k)
        beams_doubled = None if doubled is None else tf.repeat(tf.gather(doubled, loop["article"]), k, axis=0)
        log_p, ids = best_next(probs, t, yid, k, options.min_title_len, options.no_repeat_ngram, beams_doubled)
        candidates = {"scores": tf.reshape(loop["scores"][:, :, None] + tf.reshape(log_p, [b, k, k]), [b, k * k]),
                      "ids": tf.reshape(ids, [b, k * k]) + END}
        loop = {**loop, "state": state}
        if length_penalty:
            loop, ended, title = normalised_step(t, loop, candidates, k, length_penalty)
        else:
            loop = advance(t, loop, candidates, k)  # the blog's: done when the best beam ends
            ended = tf.equal(loop["yid"][:, 0, t + 1], END) if stop_at_end else tf.zeros([b], tf.bool)
            title = best_beam(loop, t + 2)
        ended = tf.logical_and(ended, tf.logical_not(loop["done"]))
        found = record(found, loop["article"], ended, title)
        loop["done"] = tf.logical_or(loop["done"], ended)
        done = tf.reduce_sum(tf.cast(loop["done"], tf.int32))
        return t + 1, tf.cond(4 * done >= b, lambda: leave(loop, k), lambda: loop), found

    def cond(t, loop, found):
        return tf.logical_and(t < max_len, tf.logical_not(tf.reduce_all(loop["done"])))

    def relaxed(x):  # the articles' and beams' axis shrinks as articles leave
        return tf.TensorShape([None] + x.shape.as_list()[1:])

    t, loop, found = tf.while_loop(cond, body, (tf.constant(0), loop, title), shape_invariants=(
        tf.TensorShape([]), tf.nest.map_structure(relaxed, loop), tf.nest.map_structure(lambda x: x.shape, title)))
    # the articles still searched: the best finished title if there is one, else the best beam
    last = best_beam(loop, t + 1)
    last = pick(loop["finished"] > 0, loop["best"], last) if length_penalty else last
    found = record(found, loop["article"], tf.logical_not(loop["done"]), last)
    return found["ids"], found["lengths"], found["scores"]


def normalised_step(t, loop, candidates, k, length_penalty):
    """Length normalisation: every finite candidate that ends is a finished title (the best kept by
    normalised score, an earlier one winning a tie); the best k of the others are the new beams.
    Returns the loop, which articles are done (k titles finished, or no beam left) and their titles."""
    scores, ids = candidates["scores"], candidates["ids"]
    ends = tf.logical_and(tf.equal(ids, END), scores > NEG_INF)
    first, at = tf.math.top_k(tf.where(ends, scores, NEG_INF), 1)  # the best ending candidate
    first, at = first[:, 0], at[:, 0]
    normalised = first / tf.pow((5.0 + tf.cast(t + 1, tf.float64)) / 6.0, length_penalty)
    ended_title = {"ids": tf.gather(loop["yid"], at // k, batch_dims=1)
                   + END * tf.one_hot(t + 1, tf.shape(loop["yid"])[2], dtype=tf.int32),
                   "lengths": tf.fill(tf.shape(first), t + 2), "scores": first, "normalised": normalised}
    better = tf.logical_and(tf.reduce_any(ends, axis=1), normalised > loop["best"]["normalised"])
    best = pick(better, ended_title, loop["best"])
    finished = loop["finished"] + tf.reduce_sum(tf.cast(ends, tf.int32), axis=1)
    before = best_beam(loop, t + 1)  # the title if nothing finished and no beam is left
    new = advance(t, loop, {"scores": tf.where(tf.equal(ids, END), NEG_INF, scores), "ids": ids}, k)
    new.update(best=best, finished=finished)
    ended = tf.logical_or(finished >= k, tf.logical_not(new["scores"][:, 0] > NEG_INF))
    return new, ended, pick(finished > 0, best, before)


def pick(condition, a, b):
    """Per article, a's entries where condition holds, else b's (for the keys of b)."""
    return {key: tf.where(tf.reshape(condition, [-1] + [1] * (value.shape.rank - 1)), a[key], value)
            for key, value in b.items()}


def advance(t, loop, candidates, k):
    """The best k candidates become the beams: their ids appended at column t + 1, their states
    taken from the beams they continue."""
    b = tf.shape(loop["yid"])[0]
    scores, chosen = tf.math.top_k(candidates["scores"], k)  # best first, the lower index among equals
    parent = chosen // k
    new_ids = tf.gather(candidates["ids"], chosen, batch_dims=1)
    column = tf.one_hot(t + 1, tf.shape(loop["yid"])[2], dtype=tf.int32)  # still zero in every beam
    yid = tf.gather(loop["yid"], parent, batch_dims=1) + new_ids[:, :, None] * column
    rows = tf.reshape(parent + tf.range(b)[:, None] * k, [b * k])
    return {**loop, "yid": yid, "scores": scores, "state": tf.nest.map_structure(lambda s: tf.gather(s, rows),
                                                                                 loop["state"])}


def best_beam(loop, length):
    """Each article's best beam as a title of `length` ids."""
    return {"ids": loop["yid"][:, 0], "lengths": tf.fill(tf.shape(loop["scores"])[:1], length),
            "scores": loop["scores"][:, 0]}


def record(found, articles, ended, title):
    """`found` with the titles of the articles that ended written at their places."""
    where = tf.boolean_mask(articles, ended)[:, None]
    return {key: tf.tensor_scatter_nd_update(found[key], where, tf.boolean_mask(title[key], ended))
            for key in found}


def leave(loop, k):
    """The loop without its done articles: their beams, states and memory gathered away."""
    keep = tf.where(tf.logical_not(loop["done"]))[:, 0]
    keep_rows = tf.reshape(keep[:, None] * k + tf.range(k, dtype=keep.dtype)[None], [-1])
    per_article = {key: tf.nest.map_structure(lambda x: tf.gather(x, keep), value)
                   for key, value in loop.items() if key != "state"}
    return {**per_article, "state": tf.nest.map_structure(lambda s: tf.gather(s, keep_rows), loop["state"])}


def best_next(probs, t, yid, k, min_len=0, no_repeat_ngram=0, doubled=None):
    """Each beam's k best next ids (minus END) and their scores log(p + 1e-6), ids below END never
    chosen, the options' bans at -inf: (n, k) each, best first, the lower id first among equals.
    Only the k best p + 1e-6 (float64) are logged, not all V; should two nearly-zero p (< 1e-12) log
    to one float64 (a tie the log's order breaks by id), or an id be banned, every id is logged."""
    shifted = tf.cast(probs[:, END:], tf.float64) + 1e-6
    bans = []
    if min_len:  # END (column 0) not before min_len characters
        bans.append(tf.logical_and(t < min_len, tf.equal(tf.range(tf.shape(shifted)[1]), 0)[None]))
    if no_repeat_ngram:
        bans.append(repeated_ngrams(yid, t, no_repeat_ngram, tf.shape(shifted)[1]))
    if doubled is not None:
        bans.append(new_doubles(yid, t, doubled, tf.shape(shifted)[1]))

    def ban(x):  # -inf where an option forbids the id
        for banned in bans:
            x = tf.where(banned, NEG_INF, x)
        return x

    top, ids = tf.math.top_k(ban(shifted), k)
    return tf.cond(tf.reduce_all(top[:, -1] >= 1e-6 + 1e-12),
                   lambda: (tf.math.log(top), ids),
                   lambda: tuple(tf.math.top_k(ban(tf.math.log(shifted)), k)))


def repeated_ngrams(yid, t, n, size):
    """(beams, size) True where id END + column would repeat an n-gram of its beam (yid (beams, L),
    START then t ids)."""
    width = tf.shape(yid)[1]
    j = tf.range(width)
    match = tf.logical_and(j >= 1, j <= t - n + 1)  # window starts after START
    match = tf.broadcast_to(match[None, :], tf.shape(yid))
    for i in range(n - 1):  # the window's first n-1 ids equal the beam's last n-1
        shifted = tf.concat([yid[:, i:], tf.zeros_like(yid[:, :i])], axis=1)
        match = tf.logical_and(match, tf.equal(shifted, yid[:, t - n + 2 + i][:, None]))
    following = tf.concat([yid[:, n - 1:], tf.zeros_like(yid[:, :n - 1])], axis=1)
    where = tf.where(match)
    ids = tf.gather_nd(following, where) - END
    counts = tf.scatter_nd(tf.stack([tf.cast(where[:, 0], tf.int32), ids], axis=1),
                           tf.ones_like(ids), [tf.shape(yid)[0], size])  # repeats add up
    return counts > 0


def spelled(ids, extended=None):
    """The articles' ids as their titles spell them, what `beam_search` reads as `article`: a copying
    model's extended ids (given), else the ids."""
    return ids if extended is None else extended


def doubled_ids(article):
    """(batch, L - 1): each article's ids that stand twice in a row in it (at the first of the two), 0
    elsewhere; ids below END (padding, <unk>) never count."""
    first = article[:, :-1]
    twice = tf.logical_and(tf.equal(first, article[:, 1:]), first >= END)
    return tf.where(twice, first, tf.zeros_like(first))


def new_doubles(yid, t, doubled, size):
    """(beams, size) True at the column of each beam's last id (END + column) unless its article
    has that id twice in a row (`doubled`: doubled_ids of each beam's article): a character never
    follows itself where the article does not write it so. START (t = 0) bans nothing."""
    last = yid[:, t]
    allowed = tf.reduce_any(tf.equal(doubled, last[:, None]), axis=1)
    same = tf.equal(tf.range(size)[None, :] + END, last[:, None])
    return tf.logical_and(same, tf.logical_not(allowed)[:, None])


def sample(next_probs, memory, state, n, max_len, seed, top=0):
    """n titles per article drawn from the model, one character at a time (ids below END never
    drawn; top > 0: from each step's `top` most likely ids alone, renormalised): ids (batch·n,
    max_len + 1), START first and zeros after END; lengths (batch·n,) counting START and END. An
    article's titles are rows n·i … n·i + n - 1, as its beams are in `beam_search`. `seed`: two
    int32s; the draws depend on it and the step alone (stateless), so a resumed run draws the same."""
    rows = tf.shape(tf.nest.flatten(memory)[0])[0] * n
    width = max_len + 1
    yid = tf.concat([tf.fill([rows, 1], START), tf.zeros([rows, max_len], tf.int32)], axis=1)
    lengths = tf.fill([rows], width)  # a title that never ends has max_len characters after START

    def body(t, yid, lengths, done, state):
        probs, state = next_probs(yid, t, state, memory)
        logits = tf.math.log(tf.cast(probs[:, END:], tf.float32) + 1e-12)
        if top:  # the others at -inf
            kth = tf.math.top_k(logits, top).values[:, -1:]
            logits = tf.where(logits >= kth, logits, tf.fill(tf.shape(logits), -np.inf))
        step_seed = tf.random.experimental.stateless_fold_in(seed, t)
        drawn = tf.cast(tf.random.stateless_categorical(logits, 1, step_seed)[:, 0], tf.int32) + END
        drawn = tf.where(done, 0, drawn)  # ended titles stay padded
        yid += drawn[:, None] * tf.one_hot(t + 1, width, dtype=tf.int32)
        ended = tf.equal(drawn, END)
        return t + 1, yid, tf.where(ended, t + 2, lengths), tf.logical_or(done, ended), state

    def cond(t, yid, lengths, done, state):
        return tf.logical_and(t < max_len, tf.logical_not(tf.reduce_all(done)))

    _, yid, lengths, _, _ = tf.while_loop(cond, body, (tf.constant(0), yid, lengths, tf.zeros([rows], tf.bool), state))
    return yid, lengths
