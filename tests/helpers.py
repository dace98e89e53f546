"""Test helpers (import them: ``from helpers import make_problem``): a seeded problem (network
with perturbed parameters, data, targets) for any architecture, the architectures every oracle
test runs over, and the tolerance convention used throughout."""
import itertools

import numpy as np
import pytest

import fastgrad

BACKENDS = ("numpy", "numba", "cython")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
LOSSES = ("cross_entropy", "mse", "binary_cross_entropy")


def make_problem(hidden=(4,), activation="tanh", batchnorm=False, loss="cross_entropy",
                 backend="numpy", dtype="float64", seed=0, n_samples=9, n_features=5, n_classes=3):
    """A network whose every parameter (biases, gamma, beta too) is moved off its initial value,
    with Gaussian inputs and targets suited to the loss."""
    rng = np.random.default_rng(seed)
    n_out = 1 if loss == "binary_cross_entropy" else n_classes
    net = fastgrad.MLP((n_features, *hidden, n_out), activation, batchnorm, loss, dtype, seed,
                       backend)
    net.params = net.params + rng.normal(0, 0.3, net.n_params)
    X = rng.normal(size=(n_samples, n_features))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, n_samples)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, n_samples)
    else:
        y = rng.normal(size=(n_samples, n_out))
    return net, X, y


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|: the error relative to the array's scale (an
    element-wise ratio would divide round-off by entries that happen to be near zero)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300)


# every activation x loss x BatchNorm x 1-3 hidden layers
ARCHITECTURES = [
    pytest.param(hidden, act, bn, loss, id=f"{act}-{loss}-{'bn' if bn else 'plain'}-{len(hidden)}h")
    for act, loss, bn, hidden in itertools.product(ACTIVATIONS, LOSSES, (False, True),
                                                   ((6,), (5, 4), (4, 6, 3)))
]
