"""One training run of an experiment as a function of data — (dataset, network config, approach
config, seeds) → a Run and its rows — that a grid can call in another process, the Run, and
``cell_key``, the hash that names such a run's settings."""
import hashlib
import json
import sys
from dataclasses import asdict, dataclass

from .. import validation as check
from ..approaches import make_approach
from ..errors import NonFiniteStep
from ..model import MLP
from ..training import TimeBudget, train


@dataclass(frozen=True)
class Seeds:
    """The seeds of an experiment, apart: the train/test ``split``, the initial weights
    (``init``) and the ``shuffle`` of every epoch (and the random orders). ``Seeds.of(seed)``
    gives all three one value."""

    split: int = 0
    init: int = 0
    shuffle: int = 0

    def __post_init__(self):
        for name in ("split", "init", "shuffle"):
            check.check_seed(f"seeds.{name}", getattr(self, name))

    @classmethod
    def of(cls, seed):
        """A Seeds from an int (all three) or a Seeds (as it is)."""
        if isinstance(seed, Seeds):
            return seed
        seed = check.check_seed("seed (an integer or a fastgrad.experiments.Seeds)", seed)
        return cls(seed, seed, seed)


def cell_key(network, approach, seeds, **budget):
    """A short, stable name of one run's settings: the SHA-256 of their canonical JSON (the
    network and approach configs, the seeds, the budget), for a grid's files and for skipping
    finished cells."""
    settings = {"network": network, "approach": approach, "seeds": asdict(Seeds.of(seeds)),
                **budget}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Run:
    """One approach's training: its ``name``, ``description`` and learning rate, its
    ``history`` (per epoch, training time apart from evaluation), if a step made the loss
    non-finite, where (``diverged``; the history then holds the epochs before it), and the
    trained ``network`` (a diverged run's: the weights from before its failing step)."""

    name: str
    description: str
    lr: float
    history: object
    diverged: str | None = None
    network: object = None

    @property
    def train_seconds(self):
        return float(sum(self.history.train_seconds))

    @property
    def eval_seconds(self):
        return float(sum(self.history.eval_seconds))

    def row(self):
        """The run's line of the table, as a dict (None where a figure does not apply):
        ``flipped`` a count, ``flipped_fraction`` of the steps."""
        h, last = self.history, (lambda values: values[-1] if values else None)
        steps = int(sum(h.steps))
        flipped = None if not h.flipped or h.flipped[0] is None else int(sum(h.flipped))
        return {
            "approach": self.name, "lr": self.lr,
            "train_loss": last(h.loss), "test_loss": last(h.val_loss),
            "train_accuracy": last(h.accuracy), "test_accuracy": last(h.val_accuracy),
            "epochs": h.epochs, "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds, "steps": steps, "raised": int(sum(h.raised)),
            "flipped": flipped,
            "flipped_fraction": None if flipped is None else flipped / max(steps, 1),
            "diverged": self.diverged,
        }

    def history_rows(self):
        """One tidy row per epoch (the run's share of history.csv)."""
        h, seconds, rows = self.history, 0.0, []
        for e in range(h.epochs):
            seconds += h.train_seconds[e]
            rows.append({"approach": self.name, "epoch": e + 1, "train_seconds": seconds,
                         "train_loss": h.loss[e], "train_accuracy": h.accuracy[e],
                         "test_loss": h.val_loss[e], "test_accuracy": h.val_accuracy[e],
                         "steps": h.steps[e], "raised": h.raised[e], "flipped": h.flipped[e],
                         "eval_seconds": h.eval_seconds[e]})
        return rows


def train_one(data, network, approach, seeds, *, epochs=None, seconds=None, name="",
              description="", lr=None, callbacks=()):
    """Train one network on ``data`` and return its Run.

    data : a fastgrad.datasets.Dataset, split with seeds.split (``datasets.load(...,
        seed=seeds.split)``; a Dataset whose split_seed differs is refused).
    network : an MLP config (``MLP.config()``); its weights are initialised from seeds.init.
    approach : an approach config (``approach.config()``) or object; a fresh copy trains.
    seeds : a Seeds (or an int for all three); seeds.shuffle seeds the run's generator.
    epochs, seconds : the budget; training stops at whichever comes first (checked after each
        epoch); None for no limit of that kind (not both).
    name, description, lr : the Run's labels. callbacks : more callbacks for the run.

    A step that makes the loss non-finite ends the run; the Run says where."""
    seeds = Seeds.of(seeds)
    if data.split_seed is not None and data.split_seed != seeds.split:
        raise ValueError(f"data was split with seed {data.split_seed}, but seeds.split is "
                         f"{seeds.split}")
    epochs = check.check_positive_int("epochs", epochs, allow_none=True)
    if epochs is None and seconds is None:
        raise ValueError("give epochs or seconds (or both)")
    budget = [] if seconds is None else [TimeBudget(seconds)]
    net = MLP.from_config({**network, "seed": seeds.init})
    approach = make_approach(approach.config() if hasattr(approach, "config") else approach)
    diverged = None
    try:
        history = train(net, data.X_train, data.y_train, approach,
                        epochs=epochs if epochs is not None else sys.maxsize,
                        seed=seeds.shuffle, validation=(data.X_test, data.y_test, data.w_test),
                        callbacks=[*budget, *callbacks], sample_weight=data.w_train)
    except NonFiniteStep as error:
        history, diverged = error.history, str(error)
    return Run(name, description, lr, history, diverged, net)
