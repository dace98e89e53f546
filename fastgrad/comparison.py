"""The main job: the parallel and the sequential approaches trained side by side, from the same
initial weights on the same data, with what each costs and buys per epoch and per second.

    result = fastgrad.compare("digits", epochs=50)
    print(result.format_table())
    result.save("fastgrad-compare")          # the table, history.csv, results.json, 3 plots

``fastgrad compare`` on the command line is this function and ``save``. Time on the
loss-against-seconds axes is training time only: the per-epoch evaluation on the training and
test sets (and, for the parallel approaches, re-evaluating each batch's loss to count the steps
that raised it) is timed apart (``History.eval_time``).
"""
import copy
import csv
import json
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _validation as check
from . import datasets
from .approach import check_positive_int
from .errors import NonFiniteStep
from .layerwise import LayerWise
from .network import MLP
from .optim import SGD, Adam
from .parallel import Parallel
from .sequential import Sequential
from .training import History, train

MINIBATCH = 64  # samples per step of the minibatch approaches (fewer if the training set is)


@dataclass(frozen=True)
class Contender:
    """One approach of the comparison: its ``name`` (for --approaches), what it is, its default
    learning rate and how to make it for a learning rate and a training-set size."""

    name: str
    description: str
    lr: float
    make: object  # make(lr, n_train) -> an Approach


CONTENDERS = {c.name: c for c in (
    Contender("gd", "parallel: full-batch gradient descent", 2.0,
              lambda lr, n: Parallel(SGD(lr))),
    Contender("sgd-momentum", f"parallel: minibatch SGD, momentum 0.9, batches of {MINIBATCH}",
              0.05, lambda lr, n: Parallel(SGD(lr, momentum=0.9), min(MINIBATCH, n))),
    Contender("adam", f"parallel: Adam, batches of {MINIBATCH}", 1e-3,
              lambda lr, n: Parallel(Adam(lr), min(MINIBATCH, n))),
    Contender("layerwise", "one layer at a time, first to last, full batch, gradient step",
              2.0, lambda lr, n: LayerWise(SGD(lr), "forward")),
    Contender("sweep-cyclic", "sequential: one weight at a time in index order, gradient step",
              2.0, lambda lr, n: Sequential("cyclic", lr, "gradient")),
    Contender("sweep-permutation",
              "sequential: one weight at a time in a fresh random order, gradient step", 2.0,
              lambda lr, n: Sequential("permutation", lr, "gradient")),
    Contender("sweep-newton",
              "sequential: index order, Newton step -g/max(h, 1/lr), so lr bounds the step", 10.0,
              lambda lr, n: Sequential("cyclic", lr, "newton")),
)}
DEFAULT_EPOCHS = 50


@dataclass
class Run:
    """One approach's training: its ``history`` (per epoch, training time apart from
    evaluation) and, if a step made the loss non-finite, where (``diverged``; the history then
    holds the epochs before it)."""

    name: str
    description: str
    lr: float
    history: History
    diverged: str | None = None

    @property
    def train_seconds(self):
        return float(sum(self.history.time))

    @property
    def eval_seconds(self):
        return float(sum(self.history.eval_time))

    def row(self):
        """The run's line of the table, as a dict (None where a figure does not apply)."""
        h, last = self.history, (lambda values: values[-1] if values else None)
        return {
            "approach": self.name, "lr": self.lr,
            "train_loss": last(h.loss), "test_loss": last(h.val_loss),
            "train_accuracy": last(h.accuracy), "test_accuracy": last(h.val_accuracy),
            "epochs": h.epochs, "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds, "steps": int(sum(h.steps)),
            "raised": int(sum(h.raised)),
            "flipped": None if not h.flipped or h.flipped[0] is None
            else float(np.dot(h.flipped, h.steps) / max(sum(h.steps), 1)),
            "diverged": self.diverged,
        }


@dataclass
class Comparison:
    """What ``compare`` measured: ``runs``, one Run per approach in order; the ``dataset``
    (name, task, sizes), the ``network`` and the ``settings`` it was given (every argument,
    and each approach's description and learning rate); ``initial_loss``, the training loss
    at the initial weights every run starts from; ``compile_seconds``, the warm-up that ran
    every kernel once before any run was timed; the ``environment`` (versions, machine)."""

    runs: list
    dataset: dict
    network: dict
    settings: dict
    initial_loss: float
    compile_seconds: float = 0.0
    environment: dict = field(default_factory=dict)

    def table(self):
        return [run.row() for run in self.runs]

    def format_table(self):
        """The table as text: one line per approach."""
        def cell(value, spec):  # spec: width.precision and type, e.g. "10.4f"
            return format("-", f">{spec.split('.')[0]}") if value is None else format(value, spec)

        lines = [f"{'approach':<18}{'train loss':>11}{'test loss':>10}{'train acc':>10}"
                 f"{'test acc':>9}{'epochs':>7}{'train s':>9}{'steps':>10}{'raised':>8}"
                 f"{'flipped':>8}"]
        for row in self.table():
            line = (f"{row['approach']:<18}{cell(row['train_loss'], '11.4f')}"
                    f"{cell(row['test_loss'], '10.4f')}{cell(row['train_accuracy'], '10.3f')}"
                    f"{cell(row['test_accuracy'], '9.3f')}{row['epochs']:>7}"
                    f"{row['train_seconds']:>9.2f}{row['steps']:>10}{row['raised']:>8}"
                    f"{cell(row['flipped'], '8.3f')}")
            if row["diverged"]:
                line += f"   DIVERGED: {row['diverged']}"
            lines.append(line)
        return "\n".join(lines)

    def history_rows(self):
        """One tidy row per approach and epoch (the contents of history.csv)."""
        rows = []
        for run in self.runs:
            h, seconds = run.history, 0.0
            for e in range(h.epochs):
                seconds += h.time[e]
                rows.append({"approach": run.name, "epoch": e + 1, "train_seconds": seconds,
                             "train_loss": h.loss[e], "train_accuracy": h.accuracy[e],
                             "test_loss": h.val_loss[e], "test_accuracy": h.val_accuracy[e],
                             "steps": h.steps[e], "raised": h.raised[e],
                             "flipped": h.flipped[e], "eval_seconds": h.eval_time[e]})
        return rows

    def save(self, out_dir):
        """Write loss_vs_epoch.png, loss_vs_seconds.png, accuracy.png, history.csv and
        results.json into ``out_dir`` (made if missing); returns their paths."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the output directory {str(out)!r}: "
                             f"{error.strerror}") from None
        rows = self.history_rows()
        paths = [out / "history.csv", out / "results.json"]
        with open(paths[0], "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["approach"])
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        results = {"table": self.table(), "dataset": self.dataset, "network": self.network,
                   "settings": self.settings, "initial_loss": self.initial_loss,
                   "compile_seconds": self.compile_seconds,
                   "environment": self.environment}
        paths[1].write_text(json.dumps(results, indent=2) + "\n")
        return paths + plot(self, out)


def plot(comparison, out_dir):
    """The three figures of a Comparison in ``out_dir``: training loss against epochs and
    against training seconds (log axis), and test accuracy (test loss for regression) against
    training seconds. One colour per approach across the three. Returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    colours = plt.get_cmap("tab10").colors
    # dashes too, so that approaches whose curves coincide stay visible
    styles = ("-", "--", ":", "-.")
    data = comparison.dataset
    where = (f"{data['name']}: {data['n_train']} training / {data['n_test']} test samples; "
             f"{comparison.network['label']}")
    regression = data["task"] == "regression"
    loss_name = "mean squared error" if regression else "cross-entropy"

    def figure(filename, title, xlabel, ylabel, series, log_x=False, log_y=True):
        fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
        for k, run in enumerate(comparison.runs):
            x, y = series(run)
            if not len(x):
                continue
            label = run.name + (" (diverged)" if run.diverged else "")
            ax.plot(x, y, color=colours[k % len(colours)], linestyle=styles[k % len(styles)],
                    label=label, linewidth=1.8, marker="o" if len(x) == 1 else None)
        ax.set_title(f"{title}\n{where}", fontsize=11)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=9)
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def seconds(run):
        return np.cumsum(run.history.time)

    return [
        figure("loss_vs_epoch.png", "Training loss after each epoch (epoch 0: the shared "
               "initial weights)", "epoch", f"training loss ({loss_name})",
               lambda run: (np.arange(run.history.epochs + 1),
                            [comparison.initial_loss, *run.history.loss])),
        figure("loss_vs_seconds.png", "Training loss against training time "
               "(evaluation not counted)", "training time (s, log scale)",
               f"training loss ({loss_name})",
               lambda run: (seconds(run), run.history.loss), log_x=True),
        figure("accuracy.png", ("Test loss" if regression else "Test accuracy")
               + " against training time", "training time (s, log scale)",
               f"test loss ({loss_name})" if regression else "test accuracy (fraction right)",
               lambda run: (seconds(run), run.history.val_loss if regression
                            else run.history.val_accuracy), log_x=True, log_y=regression),
    ]


class Progress:
    """What the user sees on stderr while ``compare`` runs: a progress bar per approach (tqdm)
    on a terminal, a line per approach otherwise, nothing when quiet."""

    def __init__(self, mode):
        if mode not in ("auto", "bar", "lines", "quiet"):
            raise ValueError(f"progress must be 'auto', 'bar', 'lines' or 'quiet'; got {mode!r}")
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.bar = mode, None

    def say(self, text):
        if self.mode != "quiet":
            print(text, file=sys.stderr, flush=True)

    def start(self, name, epochs):
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc=name, unit="epoch", file=sys.stderr,
                            leave=True, dynamic_ncols=True)

    def epoch(self, history):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {history.loss[-1]:.4g}", refresh=False)

    def finish(self, run):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.mode == "lines":
            row = run.row()
            status = f"diverged: {run.diverged}" if run.diverged else \
                f"train loss {row['train_loss']:.4g}"
            self.say(f"{run.name:<18} {row['epochs']:>5} epochs  {row['train_seconds']:7.2f} s "
                     f"training  {status}")


def _check_budget(epochs, seconds):
    if epochs is None and seconds is None:
        epochs = DEFAULT_EPOCHS
    return (check_positive_int("epochs", epochs, allow_none=True),
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


def _warm_up(net, data, approaches, progress):
    """Run every kernel the comparison will use once, on a few samples, so that no approach's
    time includes Numba compiling it (a first run on a fresh install compiles for tens of
    seconds; later runs load the kernels from Numba's cache in about a second). Returns the
    seconds it took."""
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
        for approach in approaches:
            small = copy.deepcopy(approach)
            small.batch_size = None
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


def compare(dataset="digits", *, target=None, task="classification", hidden=(32,),
            activation="tanh", batchnorm=False, dtype="float64", backend="cython", seed=0,
            approaches=None, lr=None, epochs=None, seconds=None, progress="quiet"):
    """Train each approach from the same initial weights on the same split and return a
    Comparison.

    dataset : "digits" (default: scikit-learn's 1,797 8x8 images, no download),
        "breast_cancer", "iris", "wine", or a path to a .csv (numeric cells; ``target`` names
        the label column, default the last) or .npz (arrays X and y). Split 75/25 (stratified
        for classification) with ``seed``; standardised with the training part's statistics.
    task : "classification" (cross-entropy) or "regression" (mse).
    hidden, activation, batchnorm, dtype, backend : the network (see fastgrad.MLP); its initial
        weights come from ``seed``, and every approach starts from them.
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
    if lr is not None:
        lr = check.check_positive("lr", lr)
    if isinstance(hidden, int):
        hidden = (hidden,)
    reporter = Progress(progress)
    data = datasets.load(dataset, target=target, task=task, seed=seed)
    n_train = len(data.X_train)
    loss = "mse" if task == "regression" else "cross_entropy"
    initial = MLP([data.X_train.shape[1], *hidden, data.n_outputs], activation, batchnorm, loss,
                  dtype, seed, backend)
    chosen = [CONTENDERS[name] for name in names]
    lrs = [c.lr if lr is None else lr for c in chosen]
    made = [c.make(rate, n_train) for c, rate in zip(chosen, lrs)]

    compile_seconds = _warm_up(initial, data, made, reporter)
    runs = []
    for contender, rate, approach in zip(chosen, lrs, made):
        net = initial.copy()

        def stop(epoch, history):
            reporter.epoch(history)
            return seconds is not None and sum(history.time) >= seconds

        reporter.start(contender.name, epochs)
        diverged = None
        try:
            history = train(net, data.X_train, data.y_train, approach,
                            epochs=epochs if epochs is not None else sys.maxsize, seed=seed,
                            validation=(data.X_test, data.y_test), callback=stop)
        except NonFiniteStep as error:
            history, diverged = error.history, str(error)
        run = Run(contender.name, contender.description, rate, history, diverged)
        reporter.finish(run)
        runs.append(run)

    sizes = initial.sizes
    label = (f"{'-'.join(map(str, sizes))} {activation}{' + BatchNorm' if batchnorm else ''}, "
             f"{dtype}, {initial.n_params:,} weights")
    return Comparison(
        runs,
        dataset={"name": data.name, "task": data.task, "n_train": n_train,
                 "n_test": len(data.X_test), "n_features": data.X_train.shape[1],
                 "n_outputs": data.n_outputs},
        network={"sizes": list(sizes), "activation": activation, "batchnorm": batchnorm,
                 "loss": loss, "dtype": dtype, "backend": backend,
                 "n_params": initial.n_params, "label": label},
        settings={"dataset": str(dataset), "target": target, "task": task,
                  "hidden": list(hidden), "activation": activation, "batchnorm": batchnorm,
                  "dtype": dtype, "backend": backend, "seed": seed, "lr": lr,
                  "epochs": epochs, "seconds": seconds,
                  "approaches": {c.name: {"description": c.description, "lr": rate}
                                 for c, rate in zip(chosen, lrs)}},
        initial_loss=initial.loss(data.X_train, data.y_train),
        compile_seconds=compile_seconds, environment=environment())


def environment():
    """The versions and the machine a comparison ran on (Numba's read from its package
    metadata: importing it takes about a second, which a Cython run need not spend)."""
    from importlib.metadata import version

    import sklearn

    from . import __version__

    processor = platform.processor() or None
    try:  # Linux names the CPU model here; platform.processor() often gives ""
        with open("/proc/cpuinfo") as file:
            processor = next((line.split(":", 1)[1].strip() for line in file
                              if line.startswith("model name")), processor)
    except OSError:
        pass
    return {"fastgrad": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "numba": version("numba"), "scikit-learn":
            sklearn.__version__, "machine": platform.machine(), "processor": processor,
            "system": platform.platform(), "cpus": os.cpu_count()}
