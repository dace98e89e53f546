"""pytest-benchmark: one cyclic sequential sweep (every weight stepped once, each derivative at
the current weights) against one full-batch parallel step of the same network — fastgrad's and
PyTorch eager's — and against the naive sweep (a full forward and backward pass before every
single-coordinate step; one such step is timed, and extra_info["naive sweep s"] extrapolates it
to all n_params). float64, tanh, cross-entropy, all 1,797 standardised digits. Run:

    pip install '.[bench]'
    pytest benchmarks -o addopts="" --benchmark-only --benchmark-group-by=group -k sweep
"""
import pytest

import fastgrad
from fastgrad.datasets import load_digits_standardised
from fastgrad.bench.cases import NETWORKS as SIZES, naive_sweep_step, torch_step
from fastgrad.optim import SGD

LR = 0.1


def group(name):
    sizes = SIZES[name]
    net = fastgrad.MLP(sizes)
    return f"sweep vs step, {'-'.join(map(str, sizes))} ({net.n_params} weights), float64"


@pytest.fixture(scope="module")
def digits():
    return load_digits_standardised(None)


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("size", list(SIZES))
def test_cyclic_sweep(benchmark, digits, size, backend):
    X, y = digits
    net = fastgrad.MLP(SIZES[size], backend=backend, seed=0)
    benchmark.group = group(size)
    fastgrad.sweep(net.copy(), X[:50], y[:50], lr=LR)  # warm: compiles
    benchmark.pedantic(fastgrad.sweep, args=(net, X, y), kwargs={"lr": LR}, rounds=3,
                       iterations=1)
    benchmark.extra_info["n_params"] = net.n_params


@pytest.mark.parametrize("size", list(SIZES))
def test_parallel_full_batch_step(benchmark, digits, size):
    X, y = digits
    net = fastgrad.MLP(SIZES[size], seed=0, backend="numba")
    benchmark.group = group(size)
    optimizer = SGD(LR).bind(net)
    optimizer.step(X, y)
    benchmark(optimizer.step, X, y)


@pytest.mark.parametrize("size", list(SIZES))
def test_torch_full_batch_step(benchmark, digits, size):
    pytest.importorskip("torch")
    X, y = digits
    benchmark.group = group(size)
    step = torch_step(SIZES[size], X, y, LR)
    step()
    benchmark(step)


@pytest.mark.parametrize("size", list(SIZES))
def test_naive_single_coordinate_step(benchmark, digits, size):
    """One step of the naive sweep: a full forward pass, loss and backprop (fastgrad's fused
    Numba kernels, the fastest way to do it here), then one coordinate moves."""
    X, y = digits
    net = fastgrad.MLP(SIZES[size], seed=0, backend="numba")
    benchmark.group = group(size)
    naive_step = naive_sweep_step(net, X, y, LR)
    naive_step()
    benchmark.pedantic(naive_step, rounds=50, iterations=1)
    benchmark.extra_info["naive sweep s"] = benchmark.stats.stats.min * net.n_params
