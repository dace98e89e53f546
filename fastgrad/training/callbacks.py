"""Callbacks: objects that see a training run at its start, after each epoch and at its end, and
may stop it (``run.stop()``). Each hook gets the run (fastgrad.training.TrainingRun: the
network, the approach, the history, the generator, the epoch); ``on_train_end`` is called
however the run ends, also when a step failed (``run.error`` then holds the NonFiniteStep),
for every callback whose ``on_train_start`` ran.

Early stopping that puts the best weights back, as a user writes it (README, "Training runs"):

    class RestoreBest(fastgrad.Callback):
        def on_train_start(self, run):
            self.best, self.waited, self.weights = float("inf"), 0, run.net.state_dict()
        def on_epoch_end(self, run):
            self.waited += 1
            if run.history.val_loss[-1] < self.best:
                self.best, self.waited, self.weights = run.history.val_loss[-1], 0, run.net.state_dict()
            if self.waited == 3: run.stop()
        def on_train_end(self, run):
            run.net.load_state_dict(self.weights)
"""
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
