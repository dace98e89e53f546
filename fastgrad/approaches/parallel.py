"""The parallel approach: stand at the current point, compute every partial derivative there
(backprop), then move all weights at once with an optimizer of fastgrad.optim.

    history = fastgrad.train(net, X, y, Parallel(Adam(1e-3), batch_size=64), epochs=20)

A whole epoch is one kernel call: the epoch's order of the samples is drawn in Python, and the
kernel gathers each batch into the workspace and takes its fused step (forward pass, loss,
backprop, update) — the same steps, in the same order, as a loop of ``BoundOptimizer.step``
calls (``base.run_steps``, which the layer-wise approach runs and the tests hold the kernel
to).
"""
from dataclasses import dataclass, field

from .._kernels.bundles import EpochPlan
from .._kernels.codes import OK
from ..errors import NonFiniteStep
from ..model.backends import bundle_type
from ..optim import SGD, Optimizer
from ..optim.optimizer import failed_step
from .base import EpochResult, WithOptimizer


@dataclass(eq=False)
class Parallel(WithOptimizer):
    """Every weight at once, along the gradient at the current point.

    optimizer : a fastgrad.optim optimizer (default SGD(lr=0.1)); the approach keeps its state
        (momentum, Adam's moments) across epochs and ``train`` calls.
    batch_size : samples per step; None (the default) is full-batch gradient descent. With a
        batch size the data are reshuffled every epoch; the last batch may be smaller.
    count_raised : re-evaluate each batch's loss after its step to count the steps that raised
        it (one extra forward pass per step, timed apart from training:
        History.eval_seconds).
    shuffle : draw a fresh order of the samples every epoch (default True; with a batch size);
        False takes the batches in the data's order.
    """

    optimizer: Optimizer = field(default_factory=lambda: SGD(lr=0.1))
    batch_size: int | None = None
    count_raised: bool = True
    shuffle: bool = True

    name = "parallel"

    def run_epoch(self, net, data, rng):
        """The epoch in one kernel call: its batches gathered from data.X, data.T and the
        weights in the order drawn here, each step fused (see the module docstring)."""
        bound = self.bound
        batch_size = len(data.X) if self.batch_size is None else self.batch_size
        work = data.workspace(batch_size)
        plan = bundle_type(net.backend, EpochPlan)(
            (data.X, data.T, data.kernel_weight, data.order(self.batch_size, rng, self.shuffle),
             batch_size, self.count_raised))
        steps, raised, status, loss, check_seconds = work.kernels.parallel.train_epoch(
            net.kernel_network, plan, work.cache(work.inputs), work.loss_state(work.T),
            bound.kernel_state, work.grad, work.scratch, net.kernel_running)
        net.track_batches(int(steps))
        if status != OK:
            raise NonFiniteStep(failed_step(status, loss), step=int(steps) + 1)
        # after a whole epoch the kernel's loss is the running loss (parallel_numpy.train_epoch)
        return EpochResult(int(steps), int(raised), check_seconds=float(check_seconds),
                           running_loss=float(loss))
