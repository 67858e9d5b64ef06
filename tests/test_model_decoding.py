"""A trained model keeps its own decoding: the settings `train` stored in its folder are its defaults
wherever it is loaded (generate, evaluate, serve, export), override files and flags change them,
config.py does not, and where each value came from is said."""
import dataclasses
import json
import os

import pytest

from conftest import TINY_CONFIG, make_corpus, run_cli, write_jsonl
from test_serve import Server
from titlegen.settings import CONFIG, FLAG, MODEL, load_traced, model_decoding

ARTICLES = ["春夏秋冬山水日月风雨花草", "山山水水日月", "冬冬冬春春花花草", "花草风雨春夏秋冬"]
BLOCKING = TINY_CONFIG + "NO_REPEAT_NGRAM = 2\nNO_NEW_DOUBLE = True\n"


def test_files_and_flags_say_which_settings_they_set(tmp_path):
    """An override file's origin is every name it (or a file it includes) assigns, even to the value
    config.py has; a flag's is FLAG; the rest is config.py's."""
    import config

    (tmp_path / "base.py").write_text("TOPK = 3\nEPOCHS = 5\n", encoding="utf-8")  # TOPK: config.py's value too
    (tmp_path / "top.py").write_text('include("base.py")\nEPOCHS += 1\nif True:\n    MIN_TITLE_LEN = 2\n',
                                     encoding="utf-8")
    settings, origins = load_traced(config, str(tmp_path), [str(tmp_path / "top.py")], {"no_repeat_ngram": 3})
    assert settings.train.epochs == 6 and settings.decode.topk == config.TOPK == 3
    top = str(tmp_path / "top.py")
    assert (origins["topk"], origins["epochs"], origins["min_title_len"]) == (top, top, top)
    assert origins["no_repeat_ngram"] == FLAG and origins["length_penalty"] == origins["seed"] == CONFIG


def test_model_decoding_keeps_the_stored_values_but_for_files_and_flags():
    import config
    from titlegen.settings import load

    given = load(config, ".").decode
    stored = dataclasses.replace(given, topk=5, no_repeat_ngram=2, no_new_double=True)
    decode, origins = model_decoding(stored, dataclasses.replace(given, topk=1, length_penalty=0.6),
                                     {"topk": FLAG, "length_penalty": "mine.py", "no_repeat_ngram": CONFIG})
    assert (decode.topk, decode.no_repeat_ngram, decode.no_new_double, decode.length_penalty) == (1, 2, True, 0.6)
    assert origins == {"topk": FLAG, "max_title_len": MODEL, "decoder": MODEL, "min_title_len": MODEL,
                       "no_repeat_ngram": MODEL, "no_new_double": MODEL, "length_penalty": "mine.py"}


@pytest.fixture(scope="module")
def blocking_model(tmp_path_factory):
    """A tiny model trained (two steps) with NO_REPEAT_NGRAM = 2 and NO_NEW_DOUBLE on, from an override
    file: (its folder, the file, a file of ARTICLES)."""
    folder = tmp_path_factory.mktemp("blocking")
    settings = folder / "blocking.py"
    settings.write_text(BLOCKING, encoding="utf-8")
    out = str(folder / "model")
    result = run_cli("train", str(settings), "--train", write_jsonl(folder / "t.jsonl", make_corpus(48, seed=1)),
                     "--dev", write_jsonl(folder / "d.jsonl", make_corpus(8, seed=2)), "--out", out,
                     "--epochs", "1", "--steps-per-epoch", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    articles = folder / "articles.txt"
    articles.write_text("\n".join(ARTICLES) + "\n", encoding="utf-8")
    return out, str(settings), str(articles)


def generate(model, articles, *flags):
    result = run_cli("generate", "--model", model, "--file", articles, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    decoding = [line for line in result.stderr.splitlines() if line.startswith("decoding: ")]
    assert len(decoding) == 1, result.stderr[-2000:]
    return result.stdout.splitlines(), decoding[0]


def new_doubles(titles):
    """Whether some title doubles a character its article never doubles."""
    return any(a == b and a + b not in article for title, article in zip(titles, ARTICLES)
               for a, b in zip(title, title[1:]))


@pytest.fixture(scope="module")
def generated(blocking_model):
    """generate's titles of ARTICLES and its decoding line: {"own": the model's own decoding, "free":
    with --no-repeat-ngram 0 --allow-new-double}."""
    model, _, articles = blocking_model
    return {"own": generate(model, articles), "free": generate(model, articles, "--no-repeat-ngram", "0",
                                                                "--allow-new-double")}


def test_generate_decodes_with_the_models_own_settings_and_flags_override_each(blocking_model, generated):
    from seq2seq_title import parse_args

    model, settings_file, articles = blocking_model
    own, said = generated["own"]
    assert said == ("decoding: topk 3, max_title_len 10, decoder incremental, min_title_len 0, no_repeat_ngram 2, "
                    "no_new_double True, length_penalty 0.0 (the model)")  # config.py: 0 and False
    assert generate(model, articles, "--config", settings_file)[0] == own
    assert not new_doubles(own) and len(own) == len(ARTICLES)

    free, said = generated["free"]
    assert "no_repeat_ngram 0 (--no-repeat-ngram); no_new_double False (--no-new-double / --allow-new-double)" in said
    assert new_doubles(free) and free != own  # the model wants what its settings forbid
    for flags, value in ((["--allow-new-double", "--no-new-double"], True), (["--no-new-double", "--allow-new-double"],
                                                                             False), ([], None)):
        assert parse_args(["generate", "春夏", *flags]).no_new_double is value  # the last one wins; none: the model's


def test_evaluate_serve_and_export_decode_as_generate(blocking_model, generated, tmp_path):
    import tensorflow as tf

    model, _, articles = blocking_model
    own, free = generated["own"][0], generated["free"][0]
    data = write_jsonl(tmp_path / "set.jsonl", [{"title": "春夏", "content": a} for a in ARTICLES])
    out = str(tmp_path / "p.jsonl")
    evaluated = run_cli("evaluate", "--model", model, "--data", data, "--out", out)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    with open(out, encoding="utf-8") as f:
        assert [json.loads(line)["prediction"] for line in f] == own
    with open(tmp_path / "p.scores.json", encoding="utf-8") as f:
        scores = json.load(f)
    assert scores["decoding"]["no_repeat_ngram"] == 2 and scores["decoding_from"]["no_new_double"] == "the model"

    server = Server(model, "--no-repeat-ngram", "0", "--allow-new-double", max_len=None)
    try:
        status, metadata = server.request(f"/v1/models/{server.name}/metadata")
        options, origins = metadata["metadata"]["decoding"], metadata["metadata"]["decoding_from"]
        assert (options["topk"], origins["topk"], options["no_repeat_ngram"], origins["no_repeat_ngram"]) == \
            (3, "the model", 0, "--no-repeat-ngram")
        assert (options["no_new_double"], origins["no_new_double"]) == (False, "--no-new-double / --allow-new-double")
        assert [p["title"] for p in server.predict({"instances": ARTICLES})[1]["predictions"]] == free
    finally:
        server.stop()

    exported = run_cli("export", "--model", model, "--out", str(tmp_path / "exported"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    titles = tf.saved_model.load(os.path.join(tmp_path, "exported", "1"))
    assert [t.decode("utf-8") for t in titles.serve(tf.constant(ARTICLES))["title"].numpy()] == own
