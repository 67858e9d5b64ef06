import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ALPHABET, compile_model, make_corpus, model_settings, run_cli, slow_but, titler_of
from titlegen.data import TitleError, Vocab, encode_example, padded
from titlegen.export import export
from titlegen.model import build_model, model_inputs

MAXLEN, MAX_LEN = 24, 8
ARTICLES = ["春夏秋冬山水日月", "亮春夏晶秋冬亮山水", "风雨" * 40, "\x00日月\t风雨\n花草", "山", "草花雨风月日水山冬秋夏春"]
EMPTY = ["", "  \t\u3000 \n"]

LOAD = """
import json, sys
try:
    import titlegen
    sys.exit("the project is importable here")
except ImportError:
    pass
import tensorflow as tf
titles = tf.saved_model.load(sys.argv[1])  # kept: its variables live as long as it does
served = titles.serve(tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"title": [t.decode("utf-8") for t in served["title"].numpy()],
                  "score": served["score"].numpy().tolist()}, ensure_ascii=False))
"""


def trained(version, copy):
    """A tiny model trained a few steps; a copying one made to copy (its gate's bias far below 0)."""
    keras.utils.set_random_seed(2)
    rows = make_corpus(64, seed=5)
    vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), 1)
    settings = model_settings(len(vocab), char_size=16, hidden_size=32, version=version, copy=copy, maxlen=MAXLEN)
    model = compile_model(build_model(settings), 1e-2)
    for i in range(0, 64, 16):
        model.train_on_batch(*model_inputs(padded([encode_example(vocab, r["title"], r["content"], MAXLEN, copy)
                                                   for r in rows[i:i + 16]])))
    if copy:
        model.get_layer("copy_gate").dense.bias.assign([-20.0])
    return model, vocab, settings


def generate_scores(model, vocab, settings, options):
    """The scores of generate's decoder for ARTICLES."""
    titler = titler_of(model, vocab, "incremental", 3, MAX_LEN, **options)
    return titler.decoder.search(titler.encode(ARTICLES)[0])[1]


def served(path, articles, tmp_path):
    """The SavedModel's answer in a fresh Python that cannot import the project: another working
    directory, isolated mode (no PYTHONPATH, no script folder on sys.path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-c", LOAD, path, json.dumps(articles)], cwd=tmp_path,
                            capture_output=True, text=True, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("version, copy", slow_but(("2019", True), ("2018", False), ("2019", False), ("2018", True),
                                                   ("2019", True)))
def test_exported_model_gives_generates_titles_without_the_project(tmp_path, version, copy):
    model, vocab, settings = trained(version, copy)
    options = {"min_title_len": 1, "no_repeat_ngram": 2, "no_new_double": True} if version == "2019" else {}
    titler = titler_of(model, vocab, "incremental", 3, MAX_LEN, **options)
    expected = titler(ARTICLES)
    path = export(titler, str(tmp_path / "exported"))
    assert path == str(tmp_path / "exported" / "1")  # TF Serving's numbered version folder
    got = served(path, ARTICLES + EMPTY, tmp_path)
    assert got["title"] == expected + ["", ""]
    assert got["score"][-2:] == [0.0, 0.0]  # the empty articles
    np.testing.assert_allclose(got["score"][:-2], generate_scores(model, vocab, settings, options), rtol=1e-6)
    if copy:  # 亮 and 晶 are not in the vocabulary: copied, they come back as themselves
        assert not {"亮", "晶"} & set(vocab.chars) and {"亮", "晶"} & set(got["title"][1])


def test_cli_export(tmp_path, cli_model):
    out, _ = cli_model
    os.makedirs(tmp_path / "exported" / "1")  # an earlier version, kept: the export is version 2
    result = run_cli("export", "--model", out, "--out", str(tmp_path / "exported"), "--topk", "2", "--max-len", "5")
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / "exported" / "1") == []
    assert os.path.isfile(tmp_path / "exported" / "2" / "saved_model.pb")
    title = served(str(tmp_path / "exported" / "2"), ["春夏秋冬"], tmp_path)["title"][0]
    assert run_cli("generate", "春夏秋冬", "--model", out, "--topk", "2", "--max-len", "5").stdout == title + "\n"


def test_word_models_are_refused():
    vocab = Vocab(list(ALPHABET), 1, tokenizer="word")
    with pytest.raises(TitleError, match="jieba cannot run inside a TensorFlow graph"):
        settings = model_settings(len(vocab), char_size=8, hidden_size=16, maxlen=MAXLEN)
        export(titler_of(build_model(settings), vocab, "incremental", 3, MAX_LEN), "unused")
