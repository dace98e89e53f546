"""pytest-benchmark micro-benchmarks of the kernels one by one — forward pass, loss, backprop,
the fused training step, one forward-mode coordinate derivative, one incremental loss change
and a sweep of 200 coordinates — in each backend, on a 64-256-10 tanh network and all 1,797
standardised digits, float64. Skipped in the normal test run; run with

    pytest benchmarks/test_kernels.py -o addopts="" --benchmark-only --benchmark-group-by=group
"""
import numpy as np
import pytest

import fastgrad
from fastgrad.datasets import load_digits_standardised
from fastgrad.optim import SGD

BACKENDS = ["numpy", "numba", "cython"]


@pytest.fixture(scope="module")
def digits():
    return load_digits_standardised()


@pytest.fixture(params=BACKENDS)
def point(request, digits):
    X, y = digits
    net = fastgrad.MLP([64, 256, 10], backend=request.param, seed=0)
    point = net.point(X, y)
    point.labels = y
    return point


def kernel_benchmark(benchmark, name, call):
    benchmark.group = f"kernel: {name}, 64-256-10, 1797 digits, float64"
    call()  # warm: compiles
    benchmark(call)


def test_forward(benchmark, point):
    kernel_benchmark(benchmark, "forward", lambda: point.forward(batch_stats=True))


def test_loss(benchmark, point):
    kernel_benchmark(benchmark, "loss", point.evaluate_loss)


def test_backprop(benchmark, point):
    kernel_benchmark(benchmark, "backprop", lambda: point.gradient("backprop"))


def test_training_step(benchmark, point):
    optimizer = SGD(0.01).bind(point.net)
    kernel_benchmark(benchmark, "fused training step (SGD)",
                     lambda: optimizer.step(point.X, point.labels))


def test_coordinate_derivative(benchmark, point):
    kernel_benchmark(benchmark, "one forward-mode coordinate derivative (W0)",
                     lambda: point.coordinate_derivative(1000))


def test_loss_change(benchmark, point):
    kernel_benchmark(benchmark, "one incremental loss change (W0)",
                     lambda: point.loss_change(1000, 1e-3))


def test_sweep_of_200_coordinates(benchmark, point):
    order = np.arange(0, point.net.n_params, point.net.n_params // 200)[:200]
    kernel_benchmark(benchmark, "sweep of 200 coordinates",
                     lambda: fastgrad.sweep(point.net, point.X, point.labels, order=order))
