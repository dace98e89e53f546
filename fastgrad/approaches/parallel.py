"""The parallel approach: stand at the current point, compute every partial derivative there
(backprop), then move all weights at once with an optimizer of fastgrad.optim.

    history = fastgrad.train(net, X, y, Parallel(Adam(1e-3), batch_size=64), epochs=20)

A whole epoch is one kernel call: the epoch's order of the samples is drawn in Python, and the
kernel gathers each batch into the workspace and takes its fused step (forward pass, loss,
backprop, update) — the same steps, in the same order, as a loop of ``BoundOptimizer.step``
calls (``run_steps``, which the layer-wise approach runs and the tests hold the kernel to).
"""
import time
from dataclasses import dataclass, field

from .. import validation as check
from .._kernels.bundles import EpochPlan
from .._kernels.codes import OK
from ..errors import NonFiniteStep
from ..model.backends import bundle_type
from ..optim import SGD, Optimizer
from ..optim.optimizer import failed_step
from .base import Approach, EpochResult


def check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastgrad.optim optimizer (SGD, Adam, RMSprop); "
                        f"got {optimizer!r}")
    return optimizer


class WithOptimizer(Approach):
    """An approach that steps with an optimizer (its ``optimizer`` field, the rule): the rule's
    state for the network it trains, bound in ``prepare`` and kept across runs (``bound``),
    travels in ``state_dict``; pickled, the approach keeps that state (not the network) and
    binds it to the next network it trains, which must have the same shape."""

    @property
    def bound(self):
        """The optimizer's state for the network this approach trains (None before a run)."""
        return self.__dict__.get("_bound")

    def prepare(self, net, workspaces):
        bound = self.bound
        if bound is not None and bound.rule is self.optimizer:
            if bound.net is not net:
                raise ValueError("this approach holds the optimizer state of another network; "
                                 "use a fresh approach for each network (copy.deepcopy or "
                                 "sklearn.base.clone of this one)")
            bound.workspaces = workspaces
            return
        # first run, or a new optimizer since the last: fresh state, or the state loaded
        # before it was bound (a checkpoint, an unpickled approach)
        bound = self.optimizer.bind(net, workspaces)
        pending = self.__dict__.pop("_pending_state", None)
        if pending is not None:
            bound.load_state_dict(pending)
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


def run_steps(bound, data, rng, batch_size, count_raised, layers_of_batch):
    """The epoch as a loop of steps of ``bound`` (a BoundOptimizer), the layer-wise approach's
    (and, with ``layers_of_batch`` giving None, the reference the parallel approach's
    whole-epoch kernel is tested against): for each batch, one step per entry of
    ``layers_of_batch(rng)`` (None: all layers at once). With ``count_raised`` each batch's loss
    is re-evaluated after its step, and that time is reported apart."""
    steps = raised = 0
    check_seconds = 0.0
    for X, y, _ in data.batches(batch_size, rng):
        for layer in layers_of_batch(rng):
            try:
                before = bound.step(X, y) if layer is None else bound.layer_step(X, y, layer)
            except NonFiniteStep as error:
                raise error.where(step=steps + 1) from None
            steps += 1
            if count_raised:
                start = time.perf_counter()
                raised += bound.batch_loss(X, y) > before
                check_seconds += time.perf_counter() - start
    return EpochResult(steps, raised, check_seconds=check_seconds)


@dataclass
class Parallel(WithOptimizer):
    """Every weight at once, along the gradient at the current point.

    optimizer : a fastgrad.optim optimizer (default SGD(lr=0.1)); the approach keeps its state
        (momentum, Adam's moments) across epochs and ``train`` calls.
    batch_size : samples per step; None (the default) is full-batch gradient descent. With a
        batch size the data are reshuffled every epoch; the last batch may be smaller.
    count_raised : re-evaluate each batch's loss after its step to count the steps that raised
        it (one extra forward pass per step, timed apart from training:
        History.eval_seconds).
    """

    optimizer: Optimizer = field(default_factory=lambda: SGD(lr=0.1))
    batch_size: int | None = None
    count_raised: bool = True

    name = "parallel"

    def __post_init__(self):
        check_optimizer(self.optimizer)
        self.batch_size = check.check_positive_int("batch_size", self.batch_size,
                                                   allow_none=True)
        self.count_raised = check.check_bool("count_raised", self.count_raised)

    def run_epoch(self, net, data, rng):
        """The epoch in one kernel call: its batches gathered from data.X and data.T in the
        order drawn here, each step fused (see the module docstring)."""
        bound = self.bound
        batch_size = len(data.X) if self.batch_size is None else self.batch_size
        work = data.workspace(batch_size)
        plan = bundle_type(net.backend, EpochPlan)(
            (data.X, data.T, data.order(self.batch_size, rng), batch_size, self.count_raised))
        steps, raised, status, loss, check_seconds = work.kernels.parallel.train_epoch(
            net.kernel_network, plan, work.cache(work.inputs), work.loss_state(work.T),
            bound.kernel_state, work.grad, work.scratch, net.kernel_running)
        if status != OK:
            raise NonFiniteStep(failed_step(status, loss), step=int(steps) + 1)
        return EpochResult(int(steps), int(raised), check_seconds=float(check_seconds))
