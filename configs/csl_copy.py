"""The copy model on CSL (README "Results"), one command:
    python seq2seq_title.py train configs/csl_copy.py      # into runs/csl_copy
    python seq2seq_title.py evaluate configs/csl_copy.py
"""
include("csl.py")  # noqa: F821 (settings files may include another)
include("copy.py")  # noqa: F821 (settings files may include another)
