"""seq2seq-title: the blog's character-level seq2seq, its training and its decoders.

Importing the package (before TensorFlow) turns on oneDNN's CPU kernels, which TensorFlow
turns on by itself only on CPUs with AVX-512 and its newer extensions: the training step ran
1.6-1.7× faster with them on an AMD EPYC (bench/train.py, docs/speed.md). The user's own TF_ENABLE_ONEDNN_OPTS
wins: `TF_ENABLE_ONEDNN_OPTS=0` turns them off. Losses and titles agree with them off to float32
rounding (tests/test_cpu.py).
"""
import os
import sys

if "tensorflow" not in sys.modules:  # read once, when TensorFlow starts
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
