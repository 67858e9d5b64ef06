"""Train a character-level seq2seq that writes a Chinese article's title, and use it.

    python seq2seq_title.py train                      # train on data/lcsts, save to runs/lcsts
    python seq2seq_title.py generate "文章内容"          # print one title for the article

A Keras 3 port of Su Jianlin's 《玩转Keras之seq2seq自动生成标题》 (kexue.fm/archives/5861,
bojone/seq2seq). Hyperparameters live in config.py.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the screen

HERE = os.path.dirname(os.path.abspath(__file__))


def config_settings():
    """The training settings from config.py, paths resolved against this folder."""
    import config

    def path(p):
        return p if p is None or os.path.isabs(p) else os.path.join(HERE, p)

    return {
        "train_path": path(config.TRAIN_PATH), "dev_path": path(config.DEV_PATH),
        "samples_path": path(config.SAMPLES_PATH), "sample_names": list(config.SAMPLE_NAMES),
        "min_count": config.MIN_COUNT, "maxlen": config.MAXLEN,
        "char_size": config.CHAR_SIZE, "hidden_size": config.HIDDEN_SIZE,
        "mask_encoder": config.MASK_ENCODER,
        "batch_size": config.BATCH_SIZE, "learning_rate": config.LEARNING_RATE,
        "epochs": config.EPOCHS, "steps_per_epoch": config.STEPS_PER_EPOCH,
        "shuffle": config.SHUFFLE, "monitor": config.MONITOR, "seed": config.SEED,
        "topk": config.TOPK, "max_title_len": config.MAX_TITLE_LEN,
        "output_dir": path(config.OUTPUT_DIR),
    }


def cmd_train(args, settings):
    from titlegen.train import train

    for key in ("train_path", "dev_path", "epochs", "steps_per_epoch", "batch_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.no_dev:
        settings["dev_path"] = None
        if settings["monitor"] == "val_loss":
            settings["monitor"] = "loss"
    out_dir = args.out or settings["output_dir"]
    train(settings, out_dir, overwrite=args.overwrite)
    print(f"trained model in {out_dir}; try: python seq2seq_title.py generate \"文章内容\"")


def cmd_generate(args, settings):
    from titlegen.data import TitleError
    from titlegen.decode import generate_title
    from titlegen.train import load_trained

    if not args.article.strip():  # before loading anything
        raise TitleError('the article is empty; pass the article\'s text: python seq2seq_title.py generate "文章内容"')
    model, vocab, config = load_trained(args.model or settings["output_dir"])
    topk = args.topk if args.topk is not None else settings["topk"]
    if topk < 1:
        raise TitleError(f"--topk must be at least 1, got {topk}")
    print(generate_title(model, vocab, args.article, config["settings"]["maxlen"], topk,
                         settings["max_title_len"]))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="seq2seq_title.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on TRAIN_PATH (config.py), save to OUTPUT_DIR")
    p.add_argument("--train", dest="train_path", help="training JSON Lines file (default: config.TRAIN_PATH)")
    p.add_argument("--dev", dest="dev_path", help="dev JSON Lines file (default: config.DEV_PATH)")
    p.add_argument("--no-dev", action="store_true", help="no dev set; monitor the training loss (the blog)")
    p.add_argument("--out", help="output folder (default: config.OUTPUT_DIR)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: config.EPOCHS)")
    p.add_argument("--steps-per-epoch", type=int, help="at most this many batches per epoch")
    p.add_argument("--batch-size", type=int, help="articles per batch (default: config.BATCH_SIZE)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in the output folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help='print a title for an article: generate "文章内容"')
    p.add_argument("article", help="the article's text")
    p.add_argument("--model", help="folder of a trained model (default: config.OUTPUT_DIR)")
    p.add_argument("--topk", type=int, help="beam width; 1 is greedy (default: config.TOPK)")
    p.set_defaults(func=cmd_generate)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from titlegen.data import TitleError

    try:
        args.func(args, config_settings())
    except TitleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the best weights saved so far are kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
