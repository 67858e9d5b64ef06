"""Corpora on disk -> a stream of (title, content) records, one at a time, never the whole corpus.

Three layouts are read:
- "jsonl": one JSON object per line, the title and content under configurable field names;
- "tsv": `title<TAB>content` per line (the CLGE benchmark's layout; further tabs belong to the content);
- "thucnews": a folder tree of `.txt` files, one article each, its first non-empty line the title
  and the rest the content (THUCNews, the blog's corpus), files in natural name order.

A record that cannot be read (bytes that are not UTF-8, malformed JSON, a missing or empty field,
a line without a tab) comes out as a Record with `error` set and `where` naming the file and line,
so the caller decides to stop or skip; nothing is dropped silently. Every text passes `clean`.
"""
import json
import os
import re
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from .data import TitleError, bucketed, chunked, encode_example, padded, shuffled
from .faults import kill_point
from .text import field_text



class Record(NamedTuple):
    where: str  # "file:line" (or the file, for a THUCNews article)
    title: str = None
    content: str = None
    error: str = None  # why the record is unusable; None when it is good


def detect_format(path, fmt="auto"):
    """The layout of `path`: `fmt` itself, or with "auto" a folder -> thucnews, *.tsv -> tsv,
    anything else -> jsonl."""
    if fmt != "auto":  # settings.FORMATS
        return fmt
    if os.path.isdir(path):
        return "thucnews"
    return "tsv" if path.lower().endswith(".tsv") else "jsonl"


def read_records(path, fmt="auto", fields=("title", "content")):
    """Stream the records of a corpus: Record(where, title, content, error) for every article.

    fields: the JSON Lines field names of the title and the content.
    """
    fmt = detect_format(path, fmt)
    if fmt == "thucnews":
        if not os.path.isdir(path):
            raise TitleError(f"{path}: not a folder; a THUCNews-style corpus is a folder of .txt files")
        return _thucnews(path, fields)
    if not os.path.isfile(path):
        expected = ('a JSON Lines file of {"%s": ..., "%s": ...} objects' % fields if fmt == "jsonl"
                    else "a TSV file of title<TAB>content lines")
        raise TitleError(f"{path}: no such file; expected {expected}")
    return _lines(path, fmt, fields)


def _lines(path, fmt, fields):
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Record(where, error=f"not UTF-8 ({e.reason} at byte {e.start}); re-save the file as UTF-8")
                continue
            if not line.strip():
                continue  # a blank line holds no article
            if fmt == "tsv":
                title, tab, content = line.rstrip("\r\n").partition("\t")
                if not tab:
                    yield Record(where, error="no tab; expected title<TAB>content")
                    continue
                yield _checked(where, {"title": title, "content": content}, ("title", "content"))
                continue
            if lineno == 1 and _opens_array(line):  # the whole corpus as one array (mongoexport --jsonArray)
                raise TitleError(f"{where}: a JSON array, not JSON Lines; write one object per line "
                                 "(for MongoDB: mongoexport without --jsonArray)")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield Record(where, error=f"not valid JSON ({e.msg} at column {e.colno}); expected one "
                                          '{"%s": ..., "%s": ...} object per line' % fields)
                continue
            if not isinstance(row, dict):
                yield Record(where, error=f"expected a JSON object, got {type(row).__name__}")
                continue
            yield _checked(where, row, fields)


def _opens_array(line):
    """Whether a first line opens a JSON array of objects (a one-line array of strings is a bad record)."""
    if not line.lstrip().startswith("["):
        return False
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return True
    return any(isinstance(item, dict) for item in row) if isinstance(row, list) else False


def _checked(where, row, fields):
    """A Record of row's two fields, cleaned, or the reason they are unusable (a field None: not read,
    as a pretraining source's title)."""
    texts = []
    for field in fields:
        if field is None:
            texts.append(None)
            continue
        text, error = field_text(row, field)
        if error:
            return Record(where, error=error)
        texts.append(text)
    return Record(where, *texts)


def _natural(name):
    """Sort key putting 2.txt before 10.txt."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _thucnews(root, fields):
    """The .txt files under root, walked in natural name order, one folder listing at a time."""
    for folder, dirs, files in os.walk(root):
        dirs.sort(key=_natural)
        for name in sorted((n for n in files if n.endswith(".txt")), key=_natural):
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8")
            except UnicodeDecodeError as e:
                yield Record(path, error=f"not UTF-8 ({e.reason} at byte {e.start}); re-save the file as UTF-8")
                continue
            except OSError as e:
                yield Record(path, error=f"cannot be read ({e.strerror})")
                continue
            lines = [line.strip() for line in text.splitlines()]
            lines = [line for line in lines if line]
            if len(lines) < 2:
                yield Record(path, error="expected a title line and at least one line of content")
                continue
            # paragraphs are joined without a separator: the article as one run of characters
            yield _checked(path, {"title": lines[0], "content": "".join(lines[1:])},
                           ("title" if fields[0] else None, "content"))


def read_all(path, fmt="auto", fields=("title", "content"), on_bad="stop", report=None):
    """A small corpus (a dev set, the sample articles) as a list of {field: text} dicts, bad records
    handled as `Corpus.scan` handles them (with "skip", each passed to `report`)."""
    rows = [dict(zip(fields, (r.title, r.content))) for r in Corpus(path, fmt, fields, on_bad).scan(None, report)]
    if not rows:
        raise TitleError(f"{path}: no articles in it")
    return rows


def read_jsonl(path, fields=("title", "content")):
    return read_all(path, "jsonl", fields)


class Corpus:
    """A corpus on disk (JSON Lines, TSV or a THUCNews-style folder), read anew at every pass."""

    def __init__(self, path, fmt="auto", fields=("title", "content"), on_bad="stop"):
        self.path, self.format, self.fields, self.on_bad = path, detect_format(path, fmt), tuple(fields), on_bad
        self.skipped = 0  # bad records the last scan reported and left out

    def records(self):
        """The good records, in stored order (bad ones were reported by `scan`)."""
        return (r for r in read_records(self.path, self.format, self.fields) if r.error is None)

    def scan(self, desc=None, report=None):
        """One checking pass over every record, with a progress bar named `desc` (None: no bar):
        yields the good ones.

        A bad record stops everything with an error naming its file and line (on_bad "stop",
        before anything is written) or is reported (to `report`, else above the bar), counted in
        `skipped` and left out ("skip").
        """
        self.skipped = 0
        records = read_records(self.path, self.format, self.fields)
        with tqdm(records, desc=desc, unit=" articles", disable=desc is None) as bar:
            for record in bar:
                kill_point("scan")
                if record.error is None:
                    yield record
                elif self.on_bad == "stop":
                    raise TitleError(f"{record.where}: {record.error}; mend it, or set ON_BAD_RECORD = 'skip' "
                                     "(--skip-bad) to leave such records out")
                else:
                    self.skipped += 1
                    (report or bar.write)(f"skipped {record.where}: {record.error}")


def epoch_batches(corpus, vocab, settings, epoch, order=True):
    """The padded batches of one epoch as `settings` (a Settings) make them; order=False keeps
    the stored order (the dev set). The order depends on the seed and the epoch alone, so a resumed
    run sees the very batches the interrupted one would have."""
    train, model = settings.train, settings.model
    rng = np.random.default_rng([train.seed, epoch])
    records = corpus.records()
    if order and train.shuffle:
        records = shuffled(records, train.shuffle_buffer, rng)
    examples = (encode_example(vocab, r.title, r.content, model.maxlen, model.copy) for r in records)
    if order and train.bucket:
        groups = bucketed(examples, train.batch_size, train.bucket_window, rng)
    else:
        groups = chunked(examples, train.batch_size)
    return (padded(group) for group in groups)
