"""CSL, the CLGE benchmark's paper abstracts and their titles (data/README.md):

    python seq2seq_title.py train configs/csl.py
    python seq2seq_title.py evaluate configs/csl.py

A file of config.py names that replace its values (nanoGPT's convention); later files and the
command line's flags win over earlier ones, and a file sees the values set before it.
"""
TRAIN_PATH = "data/csl/train.jsonl"
DEV_PATH = "data/csl/dev.jsonl"
OUTPUT_DIR = "runs/csl"
