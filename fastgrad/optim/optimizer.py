"""An optimizer is an update rule and its hyperparameters (``Optimizer``); bound to a network it
becomes the state that rule updates (``BoundOptimizer``), in the spirit of torch.optim:

    bound = fastgrad.optim.Adam(lr=1e-3).bind(net)
    loss = bound.step(X_batch, y_batch)        # the fused step: forward, loss, backprop, update
    loss = bound.layer_step(X_batch, y_batch, 1)  # layer 1 alone, gradient at the current point
    bound.apply(gradient)                      # the update with a gradient computed elsewhere

A hyperparameter changed on the rule (``bound.rule.lr = 0.01``, or through ``set_params``) is
validated at once and takes effect at the next step of every state bound to it: the kernels
read the rule's own hyperparameter array. The state (moments, step counts) lives in the bound
object, ``state_dict()`` copies it out and ``load_state_dict`` puts it back; the workspaces of
its steps come from a pool (``fastgrad.model.Workspaces``) that a training run shares.
"""
import numpy as np

from .. import validation as check
from .._kernels import codes
from .._kernels.bundles import OptimizerState
from .._kernels.codes import N_HYPER, NONFINITE_LOSS, OK
from ..config import Configurable
from ..errors import NonFiniteStep
from ..model.backends import bundle_type, kernels
from ..model.workspace import Workspaces


class Optimizer(Configurable, abstract=True):
    """An update rule: ``code`` and ``n_state`` (the kernels' optimizer and its state rows) and
    the hyperparameters, the arguments of ``__init__``, which ``_slots`` validates together and
    places in the kernels' slots (codes.py: LR, SGD_MOMENTUM, ...)."""

    code = None
    n_state = 1

    def __init__(self, **hyperparameters):
        object.__setattr__(self, "_names", tuple(hyperparameters))
        object.__setattr__(self, "_hyper", np.zeros(N_HYPER))
        self._set_options(hyperparameters)

    @property
    def hyper(self):
        """The hyperparameters in the kernels' slots (float64, N_HYPER values): the array every
        state bound to this rule reads at each step. Change it through the hyperparameters."""
        return self._hyper

    def _slots(self, **values):
        """{slot name in codes.py: float} for the hyperparameters ``values``, validated
        together (raising ValueError or TypeError naming the bad one)."""
        raise NotImplementedError

    def _option_names(self):
        return self._names

    def _set_options(self, values):
        merged = {name: getattr(self, name, None) for name in self._names}
        merged.update(values)
        slots = self._slots(**merged)  # raises before anything changes
        for name in values:
            object.__setattr__(self, name, values[name])
        self._hyper[:] = 0.0
        for slot, value in slots.items():
            self._hyper[getattr(codes, slot)] = value

    def __setattr__(self, name, value):
        # a hyperparameter is validated and reaches the kernels' array: never silently ignored
        if name in self._names:
            self._set_options({name: value})
        else:
            object.__setattr__(self, name, value)

    def __repr__(self):
        options = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names)
        return f"{type(self).__name__}({options})"

    def __getstate__(self):
        # the hyperparameters alone: a copy (pickle, copy.copy, deepcopy) gets an array of its
        # own, so that changing it never changes the original's steps
        return self.get_params(deep=False)

    def __setstate__(self, hyperparameters):
        Optimizer.__init__(self, **hyperparameters)

    def bind(self, net, workspaces=None):
        """This rule's state for ``net``: a BoundOptimizer with zero moments and step counts,
        stepping in ``workspaces`` (a fastgrad.model.Workspaces of net; default its own)."""
        return BoundOptimizer(self, net, workspaces)


class BoundOptimizer:
    """An optimizer's state for one network: ``state`` (n_state, n_params), its buffers aligned
    with ``net.params`` (momentum, Adam's moments), and ``steps``, the updates each layer has
    had. Each step or update is one kernel call of the work (after the batch's checks); one
    whose loss or result is not finite raises NonFiniteStep and changes nothing. It holds the
    network's buffers, so it does not pickle: save ``rule`` and ``state_dict()`` instead."""

    def __init__(self, rule, net, workspaces=None):
        if not isinstance(rule, Optimizer):
            raise TypeError(f"rule must be a fastgrad.optim optimizer; got {rule!r}")
        self.rule, self.net = rule, check.check_network(net)
        self.workspaces = Workspaces(net) if workspaces is None else workspaces
        if self.workspaces.net is not net:
            raise ValueError("workspaces must be a pool of this network's workspaces")
        self.state = np.zeros((rule.n_state, net.n_params), dtype=net.dtype)
        self.steps = np.zeros(len(net.layers), dtype=np.int64)
        # the kernels' bundle: the rule's hyperparameter array itself, so that a change of a
        # hyperparameter reaches the next step
        self.kernel_state = bundle_type(net.backend, OptimizerState)(
            (rule.code, rule.hyper, self.steps, self.state,
             np.zeros((rule.n_state + 1, net.n_params), dtype=net.dtype)))
        self.kernels = kernels(net.backend)

    def __repr__(self):
        return f"{self.rule!r} bound to {self.net.label} ({int(self.steps.max())} steps)"

    def __reduce__(self):
        raise TypeError("a BoundOptimizer holds a network and its buffers and does not pickle; "
                        "pickle its rule and state_dict() (or the approach that holds it)")

    # ------------------------------------------------------------------ steps
    def step(self, X, y, sample_weight=None):
        """One step on the batch (X, y), every layer at once; returns the batch loss before the
        step. ``sample_weight`` (one non-negative weight per sample) makes the loss the
        weighted mean."""
        return self._take(X, y, sample_weight, 0, len(self.net.layers) - 1)

    def layer_step(self, X, y, layer, sample_weight=None):
        """One step of layer ``layer``'s parameters alone, with their gradient at the current
        point; returns the batch loss before the step."""
        layer = check.check_layer(layer, len(self.net.layers))
        return self._take(X, y, sample_weight, layer, layer)

    def apply(self, gradient, layer=None):
        """The rule's update with ``gradient`` (aligned with ``net.params``; computed by the
        caller: forward gradients, Forward-Forward), of every layer or of ``layer`` alone. No
        forward pass, so BatchNorm's running statistics do not move."""
        net = self.net
        gradient = check.check_array("gradient", gradient, (net.n_params,))
        gradient = np.array(gradient, dtype=net.dtype, order="C", copy=None)
        if not gradient.flags.writeable:  # the kernels take a writable buffer
            gradient = gradient.copy()
        first, last = (0, len(net.layers) - 1) if layer is None else \
            (check.check_layer(layer, len(net.layers)),) * 2
        status = self.kernels.parallel.apply_update(net.kernel_network, self.kernel_state,
                                                    gradient, first, last)
        if status != OK:
            raise NonFiniteStep("the update is not finite; the network and the optimizer were "
                                "left as they were")

    def batch_loss(self, X, y, sample_weight=None):
        """J on the batch (X, y) at the current parameters, computed in the step's workspace
        (BatchNorm on the batch's statistics; running statistics untouched)."""
        work, cache, state = self._load(X, y, sample_weight)
        work.kernels.mlp.forward(self.net.kernel_network, cache, True)
        return float(work.kernels.mlp.loss(self.net.kernel_network, cache, state))

    def _load(self, X, y, sample_weight):
        """The batch size's workspace, and the bundles of (X, y, sample_weight) checked and
        ready for the kernels."""
        X = check.check_X(X, self.net.sizes[0], self.net.dtype, finite=False)
        weight = check.check_sample_weight(sample_weight, len(X), self.net.dtype)
        work = self.workspaces(len(X))
        return (work, *work.load(X, y, weight))

    def _take(self, X, y, sample_weight, first, last):
        net = self.net
        work, cache, state = self._load(X, y, sample_weight)
        loss, status = work.kernels.parallel.train_step(
            net.kernel_network, cache, state, self.kernel_state, work.grad, work.scratch,
            net.kernel_running, first, last)
        if status != OK:
            raise NonFiniteStep(failed_step(status, loss))
        net.track_batches(1)
        return float(loss)

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """Copies of ``state`` and ``steps``."""
        return {"state": self.state.copy(), "steps": self.steps.copy()}

    def load_state_dict(self, state):
        """Put back the arrays of ``state_dict`` (checked: shapes, finite values, counts >= 0;
        on a bad one nothing changes)."""
        if not isinstance(state, dict) or set(state) != {"state", "steps"}:
            raise ValueError(f"state must be a dict with 'state' and 'steps'; got {state!r:.80}")
        shapes = (np.shape(state["state"]), np.shape(state["steps"]))
        if shapes != (self.state.shape, self.steps.shape):
            raise ValueError(f"this optimizer's state is {self.state.shape[0]} rows of "
                             f"{self.net.n_params} parameters and steps for {len(self.steps)} "
                             f"layers; got {shapes[0]} and {shapes[1]}")
        buffers = check.check_array("state['state']", state["state"], self.state.shape)
        steps = check.check_array("state['steps']", state["steps"], self.steps.shape)
        if steps.dtype.kind not in "iu" or (steps < 0).any():
            raise ValueError("state['steps'] must hold non-negative integer step counts")
        self.state[:] = buffers
        self.steps[:] = steps


def failed_step(status, loss):
    """What a failed step's status means, for NonFiniteStep's message."""
    what = "loss" if status == NONFINITE_LOSS else "update"
    return (f"the step's {what} is not finite (loss {loss}); the network and the optimizer "
            "were left as they were")
