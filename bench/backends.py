"""The blog's training step on every Keras backend, beside the PyTorch twin, in one run: articles/s.

    python bench/backends.py                                  # TensorFlow, JAX, PyTorch (where it imports), the twin
    python bench/backends.py --backends tensorflow,jax --rounds 3
    python bench/backends.py --backends jax,torch --batches 64,256,1024 --unmasked --mixed   # a GPU (bench/gpu.sh)

Each measurement is a process of its own (Keras reads KERAS_BACKEND once): the default model (the
LCSTS vocabulary, CHAR_SIZE 128, HIDDEN_SIZE 512) trained as `train` trains it on that backend
(titlegen.devices: TensorFlow's own step, Keras's trainer on JAX and PyTorch) on batches at the
blog's settings, articles of exactly MAXLEN = 400 characters and titles of 32, after warm-up steps
(tracing and compiling). Rounds alternate the backends, and the table gives each one's median and
its ratio to TensorFlow's (or the first backend's). --unmasked measures MASK_ENCODER = False beside
(the encoder's LSTMs then may use cuDNN on a GPU), --mixed float16 compute, --batches several sizes
(a size that does not fit is reported as such). A benchmark, not a test: name the machine beside its
figures; timings on a shared machine move 10-20% between runs.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWIN = os.path.join(ROOT, "..", "shared", "tools", "torch_twin.py")

STEP = """
import json, os, sys, time
sys.path[:0] = [{root!r}, {bench!r}]
import titlegen, keras, numpy as np
import config
from titlegen.data import Vocab
from titlegen.devices import make_devices, make_optimizer
from titlegen.model import build_model
from titlegen.settings import load
from titlegen.sources import read_jsonl
batch, steps, warmup, masked, mixed = {batch}, {steps}, {warmup}, {masked}, {mixed}
rows = read_jsonl(os.path.join({root!r}, config.TRAIN_PATH))
vocab = Vocab.build((t for r in rows for t in (r["content"], r["title"])), config.MIN_COUNT)
settings = load(config, {root!r}).replace(vocab_size=len(vocab), mask_encoder=masked)
keras.utils.set_random_seed(config.SEED)
if mixed:
    keras.mixed_precision.set_global_policy("mixed_float16")
model = build_model(settings.model)
keras.mixed_precision.set_global_policy("float32")
optimizer = make_optimizer(config.LEARNING_RATE, mixed)
optimizer.build(model.trainable_variables)
step = make_devices("auto").train_step(model, optimizer, settings.replace(batch_size=batch).train)
text = "".join(r["content"] for r in rows)
rng = np.random.default_rng(0)
def make():
    x = np.array([vocab.encode(text[i:i + 400], 400) for i in rng.integers(0, len(text) - 400, batch)], "int32")
    y = np.array([[2] + list(rng.integers(4, len(vocab), 30)) + [3] for _ in range(batch)], "int32")
    return {{"article": x, "title": y}}
data = [make() for _ in range(4)]
times = []
for i in range(warmup + steps):
    start = time.perf_counter()
    loss = step(data[i % 4])
    if i >= warmup:
        times.append(time.perf_counter() - start)
print(json.dumps({{"backend": keras.backend.backend(), "articles_per_s": batch / float(np.median(times)),
                  "loss": loss, "devices": [str(d) for d in keras.distribution.list_devices()]
                  if keras.backend.backend() == "jax" else []}}))
"""


def measure(backend, batch, steps, warmup, masked, mixed):
    """articles/s of one process on `backend`, or the reason it gave none."""
    script = STEP.format(root=ROOT, bench=os.path.dirname(os.path.abspath(__file__)), batch=batch, steps=steps,
                         warmup=warmup, masked=masked, mixed=mixed)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if result.returncode:
        last = [line for line in result.stderr.splitlines() if line.strip()][-1:]
        return None, "out of memory" if "memory" in result.stderr.lower() else (last[0][:80] if last else "failed")
    return json.loads(result.stdout.splitlines()[-1])["articles_per_s"], ""


def twin(batch, steps, device, mixed, vocab):
    """The PyTorch twin's articles/s at the same shapes, or None."""
    if not (os.path.exists(TWIN) and importlib.util.find_spec("torch")):
        return None
    command = [sys.executable, TWIN, "--vocab", str(vocab), "--batch", str(batch), "--steps", str(steps),
               "--device", device, *(["--bf16"] if mixed else [])]
    result = subprocess.run(command, capture_output=True, text=True)
    found = [float(w) for line in result.stdout.splitlines() for w, u in zip(line.split(), line.split()[1:])
             if u.startswith("articles/s")]
    return found[-1] if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    have_torch = importlib.util.find_spec("torch") is not None
    parser.add_argument("--backends", default="tensorflow,jax" + (",torch" if have_torch else ""))
    parser.add_argument("--batches", default="64", help="batch sizes, comma-separated (the blog's: 64)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--unmasked", action="store_true", help="also MASK_ENCODER = False")
    parser.add_argument("--mixed", action="store_true", help="also float16 compute (mixed precision)")
    parser.add_argument("--device", default="cpu", help="the twin's device (cuda on a GPU)")
    parser.add_argument("--vocab", type=int, default=1967, help="the twin's vocabulary (LCSTS at MIN_COUNT 32)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import describe

    backends = args.backends.split(",")
    print(f"machine: {describe()}\n")
    print("| batch | encoder | compute | " + " | ".join(backends) + " | the PyTorch twin | ratios to "
          f"{backends[0]} |")
    print("|---|---|---|" + "---|" * (len(backends) + 2))
    for batch in map(int, args.batches.split(",")):
        for masked in ([True, False] if args.unmasked else [True]):
            for mixed in ([False, True] if args.mixed else [False]):
                rates, notes = {b: [] for b in backends}, {}
                for r in range(args.rounds):
                    for backend in (backends if r % 2 == 0 else backends[::-1]):
                        rate, note = measure(backend, batch, args.steps, args.warmup, masked, mixed)
                        if rate is None:
                            notes[backend] = note
                        else:
                            rates[backend].append(rate)
                medians = {b: statistics.median(v) for b, v in rates.items() if v}
                anchor = medians.get(backends[0])
                cells = [f"{medians[b]:.0f}" if b in medians else notes.get(b, "") for b in backends]
                peer = twin(batch, args.steps, args.device, mixed, args.vocab)
                ratios = ", ".join(f"{b} {medians[b] / anchor:.2f}×" for b in backends[1:] if b in medians and anchor)
                ratios += f", twin {peer / anchor:.2f}×" if peer and anchor else ""
                twin_cell = f"{peer:.0f}" if peer else "—"
                print(f"| {batch} | {'masked' if masked else 'unmasked'} | {'float16' if mixed else 'float32'} | "
                      + " | ".join(cells) + f" | {twin_cell} | {ratios} |", flush=True)
    print("\narticles/s: medians of the rounds (each round one process per backend, alternating)")


if __name__ == "__main__":
    main()
