"""Training speed: articles per second and peak memory, and where a training step's time goes.

    python bench/train.py                     # the blog's settings, then LCSTS and CSL with and without bucketing
    python bench/train.py --mixed-precision   # the same with float16 compute (for GPUs)

1. The default model (the LCSTS vocabulary, CHAR_SIZE 128, HIDDEN_SIZE 512) at the blog's settings:
   batches of 64 articles of exactly MAXLEN = 400 characters (LCSTS text run together) with LCSTS titles.
2. A profile of that step: the data pipeline (encode + pad), the forward pass alone, and forward +
   backward for the parts of the model (encoder, decoder, attention, output head) by difference.
3. The shipped LCSTS and CSL training sets as `train` reads them (stored order), plain and bucketed
   by length (BUCKET_WINDOW), with the padding share of the batches and the ratio.

Every step is the training step `train` runs (titlegen.train.make_train_step). A benchmark, not a
test: timings on a shared machine are noisy; run it on a quiet one.
"""
import argparse
import itertools
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import config  # noqa: E402
from titlegen.data import Vocab, encode_example, padded  # noqa: E402
from titlegen.model import build_model  # noqa: E402
from titlegen.sources import Corpus, epoch_batches, read_jsonl  # noqa: E402
from titlegen.train import make_optimizer, make_train_step, model_inputs  # noqa: E402


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seconds_per_call(fn, batches, warmup=2):
    """Median seconds of fn(batch) over the batches after the first `warmup` (tracing, first calls)."""
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        fn(batch)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def fresh(vocab_size, mixed):
    keras.utils.set_random_seed(config.SEED)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_model(vocab_size, config.CHAR_SIZE, config.HIDDEN_SIZE, config.MASK_ENCODER)
    keras.mixed_precision.set_global_policy("float32")
    optimizer = make_optimizer(config.LEARNING_RATE, mixed)
    optimizer.build(model.trainable_variables)
    return model, make_train_step(model, optimizer, tf.distribute.get_strategy())


def gradient_time(model, output_layers, inputs, steps):
    """Seconds of forward + backward through the sub-model ending at `output_layers` (its loss: the
    sum of those outputs)."""
    sub = keras.Model(model.inputs[:2], [model.get_layer(n).output for n in output_layers])

    @tf.function
    def run(x, y):
        with tf.GradientTape() as tape:
            outs = sub([x, y])
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            total = tf.add_n([tf.reduce_sum(tf.cast(o, "float32")) for o in outs])
        grads = tape.gradient(total, sub.trainable_variables)
        return tf.add_n([tf.reduce_sum(tf.convert_to_tensor(g)) for g in grads if g is not None])

    x, y = tf.constant(inputs[0]), tf.constant(inputs[1])
    return seconds_per_call(lambda _: run(x, y).numpy(), range(steps + 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps at the blog's settings")
    parser.add_argument("--corpus-steps", type=int, default=config.BUCKET_WINDOW,
                        help="timed batches per corpus run (default: one bucketing window, so both see the same articles)")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--threads", type=int, help="TensorFlow intra- and inter-op threads (default: its own)")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # each fresh model traces its own step: no retracing warnings
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"devices: {len(gpus)} GPU(s)" + (f" ({gpus[0].name})" if gpus else " (CPU only)")
          + f"; mixed precision: {'on' if args.mixed_precision else 'off'}")

    train_path = os.path.join(ROOT, config.TRAIN_PATH)
    rows = read_jsonl(train_path)
    vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
    maxlen, batch_size = config.MAXLEN, config.BATCH_SIZE
    text = "".join(r["content"] for r in rows)
    examples = [encode_example(vocab, rows[i]["title"], text[i * maxlen:(i + 1) * maxlen], maxlen)
                for i in range(batch_size * (args.steps + 2))]
    blog_batches = [padded(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)]

    # 1. the blog's settings
    model, train_step = fresh(len(vocab), args.mixed_precision)
    step_s = seconds_per_call(train_step, blog_batches)
    blog_rate = batch_size / step_s
    print(f"\n## the blog's settings: maxlen {maxlen}, batch {batch_size}, vocabulary {len(vocab)}, "
          f"{model.count_params():,} parameters\n")
    print("| | s per batch | articles/s | peak memory |\n|---|---|---|---|")
    print(f"| training step | {step_s:.3f} | {blog_rate:.1f} | {peak_mb():.0f} MB |")

    # 2. where the time goes
    inputs, _ = model_inputs(*blog_batches[0])
    pipeline_s = seconds_per_call(lambda _: padded([encode_example(vocab, rows[i]["title"], text[i * maxlen:(i + 1) * maxlen],
                                                                   maxlen) for i in range(batch_size)]),
                                  range(args.steps + 2))
    forward = tf.function(lambda x, y: model([x, y], training=False))
    forward_s = seconds_per_call(lambda _: forward(tf.constant(inputs[0]), tf.constant(inputs[1])).numpy(),
                                 range(args.steps + 2))
    encoder_s = gradient_time(model, ["encoder_2"], inputs, args.steps)
    decoder_s = gradient_time(model, ["decoder_2"], inputs, args.steps)
    attention_s = gradient_time(model, ["interact"], inputs, args.steps)
    full_s = gradient_time(model, ["probs"], inputs, args.steps)
    print(f"\n## where a step's time goes (batch of {batch_size} × {maxlen} characters)\n")
    print("| part | ms | share of the step |\n|---|---|---|")
    parts = [("data: encode + pad (Python)", pipeline_s),
             ("forward pass alone", forward_s),
             ("forward + backward: encoder (embedding, 2 BiLSTMs)", encoder_s),
             ("forward + backward: decoder (embedding, 2 LSTMs)", decoder_s),
             ("forward + backward: attention (= to `interact` − encoder − decoder)",
              attention_s - encoder_s - decoder_s),
             ("forward + backward: head (Dense 512, Dense V, prior, softmax)", full_s - attention_s),
             ("Adam update and the rest (= step − forward + backward to probs)", step_s - full_s),
             ("whole training step", step_s)]
    for name, seconds in parts:
        print(f"| {name} | {seconds * 1000:.0f} | {seconds / step_s:.0%} |")
    print("\n(The parts are timed one by one, each as its own graph; a small or negative remainder means the "
          "Adam update costs less than the timing noise.)")

    # 3. the shipped corpora, plain and bucketed
    print(f"\n## the shipped corpora, the first {args.corpus_steps} batches of {batch_size} in stored order\n")
    print("| corpus | batching | mean padded length | padding | articles/s | peak memory |\n|---|---|---|---|---|---|")
    for name, path in [("LCSTS", "data/lcsts/train.jsonl"), ("CSL", "data/csl/train.jsonl")]:
        corpus = Corpus(os.path.join(ROOT, path))
        rates = {}
        for bucket in (False, True):
            settings = {"seed": config.SEED, "shuffle": False, "maxlen": maxlen, "batch_size": batch_size,
                        "bucket": bucket, "bucket_window": config.BUCKET_WINDOW, "copy": False}
            batches = list(itertools.islice(epoch_batches(corpus, vocab, settings, 1), args.corpus_steps))
            _, train_step = fresh(len(vocab), args.mixed_precision)
            for batch in blog_batches[:2]:
                train_step(batch)  # warm-up: the step's graph is traced once for every shape
            start = time.perf_counter()
            for batch in batches:
                train_step(batch)
            rates[bucket] = sum(len(b[0]) for b in batches) / (time.perf_counter() - start)
            x = np.concatenate([b[0].ravel() for b in batches])
            print(f"| {name} | {'bucketed' if bucket else 'plain'} | {np.mean([b[0].shape[1] for b in batches]):.0f} "
                  f"| {np.mean(x == 0):.0%} | {rates[bucket]:.1f} | {peak_mb():.0f} MB |")
        print(f"| {name} | bucketed / plain | | | {rates[True] / rates[False]:.2f}× | |")
    print(f"\nblog settings: {blog_rate:.1f} articles/s against the prototype's 47 ({blog_rate / 47:.2f}×)")


if __name__ == "__main__":
    main()
