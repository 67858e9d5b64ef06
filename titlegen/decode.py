"""Beam search as the blog wrote it (the naive decoder, which re-runs the whole model every step),
its decoding options, and Titler: articles -> titles with either decoder."""
import numpy as np

from .data import END, START, TitleError
from .sources import clean


def top_k(x, k):
    """Indices of the k largest entries of each row, best first; ties go to the lower index
    (the rule of tf.math.top_k, so every decoder breaks ties alike)."""
    return np.argsort(-x, axis=-1, kind="stable")[..., :k]


def banned_ids(prefix, no_repeat_ngram):
    """The ids that would repeat an n-gram of `prefix` (START first, not counted), n = no_repeat_ngram."""
    n, tokens = no_repeat_ngram, list(prefix[1:])
    if n < 1 or len(tokens) < n - 1:
        return set()
    tail = tokens[len(tokens) - n + 1:]
    return {tokens[j + n - 1] for j in range(len(tokens) - n + 1) if tokens[j:j + n - 1] == tail}


def step_log_probs(next_probs, yid, topk, step, min_len, no_repeat_ngram):
    """log(p + 1e-6) of every id >= END after each prefix row of yid, with the options' bans as -inf."""
    probs = np.asarray(next_probs(yid), dtype="float64")  # scores add up in float64
    log_p = np.log(probs[:, END:] + 1e-6)  # ids below END are never chosen
    if topk > log_p.shape[1]:
        raise TitleError(f"topk {topk} is larger than the {log_p.shape[1]} ids a title can use")
    if step < min_len:
        log_p[:, 0] = -np.inf  # column 0 is END
    for row, prefix in enumerate(yid):
        for banned in banned_ids(prefix, no_repeat_ngram):
            log_p[row, banned - END] = -np.inf
    return log_p


def beam_search(next_probs, topk=3, max_len=50, stop_at_end=True, min_len=0, no_repeat_ngram=0,
                length_penalty=0.0):
    """The blog's beam search over a function that scores the next character.

    next_probs(yid) -> (topk, V) probabilities of the id after each prefix row of yid (topk, t).
    Each step scores log(p + 1e-6) over ids >= END only, so pad, unk and start are never chosen.
    Step 0 expands the single START; later steps keep the best topk of the topk x topk
    candidates. Stops as soon as the best-scoring beam ends with END; after max_len steps returns
    the best beam. topk=1 is greedy search. Returns the ids, START first.

    Options beyond the blog, off by default: min_len forbids END before that many characters;
    no_repeat_ngram=n forbids a character that would repeat an n-gram already in the beam;
    length_penalty=α > 0 switches to `normalised_beam_search`.
    stop_at_end=False always runs max_len steps (for benchmarks that need equal work).
    """
    if length_penalty:
        return normalised_beam_search(next_probs, topk, max_len, min_len, no_repeat_ngram, length_penalty)
    yid = np.full((topk, 1), START, dtype="int32")
    scores = np.zeros(topk)
    for step in range(max_len):
        log_p = step_log_probs(next_probs, yid, topk, step, min_len, no_repeat_ngram)
        arg_topk = top_k(log_p, topk)  # each row's best topk
        if step == 0:  # every row is the same START: expand the first only
            rows, ids = np.zeros(topk, dtype=int), arg_topk[0]
        else:  # all topk x topk candidates, beam by beam
            rows, ids = np.repeat(np.arange(topk), topk), arg_topk.reshape(-1)
        cand_scores = scores[rows] + log_p[rows, ids]
        keep = top_k(cand_scores, topk)  # the new beams, best first
        yid = np.concatenate([yid[rows[keep]], (ids[keep] + END)[:, None]], axis=1).astype("int32")
        scores = cand_scores[keep]
        if stop_at_end and yid[0, -1] == END:  # the best beam has ended
            return yid[0]
    return yid[0]


def normalised_beam_search(next_probs, topk, max_len, min_len=0, no_repeat_ngram=0, length_penalty=1.0):
    """Beam search with length normalisation (Wu et al. 2016), an option beyond the blog.

    A beam that ends with END leaves the beam as a finished title, scored by its summed log
    probability divided by ((5 + n) / 6) ** length_penalty, n its ids after START (END included);
    the other candidates refill the beam. Stops once topk titles are finished (or no beam is left)
    and returns the best finished one; after max_len steps with none finished, the best beam.
    """
    yid = np.full((1, 1), START, dtype="int32")
    scores = np.zeros(1)
    finished = []  # (normalised score, ids)
    for step in range(max_len):
        rows_in = np.concatenate([yid, np.repeat(yid[:1], topk - len(yid), axis=0)])  # the model takes topk rows
        log_p = step_log_probs(next_probs, rows_in, topk, step, min_len, no_repeat_ngram)[:len(yid)]
        arg_topk = top_k(log_p, topk)
        rows, ids = np.repeat(np.arange(len(yid)), topk), arg_topk.reshape(-1)
        cand_scores = scores[rows] + log_p[rows, ids]
        alive = []
        for c in top_k(cand_scores, len(cand_scores)):
            if not np.isfinite(cand_scores[c]):
                break
            title = np.append(yid[rows[c]], ids[c] + END)
            if ids[c] + END == END:
                finished.append((cand_scores[c] / ((5 + len(title) - 1) / 6) ** length_penalty, title))
            elif len(alive) < topk:
                alive.append((cand_scores[c], title))
        if len(finished) >= topk or not alive:
            break
        scores = np.array([a for a, _ in alive])
        yid = np.array([t for _, t in alive], dtype="int32")
    if finished:
        return max(finished, key=lambda f: f[0])[1].astype("int32")
    return yid[0]


def naive_next_probs(model, article_ids, topk, extended_ids=None):
    """The blog's decoder step: run the whole model on the article and the full prefix, read the
    last position. The article is re-encoded at every step. A copying model also reads the
    article's extended ids."""
    inputs = [np.array([article_ids] * topk, dtype="int32")]
    extended = [] if extended_ids is None else [np.array([extended_ids] * topk, dtype="int32")]

    def next_probs(yid):
        return model.predict_on_batch(inputs + [yid] + extended)[:, -1]

    return next_probs


def check_article(article):
    """An article must be text with something in it besides spaces and control characters.
    Returns it cleaned (control characters read as spaces, as in training)."""
    if not isinstance(article, str) or not clean(article).strip():
        raise TitleError("the article is empty; pass the article's text, e.g. "
                         'python seq2seq_title.py generate "文章内容"')
    try:
        article.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates: bytes the terminal could not decode
        raise TitleError(f"the article is not valid UTF-8 text (at character {e.start}); pass it as UTF-8") from None
    return clean(article)


DECODERS = ("naive", "incremental")


class Titler:
    """Articles -> titles with either decoder: `naive` (the blog's, one article at a time) or
    `incremental` (encodes once, articles x beams in one compiled loop, the same titles).

    min_len, no_repeat_ngram and length_penalty are decoding options beyond the blog (0 = off);
    length_penalty is the naive decoder's only."""

    def __init__(self, model, vocab, maxlen, decoder="naive", topk=3, max_len=50, min_len=0, no_repeat_ngram=0,
                 length_penalty=0.0):
        if decoder not in DECODERS:
            raise TitleError(f"unknown decoder {decoder!r}; expected one of {', '.join(DECODERS)}")
        if topk < 1:
            raise TitleError(f"topk must be at least 1, got {topk}")
        from .model import copies

        self.model, self.vocab, self.maxlen, self.copy = model, vocab, maxlen, copies(model)
        self.decoder, self.topk, self.max_len = decoder, topk, max_len
        self.options = {"min_len": min_len, "no_repeat_ngram": no_repeat_ngram, "length_penalty": length_penalty}
        if decoder == "incremental" and length_penalty:
            raise TitleError("length normalisation (LENGTH_PENALTY, --length-penalty) needs --decoder naive")
        if decoder == "incremental":
            from .incremental import IncrementalDecoder
            self.incremental = IncrementalDecoder(model, topk, max_len, min_len=min_len,
                                                  no_repeat_ngram=no_repeat_ngram)

    def __call__(self, articles):
        """A list of article texts -> their titles, in order."""
        articles = [check_article(a) for a in articles]
        if self.copy:  # the articles' extended ids, and the characters their temporary ids stand for
            extended, oovs = zip(*(self.vocab.encode_extended(a, self.maxlen) for a in articles))
            ids = [self.vocab.unextended(e) for e in extended]
        else:
            ids = [self.vocab.encode(a, self.maxlen) for a in articles]
            extended, oovs = [None] * len(ids), [()] * len(ids)
        if self.decoder == "incremental":
            titles = self.incremental(ids, list(extended) if self.copy else None)
        else:
            titles = [beam_search(naive_next_probs(self.model, x, self.topk, e), self.topk, self.max_len,
                                  **self.options) for x, e in zip(ids, extended)]
        return [self.vocab.decode(t, o) for t, o in zip(titles, oovs)]
