"""Where a training run stands: one typed object, what its checkpoint keeps beside the weights and the
optimizer's state (as JSON) and what `train --resume` continues from. No TensorFlow, no model."""
import dataclasses
from dataclasses import dataclass, field

STAGES = ("pretrain", "teacher", "sequence")  # pretraining on articles, teacher forcing on titles, the sequence-level stage


@dataclass
class RunState:
    articles: int  # training articles the run started with (a resumed run must read as many)
    steps_per_epoch: int  # batches per epoch on titles
    pretrain_steps: int = 0  # batches per epoch of pretraining
    epoch: int = 1  # the epoch being trained (or next to train)
    step: int = 0  # batches of it done
    loss_sum: float = 0.0  # their summed loss
    stage: str = "teacher"  # one of STAGES
    switch: str | None = None  # the stage to begin at `epoch`, decided when the last one ended
    history: list = field(default_factory=list)  # every epoch's logs (metrics.csv's rows)
    best: dict | None = None  # this stage's best epoch: {"epoch", "monitor", "value"}
    pretrain_best: dict | None = None  # pretraining's best, once the titles began
    teacher_best: dict | None = None  # teacher forcing's best, once the sequence-level stage began
    seq_start: int | None = None  # the sequence-level stage's first epoch
    lr_cut: int = 0  # the epoch of LR_PATIENCE's last cut
    seconds: float = 0.0  # training and dev passes so far, across resumes (TIME_LIMIT)
    last_epoch_seconds: float = 0.0
    skipped: dict | None = None  # bad records left out: {"train": n, "dev": n}
    done: str | None = None  # why the run ended; None while it goes on

    def update(self, **fields):
        """Change fields by name (a name it lacks is a mistake in the code: TypeError)."""
        unknown = set(fields) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"RunState has no {', '.join(sorted(unknown))}")
        for name, value in fields.items():
            setattr(self, name, value)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """A checkpoint's state. Those written before the state was typed lack the fields added since
        (their defaults are what those runs had) and wrote `switch` True for the sequence-level stage."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if values.get("switch") is True:
            values["switch"] = "sequence"
        return cls(**values)
