"""The copy model: a pointer-generator head lets titles copy the article's characters, rare ones
included (beyond the blog; README "Results", docs/log/results.md).

    python seq2seq_title.py train configs/copy.py                 # LCSTS, into runs/lcsts_copy
    python seq2seq_title.py train configs/csl.py configs/copy.py  # CSL, into runs/csl_copy
"""
COPY = True
OUTPUT_DIR = OUTPUT_DIR + "_copy"  # noqa: F821 (the value so far: config.py's, or an earlier file's)
