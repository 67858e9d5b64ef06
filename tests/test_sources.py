import json
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from conftest import ROOT, write_jsonl
from titlegen.data import (TitleError, Vocab, bucketed, chunked, count_batches, encode_example, padded,
                           shuffled)
from titlegen.sources import detect_format, read_records
from titlegen.text import CONTROL_TO_SPACE, clean



def good(records):
    return [(r.title, r.content) for r in records if r.error is None]


def test_jsonl_with_configured_field_names(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"headline": "标题一", "body": "正文一", "id": 1},
                                              {"headline": "标题二", "body": "正文二"}])
    assert detect_format(path) == "jsonl"
    assert good(read_records(path, fields=("headline", "body"))) == [("标题一", "正文一"), ("标题二", "正文二")]
    bad = list(read_records(path))  # the default fields are not there
    assert [r.error for r in bad] == ["field 'title' must be a non-empty string, got missing"] * 2
    assert [r.where for r in bad] == [f"{path}:1", f"{path}:2"]


def test_tsv_title_tab_content(tmp_path):
    path = tmp_path / "clge.tsv"
    path.write_text("标题一\t正文一\n\n标题二\t正文\t还有一段\n没有制表符\n", encoding="utf-8")
    records = list(read_records(str(path)))
    assert detect_format(str(path)) == "tsv"
    assert good(records) == [("标题一", "正文一"), ("标题二", "正文 还有一段")]  # later tabs: content, cleaned
    assert [(r.where, r.error) for r in records if r.error] == [(f"{path}:4", "no tab; expected title<TAB>content")]


def test_thucnews_tree(tmp_path):
    root = tmp_path / "THUCNews"
    for folder, name, text in [("体育", "10.txt", "标题十\n\u3000\u3000第一段。\n\n\u3000\u3000第二段。\n"),
                               ("体育", "2.txt", "标题二\n正文二\n"),
                               ("财经", "1.txt", "只有标题\n"),
                               ("财经", "3.txt", "标题三\r\n正文三\r\n"),
                               ("财经", "notes.md", "not an article")]:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(text, encoding="utf-8")
    (root / "财经" / "4.txt").write_bytes("标题四\n正文四\n".encode("gbk"))
    records = list(read_records(str(root)))
    assert detect_format(str(root)) == "thucnews"
    # natural order within a folder (2 before 10), folders in order, paragraphs joined
    assert good(records) == [("标题二", "正文二"), ("标题十", "第一段。第二段。"), ("标题三", "正文三")]
    errors = {os.path.basename(r.where): r.error for r in records if r.error}
    assert errors["1.txt"] == "expected a title line and at least one line of content"
    assert errors["4.txt"].startswith("not UTF-8")
    with pytest.raises(TitleError, match="not a folder"):
        read_records(str(root / "体育" / "2.txt"), "thucnews")


@pytest.mark.parametrize("raw, error", [
    (b'{"title": "t", "content": ', "not valid JSON"),
    (b'{"title": "t"}', "field 'content' must be a non-empty string, got missing"),
    (b'{"title": "", "content": "c"}', "field 'title' must be a non-empty string, got ''"),
    (b'{"title": "\\u0001\\t", "content": "c"}', "field 'title' must be a non-empty string"),  # only control chars
    (b'{"title": null, "content": "c"}', "field 'title' must be a non-empty string, got None"),
    ('{"title": "好", "content": "很好"}'.encode("gbk"), "not UTF-8"),
    (b'"just a string"', "expected a JSON object, got str"),
])
def test_each_bad_record_is_named_by_file_and_line(tmp_path, raw, error):
    path = tmp_path / "bad.jsonl"
    path.write_bytes('{"title": "好", "content": "很好"}\n'.encode() + raw + b"\n")
    first, second = read_records(str(path))
    assert first.error is None and second.where == f"{path}:2" and second.error.startswith(error)


def test_control_characters_become_spaces(tmp_path):
    assert sorted(CONTROL_TO_SPACE) == [i for i in range(0x110000) if unicodedata.category(chr(i)) == "Cc"]
    assert clean("春\x00夏\t秋\r\n冬\x1b[0m\u3000") == "春 夏 秋  冬 [0m\u3000"  # Cc only; the ideographic space stays
    path = write_jsonl(tmp_path / "c.jsonl", [{"title": "标\x07题", "content": "正\n文"}])
    assert good(read_records(path)) == [("标 题", "正 文")]


def test_shuffle_buffer_holds_no_more_than_its_size():
    held, most = [0], [0]

    def items():
        for i in range(1000):
            held[0] += 1
            most[0] = max(most[0], held[0])
            yield i

    out = []
    for item in shuffled(items(), 50, np.random.default_rng(0)):
        held[0] -= 1
        out.append(item)
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    assert most[0] == 51  # the buffer and the one item just read


def test_bucketing_cuts_padding_and_keeps_every_example():
    rng = np.random.default_rng(0)
    examples = [{"article": [4] * n, "title": [2, 3]} for n in rng.integers(1, 400, 1000)]
    plain = list(chunked(examples, 64))
    buckets = list(bucketed(examples, 64, 16, np.random.default_rng(1)))
    assert len(plain) == len(buckets) == count_batches(1000, 64) == 16
    assert sorted(len(e["article"]) for b in buckets for e in b) == sorted(len(e["article"]) for e in examples)
    real = sum(len(e["article"]) for e in examples)
    padding = {name: sum(padded(b)["article"].size for b in batches) - real for name, batches in [("plain", plain),
                                                                                           ("bucket", buckets)]}
    assert padding["bucket"] < padding["plain"] / 10  # sorted runs: a batch spans ~25 lengths, not ~400


def test_a_million_character_article_costs_no_more_than_maxlen():
    vocab = Vocab(list("春夏"), 1)
    example = encode_example(vocab, "春" * 1000, "夏" * 1_000_000, 400)
    x, y = example["article"], example["title"]
    assert len(x) == 400 and len(y) == 400 and y[0] == 2 and y[-1] == 3
    words = Vocab(["春天", "夏天"], 1, tokenizer="word")
    assert len(words.encode("春天夏天" * 250_000, 400)) == 400


STREAM = """
import json, resource, sys
import numpy as np
sys.path[:0] = [{root!r}, {tests!r}]
from conftest import tiny_settings
from titlegen.data import Vocab, count_batches
from titlegen.sources import Corpus, epoch_batches

path, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
alphabet = np.array(list("春夏秋冬山水日月风雨花草天地人和"))
with open(path, "w", encoding="utf-8") as f:
    for block in range(0, n, 1000):
        f.writelines(json.dumps({{"title": "".join(row[:12]), "content": "".join(row)}}, ensure_ascii=False) + "\\n"
                     for row in rng.choice(alphabet, (1000, 100)))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
corpus = Corpus(path)
vocab = Vocab.build((t for r in corpus.scan("counting") for t in (r.content, r.title)), 1)
settings = tiny_settings(path, None, seed=1, shuffle=True, shuffle_buffer=1000, maxlen=400, batch_size=64,
                         bucket=True, bucket_window=10, copy=False)
batches = sum(1 for _ in epoch_batches(corpus, vocab, settings, 1))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"vocab": len(vocab), "batches": batches, "expected": count_batches(n, 64),
                  "growth_kb": after - before}}))
"""


@pytest.mark.slow
def test_streaming_200k_articles_holds_a_buffer_not_the_corpus(tmp_path):
    """Reading, counting the vocabulary and one shuffled, bucketed epoch of 200,000 articles: the
    peak memory grows by what the buffers hold, not by the corpus (bench/stream.py prints it)."""
    path = tmp_path / "big.jsonl"
    script = STREAM.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    result = subprocess.run([sys.executable, "-c", script, str(path), "200000"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["vocab"] == 4 + 16 and got["batches"] == got["expected"] == 3125
    # 73 MB of text, over 100 MB as Python strings if held; the shuffle buffer (1000 articles) and
    # one bucket window (640) are a few MB (bench/stream.py: 24 MB with the default 10,000-article buffer)
    assert os.path.getsize(path) > 70e6 and got["growth_kb"] < 30_000, got
