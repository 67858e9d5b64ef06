"""Text -> ids and back: the vocabulary (characters, or jieba words), and the padded batches
training reads, made from a stream of records (`sources`) with a bounded shuffle buffer and
optional bucketing by length, so memory does not grow with the corpus.
"""
import hashlib
import json
import logging
from collections import Counter

import numpy as np

from .errors import TitleError  # noqa: F401 (also reached through this module)
from .files import write_json

PAD, UNK, START, END = 0, 1, 2, 3  # the blog's special ids; characters start at FIRST_CHAR
FIRST_CHAR = 4


WORD_WINDOW = 8  # "word": an article is cut to maxlen * WORD_WINDOW characters before jieba reads it


def tokenize(text, tokenizer="char"):
    """The blog's characters, or jieba's words ("word")."""
    return list(text) if tokenizer == "char" else _jieba().lcut(text)


def _jieba():
    import jieba  # imported on first use: loading its dictionary takes about a second

    jieba.setLogLevel(logging.WARNING)  # not its "Building prefix dict ..." lines on every start
    return jieba


class Vocab:
    """The blog's vocabulary: ids 0 pad, 1 unk, 2 start, 3 end, tokens from 4.

    Tokens are characters (tokenizer "char", the blog's) or jieba words ("word"). They are ordered
    by count (most frequent first), ties by code point, so the same corpus and `min_count` always
    give the same ids. (The blog kept a Python 2 dict's arbitrary order.) `chars` holds the tokens.
    """

    def __init__(self, chars, min_count, source=None, tokenizer="char"):
        self.chars = list(chars)
        self.min_count = min_count
        self.source = source or {}
        self.tokenizer = tokenizer
        self.char2id = {c: i for i, c in enumerate(self.chars, FIRST_CHAR)}

    @classmethod
    def build(cls, texts, min_count, source=None, tokenizer="char"):
        """Count every token of `texts` (any iterable, read once); keep those seen at least
        `min_count` times."""
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text, tokenizer))
        kept = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(kept, min_count, source, tokenizer)

    def __len__(self):
        return len(self.chars) + FIRST_CHAR

    @property
    def fingerprint(self):
        """A short hash of the id assignment: a model is only valid with the vocabulary it was trained on."""
        text = "\n".join(self.chars) if self.tokenizer == "char" else "word\n" + "\n".join(self.chars)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def tokens(self, text, maxlen):
        """The first `maxlen` tokens of text. ("word" reads only the first maxlen * WORD_WINDOW
        characters, so a million-character article costs no more than a long one.)"""
        if self.tokenizer == "char":
            return text[:maxlen]
        return tokenize(text[:maxlen * WORD_WINDOW], "word")[:maxlen]

    def encode(self, text, maxlen):
        """Article -> ids: the first `maxlen` tokens, unknown ones as UNK."""
        return [self.char2id.get(c, UNK) for c in self.tokens(text, maxlen)]

    def encode_title(self, title, maxlen, oovs=()):
        """Title -> [START] + ids of the first `maxlen - 2` tokens + [END]; with copying, the
        characters of the article's `oovs` as their temporary ids (`encode_extended`)."""
        return [START] + [self.char2id.get(c, len(self) + oovs.index(c) if c in oovs else UNK)
                          for c in self.tokens(title, maxlen - 2)] + [END]

    def decode(self, ids, oovs=()):
        """Ids -> text; the special ids 0-3 are dropped. With copying, id len(self) + i is the
        article's i-th out-of-vocabulary character, oovs[i]."""
        size = len(self)
        return "".join(self.chars[i - FIRST_CHAR] if i < size else oovs[i - size]
                       for i in ids if i >= FIRST_CHAR and i - size < len(oovs))

    def encode_extended(self, text, maxlen):
        """Article -> (extended ids, oovs) for copying: each out-of-vocabulary token of the
        first `maxlen` gets a temporary id len(self) + i, i its place in oovs (first seen first)."""
        oovs, ids = [], []
        for c in self.tokens(text, maxlen):
            i = self.char2id.get(c)
            if i is None:
                if c not in oovs:
                    oovs.append(c)
                i = len(self) + oovs.index(c)
            ids.append(i)
        return ids, oovs

    def unextended(self, extended_ids):
        """Extended ids -> the model's ids: every temporary id reads as UNK."""
        size = len(self)
        return [i if i < size else UNK for i in extended_ids]

    def save(self, path):
        write_json(path, {"min_count": self.min_count, "tokenizer": self.tokenizer, "source": self.source,
                          "fingerprint": self.fingerprint, "chars": self.chars})

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        vocab = cls(d["chars"], d["min_count"], d.get("source"), d.get("tokenizer", "char"))
        if d.get("fingerprint") not in (None, vocab.fingerprint):
            raise TitleError(f"{path}: the characters do not match the file's own fingerprint; "
                             "the vocabulary was edited, restore it or retrain")
        return vocab


def pad(rows):
    """Zero-pad lists of ids to the longest row: an int32 array (batch, longest)."""
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype="int32")
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def encode_example(vocab, title, content, maxlen, copy=False):
    """One article and its title as id lists by name: {"article", "title"}, and with copy=True
    "article_extended", the article's extended ids (the title then uses them too). `model.model_inputs`
    turns an example, or a batch of them (`padded`), into what the model reads."""
    if not copy:
        return {"article": vocab.encode(content, maxlen), "title": vocab.encode_title(title, maxlen)}
    extended, oovs = vocab.encode_extended(content, maxlen)  # the article is tokenized once
    return {"article": vocab.unextended(extended), "title": vocab.encode_title(title, maxlen, oovs),
            "article_extended": extended}


def shuffled(items, buffer_size, rng):
    """Items in a random order, holding at most `buffer_size` of them: each arriving item takes
    the place of a random one in the buffer, which is yielded (tf.data's shuffle buffer)."""
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = rng.integers(buffer_size)
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


def chunked(items, size):
    """Lists of `size` consecutive items (the last may be shorter)."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def bucketed(examples, batch_size, window, rng):
    """Batches of examples of similar article length: each run of `window` batches' worth is
    sorted by length, cut into batches, and the batches are yielded in a random order. Padding
    shrinks to the length differences within a batch; memory stays at one window."""
    for run in chunked(examples, batch_size * window):
        run.sort(key=lambda example: len(example["article"]))
        group = list(chunked(run, batch_size))
        for i in rng.permutation(len(group)):
            yield group[i]


def count_batches(n, batch_size):
    """How many batches `n` examples make (bucketing too: each window is a whole number of batches)."""
    return -(-n // batch_size)


def padded(batch):
    """A list of examples (dicts of id lists) -> one zero-padded int32 array per name."""
    return {name: pad([example[name] for example in batch]) for name in batch[0]}
