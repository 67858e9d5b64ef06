"""Training with teacher forcing, streamed from disk, resumable, on one device or several.

`train(settings, out_dir)` runs in named stages: check the request, read the data (one checking
pass builds the vocabulary; each epoch reads the corpus again, never holding it in memory), build
the model and optimizer, start or resume the run's files (`runfolder.RunFolder`), then for every
epoch train on its batches and end it (dev loss, dev ROUGE-L, sample titles, the best weights).
"""
import importlib.util
import itertools
import os
import signal
import time
from typing import NamedTuple

import keras
from tqdm import tqdm

from .data import TitleError, Vocab, count_batches
from .files import file_sha256
from .faults import kill_point
from .decoders import IncrementalDecoder, Titler
from .metrics import VAL_READABILITY, corpus_scores, lcs_f, readability
from . import backend
from .devices import TENSORBOARD_TF_ONLY, make_devices, make_optimizer
from .model import build_model, real_targets, summed_title_loss
from .runfolder import CHECKPOINT_FILE, CONFIG_FILE, WEIGHTS_FILE, RunFolder
from .runstate import RunState
from .settings import MONITORS, resumed
from .pretrain import PseudoCorpus
from .sources import Corpus, epoch_batches, read_jsonl

BETTER = {"loss": min, "val_loss": min, "val_rouge_l": max, "val_lcs_f": max}  # what "best" means for each monitor


def dev_loss(predict, batches):
    """The blog's loss over a whole set: summed cross-entropy of every real target character
    divided by their number (so it does not depend on how the set is batched). predict: batch ->
    (probabilities, target) (`Devices.predict`)."""
    total, count = 0.0, 0.0
    for batch in batches:
        probs, target = predict(batch)
        total += float(summed_title_loss(target, probs))
        count += float(real_targets(target))
        kill_point("dev")
    return total / count


def inner(optimizer):
    """Adam itself, inside the loss-scaling wrapper of mixed precision."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class AveragedWeights:
    """With EMA: the averaged weights stand in the model inside the `with` (to evaluate and save
    them), and training's own weights come back after it. Without EMA: nothing changes."""

    def __init__(self, model, optimizer):
        adam = inner(optimizer)
        self.variables = model.trainable_variables
        self.averages = adam._model_variables_moving_average if adam.use_ema else None

    def __enter__(self):
        if self.averages:
            self.saved = [v.numpy() for v in self.variables]
            for v, average in zip(self.variables, self.averages, strict=True):
                v.assign(average.numpy())  # a copy: on JAX the weight must not share the average's buffer

    def __exit__(self, *exc):
        if self.averages:
            for v, value in zip(self.variables, self.saved):
                v.assign(value)


# -- the run, stage by stage ----------------------------------------------------------------

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
    """The settings of the run in `out_dir`, with the few that may change on resuming changed
    (settings.RESUMABLE; anything else is an error)."""
    folder = RunFolder(out_dir)
    if not all(os.path.exists(folder.file(n)) for n in (CONFIG_FILE, CHECKPOINT_FILE)):
        raise TitleError(f"nothing to resume in {out_dir}: no {CONFIG_FILE} and {CHECKPOINT_FILE}; "
                         "start a run with `train` (without --resume)")
    return resumed(folder.read_record()[0], changes)


class Inputs(NamedTuple):
    """What a run reads before it trains: the corpora, the vocabulary, the articles watched."""
    corpus: Corpus
    dev: Corpus | None
    vocab: Vocab
    n_train: int
    n_dev: int
    rouge_rows: list  # dev records titled each epoch for val_rouge_l
    samples: list  # (name, content) titled at every epoch end
    pretrain: PseudoCorpus | None  # with PRETRAIN_EPOCHS: the pretraining epochs' pseudo pairs
    n_pretrain: int


def check_request(settings, folder, overwrite, resume):
    """Every error that needs no data read, before anything is read or written. Returns the
    checkpoint's state when resuming."""
    monitor, train = settings.train.monitor, settings.train
    if monitor.startswith("val_") and not settings.data.dev_path:
        raise TitleError(f"MONITOR is {monitor!r} but no dev set is given; set DEV_PATH or MONITOR = 'loss'")
    if train.lr_decay_epochs and train.lr_patience:
        raise TitleError("LR_DECAY_EPOCHS and LR_PATIENCE both set the learning rate; set one of them to None")
    if monitor in ("val_rouge_l", "val_lcs_f") and not train.val_rouge_samples:
        raise TitleError(f"MONITOR is {monitor!r} but VAL_ROUGE_SAMPLES is 0; title some dev articles or "
                         "monitor 'val_loss'")
    check_sequence_stage(train, settings.model.coverage)
    folder.check_free(overwrite, resume)
    if train.tensorboard and backend.NAME != "tensorflow":
        raise TitleError(TENSORBOARD_TF_ONLY)
    if train.tensorboard and importlib.util.find_spec("tensorboard") is None:  # tf.summary writes through it
        raise TitleError("TENSORBOARD = True needs the tensorboard package: pip install tensorboard")
    state = folder.read_state() if resume else None
    if state and state.done and state.stage == "sequence" and last_epoch(train, state) < state.epoch:
        raise TitleError(f"the run in {folder.path} finished its sequence-level stage after epoch "
                         f"{state.epoch - 1} ({state.done}); pass --seq-epochs N (more than it ran) to train "
                         "further")
    stage_pending = train.seq_epochs and state and state.stage != "sequence"
    if state and state.done and train.pretrain_epochs + train.epochs < state.epoch and not stage_pending:
        raise TitleError(f"the run in {folder.path} finished after epoch {state.epoch - 1} "
                         f"({state.done}); pass --epochs N (more than it ran) to train further")
    return state


def check_sequence_stage(train, coverage):
    """The sequence-level stage's settings, when it is on."""
    if not train.seq_epochs:
        return
    if train.monitor not in ("val_rouge_l", "val_lcs_f"):
        raise TitleError(f"SEQ_EPOCHS trains for ROUGE-L, which MONITOR {train.monitor!r} does not measure; "
                         "set MONITOR = 'val_rouge_l' or 'val_lcs_f' (and VAL_ROUGE_SAMPLES above 0)")
    if coverage:
        raise TitleError("SEQ_EPOCHS does not combine with COVERAGE yet (the stage adds no coverage loss); set one "
                         "of them to 0")


def last_epoch(train, state):
    """The last epoch of the stage the run is in: PRETRAIN_EPOCHS for pretraining, then EPOCHS more for
    teacher forcing, SEQ_EPOCHS after the sequence-level stage's start."""
    if state.stage == "sequence":
        return state.seq_start + train.seq_epochs - 1
    return train.pretrain_epochs + (0 if state.stage == "pretrain" else train.epochs)


def time_left(train, state, epoch, seconds):
    """After `epoch`, which took `seconds` with its dev pass: what is left of the run at that pace
    (the epochs left in this stage, the sequence-level stage to come, how much sooner PATIENCE
    ends it if no better epoch comes, TIME_LIMIT), or None when the run ends here."""
    left = last_epoch(train, state) - epoch
    if left <= 0:
        return None
    minutes = left * seconds / 60
    text = f"  {left} more epoch{'s' * (left > 1)}: about {minutes:.1f} min left at {seconds:.0f} s each"
    if state.stage == "pretrain":
        text += f", then the {train.epochs} on titles"
    if train.seq_epochs and state.stage != "sequence":
        text += f", then the sequence-level stage's {train.seq_epochs}"
    if train.patience and state.best:
        sooner = state.best["epoch"] + train.patience - epoch
        if 0 < sooner < left:
            text += (f"; {sooner * seconds / 60:.1f} min if no better {train.monitor} comes in {sooner} "
                     f"(PATIENCE {train.patience})")
    if train.time_limit is not None and state.seconds / 60 + minutes > train.time_limit:
        text += f"; TIME_LIMIT ({train.time_limit:g} min) ends it sooner"
    return text


def read_inputs(settings, folder, state):
    """Read and check the data: the vocabulary is built in the checking pass (or, resuming, read
    from the folder and the corpus checked against the run's)."""
    data = settings.data
    fields = (data.title_field, data.content_field)
    corpus = Corpus(data.train_path, data.data_format, fields, data.on_bad_record)
    dev = Corpus(data.dev_path, data.data_format, fields, data.on_bad_record) if data.dev_path else None
    samples = read_samples(data)
    articles = None  # a pretraining source of its own: its articles (titles, if any, not read)
    if settings.train.pretrain_epochs and data.pretrain_path:
        articles = Corpus(data.pretrain_path, data.data_format, (None, data.content_field), data.on_bad_record)
    if state:
        vocab = folder.load_vocab()
        n_train = sum(1 for _ in corpus.scan("checking the training data"))
        if n_train != state.articles:
            raise TitleError(f"{data.train_path} now holds {n_train} usable articles, the run started with "
                             f"{state.articles}; resume with the data it started with, or start again")
    else:
        vocab, n_train = build_vocab(corpus, data, articles)
    pretrain, n_pretrain = None, 0
    if settings.train.pretrain_epochs:
        pretrain = PseudoCorpus(articles or corpus, settings.train.pretrain_task)
        n_pretrain = pretrain.count()
        if not n_pretrain:
            raise TitleError(f"{data.pretrain_path or data.train_path}: no article of two sentences or more to "
                             "pretrain on; set PRETRAIN_EPOCHS = 0, or PRETRAIN_PATH to other articles")
    rouge_rows, n_dev = [], 0
    if dev:
        for record in dev.scan("reading the dev data"):
            n_dev += 1
            if len(rouge_rows) < max(settings.train.val_rouge_samples, 1):
                rouge_rows.append(record)
        if not n_dev:
            raise TitleError(f"{data.dev_path}: no usable articles")
        samples.append(("dev[0] " + rouge_rows[0].title, rouge_rows[0].content))
        rouge_rows = rouge_rows[:settings.train.val_rouge_samples]
    return Inputs(corpus, dev, vocab, n_train, n_dev, rouge_rows, samples, pretrain, n_pretrain)


def build_vocab(corpus, data, articles=None):
    """The vocabulary, counted in the checking pass (one read of the corpus, and of a pretraining
    source's `articles` where there is one): (vocab, training articles)."""
    counted = [0]

    def texts():
        for record in corpus.scan("reading the training data, counting tokens"):
            counted[0] += 1
            yield record.content
            yield record.title
        for record in articles.scan("reading the pretraining articles, counting tokens") if articles else ():
            yield record.content

    vocab = Vocab.build(texts(), data.min_count, tokenizer=data.tokenizer)
    if not counted[0]:
        raise TitleError(f"{data.train_path}: no usable articles")
    path = data.train_path
    vocab.source = {"path": path, "format": corpus.format, "articles": counted[0],
                    "sha256": file_sha256(path) if os.path.isfile(path) else None,
                    **({"pretrain_path": articles.path} if articles else {})}
    return vocab, counted[0]


def read_samples(data):
    """The articles whose titles are printed at every epoch end: (name, content) pairs."""
    if not data.samples_path:
        return []
    rows = read_jsonl(data.samples_path, fields=("name", "content"))
    by_name = {r["name"]: r["content"] for r in rows}
    missing = [n for n in data.sample_names if n not in by_name]
    if missing:
        raise TitleError(f"{data.samples_path}: no sample named {', '.join(missing)}")
    return [(n, by_name[n]) for n in data.sample_names]


def build(settings, devices, log, steps, stage="teacher"):
    """The model and its optimizer (built, so a checkpoint can be loaded into it), on the devices;
    `steps`: batches per epoch (for LR_DECAY_EPOCHS); `stage`: the checkpoint's ("sequence": the
    stage's own Adam)."""
    if settings.train.mixed_precision:
        if not devices.gpus():
            log("MIXED_PRECISION without a GPU: float16 runs, but slowly, on a CPU")
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with devices.scope():
            model = build_model(settings.model)
            optimizer = build_optimizer(settings.train, model, steps, stage)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the model keeps its own
    return model, optimizer


def build_optimizer(train, model, steps, stage):
    """Teacher forcing's Adam as the settings say; the sequence-level stage's a fresh one at
    SEQ_LEARNING_RATE, and pretraining's at LEARNING_RATE, each without EMA or a schedule. Built (its
    slots made) for the model."""
    if stage == "sequence":
        optimizer = make_optimizer(train.seq_learning_rate, train.mixed_precision)
    elif stage == "pretrain":  # pretraining's own Adam at LEARNING_RATE; the titles then start a fresh one
        optimizer = make_optimizer(train.learning_rate, train.mixed_precision)
    else:
        optimizer = make_optimizer(train.learning_rate, train.mixed_precision, train.ema,
                                   decay_steps=train.lr_decay_epochs and train.lr_decay_epochs * steps)
    optimizer.build(model.trainable_variables)
    return optimizer


def start_files(settings, folder, inputs, model, optimizer, steps, state, log):
    """Resuming: the checkpoint loaded into the model and optimizer. Else the folder's first files.
    `steps`: batches per epoch of each stage (`runstate.STAGES`). Returns (state, record): where the
    run stands, and config.json's contents."""
    if state:
        state = folder.load_checkpoint(model, optimizer)
        if (state.steps_per_epoch, state.pretrain_steps) != (steps["teacher"], steps["pretrain"]):
            raise TitleError(f"the run had {state.steps_per_epoch} batches per epoch, these settings give "
                             f"{steps['teacher']} (pretraining: {state.pretrain_steps} and "
                             f"{steps['pretrain']}); resume with the settings and data it started with")
        record = folder.write_record(settings, inputs.vocab, state.best, state.history, state.skipped)
        if state.done and settings.train.seq_epochs and state.stage != "sequence":
            state.switch = "sequence"  # a finished run continues with the sequence-level stage
        state.done = None
        log(f"resuming {folder.path} at epoch {state.epoch}, step {state.step} of {steps[state.stage]}")
        return state, record
    folder.start(inputs.vocab)
    skipped = {"train": inputs.corpus.skipped, "dev": inputs.dev.skipped if inputs.dev else 0}
    record = folder.write_record(settings, inputs.vocab, skipped=skipped)
    state = RunState(inputs.n_train, steps["teacher"], skipped=skipped)
    if settings.train.pretrain_epochs:
        state.stage, state.pretrain_steps = "pretrain", steps["pretrain"]
    folder.save_checkpoint(model, optimizer, state)
    return state, record


def train(settings, out_dir, overwrite=False, resume=False, log=print):
    """Train the blog's model as `settings` (a Settings) say, writing the run's files to `out_dir`.

    Fresh runs read and check all the data (building the vocabulary) before anything is written,
    so bad data never touches a saved model; an existing model is only replaced with
    overwrite=True. resume=True continues the run in `out_dir` from its checkpoint (`settings`
    then come from `resume_settings`). Returns (model, vocab, record): record is config.json's
    contents as they stand at the end.
    """
    devices = make_devices(settings.train.strategy, log)
    folder = RunFolder(out_dir, write=devices.chief)  # of several workers, only the chief writes
    state = check_request(settings, folder, overwrite, resume)
    inputs = read_inputs(settings, folder, state)
    keras.utils.set_random_seed(settings.train.seed)
    settings = settings.replace(vocab_size=len(inputs.vocab))
    steps = {stage: min(count_batches(n, settings.train.batch_size), settings.train.steps_per_epoch or n)
             for stage, n in (("pretrain", inputs.n_pretrain), ("teacher", inputs.n_train))}  # batches per epoch
    steps["sequence"] = steps["teacher"]  # the sequence-level stage reads the titles too
    model, optimizer = build(settings, devices, log, steps["teacher"], state.stage if state else "teacher")
    state, record = start_files(settings, folder, inputs, model, optimizer, steps, state, log)
    vocab = inputs.vocab
    log(f"vocabulary: {len(vocab)} ids ({len(vocab.chars)} {'characters' if vocab.tokenizer == 'char' else 'words'} "
        f"seen >= {vocab.min_count} times); {inputs.n_train} training and {inputs.n_dev} dev articles; "
        f"{model.count_params():,} parameters; {steps['teacher']} batches per epoch"
        + (f" ({steps['pretrain']} in pretraining, on {inputs.n_pretrain} pseudo pairs)" if inputs.pretrain else "")
        + (f" on {devices.replicas} devices" if devices.replicas > 1 else "")
        + ("" if backend.NAME == "tensorflow" else f" (Keras on {backend.NAME})"))
    run = Run(settings, folder, inputs, model, optimizer, devices, steps, state, record, log)
    try:
        run.epochs()
    except devices.lost as e:
        if devices.workers == 1:
            raise
        raise TitleError(lost_worker(e, run.state, out_dir)) from None
    skipped = record.get("skipped") or {}
    if any(skipped.values()):
        log(f"skipped {skipped['train']} bad training and {skipped['dev']} bad dev records (listed above, by file "
            "and line)")
    return model, vocab, record


def lost_worker(error, state, out_dir):
    """The one line a worker prints when another stopped answering."""
    why = (error.message or type(error).__name__).strip().splitlines()[0][:120]
    return (f"a training process stopped answering ({type(error).__name__}: {why}); the last checkpoint in "
            f"{out_dir} is at epoch {state.epoch}, step {state.step}: start every worker again with "
            "`train --resume`")


class Run:
    """The epochs of one run: training on each epoch's batches, then the epoch's end."""

    def __init__(self, settings, folder, inputs, model, optimizer, devices, steps, state, record, log):
        self.settings, self.folder, self.inputs, self.model, self.optimizer = settings, folder, inputs, model, optimizer
        self.steps, self.state, self.record, self.log, self.devices = steps, state, record, log, devices
        self.titler = Titler(model, inputs.vocab, settings.decode)
        self.best_weights = None  # the best epoch's weights, once this process saw one (the stage starts from them)
        self.use_optimizer(optimizer)
        self.predict = devices.predict(model)
        self.summaries = devices.summaries(os.path.join(folder.path, "tensorboard")) if settings.train.tensorboard \
            else None

    @property
    def stage(self):
        return self.state.stage

    @property
    def stage_steps(self):
        """Batches per epoch of the stage the run is in (pretraining reads its own pairs)."""
        return self.steps[self.stage]

    def batches_before(self, epoch):
        """How many batches the run trains before `epoch`: PRETRAIN_EPOCHS of pretraining's, then the others'."""
        pretrain = self.settings.train.pretrain_epochs
        return self.steps["pretrain"] * min(epoch - 1, pretrain) + self.steps["teacher"] * max(0, epoch - 1 - pretrain)

    def use_optimizer(self, optimizer):
        """Train with `optimizer` from now on: the stage's step and, with EMA, its averaged weights."""
        self.optimizer, train = optimizer, self.settings.train
        if self.stage == "sequence":
            decoder = IncrementalDecoder(self.model, self.settings.decode)
            step = self.devices.sequence_step(self.model, optimizer, decoder, train)
            self.train_step = lambda batch, at: step(batch, [train.seed, at])  # draws seeded by the batch's place
        else:
            step = self.devices.train_step(self.model, optimizer, train)
            self.train_step = lambda batch, at: step(batch)
        self.averaged = AveragedWeights(self.model, optimizer)

    def begin_sequence_stage(self, epoch):
        """The sequence-level stage from `epoch` on: the best weights so far, a fresh Adam for the stage."""
        best = self.state.best
        self.log(f"sequence-level stage: {self.settings.train.seq_epochs} epochs of minimum risk training from the "
                 f"best epoch's weights (epoch {best['epoch']}, {best['monitor']} {best['value']:.4f})")
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        else:  # resumed: the folder's (written by the chief before the checkpoint that preceded this)
            self.model.load_weights(self.folder.file(WEIGHTS_FILE))
        # the stage keeps its own best epoch (the teacher-forced one's stays in the history and here)
        self.state.update(stage="sequence", seq_start=epoch, teacher_best=best, best=None, switch=None)
        with self.devices.scope():
            self.use_optimizer(build_optimizer(self.settings.train, self.model, self.steps["teacher"], "sequence"))

    def begin_title_stage(self, epoch):
        """Teacher forcing on the titles from `epoch` on, after pretraining: from its last weights, with
        the Adam the settings ask for (LEARNING_RATE, EMA, LR_DECAY_EPOCHS), keeping its own best epoch."""
        self.log(f"titles: {self.settings.train.epochs} epochs of teacher forcing from the pretrained weights")
        self.state.update(stage="teacher", pretrain_best=self.state.best, best=None, switch=None)
        with self.devices.scope():
            self.use_optimizer(build_optimizer(self.settings.train, self.model, self.steps["teacher"], "teacher"))

    def begin_stage(self, stage, epoch):
        """The next stage (state.switch) from `epoch` on."""
        (self.begin_title_stage if stage == "teacher" else self.begin_sequence_stage)(epoch)

    def checkpoint(self, **position):
        """Save where the run stands (`position`: RunState fields changed), with the weights and optimizer state."""
        self.state.update(**position)
        self.folder.save_checkpoint(self.model, self.optimizer, self.state)

    def epochs(self):
        state, train = self.state, self.settings.train
        with self.folder.open_steps(self.batches_before(state.epoch) + state.step) as steps_log, \
                StopRequest() as stop:
            if state.switch:  # the stage was to start when the run stopped
                self.begin_stage(state.switch, state.epoch)
                self.checkpoint()
            while state.epoch <= last_epoch(self.settings.train, state):
                epoch = state.epoch
                if self.out_of_time():
                    break
                start, first = time.perf_counter(), state.step
                step, loss_sum = self.train_epoch(epoch, steps_log, stop)
                seconds = time.perf_counter() - start
                logs = {"epoch": epoch, "loss": loss_sum / max(step, 1), "seconds": round(seconds, 1),
                        "articles_per_s": round((step - first) * self.settings.train.batch_size
                                                / max(seconds, 1e-9), 1)}
                if train.seq_epochs or train.pretrain_epochs:
                    logs["stage"] = self.stage
                with self.averaged:  # with EMA, the averaged weights are evaluated and kept
                    self.end_epoch(epoch, logs)
                if state.switch:
                    self.begin_stage(state.switch, epoch + 1)
                kill_point("epoch_end")
                took = time.perf_counter() - start  # training and the dev pass
                self.checkpoint(epoch=epoch + 1, step=0, loss_sum=0.0, seconds=state.seconds + took,
                                last_epoch_seconds=took)
                if state.done:
                    break
                left = time_left(self.settings.train, state, epoch, took)  # the whole run, not only the epoch's bar
                if left:
                    self.log(left)

    def out_of_time(self):
        """With TIME_LIMIT: True, the run marked done and checkpointed, when another epoch as long as
        the last would end past it."""
        limit, state = self.settings.train.time_limit, self.state
        spent = state.seconds
        if limit is None or spent + state.last_epoch_seconds <= limit * 60:
            return False
        self.log(f"  stopping: another epoch would end past TIME_LIMIT ({limit:g} min; {spent / 60:.1f} min trained)")
        self.checkpoint(done=f"another epoch would end past TIME_LIMIT ({limit:g} min)")
        return True

    def train_epoch(self, epoch, steps_log, stop):
        """One epoch's batches from the checkpoint's step on: (step, summed loss) at its end."""
        step, loss_sum, steps = self.state.step, self.state.loss_sum, self.stage_steps
        corpus = self.inputs.pretrain if self.stage == "pretrain" else self.inputs.corpus
        batches = epoch_batches(corpus, self.inputs.vocab, self.settings, epoch)
        before = self.batches_before(epoch)
        every = self.settings.train.checkpoint_steps
        with tqdm(itertools.islice(batches, step, steps), total=steps, initial=step, unit="batch",
                  desc=f"epoch {epoch}/{last_epoch(self.settings.train, self.state)}") as bar:  # done batches skipped
            for batch in bar:
                loss = self.train_step(batch, before + step)
                step, loss_sum = step + 1, loss_sum + loss
                steps_log.write(f"{epoch},{step},{loss:.9g}\n")
                kill_point("step")
                bar.set_postfix(loss=f"{loss_sum / step:.4f}")
                self.summary({"batch_loss": loss}, before + step)
                if stop.requested or (every and step % every == 0 and step < steps):
                    self.checkpoint(epoch=epoch, step=step, loss_sum=loss_sum)
                    if stop.requested:
                        bar.close()
                        raise KeyboardInterrupt(f"interrupted at epoch {epoch}, step {step}: checkpoint saved in "
                                          f"{self.folder.file(CHECKPOINT_FILE)}; `train --resume` continues "
                                          "from there")
        return step, loss_sum

    def end_epoch(self, epoch, logs):
        """Dev loss and ROUGE-L, sample titles, the best weights, config.json, metrics.csv; decides
        whether the run is done."""
        inputs, state, train, log = self.inputs, self.state, self.settings.train, self.log
        if inputs.dev:
            logs["val_loss"] = dev_loss(self.predict, epoch_batches(inputs.dev, inputs.vocab, self.settings, 0,
                                                                    order=False))
        if inputs.rouge_rows:  # ROUGE-L of the titles the model writes for a sample of the dev set
            contents = [r.content for r in inputs.rouge_rows]
            titles, references = self.titler(contents), [r.title for r in inputs.rouge_rows]
            logs["val_rouge_l"] = corpus_scores(titles, references)["rouge-l"]
            logs["val_lcs_f"] = 100 * sum(map(lcs_f, titles, references)) / len(titles)  # sees repeats
            logs.update({f"val_{k}": v for k, v in readability(titles, contents).items()})
        log(f"epoch {epoch}: " + "  ".join(f"{k} {logs[k]:.4f}" for k in MONITORS if k in logs)
            + (f"  (dev titles: {logs['val_repeat']:.1f}% repeat, {logs['val_bigram_repeat']:.1f}% repeat a "
               f"bigram, {logs['val_new_double']:.1f}% double a character)" if "val_repeat" in logs else "")
            + f"  ({logs['seconds']:.0f} s training, {logs['articles_per_s']:.0f} articles/s)")
        for (name, _), title in zip(inputs.samples, self.titler([c for _, c in inputs.samples])):
            log(f"  [{name}] {title}")  # watch the titles improve
        if train.lr_patience or train.lr_decay_epochs:  # the rate the next batch will use
            logs["learning_rate"] = float(inner(self.optimizer).learning_rate)
        state.history.append(logs)
        monitor = train.monitor
        if state.best is None or BETTER[monitor](logs[monitor], state.best["value"]) == logs[monitor]:
            state.best = {"epoch": epoch, "monitor": monitor, "value": logs[monitor]}  # ties count as better,
            self.folder.save_weights(self.model)  # as the blog's <=
            self.best_weights = self.model.get_weights() if train.seq_epochs else None
            log(f"  saved {self.folder.file(WEIGHTS_FILE)} ({monitor} {logs[monitor]:.4f})")
        self.summary({k: logs[k] for k in (*MONITORS, *VAL_READABILITY) if k in logs}, epoch,
                     flush=True)
        self.record.update(best=state.best, history=state.history)
        self.folder.write_record(self.settings, inputs.vocab, **{k: self.record[k] for k in
                                                                 ("best", "history", "skipped")})
        self.folder.write_metrics(state.history)
        finished, pretraining = None, self.stage == "pretrain"  # pretraining runs its epochs whatever the dev set says
        if not pretraining:
            self.cut_learning_rate(epoch)
        if train.patience and not pretraining and epoch - state.best["epoch"] >= train.patience:
            finished = f"no better {monitor} for {train.patience} epochs"
            log(f"  stopping: {finished}")
        elif epoch >= last_epoch(train, state):
            finished = f"{epoch} epochs"
        following = "teacher" if pretraining else "sequence" if train.seq_epochs and self.stage == "teacher" else None
        if finished and following:
            state.switch = following  # the next stage follows
        else:
            state.done = finished

    def cut_learning_rate(self, epoch):
        """With LR_PATIENCE: the learning rate times LR_FACTOR after that many epochs without a better
        MONITOR, counted from the best epoch or the last cut (Keras's ReduceLROnPlateau; the rate is an
        optimizer variable, so the checkpoint keeps it)."""
        train, state = self.settings.train, self.state
        since = max(state.best["epoch"], state.lr_cut)
        if train.lr_patience and epoch - since >= train.lr_patience:
            rate = inner(self.optimizer).learning_rate
            rate.assign(rate * train.lr_factor)
            state.lr_cut = epoch
            self.log(f"  learning rate cut to {float(rate.numpy()):.3g}: no better {train.monitor} for "
                     f"{train.lr_patience} epochs")

    def summary(self, values, step, flush=False):
        """TensorBoard scalars, when it is on."""
        if self.summaries:
            write, flushed = self.summaries
            write(values, step)
            if flush:
                flushed()
