"""The 2019 model (bojone/seq2seq 24ff08f): its layers by hand, padding invariance, and each
model version one class of `model.PARTS`."""
import math

import keras
import numpy as np

from conftest import model_settings
from titlegen.layers import MaskedMaxPool, MultiHeadAttention, SelfModulatedLayerNorm
from titlegen.model import PARTS, build_model, named_inputs


def test_self_modulated_layer_norm_by_hand():
    layer = SelfModulatedLayerNorm(hidden=2)
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]], dtype="float32")
    cond = np.array([[[0.5, -0.5]]], dtype="float32")
    layer.build((x.shape, cond.shape))
    for dense in (layer.beta_1, layer.gamma_1, layer.beta_2, layer.gamma_2):
        dense.kernel.assign(np.zeros(dense.kernel.shape))
    layer.gamma_2.bias.assign([1.0, 0.0, -1.0, 0.5])  # γ
    layer.beta_2.bias.assign([0.0, 1.0, 0.0, 0.0])  # β
    norm = (x[0, 0] - 2.5) / math.sqrt(1.25 + 1e-14)  # mean 2.5, variance 1.25
    expected = norm * (np.array([1.0, 0.0, -1.0, 0.5]) + 1) + np.array([0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(layer([x, cond]))[0, 0], expected, rtol=1e-5, atol=1e-6)


def test_multi_head_attention_by_hand():
    layer = MultiHeadAttention(heads=2, size_per_head=1)
    q = np.array([[[1.0, 2.0]]], dtype="float32")
    kv = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], dtype="float32")  # the last key is padding
    mask = np.array([[True, True, False]])
    layer.build((q.shape, kv.shape, kv.shape, mask.shape))
    for dense in (layer.q_dense, layer.k_dense, layer.v_dense):
        dense.kernel.assign(np.eye(2))
    out = np.asarray(layer([q, kv, kv, mask]))[0, 0]
    # head 0 sees dimension 0: scores q0 * k0 = [1, 0]; head 1 sees dimension 1: [0, 2]
    a0 = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
    a1 = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
    np.testing.assert_allclose(out, [a0 @ [1.0, 0.0], a1 @ [0.0, 1.0]], rtol=1e-6)


def test_masked_max_pool_ignores_padding():
    x = np.array([[[1.0, -5.0], [3.0, -7.0], [100.0, 100.0]]], dtype="float32")
    out = MaskedMaxPool()([x, np.array([[True, True, False]])])
    assert np.asarray(out).tolist() == [[[3.0, -5.0]]]


def test_2019_model_is_padding_invariant_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(model_settings(12, char_size=16, version="2019"))
    assert model.name == "seq2seq_title_2019" and "encoder_norm_1" in {layer.name for layer in model.layers}
    short, long = [4, 5, 6, 7, 8], [9, 10, 11, 4, 5, 6, 7, 8, 9, 10]
    y = np.array([[2, 4, 5], [2, 6, 7]])
    alone = np.asarray(model(named_inputs(np.array([short, short]), y)))[0]
    in_batch = np.asarray(model(named_inputs(np.array([short + [0] * 5, long]), y)))[0]
    np.testing.assert_allclose(in_batch, alone, atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_array_equal(np.asarray(loaded(named_inputs(np.array([short, short]), y)))[0], alone)


def test_each_version_is_one_class_in_the_table():
    """settings.VERSIONS (the choices MODEL_VERSION is checked against) are PARTS' keys, and the
    model a version's settings build holds that version's parts, made with it."""
    from titlegen.settings import VERSIONS

    assert tuple(PARTS) == VERSIONS
    for version in VERSIONS:
        settings = model_settings(12, char_size=16, hidden_size=16, version=version)
        model = build_model(settings)
        assert type(model.parts) is PARTS[version] and model.parts.settings == model.settings == settings
        assert model.max_title_len == PARTS[version].max_title_len
