import json
import os

import keras
import numpy as np
import pytest

from conftest import ROOT, compile_model, decoding, last_line, model_settings, run_cli, slow_but, stub_search, titler_of
from titlegen.data import START, Vocab, chunked, encode_example, padded
from titlegen.sources import read_jsonl
from titlegen.decoders import IncrementalDecoder, NaiveDecoder
from titlegen.model import build_model, model_inputs, named_inputs

MAX_LEN = 20


@pytest.fixture(scope="module")
def trained():
    """A small blog model on the shipped LCSTS corpus, trained six steps with a fixed seed: far
    enough that its titles differ from article to article and some end early."""
    keras.utils.set_random_seed(1)
    rows = read_jsonl(os.path.join(ROOT, "data/lcsts/train.jsonl"))[:384]
    vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), 8)
    settings = model_settings(len(vocab), char_size=32, hidden_size=64)
    model = compile_model(build_model(settings), 1e-2)
    for batch in chunked((encode_example(vocab, r["title"], r["content"], 400) for r in rows), 64):
        model.train_on_batch(*model_inputs(padded(batch)))
    dev = [vocab.encode(r["content"], 400) for r in read_jsonl(os.path.join(ROOT, "data/lcsts/dev.jsonl"))[:50]]
    return model, vocab, dev, settings


@pytest.mark.parametrize("topk", slow_but(3, 1, 3, 5))
def test_incremental_gives_the_naive_titles(trained, topk):
    model, _, dev, settings = trained
    incremental = IncrementalDecoder(model, decoding(topk=topk, max_title_len=MAX_LEN))({"article": dev})
    naive = NaiveDecoder(model, decoding(topk=topk, max_title_len=MAX_LEN))({"article": dev})
    assert [t.tolist() for t in incremental] == [t.tolist() for t in naive]
    assert len({tuple(t) for t in naive}) > 5  # the titles differ from article to article


def test_incremental_without_xla_gives_the_same_titles(trained):
    model, _, dev, settings = trained
    assert ([t.tolist() for t in IncrementalDecoder(model, decoding(topk=3, max_title_len=MAX_LEN), xla=False)({"article": dev[:20]})]
            == [t.tolist() for t in IncrementalDecoder(model, decoding(topk=3, max_title_len=MAX_LEN))({"article": dev[:20]})])


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's tracing (JAX compiles each shape)")
def test_without_xla_the_decoder_is_traced_once_for_every_batch(trained):
    """Titler.warm_up (serve's start) titles one article; then batches of other sizes and article
    lengths are titled without another trace of the encoder or the search (generate, evaluate and
    serve decode so; XLA compiled each padded shape anew)."""
    model, vocab, dev, settings = trained
    titler = titler_of(model, vocab, "incremental", 3, MAX_LEN, xla=False)
    titler.warm_up()
    decoder = titler.decoder
    traced = decoder.encode.tracing_count(), decoder.beams.run.tracing_count()
    assert traced == (1, 1)
    for n in (1, 3, 7, 16, 50):
        decoder({"article": dev[:n]})
    decoder({"article": [dev[0][:5], dev[1]]})
    assert (decoder.encode.tracing_count(), decoder.beams.run.tracing_count()) == traced


def test_a_title_does_not_depend_on_its_batch(trained):
    model, _, dev, settings = trained
    decoder = IncrementalDecoder(model, decoding(topk=3, max_title_len=MAX_LEN))
    short = min(dev, key=len)
    longer = sorted(dev, key=len)[-5:]
    alone = decoder({"article": [short]})[0]
    in_batch = decoder({"article": longer[:2] + [short] + longer[2:]})[2]
    assert len(short) < min(len(a) for a in longer)
    assert alone.tolist() == in_batch.tolist()


def reorders(model, article, topk):
    """Whether the beam search on this article ever changes which beam a row continues."""
    seen = []

    def record(yid):
        seen.append(yid.copy())
        return model.predict_on_batch(named_inputs(np.array([article] * len(yid), dtype="int32"), yid))[:, -1]

    stub_search(record, topk, MAX_LEN)
    return any(not np.array_equal(after[:, :-1], before) for before, after in zip(seen[1:], seen[2:]))


def test_beam_states_follow_their_beams_when_the_order_changes(trained):
    model, _, dev, settings = trained
    article = next((a for a in dev[:20] if reorders(model, a, 3)), None)
    assert article is not None, "no article of the sample reorders its beams"
    assert (IncrementalDecoder(model, decoding(topk=3, max_title_len=MAX_LEN))({"article": [article]})[0].tolist()
            == NaiveDecoder(model, decoding(topk=3, max_title_len=MAX_LEN))({"article": [article]})[0].tolist())


def test_forced_length_runs_every_step(trained):
    model, _, dev, settings = trained
    ids = IncrementalDecoder(model, decoding(topk=2, max_title_len=7), stop_at_end=False)({"article": [dev[0]]})[0]
    assert len(ids) == 8 and ids[0] == START
    assert ids.tolist() == NaiveDecoder(model, decoding(topk=2, max_title_len=7), stop_at_end=False)({"article": [dev[0]]})[0].tolist()


def test_scores_are_the_titles_log_probabilities(trained):
    """The score each decoder reports is the sum of log(p + 1e-6) of the title's ids under the model."""
    model, _, dev, settings = trained
    options = decoding(topk=3, max_title_len=MAX_LEN)
    for decoder in (NaiveDecoder(model, options), IncrementalDecoder(model, options)):
        titles, scores = decoder.search({"article": dev[:3]})
        for article, title, score in zip(dev[:3], titles, scores):
            probs = model.predict_on_batch(named_inputs(np.array([article]), title[None, :-1]))[0]
            expected = np.sum(np.log(probs[np.arange(len(title) - 1), title[1:]].astype("float64") + 1e-6))
            assert score == pytest.approx(expected, rel=1e-5)


def test_titler_gives_the_same_text_with_both_decoders(trained):
    model, vocab, _, settings = trained
    texts = [r["content"] for r in read_jsonl(os.path.join(ROOT, "data/lcsts/dev.jsonl"))[50:60]]
    assert (titler_of(model, vocab, "incremental", 3, MAX_LEN)(texts)
            == titler_of(model, vocab, "naive", 3, MAX_LEN)(texts))


def test_cli_file_and_stdin(tmp_path, cli_model):
    out, _ = cli_model
    articles = tmp_path / "articles.txt"
    articles.write_text("春夏秋冬山水\n\n" + json.dumps({"content": "日月风雨花草"}, ensure_ascii=False)
                        + '\n{"content": 1\n日月春夏\n', encoding="utf-8")
    plain = run_cli("generate", "--file", str(articles), "--model", out, "--decoder", "incremental",
                    "--batch-size", "2")
    assert plain.returncode == 1  # two bad lines, reported; the others still get their titles
    lines = plain.stdout.split("\n")[:-1]
    assert len(lines) == 5 and lines[1] == "" and lines[3] == ""
    assert all(lines[i] for i in (0, 2, 4))
    assert f"{articles}:2: empty article" in plain.stderr and f"{articles}:4: not valid JSON" in plain.stderr
    assert "Traceback" not in plain.stderr

    jsonl = run_cli("generate", "-", "--model", out, "--jsonl", "--decoder", "naive",
                    stdin=articles.read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r.get("title") for r in rows] == [lines[0], None, lines[2], None, lines[4]]  # naive = incremental
    assert rows[1]["error"].startswith("empty article") and "<stdin>:4: not valid JSON" in jsonl.stderr


def test_cli_decoders_agree_with_every_decoding_flag(tmp_path, cli_model):
    out, _ = cli_model
    articles = tmp_path / "articles.txt"
    articles.write_text("春夏秋冬山水\n日月风雨花草春夏\n山水日月\n", encoding="utf-8")
    flags = ["--topk", "2", "--min-len", "1", "--no-repeat-ngram", "2", "--length-penalty", "0.8", "--max-len", "6"]
    naive, incremental = (run_cli("generate", "--file", str(articles), "--model", out, "--decoder", d, *flags)
                          for d in ("naive", "incremental"))
    assert naive.returncode == incremental.returncode == 0
    assert naive.stdout == incremental.stdout and len(naive.stdout.splitlines()) == 3


def test_cli_generate_needs_an_article_or_a_file(cli_model):
    result = run_cli("generate", "--model", cli_model[0])
    assert result.returncode == 2 and "give one article" in last_line(result.stderr)


def test_best_ids_take_the_log_of_k_ids_and_keep_the_blogs_order():
    """The k best of p + 1e-6 are the k best of log(p + 1e-6), the lower id first among equals:
    checked against the log of every id, on rows made to tie, and on a row whose third best is
    nearly zero (3e-22 and 0 give one float64 log, so the lower id must come first)."""
    import tensorflow as tf

    from titlegen.data import END
    from titlegen.search import best_next

    rows = np.array([[0, 0, 0, 0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0],   # distinct, then a tie at 0.1
                     [0, 0, 0, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.0],   # four equal best
                     [0, 0, 0, 0.6, 0.4, 0.0, 3e-22, 0.0, 0.0, 0.0]], dtype="float32")  # the nearly-zero tie
    scores, ids = best_next(tf.constant(rows), tf.constant(0), None, 3)
    log_p = tf.math.log(rows[:, END:].astype("float64") + 1e-6).numpy()  # as before: the log of every id
    expected = np.argsort(-log_p, axis=1, kind="stable")[:, :3]  # numpy's stable sort: lower id first
    assert ids.numpy().tolist() == expected.tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 2]]
    np.testing.assert_array_equal(scores.numpy(), np.take_along_axis(log_p, expected, 1))
    # the same rows with the nearly-zero one left out take the short way, with the same answers
    scores, ids = best_next(tf.constant(rows[:2]), tf.constant(0), None, 3)
    assert ids.numpy().tolist() == expected[:2].tolist()
    np.testing.assert_array_equal(scores.numpy(), np.take_along_axis(log_p[:2], expected[:2], 1))


@pytest.mark.slow
def test_generate_reads_a_pipe_line_by_line_as_a_co_process(cli_model):
    """`generate -` on a pipe answers each line as it arrives: the test reads each title before it
    writes the next article, as a program keeping one `generate` open would."""
    import select
    import subprocess
    import sys

    out, _ = cli_model
    expected = [last_line(run_cli("generate", article, "--model", out).stdout) for article in ("春夏秋冬山水", "日月风雨花草")]
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "generate", "-", "--model", out],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    def answer(line):
        process.stdin.write(line.encode("utf-8") + b"\n")
        process.stdin.flush()
        ready = select.select([process.stdout], [], [], 120)[0]
        assert ready, f"no answer to {line!r} while the pipe stays open"
        return process.stdout.readline().decode("utf-8").rstrip("\n")

    try:
        assert answer("春夏秋冬山水") == expected[0]
        assert answer("") == ""  # a bad line keeps its place, and the process goes on
        assert answer('{"content": "日月风雨花草"}') == expected[1]
    finally:
        process.stdin.close()
    assert process.wait(60) == 1  # one bad line
    assert "<stdin>:2: empty article" in process.stderr.read().decode("utf-8")


def test_generate_never_imports_the_training_module(cli_model):
    """Inference reads the run folder through titlegen.runfolder: not the training loop, nor what it
    needs (checkpoints, metrics and their nltk, the data pipeline)."""
    import subprocess
    import sys

    code = ("import sys, seq2seq_title; code = seq2seq_title.main(['generate', '春夏秋冬', '--model', sys.argv[1]]); "
            "print(sorted(m for m in sys.modules if m in ('titlegen.train', 'titlegen.train_ensemble', 'titlegen.sequence', "
            "'titlegen.metrics', 'titlegen.evaluation', 'titlegen.sources', 'nltk')), code)")
    result = subprocess.run([sys.executable, "-c", code, cli_model[0]], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert result.stdout.splitlines()[-1] == "[] 0", result.stderr[-2000:]
