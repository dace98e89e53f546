"""pytest-benchmark: the full gradient of a 64-32-10 tanh network on 200 standardised digits
(float64), fastgrad's incremental forward mode and finite differences side by side with their
peers — ``jax.jacfwd`` (jitted, and eager) of the same loss, and ``torch.autograd.gradcheck`` of
the same loss, which re-runs the whole network twice per coordinate. Peers that are not
installed are skipped. Run (from the repository root):

    pip install '.[bench]'
    pytest benchmarks -o addopts="" --benchmark-only --benchmark-group-by=group

Each group's table gives every row's time relative to the fastest in parentheses.
"""
import numpy as np
import pytest

import fastgrad
from fastgrad.datasets import load_digits_standardised

SIZES = [64, 32, 10]


@pytest.fixture(scope="module")
def problem():
    X, y = load_digits_standardised(200)
    return fastgrad.MLP(SIZES, "tanh", seed=0, backend="numpy"), X, y


def fastgrad_point(problem, backend):
    net, X, y = problem
    point = net.copy(backend).point(X, y)
    point.gradient("forward")  # warm (compiles the Numba kernels the first time)
    point.gradient("finite_difference")
    return point


@pytest.mark.benchmark(group="forward-mode gradient 64-32-10, 200 samples")
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_fastgrad_forward_mode(benchmark, problem, backend):
    point = fastgrad_point(problem, backend)
    benchmark(point.gradient, "forward")


@pytest.mark.benchmark(group="finite-difference gradient 64-32-10, 200 samples")
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_fastgrad_finite_differences(benchmark, problem, backend):
    point = fastgrad_point(problem, backend)
    benchmark(point.gradient, "finite_difference")


def jax_loss(problem):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    net, X, y = problem
    X, y = jnp.asarray(X), jnp.asarray(y)
    # the layers' slices of the flat parameter vector (params' order: W_0, b_0, W_1, b_1)
    n0, n1, n2 = net.sizes
    oW0, ob0 = 0, n0 * n1
    oW1, ob1 = ob0 + n1, ob0 + n1 + n1 * n2

    def loss(theta):
        hidden = jnp.tanh(X @ theta[oW0:ob0].reshape(n0, n1) + theta[ob0:ob0 + n1])
        logits = hidden @ theta[oW1:ob1].reshape(n1, n2) + theta[ob1:ob1 + n2]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(len(y)), y])

    return jax, loss, jnp.asarray(net.params)


@pytest.mark.benchmark(group="forward-mode gradient 64-32-10, 200 samples")
@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_jax_jacfwd(benchmark, problem, jit):
    jax, loss, theta = jax_loss(problem)
    gradient = jax.jit(jax.jacfwd(loss)) if jit else jax.jacfwd(loss)
    expected = fastgrad_point(problem, "numpy").gradient("backprop")
    np.testing.assert_allclose(np.asarray(gradient(theta)), expected, rtol=1e-10, atol=1e-14)
    benchmark.pedantic(lambda: gradient(theta).block_until_ready(), rounds=5, iterations=1)


@pytest.mark.benchmark(group="finite-difference gradient 64-32-10, 200 samples")
def test_torch_gradcheck(benchmark, problem):
    torch = pytest.importorskip("torch")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from torch_oracle import torch_loss

    net, X, y = problem
    theta = torch.tensor(net.params, requires_grad=True)

    def check():
        assert torch.autograd.gradcheck(lambda t: torch_loss(net, t, X, y), (theta,),
                                        eps=fastgrad.default_eps(np.float64), atol=1e-6)

    benchmark.pedantic(check, rounds=3, iterations=1)
