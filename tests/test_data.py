import pytest

from conftest import write_jsonl
from titlegen.data import END, PAD, START, UNK, TitleError, Vocab, chunked, pad, padded
from titlegen.sources import read_jsonl


def test_special_ids_are_the_blogs():
    assert (PAD, UNK, START, END) == (0, 1, 2, 3)


def test_vocab_keeps_chars_seen_min_count_times_in_count_then_codepoint_order():
    # counts: d 4, a 3, c 3, b 2 (b is one short of min_count 3)
    vocab = Vocab.build(["dab", "dacd", "acbdc"], min_count=3)
    assert vocab.chars == ["d", "a", "c"]  # d most frequent; a before c on the tie (code point)
    assert [vocab.char2id[c] for c in "dac"] == [4, 5, 6]
    assert len(vocab) == 7
    assert vocab.encode("b", 10) == [UNK]
    assert Vocab.build(["dab", "dacd", "acbdc"], min_count=2).chars == ["d", "a", "c", "b"]


def test_vocab_is_deterministic_and_fingerprinted():
    texts = ["今天天气很好", "明天天气不好"]
    a, b = Vocab.build(texts, 1), Vocab.build(list(reversed(texts)), 1)
    assert a.chars == b.chars and a.fingerprint == b.fingerprint
    assert Vocab.build(texts, 2).fingerprint != a.fingerprint


def test_encode_truncates_and_decode_drops_special_ids():
    vocab = Vocab(list("abcde"), min_count=1)  # a=4 ... e=8
    assert vocab.encode("abcxe", maxlen=4) == [4, 5, 6, UNK]
    assert vocab.encode_title("abcde", maxlen=5) == [START, 4, 5, 6, END]  # maxlen - 2 characters
    assert vocab.decode([START, 4, UNK, 5, PAD, END, 8]) == "abe"
    assert vocab.decode(vocab.encode("edcba", 400)) == "edcba"


def test_vocab_save_load_round_trip(tmp_path):
    vocab = Vocab.build(["春眠不觉晓", "处处闻啼鸟"], 1, source={"path": "x"})
    vocab.save(tmp_path / "v.json")
    loaded = Vocab.load(tmp_path / "v.json")
    assert loaded.chars == vocab.chars and loaded.min_count == 1 and loaded.fingerprint == vocab.fingerprint


def test_pad_and_batches_zero_pad_to_longest_row():
    assert pad([[5, 6, 7], [5]]).tolist() == [[5, 6, 7], [5, 0, 0]]
    xs, ys = [[4], [4, 5, 6], [4, 5]], [[2, 3], [2, 4, 3], [2, 4, 4, 3]]
    examples = [{"article": x, "title": y} for x, y in zip(xs, ys)]
    got = [padded(batch) for batch in chunked(examples, 2)]
    assert [b["article"].tolist() for b in got] == [[[4, 0, 0], [4, 5, 6]], [[4, 5]]]
    assert got[0]["title"].tolist() == [[2, 3, 0], [2, 4, 3]] and got[1]["title"].tolist() == [[2, 4, 4, 3]]


@pytest.mark.parametrize("line, message", [
    ('{"title": "t", "content": ', "not valid JSON"),
    ('{"title": "t"}', "field 'content' must be a non-empty string, got missing"),
    ('{"title": "  ", "content": "c"}', "field 'title' must be a non-empty string"),
    ('{"title": 5, "content": "c"}', "field 'title' must be a non-empty string"),
    ('["t", "c"]', "expected a JSON object"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "好", "content": "很好"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(TitleError) as e:
        read_jsonl(str(path))
    assert f"{path}:2:" in str(e.value) and message in str(e.value)


def test_non_utf8_line_is_an_error(tmp_path):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes('{"title": "好", "content": "很好"}\n'.encode() + '{"title": "好", "content": "很好"}\n'.encode("gbk"))
    with pytest.raises(TitleError, match=r"gbk.jsonl:2: not UTF-8"):
        read_jsonl(str(path))


def test_read_jsonl_reads_every_row(tmp_path):
    rows = [{"title": "标题", "content": "文章"}, {"title": "二", "content": "三", "extra": 1}]
    assert read_jsonl(write_jsonl(tmp_path / "ok.jsonl", rows)) == [{"title": "标题", "content": "文章"},
                                                                     {"title": "二", "content": "三"}]
