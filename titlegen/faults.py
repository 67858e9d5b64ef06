"""Crash points, for the tests that kill training at chosen moments (tests/test_kill.py).

`SEQ2SEQ_TITLE_KILL_AT="moment:n"` in the environment makes the process kill itself with SIGKILL,
as `kill -9` would, the n-th time it passes `kill_point(moment)`. The moments: "scan" (a record of
the training data's checking pass), "step" (a training batch done and logged), "dev" (a dev batch
scored), "epoch_end" (the epoch's files written, its checkpoint not yet), "checkpoint_write" (half
of a checkpoint's bytes written). Unset, as it always is outside those tests, a point costs one
comparison.
"""
import os
import signal

VARIABLE = "SEQ2SEQ_TITLE_KILL_AT"
_TARGET = os.environ.get(VARIABLE, "").partition(":")  # read once: the points sit in the data reader's loop
_passed = {}


def kill_point(moment):
    name, _, n = _TARGET
    if name == moment:
        _passed[moment] = _passed.get(moment, 0) + 1
        if _passed[moment] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)
