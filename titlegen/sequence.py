"""The sequence-level stage (beyond the blog): minimum risk training on the model's own titles.

Teacher forcing trains each next character given the reference's previous ones; the beam search
then writes from its own, and nothing in that training scores a whole title. This stage does
(Shen et al. 2016, "Minimum Risk Training for Neural Machine Translation"; Ayana et al. 2016 on
LCSTS headlines). For each article of a batch it takes k candidate titles from the incremental
decoder (with SEQ_BEAM the decoder's own beam-search title and k - 1 drawn from the model, else k
drawn), scores each against the reference with evaluate's ROUGE-L F, and minimises the risk

    risk = Σ_j Q_j · (1 - ROUGE-L F_j),   Q_j = p(c_j)^α / Σ_j' p(c_j')^α

over the article's distinct candidates (α the sharpness; log p(c) the title's summed log-probability
under teacher forcing on it; the reward ROUGE-L F as Lin defines it, or evaluate's with SEQ_REWARD
"clge"), mixed with the reference's cross-entropy:

    loss = λ · cross-entropy + (1 - λ) · risk (averaged over the batch's articles).

A repeat adds length and no match, so Lin's ROUGE-L F punishes a stuttering title, which the
cross-entropy never sees (nor evaluate's: CLGE's package counts a title's distinct characters).
The draws are seeded by the run's seed and the batch's place in it: a resumed run draws the same.
"""
import numpy as np
from keras import ops, tree

from .data import END, PAD, START, UNK, pad
from .metrics import lcs_f, rouge_l
from .model import summed_title_loss, title_log_probs

TOKEN_BASE = 0xF0000  # ids become characters of a private-use plane, so ROUGE-L runs on them as on text
UNKNOWN = {"reference": chr(0x10FFFC), "candidate": chr(0x10FFFD)}  # an unknown never matches an unknown


def as_text(ids, side):
    """A title's ids (after START, before END) as text that ROUGE reads one id per character."""
    return "".join(UNKNOWN[side] if i == UNK else chr(TOKEN_BASE + int(i)) for i in ids)


def title_body(ids):
    """The ids between START and END (or the end)."""
    ids = list(ids[1:])
    return ids[:ids.index(END)] if END in ids else [i for i in ids if i != PAD]


def costs_of(candidates, reference, reward="rouge-l"):
    """1 - the reward of each candidate (id arrays, START first) against the reference (ids, START
    first): ROUGE-L F as Lin defines it (`metrics.lcs_f`), or with reward "clge" as evaluate scores
    it (`metrics.rouge_l`)."""
    ref = as_text(title_body(reference), "reference")
    score = lcs_f if reward == "rouge-l" else rouge_l
    return [1.0 - score(as_text(title_body(c), "candidate"), ref) for c in candidates]


def distinct(candidates):
    """1.0 for each candidate not equal to an earlier one of the same article, else 0.0."""
    seen, valid = set(), []
    for c in candidates:
        key = tuple(int(i) for i in c)
        valid.append(0.0 if key in seen else 1.0)
        seen.add(key)
    return valid


def sequence_risk(log_probs, costs, valid, sharpness):
    """Each article's risk (batch,): its candidates' costs weighted by their probabilities renormalised
    over its distinct candidates, Q = softmax(α · log p) where valid, 0 elsewhere.
    log_probs, costs, valid: (batch, k)."""
    scores = sharpness * ops.cast(log_probs, "float32")
    scores = ops.where(valid > 0, scores, ops.full(ops.shape(scores), -np.inf))
    return ops.sum(ops.softmax(scores, axis=1) * costs, axis=1)


def stage_loss(model, inputs, cands, costs, valid, counts, train):
    """The stage's loss on a batch (or a replica's share of it): λ · the references' cross-entropy + (1 - λ)
    · the risk, each divided by the whole batch's counts (real target characters, articles). inputs:
    the batch by name ("article", "title", and with copying "article_extended"); cands (batch, k, L);
    costs, valid (batch, k); `train` a settings.Train."""
    parts, k = model.parts, train.seq_candidates
    x, y, extended = inputs["article"], inputs["title"], inputs.get("article_extended")
    flat = ops.reshape(cands, (-1, ops.shape(cands)[2]))
    encoded = parts.encode(x)
    probs = parts.title_probs(encoded, y[:, :-1], extended)
    cross_entropy = summed_title_loss(y[:, 1:], probs, train.label_smoothing) / counts[0]
    repeated = tree.map_structure(lambda a: ops.repeat(a, k, axis=0), encoded)
    c_probs = parts.title_probs(repeated, flat[:, :-1], None if extended is None else ops.repeat(extended, k, axis=0))
    log_probs = ops.reshape(title_log_probs(flat[:, 1:], c_probs), (-1, k))
    risk = ops.sum(sequence_risk(log_probs, costs, valid, train.seq_sharpness)) / counts[1]
    return train.seq_ce_weight * cross_entropy + (1.0 - train.seq_ce_weight) * risk


def candidates(decoder, inputs, references, train, seed):
    """SEQ_CANDIDATES titles (id arrays, START first) per article (`inputs`: the articles by the model's
    input names): with SEQ_REFERENCE its reference, with SEQ_BEAM the decoder's beam-search title,
    then draws (SEQ_SAMPLE_TOP)."""
    given = [[r] if train.seq_reference else [] for r in references]
    if train.seq_beam:
        titles, _ = decoder.search(inputs)
        given = [g + [t] for g, t in zip(given, titles)]
    n = train.seq_candidates - len(given[0])
    drawn = decoder.sample(inputs, n, seed, train.seq_sample_top) if n > 0 else [[]] * len(references)
    return [g + d for g, d in zip(given, drawn)]


def candidate_arrays(batch, decoder, train, seed):
    """What the stage's graph reads for a batch ({"article", "title"[, "article_extended"]}, as
    `data.padded` gives it): the batch's int32 arrays, the candidates (batch, k, L) zero-padded,
    their costs and distinctness (batch, k), and the counts (real target characters, articles) it
    divides by."""
    x, y = batch["article"], batch["title"]
    inputs = {"article": [row[row != PAD] for row in x]}
    if "article_extended" in batch:
        inputs["article_extended"] = [row[:len(a)] for row, a in zip(batch["article_extended"], inputs["article"])]
    references = [np.asarray([START, *title_body(row), END], np.int32) for row in y]
    cands = candidates(decoder, inputs, references, train, seed)
    k = train.seq_candidates
    flat = pad([c for per_article in cands for c in per_article])
    costs = [costs_of(c, ref, train.seq_reward) for c, ref in zip(cands, y)]
    valid = [distinct(c) for c in cands]
    counts = np.array([np.sum(y[:, 1:] > PAD), len(x)], np.float32)
    return ({name: np.asarray(a, np.int32) for name, a in batch.items()},
            flat.reshape(len(x), k, -1).astype(np.int32), np.array(costs, np.float32), np.array(valid, np.float32),
            counts)
