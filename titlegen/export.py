"""A trained model as a TensorFlow SavedModel that writes titles without this repository.

    python seq2seq_title.py export --model runs/lcsts --out exported/lcsts

The folder gets TF Serving's layout (a numbered version folder). Its endpoint `serve` takes a 1-D
batch of UTF-8 article strings and returns {"title": tf.string (batch,), "score": tf.float64
(batch,), the title's summed log(p + 1e-6)}. Inside the graph, as `generate` does: control
characters read as spaces, the first MAXLEN characters, unknown characters as <unk> (for a
copying model also as temporary ids, so they can be copied back as themselves), the incremental
decoder's beam search with the decoding settings given to `export`, ids -> text. An empty or
all-whitespace article gets an empty title and score 0 (where `generate` reports an error); bytes
that are not UTF-8 read as U+FFFD.
"""
import os

import keras
import numpy as np
import tensorflow as tf

from .data import FIRST_CHAR, PAD, UNK, TitleError
from .decoders import IncrementalDecoder
from .ensemble import models_of
from .search import BeamSearch, spelled
from .text import CONTROL_TO_SPACE

SPACE = [c for c in range(0x110000) if chr(c).isspace()]  # what str.strip() removes


class TextIds:
    """Text <-> ids inside a graph, for a character vocabulary: the vocabulary's code points as
    constants, sorted for lookup."""

    def __init__(self, vocab, maxlen, copy):
        if vocab.tokenizer != "char":
            raise TitleError("a word model (TOKENIZER = \"word\") cannot be exported: jieba cannot run inside a "
                             "TensorFlow graph; train a character model to export it")
        points = np.array([ord(c) for c in vocab.chars], dtype="int32")
        order = np.argsort(points)
        self.points, self.keys, self.values = points, points[order], (order + FIRST_CHAR).astype("int32")
        self.size, self.maxlen, self.copy = len(vocab), maxlen, copy

    def encode(self, articles):
        """Article strings -> the model's inputs by name ("article", padded with PAD; with copying
        "article_extended", the model's ids with copying's extended ids), and the articles' text
        beside them by name ("oov": their out-of-vocabulary code points in order of first appearance
        (batch, tx) and "oov_count" their count, with copying; "empty": which articles are empty)."""
        points = tf.strings.unicode_decode(articles, "UTF-8", errors="replace")
        control = np.array(sorted(CONTROL_TO_SPACE), dtype="int32")
        points = tf.ragged.map_flat_values(lambda p: tf.where(tf.reduce_any(p[:, None] == control, -1), 32, p), points)
        empty = tf.reduce_all(tf.ragged.map_flat_values(lambda p: tf.reduce_any(p[:, None] == SPACE, -1), points),
                              axis=1)
        points = points[:, :self.maxlen].to_tensor(-1)
        points = tf.pad(points, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(points)[1])]], constant_values=-1)
        real = points >= 0
        at = tf.minimum(tf.searchsorted(self.keys, tf.reshape(points, [-1])), len(self.keys) - 1)
        known = tf.reshape(tf.gather(self.keys, at), tf.shape(points)) == points
        ids = tf.where(known, tf.reshape(tf.gather(self.values, at), tf.shape(points)), UNK)
        ids = tf.where(real, ids, PAD)
        if not self.copy:
            return {"article": ids}, {"empty": empty}
        extended, oov, count = self.extended(ids, points, tf.logical_and(real, tf.logical_not(known)))
        return {"article": ids, "article_extended": extended}, {"oov": oov, "oov_count": count, "empty": empty}

    def extended(self, ids, points, unknown):
        """Copying: (the extended ids: each unknown character's temporary id len(vocab) + i, i its
        place among the article's unknown characters in order of first appearance, as
        Vocab.encode_extended; the unknown code points in that order; their count)."""
        width = tf.shape(points)[1]
        same = tf.logical_and(points[:, :, None] == points[:, None, :], unknown[:, None, :])
        first = tf.reduce_min(tf.where(same, tf.range(width)[None, None], width), axis=2)  # its first appearance
        is_first = tf.logical_and(unknown, tf.equal(first, tf.range(width)[None]))
        rank = tf.cumsum(tf.cast(is_first, tf.int32), axis=1) - 1
        place = tf.gather(rank, tf.minimum(first, width - 1), batch_dims=1)
        extended = tf.where(unknown, self.size + place, ids)
        where = tf.where(is_first)
        oov = tf.scatter_nd(tf.stack([where[:, 0], tf.cast(tf.gather_nd(rank, where), tf.int64)], 1),
                            tf.gather_nd(points, where), tf.shape(points, out_type=tf.int64))
        return extended, oov, tf.reduce_sum(tf.cast(is_first, tf.int32), axis=1)

    def decode(self, ids, lengths, text):
        """Title ids (batch, L) -> strings, as Vocab.decode: special ids dropped, a copied id as the
        article's own character (`text`: `encode`'s second part)."""
        keep = tf.logical_and(tf.range(tf.shape(ids)[1])[None] < lengths[:, None], ids >= FIRST_CHAR)
        points = tf.gather(self.points, tf.clip_by_value(ids - FIRST_CHAR, 0, len(self.points) - 1))
        if "oov" not in text:
            keep = tf.logical_and(keep, ids < self.size)
        else:
            copied = ids - self.size
            keep = tf.logical_and(keep, copied < text["oov_count"][:, None])
            at = tf.clip_by_value(copied, 0, tf.shape(text["oov"])[1] - 1)
            points = tf.where(copied >= 0, tf.gather(text["oov"], at, batch_dims=1), points)
        return tf.strings.unicode_encode(tf.ragged.boolean_mask(points, keep), "UTF-8")


def export(titler, out_dir):
    """Write the SavedModel of a Titler (its model or ensemble, vocabulary, MAXLEN and decoding options: what
    `generate` would use) into out_dir/N, N one more than the highest version there; returns its path."""
    model = titler.decoder.model
    decoder = IncrementalDecoder(model, titler.options, xla=False)
    search = BeamSearch(decoder.next_probs, decoder.options)  # inside the exported graph
    text = TextIds(titler.vocab, titler.settings.maxlen, titler.settings.copy)

    def serve(articles):
        inputs, about = text.encode(articles)
        memory = model.encode(inputs)
        cache = model.start_cache(memory, tf.shape(inputs["article"])[0] * decoder.options.topk)
        ids, lengths, scores = search.search(memory, cache, spelled(inputs))
        titles = text.decode(ids, lengths, about)
        empty = about["empty"]
        return {"title": tf.where(empty, "", titles), "score": tf.where(empty, tf.zeros_like(scores), scores)}

    versions = [int(n) for n in os.listdir(out_dir) if n.isdigit()] if os.path.isdir(out_dir) else []
    path = os.path.join(out_dir, str(max(versions, default=0) + 1))
    archive = keras.export.ExportArchive()
    for member in models_of(model):  # an ensemble's every model
        archive.track(member)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec([None], tf.string, name="articles")])
    archive.write_out(path, verbose=False)
    return path
