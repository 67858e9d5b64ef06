"""A fixed budget for the LCSTS recipe (configs/recipe.py), as configs/budget.py is for CSL: 10 epochs
at three times Adam's rate (3e-3), falling to 0 along half a cosine over those 10 epochs, instead
of the recipe's 22 at 1e-3 (8 of them only confirming its best under PATIENCE); its titles repeat
no character pair and double no character their article does not. On an AMD EPYC (family 26,
model 2), 2 cores: ROUGE-L 27.2-27.7 (seeds 42, 43), under 1% of titles with a repeat, in 4.7
minutes (docs/results.md, "Minutes to a model").

    python seq2seq_title.py train configs/lcsts_budget.py      # into runs/lcsts_recipe_budget
    python seq2seq_title.py evaluate configs/lcsts_budget.py
"""
include("recipe.py")  # noqa: F821 (settings files may include another)
LEARNING_RATE = 3e-3  # blog: 1e-3; configs/budget.py's rate for CSL
EPOCHS = 10  # the same work on every CPU
LR_DECAY_EPOCHS = 10  # the rate falls along half a cosine, batch by batch (docs/training.md)
NO_REPEAT_NGRAM = 2  # titles without a repeated character pair, dev titles while training included (blog: 0)
NO_NEW_DOUBLE = True  # nor a character twice in a row where the article never has it so (制制; blog: off)
OUTPUT_DIR = OUTPUT_DIR + "_budget"  # noqa: F821 (the value so far)
