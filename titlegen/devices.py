"""Where a run trains, and its training steps, per backend: the one place `train` meets devices.

TensorFlow (`TensorFlowDevices`): tf.distribute (`STRATEGY`: one device, the local GPUs mirrored,
several machines by TF_CONFIG), each step a tf.function over the replicas (`replicas.py`): what the
project ran before it had other backends, kept bit for bit. JAX and PyTorch (`KerasDevices`): Keras's
own trainer, `train_on_batch` on a wrapper of the model compiled with the blog's loss (`TeacherModel`,
`TitleLoss`; the sequence-level stage's through `StageModel`), and on JAX with several devices
keras.distribution's data parallelism. JAX compiles each shape of batch it sees, so there batches are padded to a few
shapes (`KerasDevices.shaped`): rows to the batch size, articles to a multiple of ARTICLE_BUCKET
characters, titles to a multiple of TITLE_BUCKET; padding adds nothing to the loss (no real
targets; the masked encoder does not read it). Both give the loss of the whole batch.
"""
import contextlib

import keras
import numpy as np

from . import backend
from .errors import TitleError
from .model import model_inputs, real_targets, summed_title_loss
from .sequence import candidate_arrays, stage_loss

ARTICLE_BUCKET, TITLE_BUCKET = 64, 16  # JAX: batches padded to multiples of these many characters
TENSORBOARD_TF_ONLY = ("TENSORBOARD writes through tf.summary, on TensorFlow's backend only; set TENSORBOARD = "
                       "False (metrics.csv and steps.csv hold the same numbers)")


def make_devices(strategy, log=print):
    """The devices a run trains on: `strategy` is STRATEGY (settings.STRATEGIES)."""
    if backend.NAME == "tensorflow":
        return TensorFlowDevices(strategy)
    if strategy == "multiworker":
        raise TitleError("STRATEGY 'multiworker' is tf.distribute's, on TensorFlow's backend only; run with "
                         "KERAS_BACKEND=tensorflow, or STRATEGY = 'auto'")
    return KerasDevices(strategy, log)


def make_optimizer(learning_rate, mixed_precision, ema=0.0, decay_steps=None):
    """Adam; ema > 0 also keeps an exponential moving average of the weights (Keras's use_ema);
    decay_steps: the rate falls to 0 along half a cosine over that many batches (Keras's
    CosineDecay, driven by the optimizer's step count, which the checkpoint keeps)."""
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    optimizer = keras.optimizers.Adam(learning_rate, **({"use_ema": True, "ema_momentum": ema} if ema else {}))
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_precision else optimizer


class TensorFlowDevices:
    """tf.distribute's strategy: "auto" mirrors over every GPU when there are several and is the
    default (one device) otherwise; "mirrored" mirrors over the local GPUs (or the CPU);
    "multiworker" spans the machines TF_CONFIG names."""

    def __init__(self, name):
        import tensorflow as tf

        self.tf = tf
        if name == "multiworker":
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        elif name == "mirrored" or len(tf.config.list_logical_devices("GPU")) > 1:
            self.strategy = tf.distribute.MirroredStrategy()
        else:
            self.strategy = tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        cluster = self.tasks()
        self.workers = sum(map(len, cluster[2].values())) if cluster else 1
        task, index, spec = cluster or ("chief", 0, {})
        self.chief = task == "chief" or (task == "worker" and index == 0 and "chief" not in spec)
        self.lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                     tf.errors.AbortedError)  # another worker stopped answering

    def tasks(self):
        """With several processes: (this one's task type, its index, {task type: addresses}); else None."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not resolver.task_type:
            return None
        return resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict()

    def gpus(self):
        return len(self.tf.config.list_logical_devices("GPU"))

    def scope(self):
        return self.strategy.scope()

    def predict(self, model):
        """batch -> (the model's probabilities, the target), teacher forcing, computed by this process
        alone. Keras's predict_on_batch would treat the inputs as this worker's share and gather every
        worker's, so with several workers each computes the whole dev pass itself (it is small)."""
        run = model.predict_on_batch if self.workers == 1 else \
            self.tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

        def predict(batch):
            inputs, target = model_inputs(batch)
            return run(inputs), target
        return predict

    def train_step(self, model, optimizer, train, jit_compile=False):
        """batch -> its loss, after one step on it; `train` a settings.Train (LABEL_SMOOTHING, UNLIKELIHOOD)."""
        return make_train_step(model, optimizer, self.strategy, jit_compile, train.label_smoothing, train.unlikelihood)

    def sequence_step(self, model, optimizer, decoder, train):
        return make_sequence_step(model, optimizer, self.strategy, decoder, train)

    def summaries(self, path):
        """TensorBoard's writer into `path`: (write(values, step), flush())."""
        writer = self.tf.summary.create_file_writer(path)

        def write(values, step):
            with writer.as_default():
                for key, value in values.items():
                    self.tf.summary.scalar(key, value, step=step)
        return write, writer.flush


def make_train_step(model, optimizer, strategy, jit_compile=False, label_smoothing=0.0, unlikelihood=0.0):
    """TensorFlow: batch -> its loss, after one Adam step on it (`replicas.distributed_steps`).

    Each replica divides the cross-entropy summed over its share by the whole batch's real targets,
    so the loss and the update are one device's on the whole batch (a coverage loss, a mean per
    replica, is averaged over them). Traced once per batch size: a resumed run is the
    uninterrupted one bit for bit (docs/log/speed.md). jit_compile=True: under XLA (far slower on a CPU).
    """
    import tensorflow as tf

    from .replicas import distributed_steps, share

    replicas = strategy.num_replicas_in_sync

    def replica_loss(inputs, target, count):
        inputs, target = {name: share(a, replicas) for name, a in inputs.items()}, share(target, replicas)
        probs = model(inputs, training=True)
        loss = summed_title_loss(target, probs, label_smoothing, unlikelihood) / count
        if model.losses:  # the coverage loss
            loss += tf.cast(tf.add_n(model.losses), loss.dtype) / replicas
        return loss

    def signature(rows):  # batches of that many rows and any lengths
        ids = tf.TensorSpec([rows, None], tf.int32)
        return [{name: ids for name in model.input}, ids, tf.TensorSpec([], tf.float32)]

    graph = distributed_steps(model, optimizer, strategy, replica_loss, signature, jit_compile)

    def train_step(batch):
        inputs, target = model_inputs(batch)
        return float(graph(len(target))({name: tf.constant(a, tf.int32) for name, a in inputs.items()},
                                        tf.constant(target, tf.int32), real_targets(target)))

    return train_step


def make_sequence_step(model, optimizer, strategy, decoder, train):
    """TensorFlow: (batch, seed) -> its loss, after one Adam step on the sequence-level stage's loss
    (`sequence.stage_loss`, each replica on its share, divided by the whole batch's counts);
    `decoder` an IncrementalDecoder on the model, whose candidates' probabilities are those it
    drew them from (the model's parts run without dropout)."""
    import tensorflow as tf

    from .replicas import distributed_steps, share

    k, replicas = train.seq_candidates, strategy.num_replicas_in_sync

    def replica_loss(inputs, cands, costs, valid, counts):
        inputs = {name: share(a, replicas) for name, a in inputs.items()}
        cands, costs, valid = (share(a, replicas) for a in (cands, costs, valid))
        return stage_loss(model, inputs, cands, costs, valid, counts, train)

    def signature(rows, names):  # the batch's own names
        ids = tf.TensorSpec([rows, None], tf.int32)
        per_article = tf.TensorSpec([rows, k], tf.float32)
        return [{name: ids for name in names}, tf.TensorSpec([rows, k, None], tf.int32), per_article, per_article,
                tf.TensorSpec([2], tf.float32)]

    graph = distributed_steps(model, optimizer, strategy, replica_loss, signature)

    def step(batch, seed):
        inputs, cands, costs, valid, counts = candidate_arrays(batch, decoder, train, seed)
        inputs = {name: tf.constant(a) for name, a in inputs.items()}
        return float(graph(len(batch["article"]), inputs)(inputs, *map(tf.constant, (cands, costs, valid, counts))))

    return step


@keras.saving.register_keras_serializable(package="seq2seq_title")
class TitleLoss(keras.losses.Loss):
    """The blog's loss for Keras's trainer: the cross-entropy of each real target character (label
    smoothing ε and unlikelihood α beyond the blog), summed and divided by their number in the whole
    batch (`model.summed_title_loss` / `model.real_targets`)."""

    def __init__(self, label_smoothing=0.0, unlikelihood=0.0, name="title_loss"):
        super().__init__(name=name, reduction="sum")
        self.label_smoothing, self.unlikelihood = label_smoothing, unlikelihood

    def call(self, y_true, y_pred):
        return (summed_title_loss(y_true, y_pred, self.label_smoothing, self.unlikelihood)
                / real_targets(y_true, y_pred.dtype))

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "unlikelihood": self.unlikelihood, "name": self.name}


class TeacherModel(keras.Model):
    """Teacher forcing for Keras's trainer: the title model's probabilities, trained on `TitleLoss`
    (and the coverage loss the model adds). The optimizer is this wrapper's, so the title model
    itself is never compiled and its weights file holds its weights alone, as on TensorFlow."""

    def __init__(self, model):
        super().__init__(name="teacher_forcing")
        self.title_model = model
        self.built = True  # its weights are the built title model's

    def call(self, inputs, training=False):
        return self.title_model(inputs, training=training)


class StageModel(keras.Model):
    """The sequence-level stage for Keras's trainer: its output is the stage's loss on a batch
    (`sequence.stage_loss`), which is what it trains on; its weights are the title model's."""

    def __init__(self, model, train):
        super().__init__(name="sequence_stage")
        self.title_model, self.stage = model, train
        self.built = True  # its weights are the built title model's

    def call(self, x, training=False):
        inputs = {name: x[name] for name in ("article", "title", "article_extended") if name in x}
        return stage_loss(self.title_model, inputs, x["candidates"], x["costs"], x["valid"], x["counts"][0],
                          self.stage)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return y_pred


class KerasDevices:
    """JAX and PyTorch: Keras's trainer on this process's devices; on JAX with several devices (or
    STRATEGY "mirrored"), keras.distribution.DataParallel over them."""
    workers, chief, lost = 1, True, ()

    def __init__(self, name, log=print):
        self.replicas = 1
        if backend.NAME == "jax":
            devices = keras.distribution.list_devices()
            self.accelerators = [d for d in devices if not d.lower().startswith("cpu")]
            if len(devices) > 1 or name == "mirrored":
                keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
                self.replicas = len(devices)
        else:
            import torch

            self.accelerators = list(range(torch.cuda.device_count()))
            if name == "mirrored":
                log("STRATEGY 'mirrored' on PyTorch: Keras's trainer runs on one device here")

    def gpus(self):
        return len(self.accelerators)

    def scope(self):
        return contextlib.nullcontext()

    def shaped(self, batch, rows=0):
        """JAX: a batch ({"article", "title", ...}) padded to a few shapes (the module's docstring) and
        to `rows` rows, a multiple of the devices; else itself. Extra rows read the first article and
        have no title: no targets."""
        if backend.NAME != "jax":
            return batch
        n = len(batch["title"])
        rows = -(-max(rows, n) // self.replicas) * self.replicas  # each device an equal share
        out = {}
        for name, value in batch.items():
            if name == "title":  # title_in and the target, y[:, :-1] and y[:, 1:], a multiple of the bucket
                width = -(-(value.shape[1] - 1) // TITLE_BUCKET) * TITLE_BUCKET + 1
            else:
                width = -(-value.shape[1] // ARTICLE_BUCKET) * ARTICLE_BUCKET
            grown = np.zeros((rows, width), value.dtype)
            grown[:n, :value.shape[1]] = value
            if name != "title":
                grown[n:, :value.shape[1]] = value[0]
            out[name] = grown
        return out

    def predict(self, model):
        """batch -> (the model's probabilities, the target), teacher forcing, the batch's own shape."""
        def predict(batch):
            n, width = len(batch["title"]), batch["title"].shape[1] - 1
            inputs, _ = model_inputs(self.shaped(batch))
            return model.predict_on_batch(inputs)[:n, :width], model_inputs(batch)[1]
        return predict

    def train_step(self, model, optimizer, train):
        """batch -> its loss, after one step of Keras's trainer on it; `train` a settings.Train
        (LABEL_SMOOTHING, UNLIKELIHOOD; JAX pads the last batch to BATCH_SIZE)."""
        teacher = TeacherModel(model)
        teacher.compile(optimizer=optimizer, loss=TitleLoss(train.label_smoothing, train.unlikelihood),
                        jit_compile="auto")

        def train_step(batch):
            inputs, target = model_inputs(self.shaped(batch, train.batch_size))
            return float(teacher.train_on_batch(inputs, target, return_dict=True)["loss"])
        return train_step

    def sequence_step(self, model, optimizer, decoder, train):
        stage = StageModel(model, train)
        stage.compile(optimizer=optimizer, loss=None, jit_compile="auto")

        def step(batch, seed):
            inputs, cands, costs, valid, counts = candidate_arrays(batch, decoder, train, seed)
            inputs = self.shaped(inputs)
            if backend.NAME == "jax":  # the candidates' width a multiple of the title bucket too
                width = -(-(cands.shape[2] - 1) // TITLE_BUCKET) * TITLE_BUCKET + 1
                cands = np.pad(cands, [(0, 0), (0, 0), (0, width - cands.shape[2])])
            x = {**inputs, "candidates": cands, "costs": costs, "valid": valid,
                 "counts": np.broadcast_to(counts, (len(cands), 2))}  # per row, as Keras splits batches
            return float(stage.train_on_batch(x, np.zeros(len(cands), "float32"), return_dict=True)["loss"])
        return step

    def summaries(self, path):
        raise TitleError(TENSORBOARD_TF_ONLY)
