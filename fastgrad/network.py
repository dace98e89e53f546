"""The multilayer perceptron: parameters in one flat vector, layers as views into it, and the
three ways to look at its gradient (backprop, forward mode, finite differences).

The parameter vector (a fixed convention): for each Dense layer l in order, ``W_l`` of shape
(n_in, n_out) in C order (``z = a_prev @ W_l + b_l``), then ``b_l``, then, for a hidden layer of
a network with BatchNorm, ``gamma_l`` and ``beta_l``.
"""
import numpy as np

from . import _validation as check
from ._backends import BACKENDS, bundle_type, kernels
from ._kernels.bundles import Network, RunningStats
from ._kernels.codes import (ACTIVATIONS, BN_EPS, BN_MOMENTUM, COL_OFF, KIND_NAMES, LOSSES,
                             N_OUT, OFF_B, OFF_BETA, OFF_GAMMA, OFF_W, N_IN, WEIGHT)
from ._workspace import Workspace

GRADIENT_METHODS = ("backprop", "forward", "finite_difference")
# backprop's ``first`` layer for the whole gradient
ALL_LAYERS = 0


def default_eps(dtype):
    """Finite-difference step: cbrt(machine epsilon), about 6e-6 in float64 and 5e-3 in float32,
    which balances a central difference's O(eps²) truncation against O(ε/eps) round-off."""
    return float(np.finfo(dtype).eps ** (1 / 3))


def layer_table(sizes, batchnorm):
    """The int64 layer table the kernels read (its columns are named in fastgrad/_kernels/codes.py)
    and n_params."""
    rows, offset, col_off = [], 0, 0
    n_layers = len(sizes) - 1
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        off_W, off_b = offset, offset + n_in * n_out
        offset = off_b + n_out
        off_gamma = off_beta = -1
        if batchnorm and l < n_layers - 1:
            off_gamma, off_beta = offset, offset + n_out
            offset += 2 * n_out
        rows.append((n_in, n_out, off_W, off_b, off_gamma, off_beta, col_off))
        col_off += n_out
    return np.array(rows, dtype=np.int64), offset


class Dense:
    """One layer's parameters as views into the network's flat vector: ``W`` (n_in, n_out),
    ``b`` (n_out,) and, for a hidden layer with BatchNorm, ``gamma``, ``beta`` and the running
    statistics ``running_mean``, ``running_var`` used in evaluation."""

    def __init__(self, params, row, running_mean=None, running_var=None):
        n_in, n_out, off_W, off_b = (int(row[c]) for c in (N_IN, N_OUT, OFF_W, OFF_B))
        off_gamma, off_beta = int(row[OFF_GAMMA]), int(row[OFF_BETA])
        self.n_in, self.n_out = n_in, n_out
        self.W = params[off_W:off_b].reshape(n_in, n_out)
        self.b = params[off_b:off_b + n_out]
        self.gamma = params[off_gamma:off_gamma + n_out] if off_gamma >= 0 else None
        self.beta = params[off_beta:off_beta + n_out] if off_beta >= 0 else None
        self.running_mean, self.running_var = running_mean, running_var

    def __repr__(self):
        bn = ", batchnorm" if self.gamma is not None else ""
        return f"Dense({self.n_in} -> {self.n_out}{bn})"


class MLP:
    """A multilayer perceptron trained on the CPU.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, inputs first, outputs last: ``(64, 32, 10)`` is one hidden layer of 32.
    activation : {"tanh", "relu", "sigmoid", "identity"}
        The hidden layers' activation.
    batchnorm : bool
        BatchNorm after each hidden Dense layer (Dense → BatchNorm → activation). Training-mode
        batch statistics define the loss J and its gradients; running statistics (momentum 0.1,
        unbiased variance, like ``torch.nn.BatchNorm1d``) serve ``predict`` and
        ``forward(X, training=False)``.
    loss : {"cross_entropy", "mse", "binary_cross_entropy"}
        ``cross_entropy``: softmax + NLL, integer labels; ``mse``: mean over all elements, float
        targets of shape (N, n_out); ``binary_cross_entropy``: with logits, one output, 0/1 targets.
    dtype : {"float64", "float32"}
        Kept throughout: parameters, caches, gradients.
    seed : int
        Seeds the initialisation: weights Glorot-uniform, U(±sqrt(6 / (n_in + n_out))), for tanh,
        sigmoid and identity and He-normal, N(0, 2 / n_in), for relu (the last layer is always
        Glorot); biases and beta 0, gamma 1.
    backend : {"numba", "cython", "numpy"}
        Which kernels run: Cython (the default: compiled when the package is installed, so
        nothing compiles at run time), Numba (compiled on first use, in tens of seconds, then
        loaded from Numba's cache on disk) or the numpy reference. All give the same numbers to
        round-off.
    """

    def __init__(self, sizes, activation="tanh", batchnorm=False, loss="cross_entropy",
                 dtype="float64", seed=0, backend="cython"):
        self.sizes = check.check_sizes(sizes)
        self.activation = check.check_choice("activation", activation, ACTIVATIONS)
        self.loss_name = check.check_choice("loss", loss, LOSSES)
        self.backend = check.check_choice("backend", backend, BACKENDS)
        if not isinstance(batchnorm, (bool, np.bool_)):
            raise TypeError(f"batchnorm must be True or False; got {batchnorm!r}")
        self.batchnorm = bool(batchnorm)
        self.dtype = check.check_dtype(dtype)
        if self.loss_name == "binary_cross_entropy" and self.sizes[-1] != 1:
            raise ValueError(f"binary_cross_entropy needs one output; sizes ends with {self.sizes[-1]}")
        if self.loss_name == "cross_entropy" and self.sizes[-1] < 2:
            raise ValueError(f"cross_entropy needs at least two outputs; sizes ends with {self.sizes[-1]}")
        self.seed = seed
        self.table, self.n_params = layer_table(self.sizes, self.batchnorm)
        self._params = np.zeros(self.n_params, dtype=self.dtype)
        n_columns = sum(self.sizes[1:])
        # running statistics, per column, in the kernels' per-column layout
        self._running_mean = np.zeros(n_columns, dtype=self.dtype)
        self._running_var = np.ones(n_columns, dtype=self.dtype)
        self.layers = []
        for row in self.table:
            columns = slice(row[COL_OFF], row[COL_OFF] + row[N_OUT])
            has_bn = row[OFF_GAMMA] >= 0
            self.layers.append(Dense(self._params, row,
                                     self._running_mean[columns] if has_bn else None,
                                     self._running_var[columns] if has_bn else None))
        # what the kernels receive (fastgrad/_kernels/bundles.py, built as _backends.bundle_type
        # says): the arrays above never move, so these bundles stay valid for the network's life
        self.kernel_network = bundle_type(self.backend, Network)(
            (self._params, self.table, ACTIVATIONS[self.activation], LOSSES[self.loss_name]))
        self.kernel_running = bundle_type(self.backend, RunningStats)(
            (self._running_mean, self._running_var, BN_MOMENTUM))
        self._initialise(seed)

    # ------------------------------------------------------------------ parameters
    def _initialise(self, seed):
        rng = np.random.default_rng(seed)
        for l, layer in enumerate(self.layers):
            if self.activation == "relu" and l < len(self.layers) - 1:
                layer.W[:] = rng.normal(0.0, np.sqrt(2.0 / layer.n_in), layer.W.shape)
            else:
                limit = np.sqrt(6.0 / (layer.n_in + layer.n_out))
                layer.W[:] = rng.uniform(-limit, limit, layer.W.shape)
            layer.b[:] = 0
            if layer.gamma is not None:
                layer.gamma[:] = 1
                layer.beta[:] = 0

    @property
    def params(self):
        """The flat parameter vector (length ``n_params``); layer attributes are views into it.
        Assigning copies into it, so the views stay valid."""
        return self._params

    @params.setter
    def params(self, values):
        values = np.asarray(values)
        if values.shape != (self.n_params,):
            raise ValueError(f"params must have shape ({self.n_params},); got {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("params holds NaN or inf")
        self._params[:] = values

    def coordinate(self, j):
        """Coordinate j as (layer, name, index): ``(0, "W", (k, i))`` is W_0[k, i], ``(1, "b", i)``
        is b_1[i]; names are "W", "b", "gamma", "beta"."""
        j = check.check_coordinate(j, self.n_params)
        l, kind, k, i = kernels("numpy").incremental.decode(j, self.table)
        return (int(l), KIND_NAMES[kind], (int(k), int(i)) if kind == WEIGHT else int(i))

    def index(self, layer, name, index):
        """The inverse of ``coordinate``: the position of (layer, name, index) in ``params``."""
        if not (isinstance(layer, (int, np.integer)) and 0 <= layer < len(self.layers)):
            raise ValueError(f"layer must be an integer in [0, {len(self.layers) - 1}]; got {layer!r}")
        check.check_choice("name", name, KIND_NAMES)
        row = self.table[layer]
        n_in, n_out = int(row[N_IN]), int(row[N_OUT])
        if name == "W":
            k, i = index
            if not (0 <= k < n_in and 0 <= i < n_out):
                raise ValueError(f"index must lie in [0, {n_in}) x [0, {n_out}) for W; got {index!r}")
            return int(row[OFF_W]) + k * n_out + i
        offset = int(row[{"b": OFF_B, "gamma": OFF_GAMMA, "beta": OFF_BETA}[name]])
        if offset < 0:
            raise ValueError(f"layer {layer} has no {name} (BatchNorm only on hidden layers)")
        if not 0 <= index < n_out:
            raise ValueError(f"index must lie in [0, {n_out}) for {name}; got {index!r}")
        return offset + int(index)

    def copy(self, backend=None):
        """An independent network with the same parameters and running statistics, on the
        same backend or the one named."""
        twin = MLP(self.sizes, self.activation, self.batchnorm, self.loss_name, self.dtype.name,
                   self.seed, self.backend if backend is None else backend)
        twin._params[:] = self._params
        twin._running_mean[:] = self._running_mean
        twin._running_var[:] = self._running_var
        return twin

    def __getstate__(self):
        # the architecture and the arrays; the layer views and kernel bundles are rebuilt
        # (pickled as they are, the views would become copies, detached from params)
        return {"sizes": self.sizes, "activation": self.activation, "batchnorm": self.batchnorm,
                "loss": self.loss_name, "dtype": self.dtype.name, "seed": self.seed,
                "backend": self.backend, "params": self._params,
                "running_mean": self._running_mean, "running_var": self._running_var}

    def __setstate__(self, state):
        self.__init__(state["sizes"], state["activation"], state["batchnorm"], state["loss"],
                      state["dtype"], state["seed"], state["backend"])
        self._params[:] = state["params"]
        self._running_mean[:] = state["running_mean"]
        self._running_var[:] = state["running_var"]

    def __repr__(self):
        return (f"MLP({list(self.sizes)}, activation={self.activation!r}, "
                f"batchnorm={self.batchnorm}, loss={self.loss_name!r}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r}; {self.n_params} parameters)")

    # ------------------------------------------------------------------ evaluation
    def _check_X(self, X):
        return check.check_X(X, self.sizes[0], self.dtype)

    def forward(self, X, training=False):
        """The logits, shape (N, n_out). ``training=True`` normalises with the batch's statistics
        and updates the running statistics (like a PyTorch module in train mode); the default
        uses the running statistics (evaluation). Without BatchNorm both are the same."""
        X = self._check_X(X)
        point = Point(self, X)
        if training and self.batchnorm:
            point.forward(batch_stats=True)
            point.kernels.mlp.update_running_stats(self.kernel_network, point.cache,
                                                   self.kernel_running)
        else:
            point.forward_in_evaluation_mode()
        return point.logits.copy()

    def predict_proba(self, X):
        """Class probabilities (evaluation mode): softmax for cross-entropy, shape (N, n_out);
        sigmoid for binary cross-entropy, shape (N,). Not defined for mse."""
        if self.loss_name == "mse":
            raise ValueError("predict_proba needs a classification loss; this network uses mse")
        logits = self.forward(X)
        if self.loss_name == "binary_cross_entropy":
            return kernels("numpy").mlp.sigmoid(logits[:, 0])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Class labels for classification losses, the outputs for mse (evaluation mode)."""
        return predictions(self.loss_name, self.forward(X))

    def point(self, X, y):
        """The cached state of the current point on (X, y): activations, BatchNorm statistics,
        per-sample losses and dJ/dlogits, from which single coordinates are re-evaluated
        incrementally. It describes the parameters as they are now: after changing them, make a
        new one."""
        X = self._check_X(X)
        T = check.check_targets(y, len(X), self.sizes[-1], self.loss_name, self.dtype)
        point = Point(self, X, T)
        point.forward(batch_stats=True)
        point.evaluate_loss()
        return point

    def loss(self, X, y):
        """J: the mean loss on (X, y), BatchNorm in training mode (batch statistics)."""
        return self.point(X, y).loss

    def gradient(self, X, y, method="backprop", eps=None):
        """dJ/dparams on (X, y) as a flat array aligned with ``params``.

        ``method``: "backprop" (reverse mode), "forward" (forward mode, one directional
        derivative per coordinate pushed front to back through only what it touches) or
        "finite_difference" (central differences, each side re-evaluated incrementally, step
        ``eps``, default ``default_eps(dtype)``)."""
        check.check_choice("method", method, GRADIENT_METHODS)
        if eps is not None:
            check.check_positive("eps", eps)
        return self.point(X, y).gradient(method, eps)


def predictions(loss_name, logits):
    """What the network predicts from its logits: class labels for the classification losses,
    the logits themselves for mse."""
    if loss_name == "mse":
        return logits
    if loss_name == "binary_cross_entropy":
        return (logits[:, 0] > 0).astype(np.int64)
    return logits.argmax(axis=1)


class Point:
    """The cached state of the network at its current parameters on one batch, from which single
    coordinates are re-evaluated incrementally (``MLP.point(X, y)`` makes one).

    ``loss`` is J; ``logits`` the outputs; ``gradient(method)`` the full gradient;
    ``loss_change(j, delta)`` and ``loss_at(j, delta)`` the loss after moving one parameter;
    ``coordinate_derivative(j)`` one partial derivative by forward mode. The buffers (``Z``,
    ``A``, ``Zhat``, ``mean``, ``istd``, per-sample ``rowloss``, ``G`` = dJ/dlogits, ``Q`` the
    loss state) are in the kernels' flat layout (fastgrad/_kernels/codes.py). A point describes
    the parameters it was made at: after they change, make a new one.
    """

    def __init__(self, net, X, T=None):
        self.net, self.X, self.T = net, X, T
        self.workspace = Workspace(net, len(X))
        self.kernels = self.workspace.kernels
        self.cache = self.workspace.cache(X)
        self.loss_state = self.workspace.loss_state(T)
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


_BUFFERS = frozenset(("Z", "A", "Zhat", "mean", "istd", "rowloss", "G", "Q", "logits"))
