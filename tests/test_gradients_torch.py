"""The three gradient methods, in the three backends, against PyTorch autograd in float64."""
import numpy as np
import pytest

from helpers import ARCHITECTURES, BACKENDS, make_problem, relative_error
from torch_oracle import torch_loss_and_gradient

TOLERANCE = {"backprop": 1e-10, "forward": 1e-10, "finite_difference": 1e-6}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden, activation, batchnorm, loss", ARCHITECTURES)
def test_three_methods_match_torch_autograd(backend, hidden, activation, batchnorm, loss):
    net, X, y = make_problem(hidden, activation, batchnorm, loss, backend, seed=len(hidden))
    torch_loss, torch_grad = torch_loss_and_gradient(net, X, y)
    point = net.point(X, y)
    assert point.loss == pytest.approx(torch_loss, rel=1e-12)
    for method, tolerance in TOLERANCE.items():
        assert relative_error(point.gradient(method), torch_grad) < tolerance, method


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_architecture_dense_batchnorm_tanh_dense_cross_entropy(backend):
    """Input -> Dense -> BatchNorm -> Tanh -> Dense -> cross-entropy, on real data (digits)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16.0, y[:150]
    import fastgrad

    net = fastgrad.MLP([64, 16, 10], activation="tanh", batchnorm=True, backend=backend, seed=3)
    net.params = net.params + np.random.default_rng(3).normal(0, 0.1, net.n_params)
    torch_loss, torch_grad = torch_loss_and_gradient(net, X, y)
    assert net.loss(X, y) == pytest.approx(torch_loss, rel=1e-12)
    for method, tolerance in TOLERANCE.items():
        assert relative_error(net.gradient(X, y, method), torch_grad) < tolerance, method


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_a_single_sample_batch(backend):
    # one sample: no BatchNorm (its variance is zero), every loss
    for loss in ("cross_entropy", "mse", "binary_cross_entropy"):
        net, X, y = make_problem((3,), "sigmoid", False, loss, backend, n_samples=1)
        _, torch_grad = torch_loss_and_gradient(net, X, y)
        for method, tolerance in TOLERANCE.items():
            assert relative_error(net.gradient(X, y, method), torch_grad) < tolerance
