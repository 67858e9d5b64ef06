"""The recipe (configs/recipe.py) on CSL, one command:
    python seq2seq_title.py train configs/csl_recipe.py    # into runs/csl_recipe
    python seq2seq_title.py evaluate configs/csl_recipe.py
"""
include("csl.py")  # noqa: F821 (settings files may include another)
include("recipe.py")  # noqa: F821 (settings files may include another)
