"""Three models from three seeds, trained side by side (all at once; on a 2-core machine each with
one TensorFlow thread) and decoded as one ensemble, the mean of their next-character
probabilities; for use after configs/recipe.py and configs/large.py, on CSL:

    python seq2seq_title.py train configs/csl.py configs/recipe.py configs/large.py configs/ensemble.py
    python seq2seq_title.py evaluate configs/csl.py configs/recipe.py configs/large.py configs/ensemble.py

docs/log/results.md has what each part gave: the members' batches of 32, two, three and four members.
"""
MEMBERS = 3  # seeds SEED, SEED + 1 and SEED + 2, in OUTPUT_DIR/member_1 ... member_3
BATCH_SIZE = 32  # blog: 64
PATIENCE = 5  # the recipe's 8 would keep the same epochs of the members measured, three epochs later
TIME_LIMIT = 57  # minutes a member trains at most, so the command ends within the hour; where members
# would train longer (slower CPUs), they stop sooner and keep their best epoch so far (docs/log/results.md)
OUTPUT_DIR = OUTPUT_DIR + "_ensemble"  # noqa: F821 (the value so far)
