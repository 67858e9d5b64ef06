"""The incremental beam search: the naive decoder's titles without re-running the whole model.

The article is encoded once (encoder output, mask, masked max-pool, prior); then the two decoder
LSTMs advance one character at a time, each beam carrying its (h, c) states, which are reordered
with the beams. An article's beams share its encoder memory: they are the query rows of one
attention over it, so each step reads the memory once per article, not once per beam (at 64
articles × 3 beams the per-beam copies outgrew the CPU's cache, and batch 64 ran no faster than
16). The whole loop, for a batch of articles x beams, is one compiled TensorFlow graph.
Every weight is the trained model's own: its layers are called, looked up by name. Both model
versions are served: the 2018 one (the blog's attention) and the 2019 one (self-modulated
LayerNorms, 8-head attention).

The encoder runs under XLA (`xla=True`), which cuts its per-step overhead about eightfold on a
CPU. XLA compiles once per input shape, so articles are padded to a multiple of ENCODE_BUCKET
characters and batches to a power of two; the masked encoder makes that padding invisible.
"""
import keras
import numpy as np
import tensorflow as tf

from .data import END, START, TitleError, pad
from .model import copies, model_version

ENCODE_BUCKET = 64  # articles are padded to a multiple of this many characters before encoding


class IncrementalDecoder:
    """Beam search over a batch of articles, as `decode.beam_search` does for one.

    Same scores (log(p + 1e-6) over ids >= END, added in float64), the same tie rule (lower index
    first), the same stop rule (an article is done when its best beam ends with END), the same
    options (min_len, no_repeat_ngram).
    """

    def __init__(self, model, topk=3, max_len=50, stop_at_end=True, xla=True, min_len=0, no_repeat_ngram=0):
        self.topk, self.max_len, self.stop_at_end, self.xla = topk, max_len, stop_at_end, xla
        self.min_len, self.no_repeat_ngram = min_len, no_repeat_ngram
        self.version, self.copy = model_version(model), copies(model)
        attention = model.get_layer("interact" if self.version == "2018" else "attention")
        self.coverage = attention.coverage
        vocab_size = model.get_layer("logits").output.shape[-1]
        if topk > vocab_size - END:
            raise TitleError(f"topk {topk} is larger than the {vocab_size - END} ids a title can use")
        get = model.get_layer
        encoder_out = [get("encoder_2").output, get("article_mask").output, get("prior").output]
        if self.version == "2019":
            encoder_out.append(get("encoder_max").output)
        self.encoder = keras.Model(get("article").output, encoder_out)
        self.embedding = get("embedding")
        self.cells = [get("decoder_1").cell, get("decoder_2").cell]
        self.with_prior, self.softmax = get("with_prior"), get("probs")
        if self.copy:
            self.title_ids, self.copy_gate, self.pointer = get("title_ids"), get("copy_gate"), get("pointer")
        if self.version == "2018":
            self.interact = get("interact")
            self.head = [get("hidden"), get("logits")]
        else:
            self.norms = [get(f"decoder_norm_{i}") for i in (1, 2, 3)]
            self.attention = get("attention")
            self.head = [get("hidden"), get("leaky_relu"), get("logits")]
        self._encode = tf.function(self._encode_graph, jit_compile=xla)
        self._decode = tf.function(self._decode_graph, reduce_retracing=True)

    def __call__(self, articles_ids, extended_ids=None):
        """Lists of article ids -> list of title ids (START first), one per article. A copying
        model also reads the articles' extended ids."""
        x = self.encoder_input(articles_ids)
        n = len(articles_ids)
        encoded = [t[:n] for t in self._encode(tf.constant(x))]
        if self.copy:  # padded like the encoder output
            given = pad(extended_ids)
            extended = np.zeros((n, x.shape[1]), dtype="int32")
            extended[:, :given.shape[1]] = given
            encoded.insert(-1, tf.constant(extended))
        ids, lengths = self._decode(*encoded)
        return [row[:k] for row, k in zip(ids.numpy(), lengths.numpy())]

    def encoder_input(self, articles_ids):
        """The articles zero-padded into one array; under XLA, to a power-of-two batch and a multiple
        of ENCODE_BUCKET characters: a few shapes to compile, not one per article length and batch size."""
        x = pad(articles_ids)
        if self.xla:
            rows, cols = 1 << (len(x) - 1).bit_length(), -(-x.shape[1] // ENCODE_BUCKET) * ENCODE_BUCKET
            x = np.pad(x, [(0, rows - len(x)), (0, cols - x.shape[1])])
        return x

    def _encode_graph(self, x):
        """What the decoder reads of each article, computed once: (attention memory..., prior)."""
        if self.version == "2018":
            v, v_mask, prior = self.encoder(x)
            return (v, *self.interact.keys(v, v_mask), self.interact.pool(v, v_mask), prior)
        v, v_mask, prior, x_max = self.encoder(x)
        return (*self.attention.keys(self.attention.k_dense(v), self.attention.v_dense(v), v_mask), x_max, prior)

    def _step(self, last, states, memory, prior):
        """Next-id probabilities (n, V) for each beam's last id (n,), and the new states: the LSTMs'
        (h, c), and with coverage a last entry [coverage (n, tk)].

        The beams of an article are its rows k·i … k·i + k - 1; the encoder memory and the prior
        are the article's, held once: its k beams are the k query rows of one attention, as a
        title's steps are in training, so the memory is read once per article, not once per beam."""
        k = self.topk
        batch = tf.shape(last)[0] // k

        def beams(t):  # (n, ...) -> (batch, k, ...)
            return tf.reshape(t, tf.concat([[batch, k], tf.shape(t)[1:]], 0))

        coverage = None
        if self.coverage:
            *states, (beam_coverage,) = states
            coverage = beams(beam_coverage)
        if self.copy:
            *memory, article_extended = memory
            last = self.title_ids(last)
        h = emb = self.embedding(last[:, None])  # (n, 1, dim): one decoder step
        new_states = []
        if self.version == "2018":
            for cell, state in zip(self.cells, states):
                out, state = cell(h[:, 0], state)
                h = out[:, None]
                new_states.append(state)
            v, v_t, bias, mv = memory
            h = beams(h[:, 0])
            a = self.interact.weights_of(h, v_t, bias, coverage)
            xy = tf.concat([tf.matmul(a, v), h, tf.broadcast_to(mv, tf.shape(h))], axis=-1)
            if self.coverage:
                new_states.append([tf.reshape(coverage + a, tf.shape(beam_coverage))])
        else:
            k_t, v_heads, bias, x_max = memory  # x_max (batch, 1, c): each norm's condition, as in the model
            for norm, cell, state in zip(self.norms, self.cells, states):
                out, state = cell(tf.reshape(norm([beams(h[:, 0]), x_max]), [batch * k, -1]), state)
                h = out[:, None]
                new_states.append(state)
            h = self.norms[2]([beams(h[:, 0]), x_max])
            heads = self.attention.weights_of(self.attention.q_dense(h), k_t, bias, coverage)
            a = tf.reduce_mean(heads, axis=1)
            xy = tf.concat([h, self.attention.combine(heads, v_heads)], axis=-1)
            if self.coverage:
                new_states.append([tf.reshape(coverage + a, tf.shape(beam_coverage))])
        features = xy
        for layer in self.head:
            xy = layer(xy)
        probs = self.softmax(self.with_prior([xy, prior]))
        if self.copy:
            probs = self.pointer([probs, a, article_extended, self.copy_gate([features, beams(emb[:, 0])])])
        return tf.reshape(probs, [batch * k, -1]), new_states

    def _banned(self, yid, t, size):
        """(n, size) True where id END + column would repeat an n-gram of its beam (yid (n, L), step t)."""
        n_gram, width = self.no_repeat_ngram, tf.shape(yid)[1]
        j = tf.range(width)
        match = tf.logical_and(j >= 1, j <= t - n_gram + 1)  # window starts after START
        match = tf.broadcast_to(match[None, :], tf.shape(yid))
        for i in range(n_gram - 1):  # the window's first n-1 ids equal the beam's last n-1
            shifted = tf.concat([yid[:, i:], tf.zeros_like(yid[:, :i])], axis=1)
            match = tf.logical_and(match, tf.equal(shifted, yid[:, t - n_gram + 2 + i][:, None]))
        following = tf.concat([yid[:, n_gram - 1:], tf.zeros_like(yid[:, :n_gram - 1])], axis=1)
        where = tf.where(match)
        ids = tf.gather_nd(following, where) - END
        counts = tf.scatter_nd(tf.stack([tf.cast(where[:, 0], tf.int32), ids], axis=1),
                               tf.ones_like(ids), [tf.shape(yid)[0], size])  # repeats add up
        return counts > 0

    def _best(self, probs, t, yid):
        """Each beam's k best next ids and their scores log(p + 1e-6), ids below END never chosen,
        the options' bans at -inf: (n, k) each, best first, the lower id first among equals.

        The log is monotonic, so the best k of p + 1e-6 (in float64) are the best k of its log and
        only those k logs are taken, not all V. The one case where that could differ: logs of two
        nearly-zero p (below 1e-12) that round to one float64, a tie the log's order breaks by id;
        when a beam's k-th best is that small, or banned, the log of every id is taken as before."""
        k = self.topk
        shifted = tf.cast(probs[:, END:], tf.float64) + 1e-6
        bans = []
        if self.min_len:  # END (column 0) not before min_len characters
            end_column = tf.equal(tf.range(tf.shape(shifted)[1]), 0)[None]
            bans.append(tf.logical_and(t < self.min_len, end_column))
        if self.no_repeat_ngram:
            bans.append(self._banned(yid, t, tf.shape(shifted)[1]))

        def ban(x):  # -inf where an option forbids the id; nothing to do without options
            for banned in bans:
                x = tf.where(banned, tf.constant(-np.inf, tf.float64), x)
            return x

        top, ids = tf.math.top_k(ban(shifted), k)
        return tf.cond(tf.reduce_all(top[:, -1] >= 1e-6 + 1e-12),
                       lambda: (tf.math.log(top), ids),
                       lambda: tuple(tf.math.top_k(ban(tf.math.log(shifted)), k)))

    def _decode_graph(self, *encoded):
        """Beam search for a batch of encoded articles: title ids (batch, max_len + 1) and lengths.

        An article is done when its best beam ends with END; its title is kept then, and once a
        quarter of the articles in the loop are done they leave it (their memory, beams and states
        gathered away), so the steps after cost what the articles still searched cost."""
        k, steps = self.topk, self.max_len
        batch = tf.shape(encoded[0])[0]
        n = batch * k
        states = [[tf.zeros([n, cell.units]), tf.zeros([n, cell.units])] for cell in self.cells]
        if self.coverage:  # each beam's coverage of the article, reordered with it like the LSTM states
            states.append([tf.zeros([n, tf.shape(encoded[2])[-1]])])  # encoded[2]: the keys' bias, (batch, ..., tk)
        yid = tf.concat([tf.fill([batch, k, 1], START), tf.zeros([batch, k, steps], tf.int32)], axis=2)
        # step 0 expands the first beam only: the others start at -inf
        scores = tf.tile(tf.constant([[0.0] + [-np.inf] * (k - 1)], tf.float64), [batch, 1])
        loop = {"last": tf.fill([n], START), "states": states, "yid": yid, "scores": scores,
                "done": tf.zeros([batch], tf.bool), "article": tf.range(batch), "encoded": list(encoded)}
        found = {"result": tf.zeros([batch, steps + 1], tf.int32), "lengths": tf.zeros([batch], tf.int32)}

        def body(t, loop, found):
            *memory, prior = loop["encoded"]  # each article's, shared by its beams (rows k·i … k·i + k - 1)
            b = tf.shape(loop["article"])[0]
            probs, states = self._step(loop["last"], loop["states"], memory, prior)
            top_lp, top_ids = self._best(probs, t, tf.reshape(loop["yid"], [b * k, steps + 1]))  # (b·k, k) each
            cand = tf.reshape(loop["scores"][:, :, None] + tf.reshape(top_lp, [b, k, k]), [b, k * k])
            scores, best = tf.math.top_k(cand, k)  # the new beams, best first: (b, k)
            parent = best // k
            new_ids = tf.gather(tf.reshape(top_ids, [b, k * k]), best, batch_dims=1) + END
            column = tf.one_hot(t + 1, steps + 1, dtype=tf.int32)  # still zero in every beam
            yid = tf.gather(loop["yid"], parent, batch_dims=1) + new_ids[:, :, None] * column
            rows = tf.reshape(parent + tf.range(b)[:, None] * k, [b * k])  # reorder the states with their beams
            ended = tf.logical_and(tf.equal(new_ids[:, 0], END), tf.logical_not(loop["done"]))
            if not self.stop_at_end:
                ended = tf.zeros_like(ended)
            where = tf.boolean_mask(loop["article"], ended)[:, None]
            found = {"result": tf.tensor_scatter_nd_update(found["result"], where, tf.boolean_mask(yid[:, 0], ended)),
                     "lengths": tf.tensor_scatter_nd_update(found["lengths"], where,
                                                            tf.fill(tf.shape(where)[:1], t + 2))}
            loop = {"last": tf.reshape(new_ids, [b * k]), "states": [[tf.gather(s, rows) for s in st] for st in states],
                    "yid": yid, "scores": scores, "done": tf.logical_or(loop["done"], ended),
                    "article": loop["article"], "encoded": loop["encoded"]}
            done = tf.reduce_sum(tf.cast(loop["done"], tf.int32))
            loop = tf.cond(4 * done >= b, lambda: self._leave(loop, k), lambda: loop)
            return t + 1, loop, found

        def cond(t, loop, found):
            return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(loop["done"])))

        def relaxed(x):  # the articles' and beams' axis shrinks as articles leave
            return tf.TensorShape([None] + x.shape.as_list()[1:])

        start = (tf.constant(0), loop, found)
        t, loop, found = tf.while_loop(cond, body, start, shape_invariants=(
            tf.TensorShape([]), tf.nest.map_structure(relaxed, loop), tf.nest.map_structure(lambda x: x.shape, found)))
        # articles whose best beam never ended: the best beam after the last step
        open_ = tf.boolean_mask(loop["article"], tf.logical_not(loop["done"]))[:, None]
        result = tf.tensor_scatter_nd_update(found["result"], open_,
                                             tf.boolean_mask(loop["yid"][:, 0], tf.logical_not(loop["done"])))
        lengths = tf.tensor_scatter_nd_update(found["lengths"], open_, tf.fill(tf.shape(open_)[:1], t + 1))
        return result, lengths

    @staticmethod
    def _leave(loop, k):
        """The loop without its done articles: their memory, beams and states gathered away."""
        keep = tf.where(tf.logical_not(loop["done"]))[:, 0]
        keep_rows = tf.reshape(keep[:, None] * k + tf.range(k, dtype=keep.dtype)[None], [-1])
        per_article = {name: tf.gather(loop[name], keep) for name in ("yid", "scores", "done", "article")}
        return {**per_article, "last": tf.gather(loop["last"], keep_rows),
                "states": [[tf.gather(s, keep_rows) for s in st] for st in loop["states"]],
                "encoded": [tf.gather(e, keep) for e in loop["encoded"]]}
