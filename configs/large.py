"""The recipe at a larger size, for corpora of long technical articles such as CSL: embeddings and
LSTMs twice as wide, and every character seen 5 times kept in the vocabulary (scientific abstracts
have many rare characters, which the encoder would otherwise read as <unk>). On CSL it scores 1.7
ROUGE-L above the recipe alone (docs/log/results.md); on 2 CPU cores an epoch takes about twice as long.

    python seq2seq_title.py train configs/csl.py configs/recipe.py configs/large.py   # into runs/csl_recipe_large
    python seq2seq_title.py evaluate configs/csl.py configs/recipe.py configs/large.py
"""
CHAR_SIZE = 256  # blog: 128
MIN_COUNT = 5  # blog: 32
OUTPUT_DIR = OUTPUT_DIR + "_large"  # noqa: F821 (the value so far)
