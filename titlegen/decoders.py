"""Articles -> titles: the blog's naive decoder, the incremental one, and Titler (text in, text out).

Both run the one beam search of `search.py` and differ only in how they get the next id's
probabilities: the naive decoder re-runs the whole model on the article and the title so far, the
incremental one encodes articles once (`TitleModel.encode`) and advances the model one step
(`TitleModel.call_with_cache`). A decoder reads the articles by the model's input names
({"article": id arrays, and with copying "article_extended"}). With `xla=True` (the training's dev
titles: the same rows every epoch) its encoder is compiled once per shape: articles are padded to a
multiple of ENCODE_BUCKET characters and batches to a power of two, padding the masked encoder does
not see. Without XLA (the command line: generate, evaluate, serve) the encoder and the search are
each traced once, for any batch size and article length, at the same speed in batches of 64
(docs/log/speed.md). On JAX, whose compiled functions take fixed shapes, articles are always padded so.
An `ensemble.Ensemble` may stand for a model.
"""
import dataclasses
import sys

import numpy as np
from keras import ops, tree
from tqdm import tqdm

from . import backend
from .data import END, TitleError
from .model import article_inputs, memory_rows
from .search import BeamSearch, sample, spelled
from .settings import DECODERS, model_decoding
from .text import check_article
from .trained import load_trained

ENCODE_BUCKET = 64  # articles are padded to a multiple of this many characters before encoding


class Decoder:
    """The model's inputs by name (lists of id arrays) -> title ids (START first): a model (or an
    `ensemble.Ensemble`), decoding as `decode` (a `settings.Decode`, its max_title_len given or the
    version's) says, passed whole to the beam search."""

    def __init__(self, model, decode, stop_at_end=True):
        self.model, self.settings = model, model.settings
        if decode.topk > self.settings.vocab_size - END:
            raise TitleError(f"topk {decode.topk} is larger than the {self.settings.vocab_size - END} ids a title "
                             "can use")
        self.stop_at_end = stop_at_end  # False: the benches' max_len steps
        self.options = dataclasses.replace(decode, max_title_len=decode.max_title_len or model.max_title_len)
        self.beams = BeamSearch(self.next_probs, self.options, stop_at_end, model.variables)

    def __call__(self, inputs):
        """The title ids of each article (`inputs`: lists of id arrays by name)."""
        return self.search(inputs)[0]

    def search(self, inputs):
        """(title ids, scores): each title's summed log(p + 1e-6)."""
        if not inputs["article"]:
            return [], np.zeros(0)
        ids, lengths, scores = self.run(inputs)
        return [row[:n] for row, n in zip(ids, lengths)], scores


def padded(inputs, rows=None, cols=None):
    """Lists of id arrays by name -> int32 arrays by name, each zero-padded to the same (rows, cols)
    (at least the longest row, and as many rows as there are)."""
    width = max(len(row) for rows_ in inputs.values() for row in rows_)
    rows, cols = rows or len(inputs["article"]), max(cols or 0, width)
    out = {}
    for name, values in inputs.items():
        out[name] = np.zeros((rows, cols), "int32")
        for i, row in enumerate(values):
            out[name][i, :len(row)] = row
    return out


class NaiveDecoder(Decoder):
    """The blog's decoder: at every step the whole model runs on the article and each beam's title
    so far, and the last position's probabilities are read. One article at a time, as in the blog
    (with the 2018 code's unmasked encoder a title depends on the padding it is batched with). On
    JAX, whose compiled loop takes fixed shapes, the model reads the whole title row (zeros after
    the title so far; its decoder reads left to right, so the position read is the same)."""

    def run(self, inputs):
        results = [self.beams(row, {}, spelled(row))
                   for row in (padded({name: [values[i]] for name, values in inputs.items()})
                               for i in range(len(inputs["article"])))]
        return [np.concatenate(parts, 0) for parts in zip(*results)]

    def next_probs(self, yid, t, cache, memory):  # memory: the article's inputs by name
        k = self.options.topk
        rows = {name: ops.repeat(value, k, axis=0) for name, value in memory.items()}
        if backend.DYNAMIC:
            return self.model({**rows, "title_in": yid[:, :t + 1]}, training=False)[:, -1], cache
        return ops.take(self.model({**rows, "title_in": yid}, training=False), t, axis=1), cache


class IncrementalDecoder(Decoder):
    """Encodes a batch of articles once, then advances the model's decoder one step per character
    for articles × beams in one compiled loop: the naive decoder's titles, without re-running the
    whole model."""

    def __init__(self, model, decode, xla=True, **kwargs):
        self.xla = xla or not backend.DYNAMIC
        super().__init__(model, decode, **kwargs)
        self.encode = backend.compiled(model.encode, model.variables, xla=xla)
        self.draws = {}  # (n, top) -> the compiled draws

    def run(self, inputs):
        memory, x = self.encoded(inputs)
        cache = self.model.start_cache(memory, memory_rows(memory) * self.options.topk)
        return self.beams(memory, cache, spelled(x))

    def encoded(self, inputs):
        """(the articles' memory (`TitleModel.encode`), their inputs as arrays, padded as encoded);
        the memory's rows are the articles' (bucket rows cut away)."""
        n = len(inputs["article"])
        x = self.encoder_input(inputs)
        memory = self.encode(x)
        if len(x["article"]) > n:
            memory = tree_rows(memory, n)
            x = {name: value[:n] for name, value in x.items()}
        return memory, x

    def next_probs(self, yid, t, cache, memory):
        """The search's and the draws' next-id probabilities: one step of the model's decoder."""
        return self.model.call_with_cache(yid[:, t], cache, memory)

    def sample(self, inputs, n, seed, top=0):
        """n titles drawn from the model for each article (search.sample; the sequence-level stage's
        candidates): a list per article of n id arrays, START first and END last (when drawn)."""
        if (n, top) not in self.draws:  # each a constant of the compiled draws
            self.draws[n, top] = backend.compiled(lambda memory, seed_: self.sample_memory(memory, n, seed_, top),
                                                  self.model.variables)
        memory, _ = self.encoded(inputs)
        ids, lengths = self.draws[n, top](memory, np.asarray(seed, "int32"))
        ids, lengths = ops.convert_to_numpy(ids), ops.convert_to_numpy(lengths)
        rows = [row[:m] for row, m in zip(ids, lengths)]
        return [rows[i * n:(i + 1) * n] for i in range(len(inputs["article"]))]

    def sample_memory(self, memory, n, seed, top):
        cache = self.model.start_cache(memory, memory_rows(memory) * n)
        return sample(self.next_probs, memory, cache, n, self.options.max_title_len, seed, top)

    def encoder_input(self, inputs):
        """The articles' inputs zero-padded into arrays; under XLA (and on JAX), to a power-of-two
        batch and a multiple of ENCODE_BUCKET characters: a few shapes to compile, not one per
        article length and batch size."""
        inputs = article_inputs(inputs)
        if not self.xla:
            return padded(inputs)
        n, width = len(inputs["article"]), max(len(row) for row in inputs["article"])
        return padded(inputs, 1 << (n - 1).bit_length(), -(-width // ENCODE_BUCKET) * ENCODE_BUCKET)


def tree_rows(memory, n):
    """The memory of the first n articles."""
    return tree.map_structure(lambda m: m[:n], memory)


DECODER_CLASSES = dict(zip(DECODERS, (NaiveDecoder, IncrementalDecoder)))  # settings.DECODERS: "naive", "incremental"


class Titler:
    """Article texts -> titles, by the decoder `decode` (a `settings.Decode`) names and as it says,
    of a model (or ensemble; MAXLEN characters are read, as its settings say). `origins`: where each
    decoding setting came from (`settings.model_decoding`), to be shown."""

    def __init__(self, model, vocab, decode, xla=True, origins=None):
        self.vocab, self.settings = vocab, model.settings
        self.decoder = DECODER_CLASSES[decode.decoder](model, decode,
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
        inputs, oovs = self.encode(articles)
        titles, scores = self.decoder.search(inputs)
        return [self.vocab.decode(t, o) for t, o in zip(titles, oovs)], [float(s) for s in scores]

    def encode(self, articles):
        """Article texts -> (what the decoder reads, by the model's input names: "article", the ids,
        and for a copying model "article_extended"; the characters each article's temporary ids
        stand for)."""
        articles = [check_article(a) for a in articles]
        if not self.settings.copy:
            return {"article": [self.vocab.encode(a, self.settings.maxlen) for a in articles]}, [()] * len(articles)
        pairs = [self.vocab.encode_extended(a, self.settings.maxlen) for a in articles]
        extended = [e for e, _ in pairs]
        return ({"article": [self.vocab.unextended(e) for e in extended], "article_extended": extended},
                [oovs for _, oovs in pairs])


def load_titler(path, given=None, origins=None, xla=True):
    """The trained model in the folder `path`, decoding as its folder stores, but for the fields
    override files or flags set (`given`, a settings.Decode, and `origins` as settings.load_traced
    gives them; none: the model's own decoding throughout)."""
    model, vocab, settings = load_trained(path)
    decode, origins = model_decoding(settings.decode, given or settings.decode, origins or {})
    return Titler(model, vocab, decode, xla, origins)


def title_in_batches(titler, articles, size):
    """Titles for many articles, `size` at a time, with a progress bar when there is more than one batch."""
    titles = []
    with tqdm(total=len(articles), unit="article", disable=len(articles) <= size, file=sys.stderr) as bar:
        for i in range(0, len(articles), size):
            titles.extend(titler(articles[i:i + size]))
            bar.update(len(articles[i:i + size]))
    return titles
