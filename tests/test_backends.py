"""Every Keras backend: the same weights give the same titles on TensorFlow, JAX and PyTorch (every
decoding option; naive = incremental on each), 20 training steps from the same weights give the
same losses within float tolerance, and a run killed with -9 on JAX (and PyTorch) resumes as the
run never killed. Each backend runs in a process of its own (Keras reads KERAS_BACKEND once, when it
is imported); PyTorch where it imports (its CUDA wheels are too large for CI)."""
import importlib.util
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, TINY_CONFIG, make_corpus, model_settings, run_cli, slow_but, train_cli, write_jsonl
from test_search import OPTIONS
from titlegen.runfolder import STEPS_FILE

OTHERS = ["jax"] + (["torch"] if importlib.util.find_spec("torch") else [])
ARTICLES = ["春夏秋冬山水日月风雨花草", "山山水水日月", "冬冬冬春春花花草", "花草风雨春夏秋冬" * 3, "雨"]
SETTINGS = {"2018": {"char_size": 16, "hidden_size": 32},
            "2019+copy+coverage": {"char_size": 16, "hidden_size": 32, "version": "2019", "copy": True,
                                   "coverage": 0.5}}
DECODE = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
import keras
from conftest import decoding, model_settings
from titlegen.data import Vocab
from titlegen.decoders import Titler
from titlegen.model import build_model
model = build_model(model_settings({vocab_size}, **{settings!r}))
model.load_weights(sys.argv[1])
vocab = Vocab(list({chars!r}), 1)
out = []
for topk, options in {options!r}:
    for decoder in ("naive", "incremental"):
        titler = Titler(model, vocab, decoding(decoder=decoder, topk=topk, **{{"max_title_len": 8, **options}}))
        out.append(titler.titles_and_scores({articles!r}))
print(json.dumps({{"backend": keras.backend.backend(), "titles": out}}, ensure_ascii=False))
"""
TRAIN = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
import keras, numpy as np
from conftest import model_settings, tiny_settings
from titlegen.data import pad
from titlegen.devices import make_devices, make_optimizer
from titlegen.model import build_model
devices = make_devices("auto")  # before any Keras object: JAX's distribution places them
model = build_model(model_settings(12, **{settings!r}))
model.load_weights(sys.argv[1])
optimizer = make_optimizer(1e-2, False) if sys.argv[2] == "adam" else keras.optimizers.SGD(0.5)
optimizer.build(model.trainable_variables)
step = devices.train_step(model, optimizer, tiny_settings("t", "d", label_smoothing=0.1, batch_size=5).train)
rng = np.random.default_rng(0)
losses = []
for i in range(20):
    x = pad([list(rng.integers(4, 12, n)) for n in rng.integers(2, 12, 5)])
    y = pad([[2] + list(rng.integers(4, 12, n)) + [3] for n in rng.integers(1, 6, 5)])
    losses.append(step({{"article": x, "title": y, **({{"article_extended": x}} if {copy!r} else {{}})}}))
devices = [str(d) for d in keras.distribution.list_devices()] if keras.backend.backend() == "jax" else []
print(json.dumps({{"backend": keras.backend.backend(), "losses": losses, "devices": devices}}))
"""


def on_backend(backend, script, *args, env=None):
    """A script run by Python with KERAS_BACKEND=backend (and `env`): its last line of output, as JSON."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["backend"] == backend
    return out


def weights_file(tmp_path, settings, vocab_size, seed=3):
    import keras
    from titlegen.model import build_model

    keras.utils.set_random_seed(seed)
    path = str(tmp_path / "model.weights.h5")
    build_model(model_settings(vocab_size, **settings)).save_weights(path)
    return path


EVERY_OPTION = [(3, {"no_new_double": True, "no_repeat_ngram": 2, "min_title_len": 2}),
                (5, {"length_penalty": 0.6, "no_repeat_ngram": 3, "no_new_double": True})]  # each option once


@pytest.mark.parametrize("name, options", slow_but(("2019+copy+coverage", "few"), ("2018", "all"),
                                                   ("2019+copy+coverage", "few"), ("2019+copy+coverage", "all")))
def test_the_same_weights_give_the_same_titles_on_every_backend(tmp_path, name, options):
    """Every decoding option ("few": each once; "all": test_search's sets), both decoders, on each
    backend: the titles TensorFlow gives, and scores within float tolerance."""
    options = EVERY_OPTION if options == "few" else OPTIONS
    chars = sorted(set("".join(ARTICLES)))
    path = weights_file(tmp_path, SETTINGS[name], len(chars) + 4)
    script = DECODE.format(root=ROOT, tests=os.path.join(ROOT, "tests"), vocab_size=len(chars) + 4,
                           settings=SETTINGS[name], chars="".join(chars), options=options, articles=ARTICLES)
    got = {backend: on_backend(backend, script, path)["titles"] for backend in ["tensorflow", *OTHERS]}
    tensorflow = got["tensorflow"]
    for i in range(0, len(tensorflow), 2):  # naive, then incremental, for each option
        assert tensorflow[i][0] == tensorflow[i + 1][0], options[i // 2]
    assert len({tuple(titles) for titles, _ in tensorflow}) > 1  # the options change the titles
    for backend in OTHERS:
        for (titles, scores), (want, want_scores) in zip(got[backend], tensorflow):
            assert titles == want, backend
            np.testing.assert_allclose(scores, want_scores, rtol=1e-4)


@pytest.mark.parametrize("copy", slow_but(True, False, True))
def test_twenty_steps_give_the_same_losses_on_every_backend(tmp_path, copy):
    """Teacher forcing (label smoothing, and for the copy model the coverage loss too) from the
    same weights on the same batches, each backend's own training step: with SGD the same losses on
    every backend within float tolerance; with Adam on JAX and PyTorch. (TensorFlow's Adam differs
    from the second step on: Keras squares the shared embedding's sparse gradient slice by slice, so
    a character twice in a batch adds g₁² + g₂² to Adam's second moment where dense Adam, JAX's,
    PyTorch's and the blog's Keras 2, adds (g₁ + g₂)²: docs/model.md.)"""
    settings = {"char_size": 16, "hidden_size": 32, **({"copy": True, "coverage": 0.5} if copy else {})}
    path = weights_file(tmp_path, settings, 12)
    script = TRAIN.format(root=ROOT, tests=os.path.join(ROOT, "tests"), settings=settings, copy=copy)
    sgd = {backend: on_backend(backend, script, path, "sgd")["losses"] for backend in ["tensorflow", *OTHERS]}
    assert sgd["tensorflow"][-1] < sgd["tensorflow"][0]  # it learns
    for backend in OTHERS:
        np.testing.assert_allclose(sgd[backend], sgd["tensorflow"], rtol=1e-4)
    if "torch" in OTHERS:  # Adam's losses compare JAX's with PyTorch's (TensorFlow's depart: above)
        adam = {backend: on_backend(backend, script, path, "adam")["losses"] for backend in OTHERS}
        np.testing.assert_allclose(adam["torch"], adam["jax"], rtol=1e-4)


STAGE = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
import keras, numpy as np
from conftest import decoding, model_settings, tiny_settings
from titlegen.data import pad
from titlegen.decoders import IncrementalDecoder
from titlegen.devices import make_devices
from titlegen.model import build_model
model = build_model(model_settings(12, char_size=16, hidden_size=32, copy=True))
model.load_weights(sys.argv[1])
train = tiny_settings("t", "d", seq_candidates=2, seq_reference=True, seq_beam=True, seq_ce_weight=0.3).train
optimizer = keras.optimizers.SGD(0.5)
optimizer.build(model.trainable_variables)
step = make_devices("auto").sequence_step(model, optimizer, IncrementalDecoder(model, decoding(topk=3, max_title_len=6)),
                                          train)
rng = np.random.default_rng(0)
losses = []
for i in range(5):
    x = pad([list(rng.integers(4, 12, n)) for n in rng.integers(2, 12, 4)])
    y = pad([[2] + list(rng.integers(4, 12, n)) + [3] for n in rng.integers(1, 6, 4)])
    losses.append(step({{"article": x, "title": y, "article_extended": x}}, [7, i]))
print(json.dumps({{"backend": keras.backend.backend(), "losses": losses}}))
"""


@pytest.mark.slow
def test_the_sequence_stage_gives_the_same_losses_on_every_backend(tmp_path):
    """Five steps of the sequence-level stage (its candidates the reference and the beam-search title,
    no draws, so they are the same everywhere; SGD) on a copy model: each backend's own stage step,
    the same losses within float tolerance."""
    path = weights_file(tmp_path, {"char_size": 16, "hidden_size": 32, "copy": True}, 12)
    script = STAGE.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    losses = {backend: on_backend(backend, script, path)["losses"] for backend in ["tensorflow", *OTHERS]}
    assert losses["tensorflow"][-1] < losses["tensorflow"][0]
    for backend in OTHERS:
        np.testing.assert_allclose(losses[backend], losses["tensorflow"], rtol=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's own Adam path")
def test_tensorflows_adam_squares_the_embeddings_sparse_gradient_slice_by_slice():
    """The one way TensorFlow's training departs from dense Adam, pinned by hand: an embedding row
    read twice in a batch, gradient 1 each time, gets v = (1 - β2) · (1² + 1²) = 0.002, not (1 + 1)²
    · (1 - β2) = 0.004; every backend's m is (1 - β1) · 2 = 0.2."""
    import tensorflow as tf
    from keras import ops

    layer = keras.layers.Embedding(3, 1, embeddings_initializer="zeros")
    layer.build((None, 2))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build([layer.embeddings])
    with tf.GradientTape() as tape:
        loss = ops.sum(layer(np.array([[1, 1]])))
    grads = tape.gradient(loss, [layer.embeddings])
    optimizer.apply(grads, [layer.embeddings])
    m, v = (ops.convert_to_numpy(x)[1, 0] for x in optimizer.variables[2:4])
    assert (m, v) == (pytest.approx(0.2), pytest.approx(0.002))


@pytest.mark.slow
def test_two_jax_devices_give_one_devices_losses(tmp_path):
    """keras.distribution's data parallelism over two JAX devices (two host CPUs, XLA_FLAGS): each
    gets half of every batch (five rows padded to six), and the losses are one device's (SGD)."""
    settings = {"char_size": 16, "hidden_size": 32}
    path = weights_file(tmp_path, settings, 12)
    script = TRAIN.format(root=ROOT, tests=os.path.join(ROOT, "tests"), settings=settings, copy=False)
    one = on_backend("jax", script, path, "sgd")
    two = on_backend("jax", script, path, "sgd", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert len(one["devices"]) == 1 and len(two["devices"]) == 2
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHERS)
def test_a_run_killed_on_any_backend_resumes_as_the_run_never_killed(tmp_path, backend):
    """kill -9 mid-epoch, two batches after a checkpoint, then `train --resume`: every batch's loss
    and the best weights as in the run never killed, on this backend (with an average of the weights,
    evaluated and kept at each epoch's end, and the unlikelihood loss)."""
    tiny = tmp_path / "tiny.py"
    tiny.write_text(TINY_CONFIG + "BATCH_SIZE = 4\nEPOCHS = 2\nCHECKPOINT_STEPS = 5\nSHUFFLE = True\n"
                    "MAX_TITLE_LEN = 6\nEMA = 0.9\nUNLIKELIHOOD = 0.5\n", encoding="utf-8")
    data = ["--train", write_jsonl(tmp_path / "train.jsonl", make_corpus(32, seed=1)),
            "--dev", write_jsonl(tmp_path / "dev.jsonl", make_corpus(4, seed=2))]
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    assert train_cli([str(tiny), *data, "--out", whole], backend=backend).returncode == 0
    result = train_cli([str(tiny), *data, "--out", killed], kill_at="step:12", backend=backend)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    resumed = train_cli([str(tiny), "--out", killed, "--resume"], backend=backend)
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr[-2000:]
    for name in (STEPS_FILE, "model.weights.h5"):
        with open(os.path.join(whole, name), "rb") as a, open(os.path.join(killed, name), "rb") as b:
            assert a.read() == b.read(), name
    titles = [run_cli("generate", "--model", whole, "--file", data[1], backend=b) for b in (backend, "tensorflow")]
    assert titles[0].returncode == 0 and titles[0].stdout == titles[1].stdout, titles[0].stderr[-2000:]
