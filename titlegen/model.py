"""The blog's seq2seq as one Keras 3 model object, `TitleModel`: the 2018 version (bojone/seq2seq
f6f7bb7, the code the post was published with) and the author's 2019 version (24ff08f).

It trains through `call`: inputs by name (a dict): the article's ids "article" (batch, tx), the
title so far "title_in" (batch, ty) starting with START, and with copying the article's extended ids
"article_extended"; output: the probability of every next id, (batch, ty, V). Teacher forcing lives
in the data: title_in = y[:, :-1], target = y[:, 1:] (`model_inputs`). It decodes as keras-hub's
causal LMs do: `encode` the articles once (the memory every step reads), `start_cache`, then
`call_with_cache` advances every beam by one character.

`ModelParts` holds the layer objects and writes each stage of the model once: the model's graph
calls it on symbolic inputs (a whole title at a time), and decoding on tensors (one step). What a
model version changes (its encoder, the norms around its decoder, its attention's inputs, its
features and head) is a small subclass, `Parts2018` or `Parts2019`, chosen by `PARTS`.
"""
import dataclasses

import keras
from keras import layers, ops, tree

from .data import PAD
from .errors import TitleError
from .settings import Model as ModelSettings
from .layers import (ArticleChars, Bidirectional, CopyGate, Interact, MaskedMaxPool, MultiHeadAttention, PadMask,
                     PointerGenerator, PriorAverage, ScaleShift, SelfModulatedLayerNorm, TitleDropout, TitleIds)

LAYER_NORM_EPSILON = 1e-14  # the 2019 code's LayerNormalization (Keras's default is 1e-3)
DROPOUT_AT = ("embedding", "lstm", "head")  # with dropout: the embeddings, every LSTM's output, the head


def named_inputs(article, title_in, extended=None):
    """What the model reads, by name: the articles' ids, the titles so far, and with copying the
    articles' extended ids (training's `model_inputs` and the naive decoder call it)."""
    inputs = {"article": article, "title_in": title_in}
    if extended is not None:
        inputs["article_extended"] = extended
    return inputs


def model_inputs(example):
    """Teacher forcing: an example or a batch ({"article", "title", and with copying
    "article_extended"}, as `data.encode_example` and `data.padded` give them) -> (the model's
    inputs: the title read as y[..., :-1]; the target, y[..., 1:])."""
    title = example["title"]
    return named_inputs(example["article"], title[..., :-1], example.get("article_extended")), title[..., 1:]


def article_inputs(inputs):
    """The inputs that encoding reads, by name: the articles' ids, and with copying their extended ids."""
    return {name: value for name, value in inputs.items() if name in ("article", "article_extended")}


@keras.saving.register_keras_serializable(package="seq2seq_title")
class TitleModel(keras.Model):
    """The blog's model as `settings` (a `settings.Model`; each field in docs/settings.md) describe it:
    one object that trains (`call`, a functional graph over whole titles) and decodes (`encode`,
    `start_cache`, `call_with_cache`), both through the same layers (`parts`, the version's ModelParts).

    version: "2018" or "2019" (`PARTS`). mask_encoder (2018): the encoder LSTMs skip the article's
    padding in both directions, so a title does not depend on what shares its batch (False, the
    2018 code, reads it; the 2019 code always masks). copy: the model also reads the articles'
    extended ids and gives probabilities over the vocabulary and `maxlen` temporary ids (the most
    an article can need). coverage, dropout (at DROPOUT_AT), title_dropout, recurrent_dropout:
    beyond the blog, as config.py says.
    """

    def __init__(self, settings, **kwargs):
        if settings.vocab_size is None:
            raise TitleError("the model's vocab_size is unset; it comes from the vocabulary")
        parts = ModelParts.new(settings)
        names = named_inputs("article", "title_in", "article_extended" if settings.copy else None)
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in names}
        probs = parts.title_probs(parts.encode(inputs["article"]), inputs["title_in"], inputs.get("article_extended"))
        super().__init__(inputs, probs, name=f"seq2seq_title_{settings.version}", **kwargs)
        self.settings, self.parts = settings, parts  # plain objects: Keras tracks no layer twice

    def get_config(self):
        """The settings it is built from (a `.keras` file rebuilds it from them)."""
        return {"settings": dataclasses.asdict(self.settings)}

    @classmethod
    def from_config(cls, config):
        return cls(ModelSettings(**config["settings"]))

    def encode(self, inputs):
        """Decoding: what every step reads of a batch of articles (`inputs`: "article" and with
        copying "article_extended", (batch, tx) each), computed once (`ModelParts.memory`)."""
        return self.parts.memory(inputs["article"], inputs.get("article_extended"))

    def start_cache(self, memory, rows):
        """Every beam's cache before the first step, `rows` beams in all (`ModelParts.start_state`)."""
        return self.parts.start_state(memory, rows)

    def call_with_cache(self, last, cache, memory):
        """One decoding step for every beam: each one's last id (rows,), its cache, the articles'
        memory -> (the next-id probabilities (rows, V'), the new cache) (`ModelParts.step`)."""
        return self.parts.step(last, cache, memory)

    @property
    def max_title_len(self):
        """The most characters a title of this version has (MAX_TITLE_LEN None)."""
        return self.parts.max_title_len


def build_model(settings):
    """The blog's model as `settings` (a `settings.Model`) describe it: a `TitleModel`."""
    return TitleModel(settings)


def memory_rows(memory):
    """How many articles a memory (`TitleModel.encode`'s, or an ensemble's list of them) holds."""
    return ops.shape(tree.flatten(memory)[0])[0]


def built(layer, *shapes):
    """A layer built at once for these input shapes: it draws its initial weights now."""
    layer.build(list(shapes))
    return layer


def encoder_lstm(settings, i):
    """The encoder's i-th bidirectional LSTM, char_size // 2 each way."""
    lstm = layers.LSTM(settings.char_size // 2, return_sequences=True, recurrent_dropout=settings.recurrent_dropout)
    return Bidirectional(lstm, name=f"encoder_{i}")


def decoder_lstm(settings, i):
    """The decoder's i-th LSTM."""
    return layers.LSTM(settings.char_size, return_sequences=True, recurrent_dropout=settings.recurrent_dropout,
                       name=f"decoder_{i}")


class ModelParts:
    """The model's layers (by name) and settings, and each stage of the model written once.

    Training runs a whole title through `decoder`, `attend` and `head` (its steps are the query
    rows of the attention). Decoding encodes articles once (`memory`, a dict of what every step
    reads) and then calls `step`, where an article's beams are the query rows: the same layers and
    functions, one character at a time. A version's subclass supplies `version_layers` (created in
    its code's order), `encoder`, `normed` (around the decoder's LSTMs), `attention_inputs`,
    `features` and the names of its head's layers.
    """
    attention_name = head_names = max_title_len = None  # each version's

    def __init__(self, layers, settings):
        self.layers, self.settings = layers, settings
        self.attention = layers[self.attention_name]
        self.decoders = [layers["decoder_1"], layers["decoder_2"]]

    @staticmethod
    def new(settings):
        """Fresh layers for build_model, created in the order the blog's code creates them: their
        random initial weights are drawn in that order. The layers that draw theirs when built
        (Interact's kernel, the self-modulated norms' second Dense) are built at once, as the blog's
        code builds them by calling them before it creates the next layer."""
        s, version = settings, PARTS[settings.version]
        made = [PadMask(name="article_mask"), ArticleChars(s.vocab_size, name="article_chars"),
                ScaleShift(name="prior"), layers.Embedding(s.vocab_size, s.char_size, name="embedding")]
        made += [TitleIds(s.vocab_size, name="title_ids")] if s.copy else []
        made += version.version_layers(s)
        made += [layers.Dense(s.vocab_size, name="logits"),
                 PriorAverage(name="with_prior", dtype="float32"),  # float32 even under mixed precision
                 layers.Softmax(name="probs", dtype="float32")]
        if s.copy:
            made += [CopyGate(name="copy_gate"), PointerGenerator(s.maxlen, name="pointer", dtype="float32")]
        if s.dropout:  # created last: a model without dropout draws its initial weights as the blog's
            made += [layers.Dropout(s.dropout, name=f"{where}_dropout") for where in DROPOUT_AT]
        if s.title_dropout:  # after them: a model without it draws its weights and dropout as before
            made += [TitleDropout(s.title_dropout, name="title_dropout")]
        return version({layer.name: layer for layer in made}, s)

    def drop(self, where, x):
        """Dropout at `where` (DROPOUT_AT) when the model has it; it acts only while training."""
        layer = self.layers.get(f"{where}_dropout")
        return layer(x) if layer else x

    def encode(self, x):
        """Article ids (batch, tx) -> {"encoded": the encoder output, "mask": the article's mask,
        "prior": s⊗χ+t (batch, 1, V), and what else the version's decoder reads (2019: "condition")}."""
        L = self.layers
        mask = L["article_mask"](x)
        h, extra = self.encoder(self.drop("embedding", L["embedding"](x)), mask)
        return {"mask": mask, "prior": L["prior"](L["article_chars"](x)), **extra, "encoded": h}

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
        y = self.layers["title_ids"](y) if self.settings.copy else y
        y = self.layers["title_dropout"](y) if "title_dropout" in self.layers else y
        return self.drop("embedding", self.layers["embedding"](y))

    def decoder(self, y, condition=None, states=None):
        """The decoder LSTMs (each after the version's `normed`, and it after the last) over y
        (batch, rows, dim). states None: the rows are a title's steps, run from zero states. Else
        the rows are beams, each advanced one step from its own [h, c] per LSTM. Returns the
        output and the new states."""
        new_states = []
        for i, lstm in enumerate(self.decoders):
            y = self.normed(i, y, condition)
            if states is None:
                y = self.drop("lstm", lstm(y))
            else:
                shape = ops.shape(y)
                out, state = lstm.cell(ops.reshape(y, (-1, shape[-1])), states[i])
                y, new_states = ops.reshape(out, (shape[0], shape[1], -1)), new_states + [state]
        return self.normed(len(self.decoders), y, condition), new_states

    def attend(self, y, encoded, y_in):
        """The attention layer over a whole title: (output, weights or None)."""
        inputs = self.attention_inputs(y, encoded["encoded"], encoded["mask"])
        xy = self.attention(inputs + ([y_in] if self.settings.coverage else []))  # coverage's loss reads the title
        return xy if self.settings.copy else (xy, None)

    def head(self, features, prior, y_emb, attention=None, extended=None):
        """Next-id probabilities: the head's dense layers (dropout before the logits), the logits
        averaged with the prior, softmax; with copy, mixed with the attention over the article's
        extended ids by the copy gate."""
        L, xy = self.layers, self.drop("head", features)
        for name in self.head_names:
            xy = L[name](self.drop("head", xy) if name == "logits" else xy)
        probs = L["probs"](L["with_prior"]([xy, prior]))
        if self.settings.copy:
            probs = L["pointer"]([probs, attention, extended, L["copy_gate"]([features, y_emb])])
        return probs

    def memory(self, x, extended=None):
        """Decoding: what every step reads of a batch of articles, computed once: {"attention": the
        attention's memory, "prior", what else the version's decoder reads ("condition"), and with
        copying "extended" (the articles' extended ids, padded like x)}."""
        encoded = self.encode(x)
        keys = self.attention_inputs(None, encoded["encoded"], encoded["mask"])[1:]  # all but the query
        memory = {key: value for key, value in encoded.items() if key not in ("encoded", "mask")}
        memory["attention"] = self.attention.memory(*keys)
        return memory if extended is None else {**memory, "extended": extended}

    @staticmethod
    def batch(memory):
        """How many articles the memory holds."""
        return ops.shape(memory["prior"])[0]

    def start_state(self, memory, rows):
        """Every beam's state before the first step: zero LSTM states, and with coverage a zero
        coverage of the article's keys."""
        state = {"lstm": [[ops.zeros((rows, lstm.cell.units))] * 2 for lstm in self.decoders]}
        if self.settings.coverage:
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
        coverage = ops.reshape(state["coverage"], (batch, k, -1)) if self.settings.coverage else None
        attended, attention = self.attention.read(y, memory["attention"], coverage)
        probs = self.head(self.features(y, attended), memory["prior"], y_emb, attention, memory.get("extended"))
        new_state = {"lstm": lstm_states}
        if self.settings.coverage:  # each beam's coverage grows by its attention at this step
            new_state["coverage"] = ops.reshape(coverage + attention, ops.shape(state["coverage"]))
        return ops.reshape(probs, (batch * k, -1)), new_state


class Parts2018(ModelParts):
    """The 2018 code: two bidirectional LSTMs (masked with MASK_ENCODER), two LSTMs, the Interact
    attention (whose output is concat[context, decoder output, max-pool]) and a ReLU layer."""
    attention_name, head_names, max_title_len = "interact", ("hidden", "logits"), 50

    @staticmethod
    def version_layers(s):
        return [encoder_lstm(s, 1), encoder_lstm(s, 2), decoder_lstm(s, 1), decoder_lstm(s, 2),
                built(Interact(return_attention=s.copy, coverage=s.coverage, name="interact"),
                      (None, None, s.char_size), (None, None, s.char_size)),
                layers.Dense(s.hidden_size, activation="relu", name="hidden")]

    def encoder(self, h, mask):
        for i in (1, 2):
            h = self.layers[f"encoder_{i}"](h, mask=mask if self.settings.mask_encoder else None)
            h = self.drop("lstm", h)
        return h, {}

    def normed(self, i, y, condition):
        return y

    def attention_inputs(self, y, x, mask):
        return [y, x, mask]

    def features(self, y, attended):
        return attended


class Parts2019(ModelParts):
    """The 2019 code: each masked bidirectional LSTM after a LayerNorm, the encoder's max-pool the
    condition of self-modulated LayerNorms around the decoder's LSTMs, 8-head attention, and a
    LeakyReLU layer over concat[decoder output, context]."""
    attention_name, head_names, max_title_len = "attention", ("hidden", "leaky_relu", "logits"), 64

    @staticmethod
    def version_layers(s):
        def norm(i):
            return built(SelfModulatedLayerNorm(s.char_size // 4, LAYER_NORM_EPSILON, name=f"decoder_norm_{i}"),
                         (None, None, s.char_size), (None, 1, s.char_size))

        made = []
        for i in (1, 2):
            made += [layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=f"encoder_norm_{i}"),
                     encoder_lstm(s, i)]
        return made + [MaskedMaxPool(name="encoder_max"), norm(1), decoder_lstm(s, 1), norm(2),
                       decoder_lstm(s, 2), norm(3),
                       MultiHeadAttention(8, 16, return_attention=s.copy, coverage=s.coverage, name="attention"),
                       layers.Concatenate(name="concat"), layers.Dense(s.char_size, name="hidden"),
                       layers.LeakyReLU(0.2, name="leaky_relu")]

    def encoder(self, h, mask):
        for i in (1, 2):
            h = self.drop("lstm", self.layers[f"encoder_{i}"](self.layers[f"encoder_norm_{i}"](h), mask=mask))
        return h, {"condition": self.layers["encoder_max"]([h, mask])}

    def normed(self, i, y, condition):
        return self.layers[f"decoder_norm_{i + 1}"]([y, condition])

    def attention_inputs(self, y, x, mask):
        return [y, x, x, mask]

    def features(self, y, attended):
        return self.layers["concat"]([y, attended])


PARTS = {"2018": Parts2018, "2019": Parts2019}  # settings.VERSIONS: each model version's parts


def max_title_len(settings, decode):
    """The most characters a title may have: MAX_TITLE_LEN, or (None) what the model's version allows."""
    return decode.max_title_len or PARTS[settings.version].max_title_len


def title_loss(y_true, y_pred):
    """The blog's loss: cross-entropy of each target character, summed over the real (non-pad)
    targets and divided by their number. y_true = y[:, 1:], y_pred = the model's output for y[:, :-1]."""
    return summed_title_loss(y_true, y_pred) / real_targets(y_true, y_pred.dtype)


def summed_title_loss(y_true, y_pred, label_smoothing=0.0, unlikelihood=0.0):
    """The numerator of `title_loss`: the cross-entropy summed over the real targets.

    label_smoothing ε > 0 (beyond the blog): each target's cross-entropy is mixed with that of the
    uniform distribution over every output id, (1 - ε)·(-log p[y]) + ε·mean(-log p), with the
    probabilities clipped at 1e-7 as Keras's cross-entropy clips them. unlikelihood α > 0 (beyond
    the blog): α · `unlikelihood_terms` is added at every step."""
    mask = ops.cast(ops.greater(y_true, PAD), y_pred.dtype)
    cross_entropy = ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred)
    if label_smoothing:
        uniform = -ops.mean(ops.log(ops.clip(y_pred, 1e-7, 1.0 - 1e-7)), axis=-1)
        cross_entropy = (1.0 - label_smoothing) * cross_entropy + label_smoothing * uniform
    if unlikelihood:
        cross_entropy = cross_entropy + unlikelihood * unlikelihood_terms(y_true, y_pred)
    return ops.sum(cross_entropy * mask)


def unlikelihood_terms(y_true, y_pred):
    """Token-level unlikelihood (Welleck et al. 2020): at each step t, -Σ log(1 - p(c)) over the
    candidates c, the ids the title's targets held before t, the target at t itself left out; p
    clipped so that 1 - p is at least 1e-7. (batch, ty), as the cross-entropy per step."""
    onehot = ops.one_hot(ops.cast(y_true, "int32"), ops.shape(y_pred)[-1], dtype=y_pred.dtype)
    before = ops.cumsum(onehot, axis=1) - onehot  # how often each id was a target before this step
    candidates = ops.cast(before > 0, y_pred.dtype) * (1.0 - onehot)
    return -ops.sum(candidates * ops.log(ops.clip(1.0 - y_pred, 1e-7, 1.0)), axis=-1)


def title_log_probs(y_true, y_pred):
    """Each title's log-probability: the log p of its real target characters summed per row, p
    clipped at 1e-7 as the cross-entropy clips it. (batch,)."""
    mask = ops.cast(ops.greater(y_true, PAD), y_pred.dtype)
    return -ops.sum(ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred) * mask, axis=-1)


def real_targets(y_true, dtype="float32"):
    """The denominator of `title_loss`: how many targets are real characters."""
    return ops.sum(ops.cast(ops.greater(y_true, PAD), dtype))
