"""Titles per second of an exported SavedModel beside `generate`'s decoder, on the same dev articles.

    python bench/export.py                  # the model in runs/lcsts
    python bench/export.py --model DIR

Exports the model (its decoding settings) to a temporary folder, loads it with
tf.saved_model.load as a serving process would, and times both on 128 dev articles in batches of
1, 16 and 64 (after a warm-up pass over the same batches), checking that they give the same titles.
The exported graph runs the encoder without XLA (a SavedModel any TensorFlow can load); generate's
decoder compiles its encoder with XLA. A benchmark, not a test: timings move 10-20% between runs.
"""
import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)
import tensorflow as tf  # noqa: E402

import config  # noqa: E402
from machine import describe  # noqa: E402
from titlegen.export import export  # noqa: E402
from titlegen.sources import read_jsonl  # noqa: E402
from titlegen.decoders import load_titler  # noqa: E402
from titlegen.runfolder import RunFolder  # noqa: E402


def rate(title, batches):
    """Titles per second over the batches, after a warm-up pass over them all (generate's encoder
    compiles once per padded shape); and the titles."""
    [title(b) for b in batches]
    start = time.perf_counter()
    titles = [t for b in batches for t in title(b)]
    return len(titles) / (time.perf_counter() - start), titles


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, config.OUTPUT_DIR))
    parser.add_argument("--articles", type=int, default=128)
    args = parser.parse_args()
    print(f"machine: {describe()}; TensorFlow {tf.__version__}")
    titler = load_titler(args.model)  # the model's own decoding, as generate decodes it
    best = RunFolder(args.model).read_record()[1]["best"]
    print(f"model: {args.model} (best epoch {best['epoch']}); decoding: {titler.options}\n")
    articles = [r["content"] for r in read_jsonl(os.path.join(ROOT, config.DEV_PATH))[:args.articles]]
    with tempfile.TemporaryDirectory() as tmp:
        served = tf.saved_model.load(export(titler, tmp))
        print("| batch | generate's decoder (titles/s) | SavedModel (titles/s) | SavedModel / generate | same titles |")
        print("|---|---|---|---|---|")
        for size in (1, 16, 64):
            batches = [articles[i:i + size] for i in range(0, len(articles), size)]
            ours, expected = rate(titler, batches)
            theirs, got = rate(lambda b: [t.decode("utf-8") for t in served.serve(tf.constant(b))["title"].numpy()],
                               batches)
            same = sum(a == b for a, b in zip(expected, got))
            print(f"| {size} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f}× | {same} / {len(got)} |")


if __name__ == "__main__":
    main()
