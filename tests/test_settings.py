import dataclasses
import json
import os

import pytest

import config
from conftest import ROOT, last_line, run_cli, tiny_settings, write_jsonl
from titlegen.errors import TitleError
from titlegen.runfolder import CONFIG_FILE, RunFolder
from titlegen.trained import load_trained
from titlegen.settings import CONFIG_NAMES, FIELDS, LEGACY, RESUMABLE, RUN, load


def test_every_config_name_is_one_field_and_back():
    names = {name for name in vars(config) if name.isupper()}
    assert names == set(CONFIG_NAMES)
    assert set(CONFIG_NAMES.values()) == set(FIELDS) - {"vocab_size"}
    settings = load(config, ROOT)
    for name, field in CONFIG_NAMES.items():
        group = getattr(settings, FIELDS[field])
        value = getattr(group, field)
        expected = getattr(config, name)
        if field.endswith(("_path", "_dir")) and expected is not None:
            expected = os.path.join(ROOT, expected)
        assert value == (tuple(expected) if isinstance(expected, list) else expected), name
    assert set(LEGACY) <= {name for name, group in FIELDS.items() if group in RUN}  # only what a run folder stores
    assert RESUMABLE == ("epochs", "checkpoint_steps", "strategy", "tensorboard", "patience", "time_limit",
                         "seq_epochs", "seq_candidates", "seq_reward", "seq_beam", "seq_reference", "seq_sample_top",
                         "seq_sharpness", "seq_ce_weight",
                         "seq_learning_rate")


def test_flags_take_their_type_and_choices_from_the_settings(capsys):
    import seq2seq_title

    args = vars(seq2seq_title.parse_args(["train", "--time-limit", "2", "--epochs", "3", "--seq-sample", "--skip-bad",
                                          "--version", "2019", "--copy", "--out", "runs/x"]))
    given = {k: v for k, v in args.items() if k in FIELDS and v is not None}
    assert given == {"time_limit": 2.0, "epochs": 3, "seq_beam": False, "on_bad_record": "skip", "version": "2019",
                     "copy": True, "output_dir": "runs/x"}
    assert type(given["time_limit"]) is float and type(given["epochs"]) is int
    args = vars(seq2seq_title.parse_args(["serve", "--batch-size", "5", "--batch-wait", "0", "--no-new-double",
                                          "--decoder", "naive"]))
    assert {k: args[k] for k in ("generate_batch_size", "serve_batch_wait", "no_new_double", "decoder")} == \
        {"generate_batch_size": 5, "serve_batch_wait": 0.0, "no_new_double": True, "decoder": "naive"}
    for argv in (["train", "--version", "2020"], ["train", "--epochs", "2.5"], ["export", "--decoder", "naive"]):
        with pytest.raises(SystemExit):
            seq2seq_title.parse_args(argv)
    err = capsys.readouterr().err
    assert "invalid choice: '2020'" in err and "invalid int value: '2.5'" in err and "--decoder" in err
    every = [flag for table in (seq2seq_title.TRAIN_FLAGS, seq2seq_title.DECODING_FLAGS, seq2seq_title.TITLING_FLAGS,
                                seq2seq_title.SERVE_FLAGS) for flag in table]
    assert all((row[2] if len(row) > 2 else row[0][2:].replace("-", "_")) in FIELDS for row in every)


def test_a_settings_file_may_start_from_another(tmp_path):
    (tmp_path / "base.py").write_text('EPOCHS = 7\nOUTPUT_DIR = OUTPUT_DIR + "_base"\n', encoding="utf-8")
    (tmp_path / "more.py").write_text('include("base.py")\nEPOCHS = EPOCHS + 1\nSEQ_EPOCHS = 2\n', encoding="utf-8")
    settings = load(config, ROOT, [str(tmp_path / "more.py")])
    assert (settings.train.epochs, settings.train.seq_epochs) == (8, 2)
    assert settings.train.output_dir == os.path.join(ROOT, config.OUTPUT_DIR + "_base")
    (tmp_path / "loop.py").write_text('include("loop.py")\n', encoding="utf-8")
    with pytest.raises(TitleError, match="includes itself"):
        load(config, ROOT, [str(tmp_path / "loop.py")])
    (tmp_path / "lost.py").write_text('include("nowhere.py")\n', encoding="utf-8")
    with pytest.raises(TitleError, match=r"lost.py: include\('nowhere.py'\): no such settings file"):
        load(config, ROOT, [str(tmp_path / "lost.py")])


def test_override_files_apply_in_order_and_flags_win(tmp_path):
    first = tmp_path / "first.py"
    first.write_text('CHAR_SIZE = 64\nEPOCHS = 7\nOUTPUT_DIR = "runs/mine"\n', encoding="utf-8")
    second = tmp_path / "second.py"
    second.write_text('EPOCHS = EPOCHS + 1\nOUTPUT_DIR = OUTPUT_DIR + "_copy"\nCOPY = True\n', encoding="utf-8")
    settings = load(config, ROOT, [str(first), str(second)], {"patience": 2, "epochs": None})
    assert settings.model.char_size == 64 and settings.model.copy is True
    assert settings.train.epochs == 8 and settings.train.patience == 2  # None: a flag not given
    assert settings.train.output_dir == os.path.join(ROOT, "runs/mine_copy")  # relative to the project
    assert load(config, ROOT, [str(first)], {"epochs": 3}).train.epochs == 3


ONE_FILE = {"csl_copy.py": ("csl.py", "copy.py"), "csl_recipe.py": ("csl.py", "recipe.py"),
            "csl_large.py": ("csl.py", "recipe.py", "large.py"), "csl_xl.py": ("csl.py", "recipe.py", "xl.py"),
            "csl_ensemble.py": ("csl.py", "recipe.py", "large.py", "ensemble.py"),
            "csl_budget.py": ("csl.py", "recipe.py", "large.py", "ensemble.py", "budget.py"),
            "csl_readable.py": ("csl.py", "readable.py")}


@pytest.mark.parametrize("name", sorted(ONE_FILE))
def test_each_recipe_is_one_file_equal_to_its_chain(name):
    def settings(*files):
        return load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in files])

    assert settings(name) == settings(*ONE_FILE[name])


def test_the_one_member_budget_is_the_budget_ensemble_with_one_member():
    def settings(name):
        return load(config, ROOT, [os.path.join(ROOT, "configs", name)])

    one, two = settings("csl_budget_one.py"), settings("csl_budget.py")
    assert one.train.members == 1 and two.train.members == 2
    assert one.train.output_dir == os.path.join(ROOT, "runs/csl_budget_one")
    assert one == two.replace(members=1, output_dir=one.train.output_dir, no_repeat_ngram=3, no_new_double=True)


def test_shipped_override_files(tmp_path):
    csl = load(config, ROOT, [os.path.join(ROOT, "configs/csl.py")])
    assert csl.data.train_path == os.path.join(ROOT, "data/csl/train.jsonl") and os.path.isfile(csl.data.train_path)
    assert os.path.isfile(csl.data.dev_path) and csl.train.output_dir == os.path.join(ROOT, "runs/csl")
    both = load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in ("csl.py", "copy.py")])
    assert both.model.copy and both.train.output_dir == os.path.join(ROOT, "runs/csl_copy")
    assert dataclasses.replace(both.model, copy=False) == csl.model
    recipe = load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in ("csl.py", "recipe.py")])
    assert recipe.train.output_dir == os.path.join(ROOT, "runs/csl_recipe") and recipe.model.copy
    assert recipe.train.monitor == "val_rouge_l" and recipe.data == csl.data  # the recipe leaves the data alone
    large = load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in ("csl.py", "recipe.py", "large.py")])
    assert large.train.output_dir == os.path.join(ROOT, "runs/csl_recipe_large")
    assert large.model == dataclasses.replace(recipe.model, char_size=256) and large.train == dataclasses.replace(
        recipe.train, output_dir=large.train.output_dir)
    assert large.data == dataclasses.replace(csl.data, min_count=5) and large.decode == recipe.decode
    xl = load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in ("csl.py", "recipe.py", "xl.py")])
    assert xl.train.output_dir == os.path.join(ROOT, "runs/csl_recipe_xl") and xl.decode == recipe.decode
    assert xl.model == dataclasses.replace(recipe.model, char_size=384) and xl.train == dataclasses.replace(
        recipe.train, output_dir=xl.train.output_dir)
    assert xl.data == dataclasses.replace(csl.data, min_count=2)
    pair = load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in ("csl.py", "recipe.py", "large.py",
                                                                          "ensemble.py")])
    assert pair.train == dataclasses.replace(large.train, members=3, batch_size=32, patience=5, time_limit=57,
                                             output_dir=os.path.join(ROOT, "runs/csl_recipe_large_ensemble"))
    assert pair.model == large.model and pair.data == large.data and pair.decode == large.decode
    budget = load(config, ROOT, [os.path.join(ROOT, "configs", f) for f in ("csl.py", "recipe.py", "large.py",
                                                                            "ensemble.py", "budget.py")])
    assert budget.train == dataclasses.replace(pair.train, members=2, learning_rate=3e-3, epochs=10,
                                               lr_decay_epochs=10, output_dir=pair.train.output_dir + "_budget")
    assert budget.model == pair.model and budget.data == pair.data and budget.decode == pair.decode


@pytest.mark.parametrize("text, message, through_cli", [
    ("CHARSIZE = 64\n", "CHARSIZE is not a config.py setting", True),
    ("MONITOR = 'bleu'\n", "MONITOR must be one of loss, val_loss, val_rouge_l, val_lcs_f, got 'bleu'", True),
    ("EPOCHS = \n", "SyntaxError", True),
    ('CHAR_SIZE = "128"\n', "CHAR_SIZE must be a whole number, got '128'", True),
    ("COPY = 1\n", "COPY must be True or False, got 1", False),
    ("PATIENCE = 2.5\n", "PATIENCE must be a whole number or None, got 2.5", False),
    ("DEV_PATH = 3\n", "DEV_PATH must be text or None, got 3", False),
])
def test_bad_override_file_is_one_line(tmp_path, text, message, through_cli):
    bad = tmp_path / "bad.py"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(TitleError, match=message):
        load(config, ROOT, [str(bad)])
    assert load(config, ROOT, flags={"learning_rate": 1, "coverage": 0}).train.learning_rate == 1  # ints are numbers
    if not through_cli:
        return
    result = run_cli("train", str(bad), "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and message in last_line(result.stderr)
    assert last_line(result.stderr).startswith("error: ") and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "m")


@pytest.mark.parametrize("flags, message", [
    ({"dropout": 1.0}, "DROPOUT must be at least 0 and below 1, got 1.0"),
    ({"lr_factor": 0}, "LR_FACTOR must be above 0 and at most 1, got 0"),
    ({"serve_port": 65536}, "SERVE_PORT must be at least 0 and at most 65535, got 65536"),
    ({"serve_port": -1}, "SERVE_PORT must be at least 0 and at most 65535, got -1"),
    ({"batch_size": 0}, "BATCH_SIZE must be at least 1, got 0"),
    ({"learning_rate": 0.0}, "LEARNING_RATE must be above 0, got 0.0"),
    ({"patience": 0}, "PATIENCE must be at least 1, got 0"),
    ({"seq_candidates": 1}, "SEQ_CANDIDATES must be at least 2, got 1"),
    ({"topk": 0}, "TOPK must be at least 1, got 0"),
])
def test_a_number_outside_its_bounds_is_one_line(flags, message):
    """Bounds are checked where settings are made, once (every command, override files and flags)."""
    with pytest.raises(TitleError, match=f"^{message}$"):
        load(config, ROOT, flags=flags)


def test_numbers_at_their_bounds_and_none_pass():
    settings = load(config, ROOT, flags={"dropout": 0.0, "lr_factor": 1, "serve_port": 0, "seq_ce_weight": 1,
                                        "checkpoint_steps": 0})
    assert (settings.model.dropout, settings.train.lr_factor, settings.serve.serve_port) == (0.0, 1, 0)
    assert settings.replace(patience=None, time_limit=None, steps_per_epoch=None).train.patience is None
    assert settings.replace(serve_port=65535, time_limit=0.5).serve.serve_port == 65535


def old_layout(record):
    """config.json as the code before typed settings wrote it: one flat dict of settings (some
    keys missing, as in older runs) and the model's arguments beside it."""
    flat = {k: v for group in record["settings"].values() for k, v in group.items()}
    model = {k: flat.pop(k) for k in ("vocab_size", "char_size", "hidden_size", "mask_encoder", "version", "copy",
                                      "coverage")}
    model["copy_extra"] = flat["maxlen"]
    for key in ("tokenizer", "strategy", "checkpoint_steps"):
        assert flat.pop(key) == LEGACY[key]  # older runs lack these, and ran as LEGACY says
    return {"settings": flat, "model": model, **{k: record[k] for k in ("vocab_fingerprint", "best", "history",
                                                                        "skipped")}}


@pytest.mark.slow
def test_a_run_folder_of_the_first_layout_still_loads_and_resumes(tmp_path, corpus):
    from titlegen.train import resume_settings, train

    out = str(tmp_path / "old")
    _, _, record = train(tiny_settings(*corpus, epochs=1), out, log=lambda _: None)
    new = RunFolder(out).read_record()[0]
    with open(os.path.join(out, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(old_layout(record), f)
    settings, upgraded = RunFolder(out).read_record()
    assert settings == new and upgraded["history"] == record["history"]
    assert load_trained(out)[2] == new

    generated = run_cli("generate", "春夏秋冬山水日月", "--model", out, "--decoder", "naive", "--max-len", "10")
    assert generated.returncode == 0, generated.stderr[-1000:]
    evaluated = run_cli("evaluate", "--model", out, "--data", corpus[1], "--out", str(tmp_path / "p.jsonl"))
    assert evaluated.returncode == 0 and "| LEAD-" in evaluated.stdout, evaluated.stderr[-1000:]
    _, _, resumed = train(resume_settings(out, epochs=2), out, resume=True, log=lambda _: None)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2] and resumed["format"] == 2


def test_a_run_folder_written_before_later_settings_still_loads_and_resumes(tmp_path, corpus):
    """A grouped config.json (format 2) from before LR_PATIENCE, LR_FACTOR, TITLE_DROPOUT,
    RECURRENT_DROPOUT and NO_NEW_DOUBLE existed loads with them as those runs ran (LEGACY: off), and
    resuming writes them down."""
    from titlegen.train import resume_settings, train

    out = str(tmp_path / "older")
    _, _, record = train(tiny_settings(*corpus, epochs=1), out, log=lambda _: None)
    later = {"lr_patience": "train", "lr_factor": "train", "title_dropout": "model", "recurrent_dropout": "model",
             "no_new_double": "decode"}
    for key, group in later.items():
        del record["settings"][group][key]
    with open(os.path.join(out, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(record, f)
    settings = load_trained(out)[2]
    assert (settings.train.lr_patience, settings.train.lr_factor, settings.model.title_dropout,
            settings.model.recurrent_dropout, settings.decode.no_new_double) == (None, 0.5, 0.0, 0.0, False)
    assert [LEGACY[key] for key in later] == [None, 0.5, 0.0, 0.0, False]
    _, _, resumed = train(resume_settings(out, epochs=2), out, resume=True, log=lambda _: None)
    model = resumed["settings"]["model"]
    assert model["title_dropout"] == model["recurrent_dropout"] == 0.0 and resumed["settings"]["train"]["lr_factor"] == 0.5


SERVED = {"generate_batch_size": 64, "serve_host": "0.0.0.0", "serve_port": 9000, "serve_batch_wait": 5.0,
          "serve_max_bytes": 1024}


@pytest.mark.parametrize("stored_in", ["decode", "serve"])
def test_a_run_folder_that_stored_how_to_serve_loads_as_written(tmp_path, corpus, stored_in):
    """A run folder keeps how its model was made and decodes (RUN), not how it is served: runs that
    stored GENERATE_BATCH_SIZE and the SERVE_ settings (in "decode", later in a "serve" group) load
    without them, the same settings; what serves them is the serving command's settings."""
    from titlegen.train import train

    out = str(tmp_path / "before")
    _, _, record = train(tiny_settings(*corpus, epochs=1), out, log=lambda _: None)
    new = RunFolder(out).read_record()[0]
    assert sorted(record["settings"]) == sorted(RUN) and new.serve is None
    record["settings"].setdefault(stored_in, {}).update(SERVED)
    with open(os.path.join(out, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(record, f)
    assert load_trained(out)[2] == new
    assert new.replace(vocab_size=5).model.vocab_size == 5  # a run's settings change without a serve group


def test_a_run_folder_missing_a_setting_says_what_to_do(tmp_path, corpus):
    from titlegen.train import train

    out = str(tmp_path / "old")
    _, _, record = train(tiny_settings(*corpus), out, log=lambda _: None)
    old = old_layout(record)
    del old["settings"]["val_rouge_samples"]
    with open(os.path.join(out, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(old, f)
    with pytest.raises(TitleError, match=r"config.json: the train settings do not fit this version: missing "
                                         r"val_rouge_samples; retrain"):
        load_trained(out)


def test_generate_and_evaluate_honour_content_field(tmp_path, cli_model):
    out, _ = cli_model
    fields = tmp_path / "fields.py"
    fields.write_text('CONTENT_FIELD = "text"\nTITLE_FIELD = "headline"\n', encoding="utf-8")
    articles = write_jsonl(tmp_path / "a.jsonl", [{"_id": {"$oid": "5f1d"}, "text": "春夏秋冬山水日月"},
                                                  {"_id": {"$oid": "5f1e"}, "content": "春夏"}])
    result = run_cli("generate", "--file", articles, "--model", out, "--config", str(fields), "--jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["title"] and rows[1] == {"line": 2, "error": "field 'text' must be a non-empty string, got missing"}
    data = write_jsonl(tmp_path / "set.jsonl", [{"_id": {"$oid": "5f1d"}, "headline": "春夏", "text": "春夏秋冬"}])
    result = run_cli("evaluate", str(fields), "--model", out, "--data", data, "--out", str(tmp_path / "p.jsonl"))
    assert result.returncode == 0, result.stderr[-1000:]
    assert json.loads(open(tmp_path / "p.jsonl", encoding="utf-8").readline())["reference"] == "春夏"


def test_a_json_array_is_refused_with_the_way_out(tmp_path):
    from titlegen.sources import Corpus

    for text in ('[{"title": "t", "content": "c"},\n{"title": "t", "content": "c"}]\n',
                 '[\n {"title": "t", "content": "c"}\n]\n'):
        path = tmp_path / "array.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(TitleError, match=r"array.json:1: a JSON array, not JSON Lines; .*without --jsonArray"):
            list(Corpus(str(path)).scan("reading"))
