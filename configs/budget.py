"""A fixed budget for the CSL ensemble, after configs/ensemble.py: two members, one per core,
each 10 epochs at twice Adam's rate (2e-3), falling to 0 along half a cosine over those 10 epochs,
so the members learn in fewer epochs what configs/ensemble.py's learn in 9 to 17 (docs/results.md,
"A fixed budget"). On the slowest CPU measured it takes 41 minutes and scores 59.53, below the
three members of configs/ensemble.py where those fit the hour (60.06 on the fastest CPU):

    python seq2seq_title.py train configs/csl.py configs/recipe.py configs/large.py configs/ensemble.py configs/budget.py
    python seq2seq_title.py evaluate configs/csl.py configs/recipe.py configs/large.py configs/ensemble.py configs/budget.py

configs/ensemble.py's TIME_LIMIT (57 minutes) still holds: on a CPU where 10 epochs do not fit, the
members stop sooner and keep their best epoch so far, before the rate has reached 0.
"""
MEMBERS = 2  # configs/ensemble.py: 3; two fit a 2-core machine, each on its own core
LEARNING_RATE = 2e-3  # blog: 1e-3
EPOCHS = 10  # the same work on every CPU
LR_DECAY_EPOCHS = 10  # the rate falls along half a cosine, batch by batch (docs/training.md)
OUTPUT_DIR = OUTPUT_DIR + "_budget"  # noqa: F821 (the value so far)
