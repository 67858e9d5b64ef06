"""Decoding speed: the naive beam search against the incremental one, batch generation, and the
same figures for the decoders of another commit (by default the last one before the decoder core
was written once), measured in the same run.

    python bench/decode.py                  # the model in runs/lcsts, or a fresh one of the same size
    python bench/decode.py --model DIR --against REV

Prints the machine; for this code and for REV (its titlegen/ from git, imported in the same
process as titlegen_before, on a copy of the same model): ms per title for both decoders on a
400-character article (3 beams, forced to the full MAX_TITLE_LEN steps so both do the same work),
titles per second for batches of 1, 16 and 64 dev articles and the naive decoder one article at a
time; the two codes take turns, and the ratio is of medians. Then where this code's time goes (the
encoder, the steps of the loop, ms per step), its peak memory, and whether its two decoders give
the same titles on dev articles for top-k 1, 3 and 5. A benchmark, not a test: timings on a shared
machine move 10-20% between runs.
"""
import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEFORE_CORE = "9eaa27b"  # the last commit with two decoders written apart
SETTINGS = None  # the measured model's settings, config.py's decoding (set by `load`)
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import config  # noqa: E402
from machine import describe  # noqa: E402
from titlegen.data import Vocab  # noqa: E402
from titlegen.sources import read_jsonl  # noqa: E402
from titlegen.model import build_model, max_title_len  # noqa: E402
from titlegen.runfolder import RunFolder, load_trained  # noqa: E402
from titlegen.settings import load as load_settings  # noqa: E402


def make_decoders(package, model, topk, max_len, **options):
    """(naive, incremental): functions of a list of article ids -> title ids, from this code
    (package "titlegen") or the commit before the decoder core ("titlegen_before")."""
    if package == "titlegen":
        from titlegen.decoders import IncrementalDecoder, NaiveDecoder
        decode = SETTINGS.replace(topk=topk, max_title_len=max_len).decode
        return (NaiveDecoder(model, SETTINGS.model, decode, **options),
                IncrementalDecoder(model, SETTINGS.model, decode, **options))
    from titlegen_before.decode import beam_search, naive_next_probs  # a numpy beam search, a separate decoder
    from titlegen_before.incremental import IncrementalDecoder

    def naive(articles):
        return [beam_search(naive_next_probs(model, a, topk), topk, max_len, **options) for a in articles]
    return naive, IncrementalDecoder(model, topk, max_len, **options)


def import_before(rev, folder):
    """The package as of `rev`, importable as titlegen_before (its Keras classes registered apart)."""
    subprocess.run(f"git -C {ROOT} archive {rev} titlegen | tar -x -C {folder}", shell=True, check=True)
    os.rename(os.path.join(folder, "titlegen"), os.path.join(folder, "titlegen_before"))
    layers = os.path.join(folder, "titlegen_before", "layers.py")
    with open(layers, encoding="utf-8") as f:
        text = f.read().replace('package="seq2seq_title"', 'package="seq2seq_title_before"')
    with open(layers, "w", encoding="utf-8") as f:
        f.write(text)
    sys.path.insert(0, folder)
    import titlegen_before.model
    return titlegen_before.model.build_model


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


def title_steps():
    """The most steps a title takes: MAX_TITLE_LEN, or the model version's."""
    return max_title_len(SETTINGS.model, SETTINGS.decode)


def load(path):
    """(model, vocab, what it is, the arguments the code before typed settings builds it from)."""
    if os.path.exists(os.path.join(path, "model.weights.h5")):
        model, vocab, settings = load_trained(path)
        about = f"{path} (trained, best epoch {RunFolder(path).read_record()[1]['best']['epoch']})"
    else:
        rows = read_jsonl(os.path.join(ROOT, config.TRAIN_PATH))
        vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
        settings = load_settings(config, ROOT).replace(vocab_size=len(vocab))
        model, about = build_model(settings.model), f"freshly initialised, {len(vocab)} ids (no trained model in {path})"
    global SETTINGS  # the loaded model's settings: what its decoders take
    SETTINGS = settings.replace(**dataclasses.asdict(load_settings(config, ROOT).decode))
    m = settings.model
    built = {"vocab_size": m.vocab_size, "char_size": m.char_size, "hidden_size": m.hidden_size,
             "mask_encoder": m.mask_encoder, "version": m.version, "copy": m.copy, "copy_extra": m.maxlen,
             "coverage": m.coverage}
    return model, vocab, about, built


def compare(args, vocab, models, rounds=5):
    """This code's figures beside those of the commit before, measured in one process on the same
    model, the two taking turns (A B, then B A, ...); the median of each."""
    topk, maxlen = 3, config.MAXLEN
    max_len = title_steps()
    dev = read_jsonl(os.path.join(ROOT, config.DEV_PATH))
    article = vocab.encode("".join(r["content"] for r in dev)[:maxlen], maxlen)
    dev_ids = [vocab.encode(r["content"], maxlen) for r in dev][:128]
    work = {}  # measure -> package -> a function that does the work, and how it is reported
    for package, model in models.items():
        naive, forced = make_decoders(package, model, topk, args.steps, stop_at_end=False)
        assert len(forced([article])[0]) == args.steps + 1
        work.setdefault("naive, ms per forced title", {})[package] = lambda n=naive: n([article])
        work.setdefault("incremental, ms per forced title", {})[package] = lambda f=forced: f([article])
        naive, decoder = make_decoders(package, model, topk, max_len)
        for size in (1, 16, 64):
            batches = [dev_ids[i:i + size] for i in range(0, len(dev_ids), size)]
            work.setdefault(f"titles/s, batch {size}", {})[package] = lambda d=decoder, b=batches: [d(x) for x in b]
        work.setdefault("titles/s, naive one at a time", {})[package] = lambda n=naive: n(dev_ids[:10])
    print(f"| measure | {args.against} (before) | this code | speed, this / before |")
    print("|---|---|---|---|")
    for label, by_package in work.items():
        times = {package: [] for package in by_package}
        for fn in by_package.values():
            fn()  # warm-up: tracing and compiling
        for r in range(1 if "naive" in label and "forced" in label else rounds):
            for package in (models if r % 2 == 0 else reversed(list(models))):
                start = time.perf_counter()
                by_package[package]()
                times[package].append(time.perf_counter() - start)
        now, then = (float(np.median(times[p])) for p in ("titlegen", "titlegen_before"))
        if label.startswith("titles/s"):
            n = 10 if "naive" in label else len(dev_ids)
            print(f"| {label} | {n / then:.1f} | {n / now:.1f} | {then / now:.2f}× |")
        else:
            print(f"| {label} | {then * 1000:.1f} | {now * 1000:.1f} | {then / now:.2f}× |")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, config.OUTPUT_DIR))
    parser.add_argument("--against", default=BEFORE_CORE, help="the commit whose decoders to measure beside")
    parser.add_argument("--identity-articles", type=int, default=50)
    parser.add_argument("--steps", type=int, help="steps per forced title (default: the model's title length)")
    parser.add_argument("--threads", type=int, help="TensorFlow intra- and inter-op threads (default: its own)")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    model, vocab, about, built = load(args.model)
    args.steps = args.steps or title_steps()
    print(f"machine: {describe()}; TensorFlow {tf.__version__}" + (f"; {args.threads} threads" if args.threads else ""))
    print(f"model: {about}\nforced titles: a {config.MAXLEN}-character article, 3 beams, {args.steps} steps\n")
    with tempfile.TemporaryDirectory() as tmp:
        before = import_before(args.against, tmp)(**built)
        before.set_weights(model.get_weights())  # the same layers in the same order: the same model
        compare(args, vocab, {"titlegen": model, "titlegen_before": before})
    details(model, vocab, args)


def details(model, vocab, args):
    """Where this code's time goes per batch, its memory, and whether its decoders agree."""
    maxlen, topk = config.MAXLEN, 3
    max_len = title_steps()
    dev = read_jsonl(os.path.join(ROOT, config.DEV_PATH))
    _, decoder = make_decoders("titlegen", model, topk, max_len)
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
        naive, incremental = make_decoders("titlegen", model, k, max_len)
        same = sum(a.tolist() == b.tolist() for a, b in zip(incremental(ids), naive(ids)))
        print(f"| {k} | {same} / {len(ids)} |")


if __name__ == "__main__":
    main()
