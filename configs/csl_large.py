"""The recipe at a larger size on CSL (configs/large.py), one command:
    python seq2seq_title.py train configs/csl_large.py     # into runs/csl_recipe_large
    python seq2seq_title.py evaluate configs/csl_large.py
"""
include("csl_recipe.py")  # noqa: F821 (settings files may include another)
include("large.py")  # noqa: F821 (settings files may include another)
