"""Does a small enough step always lower the loss? Least squares, where the answer is known."""
import numpy as np
import pytest

import fastgrad
from fastgrad import Parallel, diagnostics
from fastgrad.optim import SGD, Adam


@pytest.fixture(scope="module")
def least_squares():
    """J(w, b) = mean((X w + b - y)²): a one-layer mse network. Its Hessian is 2 AᵀA / N with
    A = [X 1], so L = 2 λ_max(AᵀA) / N exactly."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * np.array([1.0, 2.0, 3.0, 0.5, 1.5])
    y = X @ rng.normal(size=5) + rng.normal(size=200)
    A = np.hstack([X, np.ones((200, 1))])
    L = 2 * np.linalg.eigvalsh(A.T @ A).max() / len(X)
    return fastgrad.MLP([5, 1], loss="mse", backend="numba"), X, y, L


def test_smoothness_finds_L_of_least_squares(least_squares, record_property):
    net, X, y, L = least_squares
    estimate, two_over_L = diagnostics.smoothness(net, X, y)
    record_property("L_relative_error", abs(estimate / L - 1))
    assert estimate == pytest.approx(L, rel=0.01)
    assert two_over_L == pytest.approx(2 / L, rel=0.01)


def test_gradient_descent_decreases_below_2_over_L_and_increases_above(least_squares):
    net, X, y, L = least_squares
    below = fastgrad.train(net.copy(), X, y, Parallel(SGD(1.9 / L)), epochs=60)
    assert sum(below.raised) == 0
    assert all(np.diff([net.loss(X, y), *below.loss]) < 0)
    above = fastgrad.train(net.copy(), X, y, Parallel(SGD(2.1 / L)), epochs=60)
    assert above.loss[-1] > 100 * net.loss(X, y)
    assert sum(above.raised) > 0


def test_the_largest_armijo_step_sits_near_2_over_L(least_squares):
    net, X, y, L = least_squares
    step, before, after = diagnostics.largest_descent_step(net, X, y)
    assert after < before
    # the backtracking grid halves: the step found is within a factor 2 below the bound
    assert 0.5 * (2 / L) < step <= 2.05 / L


def test_momentum_and_adam_raise_the_loss_where_small_step_gd_never_does(least_squares):
    net, X, y, L = least_squares
    runs = {name: fastgrad.train(net.copy(), X, y, Parallel(optimizer), epochs=100)
            for name, optimizer in [("gd", SGD(0.5 / L)), ("momentum", SGD(0.5 / L, momentum=0.9)),
                                    ("adam", Adam(0.1))]}
    assert sum(runs["gd"].raised) == 0
    assert sum(runs["momentum"].raised) > 0
    assert sum(runs["adam"].raised) > 0


def test_hessian_vector_product_matches_the_exact_hessian(least_squares):
    net, X, y, L = least_squares
    A = np.hstack([X, np.ones((len(X), 1))])
    v = np.random.default_rng(1).normal(size=net.n_params)
    exact = 2 * A.T @ (A @ v) / len(X)
    np.testing.assert_allclose(diagnostics.hessian_vector_product(net, X, y, v), exact, rtol=1e-6)


def test_bad_diagnostic_arguments(least_squares):
    net, X, y, _ = least_squares
    with pytest.raises(ValueError, match="shrink"):
        diagnostics.largest_descent_step(net, X, y, shrink=1.5)
    with pytest.raises(ValueError, match="initial"):
        diagnostics.largest_descent_step(net, X, y, initial=-1)


@pytest.mark.parametrize("call, error, match", [
    (lambda net, X, y: diagnostics.smoothness(net, X, y, iterations=0), ValueError,
     "iterations must be at least 1"),
    (lambda net, X, y: diagnostics.smoothness(net, X, y, iterations=2.5), TypeError,
     "iterations"),
    (lambda net, X, y: diagnostics.smoothness(net, X, y, tol=0), ValueError, "tol"),
    (lambda net, X, y: diagnostics.largest_descent_step(net, X, y, max_halvings=0), ValueError,
     "max_halvings must be at least 1"),
    (lambda net, X, y: diagnostics.largest_descent_step(net, X, y, c=1.0), ValueError, "c must"),
    (lambda net, X, y: diagnostics.largest_descent_step(net, X[:, :1], y), ValueError,
     "columns"),
    (lambda net, X, y: diagnostics.hessian_vector_product(net, X, y, np.ones(3)), ValueError,
     "v must have shape"),
    (lambda net, X, y: diagnostics.smoothness("net", X, y), TypeError, "fastgrad.MLP"),
])
def test_every_diagnostic_checks_its_arguments_before_any_work(least_squares, call, error,
                                                               match):
    net, X, y, _ = least_squares
    with pytest.raises(error, match=match):
        call(net, X, y)


def test_no_descent_step_is_an_outcome_of_its_own(least_squares):
    """Too few halvings to reach a step that passes Armijo's test: NoDescentStep, naming the
    smallest step tried, not a floating-point trap."""
    net, X, y, L = least_squares
    with pytest.raises(fastgrad.errors.NoDescentStep) as failure:
        diagnostics.largest_descent_step(net, X, y, initial=1e3 * (2 / L), max_halvings=3)
    assert failure.value.smallest == pytest.approx(1e3 * (2 / L) / 4)
    assert not isinstance(failure.value, FloatingPointError)
