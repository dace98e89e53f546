"""The cached state of a network at its current parameters on one batch (``MLP.point(X, y)``),
from which single coordinates are re-evaluated incrementally, and the three gradient methods
on it."""
import numpy as np

from .. import validation as check
from .._kernels.codes import BN_EPS
from .workspace import Workspace

GRADIENT_METHODS = ("backprop", "forward", "finite_difference")
# the losses whose predictions are labels (accuracy applies); the others predict numbers
CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")
# backprop's ``first`` layer for the whole gradient
ALL_LAYERS = 0


def default_eps(dtype):
    """Finite-difference step: cbrt(machine epsilon), about 6e-6 in float64 and 5e-3 in float32,
    which balances a central difference's O(eps²) truncation against O(ε/eps) round-off."""
    return float(np.finfo(dtype).eps ** (1 / 3))


def predictions(loss_name, logits):
    """What the network predicts from its logits: class labels for cross-entropy, 0/1 per output
    for binary cross-entropy (a vector with one output), the logits themselves for mse and
    squared_error, the means exp(logits) for poisson."""
    if loss_name in ("mse", "squared_error"):
        return logits
    if loss_name == "poisson":
        return np.exp(logits)
    if loss_name == "binary_cross_entropy":
        labels = (logits > 0).astype(np.int64)
        return labels[:, 0] if logits.shape[1] == 1 else labels
    return logits.argmax(axis=1)


def cached_loss(net, workspace):
    """J from a workspace's cached per-sample losses (after a sweep, which keeps them current):
    their weighted mean plus the L2 penalty."""
    n = workspace.weight_sum[0]
    J = (workspace.weight * workspace.rowloss).sum() / n
    return float(J + net.weight_penalty() / n if net.alpha != 0 else J)


class Point:
    """The cached state of the network at its current parameters on one batch, from which single
    coordinates are re-evaluated incrementally (``MLP.point(X, y)`` makes one).

    ``loss`` is J; ``logits`` the outputs; ``gradient(method)`` the full gradient;
    ``loss_change(j, delta)`` and ``loss_at(j, delta)`` the loss after moving one parameter;
    ``coordinate_derivative(j)`` one partial derivative by forward mode. The buffers (``Z``,
    ``A``, ``Zhat``, ``mean``, ``istd``, per-sample ``rowloss``, ``G`` = dJ/dlogits, ``Q`` the
    loss state, the sample weights ``weight`` and their sum ``weight_sum``) are in the kernels'
    flat layout (fastgrad/_kernels/codes.py). A point describes
    the parameters it was made at: after they change, make a new one.
    """

    def __init__(self, net, X, T=None, workspace=None, weight=None):
        self.net, self.X, self.T = net, X, T
        # a workspace of len(X) samples may be lent (a training run's evaluation): its buffers
        # are then this point's until the lender uses them again
        self.workspace = Workspace(net, len(X)) if workspace is None else workspace
        self.kernels = self.workspace.kernels
        self.cache = self.workspace.cache(X)
        self.loss_state = self.workspace.loss_state(T, weight)
        self.loss = None

    def __getattr__(self, name):
        # the cached buffers: Z, A, Zhat, mean, istd, rowloss, G, Q, logits
        if name in _BUFFERS:
            return getattr(self.workspace, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def forward(self, batch_stats):
        self.kernels.mlp.forward(self.net.kernel_network, self.cache, batch_stats)

    def forward_in_evaluation_mode(self):
        """The forward pass with BatchNorm on the running statistics (evaluation mode)."""
        self.mean[:] = self.net._running_mean
        self.istd[:] = 1 / np.sqrt(self.net._running_var + BN_EPS)
        self.forward(batch_stats=False)

    def evaluate_loss(self):
        self.loss = float(self.kernels.mlp.loss(self.net.kernel_network, self.cache,
                                                self.loss_state))

    def gradient(self, method="backprop", eps=None):
        """dJ/dparams at this point; see MLP.gradient."""
        check.check_choice("method", method, GRADIENT_METHODS)
        if eps is not None:
            check.check_positive("eps", eps)
        net, k, scratch = self.net, self.kernels, self.workspace.scratch
        grad = np.zeros(net.n_params, dtype=net.dtype)
        if method == "backprop":
            k.mlp.backprop(net.kernel_network, self.cache, self.loss_state, grad, scratch,
                           ALL_LAYERS)
        elif method == "forward":
            k.incremental.forward_mode_gradient(net.kernel_network, self.cache,
                                                self.loss_state, grad, scratch)
        else:
            eps = default_eps(net.dtype) if eps is None else eps
            k.incremental.finite_difference_gradient(net.kernel_network, self.cache,
                                                     self.loss_state, net.dtype.type(eps), grad,
                                                     scratch)
        return grad

    def loss_change(self, j, delta):
        """J(θ + delta·e_j) − J(θ), re-evaluating only what coordinate j touches; θ is unchanged."""
        j = check.check_coordinate(j, self.net.n_params)
        delta = check.check_finite_number("delta", delta)
        return float(self.kernels.incremental.loss_change(
            j, self.net.dtype.type(delta), self.net.kernel_network, self.cache, self.loss_state,
            self.workspace.scratch))

    def loss_at(self, j, delta):
        """J(θ + delta·e_j), re-evaluated incrementally from this cached point."""
        return self.loss + self.loss_change(j, delta)

    def coordinate_derivative(self, j):
        """dJ/dθ_j at this point by forward mode (one coordinate)."""
        j = check.check_coordinate(j, self.net.n_params)
        return float(self.kernels.incremental.coordinate_derivative(
            j, self.net.kernel_network, self.cache, self.loss_state, self.workspace.scratch))


_BUFFERS = frozenset(("Z", "A", "Zhat", "mean", "istd", "rowloss", "G", "Q", "logits", "weight",
                      "weight_sum"))
