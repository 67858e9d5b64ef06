"""configs/readable.py on CSL, one command:
    python seq2seq_title.py train configs/csl_readable.py    # into runs/csl_readable
    python seq2seq_title.py evaluate configs/csl_readable.py
"""
include("csl.py")  # noqa: F821 (settings files may include another)
include("readable.py")  # noqa: F821 (settings files may include another)
