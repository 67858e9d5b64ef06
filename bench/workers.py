"""Training speed of two worker processes (MultiWorkerMirroredStrategy over TF_CONFIG, on this
machine) against one process, at the default settings on the shipped LCSTS corpus.

    python bench/workers.py                # 30 batches of 64 each way (about 4 minutes on 2 cores)
    python bench/workers.py --steps 60

Each run is `python seq2seq_title.py train --steps-per-epoch N --epochs 1 --no-dev` into a
temporary folder, as a user would type it; its articles/s is the epoch's, from metrics.csv (the
first batches trace the step, so longer runs give steadier figures). On one machine the two
workers share its cores and talk over localhost: the point of two workers here is correctness
(tests/test_workers.py), not speed. A benchmark, not a test: timings move 10-20% between runs.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import titlegen  # noqa: E402,F401  (its oneDNN default, which the training processes it starts also set)
from machine import describe  # noqa: E402
from titlegen.cluster import local_tf_configs  # noqa: E402


def train(out, steps, strategy, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "seq2seq_title.py"), "train", "--no-dev", "--epochs",
                             "1", "--steps-per-epoch", str(steps), "--out", out, "--strategy", strategy],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def rate(out):
    with open(os.path.join(out, "metrics.csv"), encoding="utf-8") as f:
        return float(next(csv.DictReader(f))["articles_per_s"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="batches of 64 in each run")
    args = parser.parse_args()
    print(f"machine: {describe()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        one = os.path.join(tmp, "one")
        process = train(one, args.steps, "auto")
        if process.wait():
            sys.exit(process.stderr.read()[-2000:])
        two = os.path.join(tmp, "two")
        workers = [train(two, args.steps, "multiworker", {"TF_CONFIG": tf_config}) for tf_config in local_tf_configs(2)]
        for process in workers:
            if process.wait():
                sys.exit(process.stderr.read()[-2000:])
        single, double = rate(one), rate(two)
    print(f"| training ({args.steps} batches of 64, LCSTS, default model) | articles/s |")
    print("|---|---|")
    print(f"| one process | {single:.1f} |")
    print(f"| two worker processes (MultiWorkerMirroredStrategy, localhost) | {double:.1f} |")
    print(f"| two / one | {double / single:.2f}× |")


if __name__ == "__main__":
    main()
