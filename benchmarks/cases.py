"""The asv suite's cases, kept here rather than imported from fastgrad, so that one suite times
the commits from before and after a change of fastgrad's layout or API (asv installs each
commit it times, but runs this suite as it is now): the networks, the naive sweep, a cold start,
and the two calls whose spelling changed — an optimizer's step (``optimizer.step(net, X, y)``
before the optimizers were split from their state, ``optimizer.bind(net).step(X, y)`` since)
and a training run stopped by a function (``callback=`` before the training run had
callbacks, ``callbacks=[OnEpochEnd(...)]`` since). fastgrad's own copy of the first three is
fastgrad/bench/cases.py, which ``fastgrad bench`` uses."""
import itertools
import os
import subprocess
import sys

import fastgrad

# tanh, digits' 64 inputs and 10 classes: 2,410, 19,210 and 52,510 weights with one hidden
# layer, 26,122 with two
NETWORKS = {"2k": [64, 32, 10], "20k": [64, 256, 10], "50k": [64, 700, 10],
            "2h-26k": [64, 128, 128, 10]}


class _Unbound:
    """An optimizer of the commits before BoundOptimizer, with its spelling."""

    def __init__(self, optimizer, net):
        self.optimizer, self.net = optimizer, net

    def step(self, X, y):
        return self.optimizer.step(self.net, X, y)

    def layer_step(self, X, y, layer):
        return self.optimizer.layer_step(self.net, X, y, layer)


def bind(optimizer, net):
    """``optimizer``'s steps on ``net``, ``.step(X, y)`` and ``.layer_step(X, y, layer)``, in
    either API."""
    return optimizer.bind(net) if hasattr(optimizer, "bind") else _Unbound(optimizer, net)


def stop_when(condition):
    """``fastgrad.train``'s keyword arguments that stop the run once ``condition()`` holds after
    an epoch, in either API."""
    if hasattr(fastgrad, "Callback"):
        from fastgrad.training import OnEpochEnd

        return {"callbacks": [OnEpochEnd(lambda run: condition())]}
    return {"callback": lambda epoch, history: condition()}


def naive_sweep_step(net, X, y, lr):
    """One step of the naive sequential sweep as a callable: a full forward and backward pass
    at the current weights, then the next coordinate (cyclically) moves."""
    coordinates = itertools.count()

    def step():
        j = next(coordinates) % net.n_params
        net.params[j] -= lr * net.gradient(X, y)[j]

    return step


COLD_START = """
import time, numpy as np
start = time.perf_counter()
import fastgrad
X, y = fastgrad.datasets.load_digits_standardised(64)
net = fastgrad.MLP([64, 32, 10], backend="{backend}")
optimizer = fastgrad.optim.SGD(0.1)
optimizer.bind(net).step(X, y) if hasattr(optimizer, "bind") else optimizer.step(net, X, y)
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
