"""The blog's seq2seq as one Keras 3 functional model: the 2018 version (bojone/seq2seq f6f7bb7,
the code the post was published with) and the author's 2019 version (24ff08f).

inputs: article ids x (batch, tx) and the title so far y_in (batch, ty), starting with START;
output: the probability of every next character, (batch, ty, V). Teacher forcing lives in the
data: y_in = y[:, :-1], target = y[:, 1:].
"""
import keras
from keras import layers, ops

from .data import PAD
from .layers import (ArticleChars, CopyGate, Interact, MaskedMaxPool, MultiHeadAttention, PadMask,
                     PointerGenerator, PriorAverage, ScaleShift, SelfModulatedLayerNorm, TitleIds)

VERSIONS = ("2018", "2019")
MAX_TITLE_LEN = {"2018": 50, "2019": 64}  # each version's decoder allows this many steps
LAYER_NORM_EPSILON = 1e-14  # the 2019 code's LayerNormalization (Keras's default is 1e-3)


def build_model(vocab_size, char_size=128, hidden_size=512, mask_encoder=True, version="2018", copy=False,
                copy_extra=400, coverage=0.0):
    """The blog's model, as of `version`.

    mask_encoder (2018): the encoder LSTMs skip the article's padding in both directions, so a
    title does not depend on what shares its batch. False is the 2018 code, whose LSTMs read the
    padding. The 2019 code always masks; hidden_size is the 2018 head's and unused by 2019.
    copy: beyond the blog, a pointer-generator head. The model then also reads the article's
    extended ids (third input) and gives probabilities over the vocabulary and `copy_extra`
    temporary ids (at least the article length) for the article's out-of-vocabulary characters.
    coverage > 0: beyond the blog, the attention also reads each key's coverage (its attention
    summed over the steps before), and a coverage loss of that weight is added (See et al. 2017).
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown model version {version!r}; expected one of {VERSIONS}")
    x_in = keras.Input(shape=(None,), dtype="int32", name="article")
    y_in = keras.Input(shape=(None,), dtype="int32", name="title_in")
    inputs = [x_in, y_in]
    x_mask = PadMask(name="article_mask")(x_in)
    prior = ScaleShift(name="prior")(ArticleChars(vocab_size, name="article_chars")(x_in))

    embedding = layers.Embedding(vocab_size, char_size, name="embedding")  # shared by article and title
    x = embedding(x_in)
    y = y_emb = embedding(TitleIds(vocab_size, name="title_ids")(y_in) if copy else y_in)

    if version == "2018":
        encoder_mask = x_mask if mask_encoder else None
        for i in (1, 2):  # encoder: two bidirectional LSTMs
            x = layers.Bidirectional(layers.LSTM(char_size // 2, return_sequences=True),
                                     name=f"encoder_{i}")(x, mask=encoder_mask)
        for i in (1, 2):  # decoder: two LSTMs over the title
            y = layers.LSTM(char_size, return_sequences=True, name=f"decoder_{i}")(y)
        xy = Interact(return_attention=copy, coverage=coverage, name="interact")(
            [y, x, x_mask] + ([y_in] if coverage else []))
        xy, attention = xy if copy else (xy, None)
        features = xy  # [context, decoder output, max-pool]
        xy = layers.Dense(hidden_size, activation="relu", name="hidden")(xy)
    else:
        xy, attention = _decoder_2019(x, y, x_mask, char_size, copy, coverage, y_in)
        features = xy  # [decoder output, context]
        xy = layers.Dense(char_size, name="hidden")(xy)
        xy = layers.LeakyReLU(0.2, name="leaky_relu")(xy)
    xy = layers.Dense(vocab_size, name="logits")(xy)
    xy = PriorAverage(name="with_prior", dtype="float32")([xy, prior])  # float32 even under mixed precision
    probs = layers.Softmax(name="probs", dtype="float32")(xy)
    if copy:
        x_ext = keras.Input(shape=(None,), dtype="int32", name="article_extended")
        inputs.append(x_ext)
        p_gen = CopyGate(name="copy_gate")([features, y_emb])
        probs = PointerGenerator(copy_extra, name="pointer", dtype="float32")([probs, attention, x_ext, p_gen])
    return keras.Model(inputs, probs, name=f"seq2seq_title_{version}")


def _decoder_2019(x, y, x_mask, char_size, copy, coverage, y_in):
    """The 2019 model from the shared embedding to its head's input: LayerNorm before each masked
    encoder BiLSTM, self-modulated LayerNorms around the decoder LSTMs conditioned on the encoder's
    max-pool, 8-head attention. Returns concat[decoder output, attention] (and the attention weights
    when copying)."""
    for i in (1, 2):
        x = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"encoder_norm_{i}")(x)
        x = layers.Bidirectional(layers.LSTM(char_size // 2, return_sequences=True),
                                 name=f"encoder_{i}")(x, mask=x_mask)
    x_max = MaskedMaxPool(name="encoder_max")([x, x_mask])
    for i in (1, 2):
        y = SelfModulatedLayerNorm(char_size // 4, LAYER_NORM_EPSILON, name=f"decoder_norm_{i}")([y, x_max])
        y = layers.LSTM(char_size, return_sequences=True, name=f"decoder_{i}")(y)
    y = SelfModulatedLayerNorm(char_size // 4, LAYER_NORM_EPSILON, name="decoder_norm_3")([y, x_max])
    xy = MultiHeadAttention(8, 16, return_attention=copy, coverage=coverage, name="attention")(
        [y, x, x, x_mask] + ([y_in] if coverage else []))
    xy, attention = xy if copy else (xy, None)
    return layers.Concatenate(name="concat")([y, xy]), attention


def model_version(model):
    """"2018" or "2019": which of the blog's models this is."""
    return "2019" if model.name.endswith("_2019") else "2018"


def copies(model):
    """Whether the model has the copy head (and reads the article's extended ids)."""
    return any(layer.name == "copy_gate" for layer in model.layers)


def title_loss(y_true, y_pred):
    """The blog's loss: cross-entropy of each target character, summed over the real (non-pad)
    targets and divided by their number. y_true = y[:, 1:], y_pred = the model's output for y[:, :-1]."""
    return summed_title_loss(y_true, y_pred) / real_targets(y_true, y_pred.dtype)


def summed_title_loss(y_true, y_pred):
    """The numerator of `title_loss`: the cross-entropy summed over the real targets. Training on
    several devices divides each device's sum by the whole batch's count, so the loss and the
    gradients are those of one device."""
    mask = ops.cast(ops.greater(y_true, PAD), y_pred.dtype)
    cross_entropy = ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred)
    return ops.sum(cross_entropy * mask)


def real_targets(y_true, dtype="float32"):
    """The denominator of `title_loss`: how many targets are real characters."""
    return ops.sum(ops.cast(ops.greater(y_true, PAD), dtype))


def compile_model(model, learning_rate=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=title_loss, jit_compile=False)
    return model
