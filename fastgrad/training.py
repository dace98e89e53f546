"""The training loop: ``fastgrad.train(net, X, y, approach=...)``.

- ``approach="parallel"``: each step moves every weight at once along the gradient at the
  current point, through ``optimizer.step``;
- ``approach="layerwise"``: each step moves one layer, with its gradient at the current point
  (the layers before it in the sweep have already moved), in ``layer_order``;
- ``approach="sequential"``: each epoch is a sweep of single-coordinate steps (one per batch
  with ``batch_size``), through the sweep kernel of fastgrad.sequential.

The epoch loop, shuffling and bookkeeping stay in Python; each step is one kernel call.
"""
import numbers
import time
from dataclasses import dataclass, field

import numpy as np

from . import _validation as check
from .optim import SGD, NonFiniteStep, Optimizer
from .sequential import check_order, check_step, draw_order, run_sweep

APPROACHES = ("parallel", "layerwise", "sequential")
LAYER_ORDERS = ("forward", "backward", "random")


@dataclass
class History:
    """What training did, one entry per epoch.

    ``loss``: J on the whole training set after the epoch (BatchNorm on that set's statistics);
    ``accuracy``: the fraction of the training set predicted right (evaluation mode; None for
    mse); ``val_loss``, ``val_accuracy``: the same on the validation data (None without it);
    ``time``: the epoch's wall time in seconds, bookkeeping included; ``steps``: optimizer steps
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
                 f"{'time s':>8} {'steps':>6} {'raised':>6} {'flipped':>7}"]
        for e in range(self.epochs):
            lines.append(f"{e + 1:>5} {self.loss[e]:>12.6f} {number(self.accuracy[e], '9.4f'):>9} "
                         f"{number(self.val_loss[e], '12.6f'):>12} "
                         f"{number(self.val_accuracy[e], '8.4f'):>8} {self.time[e]:>8.3f} "
                         f"{self.steps[e]:>6} {self.raised[e]:>6} "
                         f"{number(self.flipped[e], '7.4f'):>7}")
        return "\n".join(lines)


def _evaluate(net, X, y):
    """(J, accuracy) on a data set; accuracy is None for mse."""
    loss = net.loss(X, y)
    if net.loss_name == "mse":
        return loss, None
    return loss, float(np.mean(net.predict(X) == np.asarray(y).reshape(-1)))


def _check_positive_int(name, value, upper=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    if value < 1 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be at least 1{bound}; got {value}")
    return int(value)


def train(net, X, y, approach="parallel", optimizer=None, epochs=10, batch_size=None, seed=0,
          validation=None, callback=None, layer_order="forward", count_raised=True, order=None,
          lr=None, step=None):
    """Train ``net`` on (X, y) and return a History.

    optimizer : for the parallel and layer-wise approaches, a fastgrad.optim optimizer, default
        SGD(lr=0.1); it keeps its state across calls.
    epochs : passes over the data.
    batch_size : samples per step (None: the whole set, full-batch); the data are shuffled
        at every epoch by a generator seeded with ``seed``; the last batch may be smaller.
    validation : (X_val, y_val), evaluated after every epoch.
    callback : ``callback(epoch, history)`` after every epoch (epochs count from 1); return True
        to stop training.
    layer_order : for the layer-wise approach: "forward", "backward" or "random" (a fresh
        permutation of the layers for every batch).
    count_raised : re-evaluate each batch's loss after its step, to count the steps that raised
        it (one extra forward pass per step). The sequential sweep always counts, for free.
    order, lr, step : for the sequential approach (see fastgrad.sequential): the order of each
        sweep ("cyclic" by default, "reverse", "permutation", "random", "greedy" or an index
        array), the learning rate (default 0.1) and the step rule ("gradient" by default or
        "newton"). Each epoch is one sweep over all the parameters on each batch: with
        ``batch_size``, one sweep per batch, J that batch's mean loss.

    A step whose loss or update is not finite raises NonFiniteStep naming the epoch and step;
    the network keeps the weights it had before that step and the error carries ``history``.
    (A sequential sweep keeps the steps before the failing one.)
    """
    from .network import MLP

    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastgrad.MLP; got {type(net).__name__}")
    check.check_choice("approach", approach, APPROACHES)
    sequential = approach == "sequential"
    if sequential:
        if optimizer is not None:
            raise ValueError("optimizer applies to the parallel and layer-wise approaches; the "
                             "sequential one takes lr and step")
        order, greedy = check_order("cyclic" if order is None else order, net.n_params)
        rule, lr = check_step("gradient" if step is None else step, 0.1 if lr is None else lr)
    else:
        for name, value in (("order", order), ("lr", lr), ("step", step)):
            if value is not None:
                raise ValueError(f"{name} applies to approach='sequential'; the {approach} "
                                 f"approach takes an optimizer (the learning rate is its lr)")
        optimizer = SGD(lr=0.1) if optimizer is None else optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastgrad.optim optimizer; got {optimizer!r}")
    X = check.check_X(X, net.sizes[0], net.dtype)
    T = check.check_targets(y, len(X), net.sizes[-1], net.loss_name, net.dtype)
    y = np.asarray(y)
    epochs = _check_positive_int("epochs", epochs)
    batch_size = len(X) if batch_size is None else _check_positive_int("batch_size", batch_size,
                                                                       len(X))
    check.check_choice("layer_order", layer_order, LAYER_ORDERS)
    if validation is not None:
        try:
            X_val, y_val = validation
        except (TypeError, ValueError):
            raise TypeError("validation must be a pair (X_val, y_val)") from None
        X_val = check.check_X(X_val, net.sizes[0], net.dtype)
        check.check_targets(y_val, len(X_val), net.sizes[-1], net.loss_name, net.dtype)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {callback!r}")
    if not sequential:
        optimizer._bind(net)

    rng = np.random.default_rng(seed)
    history = History(approach)
    n_layers = len(net.layers)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        shuffle = rng.permutation(len(X)) if batch_size < len(X) else np.arange(len(X))
        X_epoch, y_epoch, T_epoch = X[shuffle], y[shuffle], T[shuffle]
        steps = raised = flipped = 0
        for first in range(0, len(X), batch_size):
            X_batch = X_epoch[first:first + batch_size]
            y_batch = y_epoch[first:first + batch_size]
            if sequential:
                coordinates = draw_order(order, net.n_params, rng)
                try:
                    report = run_sweep(net, X_batch, T_epoch[first:first + batch_size],
                                       coordinates, greedy, rule, lr)
                except NonFiniteStep as error:
                    failure = NonFiniteStep(f"epoch {epoch}, sweep {first // batch_size + 1}: "
                                            f"{error}")
                    failure.history = history
                    raise failure from None
                steps += report.steps
                raised += report.raised
                flipped += report.flipped
                continue
            if approach == "parallel":
                layers = [None]
            elif layer_order == "forward":
                layers = range(n_layers)
            elif layer_order == "backward":
                layers = range(n_layers - 1, -1, -1)
            else:
                layers = rng.permutation(n_layers)
            for layer in layers:
                try:
                    if layer is None:
                        before = optimizer.step(net, X_batch, y_batch)
                    else:
                        before = optimizer.layer_step(net, X_batch, y_batch, int(layer))
                except NonFiniteStep as error:
                    failure = NonFiniteStep(f"epoch {epoch}, step {steps + 1}: {error}")
                    failure.history = history
                    raise failure from None
                steps += 1
                if count_raised and optimizer.batch_loss(net, X_batch, y_batch) > before:
                    raised += 1
        loss, accuracy = _evaluate(net, X, y)
        history.loss.append(loss)
        history.accuracy.append(accuracy)
        val_loss, val_accuracy = _evaluate(net, X_val, y_val) if validation is not None else (None, None)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        history.steps.append(steps)
        history.raised.append(raised)
        history.flipped.append(flipped / steps if sequential else None)
        history.time.append(time.perf_counter() - start)
        if callback is not None and callback(epoch, history):
            break
    return history
