"""What every training approach is: a small dataclass of options, validated when it is made,
that runs one epoch on a network (``fastgrad.train`` runs the epochs). It holds no network and
no buffers, so it pickles (to another process, into a checkpoint) and one object can describe
the runs of a whole experiment grid.

To add an approach: subclass ``Approach`` as a dataclass, validate the options in
``__post_init__`` (and against the network and data in ``check``), and write ``run_epoch``;
docs/design.md, "Adding an approach", walks through it.
"""
import dataclasses
import numbers

import numpy as np

from ._workspace import Workspace


@dataclasses.dataclass
class EpochResult:
    """What one epoch did: optimizer or coordinate ``steps``, how many ``raised`` the loss of the
    batch they were taken on, and (sequential sweeps; None otherwise) the ``flipped`` fraction of
    steps whose derivative had the opposite sign from the gradient at the start of their sweep;
    ``check_seconds``: the part of the epoch spent only on counting raised steps (re-evaluating
    a batch's loss after its step), which ``train`` does not count as training time."""

    steps: int
    raised: int
    flipped: float | None = None
    check_seconds: float = 0.0


class TrainingData:
    """The training set of one ``train`` call, checked: inputs ``X``, labels or targets ``y`` as
    given, the loss's targets ``T`` (one-hot labels for cross-entropy), and the kernels'
    workspaces, one per batch size, reused across epochs."""

    def __init__(self, net, X, y, T):
        self.net, self.X, self.y, self.T = net, X, y, T
        self._workspaces = {}

    def workspace(self, N):
        if N not in self._workspaces:
            self._workspaces[N] = Workspace(self.net, N)
        return self._workspaces[N]

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


class Approach:
    """The interface of a training approach (a dataclass subclass): ``name``, ``check`` and
    ``run_epoch``. Its options are its dataclass fields; ``get_params`` and ``set_params`` read
    and change them as scikit-learn's estimators do (so that an estimator's ``approach__lr``
    can reach them)."""

    name = None

    def check(self, net, n_samples):
        """Validate the options (again: a field may have been assigned since the object was
        made) and check them against the network and the number of training samples, before
        any weight moves."""
        self.__post_init__()
        batch_size = getattr(self, "batch_size", None)
        if batch_size is not None and batch_size > n_samples:
            raise ValueError(f"batch_size must be at most the number of samples ({n_samples}); "
                             f"got {batch_size}")

    def run_epoch(self, net, data, rng):
        """One epoch on ``data`` (a TrainingData); returns an EpochResult. Raises NonFiniteStep
        (its message naming the step) when a step's loss or update is not finite."""
        raise NotImplementedError

    def get_params(self, deep=True):
        """The options, {name: value} (``deep`` is accepted for scikit-learn's sake; an
        approach's options are not estimators themselves)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def set_params(self, **params):
        """Change options, validated together; on an invalid value nothing changes. Returns
        self. (Plain attribute assignment is not validated until the next ``train``.)"""
        names = [field.name for field in dataclasses.fields(self)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no option {unknown}; its options are "
                             f"{names} (to change an optimizer's learning rate, set "
                             f"approach.optimizer.lr)")
        before = {name: getattr(self, name) for name in params}
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self.__post_init__()
        except (TypeError, ValueError):
            for name, value in before.items():
                setattr(self, name, value)
            raise
        return self


def check_positive_int(name, value, allow_none=False):
    """A positive integer (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer{' or None' if allow_none else ''}; "
                        f"got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)
