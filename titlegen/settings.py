"""Typed settings, defined once: five small dataclasses (data, model, training, decoding, serving) filled
mechanically from config.py's UPPERCASE names, override files and command-line flags.

Every field is the lower-case name of a config.py setting (`min_count` is MIN_COUNT; `version`,
MODEL_VERSION, is the one renamed), so a default exists only in config.py. Fields hold no
defaults of their own: a Settings is always made from config.py (or a run folder), then changed.
`Model` is what `build_model` takes and what a run folder stores. A setting added after the first
runs also says what those runs did (`legacy`), so their folders load as they ran. This module
imports neither TensorFlow nor any other part of the project: the command line reads it first.
"""
import ast
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields

from .errors import TitleError


FORMATS = ("jsonl", "tsv", "thucnews")  # corpus layouts; DATA_FORMAT may also be "auto"
ON_BAD = ("stop", "skip")
TOKENIZERS = ("char", "word")
VERSIONS = ("2018", "2019")
STRATEGIES = ("auto", "mirrored", "multiworker")
MONITORS = ("loss", "val_loss", "val_rouge_l", "val_lcs_f")
DECODERS = ("naive", "incremental")
REWARDS = ("rouge-l", "clge")  # the sequence-level stage's: Lin's ROUGE-L F, or evaluate's (CLGE's package)
PRETRAIN_TASKS = ("gap", "lead")  # pretraining's pseudo titles (pretrain.py)


def _one_of(choices, **metadata):
    """One of `choices` (checked when settings are made)."""
    return field(metadata={"choices": choices, **metadata})


def _within(low=None, high=None, above=False, below=False, **metadata):
    """A number from `low` to `high` (None: no bound; above/below: the bound itself excluded), checked
    when settings are made; None passes where the type allows it."""
    return field(metadata={"bounds": (low, high, above, below), **metadata})


def _bounds_error(bounds, value):
    """What a value outside `_within`'s bounds is told ("at least 1"), or None when it is within them."""
    low, high, above, below = bounds
    if (low is None or value > low or (value == low and not above)) and \
            (high is None or value < high or (value == high and not below)):
        return None
    said = [f"{'above' if above else 'at least'} {low}" if low is not None else "",
            f"{'below' if below else 'at most'} {high}" if high is not None else ""]
    return " and ".join(x for x in said if x)


def _path():
    """A file or folder: given in config.py or an override file, relative to the project folder."""
    return field(metadata={"path": True})


def _added(legacy, **metadata):
    """A setting added after the first runs: `legacy` is what runs written before it existed did
    (the blog's, off), which their run folders are read with (LEGACY)."""
    return field(metadata={"legacy": legacy, **metadata})


def _resumable(*bounds, **within):
    """May change when a run is resumed: it alters neither the model, nor the data, nor their order.
    Bounds as `_within`'s."""
    return _within(*bounds, resumable=True, **within)


@dataclass(frozen=True)
class Data:
    """What is read, and how text becomes ids."""
    train_path: str = _path()
    dev_path: str | None = _path()
    samples_path: str | None = _path()
    sample_names: tuple
    min_count: int
    data_format: str = _one_of(("auto", *FORMATS), legacy="auto")
    title_field: str = _added("title")
    content_field: str = _added("content")
    on_bad_record: str = _one_of(ON_BAD, legacy="stop")
    tokenizer: str = _one_of(TOKENIZERS, legacy="char")
    pretrain_path: str | None = field(metadata={"path": True, "legacy": None})


@dataclass(frozen=True)
class Model:
    """The network: what `build_model` takes and the run folder stores. `vocab_size` comes from the
    vocabulary (no config.py name; None until the vocabulary is built); `maxlen` is the article
    length read, and with copying the most temporary ids an article can need."""
    version: str = _one_of(VERSIONS, config="MODEL_VERSION", legacy="2018")
    char_size: int = _within(2)  # the encoder's LSTMs have char_size // 2 units each way
    hidden_size: int = _within(1)
    mask_encoder: bool
    copy: bool = _added(False)
    coverage: float = _within(0, legacy=0.0)
    dropout: float = _within(0, 1, below=True, legacy=0.0)
    title_dropout: float = _within(0, 1, legacy=0.0)  # 1: every title character read as <unk>
    recurrent_dropout: float = _within(0, 1, below=True, legacy=0.0)
    maxlen: int = _within(3)  # titles are cut to maxlen - 2
    vocab_size: int | None = field(metadata={"config": None})


@dataclass(frozen=True)
class Train:
    """How the model is trained, and where the run folder is."""
    output_dir: str = _path()
    batch_size: int = _within(1)
    learning_rate: float = _within(0, above=True)
    label_smoothing: float = _within(0, 1, below=True, legacy=0.0)
    unlikelihood: float = _within(0, legacy=0.0)
    pretrain_epochs: int = _within(0, legacy=0)  # > 0: that many epochs on pseudo pairs before the titles
    pretrain_task: str = _one_of(PRETRAIN_TASKS, legacy="gap")
    ema: float = _within(0, 1, below=True, legacy=0.0)
    epochs: int = _resumable(1)
    steps_per_epoch: int | None = _within(1)
    shuffle: bool
    shuffle_buffer: int = _within(1, legacy=10000)
    bucket: bool = _added(False)
    bucket_window: int = _within(1, legacy=100)
    checkpoint_steps: int = _resumable(0, legacy=0)
    strategy: str = _one_of(STRATEGIES, resumable=True, legacy="auto")  # may resume on other devices or machines
    mixed_precision: bool = _added(False)
    tensorboard: bool = _resumable(legacy=False)
    monitor: str = _one_of(MONITORS)
    val_rouge_samples: int = _within(0)
    patience: int | None = _resumable(1)
    time_limit: float | None = _resumable(0, above=True, legacy=None)  # minutes
    lr_patience: int | None = _within(1, legacy=None)
    lr_factor: float = _within(0, 1, above=True, legacy=0.5)
    lr_decay_epochs: int | None = _within(1, legacy=None)
    seed: int
    members: int = _within(1, legacy=1)  # > 1: an ensemble of that many models (seeds SEED, SEED + 1, ...)
    # > 0: the sequence-level stage (sequence.py) after teacher forcing; its settings may be given when a
    # finished run is resumed to continue with it
    seq_epochs: int = _resumable(0, legacy=0)
    seq_candidates: int = _resumable(2, legacy=4)  # the risk compares candidates
    seq_reward: str = _one_of(REWARDS, resumable=True, legacy="rouge-l")
    seq_beam: bool = _resumable(legacy=True)
    seq_reference: bool = _resumable(legacy=False)
    seq_sample_top: int = _resumable(0, legacy=0)
    seq_sharpness: float = _resumable(0, above=True, legacy=1.0)
    seq_ce_weight: float = _resumable(0, 1, legacy=0.3)
    seq_learning_rate: float = _resumable(0, above=True, legacy=1e-4)


@dataclass(frozen=True)
class Decode:
    """How titles are written from a trained model: the decoder and the beam search's options, one
    object from the command line to the search (`search.beam_search` reads it whole) and to the
    scores file. A new decoding option is a field here (with the `legacy` value older runs decode with),
    its config.py name, and its rule in search.py."""
    topk: int = _within(1)
    max_title_len: int | None = _within(1)
    decoder: str = _one_of(DECODERS)
    min_title_len: int = _within(0)
    no_repeat_ngram: int = _within(0)
    no_new_double: bool = _added(False)
    length_penalty: float = _added(0.0)


@dataclass(frozen=True)
class Serve:
    """How many articles are decoded together (`generate --file`, `serve`), and serve's endpoint."""
    generate_batch_size: int = _within(1)
    serve_host: str
    serve_port: int = _within(0, 65535)  # 0: any free port
    serve_batch_wait: float = _within(0)  # milliseconds
    serve_max_bytes: int = _within(1)


GROUPS = {"data": Data, "model": Model, "train": Train, "decode": Decode, "serve": Serve}
RUN = ("data", "model", "train", "decode")  # what a run folder keeps; how a model is served is the serving command's


@dataclass(frozen=True)
class Settings:
    data: Data
    model: Model
    train: Train
    decode: Decode
    serve: Serve | None  # None in the settings a run folder stores (RUN)

    def replace(self, **changes):
        """A copy with fields changed by name (`epochs=3`, `copy=True`), whichever group holds them."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise TitleError(f"unknown setting {', '.join(unknown)}; the settings are config.py's names")
        groups = {name: {k: v for k, v in changes.items() if FIELDS[k] == name} for name in GROUPS}
        return Settings.from_dict({name: {**dataclasses.asdict(getattr(self, name)), **groups[name]}
                                   for name in GROUPS if getattr(self, name) is not None})

    def to_dict(self, groups=GROUPS):
        """{group: {field: value}} of `groups` (RUN: what a run folder's config.json stores)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in groups}

    @classmethod
    def from_dict(cls, groups):
        """The inverse of to_dict (without "serve": a run folder's settings, serve None); a missing
        or unknown field is a TitleError naming it."""
        made = {"serve": None}
        for name, group in GROUPS.items():
            if name == "serve" and name not in groups:
                continue
            values = dict(groups.get(name, {}))
            names = [f.name for f in fields(group)]
            missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
            wrong = [f"{what} {', '.join(keys)}" for what, keys in (("missing", missing), ("unknown", unknown)) if keys]
            if wrong:
                raise TitleError(f"the {name} settings do not fit this version: " + "; ".join(wrong))
            if "sample_names" in values:
                values["sample_names"] = tuple(values["sample_names"])
            for f in fields(group):
                wrong = _wrong(f, values[f.name])
                if wrong:
                    raise TitleError(f"{config_name(f) or f.name} must be {wrong}, got {values[f.name]!r}")
            made[name] = group(**values)
        return cls(**made)


def _wrong(f, value):
    """What a field's value must be when it is not (its type, one of its choices, within its
    bounds), else None."""
    if not _is(f.type, value):
        return _describe(f.type)
    allowed, bounds = f.metadata.get("choices"), f.metadata.get("bounds")
    if allowed and value not in allowed:
        return f"one of {', '.join(allowed)}"
    return _bounds_error(bounds, value) if bounds and value is not None else None


def _is(kind, value):
    """Whether value is of the annotated type (an int is a float too; a bool is neither)."""
    if isinstance(kind, types.UnionType):
        return any(_is(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind in (int, float):
        return isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(kind):
    if isinstance(kind, types.UnionType):
        return " or ".join(_describe(k) for k in typing.get_args(kind))
    return {type(None): "None", int: "a whole number", float: "a number", bool: "True or False", str: "text",
            tuple: "a tuple"}.get(kind, kind.__name__)


def setting_flag(name):
    """How the command line reads a setting's flag: (its type, its choices or None, its config.py name)."""
    f = SETTINGS[name]
    kinds = [k for k in typing.get_args(f.type) if k is not type(None)] or [f.type]
    return kinds[0], f.metadata.get("choices"), config_name(f)


SETTINGS = {f.name: f for group in GROUPS.values() for f in fields(group)}  # every field, by name
FIELDS = {f.name: name for name, group in GROUPS.items() for f in fields(group)}  # field -> its group
LEGACY = {name: f.metadata["legacy"] for name, f in SETTINGS.items() if "legacy" in f.metadata}
RESUMABLE = tuple(f.name for f in fields(Train) if f.metadata.get("resumable"))


def config_name(f):
    """The config.py name of a field: its name upper-cased, or the one it names itself."""
    return f.metadata.get("config", f.name.upper())


CONFIG_NAMES = {config_name(f): name for name, f in SETTINGS.items() if config_name(f)}


def read_override_file(path, values):
    """`values` (config.py's names so far) as an override file leaves them: nanoGPT's convention,
    a Python file of assignments (e.g. configs/csl.py) run with the names so far in scope, so
    `OUTPUT_DIR = OUTPUT_DIR + "_copy"` works, and `include("recipe.py")` starts from another file.
    Any other UPPERCASE name is a one-line error. Returns (the values, the names the file assigns,
    itself or through the files it includes)."""
    if not os.path.isfile(path):
        raise TitleError(f"{path}: no such settings file; expected a .py file of config.py names, "
                         "e.g. configs/csl.py")
    scope, assigned = dict(values), set()
    run_settings_file(path, scope, [], assigned)
    unknown = sorted(k for k in scope if k.isupper() and k not in CONFIG_NAMES)
    if unknown:
        raise TitleError(f"{path}: {', '.join(unknown)} is not a config.py setting; "
                         f"the settings are: {', '.join(CONFIG_NAMES)}")
    return {k: scope[k] for k in CONFIG_NAMES}, assigned & set(CONFIG_NAMES)


def run_settings_file(path, scope, including, assigned):
    """Run one settings file in `scope`, adding the names it assigns to `assigned`. It may start
    from another with `include("recipe.py")` (a path relative to the file), whose assignments then
    run first, in the same scope."""
    if path in including:
        raise TitleError(f"{path}: includes itself (through {' -> '.join(including)})")
    if not os.path.isfile(path):
        raise TitleError(f"{including[-1]}: include({os.path.basename(path)!r}): no such settings file {path}")
    with open(path, encoding="utf-8") as f:
        source = f.read()

    def include(name):
        run_settings_file(os.path.join(os.path.dirname(path), name), scope, [*including, path], assigned)

    scope["include"] = include
    try:
        exec(compile(source, path, "exec"), scope)
    except TitleError:
        raise
    except Exception as e:  # a typo in the user's file: say where, without a traceback
        raise TitleError(f"{path}: {type(e).__name__}: {e}") from None
    assigned.update(assigned_names(source))


def assigned_names(source):
    """The names a settings file assigns (`TOPK = 5`, `EPOCHS += 1`)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


CONFIG = "config.py"  # where a value comes from when no file or flag sets it
FLAG = "flag"  # where a value given on the command line comes from


def load(config, root, files=(), flags=None):
    """Settings from a config module (config.py), then each override file in turn, then flags
    ({field name: value}; None means not given). Paths from config.py and the files are relative
    to `root`, the project folder; paths given as flags to the working folder, as usual."""
    return load_traced(config, root, files, flags)[0]


def load_traced(config, root, files=(), flags=None):
    """`load`'s settings, and where each field's value came from: {field: CONFIG, the override
    file's path as given (the last file that assigns it), or FLAG}."""
    values = {name: getattr(config, name) for name in CONFIG_NAMES if hasattr(config, name)}
    missing = sorted(set(CONFIG_NAMES) - set(values))
    if missing:
        raise TitleError(f"config.py lacks {', '.join(missing)}; restore them from the repository's config.py")
    origins = {name: CONFIG for name in SETTINGS}
    for path in files:
        values, assigned = read_override_file(path, values)
        origins.update({CONFIG_NAMES[name]: path for name in assigned})
    by_field = {CONFIG_NAMES[name]: value for name, value in values.items()}
    for f in (name for name, f in SETTINGS.items() if f.metadata.get("path")):
        if isinstance(by_field[f], str) and not os.path.isabs(by_field[f]):  # other types: an error below
            by_field[f] = os.path.join(root, by_field[f])
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    by_field.update(given)
    origins.update({name: FLAG for name in given})
    groups = {name: {} for name in GROUPS}
    for name, value in by_field.items():
        groups[FIELDS[name]][name] = value
    groups["model"]["vocab_size"] = None
    return Settings.from_dict(groups), origins


MODEL = "model"  # a trained model's decoding setting, as its run folder stores it


def model_decoding(stored, given, origins):
    """How a trained model writes its titles: the decoding its folder stores (`stored`, a Decode,
    what `train` had from config.py, its files and flags), with each field an override file or a
    flag set taken from `given` (the command's Decode; `origins` as `load_traced` gives them);
    config.py's own values do not change a trained model's. Returns (the Decode, {field: MODEL, a
    file's path or FLAG})."""
    names = [f.name for f in fields(Decode)]
    chosen = {name: origins.get(name, CONFIG) for name in names}
    chosen = {name: MODEL if origin == CONFIG else origin for name, origin in chosen.items()}
    changes = {name: getattr(given, name) for name, origin in chosen.items() if origin != MODEL}
    return dataclasses.replace(stored, **changes), chosen


def resumed(settings, changes):
    """The settings of a run being resumed, with the few that may change changed; anything else
    given is a one-line error (the resume checks live here alone)."""
    fixed = sorted(k for k, v in changes.items() if v is not None and k not in RESUMABLE)
    if fixed:
        raise TitleError(f"--resume continues the run with its own settings; {', '.join(fixed)} cannot change "
                         f"(only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} can)")
    return settings.replace(**{k: v for k, v in changes.items() if v is not None})
