"""The run folder: the files `train` writes and `generate`, `evaluate` and `export` read, loading a
trained model from them, and the decoder its settings ask for. Inference imports this module,
never the training one (nor what training needs: checkpoints, metrics, the data pipeline).
"""
import json
import os

from .data import TitleError, Vocab
from .decode import Titler
from .model import MAX_TITLE_LEN, build_model

VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE = "vocab.json", "config.json", "model.weights.h5"
CHECKPOINT_FILE, METRICS_FILE, STEPS_FILE = "checkpoint.npz", "metrics.csv", "steps.csv"


def make_titler(model, vocab, settings, xla=True):
    """The decoder `settings` ask for, on this model."""
    return Titler(model, vocab, settings["maxlen"], settings["decoder"], settings["topk"],
                  settings["max_title_len"] or MAX_TITLE_LEN[settings["version"]],
                  settings["min_title_len"], settings["no_repeat_ngram"], settings.get("length_penalty", 0.0), xla)


def load_trained(out_dir):
    """Rebuild a trained model from its folder: (model, vocab, config).

    A vocabulary other than the one the model was trained with is an error, never a silent mismatch.
    """
    paths = {name: os.path.join(out_dir, name) for name in (VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE)}
    missing = [name for name, p in paths.items() if not os.path.exists(p)]
    if missing:
        raise TitleError(f"no trained model in {out_dir} ({', '.join(missing)} missing); run "
                         "`python seq2seq_title.py train` first, or pass --model DIR")
    with open(paths[CONFIG_FILE], encoding="utf-8") as f:
        config = json.load(f)
    vocab = Vocab.load(paths[VOCAB_FILE])
    if vocab.fingerprint != config["vocab_fingerprint"] or len(vocab) != config["model"]["vocab_size"]:
        raise TitleError(f"{paths[VOCAB_FILE]} is not the vocabulary this model was trained with "
                         f"(fingerprint {vocab.fingerprint}, {len(vocab)} ids; the model expects "
                         f"{config['vocab_fingerprint']}, {config['model']['vocab_size']} ids); restore the "
                         "vocab.json saved with the weights, or retrain")
    model = build_model(**config["model"])
    model.load_weights(paths[WEIGHTS_FILE])
    return model, vocab, config
