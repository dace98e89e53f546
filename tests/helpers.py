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


def objective_targets(loss, n_out, rng, n_samples):
    """Targets for ``loss``: class labels, 0/1 labels (a vector with one output), counts or
    Gaussian numbers."""
    if loss == "cross_entropy":
        return rng.integers(0, n_out, n_samples)
    if loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n_samples, n_out))
        return y[:, 0] if n_out == 1 else y
    if loss == "poisson":
        return rng.poisson(1.5, (n_samples, n_out)).astype(float)
    return rng.normal(size=(n_samples, n_out))


def objective_problem(loss, reduction, n_out, alpha, weighted, hidden=(6,), activation="tanh",
                      batchnorm=False, backend="numpy", seed=0, n_samples=11, n_features=5,
                      dtype="float64"):
    """A network with the objective's options and every parameter moved off its initial value,
    data, targets and (weighted) sample weights with one zero among them."""
    rng = np.random.default_rng(seed)
    net = fastgrad.MLP((n_features, *hidden, n_out), activation, batchnorm, loss, dtype, seed,
                       backend, output_reduction=reduction, alpha=alpha)
    net.params = net.params + rng.normal(0, 0.3, net.n_params)
    X = rng.normal(size=(n_samples, n_features))
    y = objective_targets(loss, n_out, rng, n_samples)
    weight = None
    if weighted:
        weight = rng.uniform(0.2, 2.0, n_samples)
        weight[1] = 0.0
    return net, X, y, weight


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|: the error relative to the array's scale (an
    element-wise ratio would divide round-off by entries that happen to be near zero)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300)


def orders_of(net):
    """Every order kind, as (order given to fastgrad.sweep, keyword arguments, the coordinates
    the naive sweep visits; None: greedy, 12 steps)."""
    n = net.n_params
    given = np.random.default_rng(3).integers(0, n, n // 2)
    return [
        ("cyclic", {}, np.arange(n)), ("reverse", {}, np.arange(n)[::-1]),
        ("permutation", {"seed": 7}, np.random.default_rng(7).permutation(n)),
        ("random", {"seed": 7}, np.random.default_rng(7).integers(0, n, n)),
        (given, {}, given), ("greedy", {"n_steps": 12}, None),
    ]


# every activation x loss x BatchNorm x 1-3 hidden layers
ARCHITECTURES = [
    pytest.param(hidden, act, bn, loss, id=f"{act}-{loss}-{'bn' if bn else 'plain'}-{len(hidden)}h")
    for act, loss, bn, hidden in itertools.product(ACTIVATIONS, LOSSES, (False, True),
                                                   ((6,), (5, 4), (4, 6, 3)))
]
