"""Callbacks: objects that see a training run at its start, after each epoch and at its end, and
may stop it (``run.stop()``). Each hook gets the run (fastgrad.training.TrainingRun: the
network, the approach, the history, the generator, the epoch); ``on_train_end`` is called
however the run ends, also when a step failed (``run.error`` then holds the NonFiniteStep),
for every callback whose ``on_train_start`` ran.

A callback of one's own, as a user writes it (README, "Training runs"):

    class StopBelow(fastgrad.Callback):
        def on_epoch_end(self, run):
            if run.history.loss[-1] < 0.01:
                run.stop()
"""
import math
import sys


class Callback:
    """The hooks, each doing nothing: override the ones you need."""

    def on_train_start(self, run):
        """Before the first epoch."""

    def on_epoch_end(self, run):
        """After each epoch, once the History holds it."""

    def on_train_end(self, run):
        """After the last epoch, or when the run stopped or failed."""


class OnEpochEnd(Callback):
    """A function ``fn(run)`` called after every epoch; returning True stops the run."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"fn must be callable; got {fn!r}")
        self.fn = fn

    def on_epoch_end(self, run):
        if self.fn(run):
            run.stop()


class TimeBudget(Callback):
    """Stops the run once its training time (History.train_seconds, evaluation not counted)
    reaches ``seconds``; checked after each epoch."""

    def __init__(self, seconds):
        from ..validation import check_positive

        self.seconds = check_positive("seconds", seconds)

    def on_epoch_end(self, run):
        if sum(run.history.train_seconds) >= self.seconds:
            run.stop()


class ProgressBar(Callback):
    """A tqdm bar (``tqdm.auto``: a widget in a notebook) of the run's epochs on ``file``
    (default stderr), with the last training loss; ``disable=None`` (the default) shows it only
    when ``file`` is a terminal, ``disable=False`` always (in a notebook, say)."""

    def __init__(self, description=None, file=None, disable=None):
        self.description, self.file, self.disable = description, file, disable
        self.bar = None

    def on_train_start(self, run):
        from tqdm.auto import tqdm

        file = sys.stderr if self.file is None else self.file
        total = run.epochs if run.epochs < sys.maxsize else None  # open-ended: a counter
        disable = not file.isatty() if self.disable is None else self.disable
        self.bar = tqdm(total=total, desc=self.description or run.approach.name, unit="epoch",
                        file=file, leave=True, dynamic_ncols=True, disable=disable)

    def on_epoch_end(self, run):
        self.bar.update(1)
        self.bar.set_postfix_str(f"loss {run.history.loss[-1]:.4g}", refresh=False)

    def on_train_end(self, run):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Checkpoint(Callback):
    """Writes a checkpoint to ``path`` every ``every`` epochs and at the end of a run that
    completed (its epochs, or a stop; not one ended by an exception, whose state may be
    mid-epoch), through ``fastgrad.save``: the network, the approach and its optimizer's state,
    the History, the generator and the epoch; atomically, so an interrupted write leaves the
    previous checkpoint. ``train(..., resume=path)`` continues from it exactly."""

    def __init__(self, path, every=1):
        from ..validation import check_positive_int

        self.path, self.every = path, check_positive_int("every", every)
        self.written = None  # the epoch of the last checkpoint written

    def write(self, run):
        from ..io import save

        save(self.path, run.net, approach=run.approach, history=run.history, rng=run.rng,
             epoch=run.epoch)
        self.written = run.epoch

    def on_train_start(self, run):
        self.written = None

    def on_epoch_end(self, run):
        if run.epoch % self.every == 0:
            self.write(run)

    def on_train_end(self, run):
        if run.completed and run.epoch > 0 and self.written != run.epoch:
            self.write(run)


class EarlyStopping(Callback):
    """Stops the run once the monitored figure has gone ``patience`` epochs in a row without
    improving by at least ``min_delta``, and (``restore_best``) puts back the weights and the
    running statistics of the best epoch at the end of the run, recording it in
    ``History.best_epoch``.

    monitor : a History column — "val_loss" (the default), "loss", "running_loss",
        "val_accuracy", "accuracy" — or a function ``fn(run) -> float`` of the run after an
        epoch (a validation score of one's own).
    mode : "min" or "max": whether smaller or larger is better (default: "max" for the
        accuracies, "min" otherwise; give it for a function).
    patience : epochs without improvement before the run stops (``math.inf``: never stop, only
        keep the best).
    reset_each_run : start afresh (no best, no epochs waited) at each run's start; False
        carries them over from the run before (a continued fit).

    The rule is scikit-learn's MLP's: an epoch improves when its figure beats the best so far
    by at least ``min_delta``; the best so far is the best figure seen (it follows any gain,
    however small); scikit-learn's ``n_iter_no_change=k`` is ``patience=k + 1``. When patience
    runs out, ``on_plateau(run)`` decides (default: stop; scikit-learn's adaptive learning rate
    lowers the rate instead and waits again). A NaN figure never improves (scikit-learn's
    comparisons would count it as one).
    """

    ACCURACIES = ("accuracy", "val_accuracy")
    COLUMNS = ("loss", "val_loss", "running_loss") + ACCURACIES

    def __init__(self, patience=10, monitor="val_loss", min_delta=0.0, restore_best=True,
                 mode=None, reset_each_run=True):
        from ..validation import check_bool, check_choice, check_non_negative, \
            check_positive_int

        if patience != math.inf:
            check_positive_int("patience", patience)
        if not callable(monitor):
            check_choice("monitor", monitor, self.COLUMNS)
        if mode is None:
            if callable(monitor):
                raise ValueError("mode must be given ('min' or 'max') for a monitor function")
            mode = "max" if monitor in self.ACCURACIES else "min"
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.patience, self.monitor = patience, monitor
        self.min_delta = check_non_negative("min_delta", min_delta)
        self.restore_best = check_bool("restore_best", restore_best)
        self.reset_each_run = check_bool("reset_each_run", reset_each_run)
        self.reset()

    def reset(self):
        """Forget the best figure, its weights and the epochs waited."""
        self.best, self.best_epoch, self.best_state, self.waited = None, None, None, 0
        self.best_run = None  # the run the best epoch belongs to

    def value(self, run):
        """The monitored figure after the run's last epoch."""
        if callable(self.monitor):
            return float(self.monitor(run))
        value = getattr(run.history, self.monitor)[-1]
        if value is None:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this run does "
                             f"not record (no validation data, a regression loss, or "
                             f"evaluate_training=False)")
        return float(value)

    def on_train_start(self, run):
        if self.reset_each_run:
            self.reset()
        self.this_run = object()

    def on_epoch_end(self, run):
        value = self.value(run)
        sign = 1.0 if self.mode == "min" else -1.0  # in "min" terms: smaller is better
        best = math.inf if self.best is None else sign * self.best
        if sign * value <= best - self.min_delta:
            self.waited = 0
        else:  # NaN lands here too
            self.waited += 1
        if sign * value < best:
            self.best, self.best_epoch, self.best_run = value, run.epoch, self.this_run
            if self.restore_best:
                self.best_state = run.net.state_dict()
        if self.waited >= self.patience:
            if self.on_plateau(run):
                run.stop()
            else:
                self.waited = 0

    def on_plateau(self, run):
        """Patience has run out: return True to stop the run (the default), False to go on
        (the count of epochs waited starts again)."""
        return True

    def on_train_end(self, run):
        if self.restore_best and self.best_state is not None:
            run.net.load_state_dict(self.best_state)
            # an epoch of this run's History; None when the best came from a run before
            run.history.best_epoch = self.best_epoch if self.best_run is self.this_run else None
