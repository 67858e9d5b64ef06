"""Decoding speed: batch generation as `generate` and `evaluate` decode (the faithful model, a
copying one, an ensemble), the naive beam search against the incremental one, a cold
`generate --file` end to end, and for a faithful model the same figures for the decoders of another
commit (by default the last one before the decoder core was written once), measured in one run.

    python bench/decode.py                  # the model in runs/lcsts, or a fresh one of the same size
    python bench/decode.py --model runs/lcsts_recipe            # the recipe's copying model
    python bench/decode.py --model DIR --against REV            # REV's decoders beside (faithful models)
    python bench/decode.py --model DIR --against none --cold-runs 0

Prints the machine and the model. For a faithful model (no copying, not an ensemble: REV's code
builds it with the same layers in the same order) and REV: ms per title for both decoders on a
400-character article (3 beams, forced to the full MAX_TITLE_LEN steps so both do the same work),
titles per second for batches of 1, 16 and 64 dev articles and the naive decoder one article at a
time; the two codes take turns, and the ratio is of medians. Then, for any model, where this
code's time goes as `generate` decodes (text in, titles out, without XLA, after `Titler.warm_up`):
titles per second, the encoder, the steps of the loop, ms per step, peak memory; whether its two
decoders give the same titles on dev articles for top-k 1, 3 and 5; and `generate --file` of the
dev set from a fresh process (start-up included) beside the same articles decoded warm in this
one. A benchmark, not a test: timings on a shared machine move 10-20% between runs.
"""
import argparse
import atexit
import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEFORE_CORE = "9eaa27b"  # the last commit with two decoders written apart
SETTINGS = None  # the measured model's settings, its own decoding (set by `load`)
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import tree  # noqa: E402

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # each Titler traces its own functions: no retracing warnings

import config  # noqa: E402
from machine import describe  # noqa: E402
from titlegen.data import Vocab  # noqa: E402
from titlegen.decoders import Titler, title_in_batches  # noqa: E402
from titlegen.ensemble import Ensemble  # noqa: E402
from titlegen.sources import read_jsonl  # noqa: E402
from titlegen.model import build_model, max_title_len  # noqa: E402
from titlegen.runfolder import RunFolder  # noqa: E402
from titlegen.trained import load_trained  # noqa: E402
from titlegen.settings import DECODERS, load as load_settings  # noqa: E402


def make_decoders(package, model, topk, max_len, **options):
    """(naive, incremental): functions of a list of article ids -> title ids, from this code
    (package "titlegen") or the commit before the decoder core ("titlegen_before")."""
    if package == "titlegen":
        from titlegen.decoders import IncrementalDecoder, NaiveDecoder
        decode = SETTINGS.replace(topk=topk, max_title_len=max_len).decode
        ours = NaiveDecoder(model, decode, **options), IncrementalDecoder(model, decode, **options)
        return tuple(lambda articles, d=d: d({"article": articles}) for d in ours)
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
    """(model, vocab, what it is, its folder): the trained model (or ensemble) in `path`, else a fresh
    faithful model of config.py's size, saved to a temporary run folder (so the cold `generate`
    has a model to load); SETTINGS becomes its settings, its own decoding included, as `generate`
    decodes it."""
    global SETTINGS
    if os.path.exists(os.path.join(path, "config.json")):
        model, vocab, settings = load_trained(path)
        kind = (f"an ensemble of {len(model.models)} members" if isinstance(model, Ensemble)
                else f"best epoch {RunFolder(path).read_record()[1]['best']['epoch']}")
        about = f"{path} (trained, {'copying' if settings.model.copy else 'faithful'}, {kind})"
    else:
        rows = read_jsonl(os.path.join(ROOT, config.TRAIN_PATH))
        vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
        settings = load_settings(config, ROOT).replace(vocab_size=len(vocab))
        model = build_model(settings.model)
        about = f"freshly initialised, {len(vocab)} ids (no trained model in {path}; saved to a temporary folder)"
        path = tempfile.mkdtemp(prefix="bench_decode_")
        atexit.register(shutil.rmtree, path, True)
        folder = RunFolder(path)
        folder.start(vocab)
        folder.write_record(settings, vocab)
        folder.save_weights(model)
    SETTINGS = settings
    return model, vocab, about, path


def before_model(model, build_before):
    """A copy of this faithful model built by the code of the commit before (the same layers in the
    same order, so the same weights fit)."""
    m = SETTINGS.model
    before = build_before(vocab_size=m.vocab_size, char_size=m.char_size, hidden_size=m.hidden_size,
                          mask_encoder=m.mask_encoder, version=m.version, copy=False, copy_extra=m.maxlen,
                          coverage=m.coverage)
    before.set_weights(model.get_weights())
    return before


def dev_articles():
    return [r["content"] for r in read_jsonl(os.path.join(ROOT, config.DEV_PATH))]


def titler(model, vocab, topk, decoder="incremental"):
    """A Titler of the measured model as `generate` builds it (no XLA), decoding as the model does
    but for topk and the decoder."""
    decode = dataclasses.replace(SETTINGS.decode, topk=topk, decoder=decoder)
    return Titler(model, vocab, decode, xla=False)


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
    parser.add_argument("--against", default=BEFORE_CORE,
                        help="the commit whose decoders to measure beside (faithful models; none: skip)")
    parser.add_argument("--identity-articles", type=int, default=50)
    parser.add_argument("--steps", type=int, help="steps per forced title (default: the model's title length)")
    parser.add_argument("--threads", type=int, help="TensorFlow intra- and inter-op threads (default: its own)")
    parser.add_argument("--cold-runs", type=int, default=2,
                        help="fresh `generate --file` runs of the dev set (0: none)")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    model, vocab, about, args.model = load(args.model)
    args.steps = args.steps or title_steps()
    print(f"machine: {describe()}; Keras {keras.__version__} on {keras.backend.backend()}"
          + (f"; {args.threads} threads" if args.threads else ""))
    print(f"model: {about}\n")
    faithful = not SETTINGS.model.copy and not isinstance(model, Ensemble)
    if args.against != "none" and faithful:
        print(f"forced titles: a {config.MAXLEN}-character article, 3 beams, {args.steps} steps\n")
        with tempfile.TemporaryDirectory() as tmp:
            before = before_model(model, import_before(args.against, tmp))
            compare(args, vocab, {"titlegen": model, "titlegen_before": before})
    elif args.against != "none":
        print(f"(no comparison with {args.against}: its code builds faithful single models only)\n")
    details(model, vocab)
    identity(model, vocab, args.identity_articles)
    if args.cold_runs:
        cold(model, vocab, args)


def details(model, vocab):
    """Where this code's time goes per batch, as `generate` decodes (text in, titles out), and its memory."""
    titles = titler(model, vocab, 3)
    titles.warm_up()  # traces the decoder once for any shape, as generate's first batch does
    dev = dev_articles()
    print("| batch (dev articles) | titles per second | ms per batch | of which the encoder | loop steps | ms per step "
          "| peak memory (MB) |")
    print("|---|---|---|---|---|---|---|")
    n = 128
    for size in (1, 16, 64):
        batches = [dev[i:i + size] for i in range(0, n, size)]
        seconds = timed(lambda: [titles(b) for b in batches], repeat=1)
        inputs = [titles.encode(b)[0] for b in batches]
        steps = np.mean([max(len(t) for t in titles.decoder(x)) - 1 for x in inputs])
        encoder = timed(lambda: [[np.asarray(t) for t in tree.flatten(titles.decoder.encoded(x)[0])]
                                 for x in inputs], repeat=1) / len(batches)
        per_batch = seconds / len(batches)
        print(f"| {size} | {n / seconds:.1f} | {per_batch * 1000:.1f} | {encoder * 1000:.1f} | {steps:.1f} "
              f"| {(per_batch - encoder) / steps * 1000:.2f} | {peak_mb():.0f} |")
    print()


def identity(model, vocab, n):
    """Whether the two decoders give the same titles on the first n dev articles."""
    articles = dev_articles()[:n]
    print(f"| top-k | identical titles, naive vs incremental ({len(articles)} dev articles) |")
    print("|---|---|")
    for k in (1, 3, 5):
        naive, incremental = (titler(model, vocab, k, decoder)(articles) for decoder in DECODERS)
        same = sum(a == b for a, b in zip(incremental, naive))
        print(f"| {k} | {same} / {len(articles)} |")
    print()


def cold(model, vocab, args):
    """`generate --file` of the dev set from a fresh process (start-up, loading and tracing
    included), beside the same articles decoded in this warmed process in GENERATE_BATCH_SIZE
    batches; the fresh runs' titles must be this process's."""
    dev, size = dev_articles(), SETTINGS.serve.generate_batch_size
    titles = titler(model, vocab, SETTINGS.decode.topk)
    warm = title_in_batches(titles, dev, size)  # as generate --file titles them; also the warm-up
    start = time.perf_counter()
    title_in_batches(titles, dev, size)
    seconds = time.perf_counter() - start
    command = [sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "generate", "--file",
               os.path.join(ROOT, config.DEV_PATH), "--model", args.model]
    runs = []
    for _ in range(args.cold_runs):
        start = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout.splitlines()
        runs.append(time.perf_counter() - start)
        assert out == warm, "a fresh generate --file wrote other titles than this process"
    cold_s = float(np.median(runs))
    print(f"| {len(dev)} dev articles, batch {size} | seconds | titles per second |\n|---|---|---|")
    print(f"| warm, in this process | {seconds:.2f} | {len(dev) / seconds:.1f} |")
    print(f"| cold: `generate --file` from a fresh process (median of {len(runs)}: "
          f"{', '.join(f'{r:.2f}' for r in runs)}) | {cold_s:.2f} | {len(dev) / cold_s:.1f} |")
    print(f"\ncold / warm titles per second: {seconds / cold_s:.2f}× (the same titles)")


if __name__ == "__main__":
    main()
