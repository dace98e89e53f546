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
from fastgrad.optim import SGD

LR = 0.01
CASES = {
    "minibatch step 64-32-10, batch 64, float32": ([64, 32, 10], 64),
    "full-batch step 64-256-10, 1797 digits, float32": ([64, 256, 10], None),
}


def step_flops(sizes, N):
    """Multiply-adds x 2 of a step's matrix products: forward a @ W per layer, backward
    a.T @ delta per layer and delta @ W.T for every layer but the first."""
    products = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * N * (2 * sum(products) + sum(products[1:]))


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
    torch = pytest.importorskip("torch")
    group, sizes, X, y = case
    benchmark.group = group
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    X, y = torch.as_tensor(X), torch.as_tensor(y)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        return loss

    step()
    benchmark(step)


def test_jax_jit_step(benchmark, case):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    group, sizes, X, y = case
    benchmark.group = group
    net = fastgrad.MLP(sizes, "tanh", dtype="float32")
    params = [jnp.asarray(a) for layer in net.layers for a in (layer.W, layer.b)]
    X, y = jnp.asarray(X), jnp.asarray(y)

    def loss(params, X, y):
        a = X
        for l in range(0, len(params) - 2, 2):
            a = jnp.tanh(a @ params[l] + params[l + 1])
        logits = a @ params[-2] + params[-1]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(len(y)), y])

    @jax.jit
    def step(params, X, y):
        value, grads = jax.value_and_grad(loss)(params, X, y)
        return [p - LR * g for p, g in zip(params, grads)], value

    state = {"params": params}

    def run():
        state["params"], value = step(state["params"], X, y)
        return value.block_until_ready()

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
