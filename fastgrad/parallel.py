"""The parallel approach: stand at the current point, compute every partial derivative there
(backprop), then move all weights at once with an optimizer of fastgrad.optim.

    history = fastgrad.train(net, X, y, Parallel(Adam(1e-3), batch_size=64), epochs=20)

A whole epoch is one kernel call: the epoch's order of the samples is drawn in Python, and the
kernel gathers each batch into the workspace and takes its fused step (forward pass, loss,
backprop, update) — the same steps, in the same order, as a loop of ``optimizer.step`` calls.
"""
import time
from dataclasses import dataclass, field

from .approach import Approach, EpochResult, check_bool, check_positive_int
from .errors import NonFiniteStep
from .optim import SGD, Optimizer


def check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastgrad.optim optimizer (SGD, Adam, RMSprop); "
                        f"got {optimizer!r}")
    return optimizer


def take_step(optimizer, net, X, y, layer):
    """One optimizer step on the batch (X, y), every layer (``layer=None``) or one; returns the
    batch's loss before the step."""
    if layer is None:
        return optimizer.step(net, X, y)
    return optimizer.layer_step(net, X, y, int(layer))


def run_steps(optimizer, net, data, rng, batch_size, count_raised, layers_of_batch):
    """The epoch as a loop of steps, the layer-wise approach's (and, with ``layers_of_batch``
    giving None, the reference the parallel approach's whole-epoch kernel is tested against):
    for each batch, one step per entry of ``layers_of_batch(rng)`` (None: all layers at once). With ``count_raised`` each
    batch's loss is re-evaluated after its step, and that time is reported apart."""
    steps = raised = 0
    check_seconds = 0.0
    for X, y, _ in data.batches(batch_size, rng):
        for layer in layers_of_batch(rng):
            try:
                before = take_step(optimizer, net, X, y, layer)
            except NonFiniteStep as error:
                raise NonFiniteStep(f"step {steps + 1}: {error}") from None
            steps += 1
            if count_raised:
                start = time.perf_counter()
                raised += optimizer.batch_loss(net, X, y) > before
                check_seconds += time.perf_counter() - start
    return EpochResult(steps, raised, check_seconds=check_seconds)


@dataclass
class Parallel(Approach):
    """Every weight at once, along the gradient at the current point.

    optimizer : a fastgrad.optim optimizer (default SGD(lr=0.1)); it keeps its state (momentum,
        Adam's moments) across epochs and ``train`` calls.
    batch_size : samples per step; None (the default) is full-batch gradient descent. With a
        batch size the data are reshuffled every epoch; the last batch may be smaller.
    count_raised : re-evaluate each batch's loss after its step to count the steps that raised
        it (one extra forward pass per step, timed apart from training: History.eval_time).
    """

    optimizer: Optimizer = field(default_factory=lambda: SGD(lr=0.1))
    batch_size: int | None = None
    count_raised: bool = True

    name = "parallel"

    def __post_init__(self):
        check_optimizer(self.optimizer)
        self.batch_size = check_positive_int("batch_size", self.batch_size, allow_none=True)
        self.count_raised = check_bool("count_raised", self.count_raised)

    def run_epoch(self, net, data, rng):
        batch_size = len(data.X) if self.batch_size is None else self.batch_size
        steps, raised, check_seconds = self.optimizer._run_epoch(
            net, data.X, data.T, data.order(self.batch_size, rng), batch_size, self.count_raised)
        return EpochResult(steps, raised, check_seconds=check_seconds)
