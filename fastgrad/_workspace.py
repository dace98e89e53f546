"""The buffers the kernels work in, allocated in one place: one ``Workspace`` per (network,
batch size), holding the cached point, the loss state and the scratch as the bundles of
``fastgrad._kernels.bundles``. The network itself reaches the kernels as ``net.kernel_network``
and its BatchNorm running statistics as ``net.kernel_running`` (fastgrad/network.py). See
docs/design.md, "The kernel interface"."""
import functools

import numpy as np

from ._backends import bundle_type, kernels
from ._kernels.bundles import Cache, LossState, Scratch

NO_LABELS = np.zeros(0, dtype=np.int64)


class Workspace:
    """Every buffer a kernel call needs for ``N`` samples of ``net``, allocated once.

    ``cache(X)`` and ``loss_state(T)`` are the bundles for a batch (the inputs and targets are
    the caller's, checked arrays; the rest are this workspace's buffers); ``scratch`` the work
    space; ``grad`` and ``start_grad`` gradient buffers (the sweep's gradient at its start, for
    counting flipped signs); ``T`` a target buffer that ``load_batch`` writes one-hot
    labels into, and ``inputs`` an input buffer (a whole-epoch kernel gathers each batch into
    both); ``logits`` the last layer's block of ``Z``."""

    def __init__(self, net, N):
        self.net, self.N = net, N
        self.kernels = kernels(net.backend)
        # the bundles as this backend's kernels take them fastest (_backends.bundle_type)
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

    def cache(self, X):
        """The cached point's bundle on inputs X (N rows, checked, in the network's dtype)."""
        return self._Cache((X, self.Z, self.A, self.Zhat, self.mean, self.istd))

    def loss_state(self, T):
        """The loss state's bundle for targets T (N rows, checked, in the network's dtype)."""
        return self._LossState((T, self.rowloss, self.G, self.Q))

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
