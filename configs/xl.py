"""The recipe at its largest measured size, for CSL: embeddings and LSTMs three times the blog's
width, and every character seen twice kept in the vocabulary. On CSL's dev set seeds 42 and 43
scored about half a point of ROUGE-L above configs/large.py's, but its mean over four seeds is
about large's mean over two (docs/log/results.md); an epoch takes about 1.6 times configs/large.py's.

    python seq2seq_title.py train configs/csl.py configs/recipe.py configs/xl.py      # into runs/csl_recipe_xl
    python seq2seq_title.py evaluate configs/csl.py configs/recipe.py configs/xl.py
"""
CHAR_SIZE = 384  # blog: 128
MIN_COUNT = 2  # blog: 32
OUTPUT_DIR = OUTPUT_DIR + "_xl"  # noqa: F821 (the value so far)
