"""Several trained models decoded as one: the ensemble's next-id probabilities are the mean of its
members' (`mean_probs`; beyond the blog: `MEMBERS` in config.py, trained by `train_ensemble.py`).

An `Ensemble` has a `TitleModel`'s decoding interface: the naive decoder calls it as it calls a
model, and the incremental decoder encodes and steps it as it does a model (its memory and cache
are lists, one entry per member). The beam search, the decoders and `export` are the single
model's: only where the probabilities come from changes.
"""
from .errors import TitleError


def mean_probs(probs):
    """The members' next-id probabilities (each (rows, V')) averaged: the ensemble's."""
    return sum(probs[1:], probs[0]) / len(probs)  # added in the members' order


class Ensemble:
    """Trained models with one vocabulary and one model's settings, called, encoded and stepped as one
    model: the mean of their outputs."""

    def __init__(self, models):
        self.models = list(models)
        if not self.models:
            raise TitleError("an ensemble needs at least one model")
        self.settings, self.max_title_len = self.models[0].settings, self.models[0].max_title_len

    @property
    def variables(self):
        return [v for model in self.models for v in model.variables]

    def __call__(self, inputs, training=False):
        return mean_probs([model(inputs, training=training) for model in self.models])

    def encode(self, inputs):
        return [model.encode(inputs) for model in self.models]

    def start_cache(self, memory, rows):
        return [model.start_cache(m, rows) for model, m in zip(self.models, memory)]

    def call_with_cache(self, last, cache, memory):
        stepped = [model.call_with_cache(last, c, m) for model, c, m in zip(self.models, cache, memory)]
        return mean_probs([probs for probs, _ in stepped]), [new for _, new in stepped]


def models_of(model):
    """The Keras models in a model or an ensemble (what `export` tracks)."""
    return model.models if isinstance(model, Ensemble) else [model]
