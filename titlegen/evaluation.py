"""Title a titled set and score the titles under CLGE's protocol, beside the LEAD baseline:
what `python seq2seq_title.py evaluate` does, the command line only parsing and printing.
"""
import dataclasses
import json
import os
import sys

from .files import write_json
from .decoders import title_in_batches
from .metrics import METRICS, READABILITY, copy_shares, corpus_scores, lead, readability
from .sources import read_all


def predictions_path(model_dir, data):
    """Where a set's predictions go by default: MODEL/predictions_<folder>_<file>.jsonl."""
    stem = os.path.splitext(os.path.basename(data))[0]
    return os.path.join(model_dir, f"predictions_{os.path.basename(os.path.dirname(data))}_{stem}.jsonl")


def evaluate(titler, batch_size, data, data_settings, out, origins=None):
    """Title every article of `data` with `titler`, `batch_size` at a time, write the predictions
    to `out` and the scores beside it (.scores.json), with the decoding and where each of its
    settings came from (`origins`). Returns the scores file's contents."""
    skipped = []
    rows = read_all(data, data_settings.data_format, (data_settings.title_field, data_settings.content_field),
                    data_settings.on_bad_record, lambda line: (skipped.append(line), print(line, file=sys.stderr)))
    contents = [r[data_settings.content_field] for r in rows]
    references = [r[data_settings.title_field] for r in rows]
    predictions = title_in_batches(titler, contents, batch_size)
    write_predictions(out, references, predictions)
    lead_titles, k = lead(contents, references)
    scores = {"model": corpus_scores(predictions, references), f"LEAD-{k}": corpus_scores(lead_titles, references)}
    readable = {"model": readability(predictions, contents), f"LEAD-{k}": readability(lead_titles, contents),
                "references": readability(references, contents)}
    shares = copy_shares(predictions, contents, set("".join(titler.vocab.chars)))  # words: their characters
    result = {"data": data, "articles": len(rows), "skipped": len(skipped), "scores": scores,
              "decoding": dataclasses.asdict(titler.options), "decoding_from": origins or {},
              "readability": readable, "title_characters": shares}
    write_json(os.path.splitext(out)[0] + ".scores.json", result)
    return result


def write_predictions(out, references, predictions):
    with open(out, "w", encoding="utf-8") as f:
        for line, (ref, pred) in enumerate(zip(references, predictions), 1):
            f.write(json.dumps({"line": line, "reference": ref, "prediction": pred}, ensure_ascii=False) + "\n")


HEADINGS = {"repeat": "REPEAT %", "bigram_repeat": "BIGRAM REPEAT %", "new_double": "NEW DOUBLE %", "length": "LENGTH"}


def report(result, out):
    """The lines `evaluate` prints: where the predictions are, a Markdown table of the scores and
    readability (the references' own readability in the last row), the copy shares."""
    columns = [m.upper() for m in METRICS] + [HEADINGS[r] for r in READABILITY]
    skipped = f" ({result['skipped']} bad records skipped, listed above)" if result.get("skipped") else ""
    lines = [f"{result['articles']} articles of {result['data']}{skipped}; predictions in {out}",
             "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, readable in result["readability"].items():
        scores = result["scores"].get(name)
        cells = [f"{scores[m]:.2f}" if scores else "" for m in METRICS]
        cells += [f"{readable[r]:.1f}" for r in READABILITY]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("REPEAT %: titles with a substring repeated back to back; BIGRAM REPEAT %: titles with a "
                 "character bigram twice; NEW DOUBLE %: titles with a character twice in a row that their article "
                 "never has twice in a row")
    shares = result["title_characters"]
    lines.append(f"title characters: {shares['in_article']:.1f}% stand in the article, "
                 f"{shares['out_of_vocab']:.1f}% are outside the vocabulary")
    return lines
