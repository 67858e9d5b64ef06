"""Training with teacher forcing, streamed from disk, resumable, on one device or several.

The output folder holds `vocab.json` (the vocabulary, its tokenizer and the data that built it),
`config.json` (the settings the model was built and trained with, the per-epoch history and the
best epoch), `model.weights.h5` (the best weights so far), `checkpoint.npz` (weights, optimizer
state, epoch and step: what `train --resume` continues from), `metrics.csv` (one row per epoch)
and `steps.csv` (the loss of every batch). `runfolder.load_trained` rebuilds the model from the first three.

The corpus is never held in memory: one pass checks every record (and builds the vocabulary),
then each epoch reads it again through a bounded shuffle buffer and optional length buckets.
"""
import csv
import importlib.util
import io
import itertools
import json
import os
import signal
import tempfile
import time

import keras
import tensorflow as tf
from tqdm import tqdm

from .checkpoint import load_checkpoint, read_state, save_checkpoint
from .data import TitleError, Vocab, count_batches, file_sha256, write_json
from .metrics import corpus_scores
from .model import build_model, real_targets, summed_title_loss
from .runfolder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, STEPS_FILE, VOCAB_FILE, WEIGHTS_FILE,
                        load_trained, make_titler)  # noqa: F401 (load_trained: also reached through this module)
from .sources import Corpus, epoch_batches, read_jsonl


MONITORS = {"loss": min, "val_loss": min, "val_rouge_l": max}  # what "best" means for each
STRATEGIES = ("auto", "mirrored", "multiworker")
# settings a resumed run may change: they do not alter the model, the data or its order
RESUMABLE = ("epochs", "patience", "checkpoint_steps", "tensorboard")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during training: the checkpoint is saved and the message says so."""


def model_args(settings, vocab):
    return {"vocab_size": len(vocab), "char_size": settings["char_size"],
            "hidden_size": settings["hidden_size"], "mask_encoder": settings["mask_encoder"],
            "version": settings["version"], "copy": settings.get("copy", False), "copy_extra": settings["maxlen"],
            "coverage": settings.get("coverage", 0.0)}


def model_inputs(x, y, *extended):
    """Teacher forcing: the model reads the article and y[:, :-1] (and, copying, the article's
    extended ids) and is scored on y[:, 1:]."""
    return [x, y[:, :-1], *extended], y[:, 1:]


def dev_loss(model, batches):
    """The blog's loss over a whole set: summed cross-entropy of every real target character
    divided by their number (so it does not depend on how the set is batched)."""
    total, count = 0.0, 0.0
    for batch in batches:
        inputs, target = model_inputs(*batch)
        probs = model.predict_on_batch(inputs)
        total += float(summed_title_loss(target, probs))
        count += float(real_targets(target))
    return total / count


# -- devices --------------------------------------------------------------------------------

def make_strategy(name):
    """The tf.distribute strategy: "auto" mirrors over every GPU when there are several and is
    the default (one device) otherwise; "mirrored" mirrors over the local GPUs (or the CPU);
    "multiworker" spans the machines TF_CONFIG names."""
    if name not in STRATEGIES:
        raise TitleError(f"STRATEGY must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run's files (only one worker of several does)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker"
                                             and resolver.task_id == 0)


def make_optimizer(learning_rate, mixed_precision):
    optimizer = keras.optimizers.Adam(learning_rate)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_precision else optimizer


def make_train_step(model, optimizer, strategy, jit_compile=False):
    """batch -> its loss, after one Adam step on it.

    Each replica sums the cross-entropy of its share of the batch and divides by the real targets
    of the whole batch; the optimizer sums the replicas' gradients. So the loss and the update are
    exactly those of one device on the whole batch (a coverage loss, a mean per replica, is
    averaged over the replicas).

    The step is traced once per batch size (the last batch may be smaller), for any article and
    title length, so the graph that runs a batch depends on the batch alone, never on where the
    process started: a resumed run is the uninterrupted one bit for bit. (Traced for the first
    batch's exact shapes and then generally, as tf.function's reduce_retracing does, the two graphs
    rounded differently and a resumed run parted by a float32 ulp that grew. A batch size left
    unknown too costs about 30% of the speed on a CPU; a known one costs nothing: docs/speed.md.)
    jit_compile=True runs the step under XLA (bench/train.py measures it: far slower on a CPU).
    """
    replicas = strategy.num_replicas_in_sync

    def replica_step(inputs, target, count):
        inputs, target = [share(a) for a in inputs], share(target)
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)
            loss = summed_title_loss(target, probs) / count
            if model.losses:  # the coverage loss
                loss += tf.cast(tf.add_n(model.losses), loss.dtype) / replicas
            scaled = optimizer.scale_loss(loss)  # loss scaling under mixed precision; else itself
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    def share(array):  # replica i takes the i-th of `replicas` near-equal slices of the batch, as np.array_split
        if replicas == 1:
            return array
        i = tf.distribute.get_replica_context().replica_id_in_sync_group
        n = tf.shape(array)[0]
        size, extra = n // replicas, n % replicas
        start = i * size + tf.minimum(i, extra)
        return array[start:start + size + tf.cast(i < extra, tf.int32)]

    def distributed_step(inputs, target, count):
        losses = strategy.run(replica_step, args=(inputs, target, count))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    graphs = {}  # batch size -> the step for batches of that many rows and any lengths

    def graph(rows):
        if rows not in graphs:
            ids = tf.TensorSpec([rows, None], tf.int32)
            graphs[rows] = tf.function(distributed_step, jit_compile=jit_compile,
                                       input_signature=[[ids] * len(model.inputs), ids, tf.TensorSpec([], tf.float32)])
        return graphs[rows]

    def train_step(batch):
        inputs, target = model_inputs(*batch)
        return float(graph(len(target))([tf.constant(a, tf.int32) for a in inputs], tf.constant(target, tf.int32),
                                        real_targets(target)))

    return train_step


# -- the run --------------------------------------------------------------------------------

class StopRequest:
    """Ctrl-C or SIGTERM asks the loop to stop after the current batch (a second Ctrl-C stops at once)."""

    def __init__(self):
        self.requested = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread: leave the signals alone
                pass
        return self

    def handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def resume_settings(out_dir, **changes):
    """The settings of the run in `out_dir`, with the few that may change on resuming changed."""
    path = os.path.join(out_dir, CONFIG_FILE)
    if not os.path.exists(path) or not os.path.exists(os.path.join(out_dir, CHECKPOINT_FILE)):
        raise TitleError(f"nothing to resume in {out_dir}: no {CONFIG_FILE} and {CHECKPOINT_FILE}; "
                         "start a run with `train` (without --resume)")
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)["settings"]
    for key, value in changes.items():
        if value is not None:
            if key not in RESUMABLE:
                raise TitleError(f"--resume continues the run with its own settings; {key} cannot change "
                                 f"(only {', '.join(RESUMABLE)} can)")
            settings[key] = value
    return settings


def train(settings, out_dir, overwrite=False, resume=False, log=print):
    """Train the blog's model as `settings` says, writing the run's files to `out_dir`.

    Fresh runs read and check all the data (building the vocabulary) before anything is written,
    so bad data never touches a saved model; an existing model is only replaced with
    overwrite=True. resume=True continues the run in `out_dir` from its checkpoint (`settings`
    then come from `resume_settings`). Returns (model, vocab, config) as they stand at the end.
    """
    settings = {**DEFAULTS, **settings}
    strategy = make_strategy(settings["strategy"])
    if not is_chief(strategy):  # other workers write their copies where nobody reads them
        out_dir = tempfile.mkdtemp(prefix="seq2seq_title_worker_")
    paths = {name: os.path.join(out_dir, name) for name in
             (VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE)}
    monitor = settings["monitor"]
    if monitor not in MONITORS:
        raise TitleError(f"MONITOR must be one of {', '.join(MONITORS)}, got {monitor!r}")
    if monitor.startswith("val_") and not settings.get("dev_path"):
        raise TitleError(f"MONITOR is {monitor!r} but no dev set is given; set DEV_PATH or MONITOR = 'loss'")
    if monitor == "val_rouge_l" and not settings["val_rouge_samples"]:
        raise TitleError("MONITOR is 'val_rouge_l' but VAL_ROUGE_SAMPLES is 0; title some dev articles or "
                         "monitor 'val_loss'")
    if not resume and not overwrite and any(os.path.exists(paths[n]) for n in (WEIGHTS_FILE, CHECKPOINT_FILE)):
        raise TitleError(f"{out_dir} already holds a trained model or a run; pass --resume to continue it, "
                         "--overwrite to replace it, or --out DIR to train into another folder")
    if settings["tensorboard"] and importlib.util.find_spec("tensorboard") is None:  # tf.summary writes through it
        raise TitleError("TENSORBOARD = True needs the tensorboard package: pip install tensorboard")
    state = read_state(paths[CHECKPOINT_FILE]) if resume else None
    if state and state["done"] and settings["epochs"] < state["epoch"]:
        raise TitleError(f"the run in {out_dir} finished after epoch {state['epoch'] - 1} "
                         f"({state['done']}); pass --epochs N (more than it ran) to train further")

    fields = (settings["title_field"], settings["content_field"])
    corpus = Corpus(settings["train_path"], settings["data_format"], fields, settings["on_bad_record"])
    dev = (Corpus(settings["dev_path"], settings["data_format"], fields, settings["on_bad_record"])
           if settings.get("dev_path") else None)
    samples = read_samples(settings)

    keras.utils.set_random_seed(settings["seed"])
    if resume:
        vocab = Vocab.load(paths[VOCAB_FILE])
        n_train = corpus.count("checking the training data")
        if n_train != state["articles"]:
            raise TitleError(f"{settings['train_path']} now holds {n_train} usable articles, the run started with "
                             f"{state['articles']}; resume with the data it started with, or start again")
    else:
        counted = [0]

        def texts():  # the vocabulary is counted in the checking pass: one read of the corpus
            for record in corpus.scan("reading the training data, counting tokens"):
                counted[0] += 1
                yield record.content
                yield record.title

        vocab = Vocab.build(texts(), settings["min_count"], tokenizer=settings["tokenizer"])
        n_train = counted[0]
        if not n_train:
            raise TitleError(f"{settings['train_path']}: no usable articles")
        vocab.source = {"path": settings["train_path"], "format": corpus.format, "articles": n_train,
                        "sha256": file_sha256(settings["train_path"]) if os.path.isfile(settings["train_path"]) else None}
    rouge_rows, n_dev = [], 0
    if dev:
        for record in dev.scan("reading the dev data"):
            n_dev += 1
            if len(rouge_rows) < max(settings["val_rouge_samples"], 1):
                rouge_rows.append(record)
        if not n_dev:
            raise TitleError(f"{settings['dev_path']}: no usable articles")
        samples.append(("dev[0] " + rouge_rows[0].title, rouge_rows[0].content))
        rouge_rows = rouge_rows[:settings["val_rouge_samples"]]

    if settings["mixed_precision"]:
        if not tf.config.list_logical_devices("GPU"):
            log("MIXED_PRECISION without a GPU: float16 runs, but slowly, on a CPU")
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = build_model(**model_args(settings, vocab))
            optimizer = make_optimizer(settings["learning_rate"], settings["mixed_precision"])
            optimizer.build(model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the model keeps its own

    batch_size = settings["batch_size"]
    n_batches = count_batches(n_train, batch_size)
    steps = min(n_batches, settings["steps_per_epoch"] or n_batches)
    if resume:
        state = load_checkpoint(paths[CHECKPOINT_FILE], model, optimizer)
        if state["steps_per_epoch"] != steps:
            raise TitleError(f"the run had {state['steps_per_epoch']} batches per epoch, these settings give "
                             f"{steps}; resume with the settings it started with")
        config = {"settings": settings, "model": model_args(settings, vocab), "vocab_fingerprint": vocab.fingerprint,
                  "best": state["best"], "history": state["history"], "skipped": state.get("skipped")}
        state["done"] = None
        log(f"resuming {out_dir} at epoch {state['epoch']}, step {state['step']} of {steps}")
    else:
        os.makedirs(out_dir, exist_ok=True)
        for name in (WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE):  # a replaced run's files
            if os.path.exists(paths[name]):
                os.remove(paths[name])
        vocab.save(paths[VOCAB_FILE])
        skipped = {"train": corpus.skipped, "dev": dev.skipped if dev else 0}
        config = {"settings": settings, "model": model_args(settings, vocab), "vocab_fingerprint": vocab.fingerprint,
                  "best": None, "history": [], "skipped": skipped}
        write_json(paths[CONFIG_FILE], config)
        state = {"epoch": 1, "step": 0, "loss_sum": 0.0, "history": [], "best": None, "articles": n_train,
                 "steps_per_epoch": steps, "skipped": skipped, "done": None}
        save_checkpoint(paths[CHECKPOINT_FILE], model, optimizer, state)
    log(f"vocabulary: {len(vocab)} ids ({len(vocab.chars)} {'characters' if vocab.tokenizer == 'char' else 'words'} "
        f"seen >= {vocab.min_count} times); {n_train} training and {n_dev} dev articles; "
        f"{model.count_params():,} parameters; {steps} batches per epoch"
        + (f" on {strategy.num_replicas_in_sync} devices" if strategy.num_replicas_in_sync > 1 else ""))

    titler = make_titler(model, vocab, settings)
    train_step = make_train_step(model, optimizer, strategy)
    summaries = tf.summary.create_file_writer(os.path.join(out_dir, "tensorboard")) if settings["tensorboard"] else None
    better = MONITORS[monitor]
    history = state["history"]
    best_epoch = state["best"]["epoch"] if state["best"] else 0
    def checkpoint(**position):  # where the run stands, with the weights and optimizer state
        state.update(position)
        save_checkpoint(paths[CHECKPOINT_FILE], model, optimizer, state)

    steps_log = open_steps(paths[STEPS_FILE], (state["epoch"] - 1) * steps + state["step"])  # every batch, a line
    with steps_log, StopRequest() as stop:
        for epoch in range(state["epoch"], settings["epochs"] + 1):
            step, loss_sum = state["step"], state["loss_sum"]
            batches = itertools.islice(epoch_batches(corpus, vocab, settings, epoch), step, steps)  # skip done ones
            start = time.perf_counter()
            with tqdm(batches, total=steps, initial=step, desc=f"epoch {epoch}/{settings['epochs']}",
                      unit="batch") as bar:
                for batch in bar:
                    loss = train_step(batch)
                    step, loss_sum = step + 1, loss_sum + loss
                    steps_log.write(f"{epoch},{step},{loss:.9g}\n")
                    bar.set_postfix(loss=f"{loss_sum / step:.4f}")
                    if summaries:
                        with summaries.as_default():
                            tf.summary.scalar("batch_loss", loss, step=(epoch - 1) * steps + step)
                    if stop.requested or (settings["checkpoint_steps"] and step % settings["checkpoint_steps"] == 0
                                          and step < steps):
                        checkpoint(epoch=epoch, step=step, loss_sum=loss_sum)
                        if stop.requested:
                            bar.close()
                            raise Interrupted(f"interrupted at epoch {epoch}, step {step}: checkpoint saved in "
                                              f"{paths[CHECKPOINT_FILE]}; `train --resume` continues from there")
            seconds = time.perf_counter() - start
            logs = {"epoch": epoch, "loss": loss_sum / max(step, 1), "seconds": round(seconds, 1),
                    "articles_per_s": round((step - state["step"]) * batch_size / max(seconds, 1e-9), 1)}
            if dev:
                logs["val_loss"] = dev_loss(model, epoch_batches(dev, vocab, {**settings, "shuffle": False,
                                                                               "bucket": False}, 0))
            if rouge_rows:  # ROUGE-L of the titles the model writes for a sample of the dev set
                titles = titler([r.content for r in rouge_rows])
                logs["val_rouge_l"] = corpus_scores(titles, [r.title for r in rouge_rows])["rouge-l"]
            log(f"epoch {epoch}: " + "  ".join(f"{k} {logs[k]:.4f}" for k in MONITORS if k in logs)
                + f"  ({seconds:.0f} s training, {logs['articles_per_s']:.0f} articles/s)")
            for (name, _), title in zip(samples, titler([c for _, c in samples])):  # watch the titles improve
                log(f"  [{name}] {title}")
            history.append(logs)
            if state["best"] is None or better(logs[monitor], state["best"]["value"]) == logs[monitor]:
                best_epoch = epoch  # ties count as better, as the blog's <=
                state["best"] = {"epoch": epoch, "monitor": monitor, "value": logs[monitor]}
                save_weights(model, paths[WEIGHTS_FILE])
                log(f"  saved {paths[WEIGHTS_FILE]} ({monitor} {logs[monitor]:.4f})")
            if summaries:
                with summaries.as_default():
                    for key in ("loss", "val_loss", "val_rouge_l"):
                        if key in logs:
                            tf.summary.scalar(key, logs[key], step=epoch)
                summaries.flush()
            config.update(best=state["best"], history=history)
            write_json(paths[CONFIG_FILE], config)
            write_metrics(paths[METRICS_FILE], history)
            if settings["patience"] and epoch - best_epoch >= settings["patience"]:
                log(f"  stopping: no better {monitor} for {settings['patience']} epochs")
                state["done"] = f"no better {monitor} for {settings['patience']} epochs"
            elif epoch == settings["epochs"]:
                state["done"] = f"{epoch} epochs"
            checkpoint(epoch=epoch + 1, step=0, loss_sum=0.0)
            if state["done"]:
                break
    skipped = config.get("skipped") or {}
    if any(skipped.values()):
        log(f"skipped {skipped['train']} bad training and {skipped['dev']} bad dev records (listed above, by file "
            "and line)")
    return model, vocab, config


DEFAULTS = {  # settings older runs and callers may lack: the behaviour before they existed
    "data_format": "auto", "title_field": "title", "content_field": "content", "on_bad_record": "stop",
    "tokenizer": "char", "shuffle_buffer": 10000, "bucket": False, "bucket_window": 100, "checkpoint_steps": 0,
    "strategy": "auto", "mixed_precision": False, "tensorboard": False,
}


def open_steps(path, keep):
    """steps.csv, written line by line (a crash loses no finished batch), holding its header and
    the first `keep` batches' lines: a resumed run drops what the interrupted one wrote after its
    checkpoint."""
    lines = ["epoch,step,loss\n"]
    if keep:
        with open(path, encoding="utf-8") as f:
            lines = list(itertools.islice(f, keep + 1))
    f = open(path, "w", encoding="utf-8", buffering=1)
    f.writelines(lines)
    return f


def write_metrics(path, history):
    """One CSV row per epoch: its number, losses, dev ROUGE-L, seconds and speed."""
    columns = [c for c in ("epoch", "loss", "val_loss", "val_rouge_l", "seconds", "articles_per_s")
               if any(c in h for h in history)]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(out.getvalue())
    os.replace(tmp, path)


def save_weights(model, path):
    tmp = path[:-len(".weights.h5")] + ".tmp.weights.h5"  # Keras insists on the suffix
    model.save_weights(tmp)
    os.replace(tmp, path)


def read_samples(settings):
    """The articles whose titles are printed at every epoch end: (name, content) pairs."""
    if not settings.get("samples_path"):
        return []
    rows = read_jsonl(settings["samples_path"], fields=("name", "content"))
    by_name = {r["name"]: r["content"] for r in rows}
    missing = [n for n in settings["sample_names"] if n not in by_name]
    if missing:
        raise TitleError(f"{settings['samples_path']}: no sample named {', '.join(missing)}")
    return [(n, by_name[n]) for n in settings["sample_names"]]
