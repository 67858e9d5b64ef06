"""Decoding speed: the blog's naive beam search against the incremental one, and batch generation.

    python bench/decode.py                  # the model in runs/lcsts, or a fresh one of the same size
    python bench/decode.py --model DIR

Prints the machine; ms per title for both decoders on a 400-character article (3 beams, forced
to the full MAX_TITLE_LEN steps so both do the same work); titles per second for batches of 1, 16
and 64 dev articles, with where the time goes (the encoder, the steps of the loop, ms per step);
the peak memory of the process; and whether both decoders give the same titles on dev articles for
top-k 1, 3 and 5. A benchmark, not a test: timings on a shared machine move 10-20% between runs.
"""
import argparse
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import config  # noqa: E402
from machine import describe  # noqa: E402
from titlegen.data import Vocab  # noqa: E402
from titlegen.sources import read_jsonl  # noqa: E402
from titlegen.decode import beam_search, naive_next_probs  # noqa: E402
from titlegen.incremental import IncrementalDecoder  # noqa: E402
from titlegen.model import MAX_TITLE_LEN, build_model, model_version  # noqa: E402
from titlegen.train import load_trained  # noqa: E402


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat):
    fn()  # warm-up: tracing and first-call costs are not per-title costs
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, config.OUTPUT_DIR))
    parser.add_argument("--identity-articles", type=int, default=50)
    parser.add_argument("--steps", type=int, help="steps per forced title (default: the model's title length)")
    parser.add_argument("--threads", type=int, help="TensorFlow intra- and inter-op threads (default: its own)")
    args = parser.parse_args()
    print(f"machine: {describe()}; TensorFlow {tf.__version__}")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        print(f"TensorFlow threads: {args.threads}")

    dev = read_jsonl(os.path.join(ROOT, config.DEV_PATH))
    if os.path.exists(os.path.join(args.model, "model.weights.h5")):
        model, vocab, cfg = load_trained(args.model)
        print(f"model: {args.model} (trained, best epoch {cfg['best']['epoch']})")
    else:
        rows = read_jsonl(os.path.join(ROOT, config.TRAIN_PATH))
        vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
        model = build_model(len(vocab), config.CHAR_SIZE, config.HIDDEN_SIZE, config.MASK_ENCODER)
        print(f"model: freshly initialised, {len(vocab)} ids (no trained model in {args.model})")
    maxlen, topk = config.MAXLEN, 3
    max_len = config.MAX_TITLE_LEN or MAX_TITLE_LEN[model_version(model)]
    args.steps = args.steps or max_len

    long_text = "".join(r["content"] for r in dev)[:maxlen]
    article = vocab.encode(long_text, maxlen)
    print(f"article: {len(article)} characters, {topk} beams, {args.steps} steps per title\n")

    naive = timed(lambda: beam_search(naive_next_probs(model, article, topk), topk, args.steps,
                                      stop_at_end=False), repeat=3)
    forced = IncrementalDecoder(model, topk, args.steps, stop_at_end=False)
    incremental = timed(lambda: forced([article]), repeat=10)
    assert len(forced([article])[0]) == args.steps + 1
    print("| decoder | ms per title (400 chars, 3 beams, forced length) |")
    print("|---|---|")
    print(f"| naive (the blog's) | {naive * 1000:.0f} |")
    print(f"| incremental | {incremental * 1000:.1f} |")
    print(f"naive / incremental: {naive / incremental:.0f}x   peak memory so far: {peak_mb():.0f} MB\n")

    decoder = IncrementalDecoder(model, topk, max_len)
    dev_ids = [vocab.encode(r["content"], maxlen) for r in dev]
    print("| batch (dev articles) | titles per second | ms per batch | of which the encoder | loop steps | ms per step "
          "| peak memory (MB) |")
    print("|---|---|---|---|---|---|---|")
    n, rates = 128, {}
    for size in (1, 16, 64):
        batches = [dev_ids[i:i + size] for i in range(0, n, size)]
        seconds = timed(lambda: [decoder(b) for b in batches], repeat=1)
        steps = np.mean([max(len(t) for t in decoder(b)) - 1 for b in batches])
        encoder = timed(lambda: [[t.numpy() for t in decoder._encode(tf.constant(decoder.encoder_input(b)))] for b in batches],
                        repeat=1) / len(batches)
        per_batch, rates[size] = seconds / len(batches), n / seconds
        print(f"| {size} | {rates[size]:.1f} | {per_batch * 1000:.1f} | {encoder * 1000:.1f} | {steps:.1f} "
              f"| {(per_batch - encoder) / steps * 1000:.2f} | {peak_mb():.0f} |")
    sample = dev_ids[:10]
    per_title = timed(lambda: [beam_search(naive_next_probs(model, a, topk), topk, max_len)
                               for a in sample], repeat=1) / len(sample)
    print(f"| naive, one at a time | {1 / per_title:.1f} | | | | | {peak_mb():.0f} |")
    print(f"batch 64 / batch 1: {rates[64] / rates[1]:.1f}×, batch 64 / batch 16: {rates[64] / rates[16]:.2f}×\n")

    ids = dev_ids[:args.identity_articles]
    print(f"| top-k | identical titles, naive vs incremental ({len(ids)} dev articles) |")
    print("|---|---|")
    for k in (1, 3, 5):
        inc = IncrementalDecoder(model, k, max_len)(ids)
        same = sum(a.tolist() == beam_search(naive_next_probs(model, x, k), k, max_len).tolist()
                   for a, x in zip(inc, ids))
        print(f"| {k} | {same} / {len(ids)} |")


if __name__ == "__main__":
    main()
