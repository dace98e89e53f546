"""The cases and the clock every benchmark harness shares — ``fastgrad bench``, the asv suite
(benchmarks/suite.py) and the pytest benchmarks (benchmarks/test_*.py): one table of network
sizes with one set of names, the peers (a PyTorch eager step, a ``jax.jit`` step, the naive
sequential sweep), the BLAS peak and the cold start of a fresh process.

Measuring on a shared machine: time each side in its own block of calls (BLAS and OpenMP thread
pools keep spinning after a call and slow whatever runs next) and report the best of a few.
"""
import itertools
import os
import subprocess
import sys
import time

import numpy as np


# the networks every harness times, named by their number of weights (tanh, digits' 64 inputs
# and 10 classes): 2,410, 19,210 and 52,510 with one hidden layer, 26,122 with two
NETWORKS = {"2k": [64, 32, 10], "20k": [64, 256, 10], "50k": [64, 700, 10],
            "2h-26k": [64, 128, 128, 10]}
# the parallel step's cases: (network, batch size; None = all 1,797 digits)
PARALLEL_CASES = {"minibatch 64-32-10, batch 64": ("2k", 64),
                  "full batch 64-256-10": ("20k", None)}
LR = 0.01
# a whole minibatch epoch: SGD(LR) over all 1,797 digits in a fresh permutation, batches of 64
# (28 of them and one of 5), 64-32-10 tanh, float32
EPOCH_CASE = ("2k", 64)
# the whole-training case: Adam(1e-3) with batches of 200 for 100 epochs on the 1,347 training
# digits (the stratified 75/25 split), a 64-100-10 relu network in float64, each epoch's
# training loss (and, where the loop reports it, accuracy) computed as it goes
TRAINING = {"hidden": 100, "activation": "relu", "lr": 1e-3, "batch_size": 200, "epochs": 100}


def best_time(call, repeats=3, budget=1.0):
    """The shortest of up to ``repeats`` timed calls, stopping once ``budget`` seconds are spent."""
    times = []
    while len(times) < repeats and sum(times) < budget:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(call, repeats=20, budget=2.0):
    """best_time after one warming call (which compiles and allocates)."""
    call()
    return best_time(call, repeats, budget)


def naive_sweep_step(net, X, y, lr):
    """One step of the naive sequential sweep as a callable: a full forward and backward pass
    at the current weights, then the next coordinate (cyclically) moves. A naive sweep is
    n_params of these; the real sweep is tested against it (tests/torch_oracle.py) and timed
    against it here."""
    coordinates = itertools.count()

    def step():
        j = next(coordinates) % net.n_params
        net.params[j] -= lr * net.gradient(X, y)[j]

    return step


# ---------------------------------------------------------------- peers
def torch_step(sizes, X, y, lr=LR):
    """One PyTorch eager SGD step of the same tanh network as a callable, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out).to(dtype), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    X, y = torch.as_tensor(X), torch.as_tensor(y)

    def step(X=X, y=y):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        return loss

    step.X, step.y = X, y  # the data as tensors, for loops over its batches
    return step


def jax_step(net, X, y, lr=LR):
    """One ``jax.jit`` SGD step of net's tanh network as a callable, or None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    jnp = jax.numpy
    params = [jnp.asarray(a) for layer in net.layers for a in (layer.W, layer.b)]
    X, y = jnp.asarray(X), jnp.asarray(y)

    loss = jax_loss()

    @jax.jit
    def step(params, X, y):
        value, grads = jax.value_and_grad(loss)(params, X, y)
        return [p - lr * g for p, g in zip(params, grads)], value

    state = {"params": params}

    def run():
        state["params"], value = step(state["params"], X, y)
        return value.block_until_ready()

    return run


def jax_loss():
    """The mean cross-entropy of a tanh network [W0, b0, W1, b1, ...] in JAX."""
    import jax
    jnp = jax.numpy

    def loss(params, X, y):
        a = X
        for l in range(0, len(params) - 2, 2):
            a = jnp.tanh(a @ params[l] + params[l + 1])
        logits = a @ params[-2] + params[-1]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(len(y)), y])

    return loss


def jax_sgd_step(lr=LR):
    """SGD's update of the JAX tanh network's parameters on one batch (to be traced by jit)."""
    import jax

    loss = jax_loss()

    def step(params, X, y):
        grads = jax.grad(loss)(params, X, y)
        return [p - lr * g for p, g in zip(params, grads)]

    return step


def step_flops(sizes, N):
    """2 x the multiply-adds of a step's matrix products: a @ W and a.T @ delta per layer,
    delta @ W.T for every layer but the first."""
    products = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * N * (2 * sum(products) + sum(products[1:]))


def blas_peak(n):
    """GFLOP/s of a float32 n x n numpy matrix product."""
    a, b = (np.random.default_rng(0).normal(size=(n, n)).astype(np.float32) for _ in range(2))
    out = np.empty_like(a)
    np.dot(a, b, out)
    return 2 * n ** 3 / best_time(lambda: np.dot(a, b, out), repeats=5) / 1e9


COLD_START = """
import time, numpy as np
start = time.perf_counter()
import fastgrad
X, y = fastgrad.datasets.load_digits_standardised(64)
net = fastgrad.MLP([64, 32, 10], backend="{backend}")
fastgrad.optim.SGD(0.1).bind(net).step(X, y)
net.gradient(X, y, method="forward")
fastgrad.sweep(net, X, y)
print(time.perf_counter() - start)
"""


def cold_start_seconds(backend, numba_cache_dir):
    """Seconds from a fresh interpreter's ``import fastgrad`` to the end of a first step, a
    forward-mode gradient and a sweep in ``backend``, Numba caching in numba_cache_dir."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache_dir)}
    output = subprocess.run([sys.executable, "-c", COLD_START.format(backend=backend)],
                            env=env, capture_output=True, text=True, check=True)
    return float(output.stdout.split()[-1])




# ---------------------------------------------------------------- whole training runs
def fastgrad_training(backend, X, y):
    """``fastgrad.train`` on the TRAINING case as a callable (a fresh network each call)."""
    from ..approaches import Parallel
    from ..model import MLP
    from ..optim import Adam
    from ..training import train

    case = TRAINING

    def run():
        net = MLP([X.shape[1], case["hidden"], 10], case["activation"], backend=backend)
        approach = Parallel(Adam(case["lr"]), case["batch_size"], count_raised=False)
        return train(net, X, y, approach, epochs=case["epochs"])

    return run


def sklearn_training(X, y):
    """scikit-learn's MLPClassifier on the TRAINING case as a callable (no L2 penalty, no early
    stopping: every epoch runs; it records each epoch's training loss)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    case = TRAINING

    def run():
        model = MLPClassifier((case["hidden"],), case["activation"], solver="adam", alpha=0.0,
                              batch_size=case["batch_size"], learning_rate_init=case["lr"],
                              max_iter=case["epochs"], tol=0.0, n_iter_no_change=case["epochs"],
                              random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, y)

    return run


def torch_training(X, y):
    """A PyTorch eager loop on the TRAINING case in X's dtype as a callable, or None without
    torch: each epoch a fresh permutation, Adam steps on its batches, then the training loss
    and accuracy in one forward pass."""
    try:
        import torch
    except ImportError:
        return None
    case = TRAINING
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)

    def run():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], case["hidden"]),
                                    torch.nn.ReLU(), torch.nn.Linear(case["hidden"], 10))
        model = model.to(dtype)
        optimizer = torch.optim.Adam(model.parameters(), lr=case["lr"])
        losses = []
        for _ in range(case["epochs"]):
            for batch in torch.randperm(len(Xt)).split(case["batch_size"]):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(Xt[batch]), yt[batch]).backward()
                optimizer.step()
            with torch.no_grad():
                logits = model(Xt)
                losses.append((torch.nn.functional.cross_entropy(logits, yt).item(),
                               (logits.argmax(1) == yt).double().mean().item()))
        return losses

    return run


# ---------------------------------------------------------------- whole minibatch epochs
def fastgrad_epoch(backend, X, y, batch_size):
    """One epoch of the parallel approach (SGD(LR), fresh permutation, batches of batch_size)
    as a callable: one kernel call; no evaluation."""
    from ..approaches import Parallel, TrainingData
    from ..model import MLP, Workspaces
    from ..optim import SGD

    net = MLP(NETWORKS[EPOCH_CASE[0]], dtype=X.dtype.name, backend=backend)
    approach = Parallel(SGD(LR), batch_size, count_raised=False)
    X, T, _ = net.check_batch(X, y)
    workspaces = Workspaces(net)
    data = TrainingData(X, y, T, workspaces)
    approach.prepare(net, workspaces)
    rng = np.random.default_rng(0)
    return lambda: approach.run_epoch(net, data, rng)


def torch_epoch(X, y, batch_size):
    """The same epoch as a PyTorch eager loop over a fresh permutation's batches, or None
    without torch."""
    try:
        import torch
    except ImportError:
        return None
    step = torch_step(NETWORKS[EPOCH_CASE[0]], X, y)
    X, y = step.X, step.y

    def run():
        for batch in torch.randperm(len(X)).split(batch_size):
            step(X[batch], y[batch])

    return run


def jax_epoch(X, y, batch_size):
    """The same epoch as one ``jax.jit`` call (``lax.scan`` over the full batches of a fresh
    permutation, then the last, smaller one), or None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    from ..model import MLP

    jnp = jax.numpy
    net = MLP(NETWORKS[EPOCH_CASE[0]], dtype=X.dtype.name)
    params = [jnp.asarray(a) for layer in net.layers for a in (layer.W, layer.b)]
    n_full = len(X) // batch_size
    X, y = jnp.asarray(X), jnp.asarray(y)
    sgd = jax_sgd_step()

    @jax.jit
    def epoch(params, order):
        Xs, ys = X[order], y[order]
        full = n_full * batch_size
        batches = (Xs[:full].reshape(n_full, batch_size, -1), ys[:full].reshape(n_full, -1))
        params, _ = jax.lax.scan(lambda p, batch: (sgd(p, *batch), None), params, batches)
        return sgd(params, Xs[full:], ys[full:]) if full < len(order) else params

    state = {"params": params, "rng": np.random.default_rng(0)}

    def run():
        order = jnp.asarray(state["rng"].permutation(len(y)))
        state["params"] = epoch(state["params"], order)
        jax.block_until_ready(state["params"])

    return run
