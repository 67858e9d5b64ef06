import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import titlegen  # noqa: E402,F401  (before any test imports TensorFlow: the package's oneDNN default)

ALPHABET = "春夏秋冬山水日月风雨花草"  # a dozen characters


APART = ("multiprocess", "slow", "browser")  # markers a plain run leaves out (pytest.ini says what each holds)


def pytest_collection_modifyitems(config, items):
    """A plain run leaves the multiprocess, slow and browser tests out (with them the suite takes over ten
    minutes on 2 cores); `-m multiprocess`, `-m slow`, `-m "slow or not slow"`, or any -k
    expression runs what it selects."""
    if config.getoption("markexpr") or config.getoption("keyword"):
        return
    kept = [item for item in items if not any(item.get_closest_marker(m) for m in APART)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def slow_but(kept, *values):
    """Parameters where `kept` runs in a plain run and the other values only with -m slow: for
    variants of a test whose kept value runs every part (a tuple fills several argnames)."""
    def param(value, **marks):
        return pytest.param(*value if isinstance(value, tuple) else (value,), **marks)

    return [param(v) if v == kept else param(v, marks=pytest.mark.slow) for v in values]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return str(path)


def make_corpus(n, seed=0, content_len=(20, 40), title_len=(4, 8)):
    """Articles of random characters from ALPHABET whose title is a slice of the article."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        content = "".join(rng.choice(list(ALPHABET), rng.integers(*content_len)))
        start = rng.integers(0, 10)
        rows.append({"title": content[start:start + rng.integers(*title_len)], "content": content})
    return rows


@pytest.fixture
def corpus(tmp_path):
    """A tiny train/dev pair of JSON Lines files: (train_path, dev_path)."""
    return (write_jsonl(tmp_path / "train.jsonl", make_corpus(48, seed=1)),
            write_jsonl(tmp_path / "dev.jsonl", make_corpus(8, seed=2)))


def tiny_settings(train_path, dev_path, **overrides):
    """config.py's settings (a titlegen Settings) for a model small enough to train in a second."""
    tiny = {
        "train_path": train_path, "dev_path": dev_path, "samples_path": None, "sample_names": (),
        "min_count": 1, "maxlen": 400, "char_size": 8, "hidden_size": 16, "mask_encoder": True,
        "batch_size": 16, "learning_rate": 1e-2, "epochs": 1, "steps_per_epoch": 2,
        "shuffle": False, "monitor": "val_loss", "seed": 7, "topk": 3, "max_title_len": 10, "decoder": "naive",
        "version": "2018", "copy": False, "coverage": 0.0, "val_rouge_samples": 0, "patience": None, "min_title_len": 0, "no_repeat_ngram": 0, "length_penalty": 0.0,
        "checkpoint_steps": 0,
    }
    return project_settings().replace(**{**tiny, **overrides})


def project_settings():
    """config.py's settings, as the command line reads them."""
    import config
    from titlegen.settings import load

    return load(config, ROOT)


def model_settings(vocab_size, **changes):
    """config.py's model settings for a vocabulary of `vocab_size` ids, changed: what build_model takes."""
    return project_settings().replace(vocab_size=vocab_size, **changes).model


def decoding(**changes):
    """config.py's decoding settings (a settings.Decode), changed: what Titler and the decoders take."""
    return project_settings().replace(**changes).decode


def titler_of(model, vocab, decoder="incremental", topk=3, max_title_len=10, xla=True, **options):
    """A Titler on a model, decoding as config.py says but for the decoder, topk, max_title_len and
    `options` (settings.Decode's names)."""
    from titlegen.decoders import Titler

    return Titler(model, vocab, decoding(decoder=decoder, topk=topk, max_title_len=max_title_len, **options), xla)


def compile_model(model, learning_rate=1e-3):
    """A model compiled with the blog's loss and Adam, for tests that call Keras's fit."""
    import keras
    from titlegen.model import title_loss

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=title_loss, jit_compile=False)
    return model


TINY_CONFIG = """MIN_COUNT = 1
CHAR_SIZE = 8
HIDDEN_SIZE = 16
LEARNING_RATE = 1e-2
SAMPLES_PATH = None
VAL_ROUGE_SAMPLES = 0
MAX_TITLE_LEN = 10
SEED = 7
"""  # an override file for a model that trains in seconds from the command line (as tiny_settings)


def run_cli(*args, stdin=None, backend=None):
    """`python seq2seq_title.py ARGS` in a subprocess (on Keras's `backend` when given): its exit status,
    stdout and stderr."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **({"KERAS_BACKEND": backend} if backend else {})}
    return subprocess.run([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=300)


def last_line(stream):
    return [line for line in stream.splitlines() if line.strip()][-1]


@pytest.fixture(scope="session")
def cli_model(tmp_path_factory):
    """`train` for one step through the command line, on a corpus that passes MIN_COUNT (32)."""
    folder = tmp_path_factory.mktemp("cli")
    train_path = write_jsonl(folder / "train.jsonl", make_corpus(40, seed=3))
    dev_path = write_jsonl(folder / "dev.jsonl", make_corpus(4, seed=4))
    out = str(folder / "model")
    result = run_cli("train", "--train", train_path, "--dev", dev_path, "--out", out,
                     "--epochs", "1", "--steps-per-epoch", "1")
    assert result.returncode == 0, result.stderr
    return out, result


def stub_search(next_probs, topk=3, max_title_len=50, article=(0,), **options):
    """The one beam search (titlegen.search) over next-id probabilities set by hand, run eagerly:
    next_probs(yid) -> (beams, V) for the prefix rows yid (beams, t + 1), START first; `article` the
    one article's ids (NO_NEW_DOUBLE reads them). Returns the title ids, START first."""
    from keras import ops
    from titlegen.search import BeamSearch

    def next_(yid, t, cache, memory):
        return ops.convert_to_tensor(np.asarray(next_probs(ops.convert_to_numpy(yid)[:, :int(t) + 1]), "float64")), cache

    search = BeamSearch(next_, decoding(topk=topk, max_title_len=max_title_len, **options))
    ids, lengths, _ = search({"article": np.zeros([1, 1], "int32")}, {}, np.array([article], "int32"))
    return ids[0, :int(lengths[0])]


def train_cli(args, kill_at=None, backend=None):
    """`python seq2seq_title.py train ARGS` in a subprocess, killed with -9 at `kill_at` when given
    (titlegen/faults.py: a point's name and the how-manieth time it is reached, "step:7"), on Keras's
    `backend` when given."""
    from titlegen.faults import VARIABLE
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if backend:
        env["KERAS_BACKEND"] = backend
    if kill_at:
        env[VARIABLE] = kill_at
    return subprocess.run([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", *args],
                          capture_output=True, text=True, env=env, timeout=300)


TWO_REPLICAS = """
import json, sys
import numpy as np
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path[:0] = [{root!r}, {tests!r}]
import keras
from conftest import decoding, model_settings, tiny_settings
from titlegen.data import pad
from titlegen.model import build_model
from titlegen.devices import make_optimizer
{setup}
rng = np.random.default_rng(0)
# five articles (an odd batch: the replicas get 3 and 2) of different lengths, titles of different lengths
x = pad([list(rng.integers(4, 12, n)) for n in (7, 3, 9, 5, 2)])
y = pad([[2] + list(rng.integers(4, 12, n)) + [3] for n in (4, 1, 3, 5, 2)])
batch = {{"article": x, "title": y}}
settings = model_settings(12, char_size=8, hidden_size=16)
keras.utils.set_random_seed(3)
weights = build_model(settings).get_weights()
out = {{}}
for name, strategy in [("one", tf.distribute.get_strategy()),
                       ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    with strategy.scope():
        model = build_model(settings)
        optimizer = make_optimizer(1e-2, False)
        optimizer.build(model.trainable_variables)
    model.set_weights(weights)
    step = {make_step}
    out[name] = {{"replicas": strategy.num_replicas_in_sync, "losses": [{call} for i in range(2)],
                 "weights": [w.tolist() for w in model.get_weights()]}}
print(json.dumps(out))
"""


def on_one_and_two_replicas(setup, make_step, call):
    """Two steps of a training step on a five-article batch, on one device and on two replicas
    (two logical CPUs, in a subprocess): {"one": ..., "two": ...} with each one's replicas,
    losses and weights after. make_step builds `step` from model, optimizer and strategy; call
    runs it (i: the step's number)."""
    script = TWO_REPLICAS.format(root=ROOT, tests=os.path.join(ROOT, "tests"), setup=setup, make_step=make_step,
                                 call=call)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])
