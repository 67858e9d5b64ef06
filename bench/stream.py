"""Streaming memory: peak memory of reading a corpus as `train` does, against its size.

    python bench/stream.py                      # 10,000, 200,000 and 1,000,000 generated articles
    python bench/stream.py --sizes 10000 200000

For each size, a fresh process writes a JSON Lines corpus of generated 100-character articles,
then does what `train` does before and during an epoch: one checking pass that counts the
vocabulary, then one epoch of shuffled (buffer SHUFFLE_BUFFER), bucketed (BUCKET_WINDOW), encoded
and padded batches. It prints the file size, the peak resident memory of the reading (over the
process's memory before it), the articles per second and the ratios to the smallest corpus.
No TensorFlow is loaded: this is the data pipeline alone.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ONE = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
import config
from titlegen.data import Vocab
from titlegen.settings import load
from titlegen.sources import Corpus, epoch_batches

path, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
alphabet = np.array(list("春夏秋冬山水日月风雨花草天地人和东南西北上下左右前后"))
with open(path, "w", encoding="utf-8") as f:
    for block in range(0, n, 1000):
        f.writelines(json.dumps({"title": "".join(row[:12]), "content": "".join(row)}, ensure_ascii=False) + "\\n"
                     for row in rng.choice(alphabet, (min(1000, n - block), 100)))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
corpus = Corpus(path)
vocab = Vocab.build((t for r in corpus.scan("counting") for t in (r.content, r.title)), 1)
settings = load(config, sys.argv[3]).replace(seed=1, shuffle=True, bucket=True, copy=False)
batches = sum(1 for _ in epoch_batches(corpus, vocab, settings, 1))
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"bytes": __import__("os").path.getsize(path), "batches": batches, "seconds": seconds,
                  "growth_mb": (after - before) / 1024, "peak_mb": after / 1024}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000, 1_000_000])
    args = parser.parse_args()
    print("| articles | file | peak memory of the process | of which reading | articles/s (2 passes) |")
    print("|---|---|---|---|---|")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            path = os.path.join(folder, f"corpus_{n}.jsonl")
            out = subprocess.run([sys.executable, "-c", ONE, path, str(n), ROOT], capture_output=True, text=True,
                                 check=True, env={**os.environ, "TQDM_DISABLE": "1"})
            r = json.loads(out.stdout)
            os.remove(path)
            results.append((n, r))
            print(f"| {n:,} | {r['bytes'] / 1e6:.0f} MB | {r['peak_mb']:.0f} MB | {r['growth_mb']:.1f} MB "
                  f"| {n / r['seconds']:,.0f} |")
    n0, r0 = results[0]
    for n, r in results[1:]:
        print(f"{n:,} vs {n0:,} articles: {n / n0:.0f}× the data, {r['peak_mb'] / r0['peak_mb']:.2f}× the peak memory")


if __name__ == "__main__":
    main()
