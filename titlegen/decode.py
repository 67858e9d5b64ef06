"""Beam search as the blog wrote it: the naive decoder that re-runs the whole model every step."""
import numpy as np

from .data import END, START, TitleError


def beam_search(next_probs, topk=3, max_len=50):
    """The blog's beam search over a function that scores the next character.

    next_probs(yid) -> (topk, V) probabilities of the id after each prefix row of yid (topk, t).
    Each step scores log(p + 1e-6) over ids >= END only, so pad, unk and start are never chosen.
    Step 0 expands the single START; later steps keep the best topk of the topk x topk
    candidates. Stops as soon as the best-scoring beam ends with END; after max_len steps returns
    the best beam. topk=1 is greedy search. Returns the ids, START first.
    """
    yid = np.full((topk, 1), START, dtype="int32")
    scores = np.zeros(topk)
    for step in range(max_len):
        log_p = np.log(np.asarray(next_probs(yid))[:, END:] + 1e-6)  # ids below END are never chosen
        if topk > log_p.shape[1]:
            raise TitleError(f"topk {topk} is larger than the {log_p.shape[1]} ids a title can use")
        arg_topk = np.argsort(log_p, axis=1, kind="stable")[:, -topk:]  # each row's best, ascending
        if step == 0:  # every row is the same START: expand the first only
            rows = np.zeros(topk, dtype=int)
            ids = arg_topk[0]
        else:  # all topk x topk candidates, keep the best topk
            rows = np.repeat(np.arange(topk), topk)
            ids = arg_topk.reshape(-1)
        cand_scores = scores[rows] + log_p[rows, ids]
        keep = np.argsort(cand_scores, kind="stable")[-topk:]
        yid = np.concatenate([yid[rows[keep]], (ids[keep] + END)[:, None]], axis=1).astype("int32")
        scores = cand_scores[keep]
        best = np.argmax(scores)
        if yid[best, -1] == END:
            return yid[best]
    return yid[np.argmax(scores)]


def naive_next_probs(model, article_ids, topk):
    """The blog's decoder step: run the whole model on the article and the full prefix, read the
    last position. The article is re-encoded at every step."""
    xid = np.array([article_ids] * topk, dtype="int32")

    def next_probs(yid):
        return model.predict_on_batch([xid, yid])[:, -1]

    return next_probs


def generate_title(model, vocab, article, maxlen, topk=3, max_len=50):
    """Article text -> title text with the naive beam search."""
    if not article.strip():
        raise TitleError("the article is empty; pass the article's text, e.g. "
                         'python seq2seq_title.py generate "文章内容"')
    ids = vocab.encode(article, maxlen)
    return vocab.decode(beam_search(naive_next_probs(model, ids, topk), topk, max_len))
