"""The blog's seq2seq as one Keras 3 functional model: the 2018 version (bojone/seq2seq f6f7bb7,
the code the post was published with) and the author's 2019 version (24ff08f).

inputs: article ids x (batch, tx) and the title so far y_in (batch, ty), starting with START;
output: the probability of every next character, (batch, ty, V). Teacher forcing lives in the
data: y_in = y[:, :-1], target = y[:, 1:].

`ModelParts` holds the layer objects and writes each stage of the model once: `build_model` calls
it on symbolic inputs (the training graph, a whole title at a time), and the decoders call it on
tensors: `memory` encodes articles once, `step` advances every beam by one character.
"""
import keras
from keras import layers, ops

from .data import PAD
from .settings import VERSIONS
from .layers import (ArticleChars, CopyGate, Interact, MaskedMaxPool, MultiHeadAttention, PadMask,
                     PointerGenerator, PriorAverage, ScaleShift, SelfModulatedLayerNorm, TitleDropout, TitleIds)

MAX_TITLE_LEN = {"2018": 50, "2019": 64}  # each version's decoder allows this many steps
LAYER_NORM_EPSILON = 1e-14  # the 2019 code's LayerNormalization (Keras's default is 1e-3)
DROPOUT_AT = ("embedding", "lstm", "head")  # with dropout: the embeddings, every LSTM's output, the head


def build_model(settings):
    """The blog's model as `settings` (a `settings.Model`) describe it.

    version: "2018" or "2019". mask_encoder (2018): the encoder LSTMs skip the article's padding
    in both directions, so a title does not depend on what shares its batch. False is the 2018
    code, whose LSTMs read the padding. The 2019 code always masks; hidden_size is the 2018 head's
    and unused by 2019.
    copy: beyond the blog, a pointer-generator head. The model then also reads the article's
    extended ids (third input) and gives probabilities over the vocabulary and `maxlen` temporary
    ids (the most an article can need) for the article's out-of-vocabulary characters.
    coverage > 0: beyond the blog, the attention also reads each key's coverage (its attention
    summed over the steps before), and a coverage loss of that weight is added (See et al. 2017).
    dropout > 0: beyond the blog, dropout of that rate on the embeddings (article and title), the
    output of every LSTM, and the head's input and hidden layer; only while training.
    title_dropout > 0: beyond the blog, while training each title character the decoder reads is
    replaced by UNK with that probability (the targets stay whole).
    recurrent_dropout > 0: beyond the blog, every LSTM's state h is dropped at that rate as it enters
    each step (Keras's recurrent_dropout: a mask per gate, the same at every step); only while
    training. Keras's cell then multiplies gate by gate, so outputs part at float rounding.
    """
    s = settings
    if s.version not in VERSIONS:
        raise ValueError(f"unknown model version {s.version!r}; expected one of {VERSIONS}")
    if s.vocab_size is None:
        raise ValueError("the model's vocab_size is unset; it comes from the vocabulary")
    version, copy = s.version, s.copy
    parts = ModelParts.new(s.vocab_size, s.char_size, s.hidden_size, s.mask_encoder, version, copy, s.maxlen,
                           s.coverage, s.dropout, s.title_dropout, s.recurrent_dropout)
    x_in = keras.Input(shape=(None,), dtype="int32", name="article")
    y_in = keras.Input(shape=(None,), dtype="int32", name="title_in")
    inputs = [x_in, y_in]
    if copy:
        inputs.append(keras.Input(shape=(None,), dtype="int32", name="article_extended"))
    probs = parts.title_probs(parts.encode(x_in), y_in, inputs[2] if copy else None)
    return keras.Model(inputs, probs, name=f"seq2seq_title_{version}")


class ModelParts:
    """The model's layers (by name), and each stage of the model written once.

    Training runs a whole title through `decoder`, `attend` and `head` (its steps are the query
    rows of the attention). Decoding encodes articles once (`memory`, a dict of what every step
    reads) and then calls `step`, where an article's beams are the query rows: the same layers and
    functions, one character at a time.
    """

    def __init__(self, layers, mask_encoder=True):
        self.layers, self.mask_encoder = layers, mask_encoder
        self.version = "2019" if "encoder_norm_1" in layers else "2018"
        self.copy = "copy_gate" in layers
        self.attention = layers["interact" if self.version == "2018" else "attention"]
        self.coverage = self.attention.coverage
        self.decoders = [layers["decoder_1"], layers["decoder_2"]]
        self.vocab_size = layers["logits"].units

    @classmethod
    def new(cls, vocab_size, char_size, hidden_size, mask_encoder, version, copy, copy_extra, coverage, dropout=0.0,
            title_dropout=0.0, recurrent_dropout=0.0):
        """Fresh layers for build_model, created in the order the blog's code creates them: their
        random initial weights are drawn in that order. The layers that draw theirs when built
        (Interact's kernel, the self-modulated norms' second Dense) are built at once, as the blog's
        code builds them by calling them before it creates the next layer."""
        def built(layer, *shapes):
            layer.build(list(shapes))
            return layer

        def encoder(i):  # a bidirectional LSTM
            lstm = layers.LSTM(char_size // 2, return_sequences=True, recurrent_dropout=recurrent_dropout)
            return layers.Bidirectional(lstm, name=f"encoder_{i}")

        def decoder(i):
            return layers.LSTM(char_size, return_sequences=True, recurrent_dropout=recurrent_dropout,
                               name=f"decoder_{i}")

        def norm(i):
            return built(SelfModulatedLayerNorm(char_size // 4, LAYER_NORM_EPSILON, name=f"decoder_norm_{i}"),
                         (None, None, char_size), (None, 1, char_size))

        made = [PadMask(name="article_mask"), ArticleChars(vocab_size, name="article_chars"),
                ScaleShift(name="prior"), layers.Embedding(vocab_size, char_size, name="embedding")]
        made += [TitleIds(vocab_size, name="title_ids")] if copy else []
        if version == "2018":
            made += [encoder(1), encoder(2), decoder(1), decoder(2),
                     built(Interact(return_attention=copy, coverage=coverage, name="interact"),
                           (None, None, char_size), (None, None, char_size)),
                     layers.Dense(hidden_size, activation="relu", name="hidden")]
        else:
            for i in (1, 2):
                made += [layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"encoder_norm_{i}"), encoder(i)]
            made += [MaskedMaxPool(name="encoder_max"), norm(1), decoder(1), norm(2), decoder(2), norm(3),
                     MultiHeadAttention(8, 16, return_attention=copy, coverage=coverage, name="attention"),
                     layers.Concatenate(name="concat"), layers.Dense(char_size, name="hidden"),
                     layers.LeakyReLU(0.2, name="leaky_relu")]
        made += [layers.Dense(vocab_size, name="logits"),
                 PriorAverage(name="with_prior", dtype="float32"),  # float32 even under mixed precision
                 layers.Softmax(name="probs", dtype="float32")]
        if copy:
            made += [CopyGate(name="copy_gate"), PointerGenerator(copy_extra, name="pointer", dtype="float32")]
        if dropout:  # created last: a model without dropout draws its initial weights as the blog's
            made += [layers.Dropout(dropout, name=f"{where}_dropout") for where in DROPOUT_AT]
        if title_dropout:  # after them: a model without it draws its weights and dropout as before
            made += [TitleDropout(title_dropout, name="title_dropout")]
        return cls({layer.name: layer for layer in made}, mask_encoder)

    def drop(self, where, x):
        """Dropout at `where` (DROPOUT_AT) when the model has it; it acts only while training."""
        layer = self.layers.get(f"{where}_dropout")
        return layer(x) if layer else x

    @classmethod
    def of(cls, model):
        """The parts of a built (or loaded) model: its own layer objects."""
        layers = {layer.name: layer for layer in model.layers}
        node = layers["encoder_1"]._inbound_nodes[0]  # whether the model gave its encoder the mask
        return cls(layers, node.arguments.kwargs.get("mask") is not None)

    def encode(self, x):
        """Article ids (batch, tx) -> {"encoded": the encoder output, "mask": the article's mask,
        "prior": s⊗χ+t (batch, 1, V), and in 2019 "condition": the encoder's max-pool (batch, 1, c)}."""
        L = self.layers
        mask = L["article_mask"](x)
        out = {"mask": mask, "prior": L["prior"](L["article_chars"](x))}
        h = self.drop("embedding", L["embedding"](x))
        for i in (1, 2):  # two bidirectional LSTMs; in 2019, masked and each after a LayerNorm
            if self.version == "2019":
                h = L[f"encoder_norm_{i}"](h)
            h = L[f"encoder_{i}"](h, mask=mask if self.mask_encoder or self.version == "2019" else None)
            h = self.drop("lstm", h)
        if self.version == "2019":
            out["condition"] = L["encoder_max"]([h, mask])
        return {**out, "encoded": h}

    def title_probs(self, encoded, y_in, extended=None):
        """Teacher forcing over whole titles: `encode`'s output and the titles so far y_in (batch, ty)
        -> the next-id probabilities (batch, ty, V'). The sequence-level stage calls it on encoded
        articles repeated once per candidate title."""
        y_emb = self.embed_title(y_in)
        y, _ = self.decoder(y_emb, encoded.get("condition"))
        attended, attention = self.attend(y, encoded, y_in)
        return self.head(self.features(y, attended), encoded["prior"], y_emb, attention, extended)

    def embed_title(self, y):
        """Title ids -> the shared embedding (a copying model reads copied characters as UNK; with
        title dropout, training reads some characters as UNK)."""
        y = self.layers["title_ids"](y) if self.copy else y
        y = self.layers["title_dropout"](y) if "title_dropout" in self.layers else y
        return self.drop("embedding", self.layers["embedding"](y))

    def decoder(self, y, condition=None, states=None):
        """The decoder LSTMs (in 2019 inside self-modulated LayerNorms conditioned on the encoder's
        max-pool) over y (batch, rows, dim). states None: the rows are a title's steps, run from zero
        states. Else the rows are beams, each advanced one step from its own [h, c] per LSTM.
        Returns the output and the new states."""
        norms = [self.layers[f"decoder_norm_{i}"] for i in (1, 2, 3)] if self.version == "2019" else []
        new_states = []
        for i, lstm in enumerate(self.decoders):
            y = norms[i]([y, condition]) if norms else y
            if states is None:
                y = self.drop("lstm", lstm(y))
            else:
                shape = ops.shape(y)
                out, state = lstm.cell(ops.reshape(y, (-1, shape[-1])), states[i])
                y, new_states = ops.reshape(out, (shape[0], shape[1], -1)), new_states + [state]
        return (norms[2]([y, condition]) if norms else y), new_states

    def attend(self, y, encoded, y_in):
        """The attention layer over a whole title: (output, weights or None)."""
        x, mask = encoded["encoded"], encoded["mask"]
        inputs = [y, x, mask] if self.version == "2018" else [y, x, x, mask]
        xy = self.attention(inputs + ([y_in] if self.coverage else []))  # coverage's loss reads the title
        return xy if self.copy else (xy, None)

    def features(self, y, attended):
        """What the head reads: 2018, the attention layer's concat[context, decoder output, max-pool];
        2019, concat[decoder output, context]."""
        return attended if self.version == "2018" else self.layers["concat"]([y, attended])

    def head(self, features, prior, y_emb, attention=None, extended=None):
        """Next-id probabilities: the head's dense layers, the logits averaged with the prior, softmax;
        with copy, mixed with the attention over the article's extended ids by the copy gate."""
        L, xy = self.layers, self.drop("head", features)
        for name in ("hidden", "leaky_relu", "logits") if self.version == "2019" else ("hidden", "logits"):
            xy = L[name](self.drop("head", xy) if name == "logits" else xy)
        probs = L["probs"](L["with_prior"]([xy, prior]))
        if self.copy:
            probs = L["pointer"]([probs, attention, extended, L["copy_gate"]([features, y_emb])])
        return probs

    def memory(self, x, extended=None):
        """Decoding: what every step reads of a batch of articles, computed once: {"attention": the
        attention's memory, "prior", and when they exist "condition" (2019) and "extended" (copy:
        the articles' extended ids, padded like x)}."""
        encoded = self.encode(x)
        v, mask = encoded["encoded"], encoded["mask"]
        memory = {"attention": self.attention.memory(*([v] if self.version == "2018" else [v, v]), mask),
                  "prior": encoded["prior"]}
        memory.update({key: encoded[key] for key in ("condition",) if key in encoded})
        return memory if extended is None else self.with_extended(memory, extended)

    def with_extended(self, memory, extended):
        """The memory with a copying model's extended ids added (padded like the encoder's input)."""
        return {**memory, "extended": extended}

    @staticmethod
    def batch(memory):
        """How many articles the memory holds."""
        return ops.shape(memory["prior"])[0]

    def start_state(self, memory, rows):
        """Every beam's state before the first step: zero LSTM states, and with coverage a zero
        coverage of the article's keys."""
        state = {"lstm": [[ops.zeros((rows, lstm.cell.units))] * 2 for lstm in self.decoders]}
        if self.coverage:
            state["coverage"] = ops.zeros((rows, ops.shape(memory["attention"]["bias"])[-1]))
        return state

    def step(self, last, state, memory):
        """Decoding, one step. last: each beam's last id (batch·k,), an article's k beams in rows
        k·i … k·i + k - 1, the k query rows of one attention over the article's memory (held once);
        state: start_state's structure. Returns the next-id probabilities (batch·k, V') and the new state."""
        batch = self.batch(memory)
        k = ops.shape(last)[0] // batch
        y_emb = self.embed_title(ops.reshape(last, (batch, k)))
        y, lstm_states = self.decoder(y_emb, memory.get("condition"), state["lstm"])
        coverage = ops.reshape(state["coverage"], (batch, k, -1)) if self.coverage else None
        attended, attention = self.attention.read(y, memory["attention"], coverage)
        probs = self.head(self.features(y, attended), memory["prior"], y_emb, attention, memory.get("extended"))
        new_state = {"lstm": lstm_states}
        if self.coverage:  # each beam's coverage grows by its attention at this step
            new_state["coverage"] = ops.reshape(coverage + attention, ops.shape(state["coverage"]))
        return ops.reshape(probs, (batch * k, -1)), new_state


def title_loss(y_true, y_pred):
    """The blog's loss: cross-entropy of each target character, summed over the real (non-pad)
    targets and divided by their number. y_true = y[:, 1:], y_pred = the model's output for y[:, :-1]."""
    return summed_title_loss(y_true, y_pred) / real_targets(y_true, y_pred.dtype)


def summed_title_loss(y_true, y_pred, label_smoothing=0.0):
    """The numerator of `title_loss`: the cross-entropy summed over the real targets. Training on
    several devices divides each device's sum by the whole batch's count, so the loss and the
    gradients are those of one device.

    label_smoothing ε > 0 (beyond the blog): each target's cross-entropy is mixed with that of the
    uniform distribution over every output id, (1 - ε)·(-log p[y]) + ε·mean(-log p), with the
    probabilities clipped at 1e-7 as Keras's cross-entropy clips them."""
    mask = ops.cast(ops.greater(y_true, PAD), y_pred.dtype)
    cross_entropy = ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred)
    if label_smoothing:
        uniform = -ops.mean(ops.log(ops.clip(y_pred, 1e-7, 1.0 - 1e-7)), axis=-1)
        cross_entropy = (1.0 - label_smoothing) * cross_entropy + label_smoothing * uniform
    return ops.sum(cross_entropy * mask)


def title_log_probs(y_true, y_pred):
    """Each title's log-probability: the log p of its real target characters summed per row, p
    clipped at 1e-7 as the cross-entropy clips it. (batch,)."""
    mask = ops.cast(ops.greater(y_true, PAD), y_pred.dtype)
    return -ops.sum(ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred) * mask, axis=-1)


def real_targets(y_true, dtype="float32"):
    """The denominator of `title_loss`: how many targets are real characters."""
    return ops.sum(ops.cast(ops.greater(y_true, PAD), dtype))
