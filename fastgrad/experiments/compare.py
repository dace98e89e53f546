"""The main job: the parallel and the sequential approaches trained side by side, from the same
initial weights on the same data, with what each costs and buys per epoch and per second.

    result = fastgrad.compare("digits", epochs=50)
    print(result.format_table())
    result.save("fastgrad-compare")          # the table, history.csv, results.json, 3 plots

``fastgrad compare`` on the command line is this function and ``save``. Each approach's run is
``train_one`` (runs.py) on a contender's config (contenders.py); time on the
loss-against-seconds axes is training time only: the per-epoch evaluation on the training and
test sets (and, for the parallel approaches, re-evaluating each batch's loss to count the steps
that raised it) is timed apart (``History.eval_seconds``).
"""
import sys
import threading
import time

from .. import datasets
from .. import validation as check
from ..approaches import make_approach
from ..errors import NonFiniteStep
from .._kernels.codes import ACTIVATIONS
from ..model import MLP
from ..model.backends import BACKENDS
from ..training import ProgressBar, train
from .contenders import CONTENDERS
from .environment import environment
from .results import Comparison
from .runs import Seeds, train_one

DEFAULT_EPOCHS = 50


class Progress:
    """What the user sees on stderr while ``compare`` runs: a progress bar per approach (the
    ProgressBar callback) on a terminal, a line per approach otherwise, nothing when quiet."""

    def __init__(self, mode):
        check.check_choice("progress", mode, ("auto", "bar", "lines", "quiet"))
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode

    def say(self, text):
        if self.mode != "quiet":
            print(text, file=sys.stderr, flush=True)

    def callbacks(self, name):
        """The callbacks that show one approach's run."""
        return [ProgressBar(name, disable=False)] if self.mode == "bar" else []

    def finish(self, run):
        if self.mode == "lines":
            row = run.row()
            status = f"diverged: {run.diverged}" if run.diverged else \
                f"train loss {row['train_loss']:.4g}"
            self.say(f"{run.name:<18} {row['epochs']:>5} epochs  {row['train_seconds']:7.2f} s "
                     f"training  {status}")


def _check_budget(epochs, seconds):
    if epochs is None and seconds is None:
        epochs = DEFAULT_EPOCHS
    return (check.check_positive_int("epochs", epochs, allow_none=True),
            None if seconds is None else check.check_positive("seconds", seconds))


def _check_approaches(approaches):
    if approaches is None:
        return list(CONTENDERS)
    if isinstance(approaches, str):
        approaches = [approaches]
    names = list(approaches)
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown or not names:
        raise ValueError(f"unknown approach {unknown[0]!r}; choose from {list(CONTENDERS)}"
                         if unknown else "approaches must name at least one approach")
    if len(set(names)) != len(names):
        raise ValueError(f"approaches must not repeat a name; got {names}")
    return names


def _warm_up(net, data, approach_configs, progress):
    """Run every kernel the comparison will use once, on a few samples, so that no approach's
    time includes Numba compiling it (a first run on a fresh install compiles; later runs load
    the kernels from Numba's cache). Returns the seconds it took."""
    start = time.perf_counter()
    said = []

    def say_compiling():  # only if this takes long, which only compiling does
        said.append(True)
        progress.say("compiling kernels (first run only; later runs load them from Numba's "
                     "cache)...")

    notice = threading.Timer(2.0, say_compiling)
    notice.start()
    try:
        n = min(16, len(data.X_train))
        X, y = data.X_train[:n], data.y_train[:n]
        for config in approach_configs:
            small = make_approach(config)
            if "batch_size" in small.get_params():
                small.set_params(batch_size=None)
            try:
                train(net.copy(), X, y, small, epochs=1, validation=(X, y))
            except NonFiniteStep:
                pass  # its kernels have run; the real run reports the divergence
    finally:
        notice.cancel()
    elapsed = time.perf_counter() - start
    if said:
        progress.say(f"kernels compiled in {elapsed:.1f} s")
    return elapsed


def compare(dataset="digits", *, target=None, task="classification", weight=None, hidden=(32,),
            activation="tanh", batchnorm=False, alpha=0.0, dtype="float64", backend="cython",
            seed=0, approaches=None, lr=None, epochs=None, seconds=None, progress="quiet"):
    """Train each approach from the same initial weights on the same split and return a
    Comparison.

    dataset : "digits" (default: scikit-learn's 1,797 8x8 images, no download),
        "breast_cancer", "iris", "wine", or a path to a .csv (numeric cells; ``target`` names
        the label column, default the last, or several separated by commas) or .npz (arrays X
        and y). Split 75/25 (stratified for classification) with the split seed; standardised
        with the training part's statistics.
    task : "classification" (cross-entropy), "regression" (mse), "multilabel" (binary
        cross-entropy, one sigmoid per label; a built-in dataset's classes become one-vs-rest
        labels) or "poisson" (counts, the Poisson loss; a built-in dataset's class numbers
        are the counts).
    weight : the sample weights' column of a .csv (or array of an .npz): the loss, the
        History's loss and accuracy, training and test, are weighted by it.
    hidden, activation, batchnorm, alpha, dtype, backend : the network (see fastgrad.MLP);
        every approach starts from the same initial weights.
    seed : an int for the split, the initial weights and the shuffling alike, or a Seeds
        (fastgrad.experiments.Seeds(split, init, shuffle)) for each its own.
    approaches : names from CONTENDERS (default all, in that order).
    lr : one learning rate for every approach (default: each contender's own, CONTENDERS).
    epochs, seconds : the budget per approach; training stops at whichever comes first
        (checked after each epoch). Default: DEFAULT_EPOCHS epochs.
    progress : "quiet" (default), "auto" (a bar on a terminal, lines otherwise), "bar", "lines".

    A step that makes an approach's loss non-finite ends that approach (its run says where);
    the others go on.
    """
    names = _check_approaches(approaches)
    epochs, seconds = _check_budget(epochs, seconds)
    seeds = Seeds.of(seed)
    if lr is not None:
        lr = check.check_positive("lr", lr)
    if isinstance(hidden, int):
        hidden = (hidden,)
    check.check_choice("task", task, datasets.TASKS)
    # the network's options, checked before the data are read (the widths in and out come
    # from the data)
    hidden = check.check_sizes([1, *hidden, 1])[1:-1]
    check.check_choice("activation", activation, ACTIVATIONS)
    check.check_bool("batchnorm", batchnorm)
    check.check_non_negative("alpha", alpha)
    check.check_dtype(dtype)
    check.check_choice("backend", backend, BACKENDS)
    reporter = Progress(progress)
    data = datasets.load(dataset, target=target, task=task, seed=seeds.split, weight=weight)
    n_train = len(data.X_train)
    initial = MLP([data.X_train.shape[1], *hidden, data.n_outputs], activation, batchnorm,
                  data.loss, dtype, seeds.init, backend, alpha=alpha)
    network = initial.config()
    chosen = [CONTENDERS[name] for name in names]
    lrs = [c.lr if lr is None else lr for c in chosen]
    configs = [c.approach_config(rate, n_train) for c, rate in zip(chosen, lrs)]

    compile_seconds = _warm_up(initial, data, configs, reporter)
    runs = []
    for contender, rate, config in zip(chosen, lrs, configs):
        run = train_one(data, network, config, seeds, epochs=epochs, seconds=seconds,
                        name=contender.name, description=contender.description, lr=rate,
                        callbacks=reporter.callbacks(contender.name))
        reporter.finish(run)
        runs.append(run)

    return Comparison(
        runs,
        dataset={"name": data.name, "task": data.task, "n_train": n_train,
                 "n_test": len(data.X_test), "n_features": data.X_train.shape[1],
                 "n_outputs": data.n_outputs},
        network={**network, "n_params": initial.n_params,
                 "label": f"{initial.label}, {dtype}, {initial.n_params:,} weights"},
        settings={"dataset": str(dataset), "target": target, "task": task, "weight": weight,
                  "hidden": list(hidden), "activation": activation, "batchnorm": batchnorm,
                  "alpha": alpha,
                  "dtype": dtype, "backend": backend,
                  "seed": {"split": seeds.split, "init": seeds.init, "shuffle": seeds.shuffle},
                  "lr": lr, "epochs": epochs, "seconds": seconds,
                  "approaches": {c.name: {"description": c.description, "config": config}
                                 for c, config in zip(chosen, configs)}},
        initial_loss=initial.loss(data.X_train, data.y_train, data.w_train),
        compile_seconds=compile_seconds, environment=environment())
