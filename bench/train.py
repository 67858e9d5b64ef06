"""Training speed: articles per second, the share of the machine's float32 limit the step reaches,
what each speed lever gives, where a step's time goes, and bucketing on the shipped corpora.

    python bench/train.py                     # everything (about 10 minutes on 2 cores)
    python bench/train.py --skip-levers       # without the lever table (its runs are separate processes)
    python bench/train.py --mixed-precision   # float16 compute (for GPUs)
    python bench/train.py --recipes           # only section 6: minutes from `train` to each recipe's model

1. The machine: CPU model, cores, vector extensions, oneDNN, and its float32 limit (the best
   GFLOP/s of a 2048 × 2048 matmul, measured in this run); where the CPU has bfloat16 units
   (AMX-BF16, AVX512_BF16), its bfloat16 limit too.
2. The default model (the LCSTS vocabulary, CHAR_SIZE 128, HIDDEN_SIZE 512) at the blog's settings:
   batches of 64 articles of exactly MAXLEN = 400 characters (LCSTS text run together) with LCSTS
   titles: articles/s, the step's FLOPs (its matrix products, counted from the model's shapes;
   backward = 2 × forward) and the GFLOP/s it reaches, as a share of the limit.
3. Levers, each run in a process of its own (oneDNN and threads are fixed when TensorFlow
   starts), as shipped first and last so the table shows its own noise: oneDNN off, each LSTM's
   input projections for the whole sequence in one product outside the recurrence, XLA on the
   step, one inter-op thread, recurrent dropout (a setting's cost, not a speed lever), bfloat16
   compute where the CPU has bfloat16 units, and the PyTorch twin (../shared/tools/torch_twin.py,
   the same model, step and shapes) where torch imports (or --torch-python names a Python that has
   it). Then the step's share of each limit and this project's speed against the twin's.
4. Where a step's time goes: the data pipeline, the forward pass, forward + backward of the parts.
5. The shipped LCSTS and CSL training sets as `train` reads them, plain and bucketed by length.
6. With --recipes (and then alone): each recipe as a user runs it, `train CONFIG` then `evaluate
   CONFIG`, one after the other: the minutes to the saved model, ROUGE-L and readability.

Every step is the training step `train` runs (titlegen.devices.make_train_step). A benchmark, not a
test: timings on a shared machine move 10-20% between runs, so compare within one run.
"""
import argparse
import importlib.util
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (first: its oneDNN default is read when TensorFlow starts)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import config  # noqa: E402
from machine import bfloat16_units, describe, matmul_limit  # noqa: E402
from titlegen.data import Vocab, encode_example, padded  # noqa: E402
from titlegen.layers import Interact, MultiHeadAttention  # noqa: E402
from titlegen.model import build_model, model_inputs, named_inputs  # noqa: E402
from titlegen.settings import load  # noqa: E402
from titlegen.sources import Corpus, epoch_batches, read_jsonl  # noqa: E402
from titlegen.devices import make_optimizer, make_train_step  # noqa: E402

SETTINGS = load(config, ROOT)  # config.py's, as `train` reads them

BFLOAT16 = "bfloat16 compute (mixed_bfloat16; float32 weights)"
RECIPES = ("configs/lcsts_budget.py", "configs/csl_budget_one.py", "configs/csl_budget.py")  # the README's minutes
TWIN = "the PyTorch twin (../shared/tools/torch_twin.py, the same shapes)"
LEVERS = {  # name -> (environment, flags of the child run)
    "as shipped": ({}, []),
    "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, []),
    "LSTM input projections outside the recurrence": ({}, ["--project-inputs"]),
    "XLA on the step (jit_compile)": ({}, ["--xla"]),
    "one inter-op thread": ({}, ["--inter-op", "1"]),
    "recurrent dropout 0.25 (RECURRENT_DROPOUT; Keras's LSTM cell then multiplies gate by gate)":
        ({}, ["--recurrent-dropout", "0.25"]),
}


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


def fresh(vocab_size, mixed, xla=False, recurrent_dropout=0.0, bfloat16=False):
    """A fresh default model and its training step; mixed: float16 compute with loss scaling (GPUs);
    bfloat16: bfloat16 compute (Keras's mixed_bfloat16: float32 weights, and the prior, softmax and
    copy mixture in float32 as the model's layers ask), no loss scaling."""
    keras.utils.set_random_seed(config.SEED)
    if mixed or bfloat16:
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "mixed_bfloat16")
    model = build_model(SETTINGS.replace(vocab_size=vocab_size, recurrent_dropout=recurrent_dropout).model)
    keras.mixed_precision.set_global_policy("float32")
    optimizer = make_optimizer(config.LEARNING_RATE, mixed)
    optimizer.build(model.trainable_variables)
    return model, make_train_step(model, optimizer, tf.distribute.get_strategy(), jit_compile=xla)


def step_flops(model, batch, tx, ty):
    """FLOPs of one training step's matrix products, counted from the model's shapes (forward, then
    backward as twice the forward); element-wise work, softmaxes and the optimizer left out."""
    forward = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):  # the encoder, over the article
            for lstm in (layer.forward_layer, layer.backward_layer):
                (d, g), (h, _) = lstm.cell.kernel.shape, lstm.cell.recurrent_kernel.shape
                forward += 2 * batch * tx * (d + h) * g
        elif isinstance(layer, keras.layers.LSTM):  # the decoder, over the title
            (d, g), (h, _) = layer.cell.kernel.shape, layer.cell.recurrent_kernel.shape
            forward += 2 * batch * ty * (d + h) * g
        elif isinstance(layer, keras.layers.Dense):  # the head, at every title step
            d, o = layer.kernel.shape
            forward += 2 * batch * ty * d * o
        elif isinstance(layer, Interact):  # (q W), scores with every article position, a · v
            q, v = layer.kernel.shape
            forward += 2 * batch * ty * q * v + 2 * 2 * batch * ty * tx * v
        elif isinstance(layer, MultiHeadAttention):
            for dense, t in ((layer.q_dense, ty), (layer.k_dense, tx), (layer.v_dense, tx)):
                forward += 2 * batch * t * dense.kernel.shape[0] * dense.kernel.shape[1]
            forward += 2 * 2 * batch * ty * tx * layer.out_dim
    return 3 * forward


def project_inputs():
    """The lever "LSTM input projections outside the recurrence", for this process: each Keras LSTM
    computes x·W for the whole sequence in one product, then runs Keras's own loop adding h·U and
    the bias per step (same weights, same math, z = x·W + h·U + b in Keras's order)."""
    from keras.src.backend.tensorflow.rnn import rnn as keras_rnn
    from keras import ops

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell, shape = self.cell, ops.shape(sequences)
        projected = ops.reshape(ops.matmul(ops.reshape(sequences, (-1, shape[2])), cell.kernel),
                                (shape[0], shape[1], -1))

        def step(xw, states):
            h, c = states
            z = ops.add(ops.add(xw, ops.matmul(h, cell.recurrent_kernel)), cell.bias)
            c, o = cell._compute_carry_and_output_fused(ops.split(z, 4, axis=1), c)
            h = o * cell.activation(c)
            return h, [h, c]

        return keras_rnn(step, projected, list(initial_state), go_backwards=self.go_backwards,
                         mask=mask[0] if isinstance(mask, (list, tuple)) else mask, input_length=sequences.shape[1],
                         zero_output_for_mask=self.zero_output_for_mask, return_all_outputs=self.return_sequences)

    keras.layers.LSTM.inner_loop = inner_loop


def blog_batches(steps):
    """The default vocabulary and `steps` batches at the blog's settings."""
    rows = read_jsonl(os.path.join(ROOT, config.TRAIN_PATH))
    vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
    maxlen, batch_size = config.MAXLEN, config.BATCH_SIZE
    text = "".join(r["content"] for r in rows)
    examples = [encode_example(vocab, rows[i]["title"], text[i * maxlen:(i + 1) * maxlen], maxlen)
                for i in range(batch_size * steps)]
    return rows, text, vocab, [padded(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)]


def lever_child(args):
    """One lever's run (in its own process): the blog-settings step's articles/s, as JSON."""
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.project_inputs:
        project_inputs()
    _, _, vocab, batches = blog_batches(args.steps + 2)
    if args.xla:  # XLA compiles per shape: one title length for every batch
        ty = max(b["title"].shape[1] for b in batches)
        batches = [{**b, "title": np.pad(b["title"], [(0, 0), (0, ty - b["title"].shape[1])])} for b in batches]
    _, train_step = fresh(len(vocab), False, xla=args.xla, recurrent_dropout=args.recurrent_dropout,
                          bfloat16=args.bfloat16)
    print(json.dumps({"articles_per_s": config.BATCH_SIZE / seconds_per_call(train_step, batches)}))


def lever_table(args, twin):
    """Each lever's articles/s against the shipped step, in processes of their own, and the PyTorch
    twin's (`twin`: its command, or None) beside them. Returns {lever: articles/s}."""
    print("\n## levers (each a process of its own; \"as shipped\" first and last shows the noise)\n")
    print("| lever | articles/s | against as shipped (first run) |\n|---|---|---|")
    levers = dict(LEVERS)
    if bfloat16_units():
        levers[BFLOAT16] = ({}, ["--bfloat16"])
    runs = [(name, [sys.executable, os.path.abspath(__file__), "--lever-child", "--steps", str(args.steps), *flags], env)
            for name, (env, flags) in levers.items()]
    runs += [(TWIN, twin, {})] if twin else []
    runs += [("as shipped (again)", runs[0][1], {})]
    rates = {}
    for name, command, env in runs:
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
        if result.returncode:
            print(f"| {name} | failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]} | |")
            continue
        rate = twin_rate(result.stdout) if name == TWIN else json.loads(result.stdout.splitlines()[-1])["articles_per_s"]
        if rate is None:
            print(f"| {name} | failed: no articles/s in its output | |")
            continue
        rates[name] = rate
        print(f"| {name} | {rates[name]:.1f} | {rates[name] / rates.get('as shipped', rates[name]):.2f}× |")
    return rates


def twin_rate(output):
    """The twin's articles/s: the last "N articles/s" it printed, on any line; None if none."""
    found = re.findall(r"(\d+(?:\.\d+)?) articles/s", output)
    return float(found[-1]) if found else None


def twin_command(args, vocab_size, batches):
    """The PyTorch twin (../shared/tools/torch_twin.py) at this run's shapes (its titles all as long as
    the mean padded title here), run by --torch-python or by this Python where torch imports; or None."""
    script = os.path.join(os.path.dirname(ROOT), "shared", "tools", "torch_twin.py")
    python = args.torch_python or (sys.executable if importlib.util.find_spec("torch") else None)
    if not python or not os.path.exists(script):
        return None
    ty = round(np.mean([b["title"].shape[1] - 1 for b in batches]))
    return [python, script, "--vocab", str(vocab_size), "--maxlen", str(config.MAXLEN), "--ylen", str(ty),
            "--batch", str(config.BATCH_SIZE), "--steps", str(args.steps), "--threads", str(os.cpu_count())]


def gradient_time(model, output_layers, inputs, steps):
    """Seconds of forward + backward through the sub-model ending at `output_layers` (its loss: the
    sum of those outputs)."""
    sub = keras.Model(model.input, [model.get_layer(n).output for n in output_layers])

    @tf.function
    def run(x, y):
        with tf.GradientTape() as tape:
            outs = sub(named_inputs(x, y))
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            total = tf.add_n([tf.reduce_sum(tf.cast(o, "float32")) for o in outs])
        grads = tape.gradient(total, sub.trainable_variables)
        return tf.add_n([tf.reduce_sum(tf.convert_to_tensor(g)) for g in grads if g is not None])

    x, y = tf.constant(inputs["article"]), tf.constant(inputs["title_in"])
    return seconds_per_call(lambda _: run(x, y).numpy(), range(steps + 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps at the blog's settings")
    parser.add_argument("--corpus-steps", type=int, default=config.BUCKET_WINDOW,
                        help="timed batches per corpus run (default: one bucketing window, so both see the same articles)")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--threads", type=int, help="TensorFlow intra- and inter-op threads (default: its own)")
    parser.add_argument("--skip-levers", action="store_true", help="leave out the lever table (section 3)")
    parser.add_argument("--lever-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--project-inputs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--xla", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inter-op", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recurrent-dropout", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--bfloat16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--recipes", nargs="*", metavar="CONFIG.py",
                        help="instead of sections 2-5: train and evaluate these recipes (default with no files: "
                        + ", ".join(RECIPES) + ") and print minutes to quality (section 6; it trains, for up to "
                        "an hour each)")
    parser.add_argument("--recipe-flags", default="", help="flags for every recipe's train, e.g. \"--epochs 1\" for a try")
    parser.add_argument("--torch-python", help="a Python with torch to run the PyTorch twin "
                        "(default: this one, where torch imports; else the twin is left out)")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # each fresh model traces its own step: no retracing warnings
    if args.lever_child:
        return lever_child(args)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"machine: {describe()}; TensorFlow {tf.__version__}; "
          + (f"{len(gpus)} GPU(s) ({gpus[0].name})" if gpus else "CPU only")
          + f"; mixed precision: {'on' if args.mixed_precision else 'off'}")
    if args.recipes is not None:  # trainings of their own, each alone on the machine
        return recipe_table(args.recipes or RECIPES, args.recipe_flags.split())
    limit = matmul_limit()
    print(f"float32 limit (2048 × 2048 matmul, best of 5): {limit:.0f} GFLOP/s")
    units = bfloat16_units()
    bf16_limit = matmul_limit(dtype="bfloat16") if units else None
    if units:
        print(f"bfloat16 limit ({units}, the same product): {bf16_limit:.0f} GFLOP/s")

    rows, text, vocab, batches = blog_batches(args.steps + 2)
    maxlen, batch_size = config.MAXLEN, config.BATCH_SIZE
    model, train_step = fresh(len(vocab), args.mixed_precision)
    step_s = seconds_per_call(train_step, batches)
    blog_rate = batch_size / step_s
    flops = np.mean([step_flops(model, batch_size, b["article"].shape[1], b["title"].shape[1] - 1) for b in batches])
    print(f"\n## the blog's settings: maxlen {maxlen}, batch {batch_size}, vocabulary {len(vocab)}, "
          f"{model.count_params():,} parameters\n")
    print("| | s per batch | articles/s | GFLOP per step | GFLOP/s | share of the limit | peak memory |")
    print("|---|---|---|---|---|---|---|")
    print(f"| training step | {step_s:.3f} | {blog_rate:.1f} | {flops / 1e9:.1f} | {flops / step_s / 1e9:.0f} "
          f"| {flops / step_s / 1e9 / limit:.0%} | {peak_mb():.0f} MB |")
    if not args.skip_levers and not args.mixed_precision:
        rates = lever_table(args, twin_command(args, len(vocab), batches))
        shares(flops / batch_size, rates, limit, bf16_limit)
    profile(model, rows, text, vocab, batches, step_s, args.steps)
    corpora(vocab, batches, args)
    print(f"\nblog settings: {blog_rate:.1f} articles/s on {describe()}")


def shares(flops_per_article, rates, limit, bf16_limit):
    """The step's share of the float32 limit, of the bfloat16 limit where bfloat16 ran, and the
    PyTorch twin's ratio, from the lever table's articles/s."""
    shipped = [rates[k] for k in ("as shipped", "as shipped (again)") if k in rates]
    if not shipped:
        return
    rate = float(np.mean(shipped))
    print(f"\nas shipped (mean of its two runs): {rate:.1f} articles/s, "
          f"{rate * flops_per_article / 1e9:.0f} GFLOP/s, {rate * flops_per_article / 1e9 / limit:.0%} of the float32 limit")
    if BFLOAT16 in rates:
        gflops = rates[BFLOAT16] * flops_per_article / 1e9
        print(f"bfloat16 compute: {rates[BFLOAT16]:.1f} articles/s, {gflops:.0f} GFLOP/s, "
              f"{gflops / bf16_limit:.0%} of the bfloat16 limit, {rates[BFLOAT16] / rate:.2f}× float32")
    if TWIN in rates:
        print(f"this project against the PyTorch twin: {rate / rates[TWIN]:.2f}× ({rate:.1f} against {rates[TWIN]:.1f} articles/s)")


def profile(model, rows, text, vocab, blog_batches, step_s, steps):
    """Section 4: where a step's time goes, each part timed as its own graph."""
    maxlen, batch_size = config.MAXLEN, config.BATCH_SIZE
    inputs, _ = model_inputs(blog_batches[0])
    pipeline_s = seconds_per_call(lambda _: padded([encode_example(vocab, rows[i]["title"], text[i * maxlen:(i + 1) * maxlen],
                                                                   maxlen) for i in range(batch_size)]),
                                  range(steps + 2))
    forward = tf.function(lambda x, y: model(named_inputs(x, y), training=False))
    forward_s = seconds_per_call(lambda _: forward(tf.constant(inputs["article"]), tf.constant(inputs["title_in"])).numpy(),
                                 range(steps + 2))
    encoder_s = gradient_time(model, ["encoder_2"], inputs, steps)
    decoder_s = gradient_time(model, ["decoder_2"], inputs, steps)
    attention_s = gradient_time(model, ["interact"], inputs, steps)
    full_s = gradient_time(model, ["probs"], inputs, steps)
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


def corpora(vocab, blog_batches, args):
    """Section 5: the shipped corpora in stored order, plain and bucketed by length."""
    batch_size = SETTINGS.train.batch_size
    print(f"\n## the shipped corpora, the first {args.corpus_steps} batches of {batch_size} in stored order\n")
    print("| corpus | batching | mean padded length | padding | articles/s | peak memory |\n|---|---|---|---|---|---|")
    for name, path in [("LCSTS", "data/lcsts/train.jsonl"), ("CSL", "data/csl/train.jsonl")]:
        corpus = Corpus(os.path.join(ROOT, path))
        rates = {}
        for bucket in (False, True):
            settings = SETTINGS.replace(shuffle=False, bucket=bucket, copy=False)
            batches = list(itertools.islice(epoch_batches(corpus, vocab, settings, 1), args.corpus_steps))
            _, train_step = fresh(len(vocab), args.mixed_precision)
            for batch in blog_batches[:2]:
                train_step(batch)  # warm-up: the step is traced once per batch size
            start = time.perf_counter()
            for batch in batches:
                train_step(batch)
            rates[bucket] = sum(len(b["article"]) for b in batches) / (time.perf_counter() - start)
            x = np.concatenate([b["article"].ravel() for b in batches])
            print(f"| {name} | {'bucketed' if bucket else 'plain'} | {np.mean([b['article'].shape[1] for b in batches]):.0f} "
                  f"| {np.mean(x == 0):.0%} | {rates[bucket]:.1f} | {peak_mb():.0f} MB |")
        print(f"| {name} | bucketed / plain | | | {rates[True] / rates[False]:.2f}× | |")


def recipe_table(recipes, flags):
    """Section 6: each recipe as a user runs it, `train CONFIG` then `evaluate CONFIG` into a
    folder of this bench's own (runs/bench_<name>), each alone on the machine: minutes from the
    command to the saved model, and what `evaluate` gives on the recipe's dev set."""
    print(f"\n## time to quality: `train CONFIG {' '.join(flags)}`, then `evaluate CONFIG`, one after the other\n")
    print("| recipe | minutes to the saved model | ROUGE-L | repeat % | bigram repeat % | new double % | length |\n"
          "|---|---|---|---|---|---|---|")
    cli = os.path.join(ROOT, "seq2seq_title.py")
    for recipe in recipes:
        out = os.path.join(ROOT, "runs", "bench_" + os.path.splitext(os.path.basename(recipe))[0])
        start = time.perf_counter()
        trained = subprocess.run([sys.executable, cli, "train", recipe, "--out", out, "--overwrite", *flags],
                                 capture_output=True, text=True, cwd=ROOT)
        minutes = (time.perf_counter() - start) / 60
        evaluated = trained.returncode or subprocess.run(
            [sys.executable, cli, "evaluate", recipe, "--model", out, "--out", os.path.join(out, "bench_dev.jsonl")],
            capture_output=True, text=True, cwd=ROOT)
        if trained.returncode or evaluated.returncode:
            failed = trained if trained.returncode else evaluated
            print(f"| {recipe} | failed: {(failed.stderr.strip().splitlines() or ['no output'])[-1]} | | | | | |")
            continue
        with open(os.path.join(out, "bench_dev.scores.json"), encoding="utf-8") as f:
            result = json.load(f)
        readable = result["readability"]["model"]
        print(f"| {recipe} | {minutes:.1f} | {result['scores']['model']['rouge-l']:.2f} | {readable['repeat']:.1f} "
              f"| {readable['bigram_repeat']:.1f} | {readable['new_double']:.1f} | {readable['length']:.1f} |")
    print(f"\n(on {describe()}; every recipe's model stays in its runs/bench_* folder)")


if __name__ == "__main__":
    main()
