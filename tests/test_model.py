import math

import keras
import numpy as np
import pytest

from titlegen.data import Vocab
from titlegen.layers import ArticleChars, Interact, ScaleShift
from conftest import compile_model, model_settings
from titlegen.model import build_model, model_inputs, named_inputs, title_loss


def test_prior_on_a_known_article():
    vocab = Vocab(list("天气很好不"), min_count=1)  # 天4 气5 很6 好7 不8
    ids = np.array([vocab.encode("天气很好，好", 400) + [0, 0]])  # 4 5 6 7 UNK 7, then padding
    chi = np.asarray(ArticleChars(len(vocab))(ids))
    #                        pad unk start end 天 气 很 好 不
    assert chi.tolist() == [[[0, 1, 0, 0, 1, 1, 1, 1, 0]]]
    # the blog's formula: one-hot summed over the unpadded steps, > 0.5
    one_hot = np.eye(len(vocab))[ids] * (ids > 0)[..., None]
    assert np.array_equal(chi, (one_hot.sum(1, keepdims=True) > 0.5).astype("float32"))

    scale_shift = ScaleShift()
    scale_shift.build(chi.shape)
    assert np.asarray(scale_shift(chi)).tolist() == chi.tolist()  # zero-initialised: exp(0) χ + 0
    scale_shift.log_scale.assign(np.full((1, 1, 9), math.log(2.0)))
    scale_shift.shift.assign(np.arange(9, dtype="float32").reshape(1, 1, 9) / 10)
    expected = [2 * c + i / 10 for i, c in enumerate(chi[0, 0])]  # 2χ + t
    np.testing.assert_allclose(np.asarray(scale_shift(chi))[0, 0], expected, rtol=1e-6)


def test_loss_on_a_2x3_toy():
    # targets y[:, 1:]: row 0 has a padded last step; V = 4; each step's probabilities sum to 1
    y_true = np.array([[1, 2, 0], [2, 1, 3]])
    p = np.array([[[0.2, 0.5, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.9, 0.05, 0.05, 0.0]],
                  [[0.1, 0.0, 0.8, 0.1], [0.3, 0.1, 0.3, 0.3], [0.2, 0.2, 0.2, 0.4]]], dtype="float32")
    # the padded step (p = 0.9 on pad) does not count
    expected = -(math.log(0.5) + math.log(0.25) + math.log(0.8) + math.log(0.1) + math.log(0.4)) / 5
    assert float(title_loss(y_true, p)) == pytest.approx(expected, rel=1e-6)


def test_compiled_training_loss_is_title_loss():
    model = compile_model(build_model(model_settings(10, char_size=8, hidden_size=16)))
    x = np.array([[4, 5, 6, 7], [8, 9, 0, 0]])
    y = np.array([[2, 4, 5, 3], [2, 6, 3, 0]])
    probs = model.predict_on_batch(named_inputs(x, y[:, :-1]))
    assert float(model.test_on_batch(*model_inputs({"article": x, "title": y}))) == pytest.approx(
        float(title_loss(y[:, 1:], probs)), rel=1e-5)


def test_attention_by_hand():
    layer = Interact()
    q = np.array([[[1.0, 0.0]]], dtype="float32")  # one decoder step
    v = np.array([[[10.0, 0.0], [0.0, 20.0], [99.0, 99.0]]], dtype="float32")  # last key is padding
    mask = np.array([[True, True, False]])
    layer.build((q.shape, v.shape, mask.shape))
    layer.kernel.assign(np.eye(2, dtype="float32"))
    out = np.asarray(layer([q, v, mask]))[0, 0]
    # scores q·v / 10 = [1, 0]; softmax = [e/(e+1), 1/(e+1)]
    a = [math.e / (math.e + 1), 1 / (math.e + 1)]
    o = [10 * a[0], 20 * a[1]]
    mv = [10.0, 20.0]  # max over the two real steps
    np.testing.assert_allclose(out, o + [1.0, 0.0] + mv, rtol=1e-6)


def test_attention_ignores_padding():
    rng = np.random.default_rng(0)
    layer = Interact()
    q = rng.normal(size=(1, 3, 4)).astype("float32")
    v = rng.normal(size=(1, 5, 4)).astype("float32")
    v_padded = np.concatenate([v, 50 * rng.normal(size=(1, 4, 4)).astype("float32")], axis=1)
    alone = np.asarray(layer([q, v, np.ones((1, 5), bool)]))
    padded = np.asarray(layer([q, v_padded, np.arange(9)[None] < 5]))
    np.testing.assert_allclose(alone, padded, atol=1e-6)


def outputs(model, layer_name, x, y):
    return np.asarray(keras.Model(model.input, model.get_layer(layer_name).output)(named_inputs(x, y)))


@pytest.mark.parametrize("mask_encoder", [True, False])
def test_padding_invariance_of_the_encoder(mask_encoder):
    keras.utils.set_random_seed(0)
    model = build_model(model_settings(12, char_size=8, hidden_size=16, mask_encoder=mask_encoder))
    short, long = [4, 5, 6, 7, 8], [9, 10, 11, 4, 5, 6, 7, 8, 9, 10]
    y = np.array([[2, 4, 5], [2, 6, 7]])
    x_alone = np.array([short, short])
    x_batch = np.array([short + [0] * 5, long])  # the short article shares a batch with a longer one
    enc_alone = outputs(model, "encoder_2", x_alone, y)[0]
    enc_batch = outputs(model, "encoder_2", x_batch, y)[0, :5]
    probs_alone = np.asarray(model(named_inputs(x_alone, y)))[0]
    probs_batch = np.asarray(model(named_inputs(x_batch, y)))[0]
    if mask_encoder:
        np.testing.assert_allclose(enc_batch, enc_alone, atol=1e-6)
        np.testing.assert_allclose(probs_batch, probs_alone, atol=1e-6)
    else:  # the 2018 code: the backward LSTM reads the padding first, so the outputs move
        assert np.abs(enc_batch - enc_alone).max() > 1e-4


def test_model_saves_and_reloads_as_keras_file(tmp_path):
    model = build_model(model_settings(12, char_size=8, hidden_size=16))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    x, y = np.array([[4, 5, 6, 0]]), np.array([[2, 7, 8]])
    np.testing.assert_array_equal(np.asarray(model(named_inputs(x, y))), np.asarray(loaded(named_inputs(x, y))))


BLOG_WEIGHTS = sorted(
    [f"layers/{lstm}/{way}_layer/cell/vars/{i}" for lstm in ("bidirectional", "bidirectional_1")
     for way in ("forward", "backward") for i in range(3)]
    + [f"layers/{lstm}/cell/vars/{i}" for lstm in ("lstm", "lstm_1") for i in range(3)]
    + ["layers/dense/vars/0", "layers/dense/vars/1", "layers/dense_1/vars/0", "layers/dense_1/vars/1",
       "layers/embedding/vars/0", "layers/interact/vars/0", "layers/scale_shift/vars/0", "layers/scale_shift/vars/1"])


def test_the_weights_file_keeps_the_layout_trained_models_have(tmp_path):
    """A weights file keys every weight by its layers' class names and order: the blog's model writes
    the 26 keys that every run folder trained so far holds (its encoder a Keras Bidirectional by
    name), so older models load and this one's weights load elsewhere."""
    h5py = pytest.importorskip("h5py")
    model = build_model(model_settings(12, char_size=8, hidden_size=16))
    model.save_weights(tmp_path / "m.weights.h5")
    keys = []
    with h5py.File(tmp_path / "m.weights.h5") as f:
        f.visititems(lambda name, item: keys.append(name) if isinstance(item, h5py.Dataset) else None)
    assert sorted(keys) == BLOG_WEIGHTS
