"""The CSL ensemble at a fixed budget (configs/budget.py: two members, 10 epochs at 3e-3 falling to 0),
one command:
    python seq2seq_title.py train configs/csl_budget.py    # into runs/csl_recipe_large_ensemble_budget
    python seq2seq_title.py evaluate configs/csl_budget.py
"""
include("csl_ensemble.py")  # noqa: F821 (settings files may include another)
include("budget.py")  # noqa: F821 (settings files may include another)
