"""Three large-recipe models from three seeds on CSL, decoded as one (configs/ensemble.py), one command:
    python seq2seq_title.py train configs/csl_ensemble.py  # into runs/csl_recipe_large_ensemble
    python seq2seq_title.py evaluate configs/csl_ensemble.py
"""
include("csl_large.py")  # noqa: F821 (settings files may include another)
include("ensemble.py")  # noqa: F821 (settings files may include another)
