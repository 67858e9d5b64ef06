"""Text -> ids and back: reading the corpus, the character vocabulary, padded batches.

Data flows one way through this module: JSON Lines -> (title, content) pairs -> ids -> batches,
and ids -> text on the way out of the decoder.
"""
import hashlib
import json
import os
from collections import Counter

import numpy as np

PAD, UNK, START, END = 0, 1, 2, 3  # the blog's special ids; characters start at FIRST_CHAR
FIRST_CHAR = 4


class TitleError(Exception):
    """An error a user can hit and fix: printed as one line by the command line, no traceback."""


def read_jsonl(path, fields=("title", "content")):
    """Read `{"title": ..., "content": ...}` lines into a list of dicts.

    Every line must hold a JSON object whose `fields` are non-empty strings; anything else is an
    error naming the file and line, so nothing is skipped silently.
    """
    if not os.path.isfile(path):
        raise TitleError(f"{path}: no such file; expected a JSON Lines file of "
                         '{"title": ..., "content": ...} objects')
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TitleError(f"{where}: not UTF-8 ({e.reason} at byte {e.start}); "
                                 "re-save the file as UTF-8") from None
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TitleError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); "
                                 'expected one {"title": ..., "content": ...} object per line') from None
            if not isinstance(row, dict):
                raise TitleError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for field in fields:
                value = row.get(field)
                if not isinstance(value, str) or not value.strip():
                    got = "missing" if field not in row else repr(value)[:40]
                    raise TitleError(f"{where}: field {field!r} must be a non-empty string, got {got}")
            rows.append(row)
    if not rows:
        raise TitleError(f"{path}: no articles in the file")
    return rows


class Vocab:
    """The blog's character vocabulary: ids 0 pad, 1 unk, 2 start, 3 end, characters from 4.

    Characters are ordered by count (most frequent first), ties by code point, so the same corpus
    and `min_count` always give the same ids. (The blog kept a Python 2 dict's arbitrary order.)
    """

    def __init__(self, chars, min_count, source=None):
        self.chars = list(chars)
        self.min_count = min_count
        self.source = source or {}
        self.char2id = {c: i for i, c in enumerate(self.chars, FIRST_CHAR)}

    @classmethod
    def build(cls, texts, min_count, source=None):
        """Count every character of `texts`; keep those seen at least `min_count` times."""
        counts = Counter()
        for text in texts:
            counts.update(text)
        kept = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(kept, min_count, source)

    def __len__(self):
        return len(self.chars) + FIRST_CHAR

    @property
    def fingerprint(self):
        """A short hash of the id assignment: a model is only valid with the vocabulary it was trained on."""
        return hashlib.sha256("\n".join(self.chars).encode("utf-8")).hexdigest()[:16]

    def encode(self, text, maxlen):
        """Article -> ids: the first `maxlen` characters, unknown ones as UNK."""
        return [self.char2id.get(c, UNK) for c in text[:maxlen]]

    def encode_title(self, title, maxlen):
        """Title -> [START] + ids of the first `maxlen - 2` characters + [END]."""
        return [START] + self.encode(title, maxlen - 2) + [END]

    def decode(self, ids, oovs=()):
        """Ids -> text; the special ids 0-3 are dropped. With copying, id len(self) + i is the
        article's i-th out-of-vocabulary character, oovs[i]."""
        size = len(self)
        return "".join(self.chars[i - FIRST_CHAR] if i < size else oovs[i - size]
                       for i in ids if i >= FIRST_CHAR and i - size < len(oovs))

    def encode_extended(self, text, maxlen):
        """Article -> (extended ids, oovs) for copying: each out-of-vocabulary character of the
        first `maxlen` gets a temporary id len(self) + i, i its place in oovs (first seen first)."""
        oovs, ids = [], []
        for c in text[:maxlen]:
            i = self.char2id.get(c)
            if i is None:
                if c not in oovs:
                    oovs.append(c)
                i = len(self) + oovs.index(c)
            ids.append(i)
        return ids, oovs

    def encode_title_extended(self, title, maxlen, oovs):
        """Title -> [START] + ids + [END], characters of the article's oovs as their temporary ids."""
        return [START] + [self.char2id.get(c, len(self) + oovs.index(c) if c in oovs else UNK)
                          for c in title[:maxlen - 2]] + [END]

    def save(self, path):
        write_json(path, {"min_count": self.min_count, "source": self.source,
                          "fingerprint": self.fingerprint, "chars": self.chars})

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        vocab = cls(d["chars"], d["min_count"], d.get("source"))
        if d.get("fingerprint") not in (None, vocab.fingerprint):
            raise TitleError(f"{path}: the characters do not match the file's own fingerprint; "
                             "the vocabulary was edited, restore it or retrain")
        return vocab


def write_json(path, obj):
    """Write JSON atomically: a crash never leaves a half-written file behind."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pad(rows):
    """Zero-pad lists of ids to the longest row: an int32 array (batch, longest)."""
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype="int32")
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def encode_pairs(rows, vocab, maxlen, copy=False):
    """Articles and titles as id lists: [contents, titles], and with copy=True a third list, the
    articles' extended ids; the titles then use the extended ids too."""
    if not copy:
        return [[vocab.encode(r["content"], maxlen) for r in rows],
                [vocab.encode_title(r["title"], maxlen) for r in rows]]
    extended = [vocab.encode_extended(r["content"], maxlen) for r in rows]
    return [[vocab.encode(r["content"], maxlen) for r in rows],
            [vocab.encode_title_extended(r["title"], maxlen, oovs) for r, (_, oovs) in zip(rows, extended)],
            [ids for ids, _ in extended]]


def batches(columns, batch_size, rng=None):
    """Padded batches over one pass of the data, a tuple with one array per column (a list of id
    lists: articles, titles, ...); shuffled when `rng` is given."""
    order = np.arange(len(columns[0])) if rng is None else rng.permutation(len(columns[0]))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield tuple(pad([column[j] for j in idx]) for column in columns)
