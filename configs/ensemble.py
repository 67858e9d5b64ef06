"""Three models from three seeds, trained side by side (all at once; on a 2-core machine each with
one TensorFlow thread) and decoded as one ensemble, the mean of their next-character
probabilities; for use after configs/recipe.py and configs/large.py, on CSL:

    python seq2seq_title.py train configs/csl.py configs/recipe.py configs/large.py configs/ensemble.py
    python seq2seq_title.py evaluate configs/csl.py configs/recipe.py configs/large.py configs/ensemble.py

docs/results.md has what each part gave: the members' batches of 32, two, three and four members,
and the budget of 8 epochs with a falling rate.
"""
MEMBERS = 3  # seeds SEED, SEED + 1 and SEED + 2, in OUTPUT_DIR/member_1 ... member_3
BATCH_SIZE = 32  # blog: 64
LEARNING_RATE = 2e-3  # blog: 1e-3; twice Adam's rate at the start, falling to 0 over the 8 epochs:
EPOCHS = 8  # a fixed budget, the same work on every CPU (about 53 minutes on the slowest measured)
LR_DECAY_EPOCHS = 8  # the rate falls along half a cosine, batch by batch (docs/training.md)
TIME_LIMIT = 57  # minutes a member trains at most, so the command ends within the hour even on a CPU
# slower than those measured; members stopped by it keep their best epoch so far (docs/results.md)
OUTPUT_DIR = OUTPUT_DIR + "_ensemble"  # noqa: F821 (the value so far)
