"""The buffers the kernels work in, allocated in one place: one ``Workspace`` per (network,
batch size), holding the cached point, the loss state and the scratch as the bundles of
``fastgrad._kernels.bundles``, and ``Workspaces``, the pool of them that a training run shares
between its steps and its evaluations. The network itself reaches the kernels as
``net.kernel_network`` and its BatchNorm running statistics as ``net.kernel_running``
(fastgrad/model/network.py). See docs/design.md, "The kernel interface"."""
import functools

import numpy as np

from .. import validation as check
from .._kernels.bundles import Cache, LossState, Scratch
from .._kernels.codes import LABEL_OUT_OF_RANGE, NONFINITE_INPUT
from .backends import bundle_type, kernels

NO_LABELS = np.zeros(0, dtype=np.int64)


class Workspace:
    """Every buffer a kernel call needs for ``N`` samples of ``net``, allocated once.

    ``cache(X)`` and ``loss_state(T)`` are the bundles for a batch (the inputs and targets are
    the caller's, checked arrays; the rest are this workspace's buffers); ``scratch`` the work
    space; ``grad`` and ``start_grad`` gradient buffers (the sweep's gradient at its start, for
    counting flipped signs); ``T`` a target buffer that ``load_batch`` writes one-hot
    labels into, and ``inputs`` an input buffer (a whole-epoch kernel gathers each batch into
    both); ``logits`` the last layer's block of ``Z``. ``load(X, y)`` checks a batch and makes
    its bundles, allocating nothing when no conversion is needed."""

    def __init__(self, net, N):
        self.net, self.N = net, N
        self.kernels = kernels(net.backend)
        # the bundles as this backend's kernels take them fastest (backends.bundle_type)
        self._Cache, self._LossState, self._Scratch = (
            bundle_type(net.backend, bundle) for bundle in (Cache, LossState, Scratch))
        dtype, n_out = net.dtype, net.sizes[-1]
        n_columns = sum(net.sizes[1:])
        self.Z = np.zeros(N * n_columns, dtype=dtype)
        self.A = np.zeros(N * n_columns, dtype=dtype)
        self.Zhat = np.zeros(N * n_columns if net.batchnorm else 0, dtype=dtype)
        self.mean = np.zeros(n_columns, dtype=dtype)
        self.istd = np.ones(n_columns, dtype=dtype)
        self.logits = self.Z[N * (n_columns - n_out):].reshape(N, n_out)
        self.rowloss = np.zeros(N, dtype=dtype)
        self.G = np.zeros((N, n_out), dtype=dtype)
        self.Q = np.zeros((n_out, N), dtype=dtype)
        # the sample weights and their sum (ones and N unless a batch brings weights)
        self.weight = np.ones(N, dtype=dtype)
        self.weight_sum = np.full(1, N, dtype=dtype)

    def __reduce__(self):
        raise TypeError("a Workspace is a network's scratch buffers and does not pickle")

    def cache(self, X):
        """The cached point's bundle on inputs X (N rows, checked, in the network's dtype)."""
        return self._Cache((X, self.Z, self.A, self.Zhat, self.mean, self.istd))

    def loss_state(self, T, weight=None):
        """The loss state's bundle for targets T (N rows, checked, in the network's dtype) and
        sample weights (checked; None: all ones), copied into this workspace's buffer."""
        self.set_weights(weight)
        return self._LossState((T, self.rowloss, self.G, self.Q, self.weight, self.weight_sum))

    def set_weights(self, weight):
        """The sample weights of the next batch (checked, or None: all ones) and their sum."""
        if weight is None:
            self.weight.fill(1)
            self.weight_sum[0] = self.N
        else:
            self.weight[:] = weight
            self.weight_sum[0] = weight.sum()

    # allocated on first use: a point that only evaluates (predict, loss) needs none of these
    @functools.cached_property
    def inputs(self):
        """An (N, n_in) input buffer, which a whole-epoch kernel gathers each batch into."""
        return np.zeros((self.N, self.net.sizes[0]), dtype=self.net.dtype)

    @functools.cached_property
    def T(self):
        return np.zeros((self.N, self.net.sizes[-1]), dtype=self.net.dtype)

    @functools.cached_property
    def grad(self):
        return np.zeros(self.net.n_params, dtype=self.net.dtype)

    @functools.cached_property
    def start_grad(self):
        return np.zeros(self.net.n_params, dtype=self.net.dtype)

    @functools.cached_property
    def scratch(self):
        N, dtype, widest = self.N, self.net.dtype, max(self.net.sizes[1:])
        return self._Scratch((np.zeros(N, dtype=dtype), np.zeros(N, dtype=np.int64),
                              np.zeros(N * widest, dtype=dtype), np.zeros(N * widest, dtype=dtype)))

    # ------------------------------------------------------------------ a batch's checks
    @functools.cached_property
    def is_zero(self):
        return np.zeros((self.N, self.net.sizes[-1]), dtype=bool)

    @functools.cached_property
    def is_one(self):
        return np.zeros((self.N, self.net.sizes[-1]), dtype=bool)

    @functools.cached_property
    def labels_state(self):
        """Cross-entropy's loss state: its targets are the buffer T, so the bundle never
        changes."""
        return self.loss_state(self.T)

    def load(self, X, y, weight=None):
        """The bundles (cache, loss state) of the batch (X, y): X of N rows, already through
        check_X(..., finite=False) (its NaN/inf check is the kernel's pass over it here), y the
        loss's targets, checked here (for cross-entropy, labels written one-hot into T), and
        the sample weights (already through check_sample_weight, or None)."""
        net, N, n_out = self.net, self.N, self.net.sizes[-1]
        y = np.asarray(y)
        if net.loss_name == "cross_entropy":
            if y.ndim != 1 or len(y) != N:
                raise ValueError(f"y must be a 1-D array of {N} class labels; got shape {y.shape}")
            if y.dtype.kind not in "iu":  # np.issubdtype(y.dtype, np.integer), but cheaper
                raise TypeError(f"y must hold integer class labels for cross_entropy; got dtype "
                                f"{y.dtype}")
            labels, T, state = y.astype(np.int64, copy=False), self.T, self.labels_state
            self.set_weights(weight)
        else:
            T = check.check_targets(y, N, n_out, net.loss_name, net.dtype, check_values=False)
            labels = NO_LABELS
            if net.loss_name == "binary_cross_entropy":
                # check_target_values without the temporary masks
                if not (np.isfinite(T.min()) and np.isfinite(T.max())):
                    raise ValueError("y holds NaN or inf")
                np.equal(T, 0, out=self.is_zero)
                np.equal(T, 1, out=self.is_one)
                if not np.logical_or(self.is_zero, self.is_one, out=self.is_zero).all():
                    raise ValueError("y must hold 0/1 targets for binary_cross_entropy")
            else:
                check.check_target_values(T, net.loss_name)
            state = self.loss_state(T, weight)
        status = self.kernels.parallel.load_batch(X, labels, T)
        if status == NONFINITE_INPUT:
            raise ValueError("X holds NaN or inf")
        if status == LABEL_OUT_OF_RANGE:
            raise ValueError(f"y's labels must lie in [0, {n_out - 1}]; got range "
                             f"[{y.min()}, {y.max()}]")
        return self.cache(X), state


class Workspaces:
    """A pool of workspaces of one network, one per batch size, each allocated on first use:
    what a training run, its approach's optimizer and its evaluations share."""

    def __init__(self, net):
        self.net = check.check_network(net)
        self._by_size = {}

    def __call__(self, N):
        """The workspace for batches of N samples."""
        if N not in self._by_size:
            self._by_size[N] = Workspace(self.net, N)
        return self._by_size[N]

    @property
    def sizes(self):
        """The batch sizes allocated so far."""
        return sorted(self._by_size)
