import json
import os
import shutil

import numpy as np
import pytest

from conftest import last_line, run_cli, tiny_settings, titler_of
from titlegen.data import TitleError, Vocab
from titlegen.model import named_inputs
from titlegen.runfolder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, STEPS_FILE, VOCAB_FILE, WEIGHTS_FILE)
from titlegen.trained import load_trained
from titlegen.train import train

ARTICLES = ["春夏秋冬山水日月", "风雨花草春夏秋冬山水日月风雨花草", "日月"]


def test_train_writes_artifacts_and_reload_gives_identical_titles(tmp_path, corpus):
    out = str(tmp_path / "model")
    model, vocab, config = train(tiny_settings(*corpus), out, log=lambda _: None)
    assert sorted(os.listdir(out)) == sorted([CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE,
                                              STEPS_FILE])
    assert config["best"]["epoch"] == 1 and config["history"][0]["val_loss"] == config["best"]["value"]
    assert Vocab.load(os.path.join(out, VOCAB_FILE)).fingerprint == config["vocab_fingerprint"]

    loaded, loaded_vocab, stored = load_trained(out)
    x, y = np.array([vocab.encode(ARTICLES[1], 400)]), np.array([[2, 4, 5]])
    np.testing.assert_array_equal(np.asarray(model(named_inputs(x, y))), np.asarray(loaded(named_inputs(x, y))))
    for topk in (1, 3):
        titles = titler_of(model, vocab, "naive", topk, 10)(ARTICLES)
        assert titler_of(loaded, loaded_vocab, "naive", topk, 10)(ARTICLES) == titles
        assert titler_of(loaded, loaded_vocab, "incremental", topk, 10)(ARTICLES) == titles


def test_training_lowers_the_loss(tmp_path, corpus):
    _, _, config = train(tiny_settings(*corpus, epochs=3, steps_per_epoch=None), str(tmp_path / "m"),
                         log=lambda _: None)
    losses = [h["val_loss"] for h in config["history"]]
    assert losses[-1] < losses[0]
    assert config["best"]["value"] == min(losses)


def test_train_refuses_to_overwrite_and_bad_data_touches_nothing(tmp_path, corpus):
    out = str(tmp_path / "model")
    train(tiny_settings(*corpus), out, log=lambda _: None)
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}
    with pytest.raises(TitleError, match="already holds a trained model"):
        train(tiny_settings(*corpus), out, log=lambda _: None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(open(corpus[0], encoding="utf-8").read() + '{"title": "", "content": "春"}\n', encoding="utf-8")
    with pytest.raises(TitleError, match=r"bad.jsonl:49: field 'title'"):
        train(tiny_settings(str(bad), corpus[1]), out, overwrite=True, log=lambda _: None)
    assert before == {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}


def test_vocabulary_mismatch_is_an_error(tmp_path, corpus):
    out = str(tmp_path / "model")
    train(tiny_settings(*corpus), out, log=lambda _: None)
    vocab = Vocab.load(os.path.join(out, VOCAB_FILE))
    Vocab(list(reversed(vocab.chars)), vocab.min_count).save(os.path.join(out, VOCAB_FILE))
    with pytest.raises(TitleError, match="not the vocabulary this model was trained with"):
        load_trained(out)


def test_cli_train_one_step_writes_artifacts(cli_model):
    out, result = cli_model
    assert sorted(os.listdir(out)) == sorted([CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE,
                                              STEPS_FILE])
    config = json.load(open(os.path.join(out, CONFIG_FILE), encoding="utf-8"))
    assert config["settings"]["data"]["min_count"] == 32 and config["settings"]["model"]["char_size"] == 128
    assert config["settings"]["model"]["vocab_size"] == 4 + 12  # the dozen characters, each seen >= 32 times
    assert "[s1]" in result.stdout and "[s2]" in result.stdout and "[dev[0]" in result.stdout
    assert "epoch 1/1" in result.stderr  # the progress bar


def test_cli_generate_prints_a_title(cli_model):
    out, _ = cli_model
    result = run_cli("generate", "春夏秋冬山水日月风雨花草", "--model", out, "--topk", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0] and set(lines[0]) <= set("春夏秋冬山水日月风雨花草")


@pytest.mark.parametrize("args, message", [
    (["generate", "文章", "--model", "{missing}"], "no trained model in"),
    (["generate", "   ", "--model", "{model}"], "the article is empty"),
    (["generate", "文章", "--model", "{model}", "--topk", "0"], "TOPK must be at least 1, got 0"),
    (["train", "--train", "{bad}", "--out", "{model}", "--overwrite"], "bad.jsonl:2: not valid JSON"),
    (["train", "--train", "{bad}", "--out", "{model}"], "already holds a trained model"),
])
def test_cli_errors_are_one_line(tmp_path, cli_model, args, message):
    out, _ = cli_model
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "春", "content": "夏"}\n{"title": "春", "content": \n', encoding="utf-8")
    before = sorted((f, os.path.getmtime(os.path.join(out, f))) for f in os.listdir(out))
    args = [a.format(missing=str(tmp_path / "none"), model=out, bad=str(bad)) for a in args]
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert last_line(result.stderr).startswith("error: ") and message in last_line(result.stderr)
    assert before == sorted((f, os.path.getmtime(os.path.join(out, f))) for f in os.listdir(out))


def test_cli_vocabulary_mismatch(tmp_path, cli_model):
    out = str(tmp_path / "copy")
    shutil.copytree(cli_model[0], out)
    vocab = Vocab.load(os.path.join(out, VOCAB_FILE))
    Vocab(vocab.chars[1:] + vocab.chars[:1], vocab.min_count).save(os.path.join(out, VOCAB_FILE))
    result = run_cli("generate", "春夏", "--model", out)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not the vocabulary this model was trained with" in last_line(result.stderr)
