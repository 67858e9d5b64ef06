"""The titles a reader sees: the first N articles of a dev set (the first, not chosen ones), each
reference beside the titles of every predictions file given, as a Markdown table, with each file's
readability (metrics.readability) below it. docs/sequence.md shows its output.

    python bench/titles.py runs/lcsts_recipe/predictions_lcsts_dev.jsonl runs/lcsts_readable/predictions_lcsts_dev.jsonl
    python bench/titles.py --first 20 --name recipe --name readable A.jsonl B.jsonl
    python bench/titles.py --data data/csl/dev.jsonl runs/csl_readable/predictions_csl_dev.jsonl
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from titlegen.metrics import readability  # noqa: E402


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def table(names, files, first, data):
    """The Markdown lines: one row per article, the reference then each file's title; `data` the set
    they title (JSON Lines: its articles, by each prediction's line)."""
    rows, contents = [read(path) for path in files], [x["content"] for x in read(data)]
    references = [r["reference"] for r in rows[0]]
    if any([r["reference"] for r in other] != references for other in rows[1:]):
        raise SystemExit("the predictions files are not of the same set (their references differ)")
    lines = ["| # | reference | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for i in range(min(first, len(references))):
        lines.append(f"| {i + 1} | {references[i]} | " + " | ".join(r[i]["prediction"] or "(empty)" for r in rows)
                     + " |")
    lines.append("")
    for name, r in zip(["references", *names], [[{"prediction": t} for t in references], *rows]):
        score = readability([x["prediction"] for x in r], contents[:len(r)])
        lines.append(f"- {name}: {score['repeat']:.1f}% repeat back to back, {score['bigram_repeat']:.1f}% repeat a "
                     f"bigram, {score['new_double']:.1f}% double a character their article does not, "
                     f"{score['length']:.1f} characters on average ({len(r)} titles)")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="predictions files written by evaluate (JSON Lines)")
    p.add_argument("--name", action="append", default=[], help="a column's name, one per file (default: its folder)")
    p.add_argument("--first", type=int, default=10, help="how many articles (default 10)")
    p.add_argument("--data", default=os.path.join("data", "lcsts", "dev.jsonl"),
                   help="the set the files title, JSON Lines (default: data/lcsts/dev.jsonl)")
    args = p.parse_args()
    names = args.name or [os.path.basename(os.path.dirname(os.path.abspath(f))) for f in args.files]
    if len(names) != len(args.files):
        raise SystemExit("give one --name per file, or none")
    print("\n".join(table(names, args.files, args.first, args.data)))


if __name__ == "__main__":
    main()
