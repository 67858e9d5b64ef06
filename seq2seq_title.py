"""Train a character-level seq2seq that writes a Chinese article's title, and use it.

    python seq2seq_title.py train                      # train on data/lcsts, save to runs/lcsts
    python seq2seq_title.py generate "文章内容"          # print one title for the article
    python seq2seq_title.py generate --file articles.txt --decoder incremental   # one title per line
    python seq2seq_title.py export --out exported/lcsts   # a SavedModel that titles without this repository

A Keras 3 port of Su Jianlin's 《玩转Keras之seq2seq自动生成标题》 (kexue.fm/archives/5861,
bojone/seq2seq). Hyperparameters live in config.py.
"""
import argparse
import json
import os
import select
import stat
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the screen

from tqdm import tqdm  # noqa: E402

import config  # noqa: E402
from titlegen.data import TitleError, write_json  # noqa: E402 (numpy only: quick to import)
from titlegen.sources import clean, read_all  # noqa: E402
from titlegen.decode import DECODERS, check_article  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def config_settings():
    """The training settings from config.py, paths resolved against this folder."""
    def path(p):
        return p if p is None or os.path.isabs(p) else os.path.join(HERE, p)

    return {
        "train_path": path(config.TRAIN_PATH), "dev_path": path(config.DEV_PATH),
        "samples_path": path(config.SAMPLES_PATH), "sample_names": list(config.SAMPLE_NAMES),
        "min_count": config.MIN_COUNT, "maxlen": config.MAXLEN,
        "char_size": config.CHAR_SIZE, "hidden_size": config.HIDDEN_SIZE,
        "mask_encoder": config.MASK_ENCODER, "version": config.MODEL_VERSION, "copy": config.COPY,
        "coverage": config.COVERAGE,
        "batch_size": config.BATCH_SIZE, "learning_rate": config.LEARNING_RATE,
        "epochs": config.EPOCHS, "steps_per_epoch": config.STEPS_PER_EPOCH,
        "shuffle": config.SHUFFLE, "monitor": config.MONITOR, "seed": config.SEED,
        "val_rouge_samples": config.VAL_ROUGE_SAMPLES, "patience": config.PATIENCE,
        "topk": config.TOPK, "max_title_len": config.MAX_TITLE_LEN, "decoder": config.DECODER,
        "min_title_len": config.MIN_TITLE_LEN, "no_repeat_ngram": config.NO_REPEAT_NGRAM,
        "length_penalty": config.LENGTH_PENALTY,
        "generate_batch_size": config.GENERATE_BATCH_SIZE,
        "output_dir": path(config.OUTPUT_DIR),
        "data_format": config.DATA_FORMAT, "title_field": config.TITLE_FIELD, "content_field": config.CONTENT_FIELD,
        "on_bad_record": config.ON_BAD_RECORD, "tokenizer": config.TOKENIZER,
        "shuffle_buffer": config.SHUFFLE_BUFFER, "bucket": config.BUCKET, "bucket_window": config.BUCKET_WINDOW,
        "checkpoint_steps": config.CHECKPOINT_STEPS, "strategy": config.STRATEGY,
        "mixed_precision": config.MIXED_PRECISION, "tensorboard": config.TENSORBOARD,
    }


TRAIN_KEYS = ("train_path", "dev_path", "epochs", "steps_per_epoch", "batch_size", "version", "monitor", "patience",
              "copy", "coverage", "data_format", "tokenizer", "bucket", "shuffle", "checkpoint_steps", "strategy",
              "mixed_precision", "tensorboard")


def cmd_train(args, settings):
    from titlegen.train import RESUMABLE, resume_settings, train

    out_dir = args.out or settings["output_dir"]
    given = {key: getattr(args, key) for key in TRAIN_KEYS if getattr(args, key) is not None}
    if args.skip_bad:
        given["on_bad_record"] = "skip"
    if args.resume:
        fixed = sorted(set(given) - set(RESUMABLE)) + (["--no-dev"] if args.no_dev else [])
        if fixed or args.overwrite:
            raise TitleError(f"--resume continues the run in {out_dir} with its own settings; only "
                             f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may be given "
                             f"(got {', '.join(fixed) or '--overwrite'})")
        train(resume_settings(out_dir, **given), out_dir, resume=True)
    else:
        settings.update(given)
        if args.no_dev:
            settings["dev_path"] = None
            if settings["monitor"].startswith("val_"):
                settings["monitor"] = "loss"
        train(settings, out_dir, overwrite=args.overwrite)
    print(f"trained model in {out_dir}; try: python seq2seq_title.py generate \"文章内容\"")


def read_articles(source):
    """Articles from a file or standard input ("-"): (line number, text or None, error or None).

    One article per line; a line starting with "{" is JSON with a "content" field.
    """
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")
    with stream:
        for lineno, raw in enumerate(stream, 1):
            yield (lineno, *parse_line(raw))


def parse_line(raw):
    """One input line (bytes) -> (text, None), or (None, what is wrong with it)."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    if line.lstrip().startswith("{"):
        try:
            line = json.loads(line).get("content")
        except (json.JSONDecodeError, AttributeError):
            return None, 'not valid JSON; expected {"content": ...} or plain text'
        if not isinstance(line, str):
            return None, 'no "content" string in the JSON object'
    if not clean(line).strip():
        return None, "empty article (nothing but spaces or control characters)"
    return line, None


def arriving_lines(size):
    """Standard input as it arrives, in lists of at most `size` lines (bytes): a list waits for
    its first line only and holds the lines already there with it, so a line written alone is
    answered alone (a co-process), and a complete pipe still comes in full batches."""
    fd, pending, ended = sys.stdin.fileno(), b"", False
    while not ended or pending:
        lines = []
        while len(lines) < size:
            if b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                lines.append(raw)
            elif ended or (lines and not select.select([fd], [], [], 0)[0]):
                break
            else:
                chunk = os.read(fd, 1 << 16)
                pending, ended = pending + chunk, not chunk
        if ended and pending and len(lines) < size:  # a last line without its newline
            lines.append(pending)
            pending = b""
        if lines:
            yield lines


DECODE_KEYS = ("topk", "decoder", "max_title_len", "min_title_len", "no_repeat_ngram", "length_penalty")


def load_titler(args, settings, xla=True):
    """The trained model in --model (or OUTPUT_DIR), with the decoding settings of config.py and
    the command line; the model's own settings (version, maxlen) come from its folder."""
    from titlegen.runfolder import load_trained, make_titler  # never the training module

    model, vocab, config = load_trained(args.model or settings["output_dir"])
    decode = {"version": "2018", **config["settings"], **{k: settings[k] for k in DECODE_KEYS}}
    for key in DECODE_KEYS:
        if getattr(args, key, None) is not None:
            decode[key] = getattr(args, key)
    return make_titler(model, vocab, decode, xla)


def batch_size(titler, args, settings):
    """Articles decoded together: one for the naive decoder, else --batch-size or GENERATE_BATCH_SIZE."""
    return 1 if titler.decoder == "naive" else args.batch_size or settings["generate_batch_size"]


def title_all(titler, articles, args, settings):
    """Titles for many articles, a batch at a time, with a progress bar when there is more than one."""
    size = batch_size(titler, args, settings)
    titles = []
    with tqdm(total=len(articles), unit="article", disable=len(articles) <= size, file=sys.stderr) as bar:
        for i in range(0, len(articles), size):
            titles.extend(titler(articles[i:i + size]))
            bar.update(len(articles[i:i + size]))
    return titles


def cmd_generate(args, settings):
    if (args.article is None) == (args.file is None):
        raise TitleError('give one article ("文章内容", or - for standard input) or --file PATH')
    source = args.file or (args.article if args.article == "-" else None)
    if source is None:
        check_article(args.article)  # before loading anything
    elif source != "-" and not os.path.isfile(source):
        raise TitleError(f"{source}: no such file; expected one article per line")
    # one article from the command line: compiling the encoder with XLA costs more than it saves
    titler = load_titler(args, settings, xla=source is not None)
    if source is None:
        print(titler([args.article])[0])
        return 0

    name = "<stdin>" if source == "-" else source
    if source == "-" and not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):  # a pipe or a terminal
        lineno, bad = 0, 0
        for lines in arriving_lines(batch_size(titler, args, settings)):
            rows = [(lineno + i, *parse_line(raw)) for i, raw in enumerate(lines, 1)]
            lineno += len(lines)
            bad += write_titles(rows, name, args, titler)
        return 1 if bad else 0
    rows = list(read_articles(source))
    bad = write_titles(rows, name, args, lambda texts: title_all(titler, texts, args, settings))
    return 1 if bad else 0


def write_titles(rows, name, args, title):
    """Print the title of each (line number, text, error) row in order, or its error, and flush;
    returns how many rows were bad."""
    good = [(n, text) for n, text, error in rows if error is None]
    titles = dict(zip((n for n, _ in good), title([text for _, text in good]) if good else []))
    for n, _, error in rows:
        if error is not None:
            print(f"error: {name}:{n}: {error}", file=sys.stderr)
        if args.jsonl:
            out = {"line": n, "title": titles[n]} if error is None else {"line": n, "error": error}
            print(json.dumps(out, ensure_ascii=False))
        else:
            print(titles.get(n, ""))  # a bad line keeps its place as an empty line
    sys.stdout.flush()
    return len(rows) - len(good)


def cmd_evaluate(args, settings):
    from titlegen.metrics import METRICS, copy_shares, corpus_scores, lead

    data = args.data or settings["dev_path"]
    if not data:
        raise TitleError("nothing to evaluate: pass --data PATH or set DEV_PATH in config.py")
    rows = read_all(data, args.format or settings["data_format"],
                    (settings["title_field"], settings["content_field"]))
    titler = load_titler(args, settings)
    contents, references = [r["content"] for r in rows], [r["title"] for r in rows]
    predictions = title_all(titler, contents, args, settings)
    model_dir = args.model or settings["output_dir"]
    stem = os.path.splitext(os.path.basename(data))[0]
    out = args.out or os.path.join(model_dir, f"predictions_{os.path.basename(os.path.dirname(data))}_{stem}.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for line, (ref, pred) in enumerate(zip(references, predictions), 1):
            f.write(json.dumps({"line": line, "reference": ref, "prediction": pred}, ensure_ascii=False) + "\n")
    lead_titles, k = lead(contents, references)
    scores = {"model": corpus_scores(predictions, references), f"LEAD-{k}": corpus_scores(lead_titles, references)}
    decoding = titler.settings
    shares = copy_shares(predictions, contents, set("".join(titler.vocab.chars)))  # words: their characters
    write_json(os.path.splitext(out)[0] + ".scores.json",
               {"data": data, "articles": len(rows), "decoding": decoding, "scores": scores,
                "title_characters": shares})
    print(f"{len(rows)} articles of {data}; predictions in {out}")
    print("| | " + " | ".join(m.upper() for m in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, row in scores.items():
        print(f"| {name} | " + " | ".join(f"{row[m]:.2f}" for m in METRICS) + " |")
    print(f"title characters: {shares['in_article']:.1f}% stand in the article, "
          f"{shares['out_of_vocab']:.1f}% are outside the vocabulary")


def cmd_export(args, settings):
    from titlegen.export import export

    titler = load_titler(args, settings)
    out = args.out or os.path.join(args.model or settings["output_dir"], "export")
    path = export(titler, out)
    print(f"SavedModel in {path} (endpoint serve: article strings -> title, score); in Python:\n"
          f"  titles = tf.saved_model.load({path!r}); titles.serve(tf.constant([\"文章内容\"]))")


def add_decoding_args(p, export=False):
    p.add_argument("--model", help="folder of a trained model (default: config.OUTPUT_DIR)")
    p.add_argument("--topk", type=int, help="beam width; 1 is greedy (default: config.TOPK)")
    if not export:
        p.add_argument("--decoder", choices=DECODERS, help="default: config.DECODER")
        p.add_argument("--batch-size", type=int, help="articles decoded together (default: config.GENERATE_BATCH_SIZE)")
    p.add_argument("--min-len", dest="min_title_len", type=int, help="no END before this many characters")
    p.add_argument("--no-repeat-ngram", type=int, help="never repeat an n-gram of this size in a title")
    p.add_argument("--max-len", dest="max_title_len", type=int, help="decoding steps at most")
    p.add_argument("--length-penalty", type=float, help="length normalisation α (0 = off, the blog's search)")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="seq2seq_title.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on TRAIN_PATH (config.py), save to OUTPUT_DIR")
    p.add_argument("--train", dest="train_path", help="training data: a JSON Lines or TSV file, or a THUCNews-style "
                   "folder (default: config.TRAIN_PATH)")
    p.add_argument("--dev", dest="dev_path", help="dev data, as --train (default: config.DEV_PATH)")
    p.add_argument("--format", dest="data_format", choices=["auto", "jsonl", "tsv", "thucnews"],
                   help="layout of --train and --dev (default: config.DATA_FORMAT)")
    p.add_argument("--skip-bad", action="store_true", help="report and leave out bad records instead of stopping")
    p.add_argument("--tokenizer", choices=["char", "word"], help="characters or jieba words (default: config.TOKENIZER)")
    p.add_argument("--no-dev", action="store_true", help="no dev set; monitor the training loss (the blog)")
    p.add_argument("--out", help="output folder (default: config.OUTPUT_DIR)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: config.EPOCHS)")
    p.add_argument("--steps-per-epoch", type=int, help="at most this many batches per epoch")
    p.add_argument("--batch-size", type=int, help="articles per batch (default: config.BATCH_SIZE)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in the output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from its checkpoint")
    p.add_argument("--checkpoint-steps", type=int, help="checkpoint every N batches too (default: config.CHECKPOINT_STEPS)")
    p.add_argument("--shuffle", action="store_const", const=True, help="shuffle every epoch (default: config.SHUFFLE)")
    p.add_argument("--bucket", action="store_const", const=True, help="batch articles of similar length (default: config.BUCKET)")
    p.add_argument("--strategy", choices=["auto", "mirrored", "multiworker"], help="default: config.STRATEGY")
    p.add_argument("--mixed-precision", action="store_const", const=True, help="float16 compute (GPU; default: config.MIXED_PRECISION)")
    p.add_argument("--tensorboard", action="store_const", const=True, help="also write OUT/tensorboard")
    p.add_argument("--version", choices=["2018", "2019"], help="model version (default: config.MODEL_VERSION)")
    p.add_argument("--monitor", choices=["loss", "val_loss", "val_rouge_l"], help="default: config.MONITOR")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better monitor")
    p.add_argument("--copy", action="store_const", const=True, help="add the copy head (default: config.COPY)")
    p.add_argument("--coverage", type=float, help="coverage loss weight; > 0 adds coverage (default: config.COVERAGE)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help='print a title for an article: generate "文章内容"')
    p.add_argument("article", nargs="?", help="the article's text; - reads articles from standard input")
    p.add_argument("--file", help="articles, one per line (plain text, or JSON with a content field)")
    p.add_argument("--jsonl", action="store_true", help='write {"line": N, "title": ...} per article')
    add_decoding_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="title a JSON Lines set and score the titles (ROUGE, BLEU), beside LEAD")
    p.add_argument("--data", help="titled articles: JSON Lines, TSV or a THUCNews-style folder (default: config.DEV_PATH)")
    p.add_argument("--format", choices=["auto", "jsonl", "tsv", "thucnews"], help="layout of --data (default: config.DATA_FORMAT)")
    p.add_argument("--out", help="predictions file (default: MODEL/predictions_<folder>_<file>.jsonl)")
    add_decoding_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="write a TensorFlow SavedModel (TF Serving layout) that titles article strings")
    p.add_argument("--out", help="folder for the numbered version folders (default: MODEL/export)")
    add_decoding_args(p, export=True)
    p.set_defaults(func=cmd_export)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        return args.func(args, config_settings()) or 0
    except TitleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(str(e) or "interrupted; the best weights saved so far are kept", file=sys.stderr)
        return 130


def quick_exit(code):
    """End `generate` without the interpreter's teardown of TensorFlow (0.8 s of a 4 s cold title on
    the machine in docs/speed.md): its output is flushed, and it writes no file that could be left
    half-written."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader left (`| head -1`): nothing more to write
            pass
    os._exit(code)


if __name__ == "__main__":
    status = main()
    if sys.argv[1:2] == ["generate"]:
        quick_exit(status)
    sys.exit(status)
