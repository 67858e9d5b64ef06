"""Property-based tests (hypothesis) of the text pipeline and `generate` over random strings."""
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ALPHABET, last_line, titler_of
from seq2seq_title import main
from titlegen.data import END, FIRST_CHAR, START, UNK, TitleError, Vocab
from titlegen.sources import read_records
from titlegen.text import check_article, clean, parse_line
from titlegen.trained import load_trained

# any code point but lone surrogates (which no UTF-8 file or terminal can hold), mixed with the
# model's own characters and control characters so that every branch is reached
TEXT = st.text(st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(ALPHABET),
                         st.sampled_from("\x00\t\n\r\x1b\x7f\u3000")), max_size=60)
VOCAB = Vocab(list(ALPHABET), 1)
# any code point at all, lone surrogates too: JSON can escape them ("\\udae5"), so a valid JSON line holds them
ANY_TEXT = st.text(st.one_of(st.characters(), st.sampled_from(ALPHABET), st.sampled_from("\x00\n\u3000")),
                   max_size=40)


def holds_utf8(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(TEXT)
def test_clean_keeps_length_and_drops_control_characters(text):
    cleaned = clean(text)
    assert len(cleaned) == len(text)
    assert not any(unicodedata.category(c) == "Cc" for c in cleaned)
    assert all(a == b for a, b in zip(text, cleaned) if unicodedata.category(a) != "Cc")


@given(TEXT, st.integers(1, 80))
def test_encoding_any_text_gives_valid_ids(text, maxlen):
    ids = VOCAB.encode(text, maxlen)
    assert len(ids) == min(len(text), maxlen)
    assert all(i == UNK or FIRST_CHAR <= i < len(VOCAB) for i in ids)
    title = VOCAB.encode_title(text, maxlen + 2)
    assert title[0] == START and title[-1] == END and title[1:-1] == ids
    assert VOCAB.decode(ids) == "".join(c for c in text[:maxlen] if c in VOCAB.char2id)
    extended, oovs = VOCAB.encode_extended(text, maxlen)
    assert VOCAB.decode(extended, oovs) == text[:maxlen]  # copying loses no character


@given(TEXT, TEXT)
def test_any_jsonl_record_reads_back_cleaned_or_is_reported(tmp_path_factory, title, content):
    path = tmp_path_factory.mktemp("p") / "one.jsonl"
    path.write_text(json.dumps({"title": title, "content": content}) + "\n", encoding="utf-8")
    [record] = read_records(str(path))
    if clean(title).strip() and clean(content).strip():
        assert (record.title, record.content, record.error) == (clean(title), clean(content), None)
    else:
        assert record.where == f"{path}:1" and "must be a non-empty string" in record.error


@given(ANY_TEXT, ANY_TEXT)
def test_a_json_escaped_record_reads_back_or_is_its_own_error(tmp_path_factory, title, content):
    path = tmp_path_factory.mktemp("p") / "one.jsonl"
    good = json.dumps({"title": "春", "content": "夏"})
    path.write_text("\n".join([good, json.dumps({"title": title, "content": content}), good]) + "\n")
    records = list(read_records(str(path)))
    assert [(r.title, r.content, r.error) for r in records[::2]] == [("春", "夏", None)] * 2
    usable = all(holds_utf8(t) and clean(t).strip() for t in (title, content))
    assert (records[1].error is None) == bool(usable)
    if usable:
        assert (records[1].title, records[1].content) == (clean(title), clean(content))
    else:
        assert records[1].where == f"{path}:2" and records[1].error.startswith(("field 'title' ", "field 'content' "))


@given(ANY_TEXT, st.booleans())
def test_a_generate_line_is_an_article_or_its_own_error(text, as_json):
    line = json.dumps({"content": text}) if as_json else text.replace("\n", " ")
    article, error = parse_line(line.encode("utf-8", "surrogatepass"))
    assert (article is None) != (error is None)
    if article is not None:  # an article that the titler takes: UTF-8 text with something in it
        assert check_article(article) == clean(text if as_json else line.rstrip("\r\n"))
    elif not as_json and not holds_utf8(text):
        assert error == "not UTF-8"


@pytest.fixture(scope="module")
def titler(cli_model):
    model, vocab, settings = load_trained(cli_model[0])
    return titler_of(model, vocab, "naive", 2, 8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXT)
def test_titler_gives_a_title_of_known_characters_or_says_the_article_is_empty(titler, text):
    if not clean(text).strip():
        with pytest.raises(TitleError, match="the article is empty"):
            titler([text])
        return
    [title] = titler([text])
    assert isinstance(title, str) and len(title) <= 8 and set(title) <= set(ALPHABET)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXT.filter(lambda t: not t.startswith("-")))
def test_generate_prints_a_title_or_one_error_line(cli_model, capsys, text):
    capsys.readouterr()
    status = main(["generate", text, "--model", cli_model[0], "--decoder", "naive", "--max-len", "8"])
    out, err = capsys.readouterr()
    if status == 0:
        assert len(out.splitlines()) == 1 and set(out.strip()) <= set(ALPHABET)
    else:
        assert status == 2 and out == "" and last_line(err).startswith("error: the article is empty")
