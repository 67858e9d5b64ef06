"""Title quality under the CLGE benchmark's protocol, and the LEAD baseline.

CLGE (CLUEbenchmark/CLGE) scores a generated title against its reference character by character:
both lower-cased with their characters joined by spaces; ROUGE-1, ROUGE-2 and ROUGE-L F of the
`rouge` package per example, and nltk's sentence BLEU with SmoothingFunction().method1, each
averaged over the set and multiplied by 100. An empty prediction scores 0.

ROUGE does not see a stuttering title (`注册制册制册制`): readability measures it beside the scores.
"""
import re

import numpy as np
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge import Rouge

METRICS = ("rouge-1", "rouge-2", "rouge-l", "bleu")
READABILITY = ("repeat", "bigram_repeat", "new_double", "length")  # the keys of `readability`
VAL_READABILITY = tuple(f"val_{k}" for k in READABILITY)  # the same of the dev titles, in metrics.csv
ROUGE_L = Rouge(metrics=["rouge-l"])
BACK_TO_BACK = re.compile(r"(..+)\1", re.DOTALL)  # two or more characters, then the same again


def spaced(text):
    return " ".join(text).lower()


def example_scores(prediction, reference):
    """The four scores (0-1) of one prediction."""
    pred, ref = spaced(prediction), spaced(reference)
    if not pred.strip():
        return dict.fromkeys(METRICS, 0.0)
    rouge = Rouge().get_scores(hyps=pred, refs=ref)[0]
    scores = {name: rouge[name]["f"] for name in METRICS[:3]}
    scores["bleu"] = sentence_bleu([ref.split(" ")], pred.split(" "), smoothing_function=SmoothingFunction().method1)
    return scores


def lcs_f(prediction, reference):
    """ROUGE-L F (0-1) as Lin (2004) defines it for one sentence: the longest common subsequence of
    the two token sequences over each one's length, every token counted. (CLGE's `rouge` package
    counts each sentence's distinct tokens instead, so there `北京北京北京` against `北京` scores
    1.0: a repeat costs nothing. This one scores it 0.5.)"""
    if not prediction or not reference:
        return 0.0
    row = [0] * (len(reference) + 1)
    for p in prediction:
        diagonal = 0
        for j, r in enumerate(reference, 1):
            diagonal, row[j] = row[j], diagonal + 1 if p == r else max(row[j], row[j - 1])
    lcs = row[-1]
    return 0.0 if not lcs else 2 * lcs / (len(prediction) + len(reference))


def rouge_l(prediction, reference):
    """ROUGE-L F (0-1) of one prediction, as `example_scores` computes it (CLGE's)."""
    pred, ref = spaced(prediction), spaced(reference)
    if not pred.strip():
        return 0.0
    return ROUGE_L.get_scores(hyps=pred, refs=ref)[0]["rouge-l"]["f"]


def corpus_scores(predictions, references):
    """The four scores averaged over a set, x 100."""
    rows = [example_scores(p, r) for p, r in zip(predictions, references)]
    return {name: 100 * float(np.mean([r[name] for r in rows])) for name in METRICS}


def lead(contents, references):
    """The LEAD baseline: each article's first k characters, k the mean reference length."""
    k = round(float(np.mean([len(r) for r in references])))
    return [c[:k] for c in contents], k


def copy_shares(predictions, contents, known):
    """Percent of the generated title characters that stand in their article, and that are in no
    token of the vocabulary (`known`: its characters; only a copying model can write the others)."""
    chars = [(c, content) for title, content in zip(predictions, contents) for c in title]
    if not chars:
        return {"in_article": 0.0, "out_of_vocab": 0.0}
    return {"in_article": 100 * sum(c in content for c, content in chars) / len(chars),
            "out_of_vocab": 100 * sum(c not in known for c, _ in chars) / len(chars)}


def has_repeated_bigram(title):
    """Whether some character bigram occurs twice in `title` (overlaps count: `啊啊啊` has `啊啊` twice)."""
    bigrams = [title[i:i + 2] for i in range(len(title) - 1)]
    return len(set(bigrams)) < len(bigrams)


def has_new_double(title, article):
    """Whether `title` has a character twice in a row (`制制`) that its article never writes twice in a row."""
    return any(a == b and a + b not in article for a, b in zip(title, title[1:]))


def readability(titles, articles):
    """What a reader sees that ROUGE does not: the percent of titles holding a substring of two or
    more characters repeated back to back (`册制册制`; `哈哈` is not one), the percent holding a
    character bigram twice anywhere, the percent doubling a character their article never doubles
    (`被判刑刑`; `哈哈` where the article has it is not one), and the mean length in characters."""
    if not titles:
        return dict.fromkeys(READABILITY, 0.0)
    return {"repeat": 100 * sum(bool(BACK_TO_BACK.search(t)) for t in titles) / len(titles),
            "bigram_repeat": 100 * sum(map(has_repeated_bigram, titles)) / len(titles),
            "new_double": 100 * sum(map(has_new_double, titles, articles)) / len(titles),
            "length": float(np.mean([len(t) for t in titles]))}
