"""Train a character-level seq2seq that writes a Chinese article's title, and use it.

    python seq2seq_title.py train                      # train on data/lcsts, save to runs/lcsts
    python seq2seq_title.py generate "文章内容"          # print one title for the article
    python seq2seq_title.py generate --file articles.txt --decoder incremental   # one title per line
    python seq2seq_title.py export --out exported/lcsts   # a SavedModel that titles without this repository
    python seq2seq_title.py serve                      # HTTP on 127.0.0.1:8501, TF Serving's REST body, a page at /

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

import config  # noqa: E402
from titlegen.errors import TitleError  # noqa: E402 (these three import no TensorFlow: quick)
from titlegen.settings import FIELDS, choices, load, resumed  # noqa: E402
from titlegen.text import check_article, parse_line  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def flags_of(args):
    """The settings given as flags: {field: value}, those not given left out."""
    return {key: value for key, value in vars(args).items() if key in FIELDS and value is not None}


def settings_of(args):
    """config.py, then the override files given, then the flags given: a titlegen Settings."""
    settings = load(config, HERE, args.configs, flags_of(args))
    if getattr(args, "no_dev", False):
        monitor = settings.train.monitor
        settings = settings.replace(dev_path=None, monitor="loss" if monitor.startswith("val_") else monitor)
    return settings


def cmd_train(args):
    from titlegen.train_ensemble import train_members  # no TensorFlow: an ensemble's members import it
    from titlegen.runfolder import RunFolder

    settings = settings_of(args)
    out_dir = settings.train.output_dir
    if args.resume:
        if args.overwrite or args.no_dev:
            raise TitleError(f"--resume continues the run in {out_dir} as it was; it takes neither "
                             "--overwrite nor --no-dev")
        changes = {k: v for k, v in flags_of(args).items() if k != "output_dir"}  # the folder is not a change
        folder = RunFolder(out_dir)
        if folder.holds_ensemble():
            train_members(resumed(folder.read_record()[0], changes), out_dir, resume=True, changes=changes)
        else:
            from titlegen.train import resume_settings, train

            train(resume_settings(out_dir, **changes), out_dir, resume=True)
    elif settings.train.members > 1:  # an ensemble (fewer than 1 is a settings error)
        train_members(settings, out_dir, overwrite=args.overwrite)
    else:
        from titlegen.train import train

        train(settings, out_dir, overwrite=args.overwrite)
    model = "" if os.path.abspath(out_dir) == os.path.abspath(load(config, HERE).train.output_dir) else f" --model {out_dir}"
    print(f"trained model in {out_dir}; try: python seq2seq_title.py generate{model} \"文章内容\"")


def read_articles(source, content_field):
    """Articles from a file or standard input ("-"): (line number, text or None, error or None)."""
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")
    with stream:
        for lineno, raw in enumerate(stream, 1):
            yield (lineno, *parse_line(raw, content_field))


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


def load_titler(settings):
    """The trained model in --model (or OUTPUT_DIR) with the decoding settings of config.py, the
    override files and the flags; the model's own settings (version, maxlen) come from its folder.

    Its encoder runs without XLA: XLA compiled each padded batch shape anew (about a second each),
    and a cold `generate --file` of the 1,000 LCSTS dev articles took 18-20 s with it, 8.5-9.5 s
    without, the same titles (docs/speed.md)."""
    from titlegen.decoders import load_titler as load  # never the training module

    return load(settings.train.output_dir, settings.decode, xla=False)


def batch_size(titler, settings):
    """Articles decoded together: one for the naive decoder, else GENERATE_BATCH_SIZE (--batch-size)."""
    return 1 if titler.options.decoder == "naive" else settings.serve.generate_batch_size


def cmd_generate(args):
    if (args.article is None) == (args.file is None):
        raise TitleError('give one article ("文章内容", or - for standard input) or --file PATH')
    source = args.file or (args.article if args.article == "-" else None)
    if source is None:
        check_article(args.article)  # before loading anything
    elif source != "-" and not os.path.isfile(source):
        raise TitleError(f"{source}: no such file; expected one article per line")
    settings = settings_of(args)
    titler = load_titler(settings)
    if source is None:
        print(titler([args.article])[0])
        return 0

    name, field = "<stdin>" if source == "-" else source, settings.data.content_field
    if source == "-" and not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):  # a pipe or a terminal
        lineno, bad = 0, 0
        for lines in arriving_lines(batch_size(titler, settings)):
            rows = [(lineno + i, *parse_line(raw, field)) for i, raw in enumerate(lines, 1)]
            lineno += len(lines)
            bad += write_titles(rows, name, args, titler)
        return 1 if bad else 0
    from titlegen.decoders import title_in_batches

    rows = list(read_articles(source, field))
    bad = write_titles(rows, name, args, lambda texts: title_in_batches(titler, texts, batch_size(titler, settings)))
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


def cmd_evaluate(args):
    from titlegen.evaluation import evaluate, predictions_path, report

    settings = settings_of(args)
    data = args.data or settings.data.dev_path
    if not data:
        raise TitleError("nothing to evaluate: pass --data PATH or set DEV_PATH in config.py")
    titler = load_titler(settings)
    out = args.predictions or predictions_path(settings.train.output_dir, data)
    result = evaluate(titler, batch_size(titler, settings), data, settings.data, out)
    print("\n".join(report(result, out)))


def cmd_export(args):
    from titlegen.export import export

    settings = settings_of(args)
    titler = load_titler(settings)
    path = export(titler, args.export_dir or os.path.join(settings.train.output_dir, "export"))
    print(f"SavedModel in {path} (endpoint serve: article strings -> title, score); in Python:\n"
          f"  titles = tf.saved_model.load({path!r}); titles.serve(tf.constant([\"文章内容\"]))")


def cmd_serve(args):
    from titlegen.serve import listen, serve  # no TensorFlow in it; uvicorn once serving

    settings = settings_of(args)
    served = settings.serve
    try:  # bound before the model loads: a port in use is said at once
        sock = listen(served.serve_host, served.serve_port)
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else e.strerror or str(e)  # socket.gaierror: a host not found
        raise TitleError(f"cannot listen on {served.serve_host}:{served.serve_port} ({why}); "
                         "pass --port N (0: any free port) or --host ADDRESS") from None
    titler = load_titler(settings)
    titler.warm_up()  # batches come in every size: traced for any shape before the first request

    name = args.name or os.path.basename(os.path.normpath(settings.train.output_dir))
    why = serve(titler, name, served, batch_size(titler, settings), settings.data.content_field, sock,
                log=lambda line: print(line, flush=True))
    print(f"stopped ({why}); every request in flight was answered", flush=True)
    return 0


def add_settings_files(p, positional=True):
    if positional:
        p.add_argument("configs", nargs="*", metavar="CONFIG.py",
                       help="files of config.py names that override it, in order (e.g. configs/csl.py)")
    else:
        p.add_argument("--config", dest="configs", action="append", default=[], metavar="CONFIG.py",
                       help="a file of config.py names that override it (e.g. configs/csl.py); may repeat")


def add_decoding_args(p, export=False):
    p.add_argument("--model", dest="output_dir", help="folder of a trained model (default: config.OUTPUT_DIR)")
    p.add_argument("--topk", type=int, help="beam width; 1 is greedy (default: config.TOPK)")
    if not export:
        p.add_argument("--decoder", choices=choices("decoder"), help="default: config.DECODER")
        p.add_argument("--batch-size", dest="generate_batch_size", type=int,
                       help="articles decoded together (default: config.GENERATE_BATCH_SIZE)")
    p.add_argument("--min-len", dest="min_title_len", type=int, help="no END before this many characters")
    p.add_argument("--no-repeat-ngram", type=int, help="never repeat an n-gram of this size in a title")
    p.add_argument("--no-new-double", action="store_const", const=True,
                   help="a character never follows itself unless the article has it twice in a row")
    p.add_argument("--max-len", dest="max_title_len", type=int, help="decoding steps at most")
    p.add_argument("--length-penalty", type=float, help="length normalisation α (0 = off, the blog's search)")


def add_skip_bad(p):
    p.add_argument("--skip-bad", dest="on_bad_record", action="store_const", const="skip",
                   help="report and leave out bad records instead of stopping (default: config.ON_BAD_RECORD)")


def add_train_args(p):
    p.add_argument("--train", dest="train_path", help="training data: a JSON Lines or TSV file, or a THUCNews-style "
                   "folder (default: config.TRAIN_PATH)")
    p.add_argument("--dev", dest="dev_path", help="dev data, as --train (default: config.DEV_PATH)")
    p.add_argument("--format", dest="data_format", choices=choices("data_format"),
                   help="layout of --train and --dev (default: config.DATA_FORMAT)")
    add_skip_bad(p)
    p.add_argument("--tokenizer", choices=choices("tokenizer"), help="characters or jieba words (default: config.TOKENIZER)")
    p.add_argument("--no-dev", action="store_true", help="no dev set; monitor the training loss (the blog)")
    p.add_argument("--out", dest="output_dir", help="output folder (default: config.OUTPUT_DIR)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: config.EPOCHS)")
    p.add_argument("--steps-per-epoch", type=int, help="at most this many batches per epoch")
    p.add_argument("--batch-size", type=int, help="articles per batch (default: config.BATCH_SIZE)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in the output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from its checkpoint, "
                   "with its own settings (config.py and CONFIG.py files only say where it is)")
    p.add_argument("--checkpoint-steps", type=int, help="checkpoint every N batches too (default: config.CHECKPOINT_STEPS)")
    p.add_argument("--shuffle", action="store_const", const=True, help="shuffle every epoch (default: config.SHUFFLE)")
    p.add_argument("--bucket", action="store_const", const=True, help="batch articles of similar length (default: config.BUCKET)")
    p.add_argument("--strategy", choices=choices("strategy"), help="default: config.STRATEGY")
    p.add_argument("--mixed-precision", action="store_const", const=True, help="float16 compute (GPU; default: config.MIXED_PRECISION)")
    p.add_argument("--tensorboard", action="store_const", const=True, help="also write OUT/tensorboard")
    p.add_argument("--version", choices=choices("version"), help="model version (default: config.MODEL_VERSION)")
    p.add_argument("--monitor", choices=choices("monitor"), help="default: config.MONITOR")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better monitor")
    p.add_argument("--time-limit", type=float, help="minutes: end before an epoch that would end past them "
                   "(default: config.TIME_LIMIT)")
    p.add_argument("--lr-patience", type=int, help="cut the learning rate by LR_FACTOR after this many epochs "
                   "without a better monitor (default: config.LR_PATIENCE)")
    p.add_argument("--lr-decay-epochs", type=int, help="the learning rate falls to 0 along half a cosine over "
                   "this many epochs (default: config.LR_DECAY_EPOCHS)")
    p.add_argument("--seq-epochs", type=int, help="epochs of the sequence-level stage after teacher forcing; with "
                   "--resume, a finished run continues with it (default: config.SEQ_EPOCHS)")
    p.add_argument("--seq-candidates", type=int, help="candidate titles per article in the stage (config.SEQ_CANDIDATES)")
    p.add_argument("--seq-reward", choices=choices("seq_reward"), help="the stage's reward (config.SEQ_REWARD)")
    p.add_argument("--seq-sample", dest="seq_beam", action="store_const", const=False,
                   help="the stage's candidates all sampled, the beam-search title not among them (config.SEQ_BEAM)")
    p.add_argument("--seq-reference", action="store_const", const=True,
                   help="the reference is one of the stage's candidates (config.SEQ_REFERENCE)")
    p.add_argument("--seq-sample-top", type=int, help="the stage draws each character from this many most likely "
                   "(config.SEQ_SAMPLE_TOP)")
    p.add_argument("--seq-sharpness", type=float, help="the stage's α (config.SEQ_SHARPNESS)")
    p.add_argument("--seq-ce-weight", type=float, help="the stage's λ, the cross-entropy's weight (config.SEQ_CE_WEIGHT)")
    p.add_argument("--seq-learning-rate", type=float, help="the stage's Adam rate (config.SEQ_LEARNING_RATE)")
    p.add_argument("--copy", action="store_const", const=True, help="add the copy head (default: config.COPY)")
    p.add_argument("--coverage", type=float, help="coverage loss weight; > 0 adds coverage (default: config.COVERAGE)")
    p.add_argument("--dropout", type=float, help="dropout rate while training (default: config.DROPOUT)")
    p.add_argument("--title-dropout", type=float, help="rate at which training reads a title character as <unk> "
                   "(default: config.TITLE_DROPOUT)")
    p.add_argument("--recurrent-dropout", type=float, help="dropout rate on every LSTM's state at each step while "
                   "training (default: config.RECURRENT_DROPOUT)")
    p.add_argument("--label-smoothing", type=float, help="label smoothing ε (default: config.LABEL_SMOOTHING)")
    p.add_argument("--ema", type=float, help="keep an average of the weights with this momentum (default: config.EMA)")
    p.add_argument("--seed", type=int, help="random seed (default: config.SEED)")
    p.add_argument("--members", type=int, help="train an ensemble of this many models, side by side "
                   "(default: config.MEMBERS)")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="seq2seq_title.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on TRAIN_PATH (config.py), save to OUTPUT_DIR")
    add_settings_files(p)
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help='print a title for an article: generate "文章内容"')
    p.add_argument("article", nargs="?", help="the article's text; - reads articles from standard input")
    p.add_argument("--file", help="articles, one per line (plain text, or JSON with a CONTENT_FIELD field)")
    p.add_argument("--jsonl", action="store_true", help='write {"line": N, "title": ...} per article')
    add_settings_files(p, positional=False)
    add_decoding_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="title a titled set and score the titles (ROUGE, BLEU), beside LEAD")
    add_settings_files(p)
    p.add_argument("--data", help="titled articles: JSON Lines, TSV or a THUCNews-style folder (default: config.DEV_PATH)")
    p.add_argument("--format", dest="data_format", choices=choices("data_format"),
                   help="layout of --data (default: config.DATA_FORMAT)")
    p.add_argument("--out", dest="predictions", help="predictions file (default: MODEL/predictions_<folder>_<file>.jsonl)")
    add_skip_bad(p)
    add_decoding_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("serve", help="answer HTTP requests with titles (TF Serving's REST body) and a page at /")
    add_settings_files(p, positional=False)
    add_decoding_args(p)
    p.add_argument("--host", dest="serve_host", help="address to listen on (default: config.SERVE_HOST, loopback)")
    p.add_argument("--port", dest="serve_port", type=int, help="port; 0 takes a free one (default: config.SERVE_PORT)")
    p.add_argument("--batch-wait", dest="serve_batch_wait", type=float,
                   help="ms a request waits for others to be decoded with it (default: config.SERVE_BATCH_WAIT)")
    p.add_argument("--name", help="the model's name in /v1/models/NAME (default: the model folder's name)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="write a TensorFlow SavedModel (TF Serving layout) that titles article strings")
    add_settings_files(p)
    p.add_argument("--out", dest="export_dir", help="folder for the numbered version folders (default: MODEL/export)")
    add_decoding_args(p, export=True)
    p.set_defaults(func=cmd_export)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        return args.func(args) or 0
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
