"""What a training run did, one entry per epoch."""
from dataclasses import dataclass, field, fields


@dataclass
class History:
    """What training did, one entry per epoch.

    ``loss``: J on the whole training set after the epoch (BatchNorm on that set's statistics;
    None when the run skips that evaluation, ``train(evaluate_training=False)``);
    ``accuracy``: the fraction of the training set predicted right (evaluation mode; None for
    mse); ``val_loss``, ``val_accuracy``: the same on the validation data (None without it);
    ``train_seconds``: the epoch's training time (its steps and their bookkeeping);
    ``eval_seconds``: the seconds spent measuring it, not counted in ``train_seconds`` (the
    evaluation after the epoch, and re-evaluating each batch's loss after its step to count
    raised steps, which the parallel approaches do with ``count_raised``); ``steps``: optimizer
    steps taken (for the sequential approach, single-coordinate steps); ``raised``: how many of
    them raised the loss of the batch they were taken on (the loss after the step against the
    loss before, on the same batch); ``flipped`` (sequential approach; None otherwise): how many
    of its steps had a derivative of the opposite sign from the gradient at the start of their
    sweep (``flipped_fraction`` divides by the steps); ``running_loss``: the loss as the epoch
    went, the mean over its samples of their batch's loss before the batch's step (free to
    know, and what scikit-learn's ``loss_curve_`` holds; None where the approach does not
    report it); ``best_epoch``: the epoch (1-based) whose weights an EarlyStopping callback
    put back at the end (None if none did); ``figures``: an approach's own per-epoch
    figures, {name: [one per epoch]}."""

    approach: str
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    train_seconds: list = field(default_factory=list)
    eval_seconds: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    raised: list = field(default_factory=list)
    flipped: list = field(default_factory=list)
    running_loss: list = field(default_factory=list)
    best_epoch: int | None = None
    figures: dict = field(default_factory=dict)

    @property
    def epochs(self):
        return len(self.loss)

    def extend(self, later):
        """Append the epochs of ``later``, a History of the run that continued this one (a
        ``partial_fit``, a warm start)."""
        for column in fields(self):  # every per-epoch column
            if column.name not in ("approach", "best_epoch", "figures"):
                getattr(self, column.name).extend(getattr(later, column.name))
        for name in set(self.figures) | set(later.figures):
            self.figures.setdefault(name, [None] * (self.epochs - later.epochs))
            self.figures[name].extend(later.figures.get(name, [None] * later.epochs))
        if later.best_epoch is not None:
            self.best_epoch = self.epochs - later.epochs + later.best_epoch

    @property
    def flipped_fraction(self):
        """Per epoch, the fraction of the steps that flipped (None where not counted)."""
        return [None if flipped is None else flipped / max(steps, 1)
                for flipped, steps in zip(self.flipped, self.steps)]

    def __str__(self):
        def number(value, spec):
            return "-" if value is None else format(value, spec)

        lines = [f"{'epoch':>5} {'loss':>12} {'accuracy':>9} {'val loss':>12} {'val acc':>8} "
                 f"{'train s':>8} {'steps':>6} {'raised':>6} {'flipped':>7}"]
        for e in range(self.epochs):
            lines.append(f"{e + 1:>5} {number(self.loss[e], '12.6f'):>12} "
                         f"{number(self.accuracy[e], '9.4f'):>9} "
                         f"{number(self.val_loss[e], '12.6f'):>12} "
                         f"{number(self.val_accuracy[e], '8.4f'):>8} "
                         f"{self.train_seconds[e]:>8.3f} {self.steps[e]:>6} {self.raised[e]:>6} "
                         f"{number(self.flipped_fraction[e], '7.4f'):>7}")
        return "\n".join(lines)
