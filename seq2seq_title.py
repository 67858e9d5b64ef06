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
import dataclasses
import json
import os
import select
import stat
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the screen

import config  # noqa: E402
from titlegen.errors import TitleError  # noqa: E402 (these three import no TensorFlow: quick)
from titlegen.settings import FIELDS, FLAG, MODEL, load, load_traced, resumed, setting_flag  # noqa: E402
from titlegen.text import check_article, parse_line  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def flags_of(args):
    """The settings given as flags: {field: value}, those not given left out."""
    return {key: value for key, value in vars(args).items() if key in FIELDS and value is not None}


def settings_of(args):
    """config.py, then the override files given, then the flags given: a titlegen Settings."""
    return traced_settings(args)[0]


def traced_settings(args):
    """settings_of's settings, and where each field's value came from (settings.load_traced)."""
    settings, origins = load_traced(config, HERE, args.configs, flags_of(args))
    if getattr(args, "no_dev", False):
        monitor = settings.train.monitor
        settings = settings.replace(dev_path=None, monitor="loss" if monitor.startswith("val_") else monitor)
    return settings, origins


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


def load_titler(args):
    """(settings, the trained model in --model (or OUTPUT_DIR) as a Titler): the model's own settings and
    decoding, from its folder, the decoding changed where the override files or flags given set it
    (config.py's decoding is what `train` stores, and changes no trained model). The decoding in
    effect goes to standard error, one line. Without XLA, which compiles each batch shape anew
    (decoders.py, docs/log/speed.md)."""
    from titlegen.decoders import load_titler as load  # never the training module

    settings, origins = traced_settings(args)
    titler = load(settings.train.output_dir, settings.decode, origins, xla=False)
    print(decoding_line(titler), file=sys.stderr, flush=True)
    return settings, titler


def decoding_origins(titler):
    """Where each of a titler's decoding settings came from, in words: {field: "the model", an
    override file's path, or the flag that set it}."""
    def said(name, origin):
        return "the model" if origin == MODEL else FLAG_NAMES[name] if origin == FLAG else origin

    return {name: said(name, titler.origins.get(name, MODEL)) for name in dataclasses.asdict(titler.options)}


def decoding_line(titler):
    """The decoding a titler writes with, each value beside where it came from: `decoding: topk 3,
    ... (the model); no_repeat_ngram 2 (configs/x.py); topk 5 (--topk)`."""
    grouped = {}
    for (name, value), origin in zip(dataclasses.asdict(titler.options).items(), decoding_origins(titler).values()):
        grouped.setdefault(origin, []).append(f"{name} {value}")
    order = sorted(grouped, key=lambda origin: (origin != "the model", origin.startswith("--")))  # model, files, flags
    return "decoding: " + "; ".join(f"{', '.join(grouped[origin])} ({origin})" for origin in order)


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
    settings, titler = load_titler(args)
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

    with sys.stdin.buffer if source == "-" else open(source, "rb") as stream:
        rows = [(lineno, *parse_line(raw, field)) for lineno, raw in enumerate(stream, 1)]
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
    settings, titler = load_titler(args)
    out = args.predictions or predictions_path(settings.train.output_dir, data)
    result = evaluate(titler, batch_size(titler, settings), data, settings.data, out, decoding_origins(titler))
    print("\n".join(report(result, out)))


def cmd_export(args):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise TitleError(f"export writes a TensorFlow SavedModel, on TensorFlow's backend only (this is "
                         f"{keras.backend.backend()}); run it with KERAS_BACKEND=tensorflow, the model folder is the same")
    from titlegen.export import export

    settings, titler = load_titler(args)
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
    settings, titler = load_titler(args)
    titler.warm_up()  # batches come in every size: traced for any shape before the first request

    name = args.name or os.path.basename(os.path.normpath(settings.train.output_dir))
    why = serve(titler, name, served, batch_size(titler, settings), settings.data.content_field, sock,
                log=lambda line: print(line, flush=True), origins=decoding_origins(titler))
    print(f"stopped ({why}); every request in flight was answered", flush=True)
    return 0


def add_settings_files(p, positional=True):
    if positional:
        p.add_argument("configs", nargs="*", metavar="CONFIG.py",
                       help="files of config.py names that override it, in order (e.g. configs/csl.py)")
    else:
        p.add_argument("--config", dest="configs", action="append", default=[], metavar="CONFIG.py",
                       help="a file of config.py names that override it (e.g. configs/csl.py); may repeat")


def add_settings_flags(p, flags, default="config.{}"):
    """Flags that set a settings field: (flag, help[, field[, constant]]), the field the flag's name
    unless given. Its type and choices are the field's; a True/False field's flag turns it on (or
    sets `constant`), and its opposite (`opposite`) sets the other value; the help names the
    default (`default`, given the config.py name)."""
    for flag, help, *rest in flags:
        name = rest[0] if rest else flag[2:].replace("-", "_")
        kind, allowed, config_name = setting_flag(name)
        help = f"{help} (default: {default.format(config_name)})"
        if kind is bool:
            const = rest[1] if len(rest) > 1 else True
            p.add_argument(flag, dest=name, action="store_const", const=const, help=help)
            p.add_argument(opposite(flag), dest=name, action="store_const", const=not const,
                           help=f"the opposite of {flag}")
        elif len(rest) > 1:
            p.add_argument(flag, dest=name, action="store_const", const=rest[1], help=help)
        else:
            p.add_argument(flag, dest=name, type=kind, choices=allowed, help=help)


def opposite(flag):
    """The flag that sets a True/False setting the other way: --copy / --no-copy, --no-new-double /
    --allow-new-double, --seq-sample / --seq-beam."""
    return OPPOSITES.get(flag, "--no-" + flag[2:])


OPPOSITES = {"--no-new-double": "--allow-new-double", "--seq-sample": "--seq-beam"}
MODEL_DEFAULT = "the model's own, which train stored from config.{}"  # generate, evaluate, serve, export: decoding


SKIP_BAD = ("--skip-bad", "report and leave out bad records instead of stopping", "on_bad_record", "skip")
FORMAT = ("--format", "layout of the data", "data_format")
DECODING_FLAGS = (
    ("--model", "folder of a trained model", "output_dir"), ("--topk", "beam width; 1 is greedy"),
    ("--min-len", "no END before this many characters", "min_title_len"),
    ("--no-repeat-ngram", "never repeat an n-gram of this size in a title"),
    ("--no-new-double", "a character never follows itself unless the article has it twice in a row"),
    ("--max-len", "decoding steps at most", "max_title_len"),
    ("--length-penalty", "length normalisation α (0 = off, the blog's search)"))
TITLING_FLAGS = (("--decoder", "naive (the blog's) or incremental"),
                 ("--batch-size", "articles decoded together", "generate_batch_size"))
TRAIN_FLAGS = (
    ("--train", "training data: a JSON Lines or TSV file, or a THUCNews-style folder", "train_path"),
    ("--dev", "dev data, as --train", "dev_path"), FORMAT, SKIP_BAD, ("--tokenizer", "characters or jieba words"),
    ("--out", "output folder", "output_dir"), ("--epochs", "number of epochs"),
    ("--steps-per-epoch", "at most this many batches per epoch"), ("--batch-size", "articles per batch"),
    ("--checkpoint-steps", "checkpoint every N batches too"), ("--shuffle", "shuffle every epoch"),
    ("--bucket", "batch articles of similar length"), ("--strategy", "devices to train on"),
    ("--mixed-precision", "float16 compute (GPU)"), ("--tensorboard", "also write OUT/tensorboard"),
    ("--version", "model version"), ("--monitor", "what the best epoch is chosen by"),
    ("--patience", "stop after this many epochs without a better monitor"),
    ("--time-limit", "minutes: end before an epoch that would end past them"),
    ("--lr-patience", "cut the learning rate by LR_FACTOR after this many epochs without a better monitor"),
    ("--lr-decay-epochs", "the learning rate falls to 0 along half a cosine over this many epochs"),
    ("--pretrain-epochs", "epochs of pretraining on the articles alone before the titles"),
    ("--pretrain-task", "pretraining's pseudo titles: gap sentences or lead sentences"),
    ("--pretrain-path", "articles to pretrain on (default: the training set's)", "pretrain_path"),
    ("--seq-epochs", "epochs of the sequence-level stage after teacher forcing; with --resume, a finished run "
     "continues with it"),
    ("--seq-candidates", "candidate titles per article in the stage"), ("--seq-reward", "the stage's reward"),
    ("--seq-sample", "the stage's candidates all sampled, the beam-search title not among them", "seq_beam", False),
    ("--seq-reference", "the reference is one of the stage's candidates"),
    ("--seq-sample-top", "the stage draws each character from this many most likely"),
    ("--seq-sharpness", "the stage's α"), ("--seq-ce-weight", "the stage's λ, the cross-entropy's weight"),
    ("--seq-learning-rate", "the stage's Adam rate"), ("--copy", "add the copy head"),
    ("--coverage", "coverage loss weight; > 0 adds coverage"), ("--dropout", "dropout rate while training"),
    ("--title-dropout", "rate at which training reads a title character as <unk>"),
    ("--recurrent-dropout", "dropout rate on every LSTM's state at each step while training"),
    ("--label-smoothing", "label smoothing ε"),
    ("--unlikelihood", "token-level unlikelihood α: -log(1 - p) of the characters a title already wrote"), ("--ema", "keep an average of the weights with this momentum"),
    ("--seed", "random seed"), ("--members", "train an ensemble of this many models, side by side"))
SERVE_FLAGS = (
    ("--host", "address to listen on (loopback)", "serve_host"),
    ("--port", "port; 0 takes a free one", "serve_port"),
    ("--batch-wait", "ms a request waits for others to be decoded with it", "serve_batch_wait"))


FLAG_NAMES = {(row[2] if len(row) > 2 else row[0][2:].replace("-", "_")): row[0]
              for row in DECODING_FLAGS + TITLING_FLAGS}  # a field's flag, to say where a value came from
FLAG_NAMES["no_new_double"] += " / " + opposite("--no-new-double")


def add_decoding_flags(p, more=()):
    """The flags of a command that loads a trained model: `--model`, the decoding flags (their
    default the model's own), then `more`."""
    for row in DECODING_FLAGS + more:
        field = row[2] if len(row) > 2 else row[0][2:].replace("-", "_")
        add_settings_flags(p, [row], MODEL_DEFAULT if FIELDS[field] == "decode" else "config.{}")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="seq2seq_title.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on TRAIN_PATH (config.py), save to OUTPUT_DIR")
    add_settings_files(p)
    add_settings_flags(p, TRAIN_FLAGS)
    p.add_argument("--no-dev", action="store_true", help="no dev set; monitor the training loss (the blog)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in the output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from its checkpoint, "
                   "with its own settings (config.py and CONFIG.py files only say where it is)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help='print a title for an article: generate "文章内容"')
    p.add_argument("article", nargs="?", help="the article's text; - reads articles from standard input")
    p.add_argument("--file", help="articles, one per line (plain text, or JSON with a CONTENT_FIELD field)")
    p.add_argument("--jsonl", action="store_true", help='write {"line": N, "title": ...} per article')
    add_settings_files(p, positional=False)
    add_decoding_flags(p, TITLING_FLAGS)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="title a titled set and score the titles (ROUGE, BLEU), beside LEAD")
    add_settings_files(p)
    p.add_argument("--data", help="titled articles: JSON Lines, TSV or a THUCNews-style folder (default: config.DEV_PATH)")
    p.add_argument("--out", dest="predictions", help="predictions file (default: MODEL/predictions_<folder>_<file>.jsonl)")
    add_settings_flags(p, (FORMAT, SKIP_BAD))
    add_decoding_flags(p, TITLING_FLAGS)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("serve", help="answer HTTP requests with titles (TF Serving's REST body) and a page at /")
    add_settings_files(p, positional=False)
    add_decoding_flags(p, TITLING_FLAGS + SERVE_FLAGS)
    p.add_argument("--name", help="the model's name in /v1/models/NAME (default: the model folder's name)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="write a TensorFlow SavedModel (TF Serving layout) that titles article strings")
    add_settings_files(p)
    p.add_argument("--out", dest="export_dir", help="folder for the numbered version folders (default: MODEL/export)")
    add_decoding_flags(p)
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
    the machine in docs/log/speed.md): its output is flushed, and it writes no file that could be left
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
