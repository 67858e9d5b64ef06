"""Property-based tests (hypothesis) of the text pipeline and `generate` over random strings."""
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ALPHABET, last_line
from seq2seq_title import main
from titlegen.data import END, FIRST_CHAR, START, UNK, TitleError, Vocab
from titlegen.decode import Titler
from titlegen.sources import read_records
from titlegen.text import clean
from titlegen.runfolder import load_trained

# any code point but lone surrogates (which no UTF-8 file or terminal can hold), mixed with the
# model's own characters and control characters so that every branch is reached
TEXT = st.text(st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(ALPHABET),
                         st.sampled_from("\x00\t\n\r\x1b\x7f\u3000")), max_size=60)
VOCAB = Vocab(list(ALPHABET), 1)


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


@pytest.fixture(scope="module")
def titler(cli_model):
    model, vocab, _ = load_trained(cli_model[0])
    return Titler(model, vocab, 400, "naive", 2, 8)


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
