"""pytest-benchmark: one training step of the parallel approach (forward, loss, backprop, SGD
update), fastgrad side by side with PyTorch eager and ``jax.jit``, in float32 on standardised
digits; and a large float32 matrix product, the machine's BLAS peak, against which the
full-batch step's FLOP rate is reported. Peers that are not installed are skipped. Run:

    pip install '.[bench]'
    pytest benchmarks -o addopts="" --benchmark-only --benchmark-group-by=group -k step
"""
import numpy as np
import pytest

import fastgrad
from fastgrad.datasets import load_digits_standardised
from fastgrad.bench.cases import LR, NETWORKS, PARALLEL_CASES, jax_step, step_flops, torch_step
from fastgrad.optim import SGD

@pytest.fixture(scope="module", params=list(PARALLEL_CASES), ids=["minibatch", "fullbatch"])
def case(request):
    size, N = PARALLEL_CASES[request.param]
    sizes = NETWORKS[size]
    X, y = load_digits_standardised(N)
    return f"{request.param}, float32", sizes, X.astype(np.float32), y


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_fastgrad_step(benchmark, case, backend):
    group, sizes, X, y = case
    benchmark.group = group
    net = fastgrad.MLP(sizes, "tanh", dtype="float32", backend=backend)
    optimizer = SGD(LR).bind(net)
    optimizer.step(X, y)  # warm: compiles, allocates the buffers
    benchmark(optimizer.step, X, y)
    seconds = benchmark.stats.stats.min
    benchmark.extra_info["GFLOP/s"] = step_flops(sizes, len(X)) / seconds / 1e9


def test_torch_eager_step(benchmark, case):
    pytest.importorskip("torch")
    group, sizes, X, y = case
    benchmark.group = group
    step = torch_step(sizes, X, y, LR)
    step()
    benchmark(step)


def test_jax_jit_step(benchmark, case):
    pytest.importorskip("jax")
    group, sizes, X, y = case
    benchmark.group = group
    run = jax_step(fastgrad.MLP(sizes, "tanh", dtype="float32"), X, y, LR)
    run()
    benchmark(run)


@pytest.mark.benchmark(group="BLAS peak: float32 2048 x 2048 matrix product")
def test_blas_peak(benchmark):
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(2048, 2048)).astype(np.float32) for _ in range(2))
    out = np.empty_like(a)
    np.dot(a, b, out)
    benchmark(np.dot, a, b, out)
    benchmark.extra_info["GFLOP/s"] = 2 * 2048 ** 3 / benchmark.stats.stats.min / 1e9
