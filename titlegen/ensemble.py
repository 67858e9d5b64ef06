"""Several trained models decoded as one: the ensemble's next-id probabilities are the mean of its
members' (`mean_probs`; beyond the blog: `MEMBERS` in config.py, trained by `train_ensemble.py`).

The naive decoder calls an `Ensemble` as it calls a model, and the incremental decoder advances
`EnsembleParts` as it advances a `ModelParts`. The beam search, the decoders and `export` are the
single model's: only where the probabilities come from changes.
"""
from .errors import TitleError
from .model import ModelParts


def mean_probs(probs):
    """The members' next-id probabilities (each (rows, V')) averaged: the ensemble's."""
    return sum(probs[1:], probs[0]) / len(probs)  # added in the members' order


class Ensemble:
    """Trained models with one vocabulary, called as one model: the mean of their outputs."""

    def __init__(self, models):
        self.models = list(models)
        if not self.models:
            raise TitleError("an ensemble needs at least one model")

    def __call__(self, inputs, training=False):
        return mean_probs([model(inputs, training=training) for model in self.models])


def models_of(model):
    """The Keras models in a model or an ensemble (what `export` tracks)."""
    return model.models if isinstance(model, Ensemble) else [model]


def parts_of(model, settings):
    """The decoding interface of a model (`ModelParts`) or of an ensemble (`EnsembleParts`) of these
    settings (a `settings.Model`, which an ensemble's members share)."""
    return EnsembleParts([ModelParts.of(m, settings) for m in model.models]) if isinstance(model, Ensemble) \
        else ModelParts.of(model, settings)


class EnsembleParts:
    """`ModelParts`' decoding interface for an ensemble: memory and state are lists, one entry per
    member; a step advances every member and averages their probabilities."""

    def __init__(self, members):
        self.members = members

    def memory(self, x, extended=None):
        return [p.memory(x, extended) for p in self.members]

    def with_extended(self, memory, extended):
        return [p.with_extended(m, extended) for p, m in zip(self.members, memory)]

    def batch(self, memory):
        return self.members[0].batch(memory[0])

    def start_state(self, memory, rows):
        return [p.start_state(m, rows) for p, m in zip(self.members, memory)]

    def step(self, last, state, memory):
        stepped = [p.step(last, s, m) for p, s, m in zip(self.members, state, memory)]
        return mean_probs([probs for probs, _ in stepped]), [new for _, new in stepped]
