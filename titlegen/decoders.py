"""Articles -> titles: the blog's naive decoder, the incremental one, and Titler (text in, text out).

Both run the one beam search of `search.py` and differ only in how they get the next id's
probabilities: the naive decoder re-runs the whole model on the article and the title so far, the
incremental one encodes articles once and advances the model one step (`ModelParts.step`). With
`xla=True` (the training's dev titles: the same rows every epoch) its encoder is compiled once per
shape: articles are padded to a multiple of ENCODE_BUCKET characters and batches to a power of two,
padding the masked encoder does not see. Without XLA (the command line: generate, evaluate, serve)
the encoder and the search are each traced once, for any batch size and article length, at the
same speed in batches of 64 (docs/speed.md). An `ensemble.Ensemble` may stand for a model.
"""
import dataclasses
import sys

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from .data import END, TitleError, pad
from .ensemble import parts_of
from .model import max_title_len, named_inputs
from .search import beam_search, sample, spelled
from .settings import DECODERS, model_decoding
from .text import check_article
from .trained import load_trained

ENCODE_BUCKET = 64  # articles are padded to a multiple of this many characters before encoding


class Decoder:
    """Lists of article ids -> title ids (START first): a model (or an `ensemble.Ensemble`) of these
    settings (a `settings.Model`), decoding as `decode` (a `settings.Decode`, its max_title_len
    given or the version's) says, passed whole to the beam search."""

    def __init__(self, model, settings, decode, stop_at_end=True):
        self.model, self.settings, self.parts = model, settings, parts_of(model, settings)
        if decode.topk > settings.vocab_size - END:
            raise TitleError(f"topk {decode.topk} is larger than the {settings.vocab_size - END} ids a title can use")
        self.topk, self.stop_at_end = decode.topk, stop_at_end  # stop_at_end=False: the benches' max_len steps
        self.options = dataclasses.replace(decode, max_title_len=max_title_len(settings, decode))

    def __call__(self, articles_ids, extended_ids=None):
        """The title ids of each article; a copying model also reads the articles' extended ids."""
        return self.search(articles_ids, extended_ids)[0]

    def search(self, articles_ids, extended_ids=None):
        """(title ids, scores): each title's summed log(p + 1e-6)."""
        if not articles_ids:
            return [], np.zeros(0)
        ids, lengths, scores = self._run(articles_ids, extended_ids)
        return [row[:n] for row, n in zip(ids.numpy(), lengths.numpy())], scores.numpy()

    def beam_search(self, next_probs, memory, state, article):
        return beam_search(next_probs, memory, state, self.options, article, self.stop_at_end)


class NaiveDecoder(Decoder):
    """The blog's decoder: at every step the whole model runs on the article and each beam's title
    so far, and the last position's probabilities are read. One article at a time, as in the blog
    (with the 2018 code's unmasked encoder a title depends on the padding it is batched with)."""

    def __init__(self, model, settings, decode, **kwargs):
        super().__init__(model, settings, decode, **kwargs)
        inputs = 2 if settings.copy else 1
        self._search = tf.function(self._graph, input_signature=[tf.TensorSpec([None, None], tf.int32)] * inputs,
                                   autograph=False)  # its loops are tf.while_loop already; converting costs time

    def _run(self, articles_ids, extended_ids=None):  # one article at a time
        rows = zip(articles_ids, *([extended_ids] if self.settings.copy else []))
        results = [self._search(*(tf.constant([x], tf.int32) for x in row)) for row in rows]
        return [tf.concat(parts, 0) for parts in zip(*results)]

    def _graph(self, article, extended=None):
        k, model = self.topk, self.model

        def next_probs(yid, t, state, memory):  # the whole model on the article and the titles so far
            rows = {key: tf.repeat(value, k, axis=0) for key, value in memory.items()}  # article, extended
            inputs = named_inputs(rows["article"], yid[:, :t + 1], rows.get("extended"))
            return model(inputs, training=False)[:, -1], state

        memory = {"article": article} if extended is None else {"article": article, "extended": extended}
        return self.beam_search(next_probs, memory, {}, spelled(article, extended))


class IncrementalDecoder(Decoder):
    """Encodes a batch of articles once, then advances the model's decoder one step per character
    for articles × beams in one compiled loop: the naive decoder's titles, without re-running the
    whole model."""

    def __init__(self, model, settings, decode, xla=True, **kwargs):
        super().__init__(model, settings, decode, **kwargs)
        self.xla = xla
        if xla:  # compiled once per padded shape; the search traced for each of those few shapes
            self._encode = tf.function(self.parts.memory, jit_compile=True, autograph=False)
            self._search = tf.function(self.search_memory, reduce_retracing=True, autograph=False)
        else:  # each traced once, for any batch and length (the search when it first sees a memory)
            self._encode = tf.function(self.parts.memory, input_signature=[tf.TensorSpec([None, None], tf.int32)],
                                       autograph=False)
            self._search = None

    def _run(self, articles_ids, extended_ids=None):
        memory = self.encoded(articles_ids, extended_ids)
        article = tf.constant(pad(spelled(articles_ids, extended_ids)))  # what NO_NEW_DOUBLE reads
        if self._search is None:
            self._search = traced_once(self.search_memory, memory, article)
        return self._search(memory, article)

    def encoded(self, articles_ids, extended_ids=None):
        """The articles' memory (`ModelParts.memory`) as the search reads it (encoded under XLA when xla)."""
        x, n = self.encoder_input(articles_ids), len(articles_ids)
        memory = tf.nest.map_structure(lambda m: m[:n], self._encode(tf.constant(x)))
        if self.settings.copy:  # padded like the encoder's input
            given = pad(extended_ids)
            extended = tf.constant(np.pad(given, [(0, 0), (0, x.shape[1] - given.shape[1])]))
            memory = self.parts.with_extended(memory, extended)
        return memory

    def sample(self, articles_ids, extended_ids, n, seed, top=0):
        """n titles drawn from the model for each article (search.sample; the sequence-level stage's
        candidates): a list per article of n id arrays, START first and END last (when drawn)."""
        if not hasattr(self, "_sample"):
            self._sample = tf.function(self.sample_memory, reduce_retracing=True, autograph=False)
        ids, lengths = self._sample(self.encoded(articles_ids, extended_ids), tf.constant(n),
                                    tf.constant(seed, tf.int32), top)  # top a Python int: traced per value
        rows = [row[:m] for row, m in zip(ids.numpy(), lengths.numpy())]
        return [rows[i * n:(i + 1) * n] for i in range(len(articles_ids))]

    def sample_memory(self, memory, n, seed, top):
        start = self.parts.start_state(memory, self.parts.batch(memory) * n)
        return sample(self.next_probs, memory, start, n, self.options.max_title_len, seed, top)

    def next_probs(self, yid, t, state, memory):
        """The search's and the draws' next-id probabilities: one step of the model's decoder."""
        return self.parts.step(yid[:, t], state, memory)

    def encoder_input(self, articles_ids):
        """The articles zero-padded into one array; under XLA, to a power-of-two batch and a multiple
        of ENCODE_BUCKET characters: a few shapes to compile, not one per article length and batch size."""
        x = pad(articles_ids)
        if self.xla:
            rows, cols = 1 << (len(x) - 1).bit_length(), -(-x.shape[1] // ENCODE_BUCKET) * ENCODE_BUCKET
            x = np.pad(x, [(0, rows - len(x)), (0, cols - x.shape[1])])
        return x

    def search_memory(self, memory, article):
        """The beam search over articles already encoded (`ModelParts.memory`; `article`: their ids
        as titles spell them, zero-padded, `search.spelled`): ids, lengths, scores."""
        start = self.parts.start_state(memory, self.parts.batch(memory) * self.topk)
        return self.beam_search(self.next_probs, memory, start, article)


def traced_once(fn, *examples):
    """fn (of nested structures of tensors) as a tf.function traced once, for the `examples`'
    structures with every dimension unknown: any batch size and length, no retracing."""
    specs = [tf.nest.map_structure(lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype), e) for e in examples]
    return tf.function(fn, input_signature=specs, autograph=False)


DECODER_CLASSES = dict(zip(DECODERS, (NaiveDecoder, IncrementalDecoder)))  # settings.DECODERS: "naive", "incremental"


class Titler:
    """Article texts -> titles, by the decoder `decode` (a `settings.Decode`) names and as it says,
    of a model (or ensemble) of these settings (a `settings.Model`: MAXLEN characters are read).
    `origins`: where each decoding setting came from (`settings.model_decoding`), to be shown."""

    def __init__(self, model, vocab, settings, decode, xla=True, origins=None):
        self.vocab, self.settings = vocab, settings
        self.decoder = DECODER_CLASSES[decode.decoder](model, settings, decode,
                                                       **({"xla": xla} if decode.decoder == "incremental" else {}))
        self.options = self.decoder.options  # `decode` with its max_title_len: what evaluate records, export bakes in
        self.origins = origins or {}

    def __call__(self, articles):
        """A list of article texts -> their titles, in order."""
        return self.titles_and_scores(articles)[0]

    def warm_up(self):
        """Decodes one small article. Without XLA the decoder is then traced for any batch size and
        article length, so no request waits a second for tracing (`serve`)."""
        self(["一二三四五六七八"])

    def titles_and_scores(self, articles):
        """A list of article texts -> (their titles, their scores: each title's summed log(p + 1e-6))."""
        ids, extended, oovs = self.encode(articles)
        titles, scores = self.decoder.search(ids, extended)
        return [self.vocab.decode(t, o) for t, o in zip(titles, oovs)], [float(s) for s in scores]

    def encode(self, articles):
        """Article texts -> what the decoder reads: (their ids; a copying model's extended ids, else
        None; the characters each article's temporary ids stand for)."""
        articles = [check_article(a) for a in articles]
        if not self.settings.copy:
            return [self.vocab.encode(a, self.settings.maxlen) for a in articles], None, [()] * len(articles)
        pairs = [self.vocab.encode_extended(a, self.settings.maxlen) for a in articles]
        extended = [e for e, _ in pairs]
        return [self.vocab.unextended(e) for e in extended], extended, [oovs for _, oovs in pairs]


def load_titler(path, given=None, origins=None, xla=True):
    """The trained model in the folder `path`, decoding as its folder stores, but for the fields
    override files or flags set (`given`, a settings.Decode, and `origins` as settings.load_traced
    gives them; none: the model's own decoding throughout)."""
    model, vocab, settings = load_trained(path)
    decode, origins = model_decoding(settings.decode, given or settings.decode, origins or {})
    return Titler(model, vocab, settings.model, decode, xla, origins)


def title_in_batches(titler, articles, size):
    """Titles for many articles, `size` at a time, with a progress bar when there is more than one batch."""
    titles = []
    with tqdm(total=len(articles), unit="article", disable=len(articles) <= size, file=sys.stderr) as bar:
        for i in range(0, len(articles), size):
            titles.extend(titler(articles[i:i + size]))
            bar.update(len(articles[i:i + size]))
    return titles
