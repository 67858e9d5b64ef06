"""The blog's 2018 seq2seq (bojone/seq2seq f6f7bb7) as one Keras 3 functional model.

inputs: article ids x (batch, tx) and the title so far y_in (batch, ty), starting with START;
output: the probability of every next character, (batch, ty, V). Teacher forcing lives in the
data: y_in = y[:, :-1], target = y[:, 1:].
"""
import keras
from keras import layers, ops

from .data import PAD
from .layers import ArticleChars, Interact, PadMask, PriorAverage, ScaleShift


def build_model(vocab_size, char_size=128, hidden_size=512, mask_encoder=True):
    """The blog's model.

    mask_encoder: the encoder LSTMs skip the article's padding in both directions, so a title does
    not depend on what shares its batch. False is the 2018 code, whose LSTMs read the padding.
    """
    x_in = keras.Input(shape=(None,), dtype="int32", name="article")
    y_in = keras.Input(shape=(None,), dtype="int32", name="title_in")
    x_mask = PadMask(name="article_mask")(x_in)
    prior = ScaleShift(name="prior")(ArticleChars(vocab_size, name="article_chars")(x_in))

    embedding = layers.Embedding(vocab_size, char_size, name="embedding")  # shared by article and title
    x = embedding(x_in)
    y = embedding(y_in)

    encoder_mask = x_mask if mask_encoder else None
    for i in (1, 2):  # encoder: two bidirectional LSTMs
        x = layers.Bidirectional(layers.LSTM(char_size // 2, return_sequences=True),
                                 name=f"encoder_{i}")(x, mask=encoder_mask)
    for i in (1, 2):  # decoder: two LSTMs over the title
        y = layers.LSTM(char_size, return_sequences=True, name=f"decoder_{i}")(y)

    xy = Interact(name="interact")([y, x, x_mask])
    xy = layers.Dense(hidden_size, activation="relu", name="hidden")(xy)
    xy = layers.Dense(vocab_size, name="logits")(xy)
    xy = PriorAverage(name="with_prior")([xy, prior])
    probs = layers.Softmax(name="probs")(xy)
    return keras.Model([x_in, y_in], probs, name="seq2seq_title")


def title_loss(y_true, y_pred):
    """The blog's loss: cross-entropy of each target character, summed over the real (non-pad)
    targets and divided by their number. y_true = y[:, 1:], y_pred = the model's output for y[:, :-1]."""
    mask = ops.cast(ops.greater(y_true, PAD), y_pred.dtype)
    cross_entropy = ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred)
    return ops.sum(cross_entropy * mask) / ops.sum(mask)


def compile_model(model, learning_rate=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=title_loss, jit_compile=False)
    return model
