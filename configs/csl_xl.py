"""The recipe at its largest measured size on CSL (configs/xl.py), one command:
    python seq2seq_title.py train configs/csl_xl.py        # into runs/csl_recipe_xl
    python seq2seq_title.py evaluate configs/csl_xl.py
"""
include("csl_recipe.py")  # noqa: F821 (settings files may include another)
include("xl.py")  # noqa: F821 (settings files may include another)
