"""Every kernel's results on fixed seeds, recorded once so that a change of shape (the kernel
interface, the Python layer) can be checked to leave them bit-identical.

    python tests/kernel_values.py          # record tests/data/kernel_values.npz (this machine)

``tests/test_kernel_values.py`` recomputes them and compares: bit for bit on the machine that
recorded them (BLAS and Numba's code generation depend on the CPU), to round-off elsewhere.
"""
import platform
from pathlib import Path

import numpy as np

import fastgrad
from fastgrad import optim

PATH = Path(__file__).parent / "data" / "kernel_values.npz"
BACKENDS = ("numpy", "numba", "cython")
# (name, sizes, activation, batchnorm, loss, dtype)
NETWORKS = [
    ("tanh-ce", (8, 6, 4), "tanh", False, "cross_entropy", "float64"),
    ("relu-bn-ce-2h", (8, 5, 4, 3), "relu", True, "cross_entropy", "float64"),
    ("sigmoid-mse", (8, 5, 2), "sigmoid", False, "mse", "float64"),
    ("identity-bn-bce", (8, 4, 1), "identity", True, "binary_cross_entropy", "float64"),
    ("tanh-bn-ce-f32", (8, 6, 4), "tanh", True, "cross_entropy", "float32"),
    ("tanh-ce-2h", (8, 6, 5, 3), "tanh", False, "cross_entropy", "float64"),
    ("sigmoid-mse-2h-f32", (8, 5, 4, 2), "sigmoid", False, "mse", "float32"),
]
# the objectives' options, with sample weights: (name, sizes, activation, batchnorm, loss,
# dtype, network options)
OBJECTIVES = [
    ("tanh-poisson-sum-alpha-w", (8, 6, 3), "tanh", False, "poisson", "float64",
     {"output_reduction": "sum", "alpha": 0.3}),
    ("relu-bn-multilabel-alpha-w-2h", (8, 5, 4, 3), "relu", True, "binary_cross_entropy",
     "float64", {"alpha": 0.1}),
    ("sigmoid-squared-alpha-w", (8, 5, 2), "sigmoid", False, "squared_error", "float64",
     {"alpha": 1.0}),
    ("tanh-ce-alpha-w-2h", (8, 6, 5, 3), "tanh", False, "cross_entropy", "float64",
     {"alpha": 0.05}),
    ("tanh-bn-multilabel-sum-w-f32", (8, 6, 3), "tanh", True, "binary_cross_entropy", "float32",
     {"output_reduction": "sum"}),
]


def machine():
    """What the bits depend on: the CPU that Numba compiles for and the BLAS numpy calls."""
    import numba.core.config  # noqa: F401
    from llvmlite import binding

    cpu = binding.get_host_cpu_name()
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return f"{platform.machine()} {cpu} {blas.get('name')} {blas.get('version')}"


def problem(spec, backend, seed=0, n_samples=30):
    """(net, X, y, sample weights or None) for a spec of NETWORKS or OBJECTIVES (which have
    weights)."""
    name, sizes, activation, batchnorm, loss, dtype, *options = spec
    rng = np.random.default_rng(seed)
    net = fastgrad.MLP(sizes, activation, batchnorm, loss, dtype, seed, backend,
                       **(options[0] if options else {}))
    net.params = net.params + rng.normal(0, 0.3, net.n_params).astype(net.dtype)
    X = rng.normal(size=(n_samples, sizes[0]))
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n_samples)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, n_samples if sizes[-1] == 1 else (n_samples, sizes[-1]))
    elif loss == "poisson":
        y = rng.poisson(1.5, (n_samples, sizes[-1])).astype(float)
    else:
        y = rng.normal(size=(n_samples, sizes[-1]))
    weight = None
    if options:
        weight = rng.uniform(0, 2, n_samples)
        weight[::7] = 0.0
    return net, X, y, weight


def optimizers():
    return {"sgd": lambda: optim.SGD(0.05), "momentum": lambda: optim.SGD(0.05, momentum=0.9),
            "nesterov": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
            "adam": lambda: optim.Adam(0.01, weight_decay=0.01),
            "rmsprop": lambda: optim.RMSprop(0.01, momentum=0.5)}


def train_runs(net, X, y, weight=None):
    """(label, history, network) for each approach."""
    runs = []
    for label, approach in (
            ("parallel", fastgrad.Parallel(optim.Adam(0.01), batch_size=8)),
            # (labelled by the orders' names when recorded: forward, backward, random)
            ("layerwise-forward", fastgrad.LayerWise(optim.SGD(0.05), order="cyclic")),
            ("layerwise-backward", fastgrad.LayerWise(optim.SGD(0.05), order="reverse")),
            ("layerwise-random", fastgrad.LayerWise(optim.SGD(0.05), order="permutation",
                                                    batch_size=10)),
            ("sequential", fastgrad.Sequential(order="permutation", lr=0.2, batch_size=10))):
        twin = net.copy()
        history = fastgrad.train(twin, X, y, approach, epochs=2, seed=3, sample_weight=weight)
        runs.append((label, history, twin))
    return runs


def compute(backends=BACKENDS):
    """name -> array: every kernel's output on every network and backend (names begin with
    the network's name, then the backend's)."""
    values = {}
    for spec in NETWORKS + OBJECTIVES:
        for backend in backends:
            key = f"{spec[0]}/{backend}"
            net, X, y, w = problem(spec, backend)
            point = net.point(X, y, sample_weight=w)
            values[f"{key}/loss"] = np.array(point.loss)
            values[f"{key}/logits"] = point.logits.copy()
            for method in ("backprop", "forward", "finite_difference"):
                values[f"{key}/gradient/{method}"] = point.gradient(method)
            coordinates = np.linspace(0, net.n_params - 1, 7).astype(int)
            values[f"{key}/loss_change"] = np.array(
                [point.loss_change(int(j), 0.05) for j in coordinates])
            values[f"{key}/coordinate_derivative"] = np.array(
                [point.coordinate_derivative(int(j)) for j in coordinates])
            values[f"{key}/predict_proba_or_output"] = (
                net.predict_proba(X) if net.loss_name in ("cross_entropy", "binary_cross_entropy")
                else net.forward(X))
            twin = net.copy()
            values[f"{key}/forward_training"] = twin.forward(X, training=True)
            values[f"{key}/running"] = np.concatenate([twin._running_mean, twin._running_var])
            for label, make in optimizers().items():
                twin = net.copy()
                opt = make().bind(twin)
                losses = [opt.step(X, y, sample_weight=w) for _ in range(3)]
                losses.append(opt.layer_step(X, y, 0, sample_weight=w))
                losses.append(opt.batch_loss(X, y, sample_weight=w))
                values[f"{key}/optim/{label}/losses"] = np.array(losses)
                values[f"{key}/optim/{label}/params"] = twin.params.copy()
                values[f"{key}/optim/{label}/state"] = opt.state.copy()
            for order in ("cyclic", "reverse", "permutation", "random", "greedy"):
                for rule in ("gradient", "newton"):
                    twin = net.copy()
                    n_steps = 15 if order == "greedy" else None
                    report = fastgrad.sweep(twin, X, y, order=order, lr=0.3, step=rule, seed=1,
                                            n_steps=n_steps, sample_weight=w)
                    values[f"{key}/sweep/{order}/{rule}/params"] = twin.params.copy()
                    values[f"{key}/sweep/{order}/{rule}/report"] = np.array(
                        [report.loss_before, report.loss, report.steps, report.raised,
                         report.flipped], dtype=np.float64)
                    values[f"{key}/sweep/{order}/{rule}/running"] = np.concatenate(
                        [twin._running_mean, twin._running_var])
            for label, history, twin in train_runs(net, X, y, w):
                values[f"{key}/train/{label}/params"] = twin.params.copy()
                values[f"{key}/train/{label}/history"] = np.array(
                    [history.loss, [np.nan if a is None else a for a in history.accuracy],
                     history.steps, history.raised,
                     [np.nan if f is None else f for f in history.flipped_fraction]],
                    dtype=np.float64)
    return values


if __name__ == "__main__":
    values = compute()
    PATH.parent.mkdir(exist_ok=True)
    np.savez_compressed(PATH, machine=np.array(machine()), **values)
    print(f"{len(values)} arrays recorded in {PATH} on {machine()}")
