"""The multilayer perceptron: parameters in one flat vector, layers as views into it, and the
three ways to look at its gradient (backprop, forward mode, finite differences).

The parameter vector (a fixed convention): for each Dense layer l in order, ``W_l`` of shape
(n_in, n_out) in C order (``z = a_prev @ W_l + b_l``), then ``b_l``, then, for a hidden layer of
a network with BatchNorm, ``gamma_l`` and ``beta_l``.
"""
import numpy as np

from .. import validation as check
from .._kernels.bundles import Network, RunningStats
from .._kernels.codes import (ACTIVATIONS, BN_MOMENTUM, COL_OFF, KIND_NAMES, LOSSES, N_IN, N_OUT,
                              OFF_B, OFF_BETA, OFF_GAMMA, OFF_W, WEIGHT)
from .backends import BACKENDS, bundle_type, kernels
from .point import GRADIENT_METHODS, Point, predictions


# how a sample's loss combines its outputs' terms (every loss but cross-entropy)
OUTPUT_REDUCTIONS = ("mean", "sum")


def output_divisor(loss, output_reduction, n_out):
    """What the kernels divide the sum of a row's per-output loss terms by (codes.py, "losses"):
    n_out for a mean, 1 for a sum, twice that for the squared error (half the mse), 1 for
    cross-entropy."""
    if loss == "cross_entropy":
        return 1.0
    divisor = float(n_out) if output_reduction == "mean" else 1.0
    return 2 * divisor if loss == "squared_error" else divisor


def sizes_label(sizes):
    """The layer widths as a network's short name: ``64-32-10``."""
    return "-".join(map(str, sizes))


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
    loss : {"cross_entropy", "mse", "squared_error", "binary_cross_entropy", "poisson"}
        ``cross_entropy``: softmax + NLL, integer labels; ``mse``: (z - t)² per output, float
        targets of shape (N, n_out); ``squared_error``: half the mse (scikit-learn's);
        ``binary_cross_entropy``: with logits, one independent sigmoid per output, 0/1 targets
        (N, n_out) (multi-label; one output: shape (N,) too); ``poisson``: log link, exp(z) - t z
        per output (scikit-learn's half Poisson deviance without its constant y log y - y),
        non-negative targets, ``predict`` gives exp(z). J is the mean over the samples (weighted,
        with ``sample_weight``) of each sample's loss.
    output_reduction : {"mean", "sum"}
        How a sample's loss combines its outputs' terms (all losses but cross-entropy): "mean"
        as PyTorch's losses do, "sum" as scikit-learn's multi-label and Poisson losses do.
        scikit-learn's squared error is ``loss="squared_error"`` with "mean".
    alpha : float
        The L2 penalty on the Dense weights (never biases, gamma or beta), scikit-learn's: J gains
        alpha / (2 n) · Σ_l ‖W_l‖², n the number of samples in the batch, or the sum of their
        weights when ``sample_weight`` is given.
    dtype : {"float64", "float32"}
        Kept throughout: parameters, caches, gradients.
    seed : int
        Seeds the initialisation: weights Glorot-uniform, U(±sqrt(6 / (n_in + n_out))), for tanh,
        sigmoid and identity and He-normal, N(0, 2 / n_in), for relu (the last layer is always
        Glorot); biases and beta 0, gamma 1.
    backend : {"numba", "cython", "numpy"}
        Which kernels run: Cython (the default: compiled when the package is installed, so
        nothing compiles at run time), Numba (compiled on first use, then
        loaded from Numba's cache on disk) or the numpy reference. All give the same numbers to
        round-off.
    """

    def __init__(self, sizes, activation="tanh", batchnorm=False, loss="cross_entropy",
                 dtype="float64", seed=0, backend="cython", *, output_reduction="mean",
                 alpha=0.0):
        sizes = check.check_sizes(sizes)
        check.check_choice("activation", activation, ACTIVATIONS)
        check.check_choice("loss", loss, LOSSES)
        check.check_choice("backend", backend, BACKENDS)
        check.check_choice("output_reduction", output_reduction, OUTPUT_REDUCTIONS)
        batchnorm = check.check_bool("batchnorm", batchnorm)
        dtype = check.check_dtype(dtype)
        alpha = check.check_non_negative("alpha", alpha)
        if loss == "cross_entropy" and sizes[-1] < 2:
            raise ValueError(f"cross_entropy needs at least two outputs; sizes ends with {sizes[-1]}")
        if loss == "cross_entropy" and output_reduction != "mean":
            raise ValueError("output_reduction applies to the losses with a term per output; "
                             "cross_entropy has one per sample: leave it at 'mean'")
        seed = check.check_seed("seed", seed)
        # the architecture, read-only: the kernels' bundles below are built from it
        self._architecture = {"sizes": sizes, "activation": activation, "batchnorm": batchnorm,
                              "loss": loss, "output_reduction": output_reduction,
                              "alpha": alpha, "dtype": dtype, "seed": seed,
                              "backend": backend}
        self._table, self._n_params = layer_table(sizes, batchnorm)
        self._params = np.zeros(self._n_params, dtype=dtype)
        n_columns = sum(sizes[1:])
        # running statistics, per column, in the kernels' per-column layout
        self._running_mean = np.zeros(n_columns, dtype=dtype)
        self._running_var = np.ones(n_columns, dtype=dtype)
        # how many times the running statistics moved (torch's num_batches_tracked)
        self._batches_tracked = np.zeros((), dtype=np.int64)
        layers = []
        for row in self._table:
            columns = slice(row[COL_OFF], row[COL_OFF] + row[N_OUT])
            has_bn = row[OFF_GAMMA] >= 0
            layers.append(Dense(self._params, row,
                                self._running_mean[columns] if has_bn else None,
                                self._running_var[columns] if has_bn else None))
        self._layers = tuple(layers)
        # what the kernels receive (fastgrad/_kernels/bundles.py, built as backends.bundle_type
        # says): the arrays above never move, so these bundles stay valid for the network's life
        self.kernel_network = bundle_type(backend, Network)(
            (self._params, self._table, ACTIVATIONS[activation], LOSSES[loss],
             output_divisor(loss, output_reduction, sizes[-1]), alpha))
        self.kernel_running = bundle_type(backend, RunningStats)(
            (self._running_mean, self._running_var, BN_MOMENTUM))
        self._initialise(seed)

    # the architecture: read-only, since the kernels keep what was set at construction
    sizes = property(lambda self: self._architecture["sizes"], doc="The layer widths (a tuple).")
    activation = property(lambda self: self._architecture["activation"],
                          doc="The hidden layers' activation.")
    batchnorm = property(lambda self: self._architecture["batchnorm"],
                         doc="Whether hidden layers have BatchNorm.")
    loss_name = property(lambda self: self._architecture["loss"], doc="The loss's name.")
    output_reduction = property(lambda self: self._architecture["output_reduction"],
                                doc="How a sample's loss combines its outputs: mean or sum.")
    alpha = property(lambda self: self._architecture["alpha"], doc="The L2 penalty.")
    dtype = property(lambda self: self._architecture["dtype"], doc="The numpy dtype.")
    seed = property(lambda self: self._architecture["seed"],
                    doc="The seed of the initial weights.")
    backend = property(lambda self: self._architecture["backend"],
                       doc="The kernels' backend.")
    table = property(lambda self: self._table,
                     doc="The layer table the kernels read (int64; columns named in codes.py).")
    n_params = property(lambda self: self._n_params, doc="The number of parameters.")
    layers = property(lambda self: self._layers,
                      doc="The Dense layers (a tuple), views into params.")

    @property
    def label(self):
        """A short description: ``64-32-10 tanh`` (``+ BatchNorm`` when it has it)."""
        return (f"{sizes_label(self.sizes)} {self.activation}"
                f"{' + BatchNorm' if self.batchnorm else ''}")

    # ------------------------------------------------------------------ config and state
    def config(self):
        """The architecture as JSON-ready data: the arguments that rebuild it
        (``MLP.from_config``), with the initial weights' seed."""
        return {**self._architecture, "sizes": list(self.sizes), "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config):
        """A network of the architecture ``config()`` described, initialised from its seed."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict; got {type(config).__name__}")
        return cls(**config)

    def state_dict(self):
        """Copies of the arrays: ``params`` and BatchNorm's ``running_mean``, ``running_var``
        (per column, every layer's side by side; the identity statistics where a layer has no
        BatchNorm) and ``num_batches_tracked`` (how many batches moved them, as torch counts;
        an int64 scalar array)."""
        return {"params": self._params.copy(), "running_mean": self._running_mean.copy(),
                "running_var": self._running_var.copy(),
                "num_batches_tracked": self._batches_tracked.copy()}

    def track_batches(self, n):
        """Count n more updates of the running statistics (the kernels made them)."""
        if self.batchnorm:
            self._batches_tracked += n

    def load_state_dict(self, state):
        """Put back the arrays of ``state_dict`` (checked first, all of them: on a bad one
        nothing changes)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of arrays; got {type(state).__name__}")
        expected = {"params": self._params, "running_mean": self._running_mean,
                    "running_var": self._running_var,
                    "num_batches_tracked": self._batches_tracked}
        if set(state) != set(expected):
            raise ValueError(f"state must hold {sorted(expected)}; got {sorted(state)}")
        checked = {name: check.check_array(f"state[{name!r}]", state[name], target.shape)
                   for name, target in expected.items()}
        if (checked["running_var"] < 0).any():
            raise ValueError("state['running_var'] holds negative variances")
        tracked = checked["num_batches_tracked"]
        if tracked.dtype.kind not in "iu" or tracked < 0:
            raise ValueError("state['num_batches_tracked'] must be a count (an integer >= 0)")
        for name, target in expected.items():
            target[...] = checked[name]

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
        self._params[:] = check.check_array("params", values, (self.n_params,))

    def coordinate(self, j):
        """Coordinate j as (layer, name, index): ``(0, "W", (k, i))`` is W_0[k, i], ``(1, "b", i)``
        is b_1[i]; names are "W", "b", "gamma", "beta"."""
        j = check.check_coordinate(j, self.n_params)
        l, kind, k, i = kernels("numpy").incremental.decode(j, self.table)
        return (int(l), KIND_NAMES[kind], (int(k), int(i)) if kind == WEIGHT else int(i))

    def index(self, layer, name, index):
        """The inverse of ``coordinate``: the position of (layer, name, index) in ``params``."""
        layer = check.check_layer(layer, len(self.layers))
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

    def save(self, path):
        """Write the network to ``path``, a safetensors file whose tensors PyTorch's
        ``load_state_dict`` reads as ``to_torch()``'s module's (fastgrad/io/files.py);
        ``fastgrad.load(path)`` gives it back bit for bit."""
        from ..io import save

        save(path, self)

    def to_torch(self):
        """The network as the ``torch.nn.Sequential`` it is (Linear, [BatchNorm1d], activation,
        ..., Linear), parameters and running statistics bit-identical
        (fastgrad/io/torch.py; ``fastgrad.from_torch`` is the reverse)."""
        from ..io.torch import to_torch

        return to_torch(self)

    def copy(self, backend=None):
        """An independent network with the same parameters and running statistics, on the
        same backend or the one named."""
        config = self.config()
        twin = MLP.from_config(config if backend is None else {**config, "backend": backend})
        twin.load_state_dict(self.state_dict())
        return twin

    def __getstate__(self):
        # the architecture and the arrays; the layer views and kernel bundles are rebuilt
        # (pickled as they are, the views would become copies, detached from params)
        return {"config": self.config(), "state": self.state_dict()}

    def __setstate__(self, state):
        self.__init__(**state["config"])
        self.load_state_dict(state["state"])

    def __repr__(self):
        return (f"MLP({list(self.sizes)}, activation={self.activation!r}, "
                f"batchnorm={self.batchnorm}, loss={self.loss_name!r}, "
                f"{self._objective_repr()}dtype={self.dtype.name!r}, backend={self.backend!r}; "
                f"{self.n_params} parameters)")

    def _objective_repr(self):
        """The objective's options where they are not the defaults."""
        options = "" if self.output_reduction == "mean" else (
            f"output_reduction={self.output_reduction!r}, ")
        return options + (f"alpha={self.alpha!r}, " if self.alpha else "")

    def weight_penalty(self):
        """alpha / 2 · Σ_l ‖W_l‖²: the L2 penalty's numerator (J holds it divided by the
        batch's number of samples, or the sum of its weights)."""
        return 0.5 * self.alpha * sum(float((layer.W ** 2).sum()) for layer in self.layers)

    # ------------------------------------------------------------------ evaluation
    def _check_X(self, X):
        return check.check_X(X, self.sizes[0], self.dtype)

    def check_batch(self, X, y, sample_weight=None):
        """(X, T, weight): the inputs, the loss's targets (one-hot labels for cross-entropy) and
        the sample weights (None when not given) as the kernels take them, checked."""
        X = self._check_X(X)
        T = check.check_targets(y, len(X), self.sizes[-1], self.loss_name, self.dtype)
        return X, T, check.check_sample_weight(sample_weight, len(X), self.dtype)

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
            self.track_batches(1)
        else:
            point.forward_in_evaluation_mode()
        return point.logits.copy()

    def predict_proba(self, X):
        """Probabilities (evaluation mode): for cross-entropy the softmax, shape (N, n_out); for
        binary cross-entropy each output's sigmoid, shape (N, n_out), or (N,) with one output.
        Not defined for the regression losses."""
        if self.loss_name not in ("cross_entropy", "binary_cross_entropy"):
            raise ValueError(f"predict_proba needs a classification loss; this network uses "
                             f"{self.loss_name}")
        logits = self.forward(X)
        if self.loss_name == "binary_cross_entropy":
            sigmoid = kernels("numpy").mlp.sigmoid(logits)
            return sigmoid[:, 0] if self.sizes[-1] == 1 else sigmoid
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        """What the network predicts (evaluation mode): class labels for cross-entropy, 0/1 for
        binary cross-entropy (an (N, n_out) matrix with several outputs), the outputs for mse and
        squared_error, their means exp(z) for poisson."""
        return predictions(self.loss_name, self.forward(X))

    def point(self, X, y, sample_weight=None):
        """The cached state of the current point on (X, y): activations, BatchNorm statistics,
        per-sample losses and dJ/dlogits, from which single coordinates are re-evaluated
        incrementally. It describes the parameters as they are now: after changing them, make a
        new one. ``sample_weight`` (N,), non-negative, makes J the weighted mean."""
        X, T, weight = self.check_batch(X, y, sample_weight)
        point = Point(self, X, T, weight=weight)
        point.forward(batch_stats=True)
        point.evaluate_loss()
        return point

    def loss(self, X, y, sample_weight=None):
        """J on (X, y): the mean loss (weighted by ``sample_weight`` when given) plus the L2
        penalty, BatchNorm in training mode (batch statistics)."""
        return self.point(X, y, sample_weight).loss

    def gradient(self, X, y, method="backprop", eps=None, sample_weight=None):
        """dJ/dparams on (X, y) (weighted by ``sample_weight`` when given) as a flat array
        aligned with ``params``.

        ``method``: "backprop" (reverse mode), "forward" (forward mode, one directional
        derivative per coordinate pushed front to back through only what it touches) or
        "finite_difference" (central differences, each side re-evaluated incrementally, step
        ``eps``, default ``default_eps(dtype)``)."""
        check.check_choice("method", method, GRADIENT_METHODS)
        if eps is not None:
            check.check_positive("eps", eps)
        return self.point(X, y, sample_weight).gradient(method, eps)
