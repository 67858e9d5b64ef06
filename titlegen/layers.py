"""The blog's custom layers, each a few lines of its formula.

All are registered so a model that uses them saves and reloads as `.keras`.
"""
import keras
from keras import layers, ops

from . import backend
from .data import END, FIRST_CHAR, PAD, UNK

register = keras.saving.register_keras_serializable(package="seq2seq_title")


def far(dtype):
    """How far below the rest a masked value is pushed: the blog's 1e10, or 3e4 in float16 (mixed
    precision), whose largest number is 65504 (1e10 would overflow to inf, and 0 · inf is NaN)."""
    return 3e4 if keras.backend.standardize_dtype(dtype) == "float16" else 1e10


def padding_bias(mask, dtype):
    """What is subtracted where a key is padding (mask False): far(dtype) there, 0 elsewhere."""
    return (1.0 - ops.cast(mask, dtype)) * far(dtype)


def masked_max(x, mask):
    """The max over time of the unpadded steps of x (batch, t, dim): (batch, 1, dim)."""
    return ops.max(x - padding_bias(ops.expand_dims(mask, 2), x.dtype), axis=1, keepdims=True)


@register
class PadMask(layers.Layer):
    """True where an id is a real character: the blog's mask `ids > 0`."""

    def call(self, ids):
        return ops.greater(ids, PAD)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


class VocabLayer(layers.Layer):
    """A layer that knows the vocabulary's size."""

    def __init__(self, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


@register
class ArticleChars(VocabLayer):
    """χ: 1 for every vocabulary id present among the article's non-pad ids, shape (batch, 1, V).

    The blog sums a one-hot of the masked ids over time and keeps > 0.5; counting the ids (a scatter
    that adds, of fixed shape on every backend) and zeroing the pad column gives the same vector
    without the (batch, time, V) one-hot.
    """

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        shape = ops.shape(ids)
        rows = ops.broadcast_to(ops.arange(shape[0], dtype="int32")[:, None], shape)
        counts = ops.scatter(ops.reshape(ops.stack([rows, ids], axis=-1), (-1, 2)),
                             ops.ones_like(ops.reshape(ids, (-1,))), (shape[0], self.vocab_size))
        present = ops.cast(ops.greater(counts, 0), self.compute_dtype)
        not_pad = ops.cast(ops.not_equal(ops.arange(self.vocab_size), PAD), self.compute_dtype)
        return ops.expand_dims(present * not_pad, 1)

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0], 1, self.vocab_size), dtype=self.compute_dtype)


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
class Bidirectional(layers.Bidirectional):
    """The encoder's bidirectional LSTM: Keras's Bidirectional, its weights and outputs, but on PyTorch
    a masked batch runs through torch's fused LSTM as packed sequences (`backend.packed_bilstm`: cuDNN
    on a GPU), where Keras's own LSTM falls back to a loop over the steps whenever there is a mask.
    It keeps Keras's class name because a weights file keys each layer by its class's name
    (`layers/bidirectional/...`): models trained before it load, and its files load elsewhere."""

    def call(self, sequences, mask=None, training=None, initial_state=None):
        fused = None
        if mask is not None and initial_state is None and not isinstance(sequences, keras.KerasTensor):
            fused = backend.packed_bilstm(self, sequences, mask, training)
        if fused is not None:
            return fused
        return super().call(sequences, mask=mask, training=training, initial_state=initial_state)


class ExplicitMask(layers.Layer):
    """A layer that takes the article's mask as an input of its own: it accepts the mask Keras
    attaches to the encoder output and passes none on (nothing after it is masked)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, previous_mask):
        return None


def attention_weights(scores, bias, coverage_term=None):
    """softmax(scores + coverage_term - bias) over the keys: the attention of every query row,
    padded keys pushed to 0 by bias (-1e10 there). With coverage (See et al. 2017), coverage_term is
    the learnt weight times the coverage, each row's attention summed over the steps before."""
    if coverage_term is not None:
        scores = scores + coverage_term
    return ops.softmax(scores - bias, axis=-1)


def covered_attention(scores, bias, weight):
    """Attention with coverage over a whole title, one query step after another:
    a_t = attention_weights(s_t, bias, weight · c_t), c_t the sum of the attention of the steps before.

    scores: (batch, tq, tk), or (batch, heads, tq, tk) where a key's coverage is the heads' mean
    attention to it; bias: -1e10 at padded keys, shaped like scores with tq = 1. Returns the
    weights, shaped like scores, and the coverage before each step, (batch, tq, tk).
    """
    heads = len(scores.shape) == 4
    bias_t = ops.squeeze(bias, -2)

    def step(carry, s_t):  # carry: (coverage, the last step's weights); TensorFlow's scan emits the carry
        coverage = carry[0]
        a_t = attention_weights(s_t, bias_t, weight * (coverage[:, None, :] if heads else coverage))
        carry = (coverage + (ops.mean(a_t, axis=1) if heads else a_t), a_t)
        return carry, carry

    steps = ops.moveaxis(scores, -2, 0)
    _, (_, a) = ops.scan(step, (ops.zeros_like(steps[0][..., 0, :] if heads else steps[0]), ops.zeros_like(steps[0])),
                         steps)
    a = ops.moveaxis(a, 0, -2)
    mean = ops.mean(a, axis=1) if heads else a
    return a, ops.cumsum(mean, axis=1) - mean


def coverage_loss(a, coverage, title_in):
    """Σ_i min(a_t,i, c_t,i), averaged over the steps whose target is a real character (the input
    is neither padding nor END)."""
    mask = ops.cast(ops.logical_and(ops.greater(title_in, PAD), ops.not_equal(title_in, END)), a.dtype)
    per_step = ops.sum(ops.minimum(a, coverage), axis=-1)
    return ops.sum(per_step * mask) / ops.maximum(ops.sum(mask), 1.0)


class Attention(ExplicitMask):
    """What both versions' attention layers share. Training calls the layer on a whole title (its
    steps are the query rows; with coverage, each step's coverage is the attention of the steps
    before); decoding computes `memory` once per article and `read`s it at every step (its beams
    are the query rows, each with its own coverage)."""

    def __init__(self, return_attention=False, coverage=0.0, **kwargs):
        super().__init__(**kwargs)
        self.return_attention = return_attention  # also return the attention weights (for copying)
        self.coverage = coverage  # > 0: coverage fed to the scores, and its loss with this weight

    def call(self, inputs):
        q, *keys = inputs[:-1] if self.coverage else inputs  # with coverage, the title input comes last
        memory = self.memory(*keys)
        if self.coverage:
            a, coverage = covered_attention(self.scores(q, memory), memory["bias"], self.coverage_weight)
            self.add_loss(self.coverage * coverage_loss(self.mean(a), coverage, inputs[-1]))
        else:
            a = self.weights_of(q, memory)
        out = self.output_of(q, a, memory)
        return [out, self.mean(a)] if self.return_attention else out

    def read(self, q, memory, coverage=None):
        """One decoding step: (output, weights (batch, tq, tk)) for query rows q (batch, tq, dim), each
        with its own coverage (batch, tq, tk) when the layer has coverage."""
        a = self.weights_of(q, memory, coverage)
        return self.output_of(q, a, memory), self.mean(a)

    def weights_of(self, q, memory, coverage=None):
        """The attention weights; with coverage (batch, tq, tk), each row's own."""
        term = None if coverage is None else self.coverage_weight * self.per_head(coverage)
        return attention_weights(self.scores(q, memory), memory["bias"], term)

    def mean(self, a):  # the weights over the heads, (batch, tq, tk)
        return a

    def per_head(self, coverage):
        return coverage

    def get_config(self):
        return {**super().get_config(), "return_attention": self.return_attention, "coverage": self.coverage}


@register
class Interact(Attention):
    """The blog's multiplicative attention of the decoder over the encoder.

    scores = (q W) vᵀ / 10 with padded keys at -1e10; o = softmax(scores) v; returns
    concat[o, q, mv] per decoder step, mv the max over time of the unpadded encoder output.
    """

    def build(self, input_shape):
        q_shape, v_shape = input_shape[:2]
        self.kernel = self.add_weight(name="kernel", shape=(q_shape[-1], v_shape[-1]),
                                      initializer="glorot_normal")
        if self.coverage:
            self.coverage_weight = self.add_weight(name="coverage_weight", shape=(), initializer="zeros")

    def memory(self, v, v_mask):
        """What attention needs of the encoder output, whatever the query: v, vᵀ, -1e10 at padded
        keys, and the max-pool mv."""
        bias = padding_bias(ops.expand_dims(v_mask, 1), v.dtype)
        return {"values": v, "keys_t": ops.transpose(v, (0, 2, 1)), "bias": bias, "pool": masked_max(v, v_mask)}

    def scores(self, q, memory):
        """(q W) vᵀ / 10: (batch, tq, tk)."""
        return ops.matmul(ops.matmul(q, self.kernel), memory["keys_t"]) / 10.0

    def output_of(self, q, a, memory):
        """concat[a v, q, mv], mv repeated for every query row."""
        mv = memory["pool"] + ops.zeros_like(q[:, :, :1])
        return ops.concatenate([ops.matmul(a, memory["values"]), q, mv], axis=-1)


@register
class PriorAverage(layers.Layer):
    """(logits + prior) / 2: the vocabulary logits averaged with the article prior."""

    def call(self, inputs):
        logits, prior = inputs
        return (logits + prior) / 2.0


# The author's 2019 model (bojone/seq2seq 24ff08f)


@register
class SelfModulatedLayerNorm(layers.Layer):
    """LayerNorm without centre and scale, then x * (γ + 1) + β, with γ and β each computed from a
    condition vector by Dense(hidden, relu) -> Dense(dim): the 2019 decoder's normalisation."""

    def __init__(self, hidden, epsilon=1e-14, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.epsilon = hidden, epsilon
        self.norm = layers.LayerNormalization(center=False, scale=False, epsilon=epsilon)
        self.beta_1 = layers.Dense(hidden, activation="relu")
        self.gamma_1 = layers.Dense(hidden, activation="relu")

    def build(self, input_shape):
        x_shape, cond_shape = input_shape
        self.beta_2 = layers.Dense(x_shape[-1])
        self.gamma_2 = layers.Dense(x_shape[-1])
        self.norm.build(x_shape)
        for first, second in ((self.beta_1, self.beta_2), (self.gamma_1, self.gamma_2)):
            first.build(cond_shape)
            second.build((*cond_shape[:-1], self.hidden))

    def call(self, inputs):
        x, cond = inputs  # x (batch, t, dim), cond (batch, 1, c)
        beta = self.beta_2(self.beta_1(cond))
        gamma = self.gamma_2(self.gamma_1(cond))
        return self.norm(x) * (gamma + 1.0) + beta

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "epsilon": self.epsilon}


@register
class MaskedMaxPool(ExplicitMask):
    """The max over time of the unpadded steps, (batch, 1, dim): the 2019 code's x_max."""

    def call(self, inputs):
        return masked_max(*inputs)


@register
class MultiHeadAttention(Attention):
    """The 2019 code's attention: q, k, v by Dense without bias, `heads` heads of `size_per_head`,
    scores / sqrt(size_per_head), padded keys at -1e10. Its weights for copying and coverage are
    the heads' mean."""

    def __init__(self, heads, size_per_head, return_attention=False, coverage=0.0, **kwargs):
        super().__init__(return_attention, coverage, **kwargs)
        self.heads, self.size_per_head = heads, size_per_head
        self.out_dim = heads * size_per_head
        self.q_dense, self.k_dense, self.v_dense = (layers.Dense(self.out_dim, use_bias=False) for _ in range(3))

    def build(self, input_shape):
        q_shape, k_shape, v_shape = input_shape[:3]
        self.q_dense.build(q_shape)
        self.k_dense.build(k_shape)
        self.v_dense.build(v_shape)
        if self.coverage:
            self.coverage_weight = self.add_weight(name="coverage_weight", shape=(), initializer="zeros")

    def memory(self, k, v, v_mask):
        """What attention needs of the keys and values, whatever the query: the projected keys'
        heads transposed (batch, heads, size, tk), the projected values' heads, -1e10 at padded keys."""
        kw, vw = self.k_dense(k), self.v_dense(v)
        bias = padding_bias(v_mask[:, None, None, :], kw.dtype)
        return {"keys_t": ops.transpose(self.split_heads(kw), (0, 1, 3, 2)), "values": self.split_heads(vw),
                "bias": bias}

    def split_heads(self, x):
        """(batch, t, heads * size) -> (batch, heads, t, size)"""
        shape = ops.shape(x)
        return ops.transpose(ops.reshape(x, (shape[0], shape[1], self.heads, self.size_per_head)), (0, 2, 1, 3))

    def scores(self, q, memory):
        """Each head's scores: (batch, heads, tq, tk)."""
        return ops.matmul(self.split_heads(self.q_dense(q)), memory["keys_t"]) / self.size_per_head ** 0.5

    def output_of(self, q, a, memory):
        """The heads' outputs side by side: (batch, tq, heads * size)."""
        o = ops.transpose(ops.matmul(a, memory["values"]), (0, 2, 1, 3))
        shape = ops.shape(o)
        return ops.reshape(o, (shape[0], shape[1], self.out_dim))

    def mean(self, a):
        return ops.mean(a, axis=1)

    def per_head(self, coverage):  # one coverage for all heads
        return coverage[:, None, :, :]

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "size_per_head": self.size_per_head}


# Copying from the article (pointer-generator, See et al. 2017): beyond the blog


@register
class TitleIds(VocabLayer):
    """Extended ids (an article's out-of-vocabulary characters, >= vocab_size) read as UNK, so a
    title with copied characters can be fed back to the decoder."""

    def call(self, ids):
        return ops.where(ops.greater_equal(ids, self.vocab_size), UNK, ids)


@register
class TitleDropout(layers.Layer):
    """While training, each title character the decoder reads (teacher forcing) becomes UNK with
    probability `rate`, so the decoder leans on the article (attention, copying) more than on the
    title so far; PAD, START and END pass unchanged. Outside training it returns its input."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=False):
        if not training or not self.rate:
            return ids
        dropped = ops.less(keras.random.uniform(ops.shape(ids), seed=self.seed_generator), self.rate)
        return ops.where(ops.logical_and(dropped, ops.greater_equal(ids, FIRST_CHAR)), UNK, ids)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@register
class CopyGate(layers.Layer):
    """p_gen = σ(w · [features, decoder input embedding] + b): how much of a step's probability
    comes from the vocabulary rather than from copying. features: the attention context and the
    decoder output."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(1, activation="sigmoid")

    def build(self, input_shape):
        features, embedding = input_shape
        self.dense.build((*features[:-1], features[-1] + embedding[-1]))

    def call(self, inputs):
        return self.dense(ops.concatenate(inputs, axis=-1))


@register
class PointerGenerator(layers.Layer):
    """p_gen · P_vocab + (1 - p_gen) · (attention summed per character of the article), over the
    vocabulary followed by `extra` temporary ids for the article's out-of-vocabulary characters."""

    def __init__(self, extra, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra

    def call(self, inputs):
        probs, a, article_ids, p_gen = inputs  # (b, t, V), (b, t, tx), (b, tx) extended ids, (b, t, 1)
        shape = ops.shape(a)
        size = ops.shape(probs)[-1] + self.extra
        vocab = ops.pad(probs, [[0, 0], [0, 0], [0, self.extra]])
        rows = ops.broadcast_to(ops.arange(shape[0])[:, None, None], shape)
        steps = ops.broadcast_to(ops.arange(shape[1])[None, :, None], shape)
        ids = ops.broadcast_to(ops.cast(article_ids, "int32")[:, None, :], shape)
        index = ops.reshape(ops.stack([rows, steps, ids], axis=-1), (-1, 3))
        copied = ops.scatter(index, ops.reshape(a, (-1,)), (shape[0], shape[1], size))  # repeats add up
        return p_gen * vocab + (1.0 - p_gen) * copied

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}
