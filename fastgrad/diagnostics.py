"""Does a small enough step always lower the loss? Two measurements that answer it on given
data, at the network's current parameters:

- ``largest_descent_step``: the largest step size (found by backtracking) for which a plain
  gradient step θ − η ∇J lowers J enough to pass Armijo's test (c = 1e-4);
- ``smoothness``: an estimate of the local smoothness constant L, the largest |eigenvalue| of
  the Hessian, by power iteration on Hessian-vector products (central differences of
  gradients). Gradient descent with a step below 2/L lowers J on a quadratic; above, it can
  raise it.
"""
import numpy as np

from . import validation as check
from .errors import NoDescentStep


def _checked(net, X, y):
    """(X, y) checked against ``net`` before any work (X converted to its dtype)."""
    X, _, _ = check.check_network(net).check_batch(X, y)
    return X, y


def _gradient_and_loss(net, X, y):
    point = net.point(X, y)
    return point.gradient("backprop"), point.loss


def largest_descent_step(net, X, y, initial=1e3, shrink=0.5, c=1e-4, max_halvings=200):
    """The largest η = initial · shrinkᵏ with J(θ − η g) ≤ J(θ) − c η |g|², g = ∇J(θ) on (X, y).
    Returns (η, J(θ), J(θ − η g)); η is 0.0 when the gradient is zero. When none of the
    ``max_halvings`` steps passes (a kink, or the gradient wrong), raises NoDescentStep."""
    X, y = _checked(net, X, y)
    initial = check.check_positive("initial", initial)
    shrink = check.check_unit_interval("shrink", shrink, closed_left=False)
    c = check.check_unit_interval("c", c, closed_left=False)
    max_halvings = check.check_positive_int("max_halvings", max_halvings)
    gradient, loss = _gradient_and_loss(net, X, y)
    squared = float(gradient @ gradient)
    if squared == 0:
        return 0.0, loss, loss
    moved = net.copy()
    step = initial
    for _ in range(max_halvings):
        moved.params[:] = net.params - step * gradient
        with np.errstate(all="ignore"):
            if np.isfinite(moved.params).all():
                new_loss = moved.loss(X, y)
                if new_loss <= loss - c * step * squared:
                    return step, loss, new_loss
        step *= shrink
    raise NoDescentStep(f"none of the {max_halvings} steps from {initial:.3g} down to "
                        f"{step / shrink:.3g} passed Armijo's test", smallest=step / shrink)


def hessian_vector_product(net, X, y, v, eps=None):
    """H v by a central difference of gradients: (∇J(θ + h v) − ∇J(θ − h v)) / 2h, with
    h = eps / |v| (default eps: cbrt(machine epsilon) · max(1, |θ|))."""
    X, y = _checked(net, X, y)
    v = check.as_real_array("v", v)
    if v.shape != (net.n_params,):
        raise ValueError(f"v must have shape ({net.n_params},); got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("v holds NaN or inf")
    if eps is not None:
        eps = check.check_positive("eps", eps)
    v = v.astype(net.dtype)
    norm = np.linalg.norm(v)
    if norm == 0:
        return np.zeros_like(v)
    if eps is None:
        eps = np.finfo(net.dtype).eps ** (1 / 3) * max(1.0, float(np.linalg.norm(net.params)))
    h = eps / norm
    shifted = net.copy()
    shifted.params[:] = net.params + h * v
    up, _ = _gradient_and_loss(shifted, X, y)
    shifted.params[:] = net.params - h * v
    down, _ = _gradient_and_loss(shifted, X, y)
    return (up - down) / (2 * h)


def smoothness(net, X, y, iterations=100, tol=1e-6, seed=0):
    """Estimate L = max |eigenvalue of the Hessian of J| at the current parameters by power
    iteration on Hessian-vector products (at most ``iterations``, stopping once the estimate
    changes by less than ``tol`` relative; the start vector drawn with ``seed``). Returns
    (L, 2 / L); (0.0, inf) where the Hessian vanishes along the iteration."""
    X, y = _checked(net, X, y)
    iterations = check.check_positive_int("iterations", iterations)
    tol = check.check_positive("tol", tol)
    rng = check.check_rng(None, seed)
    v = rng.normal(size=net.n_params)
    v /= np.linalg.norm(v)
    estimate = 0.0
    for _ in range(iterations):
        w = hessian_vector_product(net, X, y, v).astype(np.float64)
        new_estimate = float(np.linalg.norm(w))
        if new_estimate == 0:
            return 0.0, np.inf
        v = w / new_estimate
        if abs(new_estimate - estimate) <= tol * new_estimate:
            estimate = new_estimate
            break
        estimate = new_estimate
    return estimate, 2 / estimate
