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

import numpy as np

from ..config import Configurable
from ..model import predictions


@dataclasses.dataclass
class EpochResult:
    """What one epoch did: optimizer or coordinate ``steps``, how many ``raised`` the loss of the
    batch they were taken on, and (sequential sweeps; None otherwise) how many ``flipped``: had a
    derivative of the opposite sign from the gradient at the start of their sweep;
    ``check_seconds``: the part of the epoch spent only on counting raised steps (re-evaluating
    a batch's loss after its step), which the run does not count as training time;
    ``figures``: an approach's own per-epoch figures, {name: number}, which the History keeps
    under ``figures[name]``."""

    steps: int
    raised: int
    flipped: int | None = None
    check_seconds: float = 0.0
    figures: dict = dataclasses.field(default_factory=dict)


class TrainingData:
    """The training set of one run, checked: inputs ``X``, labels or targets ``y`` as given, the
    loss's targets ``T`` (one-hot labels for cross-entropy), and ``workspace(N)``, the run's
    pool of the kernels' workspaces (fastgrad.model.Workspaces), shared with its evaluations."""

    def __init__(self, X, y, T, workspaces):
        self.X, self.y, self.T, self.workspace = X, y, T, workspaces

    def order(self, batch_size, rng):
        """The epoch's order of the samples: the whole set in order (batch_size None or the set's
        length), else a fresh permutation from ``rng``."""
        N = len(self.X)
        return rng.permutation(N) if batch_size is not None and batch_size < N else np.arange(N)

    def batches(self, batch_size, rng):
        """The epoch's batches (X, y, T): the samples in ``order(batch_size, rng)`` cut into
        batches (the last may be smaller)."""
        N = len(self.X)
        batch_size = N if batch_size is None else batch_size
        shuffle = self.order(batch_size, rng)
        X, y, T = self.X[shuffle], self.y[shuffle], self.T[shuffle]
        for first in range(0, N, batch_size):
            last = first + batch_size
            yield X[first:last], y[first:last], T[first:last]


class Approach(Configurable):
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
