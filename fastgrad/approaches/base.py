"""What every training approach is: a small dataclass of options, validated when it is made,
that runs one epoch on a network (a training run, fastgrad.train, runs the epochs). Its options
follow the config protocol (fastgrad/config.py); the state it keeps between epochs (an
optimizer's moments) is bound to one network in ``prepare`` and travels in ``state_dict``, so
the object pickles (to another process, into a checkpoint) without a network or buffers.

To add an approach: subclass ``Approach`` as a dataclass, validate the options in
``__post_init__`` (and against the network and data in ``check``), write ``run_epoch`` and,
where the approach needs them, the hooks ``prepare``, ``prepare_inputs`` and ``predict``;
docs/design.md, "Adding an approach", walks through it.
"""
import dataclasses
import functools
import time

import numpy as np

from .. import validation as check
from ..config import Configurable
from ..errors import NonFiniteStep
from ..model import predictions


@dataclasses.dataclass
class EpochResult:
    """What one epoch did: optimizer or coordinate ``steps``, how many ``raised`` the loss of the
    batch they were taken on, and (sequential sweeps; None otherwise) how many ``flipped``: had a
    derivative of the opposite sign from the gradient at the start of their sweep;
    ``check_seconds``: the part of the epoch spent only on counting raised steps (re-evaluating
    a batch's loss after its step), which the run does not count as training time;
    ``figures``: an approach's own per-epoch figures, {name: number}, which the History keeps
    under ``figures[name]``; ``running_loss``: the loss as the epoch went, the mean over its
    samples of their batch's J before the batch's first step (a sweep's batch: before the
    sweep; scikit-learn's ``loss_curve_``), which costs nothing extra to know (None where an
    approach does not report it)."""

    steps: int
    raised: int
    flipped: int | None = None
    check_seconds: float = 0.0
    figures: dict = dataclasses.field(default_factory=dict)
    running_loss: float | None = None


class TrainingData:
    """The training set of one run, checked: inputs ``X``, labels or targets ``y`` as given, the
    loss's targets ``T`` (one-hot labels for cross-entropy), the sample weights ``weight``
    (None: every sample counts once) and ``workspace(N)``, the run's pool of the kernels'
    workspaces (fastgrad.model.Workspaces), shared with its evaluations."""

    def __init__(self, X, y, T, workspaces, weight=None):
        self.X, self.y, self.T, self.workspace, self.weight = X, y, T, workspaces, weight

    @functools.cached_property
    def kernel_weight(self):
        """The weights as a whole-epoch kernel gathers them: ones when none were given."""
        return np.ones(len(self.X), self.T.dtype) if self.weight is None else self.weight

    def order(self, batch_size, rng, shuffle=True):
        """The epoch's order of the samples: the whole set in order (batch_size None or the set's
        length, or ``shuffle`` False), else a fresh permutation from ``rng``."""
        N = len(self.X)
        if shuffle and batch_size is not None and batch_size < N:
            return rng.permutation(N)
        return np.arange(N)

    def batches(self, batch_size, rng, shuffle=True):
        """The epoch's batches (X, y, T, weight): the samples in ``order(batch_size, rng,
        shuffle)`` cut into batches (the last may be smaller); weight None when the run has no
        weights. A batch whose weights sum to zero has no loss, and is left out."""
        N = len(self.X)
        batch_size = N if batch_size is None else batch_size
        order = self.order(batch_size, rng, shuffle)
        X, y, T = self.X[order], self.y[order], self.T[order]
        weight = None if self.weight is None else self.weight[order]
        for first in range(0, N, batch_size):
            last = first + batch_size
            if weight is None:
                yield X[first:last], y[first:last], T[first:last], None
            elif weight[first:last].any():
                yield X[first:last], y[first:last], T[first:last], weight[first:last]


class Approach(Configurable, abstract=True):
    """The interface of a training approach (a dataclass subclass): ``name``, ``check``,
    ``run_epoch`` and the hooks. Its options are its dataclass fields (config protocol:
    ``config``, ``get_params``, ``set_params``, ``state_dict``)."""

    name = None

    def _option_names(self):
        return tuple(field.name for field in dataclasses.fields(self))

    def _set_options(self, values):
        before = {name: getattr(self, name) for name in values}
        for name, value in values.items():
            setattr(self, name, value)
        try:
            self.__post_init__()
        except (TypeError, ValueError):
            for name, value in before.items():
                setattr(self, name, value)
            raise

    def check(self, net, n_samples):
        """Validate the options (again: a field may have been assigned since the object was
        made) and check them against the network and the number of training samples, before
        any weight moves."""
        self.__post_init__()
        batch_size = getattr(self, "batch_size", None)
        if batch_size is not None and batch_size > n_samples:
            raise ValueError(f"batch_size must be at most the number of samples ({n_samples}); "
                             f"got {batch_size}")

    # ------------------------------------------------------------------ the hooks of a run
    def prepare_inputs(self, net, X, y):
        """The inputs the network trains on, from the data as given (before any check): an
        approach may widen them (Forward-Forward attaches the label). Default: X."""
        return X

    def prepare(self, net, workspaces):
        """Called by the run before its first epoch: bind the state the approach keeps (an
        optimizer's) to ``net``, its steps working in ``workspaces`` (the run's pool)."""

    def run_epoch(self, net, data, rng):
        """One epoch on ``data`` (a TrainingData), drawing any randomness from ``rng``; returns
        an EpochResult. Raises NonFiniteStep (with its ``step``, and ``sweep`` and
        ``coordinate`` where they apply) when a step's loss or update is not finite."""
        raise NotImplementedError

    def predict(self, net, point):
        """What the network predicts on an evaluated point (``point.logits`` in evaluation
        mode), for the run's accuracy: an approach may predict its own way. Default: the
        network's predictions."""
        return predictions(net.loss_name, point.logits)


class WithOptimizer(Approach, abstract=True):
    """An approach that steps with an optimizer: its fields ``optimizer`` (the rule),
    ``batch_size``, ``count_raised`` and ``shuffle``, checked here. The rule's state for the
    network it trains, bound in ``prepare`` and kept across runs (``bound``), travels in
    ``state_dict``;
    pickled, the approach keeps that state (not the network) and binds it to the next network
    it trains, which must have the same shape. A new optimizer (assigned, or through
    ``set_params``) starts from fresh state."""

    def __post_init__(self):
        check.check_optimizer(self.optimizer)
        self.batch_size = check.check_positive_int("batch_size", self.batch_size,
                                                   allow_none=True)
        self.count_raised = check.check_bool("count_raised", self.count_raised)
        if hasattr(self, "shuffle"):  # a subclass may leave the option out
            self.shuffle = check.check_bool("shuffle", self.shuffle)

    @property
    def bound(self):
        """The optimizer's state for the network this approach trains (None before a run, or
        once the optimizer has been replaced)."""
        bound = self.__dict__.get("_bound")
        return bound if bound is not None and bound.rule is self.optimizer else None

    def prepare(self, net, workspaces):
        bound = self.bound
        if bound is not None:
            if bound.net is not net:
                raise ValueError("this approach holds the optimizer state of another network; "
                                 "use a fresh approach for each network (copy.deepcopy or "
                                 "sklearn.base.clone of this one)")
            bound.workspaces = workspaces
            return
        # first run, or a new optimizer since the last: fresh state, or the state loaded
        # before it was bound (a checkpoint, an unpickled approach)
        bound = self.optimizer.bind(net, workspaces)
        pending = self.__dict__.get("_pending_state")
        if pending is not None:
            bound.load_state_dict(pending)  # kept pending if it does not fit this network
        self.__dict__.pop("_pending_state", None)
        self.__dict__["_bound"] = bound

    def state_dict(self):
        bound = self.bound
        if bound is not None:
            return bound.state_dict()
        pending = self.__dict__.get("_pending_state")
        return {} if pending is None else {name: a.copy() for name, a in pending.items()}

    def load_state_dict(self, state):
        if not state:
            return
        if self.bound is not None:
            self.bound.load_state_dict(state)
        else:
            self.__dict__["_pending_state"] = {name: a.copy() for name, a in state.items()}

    def __getstate__(self):
        # the options and the optimizer's state, not the network or its buffers
        options = {name: value for name, value in self.__dict__.items()
                   if name not in ("_bound", "_pending_state")}
        return {"options": options, "state": self.state_dict()}

    def __setstate__(self, saved):
        self.__dict__.update(saved["options"])
        if saved["state"]:
            self.__dict__["_pending_state"] = saved["state"]


def run_steps(bound, data, rng, batch_size, count_raised, layers_of_batch, shuffle=True):
    """The epoch as a loop of steps of ``bound`` (a BoundOptimizer), the layer-wise approach's
    (and, with ``layers_of_batch`` giving None, the reference the parallel approach's
    whole-epoch kernel is tested against): for each batch, one step per entry of
    ``layers_of_batch(rng)`` (None: all layers at once). With ``count_raised`` each batch's loss
    is re-evaluated after its step, and that time is reported apart."""
    steps = raised = stepped_samples = 0
    check_seconds = running_loss = 0.0
    for X, y, _, weight in data.batches(batch_size, rng, shuffle):
        for position, layer in enumerate(layers_of_batch(rng)):
            try:
                before = (bound.step(X, y, weight) if layer is None
                          else bound.layer_step(X, y, layer, weight))
            except NonFiniteStep as error:
                raise error.where(step=steps + 1) from None
            steps += 1
            if position == 0:  # the batch's loss before its first step
                running_loss += before * len(X)
                stepped_samples += len(X)
            if count_raised:
                start = time.perf_counter()
                raised += bound.batch_loss(X, y, weight) > before
                check_seconds += time.perf_counter() - start
    return EpochResult(steps, raised, check_seconds=check_seconds,
                       running_loss=running_loss / max(stepped_samples, 1))
