import json
import os
import subprocess
import sys

import pytest

from conftest import ALPHABET, ROOT, last_line, make_corpus, run_cli, tiny_settings, titler_of, write_jsonl
from seq2seq_title import main
from titlegen.data import TitleError, Vocab, tokenize
from titlegen.runfolder import VOCAB_FILE
from titlegen.trained import load_trained
from titlegen.train import train

MILLION = "春夏秋冬" * 250_000


def corpus_with_every_kind_of_bad_line(path):
    """Good lines (one a million characters long, one of characters seen once, one with control
    characters) and, at lines 3 to 7 and 11, six records that cannot be read."""
    good = [json.dumps(r, ensure_ascii=False).encode() for r in make_corpus(40, seed=5)]
    lines = good[:2] + [
        '{"title": "春", "content": '.encode(),  # 3: malformed JSON
        '{"content": "春夏秋冬"}'.encode(),  # 4: no title
        '{"title": "", "content": "春夏"}'.encode(),  # 5: an empty title
        '{"title": "春", "content": "夏秋"}'.encode("gbk"),  # 6: not UTF-8
        '{"title": "\\u0000\\u0007", "content": "春夏"}'.encode(),  # 7: only control characters
        json.dumps({"title": "春夏", "content": MILLION}).encode(),  # 8: a million characters
        json.dumps({"title": "甲乙", "content": "丙丁戊己庚"}, ensure_ascii=False).encode(),  # 9: rare characters
        json.dumps({"title": "春\t夏", "content": "春\x1b[1m夏\r\n秋"}).encode(),  # 10: control characters
        b'{"title": "\\udae5", "content": "\\u6625"}',  # 11: valid JSON, its title a lone surrogate
    ] + good[2:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def test_train_skips_bad_records_reporting_each(tmp_path, corpus, capsys):
    train_path = corpus_with_every_kind_of_bad_line(tmp_path / "messy.jsonl")
    logs = []
    _, vocab, config = train(tiny_settings(train_path, corpus[1], on_bad_record="skip", min_count=2,
                                           steps_per_epoch=None), str(tmp_path / "m"), log=logs.append)
    captured = capsys.readouterr()
    reported = captured.out + captured.err
    for line, why in [(3, "not valid JSON"), (4, "field 'title' must be a non-empty string, got missing"),
                      (5, "field 'title' must be a non-empty string, got ''"), (6, "not UTF-8"),
                      (7, "field 'title' must be a non-empty string"),
                      (11, "field 'title' is not valid UTF-8 text (a lone surrogate '\\udae5' at character 0)")]:
        assert f"skipped {train_path}:{line}: {why}" in reported
    assert config["skipped"] == {"train": 6, "dev": 0}
    assert json.load(open(os.path.join(tmp_path, "m", VOCAB_FILE), encoding="utf-8"))["source"]["articles"] == 43
    assert "skipped 6 bad training and 0 bad dev records (listed above, by file and line)" in logs
    assert "甲" not in vocab.char2id and "\x1b" not in vocab.char2id  # seen once; a control character (cleaned)


def test_train_stops_at_the_first_bad_record_and_touches_nothing(tmp_path, corpus):
    out = str(tmp_path / "m")
    train(tiny_settings(*corpus), out, log=lambda _: None)
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}
    train_path = corpus_with_every_kind_of_bad_line(tmp_path / "messy.jsonl")
    with pytest.raises(TitleError, match=r"messy.jsonl:3: not valid JSON .*ON_BAD_RECORD = 'skip'"):
        train(tiny_settings(train_path, corpus[1]), out, overwrite=True, log=lambda _: None)
    assert before == {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}
    assert not os.path.exists(tmp_path / "fresh")
    with pytest.raises(TitleError, match="messy.jsonl:3"):
        train(tiny_settings(train_path, corpus[1]), str(tmp_path / "fresh"), log=lambda _: None)
    assert not os.path.exists(tmp_path / "fresh")


HOSTILE_LINES = [MILLION.encode(), "甲乙丙丁".encode(), "\x01\x02\x1b".encode(), "春\x1b[1m夏\x00秋".encode(),
                 "春夏秋".encode("gbk"), "日月".encode(),
                 b'{"content": "\\udae5 \xe5\x8c\x97\xe4\xba\xac"}',  # 7: valid JSON, an escaped lone surrogate
                 b'{"content": "\\ud83d\\ude00\xe6\x98\xa5"}',  # 8: an escaped surrogate pair, a real character
                 '{"content": "风雨"}'.encode()]
HOSTILE_EXPECTED = [(True, ""), (True, ""), (False, "empty article"), (True, ""), (False, "not UTF-8"), (True, ""),
                    (False, "field 'conten"), (True, ""), (True, "")]


def check_hostile_output(result, name):
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == list(range(1, len(HOSTILE_LINES) + 1))
    assert [("title" in r, r.get("error", "")[:13]) for r in rows] == HOSTILE_EXPECTED
    assert all(set(r["title"]) <= set(ALPHABET) for r in rows if "title" in r)
    assert f"{name}:3: empty article" in result.stderr and f"{name}:5: not UTF-8" in result.stderr
    assert (f"{name}:7: field 'content' is not valid UTF-8 text (a lone surrogate '\\udae5' at character 0)"
            in result.stderr)
    return rows


def test_generate_gives_a_title_or_a_one_line_error_for_every_bad_input(tmp_path, cli_model):
    out, _ = cli_model
    articles = tmp_path / "bad.txt"
    articles.write_bytes(b"\n".join(HOSTILE_LINES) + b"\n")
    rows = check_hostile_output(run_cli("generate", "--file", str(articles), "--model", out, "--jsonl"), articles)
    piped = subprocess.run([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "generate", "-", "--model", out,
                            "--jsonl"], stdin=open(articles, "rb"), capture_output=True, text=True, timeout=300)
    assert check_hostile_output(piped, "<stdin>") == rows  # a pipe: the same titles, in batches as lines arrive

    control = run_cli("generate", "\x01\x02", "--model", out)
    assert control.returncode == 2 and last_line(control.stderr) == (
        'error: the article is empty; pass the article\'s text, e.g. python seq2seq_title.py generate "文章内容"')


def test_evaluate_stops_at_a_bad_record_or_skips_it(tmp_path, cli_model):
    out, _ = cli_model
    good = [json.dumps(r, ensure_ascii=False) for r in make_corpus(4, seed=9)]
    data = tmp_path / "dev.jsonl"
    data.write_text("\n".join(good[:2] + ['{"title": "春夏", "content": "\\udae5 北京"}'] + good[2:]) + "\n")
    stopped = run_cli("evaluate", "--model", out, "--data", str(data), "--decoder", "naive", "--max-len", "4")
    assert stopped.returncode == 2 and last_line(stopped.stderr) == (
        f"error: {data}:3: field 'content' is not valid UTF-8 text (a lone surrogate '\\udae5' at character 0); "
        "mend it, or set ON_BAD_RECORD = 'skip' (--skip-bad) to leave such records out")
    assert not os.path.exists(tmp_path / "out.jsonl") and "Traceback" not in stopped.stderr
    skipped = run_cli("evaluate", "--model", out, "--data", str(data), "--decoder", "naive", "--max-len", "4",
                      "--skip-bad", "--out", str(tmp_path / "out.jsonl"))
    assert skipped.returncode == 0, skipped.stderr
    assert f"skipped {data}:3: field 'content' is not valid UTF-8" in skipped.stderr
    assert "4 articles of" in skipped.stdout and "(1 bad records skipped, listed above)" in skipped.stdout
    predictions = [json.loads(line) for line in open(tmp_path / "out.jsonl", encoding="utf-8")]
    assert [p["reference"] for p in predictions] == [json.loads(g)["title"] for g in good]


def test_word_tokenizer_travels_with_the_model(tmp_path, capsys):
    assert tokenize("我爱北京天安门", "word") == ["我", "爱", "北京", "天安门"]  # jieba's own example
    sentences = ["北京天安门", "上海东方明珠", "广州塔"]  # jieba: 北京|天安门, 上海|东方明珠, 广州|塔
    rows = [{"title": sentences[i % 3], "content": "".join(sentences[(i + j) % 3] for j in range(3))}
            for i in range(24)]
    train_path = write_jsonl(tmp_path / "words.jsonl", rows)
    out = str(tmp_path / "m")
    _, vocab, _ = train(tiny_settings(train_path, None, monitor="loss", tokenizer="word", epochs=2,
                                      steps_per_epoch=None), out, log=lambda _: None)
    saved = Vocab.load(os.path.join(out, VOCAB_FILE))
    assert saved.tokenizer == "word" and set(saved.chars) == {"北京", "天安门", "上海", "东方明珠", "广州", "塔"}
    assert saved.fingerprint != Vocab(saved.chars, 1).fingerprint  # the same tokens as characters are another vocabulary
    assert saved.encode("北京天安门深圳", 400) == [saved.char2id["北京"], saved.char2id["天安门"], 1]  # 深圳: unknown
    model, loaded, settings = load_trained(out)
    assert settings.data.tokenizer == "word"
    title = titler_of(model, loaded, "naive", 3, 6)(["上海东方明珠北京"])[0]
    capsys.readouterr()
    assert main(["generate", "上海东方明珠北京", "--model", out, "--decoder", "naive", "--max-len", "6"]) == 0
    assert capsys.readouterr().out.strip() == title
    words = sorted(saved.chars, key=len, reverse=True)
    rest = title
    for word in words:
        rest = rest.replace(word, "")
    assert title and rest == ""  # made of whole words
