"""Training with teacher forcing, and the output folder a trained model lives in.

The folder holds three files: `vocab.json` (the vocabulary and the data that built it),
`config.json` (the settings the model was built and trained with, and its best epoch) and
`model.weights.h5` (the best weights so far). `load_trained` rebuilds the model from them.
"""
import json
import os
import time

import keras
import numpy as np
from tqdm import tqdm

from .data import (PAD, TitleError, Vocab, batches, encode_pairs, file_sha256, read_jsonl,
                   write_json)
from .decode import Titler
from .metrics import corpus_scores
from .model import MAX_TITLE_LEN, build_model, compile_model, title_loss

VOCAB_FILE, CONFIG_FILE, WEIGHTS_FILE = "vocab.json", "config.json", "model.weights.h5"


MONITORS = {"loss": min, "val_loss": min, "val_rouge_l": max}  # what "best" means for each


def model_args(settings, vocab):
    return {"vocab_size": len(vocab), "char_size": settings["char_size"],
            "hidden_size": settings["hidden_size"], "mask_encoder": settings["mask_encoder"],
            "version": settings["version"], "copy": settings.get("copy", False), "copy_extra": settings["maxlen"],
            "coverage": settings.get("coverage", 0.0)}


def make_titler(model, vocab, settings):
    """The decoder `settings` ask for, on this model."""
    return Titler(model, vocab, settings["maxlen"], settings["decoder"], settings["topk"],
                  settings["max_title_len"] or MAX_TITLE_LEN[settings["version"]],
                  settings["min_title_len"], settings["no_repeat_ngram"], settings.get("length_penalty", 0.0))


def model_inputs(x, y, *extended):
    """Teacher forcing: the model reads the article and y[:, :-1] (and, copying, the article's
    extended ids) and is scored on y[:, 1:]."""
    return [x, y[:, :-1], *extended], y[:, 1:]


def dev_loss(model, columns, batch_size):
    """The blog's loss over a whole set: summed cross-entropy of every real target character
    divided by their number (so it does not depend on how the set is batched)."""
    total, count = 0.0, 0
    for batch in batches(columns, batch_size):
        inputs, target = model_inputs(*batch)
        n = int((target > PAD).sum())
        total += float(title_loss(target, model.predict_on_batch(inputs))) * n  # the batch's mean, summed back
        count += n
    return total / count


def train(settings, out_dir, overwrite=False, log=print):
    """Train the blog's model as `settings` says, writing the artifacts to `out_dir`.

    Everything is read and checked before anything is written, so bad data never touches a saved
    model; an existing model is only replaced with overwrite=True. Returns (model, vocab, config),
    the model as it stands after the last epoch.
    """
    weights_path = os.path.join(out_dir, WEIGHTS_FILE)
    if os.path.exists(weights_path) and not overwrite:
        raise TitleError(f"{out_dir} already holds a trained model; pass --overwrite to replace it, "
                         "or --out DIR to train into another folder")
    train_rows = read_jsonl(settings["train_path"])
    dev_rows = read_jsonl(settings["dev_path"]) if settings.get("dev_path") else []
    samples = read_samples(settings)

    keras.utils.set_random_seed(settings["seed"])
    vocab = Vocab.build((t for r in train_rows for t in (r["content"], r["title"])),
                        settings["min_count"],
                        source={"path": settings["train_path"], "articles": len(train_rows),
                                "sha256": file_sha256(settings["train_path"])})
    maxlen = settings["maxlen"]
    columns = encode_pairs(train_rows, vocab, maxlen, settings.get("copy", False))
    dev_columns = encode_pairs(dev_rows, vocab, maxlen, settings.get("copy", False)) if dev_rows else None
    monitor = settings["monitor"]
    if monitor not in MONITORS:
        raise TitleError(f"MONITOR must be one of {', '.join(MONITORS)}, got {monitor!r}")
    if monitor.startswith("val_") and not dev_rows:
        raise TitleError(f"MONITOR is {monitor!r} but no dev set is given; set DEV_PATH or MONITOR = 'loss'")
    if monitor == "val_rouge_l" and not settings["val_rouge_samples"]:
        raise TitleError("MONITOR is 'val_rouge_l' but VAL_ROUGE_SAMPLES is 0; title some dev articles or "
                         "monitor 'val_loss'")
    if dev_rows:
        samples.append(("dev[0] " + dev_rows[0]["title"], dev_rows[0]["content"]))

    model = compile_model(build_model(**model_args(settings, vocab)), settings["learning_rate"])
    os.makedirs(out_dir, exist_ok=True)
    vocab.save(os.path.join(out_dir, VOCAB_FILE))
    config = {"settings": settings, "model": model_args(settings, vocab),
              "vocab_fingerprint": vocab.fingerprint, "best": None, "history": []}
    write_json(os.path.join(out_dir, CONFIG_FILE), config)
    log(f"vocabulary: {len(vocab)} ids ({len(vocab.chars)} characters seen >= {vocab.min_count} times); "
        f"{len(train_rows)} training and {len(dev_rows)} dev articles; {model.count_params():,} parameters")

    titler = make_titler(model, vocab, settings)
    rouge_rows = dev_rows[:settings["val_rouge_samples"]]
    rng = np.random.default_rng(settings["seed"]) if settings["shuffle"] else None
    n_batches = -(-len(train_rows) // settings["batch_size"])
    steps = min(n_batches, settings["steps_per_epoch"] or n_batches)
    better = MONITORS[monitor]
    best, best_epoch = None, 0
    for epoch in range(1, settings["epochs"] + 1):
        start = time.perf_counter()
        losses = []
        bar = tqdm(batches(columns, settings["batch_size"], rng), total=steps,
                   desc=f"epoch {epoch}/{settings['epochs']}", unit="batch")
        for step, batch in enumerate(bar, 1):
            losses.append(float(model.train_on_batch(*model_inputs(*batch))))
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
            if step == steps:
                break
        bar.close()
        train_seconds = time.perf_counter() - start
        logs = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": round(train_seconds, 1)}
        if dev_rows:
            logs["val_loss"] = dev_loss(model, dev_columns, settings["batch_size"])
        if rouge_rows:  # ROUGE-L of the titles the model writes for a sample of the dev set
            titles = titler([r["content"] for r in rouge_rows])
            logs["val_rouge_l"] = corpus_scores(titles, [r["title"] for r in rouge_rows])["rouge-l"]
        log(f"epoch {epoch}: " + "  ".join(f"{k} {logs[k]:.4f}" for k in MONITORS if k in logs)
            + f"  ({train_seconds:.0f} s training)")
        for (name, _), title in zip(samples, titler([c for _, c in samples])):  # watch the titles improve
            log(f"  [{name}] {title}")
        config["history"].append(logs)
        if best is None or better(logs[monitor], best) == logs[monitor]:  # ties count as better, as the blog's <=
            best, best_epoch = logs[monitor], epoch
            save_weights(model, weights_path)
            config["best"] = {"epoch": epoch, "monitor": monitor, "value": best}
            log(f"  saved {weights_path} ({monitor} {best:.4f})")
        write_json(os.path.join(out_dir, CONFIG_FILE), config)
        if settings["patience"] and epoch - best_epoch >= settings["patience"]:
            log(f"  stopping: no better {monitor} for {settings['patience']} epochs")
            break
    return model, vocab, config


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
