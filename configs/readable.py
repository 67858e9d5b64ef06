"""The recipe (configs/recipe.py), then one epoch of the sequence-level stage: minimum risk training
on the model's own titles (its beam-search title and 5 drawn) for Lin's ROUGE-L F, which, unlike
evaluate's, counts a repeated substring against a title. On LCSTS it cut the dev titles that
repeat a substring from 50.7% to 32.3% at about the same ROUGE-L; `--no-repeat-ngram 2` then takes
them to 0.2% (docs/sequence.md has what each setting gave).

    python seq2seq_title.py train configs/readable.py      # LCSTS, into runs/lcsts_readable
    python seq2seq_title.py evaluate configs/readable.py
    python seq2seq_title.py evaluate configs/readable.py --no-repeat-ngram 2
"""
base = OUTPUT_DIR  # noqa: F821 (the value so far: config.py's, or an earlier file's)
include("recipe.py")  # noqa: F821 (settings files may include another)
SEQ_EPOCHS = 1  # a second epoch scored lower on the 200 dev titles (docs/sequence.md)
SEQ_CANDIDATES = 6  # the beam-search title and 5 drawn
SEQ_SAMPLE_TOP = 5  # each drawn character from the 5 most likely
SEQ_SHARPNESS = 0.05
SEQ_CE_WEIGHT = 0.05
OUTPUT_DIR = base + "_readable"
