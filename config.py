"""Settings for `python seq2seq_title.py train | generate`. Edit the values here.

Where a value differs from the blog's code (bojone/seq2seq f6f7bb7), its comment gives the blog's.
Relative paths are relative to this folder. Files in configs/ override some of these names for one
run (`python seq2seq_title.py train configs/csl.py`), and flags override both (docs/settings.md).
"""

# data
TRAIN_PATH = "data/lcsts/train.jsonl"  # a file or folder in DATA_FORMAT; blog: a MongoDB collection
DEV_PATH = "data/lcsts/dev.jsonl"  # dev loss each epoch; None for none (the blog had no dev set)
SAMPLES_PATH = "data/blog_samples.jsonl"  # articles titled at every epoch end
SAMPLE_NAMES = ("s1", "s2")  # the blog's two sample articles (plus the first dev article)
MIN_COUNT = 32  # keep characters seen at least this often in the training titles and articles
MAXLEN = 400  # article cut to this many characters; titles to MAXLEN - 2
DATA_FORMAT = "auto"  # "jsonl", "tsv" (title<TAB>content), "thucnews" (folder of .txt); auto: folder/.tsv/else jsonl
TITLE_FIELD = "title"  # JSON Lines field names
CONTENT_FIELD = "content"
ON_BAD_RECORD = "stop"  # a bad record stops `train` before anything is written; "skip": report, count, leave out
TOKENIZER = "char"  # "char": the blog's characters; "word": jieba words (the vocabulary remembers which)

# model
MODEL_VERSION = "2018"  # "2018": the code the blog was published with (f6f7bb7); "2019": the author's last (24ff08f)
CHAR_SIZE = 128  # embedding size; encoder LSTMs CHAR_SIZE // 2 each way, decoder LSTMs CHAR_SIZE
HIDDEN_SIZE = 512  # the Dense(relu) layer before the vocabulary logits
MASK_ENCODER = True  # encoder LSTMs skip the article's padding; blog: False (they read it)
COPY = False  # pointer-generator head: titles may copy article characters, rare ones included (blog: none)
COVERAGE = 0.0  # > 0: attention reads its coverage, and a coverage loss of this weight is added (blog: none)
DROPOUT = 0.0  # > 0: dropout of this rate on the embeddings, every LSTM's output and the head (training only; blog: none)
TITLE_DROPOUT = 0.0  # > 0: while training, each title character the decoder reads becomes <unk> at this rate (blog: none)
RECURRENT_DROPOUT = 0.0  # > 0: dropout of this rate on every LSTM's state as it enters each step (training only; blog: none)

# train
OUTPUT_DIR = "runs/lcsts"  # vocab.json, config.json and model.weights.h5 go here
BATCH_SIZE = 64
LEARNING_RATE = 1e-3  # Adam
LABEL_SMOOTHING = 0.0  # > 0: the target's probability is trained toward 1 - ε, the rest spread evenly (blog: none)
UNLIKELIHOOD = 0.0  # α > 0: token-level unlikelihood (Welleck et al. 2020; their α 1.0): at every title step, α · -log(1 - p)
# of each character the title already wrote (but the target) is added to its cross-entropy (blog: none)
EMA = 0.0  # > 0: an average of the weights (momentum EMA, e.g. 0.999) is evaluated and kept instead (blog: none)
EPOCHS = 20  # one pass over TRAIN_PATH each; blog: 100 epochs of 1,000 batches (800k articles)
STEPS_PER_EPOCH = None  # cap on batches per epoch; None = the whole training set (blog: 1000)
SHUFFLE = False  # reshuffle the training set every epoch; blog: False (read in stored order)
SHUFFLE_BUFFER = 10000  # with SHUFFLE: articles held at once by the shuffle buffer
BUCKET = False  # batch articles of similar length to cut padding; blog: False (stored order)
BUCKET_WINDOW = 100  # with BUCKET: batches' worth of articles sorted by length together
CHECKPOINT_STEPS = 500  # checkpoint every this many batches too (and at every epoch end); 0: epoch ends only
STRATEGY = "auto"  # tf.distribute: "auto" (all GPUs if several), "mirrored", "multiworker" (TF_CONFIG)
# CPU kernels: importing titlegen turns on TensorFlow's oneDNN (TF_ENABLE_ONEDNN_OPTS=1, about 1.6× faster
# training); set TF_ENABLE_ONEDNN_OPTS=0 in the environment to keep TensorFlow's own (docs/speed.md)
MIXED_PRECISION = False  # float16 compute with loss scaling (for GPUs); blog: float32
TENSORBOARD = False  # also write OUTPUT_DIR/tensorboard (metrics.csv and steps.csv are always written)
MONITOR = "val_loss"  # keep the best weights by "val_loss", "val_rouge_l", "val_lcs_f" (dev) or "loss" (training; blog)
# ("val_rouge_l" is evaluate's ROUGE-L, blind to repeats; "val_lcs_f" Lin's, which counts every character)
VAL_ROUGE_SAMPLES = 200  # dev articles titled each epoch for val_rouge_l; 0 for none (blog: none)
PATIENCE = None  # stop after this many epochs without a better MONITOR; None never stops early (blog)
TIME_LIMIT = None  # minutes: end before an epoch that would end past them (epochs' training and dev passes,
# across resumes); None: no limit (blog). The run keeps its best epoch so far, as with PATIENCE
LR_PATIENCE = None  # cut the learning rate by LR_FACTOR after this many epochs without a better MONITOR, and
LR_FACTOR = 0.5  # again after as many more; LR_PATIENCE None: Adam's rate stays LEARNING_RATE (blog)
LR_DECAY_EPOCHS = None  # > 0: Adam's rate falls from LEARNING_RATE to 0 along half a cosine, batch by batch, over
# this many epochs (set EPOCHS to it: a run with a fixed budget); None: the rate stays LEARNING_RATE (blog)
SEED = 42  # keras.utils.set_random_seed and the shuffling
MEMBERS = 1  # > 1: train that many models (seeds SEED, SEED + 1, ...) side by side, one per CPU core when
# there are enough (else all at once, one thread each), and decode them as one ensemble, averaging their
# next-character probabilities (blog: 1)

# pretraining on the articles alone (beyond the blog): before the title epochs, the model learns to write one sentence
# of an article from the rest of it, pairs the articles hold in any number (titlegen/pretrain.py, docs/training.md)
PRETRAIN_EPOCHS = 0  # > 0: that many epochs of pseudo pairs before the EPOCHS on titles, a fresh Adam each; 0: off (blog)
PRETRAIN_TASK = "gap"  # "gap": PEGASUS's gap sentence (Zhang et al. 2020; the sentence most like the rest, by ROUGE-1 F,
# taken out and generated; PEGASUS masks 30% of a document's sentences, a title is one); "lead": the first sentence,
# generated from the rest (Zhu et al. 2021)
PRETRAIN_PATH = None  # articles to pretrain on, in DATA_FORMAT, titles if any not read; None: TRAIN_PATH's own articles

# sequence-level training (beyond the blog; minimum risk training, Shen et al. 2016, as Ayana et al. 2016 applied
# it to LCSTS headlines): after the teacher-forced epochs, train on the model's own titles for their expected
# ROUGE-L F (evaluate's metric), mixed with the cross-entropy so titles stay fluent (docs/sequence.md)
SEQ_EPOCHS = 0  # > 0: that many epochs of the stage, from the best weights of the teacher-forced ones; 0: off (blog)
SEQ_CANDIDATES = 4  # k titles per article (Shen et al. sample 100; Edunov et al. 2018 find beams of 16 enough)
SEQ_REWARD = "rouge-l"  # each candidate's reward against the reference: "rouge-l", ROUGE-L F over characters as
# Lin (2004) defines it, every character counted; "clge", evaluate's (CLGE's rouge package counts each title's
# distinct characters, so a repeated substring costs nothing there: docs/sequence.md)
SEQ_BEAM = True  # the decoder's own beam-search title is one of the k, the others drawn from the model; False: all drawn
SEQ_REFERENCE = False  # True: the reference title is one of the k too (its cost 0)
SEQ_SAMPLE_TOP = 0  # > 0: each drawn character from that many most likely ones; 0: from them all (Shen et al.)
SEQ_SHARPNESS = 1.0  # α: the candidates' probabilities renormalised as p^α (Shen et al.: 5e-3 over 100 samples)
SEQ_CE_WEIGHT = 0.3  # λ: loss = λ·cross-entropy + (1 - λ)·risk (Edunov et al. 2018 mix in the same way)
SEQ_LEARNING_RATE = 1e-4  # Adam's rate in the stage, a fresh Adam without EMA (Shen et al. and Ayana et al.: smaller
# than the first stage's)
# decode
TOPK = 3  # beams; 1 is greedy search
MAX_TITLE_LEN = None  # decoding steps at most; None: the version's own (2018: 50, 2019: 64)
DECODER = "incremental"  # the same titles as "naive", the blog's, which re-runs the whole model every step
MIN_TITLE_LEN = 0  # no END before this many characters; 0 = off (blog)
NO_REPEAT_NGRAM = 0  # never repeat an n-gram of this size within a title; 0 = off (blog)
NO_NEW_DOUBLE = False  # a character never follows itself (制制) unless the article has it twice in a row (blog: off)
LENGTH_PENALTY = 0.0  # α of length normalisation, finished titles scored / ((5 + n) / 6) ** α; 0 = off (blog)
GENERATE_BATCH_SIZE = 64  # articles decoded together by `generate --file` (incremental decoder) and by `serve`
# serve (beyond the blog; docs/serve.md): an HTTP endpoint with TF Serving's REST body, concurrent requests'
# articles decoded together, at most GENERATE_BATCH_SIZE, a batch waiting at most SERVE_BATCH_WAIT ms for more
SERVE_HOST = "127.0.0.1"  # loopback: only this machine; "0.0.0.0" answers every interface
SERVE_PORT = 8501  # TF Serving's REST port
SERVE_BATCH_WAIT = 5.0  # milliseconds
SERVE_MAX_BYTES = 4 << 20  # a larger request body is refused (413)
