"""The airspeed-velocity suite: the parallel approach against the sequential one as networks
grow from about 2,400 to over 50,000 weights (one and two hidden layers), on scikit-learn's
standardised digits. Every jitted kernel is warmed in ``setup`` (a small call compiles it or
loads it from Numba's cache), so no ``time_`` benchmark times the compiler; ``ColdStart``
times the compiler and the Cython backend's first call on purpose, in fresh processes.

    asv run --python=same --quick        # against the installed fastgrad, each benchmark once
    asv continuous main HEAD             # two commits, each built and installed by asv
"""
import tempfile
import time


import fastgrad
from fastgrad.datasets import load_digits_standardised
from fastgrad.optim import SGD

from .cases import NETWORKS, bind, cold_start_seconds, naive_sweep_step, stop_when

# about 2k, 20k and 50k weights with one hidden layer, and 26k with two
SIZES = NETWORKS
BACKENDS = ["numba", "cython"]
LR = 0.1


def digits(n_samples, dtype="float64"):
    X, y = load_digits_standardised(n_samples)
    return X.astype(dtype), y


def warm(net, X, y):
    """Compile (or load from the cache) every kernel a benchmark calls, on a few samples."""
    twin = net.copy()
    bind(SGD(LR), twin).step(X[:16], y[:16])
    bind(SGD(LR), twin).layer_step(X[:16], y[:16], 0)
    fastgrad.sweep(twin, X[:16], y[:16], lr=LR)


class Parallel:
    """One epoch of the parallel approach: full batch (one step) and minibatches of 64."""

    params = (list(SIZES), [300, 1797], ["float64", "float32"], BACKENDS)
    param_names = ["size", "samples", "dtype", "backend"]

    def setup(self, size, samples, dtype, backend):
        self.X, self.y = digits(samples, dtype)
        self.net = fastgrad.MLP(SIZES[size], dtype=dtype, backend=backend, seed=0)
        warm(self.net, self.X, self.y)
        self.optimizer = bind(SGD(LR), self.net)
        self.optimizer.step(self.X, self.y)  # its workspaces, cached per batch size
        self.optimizer.step(self.X[:64], self.y[:64])

    def time_epoch_full_batch(self, *params):
        self.optimizer.step(self.X, self.y)

    def time_epoch_minibatch(self, *params):
        for first in range(0, len(self.X), 64):
            self.optimizer.step(self.X[first:first + 64], self.y[first:first + 64])

    def time_layerwise_sweep(self, *params):
        for layer in range(len(self.net.layers)):
            self.optimizer.layer_step(self.X, self.y, layer)


class Sequential:
    """One sequential sweep (every weight stepped once, each at the current weights)."""

    params = (list(SIZES), [300, 1797], ["float64", "float32"], ["cyclic", "permutation"],
              BACKENDS)
    param_names = ["size", "samples", "dtype", "order", "backend"]
    timeout = 300

    def setup(self, size, samples, dtype, order, backend):
        self.X, self.y = digits(samples, dtype)
        self.net = fastgrad.MLP(SIZES[size], dtype=dtype, backend=backend, seed=0)
        warm(self.net, self.X, self.y)

    def time_sweep(self, size, samples, dtype, order, backend):
        fastgrad.sweep(self.net, self.X, self.y, order=order, lr=LR, seed=0)


class Gradients:
    """The three gradient methods at the current point, float64, all digits."""

    params = (["2k", "20k"], ["backprop", "forward", "finite_difference"], BACKENDS)
    param_names = ["size", "method", "backend"]

    def setup(self, size, method, backend):
        self.X, self.y = digits(None)
        net = fastgrad.MLP(SIZES[size], backend=backend, seed=0)
        self.point = net.point(self.X, self.y)
        net.copy().point(self.X[:16], self.y[:16]).gradient(method)  # warm

    def time_gradient(self, size, method, backend):
        self.point.gradient(method)


def seconds_of(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Ratios:
    """The sequential approach's cost in units of the parallel one, and its incremental
    re-evaluation's speed-up over the naive sweep (a full forward and backward pass before
    every single-coordinate step; 30 such steps timed and scaled to n_params), Numba, float64,
    all digits."""

    params = (list(SIZES),)
    param_names = ["size"]
    timeout = 300

    def setup(self, size):
        self.X, self.y = digits(None)
        self.net = fastgrad.MLP(SIZES[size], seed=0, backend="numba")
        warm(self.net, self.X, self.y)
        optimizer = bind(SGD(LR), self.net.copy())
        optimizer.step(self.X, self.y)
        self.step = min(seconds_of(lambda: optimizer.step(self.X, self.y)) for _ in range(5))
        self.sweep = seconds_of(lambda: fastgrad.sweep(self.net.copy(), self.X, self.y, lr=LR))

    def track_sweep_over_epoch(self, size):
        return self.sweep / self.step

    track_sweep_over_epoch.unit = "full-batch epochs"

    def track_speedup_over_naive(self, size):
        naive_step = naive_sweep_step(self.net.copy(), self.X, self.y, LR)
        per_step = min(seconds_of(naive_step) for _ in range(30))
        return per_step * self.net.n_params / self.sweep

    track_speedup_over_naive.unit = "x"


class LossReached:
    """The loss each approach reaches on 64-32-10 (float64, all digits, Numba) after a fixed
    budget of epochs (3) and of seconds (1): parallel SGD minibatches of 64, layer-wise
    full-batch steps, sequential cyclic sweeps, all at lr 0.1."""

    params = (["parallel", "layerwise", "sequential"],)
    param_names = ["approach"]

    def setup(self, approach):
        self.X, self.y = digits(None)
        self.net = fastgrad.MLP([64, 32, 10], seed=0, backend="numba")
        warm(self.net, self.X, self.y)

    def train(self, approach, **budget):
        net = self.net.copy()
        approach = {"parallel": fastgrad.Parallel(SGD(LR), batch_size=64, count_raised=False),
                    "layerwise": fastgrad.LayerWise(SGD(LR), count_raised=False),
                    "sequential": fastgrad.Sequential(lr=LR)}[approach]
        return fastgrad.train(net, self.X, self.y, approach, **budget).loss[-1]

    def track_loss_after_3_epochs(self, approach):
        return self.train(approach, epochs=3)

    track_loss_after_3_epochs.unit = "J"

    def track_loss_after_1_second(self, approach):
        start = time.perf_counter()
        return self.train(approach, epochs=10 ** 6,
                          **stop_when(lambda: time.perf_counter() - start > 1.0))

    track_loss_after_1_second.unit = "J"


class Memory:
    """Peak memory (the whole process's resident set, data and imports included) of a sweep
    at the largest size: its extra memory is O(N x width) — transposed copies of the cached
    point — never O(n_params²)."""

    def setup(self):
        self.X, self.y = digits(None)
        self.net = fastgrad.MLP(SIZES["50k"], seed=0, backend="numba")
        warm(self.net, self.X, self.y)

    def peakmem_sweep_50k(self):
        fastgrad.sweep(self.net, self.X, self.y, lr=LR)


class ColdStart:
    """A fresh process's import, first step, forward-mode gradient and sweep (fastgrad.bench):
    Numba with an empty cache (the compiler's cost), and the Cython backend."""

    timeout = 600
    number = 1
    repeat = 1

    def track_numba_cold_compile(self):
        with tempfile.TemporaryDirectory() as cache:
            return cold_start_seconds("numba", cache)

    track_numba_cold_compile.unit = "seconds"

    def track_cython_first_call(self):
        with tempfile.TemporaryDirectory() as cache:
            return cold_start_seconds("cython", cache)

    track_cython_first_call.unit = "seconds"
