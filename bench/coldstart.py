"""Cold start: one `generate "文章内容"` from a fresh process, against `python -c "import tensorflow"`.

    python bench/coldstart.py                 # the model in runs/lcsts
    python bench/coldstart.py --model DIR --runs 5

Prints the machine, the wall time of each command (median of --runs, alternating the two so both
see the same machine), their ratio, and where a cold `generate` spends its time, measured inside
one fresh process: imports, building the model, loading the weights (the steps of
titlegen.runfolder.load_trained, timed one by one), the first title (tracing and compiling the
decoder) and a second title as long. A benchmark, not a test.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

from machine import describe  # noqa: E402

ARTICLE = "春夏秋冬山水日月风雨花草"

STAGES = """
import json, os, sys, time
start = time.perf_counter()
sys.path.insert(0, {root!r})
import titlegen, tensorflow
stages = [("import tensorflow (and titlegen)", time.perf_counter())]
import keras
from titlegen.data import Vocab
from titlegen.model import build_model
from titlegen.decoders import Titler
from titlegen.runfolder import WEIGHTS_FILE, RunFolder
stages.append(("import keras and the decoding code", time.perf_counter()))
folder = RunFolder({model!r})
settings = folder.read_record()[0]
vocab = folder.load_vocab()
model = build_model(settings.model)
stages.append(("build the model", time.perf_counter()))
model.load_weights(os.path.join({model!r}, WEIGHTS_FILE))
stages.append(("load the weights", time.perf_counter()))
titler = Titler(model, vocab, settings.decode, xla=False)  # as generate "文章内容" does (the model's own decoding)
titler([{article!r}])
stages.append(("first title (trace and compile the decoder, decode)", time.perf_counter()))
titler([{article!r}[::-1]])
stages.append(("a second title, as long (no compiling expected; what remains is retracing or decoding)", time.perf_counter()))
last = start
for name, at in stages:
    print(f"{{name}}\\t{{at - last:.2f}}")
    last = at
"""


def wall(command):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "runs", "lcsts"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    commands = {"python -c \"import tensorflow\"": [sys.executable, "-c", "import tensorflow"],
                f"generate \"{ARTICLE}\"": [sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "generate", ARTICLE,
                                           "--model", args.model]}
    times = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(wall(command))
    print("\n| command | wall seconds (median) | all runs |\n|---|---|---|")
    for name, seconds in times.items():
        print(f"| `{name}` | {statistics.median(seconds):.2f} | {', '.join(f'{s:.2f}' for s in seconds)} |")
    tf_s, generate_s = (statistics.median(s) for s in times.values())
    print(f"\ngenerate / import tensorflow: {generate_s / tf_s:.2f}× (the cold-start issue's goal: at most 1.5×)")

    result = subprocess.run([sys.executable, "-c", STAGES.format(root=ROOT, model=args.model, article=ARTICLE)],
                            check=True, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    print("\n| stage of a cold generate (one fresh process) | seconds |\n|---|---|")
    for line in result.stdout.splitlines():
        name, seconds = line.split("\t")
        print(f"| {name} | {seconds} |")


if __name__ == "__main__":
    main()
