"""The training run: ``fastgrad.train(net, X, y, approach, epochs=..., callbacks=[...])``.

The approach is an object that runs one epoch (fastgrad/approaches/):

- ``Parallel(optimizer, batch_size)``: each step moves every weight at once along the gradient
  at the current point;
- ``LayerWise(optimizer, order, batch_size)``: each step moves one layer, with its gradient at
  the current point;
- ``Sequential(order, lr, step, batch_size)``: each epoch is a sweep of single-coordinate steps
  (one per batch with a batch size).

The names "parallel", "layerwise" and "sequential" stand for those objects with their defaults.
The run owns the random generator (or uses the caller's, so that a run can continue exactly
where another stopped), one pool of workspaces that the approach's steps and the evaluations
share, the History, and the callbacks (fastgrad/training/callbacks.py). The epoch loop,
shuffling and bookkeeping stay in Python; each epoch is one kernel call or a few.
"""
import time

import numpy as np

from .. import validation as check
from ..approaches import TrainingData, make_approach
from ..errors import NonFiniteStep
from ..model import CLASSIFICATION_LOSSES, Point, Workspaces
from .callbacks import Callback, Checkpoint, ProgressBar
from .history import History


class Evaluation:
    """(J, accuracy) on one data set after every epoch, in a workspace of the run's pool: J
    with the sample weights and the penalty, as training sees it; the accuracy (None for the
    regression losses) the weighted share of samples predicted right, all of a sample's labels
    for a multi-label network. Without BatchNorm one forward pass gives both (training and
    evaluation mode are then the same); with it J takes the set's statistics and the accuracy
    the running ones, a second pass. The approach's ``predict`` hook makes the predictions."""

    def __init__(self, net, approach, X, y, T, workspaces, weight=None):
        self.net, self.approach, self.weight = net, approach, weight
        self.point = Point(net, X, T, workspaces(len(X)), weight)
        self.labels = None
        if net.loss_name in CLASSIFICATION_LOSSES:
            self.labels = np.asarray(y).reshape(len(X), -1)

    def __call__(self):
        net, point = self.net, self.point
        # the workspace is shared: its weights are put back before each evaluation
        point.workspace.set_weights(self.weight)
        point.forward(batch_stats=True)
        point.evaluate_loss()
        if self.labels is None:
            return point.loss, None
        if net.batchnorm:
            point.forward_in_evaluation_mode()
        predicted = self.approach.predict(net, point).reshape(len(self.labels), -1)
        correct = (predicted == self.labels).all(axis=1)
        return point.loss, float(np.average(correct, weights=self.weight))


class TrainingRun:
    """One call of ``train``, as its callbacks see it: ``net``, ``approach``, ``history``,
    ``rng`` (the generator every epoch draws from), ``epoch`` (epochs done), ``epochs`` (the
    most it will run), ``data`` (the checked training set), ``workspaces`` (the pool of
    buffers), ``validation`` ((X_val, y_val, T_val, weight_val), checked, or None), ``error`` (the
    NonFiniteStep that ended it, if one did), ``completed`` (whether it ended after a whole
    epoch: its epochs or a stop, not an exception). ``stop()`` ends it after the current
    epoch's callbacks."""

    def __init__(self, net, approach, data, rng, epochs, workspaces, callbacks, validation=None,
                 evaluate_training=True):
        self.net, self.approach, self.data, self.rng = net, approach, data, rng
        self.epochs, self.workspaces, self.callbacks = epochs, workspaces, callbacks
        self.validation, self.evaluate_training = validation, evaluate_training
        self.history = History(approach.name)
        self.epoch, self.stopped, self.error, self.completed = 0, False, None, False

    def stop(self):
        """End the run once the current epoch's callbacks have run."""
        self.stopped = True

    def record(self, result, seconds, evaluations):
        """One epoch into the History: its EpochResult, its seconds in all (the approach's
        check_seconds moved from training to evaluation time) and the evaluations after it."""
        history, started = self.history, time.perf_counter()
        for name, column in (("loss", "accuracy"), ("val_loss", "val_accuracy")):
            evaluation = evaluations.get(name)
            loss, accuracy = (None, None) if evaluation is None else evaluation()
            getattr(history, name).append(loss)
            getattr(history, column).append(accuracy)
        history.steps.append(result.steps)
        history.raised.append(result.raised)
        history.flipped.append(result.flipped)
        history.running_loss.append(result.running_loss)
        for name, value in result.figures.items():
            history.figures.setdefault(name, [None] * (history.epochs - 1)).append(value)
        for values in history.figures.values():  # a figure an epoch did not report
            values.extend([None] * (history.epochs - len(values)))
        history.train_seconds.append(seconds - result.check_seconds)
        history.eval_seconds.append(time.perf_counter() - started + result.check_seconds)

    def execute(self):
        """The epochs, with the callbacks around them; returns the History."""
        data = self.data
        evaluations = {}
        if self.evaluate_training:
            evaluations["loss"] = Evaluation(self.net, self.approach, data.X, data.y, data.T,
                                             self.workspaces, data.weight)
        if self.validation is not None:
            X_val, y_val, T_val, weight_val = self.validation
            evaluations["val_loss"] = Evaluation(self.net, self.approach, X_val, y_val, T_val,
                                                 self.workspaces, weight_val)
        self.approach.prepare(self.net, self.workspaces)
        started = []  # the callbacks whose on_train_start ran: only they see the end
        try:
            for callback in self.callbacks:
                callback.on_train_start(self)
                started.append(callback)
            while self.epoch < self.epochs and not self.stopped:
                start = time.perf_counter()
                try:
                    result = self.approach.run_epoch(self.net, self.data, self.rng)
                except NonFiniteStep as error:
                    self.error = error.where(epoch=self.epoch + 1, history=self.history)
                    raise self.error from None
                self.record(result, time.perf_counter() - start, evaluations)
                self.epoch += 1
                for callback in self.callbacks:
                    callback.on_epoch_end(self)
            self.completed = True
        finally:
            for callback in started:
                callback.on_train_end(self)
        return self.history


def train(net, X, y, approach="parallel", epochs=10, seed=None, validation=None, callbacks=(),
          *, sample_weight=None, rng=None, checkpoint=None, resume=None, progress=False,
          evaluate_training=True):
    """Train ``net`` on (X, y) with ``approach`` and return a History.

    approach : an approach object — ``Parallel(optimizer, batch_size)``, ``LayerWise(optimizer,
        order)``, ``Sequential(order, lr, step, batch_size)`` — its config, or one of their
        names for the object with its defaults ("parallel" is full-batch SGD with lr 0.1). The
        approach keeps its optimizer's state across calls.
    epochs : passes over the data (the most; a callback may stop the run earlier).
    seed : seeds a new generator (default 0) for the run: the reshuffling every epoch (with a
        batch size) and the random orders.
    validation : (X_val, y_val), or (X_val, y_val, sample_weight_val), evaluated after every
        epoch.
    callbacks : fastgrad.Callback objects, which see the run at its start, after each epoch
        and at its end, and may stop it.
    sample_weight : one non-negative weight per sample (not all zero): J becomes the weighted
        mean, the weights travelling with their samples into every batch (a batch whose
        weights sum to zero has no loss and is skipped). The History's loss and accuracy are
        weighted too.
    rng : a numpy Generator to draw from instead of a new one (not with ``seed``): it is
        advanced, so a run of n epochs and a second run of m with the same generator (and the
        same approach object) end where one run of n + m epochs ends.
    checkpoint : a path: a Checkpoint callback writing there after every epoch and at the end.
    progress : True adds a ProgressBar callback (a tqdm bar of the epochs on a terminal).
    evaluate_training : False skips evaluating the whole training set after each epoch (a
        forward pass over it): the History's ``loss`` and ``accuracy`` are then None, while
        ``running_loss``, the loss as the epoch went, is still known (the estimators of
        fastgrad.sklearn train so, as scikit-learn's do).
    resume : a checkpoint's path (``Checkpoint``, ``fastgrad.save``) to continue from: the
        network's parameters and running statistics, the approach's state, the generator and
        the History become the checkpoint's, and the run goes on from its epoch up to
        ``epochs`` in all (the History returned holds every epoch). The checkpoint's network
        and approach must be those of this call (a ValueError before any step otherwise); a
        run of 2n epochs and one of n resumed to 2n end bit-identical.

    A step whose loss or update is not finite raises NonFiniteStep with its ``epoch``,
    ``step`` and the ``history`` so far; the network keeps the weights it had before that step.
    (A sequential sweep keeps the steps before the failing one.)
    """
    check.check_network(net)
    approach = make_approach(approach)
    if seed is not None and rng is not None:
        raise ValueError("give seed or rng, not both")
    if resume is not None and (seed is not None or rng is not None):
        raise ValueError("resume continues the checkpoint's generator: give no seed or rng")
    rng = check.check_rng(rng, 0 if seed is None else seed)
    X = approach.prepare_inputs(net, X, y)
    X, T, weight = net.check_batch(X, y, sample_weight)
    y = np.asarray(y)
    epochs = check.check_positive_int("epochs", epochs)
    approach.check(net, len(X))
    if validation is not None:
        X_val, y_val, weight_val = check.check_validation(validation)
        X_val = approach.prepare_inputs(net, X_val, y_val)
        X_val, T_val, weight_val = net.check_batch(X_val, y_val, weight_val)
        validation = (X_val, y_val, T_val, weight_val)
    if isinstance(callbacks, Callback) or callable(callbacks):
        raise TypeError(f"callbacks must be a list of fastgrad.Callback objects (wrap a "
                        f"function in fastgrad.training.OnEpochEnd); got {callbacks!r}")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must hold fastgrad.Callback objects (wrap a function "
                            f"in fastgrad.training.OnEpochEnd); got {callback!r}")
    if checkpoint is not None:
        callbacks.append(Checkpoint(checkpoint))
    if check.check_bool("progress", progress):
        callbacks.append(ProgressBar())
    saved = _resumed(resume, net, approach, epochs) if resume is not None else None
    workspaces = Workspaces(net)
    run = TrainingRun(net, approach, TrainingData(X, y, T, workspaces, weight),
                      rng if saved is None else saved.rng, epochs, workspaces, callbacks,
                      validation, check.check_bool("evaluate_training", evaluate_training))
    if saved is not None:  # everything checked: the network and the approach take its state
        net.load_state_dict(saved.net.state_dict())
        approach.load_state_dict(saved.approach.state_dict())
        run.history, run.epoch = saved.history, saved.epoch
    return run.execute()


def _resumed(path, net, approach, epochs):
    """The checkpoint at ``path``, checked against this run's network and approach."""
    from ..io import load_checkpoint

    saved = load_checkpoint(path)
    if saved.approach is None or saved.history is None or saved.rng is None:
        raise ValueError(f"{path} is a network file, not a checkpoint (no approach, history or "
                         f"generator to resume)")
    mine = {k: v for k, v in net.config().items() if k not in ("seed", "backend")}
    theirs = {k: v for k, v in saved.net.config().items() if k not in ("seed", "backend")}
    if mine != theirs:
        raise ValueError(f"{path} is a checkpoint of another network ({theirs}); this run's is "
                         f"{mine}")
    if saved.approach.config() != approach.config():
        raise ValueError(f"{path} is a checkpoint of another approach "
                         f"({saved.approach.config()}); this run's is {approach.config()}")
    if saved.epoch >= epochs:
        raise ValueError(f"{path} holds {saved.epoch} epochs already; epochs ({epochs}) counts "
                         f"the run's epochs in all, so it must be larger to train more")
    return saved
