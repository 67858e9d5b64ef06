"""configs/csl_budget.py with one member instead of two: one large CSL recipe model (batches of 32),
10 epochs at 3e-3 falling to 0, using both cores, its titles repeating no trigram and doubling no
character their article does not. On an AMD EPYC (family 26, model 2), 2 cores: ROUGE-L 60.05 and
59.22 (seeds 42, 43) in 10.7 and 11.3 minutes, and 58.94 and 59.24 with seeds 44 and 45 (not
timed; docs/results.md, "Minutes to a model"; the two-member ensemble was not timed on that CPU):
    python seq2seq_title.py train configs/csl_budget_one.py    # into runs/csl_budget_one
    python seq2seq_title.py evaluate configs/csl_budget_one.py
"""
include("csl_budget.py")  # noqa: F821 (settings files may include another)
MEMBERS = 1  # csl_budget.py: 2
NO_REPEAT_NGRAM = 3  # no trigram twice in a title, dev titles while training included (blog: 0); 2 scored 0.3-0.7 lower
NO_NEW_DOUBLE = True  # nor a character twice in a row where the article never has it so (blog: off)
OUTPUT_DIR = "runs/csl_budget_one"
