"""A trained model as a user carries it away: its folder (a run's, or an ensemble's) holds what it
needs to write titles, and this module rebuilds it from there: the network from the settings it was
trained with, its vocabulary, and the decoding it was chosen with (`config.json`'s "decode"), which
override files and flags may change and config.py does not (`settings.model_decoding`), as Hugging
Face keeps `generation_config.json` beside the weights. Above the run folder (storage) and the model.
"""
import os

from .ensemble import Ensemble
from .errors import TitleError
from .model import build_model
from .runfolder import CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE, RunFolder


def load_trained(path):
    """Rebuild a trained model (or ensemble) from its folder: (model, vocab, settings), the settings
    those it was trained with, its decoding included.

    A vocabulary other than the one the model was trained with is an error, never a silent mismatch.
    """
    folder = RunFolder(path)
    if folder.holds_ensemble():
        return load_ensemble(folder)
    missing = [n for n in (VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE) if not os.path.exists(folder.file(n))]
    if missing:
        raise TitleError(f"no trained model in {path} ({', '.join(missing)} missing); run "
                         "`python seq2seq_title.py train` first, or pass --model DIR")
    settings, record = folder.read_record()
    vocab = folder.load_vocab()
    if vocab.fingerprint != record["vocab_fingerprint"] or len(vocab) != settings.model.vocab_size:
        raise TitleError(f"{folder.file(VOCAB_FILE)} is not the vocabulary this model was trained with "
                         f"(fingerprint {vocab.fingerprint}, {len(vocab)} ids; the model expects "
                         f"{record['vocab_fingerprint']}, {settings.model.vocab_size} ids); restore the "
                         "vocab.json saved with the weights, or retrain")
    model = build_model(settings.model)
    model.load_weights(folder.file(WEIGHTS_FILE))
    return model, vocab, settings


def load_ensemble(folder):
    """An ensemble's members, each with its best weights so far: (ensemble.Ensemble, vocab, the
    ensemble's settings)."""
    settings, _ = folder.read_record()
    members = folder.members(settings.train.members)
    untrained = [os.path.basename(m.path) for m in members if not os.path.exists(m.file(WEIGHTS_FILE))]
    if untrained:
        raise TitleError(f"the ensemble in {folder.path} is not trained yet ({', '.join(untrained)} without "
                         f"{WEIGHTS_FILE}); `train --resume --out {folder.path}` trains it")
    loaded = [load_trained(m.path) for m in members]
    _, vocab, first = loaded[0]
    odd = [os.path.basename(m.path) for m, (_, v, s) in zip(members, loaded)
           if v.fingerprint != vocab.fingerprint or s.model != first.model]
    if odd:
        raise TitleError(f"{', '.join(odd)} in {folder.path} has another vocabulary or model than "
                         f"{os.path.basename(members[0].path)}; an ensemble's members are trained together, "
                         "by one `train`")
    return Ensemble([model for model, _, _ in loaded]), vocab, settings.replace(vocab_size=first.model.vocab_size)
