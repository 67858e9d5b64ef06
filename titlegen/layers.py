"""The blog's custom layers, each a few lines of its formula.

All are registered so a model that uses them saves and reloads as `.keras`.
"""
import keras
from keras import layers, ops

from .data import PAD

register = keras.saving.register_keras_serializable(package="seq2seq_title")


@register
class PadMask(layers.Layer):
    """True where an id is a real character: the blog's mask `ids > 0`."""

    def call(self, ids):
        return ops.greater(ids, PAD)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


@register
class ArticleChars(layers.Layer):
    """χ: 1 for every vocabulary id present among the article's non-pad ids, shape (batch, 1, V).

    The blog sums a one-hot of the masked ids over time and keeps > 0.5; counting the ids and
    zeroing the pad column gives the same vector without the (batch, time, V) one-hot.
    """

    def __init__(self, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def call(self, ids):
        counts = ops.bincount(ops.cast(ids, "int32"), minlength=self.vocab_size)
        present = ops.cast(ops.greater(counts, 0), self.compute_dtype)
        not_pad = ops.cast(ops.not_equal(ops.arange(self.vocab_size), PAD), self.compute_dtype)
        return ops.expand_dims(present * not_pad, 1)

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0], 1, self.vocab_size), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


@register
class ScaleShift(layers.Layer):
    """exp(log_scale) * x + shift, both weights (1, ..., 1, dim) and zero-initialised: the prior s⊗χ+t."""

    def build(self, input_shape):
        shape = (1,) * (len(input_shape) - 1) + (input_shape[-1],)
        self.log_scale = self.add_weight(name="log_scale", shape=shape, initializer="zeros")
        self.shift = self.add_weight(name="shift", shape=shape, initializer="zeros")

    def call(self, x):
        return ops.exp(self.log_scale) * x + self.shift


@register
class Interact(layers.Layer):
    """The blog's multiplicative attention of the decoder over the encoder.

    scores = (q W) vᵀ / 10 with padded keys at -1e10; o = softmax(scores) v; returns
    concat[o, q, mv] per decoder step, mv the max over time of the unpadded encoder output.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # takes the encoder's mask explicitly as v_mask ...

    def compute_mask(self, inputs, previous_mask):
        return None  # ... and passes none on: nothing after the attention is masked

    def build(self, input_shape):
        q_shape, v_shape, _ = input_shape
        self.kernel = self.add_weight(name="kernel", shape=(q_shape[-1], v_shape[-1]),
                                      initializer="glorot_normal")

    def call(self, inputs):
        q, v, v_mask = inputs
        m = ops.cast(ops.expand_dims(v_mask, 2), v.dtype)  # (batch, tx, 1)
        mv = ops.max(v - (1.0 - m) * 1e10, axis=1, keepdims=True)  # masked max-pool over time
        mv = mv + ops.zeros_like(q[:, :, :1])  # repeated for every decoder step
        a = ops.matmul(ops.matmul(q, self.kernel), ops.transpose(v, (0, 2, 1))) / 10.0
        a = a - (1.0 - ops.transpose(m, (0, 2, 1))) * 1e10  # padded keys get no weight
        o = ops.matmul(ops.softmax(a, axis=-1), v)
        return ops.concatenate([o, q, mv], axis=-1)

    def compute_output_shape(self, input_shape):
        q_shape, v_shape, _ = input_shape
        return (*q_shape[:2], 2 * v_shape[-1] + q_shape[-1])


@register
class PriorAverage(layers.Layer):
    """(logits + prior) / 2: the vocabulary logits averaged with the article prior."""

    def call(self, inputs):
        logits, prior = inputs
        return (logits + prior) / 2.0

    def compute_output_shape(self, input_shape):
        return input_shape[0]
