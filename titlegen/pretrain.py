"""Pretraining on articles alone (beyond the blog): pseudo titles the articles hold in any number.

A user's corpus usually holds far more article text than good titles (the shipped LCSTS: 937k
characters of articles, 156k of titles). Before the title epochs, `PRETRAIN_EPOCHS` epochs teach the
model to write one sentence of an article from the rest of it, with the title model, its loss and
its training step unchanged; only the pairs differ (`PRETRAIN_TASK`):

- "gap": PEGASUS's gap-sentence generation (Zhang et al. 2020, "Ind-Orig"): the sentence most like the
  rest of its article (character ROUGE-1 F against the other sentences, the first among equals) is
  taken out and is the pseudo title; the rest, in order, is the pseudo article;
- "lead": the first sentence, generated from the rest (the lead bias of news; Zhu et al. 2021).

A sentence ends at 。！？!?； or a line break (the mark stays with it; a pseudo title drops its
closing mark, as titles do). An article of fewer than two sentences makes no pair.
"""
import re
from collections import Counter
from typing import NamedTuple
SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n")
CLOSING = "。！？!?；;，,、 "


class Pair(NamedTuple):
    """A pseudo title and its pseudo article, as a corpus Record reads (title, content)."""
    where: str
    title: str
    content: str
    error: str = None


def sentences(text):
    """The article's sentences, in order, each with its closing mark; empty ones left out."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def unigram_f(a, b):
    """ROUGE-1 F of two texts over their characters (counts clipped, as ROUGE-1 counts them)."""
    overlap = sum((Counter(a) & Counter(b)).values())
    return 2 * overlap / (len(a) + len(b)) if overlap else 0.0


def pseudo_pair(content, task="gap"):
    """(pseudo title, pseudo article) of an article, or None where it has fewer than two sentences."""
    parts = sentences(content)
    if len(parts) < 2:
        return None
    if task == "lead":
        chosen = 0
    else:
        scores = [unigram_f(s, "".join(parts[:i] + parts[i + 1:])) for i, s in enumerate(parts)]
        chosen = scores.index(max(scores))
    title = parts[chosen].rstrip(CLOSING)
    rest = "".join(parts[:chosen] + parts[chosen + 1:])
    return (title, rest) if title and rest else None


class PseudoCorpus:
    """A corpus's articles as pseudo pairs (`pseudo_pair`): what the pretraining epochs read, with
    `records()` as a Corpus has them. Titles, if the source has any, are ignored."""

    def __init__(self, corpus, task):
        self.corpus, self.task = corpus, task

    def records(self):
        for record in self.corpus.records():
            pair = pseudo_pair(record.content, self.task)
            if pair:
                yield Pair(record.where, *pair)

    def count(self):
        """How many pairs a pass yields."""
        return sum(1 for _ in self.records())
