"""Optimizers of the parallel approach, with torch.optim's update rules, and the fused training
step they take: forward pass, loss, backprop and update in one kernel call.

    opt = fastgrad.optim.Adam(lr=1e-3)
    loss = opt.step(net, X_batch, y_batch)          # all layers at once
    loss = opt.layer_step(net, X_batch, y_batch, 1)  # layer 1 alone, gradient at the current point

An optimizer keeps its state (momentum buffers, Adam's moments) aligned with ``net.params`` and
is bound to the first network it steps. The work buffers of a step are cached per batch size,
so that once warmed a step allocates no arrays (for C-contiguous X in the network's dtype and
integer labels or float targets that need no conversion).

An optimizer pickles without its network and buffers but with its state (the moments and step
counts): unpickled, it binds to the first network it steps, which must have the shape and dtype
of the one it was bound to, and resumes exactly where it stopped.
"""
import numbers

import numpy as np

from . import _validation as check
from ._backends import bundle_type
from ._kernels import codes
from ._kernels.bundles import EpochPlan, OptimizerState
from ._kernels.codes import (ADAM, LABEL_OUT_OF_RANGE, LR, NONFINITE_INPUT, NONFINITE_LOSS,
                             N_HYPER, OK, RMSPROP, SGD)
from ._workspace import NO_LABELS, Workspace
from .errors import NonFiniteStep


def _check_unit_interval(name, value, closed_left=True):
    value = check.check_finite_number(name, value)
    if not ((0 <= value if closed_left else 0 < value) and value < 1):
        raise ValueError(f"{name} must lie in {'[' if closed_left else '('}0, 1); got {value!r}")
    return value


def _check_non_negative(name, value):
    value = check.check_finite_number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return value


class Optimizer:
    """The interface: ``step``, ``layer_step``, ``state`` (n_state, n_params) and ``steps``
    (updates per layer). Subclasses set ``code`` and ``n_state`` and name their
    hyperparameters' slots in ``_slots``."""

    code = None
    n_state = 1

    def __init__(self, lr):
        self._lr = check.check_positive("lr", lr)
        self.net = None
        self.state = self.steps = None

    @property
    def lr(self):
        """The learning rate; it may be changed between steps (a schedule), the other
        hyperparameters are fixed at construction."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check.check_positive("lr", value)
        if getattr(self, "_kernel_hyper", None) is not None:
            self._kernel_hyper[LR] = self._lr  # the array the kernel state holds

    def hyper(self):
        """The hyperparameters in the kernels' slots (codes.py: LR, SGD_MOMENTUM, ...)."""
        hyper = np.zeros(N_HYPER)
        hyper[LR] = self.lr
        for slot, value in self._slots().items():
            hyper[getattr(codes, slot)] = value
        return hyper

    def _slots(self):
        """{slot name in codes.py: value} of this optimizer's own hyperparameters."""
        raise NotImplementedError

    def __getstate__(self):
        # the state travels (checkpoints, other processes); the network and buffers do not
        return {name: value for name, value in self.__dict__.items()
                if name not in ("net", "_workspaces", "_kernel_state", "_kernel_hyper")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.net = None

    def __repr__(self):
        names = self.__init__.__code__.co_varnames[1:self.__init__.__code__.co_argcount]
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    # -------------------------------------------------------------- binding and buffers
    def _bind(self, net):
        if net is self.net:
            return
        from .network import MLP

        if not isinstance(net, MLP):
            raise TypeError(f"net must be a fastgrad.MLP; got {type(net).__name__}")
        if self.net is not None:
            raise ValueError("this optimizer holds the state of another network; make a new "
                             "optimizer for each network")
        if self.state is None:
            state = np.zeros((self.n_state, net.n_params), dtype=net.dtype)
            steps = np.zeros(len(net.layers), dtype=np.int64)
        elif self.state.shape != (self.n_state, net.n_params) or self.state.dtype != net.dtype \
                or self.steps.shape != (len(net.layers),):
            raise ValueError(f"this optimizer's state is for {self.state.shape[1]} "
                             f"{self.state.dtype} parameters in {len(self.steps)} layers; net "
                             f"has {net.n_params} {net.dtype} parameters in {len(net.layers)}")
        else:
            state, steps = self.state, self.steps  # resuming: the state it was pickled with
        self.net, self.state, self.steps = net, state, steps
        self._kernel_hyper = self.hyper()
        self._kernel_state = bundle_type(net.backend, OptimizerState)(
            (self.code, self._kernel_hyper, steps, state,
             np.zeros((self.n_state + 1, net.n_params), dtype=net.dtype)))
        self._workspaces = {}

    def _load(self, X, y):
        """The batch size's cached workspace, and (X, T) checked and ready for the kernels."""
        X = check.check_X(X, self.net.sizes[0], self.net.dtype, finite=False)
        work = self._workspace(len(X))
        return (work, *work.load(X, y))

    def _workspace(self, N):
        """The cached workspace of batches of N samples."""
        if N not in self._workspaces:
            self._workspaces[N] = _BatchLoader(self.net, N)
        return self._workspaces[N]

    # -------------------------------------------------------------- steps
    def step(self, net, X, y):
        """One step on the batch (X, y), every layer at once; returns the batch loss before the
        step. A step whose loss or update is not finite raises NonFiniteStep and changes
        nothing."""
        self._bind(net)
        return self._take(X, y, 0, len(net.layers) - 1)

    def layer_step(self, net, X, y, layer):
        """One step of layer ``layer``'s parameters alone, with their gradient at the current
        point; returns the batch loss before the step."""
        self._bind(net)
        if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, numbers.Integral) \
                or not 0 <= layer < len(net.layers):
            raise ValueError(f"layer must be an integer in [0, {len(net.layers) - 1}]; got {layer!r}")
        return self._take(X, y, int(layer), int(layer))

    def batch_loss(self, net, X, y):
        """J on the batch (X, y) at the current parameters, computed in the step's cached
        buffers (BatchNorm on the batch's statistics; running statistics untouched)."""
        self._bind(net)
        work, cache, state = self._load(X, y)
        mlp = work.kernels.mlp
        mlp.forward(net.kernel_network, cache, True)
        return float(mlp.loss(net.kernel_network, cache, state))

    def _take(self, X, y, first, last):
        net = self.net
        work, cache, state = self._load(X, y)
        loss, status = work.kernels.parallel.train_step(
            net.kernel_network, cache, state, self._kernel_state, work.grad, work.scratch,
            net.kernel_running, first, last)
        if status != OK:
            raise NonFiniteStep(_failed_step(status, loss))
        return float(loss)

    def _run_epoch(self, net, X, T, order, batch_size, count_raised):
        """One epoch of steps on every layer in one kernel call (the parallel approach): the
        batches ``order[lo:lo + batch_size]`` of (X, T), checked arrays in the network's dtype
        (T the loss's targets: one-hot labels for cross-entropy), each gathered by the kernel
        into the batch size's workspace; with ``count_raised`` each batch's loss is evaluated
        again after its step. Returns (steps, raised, check_seconds), the last the seconds
        spent on those evaluations. A non-finite step raises NonFiniteStep naming it; the
        steps before it stay taken, it changes nothing."""
        self._bind(net)
        work = self._workspace(batch_size)
        plan = bundle_type(net.backend, EpochPlan)((X, T, order, batch_size, count_raised))
        steps, raised, status, loss, check_seconds = work.kernels.parallel.train_epoch(
            net.kernel_network, plan, work.cache(work.inputs), work.loss_state(work.T),
            self._kernel_state, work.grad, work.scratch, net.kernel_running)
        if status != OK:
            raise NonFiniteStep(f"step {steps + 1}: {_failed_step(status, loss)}")
        return int(steps), int(raised), float(check_seconds)


def _failed_step(status, loss):
    what = "loss" if status == NONFINITE_LOSS else "update"
    return (f"the step's {what} is not finite (loss {loss}); the network and the optimizer "
            "were left as they were")


class SGD(Optimizer):
    """Stochastic gradient descent as torch.optim.SGD (dampening 0): with ``momentum`` a buffer
    b ← momentum·b + g (b = g on the first step) replaces g, and ``nesterov`` steps along
    g + momentum·b; ``weight_decay`` adds weight_decay·θ to g."""

    code, n_state = SGD, 1

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _check_unit_interval("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_non_negative("weight_decay", weight_decay)

    def _slots(self):
        return {"SGD_MOMENTUM": self.momentum, "SGD_WEIGHT_DECAY": self.weight_decay,
                "SGD_NESTEROV": float(self.nesterov)}


class Adam(Optimizer):
    """Adam as torch.optim.Adam (no amsgrad): m ← m + (1 − β1)(g − m), v ← β2 v + (1 − β2) g²,
    θ ← θ − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps); ``weight_decay`` adds weight_decay·θ
    to g (L2, not AdamW)."""

    code, n_state = ADAM, 2

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}") from None
        self.betas = (_check_unit_interval("betas[0]", beta1),
                      _check_unit_interval("betas[1]", beta2))
        self.eps = check.check_positive("eps", eps)
        self.weight_decay = _check_non_negative("weight_decay", weight_decay)

    def _slots(self):
        return {"ADAM_BETA1": self.betas[0], "ADAM_BETA2": self.betas[1], "ADAM_EPS": self.eps,
                "ADAM_WEIGHT_DECAY": self.weight_decay}


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop (not centred): s ← α s + (1 − α) g², and θ moves by
    −lr · g / (√s + eps), through a momentum buffer b ← momentum·b + g / (√s + eps) when
    ``momentum`` > 0; ``weight_decay`` adds weight_decay·θ to g."""

    code, n_state = RMSPROP, 2

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        super().__init__(lr)
        self.alpha = _check_unit_interval("alpha", alpha)
        self.eps = check.check_positive("eps", eps)
        self.momentum = _check_unit_interval("momentum", momentum)
        self.weight_decay = _check_non_negative("weight_decay", weight_decay)

    def _slots(self):
        return {"RMSPROP_ALPHA": self.alpha, "RMSPROP_EPS": self.eps,
                "RMSPROP_MOMENTUM": self.momentum, "RMSPROP_WEIGHT_DECAY": self.weight_decay}


class _BatchLoader(Workspace):
    """A step's workspace for one batch size, and the checks and conversions of (X, y) into it
    that allocate nothing when none are needed."""

    def __init__(self, net, N):
        super().__init__(net, N)
        n_out = net.sizes[-1]
        self.is_zero = np.zeros((N, n_out), dtype=bool)
        self.is_one = np.zeros((N, n_out), dtype=bool)
        self.load_batch = self.kernels.parallel.load_batch
        # cross-entropy's targets are this workspace's buffer T, so its loss state never changes
        self.labels_state = self.loss_state(self.T) if net.loss_name == "cross_entropy" else None

    def load(self, X, y):
        """The bundles (cache, loss state) for X (checked by check_X but for NaN/inf) and y: the
        loss's targets (for cross-entropy, one-hot labels written into the cached buffer T)."""
        net, N, n_out = self.net, self.N, self.net.sizes[-1]
        y = np.asarray(y)
        if net.loss_name == "cross_entropy":
            if y.ndim != 1 or len(y) != N:
                raise ValueError(f"y must be a 1-D array of {N} class labels; got shape {y.shape}")
            if y.dtype.kind not in "iu":  # np.issubdtype(y.dtype, np.integer), 10x faster
                raise TypeError(f"y must hold integer class labels for cross_entropy; got dtype "
                                f"{y.dtype}")
            labels, T, state = y.astype(np.int64, copy=False), self.T, self.labels_state
        else:
            T = check.check_targets(y, N, n_out, net.loss_name, net.dtype, check_values=False)
            labels = NO_LABELS
            # reductions, not element-wise masks: a NaN or inf anywhere shows in min or max
            if not (np.isfinite(T.min()) and np.isfinite(T.max())):
                raise ValueError("y holds NaN or inf")
            if net.loss_name == "binary_cross_entropy":
                np.equal(T, 0, out=self.is_zero)
                np.equal(T, 1, out=self.is_one)
                if not np.logical_or(self.is_zero, self.is_one, out=self.is_zero).all():
                    raise ValueError("y must hold 0/1 targets for binary_cross_entropy")
            state = self.loss_state(T)
        status = self.load_batch(X, labels, T)
        if status == NONFINITE_INPUT:
            raise ValueError("X holds NaN or inf")
        if status == LABEL_OUT_OF_RANGE:
            raise ValueError(f"y's labels must lie in [0, {n_out - 1}]; got range "
                             f"[{y.min()}, {y.max()}]")
        return self.cache(X), state
