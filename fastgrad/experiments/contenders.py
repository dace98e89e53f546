"""The approaches ``fastgrad compare`` trains side by side, each described as data: a name, what
it is, and its approach's config (with its default learning rate), which a grid can key
(``runs.cell_key``) and ship to another process."""
from dataclasses import dataclass, field

from ..approaches import Approach

MINIBATCH = 64  # samples per step of the minibatch approaches (fewer if the training set is)


@dataclass(frozen=True)
class Contender:
    """One approach of the comparison: its ``name`` (for --approaches), its ``description``, its
    approach's ``config`` (the learning rate in it is the contender's default) and
    ``lr_option``, the approach's parameter that holds the learning rate."""

    name: str
    description: str
    config: dict = field(hash=False)
    lr_option: str = "optimizer__lr"

    @property
    def lr(self):
        """The default learning rate."""
        return Approach.from_config(self.config).get_params()[self.lr_option]

    def approach_config(self, lr, n_train):
        """The approach's config for learning rate ``lr`` and a training set of ``n_train``
        samples (a batch size capped at it)."""
        approach = Approach.from_config(self.config).set_params(**{self.lr_option: lr})
        batch_size = approach.get_params().get("batch_size")
        if batch_size is not None and batch_size > n_train:
            approach.set_params(batch_size=n_train)
        return approach.config()


def parallel(optimizer, batch_size=None):
    return {"type": "Parallel", "optimizer": optimizer, "batch_size": batch_size}


CONTENDERS = {c.name: c for c in (
    Contender("gd", "parallel: full-batch gradient descent",
              parallel({"type": "SGD", "lr": 2.0})),
    Contender("sgd-momentum", f"parallel: minibatch SGD, momentum 0.9, batches of {MINIBATCH}",
              parallel({"type": "SGD", "lr": 0.05, "momentum": 0.9}, MINIBATCH)),
    Contender("adam", f"parallel: Adam, batches of {MINIBATCH}",
              parallel({"type": "Adam", "lr": 1e-3}, MINIBATCH)),
    Contender("layerwise", "one layer at a time, first to last, full batch, gradient step",
              {"type": "LayerWise", "optimizer": {"type": "SGD", "lr": 2.0}, "order": "cyclic"}),
    Contender("sweep-cyclic", "sequential: one weight at a time in index order, gradient step",
              {"type": "Sequential", "order": "cyclic", "lr": 2.0, "step": "gradient"}, "lr"),
    Contender("sweep-permutation",
              "sequential: one weight at a time in a fresh random order, gradient step",
              {"type": "Sequential", "order": "permutation", "lr": 2.0, "step": "gradient"},
              "lr"),
    Contender("sweep-newton",
              "sequential: index order, Newton step -g/max(h, 1/lr), so lr bounds the step",
              {"type": "Sequential", "order": "cyclic", "lr": 10.0, "step": "newton"}, "lr"),
)}
