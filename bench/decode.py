"""Decoding speed: the naive beam search against the incremental one, batch generation, and the
same figures for the decoders of another commit (by default the last one before the decoder core
was written once), measured in the same run.

    python bench/decode.py                  # the model in runs/lcsts, or a fresh one of the same size
    python bench/decode.py --model DIR --against REV

Prints the machine; for this code and for REV (each in its own process, on the same model and
articles): ms per title for both decoders on a 400-character article (3 beams, forced to the full
MAX_TITLE_LEN steps so both do the same work), titles per second for batches of 1, 16 and 64 dev
articles and the naive decoder one article at a time, and the ratios. Then where this code's time
goes (the encoder, the steps of the loop, ms per step), its peak memory, and whether its two
decoders give the same titles on dev articles for top-k 1, 3 and 5. A benchmark, not a test:
timings on a shared machine move 10-20% between runs.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEFORE_CORE = "9eaa27b"  # the last commit with two decoders written apart
CODE = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else ROOT
sys.path[:0] = [CODE, ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import config  # noqa: E402
from machine import describe  # noqa: E402
from titlegen.data import Vocab  # noqa: E402
from titlegen.sources import read_jsonl  # noqa: E402
from titlegen.model import MAX_TITLE_LEN, ModelParts, build_model  # noqa: E402
from titlegen.train import load_trained  # noqa: E402


def make_decoders(model, topk, max_len, **options):
    """(naive, incremental): functions of a list of article ids -> title ids, from whichever
    version of titlegen was imported."""
    try:
        from titlegen.decode import IncrementalDecoder, NaiveDecoder
        return NaiveDecoder(model, topk, max_len, **options), IncrementalDecoder(model, topk, max_len, **options)
    except ImportError:  # before the decoder core: a numpy beam search and a separate incremental decoder
        from titlegen.decode import beam_search, naive_next_probs
        from titlegen.incremental import IncrementalDecoder

        def naive(articles):
            return [beam_search(naive_next_probs(model, a, topk), topk, max_len, **options) for a in articles]
        return naive, IncrementalDecoder(model, topk, max_len, **options)


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


def load(path):
    if os.path.exists(os.path.join(path, "model.weights.h5")):
        model, vocab, cfg = load_trained(path)
        return model, vocab, f"{path} (trained, best epoch {cfg['best']['epoch']})"
    rows = read_jsonl(os.path.join(ROOT, config.TRAIN_PATH))
    vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
    model = build_model(len(vocab), config.CHAR_SIZE, config.HIDDEN_SIZE, config.MASK_ENCODER)
    return model, vocab, f"freshly initialised, {len(vocab)} ids (no trained model in {path})"


def measure(model, vocab, steps, sizes=(1, 16, 64), n=128):
    """The speed figures of the imported code: a dict."""
    topk, maxlen = 3, config.MAXLEN
    max_len = config.MAX_TITLE_LEN or MAX_TITLE_LEN[ModelParts.of(model).version]
    dev = read_jsonl(os.path.join(ROOT, config.DEV_PATH))
    article = vocab.encode("".join(r["content"] for r in dev)[:maxlen], maxlen)
    naive, forced = make_decoders(model, topk, steps, stop_at_end=False)
    assert len(forced([article])[0]) == steps + 1
    out = {"naive_ms": timed(lambda: naive([article]), repeat=3) * 1000,
           "incremental_ms": timed(lambda: forced([article]), repeat=10) * 1000}
    naive, decoder = make_decoders(model, topk, max_len)
    dev_ids = [vocab.encode(r["content"], maxlen) for r in dev]
    for size in sizes:
        batches = [dev_ids[i:i + size] for i in range(0, n, size)]
        out[f"batch_{size}"] = n / timed(lambda: [decoder(b) for b in batches], repeat=1)
    out["naive_one_at_a_time"] = 10 / timed(lambda: naive(dev_ids[:10]), repeat=1)
    return out


def compare(args):
    """This code's figures beside those of args.against, each measured in its own process, twice, in
    the order A B B A (so a slow spell of the machine falls on both); the better of each pair."""
    results = {"this code": [], args.against: []}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {ROOT} archive {args.against} titlegen | tar -x -C {tmp}", shell=True, check=True)
        for name, code in (("this code", ROOT), (args.against, tmp), (args.against, tmp), ("this code", ROOT)):
            child = subprocess.run([sys.executable, __file__, "--code", code, "--model", args.model, "--measure"],
                                   capture_output=True, text=True, check=True)
            results[name].append(json.loads(child.stdout.splitlines()[-1]))
    now, then = ({key: (min if key.endswith("_ms") else max)(r[key] for r in runs) for key in runs[0]}
                 for runs in (results["this code"], results[args.against]))
    rows = [("naive, ms per forced title", "naive_ms", "{:.0f}"), ("incremental, ms per forced title",
            "incremental_ms", "{:.1f}"), *((f"titles/s, batch {s}", f"batch_{s}", "{:.1f}") for s in (1, 16, 64)),
            ("titles/s, naive one at a time", "naive_one_at_a_time", "{:.1f}")]
    print(f"| measure | {args.against} (before) | this code | speed, this / before |")
    print("|---|---|---|---|")
    for label, key, fmt in rows:
        speed = then[key] / now[key] if key.endswith("_ms") else now[key] / then[key]
        print(f"| {label} | {fmt.format(then[key])} | {fmt.format(now[key])} | {speed:.2f}× |")
    for name, r in ((args.against, then), ("this code", now)):
        print(f"{name}: naive / incremental {r['naive_ms'] / r['incremental_ms']:.0f}x, "
              f"batch 64 / batch 16 {r['batch_64'] / r['batch_16']:.2f}x")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, config.OUTPUT_DIR))
    parser.add_argument("--against", default=BEFORE_CORE, help="the commit whose decoders to measure beside")
    parser.add_argument("--identity-articles", type=int, default=50)
    parser.add_argument("--steps", type=int, help="steps per forced title (default: the model's title length)")
    parser.add_argument("--threads", type=int, help="TensorFlow intra- and inter-op threads (default: its own)")
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    model, vocab, about = load(args.model)
    args.steps = args.steps or config.MAX_TITLE_LEN or MAX_TITLE_LEN[ModelParts.of(model).version]
    if args.measure:
        print(json.dumps(measure(model, vocab, args.steps)))
        return
    print(f"machine: {describe()}; TensorFlow {tf.__version__}" + (f"; {args.threads} threads" if args.threads else ""))
    print(f"model: {about}\nforced titles: a {config.MAXLEN}-character article, 3 beams, {args.steps} steps\n")
    compare(args)
    details(model, vocab, args)


def details(model, vocab, args):
    """Where this code's time goes per batch, its memory, and whether its decoders agree."""
    maxlen, topk = config.MAXLEN, 3
    max_len = config.MAX_TITLE_LEN or MAX_TITLE_LEN[ModelParts.of(model).version]
    dev = read_jsonl(os.path.join(ROOT, config.DEV_PATH))
    _, decoder = make_decoders(model, topk, max_len)
    dev_ids = [vocab.encode(r["content"], maxlen) for r in dev]
    print("| batch (dev articles) | titles per second | ms per batch | of which the encoder | loop steps | ms per step "
          "| peak memory (MB) |")
    print("|---|---|---|---|---|---|---|")
    n = 128
    for size in (1, 16, 64):
        batches = [dev_ids[i:i + size] for i in range(0, n, size)]
        seconds = timed(lambda: [decoder(b) for b in batches], repeat=1)
        steps = np.mean([max(len(t) for t in decoder(b)) - 1 for b in batches])
        encoder = timed(lambda: [[t.numpy() for t in tf.nest.flatten(decoder._encode(tf.constant(
            decoder.encoder_input(b))))] for b in batches], repeat=1) / len(batches)
        per_batch = seconds / len(batches)
        print(f"| {size} | {n / seconds:.1f} | {per_batch * 1000:.1f} | {encoder * 1000:.1f} | {steps:.1f} "
              f"| {(per_batch - encoder) / steps * 1000:.2f} | {peak_mb():.0f} |")
    print()
    ids = dev_ids[:args.identity_articles]
    print(f"| top-k | identical titles, naive vs incremental ({len(ids)} dev articles) |")
    print("|---|---|")
    for k in (1, 3, 5):
        naive, incremental = make_decoders(model, k, max_len)
        same = sum(a.tolist() == b.tolist() for a, b in zip(incremental(ids), naive(ids)))
        print(f"| {k} | {same} / {len(ids)} |")


if __name__ == "__main__":
    main()
