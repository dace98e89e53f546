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
from fastgrad.cli import load_digits_standardised
from fastgrad.bench import jax_step, step_flops, torch_step
from fastgrad.optim import SGD

LR = 0.01
CASES = {
    "minibatch step 64-32-10, batch 64, float32": ([64, 32, 10], 64),
    "full-batch step 64-256-10, 1797 digits, float32": ([64, 256, 10], None),
}


@pytest.fixture(scope="module", params=list(CASES), ids=["minibatch", "fullbatch"])
def case(request):
    sizes, N = CASES[request.param]
    X, y = load_digits_standardised(N)
    return request.param, sizes, X.astype(np.float32), y


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_fastgrad_step(benchmark, case, backend):
    group, sizes, X, y = case
    benchmark.group = group
    net = fastgrad.MLP(sizes, "tanh", dtype="float32", backend=backend)
    optimizer = SGD(LR)
    optimizer.step(net, X, y)  # warm: compiles, allocates the buffers
    benchmark(optimizer.step, net, X, y)
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
