"""Training an ensemble (MEMBERS > 1, beyond the blog): its members are ordinary runs, each with its
own seed (SEED, SEED + 1, ...) and folder (OUT/member_1, ...), all trained at once in processes of
their own, each on its share of the cores (`shares`), as `train --seed S --out OUT/member_i` would
train there. A member's output goes to its folder's train.log, and its lines are shown here,
prefixed with its name, as they come.

Ctrl-C (or SIGTERM) stops every member at its next batch with its checkpoint saved; `train
--resume --out OUT` continues the members not finished and leaves the finished ones as they are.
This module imports no TensorFlow: only the members' processes do.
"""
import multiprocessing
import os
import re
import signal
import sys
from multiprocessing.connection import wait

from .errors import TitleError
from .runfolder import CHECKPOINT_FILE, LOG_FILE, RunFolder

POLL_SECONDS = 2  # how often the members' new output lines are shown
TENSORFLOW_LOG = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl")  # kept in the log only


def shares(n, cores):
    """Where each of n members runs: (its cores, its TensorFlow threads). Up to one member per
    core: the cores split, in order, into n groups of near-equal size, the threads those of the
    group (None: TensorFlow sizes its pools to the cores it may use). More members than cores:
    every member on every core with one thread, which computes what one core alone would, bit for
    bit, while the system shares the cores out."""
    if n > len(cores):
        return [(cores, 1)] * n
    return [(cores[len(cores) * i // n:len(cores) * (i + 1) // n], None) for i in range(n)]


def machine_cores():
    """The CPU cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def plan(settings, folder, resume, changes):
    """(member name, settings, mode) for each member to train: its settings the ensemble's, with its
    own seed and folder, as one model; mode "start" or "resume" (resuming, finished members are left
    out unless --epochs or --time-limit asks for more)."""
    jobs = []
    for i, member in enumerate(folder.members(settings.train.members)):
        name = os.path.basename(member.path)
        own = settings.replace(members=1, seed=settings.train.seed + i, output_dir=member.path)
        if not resume or not os.path.exists(member.file(CHECKPOINT_FILE)):  # a member never started starts
            jobs.append((name, own, "start"))
        elif not member.read_state().done or changes.get("epochs") or changes.get("time_limit"):
            jobs.append((name, own, "resume"))
    return jobs


def train_members(settings, out_dir, overwrite=False, resume=False, changes=None, log=print):
    """Train the ensemble `settings` describe into out_dir (resume: continue it, with `changes` as
    `train --resume` takes them). Returns the folder's config.json record."""
    if settings.train.strategy == "multiworker":
        raise TitleError("MEMBERS > 1 trains its members side by side on this machine; it does not combine with "
                         "STRATEGY = 'multiworker' (train the members one by one with --seed instead)")
    folder, changes = RunFolder(out_dir), changes or {}
    folder.check_free(overwrite, resume)
    jobs = plan(settings, folder, resume, changes)
    if not resume:
        folder.start()
        folder.write_ensemble(settings)
    failed = run_side_by_side(jobs, overwrite, changes, log)
    if failed:
        raise TitleError("; ".join(f"{name} stopped: {why}" for name, why in failed)
                         + f"; the others' checkpoints are in {out_dir}, `train --resume --out {out_dir}` continues")
    members = folder.members(settings.train.members)
    records = [m.read_record() for m in members]  # (settings, record) of each
    folder.write_ensemble(settings.replace(vocab_size=records[0][0].model.vocab_size), members[0].load_vocab())
    for m, (_, record) in zip(members, records):
        best = record["best"]
        log(f"{os.path.basename(m.path)}: best epoch {best['epoch']} ({best['monitor']} {best['value']:.4f})")
    return folder.read_record()[1]


def run_side_by_side(jobs, overwrite, changes, log):
    """Run the members' processes, all at once, each on its share of the cores; show their output.
    Returns [(member, why)] for those that failed."""
    context, running, failed = multiprocessing.get_context("spawn"), {}, []
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for (name, settings, mode), (cores, threads) in zip(jobs, shares(len(jobs), machine_cores())):
            path = settings.train.output_dir
            process = context.Process(target=train_member, name=name,
                                      args=(settings, path, mode, overwrite, changes, cores, threads))
            tail = Tail(os.path.join(path, LOG_FILE))
            process.start()
            running[process.sentinel] = (process, name, tail)
            log(f"{name}: seed {settings.train.seed}, {'resumed' if mode == 'resume' else 'started'} on "
                f"CPU core{'s' * (len(cores) > 1)} {', '.join(map(str, cores))}{' with one thread' * bool(threads)}; "
                f"its output is in {tail.path}")
        while running:
            done = wait(list(running), timeout=POLL_SECONDS)
            for process, name, tail in running.values():
                for line in tail.lines():
                    log(f"[{name}] {line}")
            for sentinel in done:
                process, name, tail = running.pop(sentinel)
                process.join()
                for line in tail.lines(final=True):
                    log(f"[{name}] {line}")
                if process.exitcode:
                    failed.append((name, tail.last_error or f"exit status {process.exitcode}"))
    except KeyboardInterrupt:
        stop(running)
        raise KeyboardInterrupt("interrupted: each member's checkpoint is saved in its folder; `train --resume "
                                "--out OUT` continues the ensemble") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return failed


def stop(running):
    """Ask every running member to stop at its next batch (its checkpoint saved), and wait for it."""
    for process, *_ in running.values():
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)  # SIGTERM, never a second SIGINT: that stops at once
    for process, *_ in running.values():
        process.join()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def train_member(settings, path, mode, overwrite, changes, cores, threads=None):
    """A member's process: on its cores with its threads, output to its train.log, then an ordinary
    `train`."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)  # before TensorFlow starts: its thread pools fit the cores
    elif threads is None:
        threads = len(cores)  # no pinning on this system: the pools are sized by hand
    if threads:  # read when TensorFlow starts
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    os.makedirs(path, exist_ok=True)
    out = os.open(os.path.join(path, LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.stdout.reconfigure(line_buffering=True)
    os.environ["TQDM_DISABLE"] = "1"  # no progress bars in the log; the epochs' lines remain
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # members sharing a GPU each take what they use
    from .train import resume_settings, train

    try:
        if mode == "resume":
            train(resume_settings(path, **changes), path, resume=True)
        else:
            train(settings, path, overwrite=overwrite)
    except TitleError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        print(str(e) or "interrupted", file=sys.stderr)
        sys.exit(130)


class Tail:
    """The complete lines added to a file since this was made."""

    def __init__(self, path):
        self.path, self.partial, self.last_error = path, b"", None
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0

    def lines(self, final=False):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        if final and self.partial:
            complete, self.partial = complete + [self.partial], b""
        lines = [raw.decode("utf-8", "replace").rstrip("\r") for raw in complete]
        self.last_error = next((l[len("error: "):] for l in reversed(lines) if l.startswith("error: ")),
                               self.last_error)
        return [line for line in lines if line.strip() and not TENSORFLOW_LOG.match(line)]
