"""The layer-wise approach: the block version of the sequential approach. Each step moves one
whole layer's parameters with that layer's gradient at the current point (the layers moved
before it in the sweep have already moved), through an optimizer of fastgrad.optim; a sweep
visits every layer once per batch.

    history = fastgrad.train(net, X, y, LayerWise(SGD(0.1), order="reverse"), epochs=20)
"""
from dataclasses import dataclass, field

from .. import validation as check
from ..optim import SGD, Optimizer
from .base import WithOptimizer, run_steps

# the same words as the sequential approach's orders, meaning the same: cyclic (first to last),
# reverse (last to first), permutation (a fresh one each time)
LAYER_ORDERS = ("cyclic", "reverse", "permutation")


@dataclass(eq=False)
class LayerWise(WithOptimizer):
    """One layer at a time.

    optimizer : a fastgrad.optim optimizer (default SGD(lr=0.1)), whose layer steps move one
        layer; its state is kept per parameter and its step count per layer.
    order : "cyclic" (first layer first, the default), "reverse" (last layer first) or
        "permutation" (a fresh permutation of the layers for every batch).
    batch_size, count_raised, shuffle : as for Parallel.
    """

    optimizer: Optimizer = field(default_factory=lambda: SGD(lr=0.1))
    order: str = "cyclic"
    batch_size: int | None = None
    count_raised: bool = True
    shuffle: bool = True

    name = "layerwise"

    def __post_init__(self):
        super().__post_init__()
        check.check_choice("order", self.order, LAYER_ORDERS)

    def run_epoch(self, net, data, rng):
        n_layers = len(net.layers)

        def layers_of_batch(rng):
            if self.order == "cyclic":
                return range(n_layers)
            if self.order == "reverse":
                return range(n_layers - 1, -1, -1)
            return rng.permutation(n_layers)

        return run_steps(self.bound, data, rng, self.batch_size, self.count_raised,
                         layers_of_batch, self.shuffle)
