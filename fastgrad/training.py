"""The training loop: ``fastgrad.train(net, X, y, approach, epochs=...)``.

The approach is an object that runs one epoch (fastgrad/approach.py):

- ``Parallel(optimizer, batch_size)`` (fastgrad/parallel.py): each step moves every weight at
  once along the gradient at the current point;
- ``LayerWise(optimizer, order, batch_size)`` (fastgrad/layerwise.py): each step moves one
  layer, with its gradient at the current point;
- ``Sequential(order, lr, step, batch_size)`` (fastgrad/sequential.py): each epoch is a sweep of
  single-coordinate steps (one per batch with a batch size).

The names "parallel", "layerwise" and "sequential" stand for those objects with their defaults.
The epoch loop, shuffling and bookkeeping stay in Python; each step is one kernel call.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from . import _validation as check
from .approach import Approach, TrainingData, check_positive_int
from .errors import NonFiniteStep
from .layerwise import LayerWise
from .network import Point, predictions
from .parallel import Parallel
from .sequential import Sequential

APPROACHES = {"parallel": Parallel, "layerwise": LayerWise, "sequential": Sequential}


def make_approach(approach):
    """An approach object from an object or a name (the named approach with its defaults)."""
    if isinstance(approach, Approach):
        return approach
    if isinstance(approach, str) and approach in APPROACHES:
        return APPROACHES[approach]()
    raise (ValueError if isinstance(approach, str) else TypeError)(
        f"approach must be an approach object (Parallel, LayerWise, Sequential, ...) or one of "
        f"{sorted(APPROACHES)}; got {approach!r}")


@dataclass
class History:
    """What training did, one entry per epoch.

    ``loss``: J on the whole training set after the epoch (BatchNorm on that set's statistics);
    ``accuracy``: the fraction of the training set predicted right (evaluation mode; None for
    mse); ``val_loss``, ``val_accuracy``: the same on the validation data (None without it);
    ``time``: the epoch's training time in seconds (its steps and their bookkeeping);
    ``eval_time``: the seconds spent measuring it, not counted in ``time`` (the evaluation after
    the epoch, and re-evaluating each batch's loss after its step to count raised steps, which
    the parallel approaches do with ``count_raised``); ``steps``: optimizer steps
    taken (for the sequential approach, single-coordinate steps); ``raised``: how many of them
    raised the loss of the batch they were taken on (the loss after the step against the loss
    before, on the same batch); ``flipped`` (sequential approach; None otherwise): the fraction
    of its steps whose derivative had the opposite sign from the gradient at the start of their
    sweep."""

    approach: str
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    time: list = field(default_factory=list)
    eval_time: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    raised: list = field(default_factory=list)
    flipped: list = field(default_factory=list)

    @property
    def epochs(self):
        return len(self.loss)

    def __str__(self):
        def number(value, spec):
            return "-" if value is None else format(value, spec)

        lines = [f"{'epoch':>5} {'loss':>12} {'accuracy':>9} {'val loss':>12} {'val acc':>8} "
                 f"{'train s':>8} {'steps':>6} {'raised':>6} {'flipped':>7}"]
        for e in range(self.epochs):
            lines.append(f"{e + 1:>5} {self.loss[e]:>12.6f} {number(self.accuracy[e], '9.4f'):>9} "
                         f"{number(self.val_loss[e], '12.6f'):>12} "
                         f"{number(self.val_accuracy[e], '8.4f'):>8} {self.time[e]:>8.3f} "
                         f"{self.steps[e]:>6} {self.raised[e]:>6} "
                         f"{number(self.flipped[e], '7.4f'):>7}")
        return "\n".join(lines)


class Evaluation:
    """(J, accuracy) on one data set after every epoch, in buffers allocated once; accuracy is
    None for mse. Without BatchNorm one forward pass gives both (training and evaluation mode
    are then the same); with it J takes the set's statistics and the accuracy the running ones,
    a second pass."""

    def __init__(self, net, X, y, T):
        self.net, self.point = net, Point(net, X, T)
        self.labels = None if net.loss_name == "mse" else np.asarray(y).reshape(-1)

    def __call__(self):
        net, point = self.net, self.point
        point.forward(batch_stats=True)
        point.evaluate_loss()
        if self.labels is None:
            return point.loss, None
        if net.batchnorm:
            point.forward_in_evaluation_mode()
        correct = predictions(net.loss_name, point.logits) == self.labels
        return point.loss, float(np.mean(correct))


def train(net, X, y, approach="parallel", epochs=10, seed=0, validation=None, callback=None):
    """Train ``net`` on (X, y) with ``approach`` and return a History.

    approach : an approach object — ``Parallel(optimizer, batch_size)``, ``LayerWise(optimizer,
        order)``, ``Sequential(order, lr, step, batch_size)`` — or one of their names for the
        object with its defaults ("parallel" is full-batch SGD with lr 0.1). The approach keeps
        its optimizer's state across calls.
    epochs : passes over the data.
    seed : seeds the generator that reshuffles the data every epoch (with a batch size) and
        draws the random orders.
    validation : (X_val, y_val), evaluated after every epoch.
    callback : ``callback(epoch, history)`` after every epoch (epochs count from 1); return True
        to stop training.

    A step whose loss or update is not finite raises NonFiniteStep naming the epoch and step;
    the network keeps the weights it had before that step and the error carries ``history``.
    (A sequential sweep keeps the steps before the failing one.)
    """
    from .network import MLP

    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastgrad.MLP; got {type(net).__name__}")
    approach = make_approach(approach)
    X = check.check_X(X, net.sizes[0], net.dtype)
    T = check.check_targets(y, len(X), net.sizes[-1], net.loss_name, net.dtype)
    y = np.asarray(y)
    epochs = check_positive_int("epochs", epochs)
    approach.check(net, len(X))
    if validation is not None:
        try:
            X_val, y_val = validation
        except (TypeError, ValueError):
            raise TypeError("validation must be a pair (X_val, y_val)") from None
        X_val = check.check_X(X_val, net.sizes[0], net.dtype)
        T_val = check.check_targets(y_val, len(X_val), net.sizes[-1], net.loss_name, net.dtype)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {callback!r}")
    optimizer = getattr(approach, "optimizer", None)
    if optimizer is not None:
        optimizer._bind(net)  # before any step: a network it cannot serve fails here

    rng = np.random.default_rng(seed)
    data = TrainingData(net, X, y, T)
    history = History(approach.name)
    evaluate = Evaluation(net, X, y, T)
    evaluate_validation = Evaluation(net, X_val, y_val, T_val) if validation is not None else None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        try:
            result = approach.run_epoch(net, data, rng)
        except NonFiniteStep as error:
            failure = NonFiniteStep(f"epoch {epoch}, {error}")
            failure.history = history
            raise failure from None
        trained = time.perf_counter()
        loss, accuracy = evaluate()
        history.loss.append(loss)
        history.accuracy.append(accuracy)
        val_loss, val_accuracy = evaluate_validation() if validation is not None else (None, None)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        history.steps.append(result.steps)
        history.raised.append(result.raised)
        history.flipped.append(result.flipped)
        history.time.append(trained - start - result.check_seconds)
        history.eval_time.append(time.perf_counter() - trained + result.check_seconds)
        if callback is not None and callback(epoch, history):
            break
    return history
