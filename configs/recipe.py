"""A training recipe beyond the blog, for titles you would keep: the copy model, trained with
shuffled and length-bucketed batches, dropout, label smoothing and an average of the weights,
keeping the epoch whose dev titles score best (docs/log/results.md has what each part gave).

    python seq2seq_title.py train configs/recipe.py                  # LCSTS, into runs/lcsts_recipe
    python seq2seq_title.py train configs/csl.py configs/recipe.py   # CSL, into runs/csl_recipe
    python seq2seq_title.py evaluate configs/recipe.py
"""
COPY = True  # titles copy the article's characters, rare ones included
SHUFFLE = True  # a new order every epoch
BUCKET = True  # batches of similar article lengths
DROPOUT = 0.25
LABEL_SMOOTHING = 0.1
EMA = 0.995  # the weights averaged over about the last 200 batches are evaluated and kept
MONITOR = "val_rouge_l"  # keep the epoch whose dev titles (VAL_ROUGE_SAMPLES of them) score best
EPOCHS = 40
PATIENCE = 8  # stop after 8 epochs without better dev titles
OUTPUT_DIR = OUTPUT_DIR + "_recipe"  # noqa: F821 (the value so far: config.py's, or an earlier file's)
