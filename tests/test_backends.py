"""The Numba and Cython kernels against the numpy reference: every kernel, every architecture,
float64 to 1e-12 and float32 to 1e-5 (relative to each array's scale)."""
import numpy as np
import pytest

import fastgrad
from fastgrad._kernels import codes
from helpers import ARCHITECTURES, make_problem, objective_problem, relative_error

TOLERANCE = {"float64": 1e-12, "float32": 1e-5}
# deltas inside the small-change polynomials, between them and a moderate change, and beyond
DELTAS = (1e-7, -1e-3, 0.2, -3.0)


def evaluate(backend, hidden, activation, batchnorm, loss, dtype):
    net, X, y = make_problem(hidden, activation, batchnorm, loss, backend, dtype, seed=7,
                             n_samples=11)
    point = net.point(X, y)
    results = {
        "loss": point.loss, "logits": point.logits.copy(), "rowloss": point.rowloss,
        "G": point.G, "Q": point.Q, "activations": point.A,
        "eval_logits": net.forward(X), "train_logits": net.forward(X, training=True),
        "running_var": net._running_var.copy(),
        "backprop": point.gradient("backprop"), "forward": point.gradient("forward"),
        "finite_difference": point.gradient("finite_difference"),
    }
    for delta in DELTAS:
        results[f"change {delta}"] = np.array([point.loss_change(j, delta)
                                               for j in range(net.n_params)])
    return results


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("hidden, activation, batchnorm, loss", ARCHITECTURES)
def test_compiled_kernels_match_the_numpy_reference(backend, dtype, hidden, activation,
                                                    batchnorm, loss):
    expected = evaluate("numpy", hidden, activation, batchnorm, loss, dtype)
    actual = evaluate(backend, hidden, activation, batchnorm, loss, dtype)
    for name, value in expected.items():
        if isinstance(value, np.ndarray) and not name.startswith("change"):
            assert actual[name].dtype == np.dtype(dtype), name
        assert relative_error(actual[name], value) <= TOLERANCE[dtype], name


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_float32_tanh_is_within_6_ulp_and_keeps_nan(backend):
    from fastgrad._kernels import mlp_cython, mlp_numba, mlp_numpy

    x = np.concatenate([np.linspace(-12, 12, 200001), [0.0, -0.0, 1e-30, 9.0, -9.0]])
    x = x.astype(np.float32)
    tanh = {"numpy": mlp_numpy.tanh_single, "cython": mlp_cython.single_tanh,
            "numba": lambda v: np.array([mlp_numba.tanh_single(e) for e in v], np.float32)}
    got = tanh[backend](np.append(x, np.float32(np.nan)))
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(got[:-1] - exact) / np.spacing(np.maximum(np.abs(exact), 1e-30).astype(np.float32))
    assert ulps.max() <= 6
    assert np.isnan(got[-1])


def double_functions(backend, x):
    """{"exp", "tanh", "sigmoid"}: the compiled float64 functions of ``backend`` at every x,
    tanh and sigmoid through the activation loops of the forward pass; for "numpy", their
    numpy twins."""
    from fastgrad._kernels import mlp_cython, mlp_numba, mlp_numpy

    if backend == "numpy":
        return {"exp": mlp_numpy.exp_double(x), "tanh": mlp_numpy.tanh_double(x),
                "sigmoid": mlp_numpy.sigmoid_double(x)}
    if backend == "cython":
        return mlp_cython.double_functions(x)
    got = {name: np.empty_like(x) for name in ("exp", "tanh", "sigmoid")}
    mlp_numba.double_functions(x, got["exp"], got["tanh"], got["sigmoid"])
    return got


def ulp_grid():
    """A dense grid over the ranges that matter, the switch points of each function and their
    neighbours, ±0, subnormals and magnitudes up to overflow and beyond."""
    dense = np.linspace(-40, 40, 400001)
    tiny_to_huge = np.geomspace(5e-324, 1e300, 40001)
    switches = np.array([codes.TANH_DOUBLE_SMALL, codes.TANH_DOUBLE_CLAMP, 19.06, 0.5 * np.log(2),
                         np.log(2), 709.782712893384, 709.79, -708.39, -745.13, -745.14,
                         codes.EXP_MAX, codes.EXP_MIN, 36.7, 37.0])
    switches = np.concatenate([switches, np.nextafter(switches, np.inf),
                               np.nextafter(switches, -np.inf)])
    x = np.concatenate([dense, tiny_to_huge, switches, [0.0, np.finfo(float).tiny,
                                                        np.finfo(float).max]])
    return np.concatenate([x, -x])


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52,
                    reason="the exact values come from numpy's long double, not wider here")
@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_float64_exp_tanh_sigmoid_are_within_a_few_ulp(backend):
    """The branch-free float64 exp, tanh and sigmoid (codes.EXP_ROUND, TANH_DOUBLE_P) against
    the exact values (long double: 11 more bits), in units of the float64 result's last place:
    exp within 1.5, tanh within 1.5, sigmoid within 2.5 (libm's own: 0.5 to 1); results that
    are 0, ±1 or ±inf exactly where the exact ones round to them; -0 kept by tanh; NaN and ±inf
    come through as from libm."""
    x = ulp_grid()
    got = double_functions(backend, x)
    exact_long = x.astype(np.longdouble)
    with np.errstate(over="ignore", under="ignore"):
        exact = {"exp": np.exp(exact_long), "tanh": np.tanh(exact_long),
                 "sigmoid": 1 / (1 + np.exp(-exact_long))}
    bound = {"exp": 1.5, "tanh": 1.5, "sigmoid": 2.5}
    for name, value in exact.items():
        with np.errstate(over="ignore"):
            rounded = value.astype(np.float64)
        ordinary = np.isfinite(rounded) & (rounded != 0)
        ulps = (np.abs(got[name][ordinary].astype(np.longdouble) - value[ordinary])
                / np.spacing(np.abs(rounded[ordinary])).astype(np.longdouble))
        assert ulps.max() <= bound[name], (name, float(ulps.max()), x[ordinary][ulps.argmax()])
        # where the exact value rounds to 0 or overflows, so does the result
        assert np.array_equal(got[name][~ordinary], rounded[~ordinary]), name
    assert np.signbit(got["tanh"][x == 0]).sum() == np.signbit(x[x == 0]).sum()
    special = np.array([np.nan, np.inf, -np.inf])
    with np.errstate(over="ignore"):
        got = double_functions(backend, special)
        expected = {"exp": np.exp(special), "tanh": np.tanh(special),
                    "sigmoid": 1 / (1 + np.exp(-special))}
    for name, value in expected.items():
        assert np.array_equal(got[name], value, equal_nan=True), (name, got[name])


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_float64_exp_tanh_sigmoid_equal_their_numpy_twins_bit_for_bit(backend):
    """The same IEEE operations in the same order (no fused multiply-adds in either compiled
    backend): the same bits as mlp_numpy's exp_double, tanh_double and sigmoid_double."""
    x = np.concatenate([ulp_grid(), [np.nan, np.inf, -np.inf]])
    got, twin = double_functions(backend, x), double_functions("numpy", x)
    for name in ("exp", "tanh", "sigmoid"):
        assert np.array_equal(got[name], twin[name], equal_nan=True), name


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_small_change_polynomials_match_libm(backend):
    """The Taylor polynomials behind small changes agree with numpy's expm1, tanh, log1p to a
    few ulp on their whole domain (|x| <= 1/32; log1p to 1/16)."""
    x = np.concatenate([np.linspace(-1 / 32, 1 / 32, 20001), np.geomspace(1e-300, 1 / 32, 500)])
    if backend == "numba":
        from fastgrad._kernels import mlp_numba as k

        got = {name: np.array([f(v) for v in x]) for name, f in
               (("expm1", k.expm1_small), ("tanh", k.tanh_small))}
        got["log1p"] = np.array([k.log1p_small(v) for v in 2 * x])
    else:
        from fastgrad._kernels import mlp_cython as k

        got = k.small_change_functions(x)
    for name, reference in (("expm1", np.expm1(x)), ("tanh", np.tanh(x)),
                            ("log1p", np.log1p(2 * x))):
        ulps = np.abs(got[name] - reference) / np.spacing(np.abs(reference))
        assert np.nanmax(ulps) <= 4, name


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_a_whole_gradient_on_real_data_matches_the_reference(backend):
    """64-16-10 tanh on digits: all three methods agree with the numpy backend."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:100] / 16.0, y[:100]
    reference = fastgrad.MLP([64, 16, 10], backend="numpy").point(X, y)
    point = fastgrad.MLP([64, 16, 10], backend=backend).point(X, y)
    for method in ("backprop", "forward", "finite_difference"):
        assert relative_error(point.gradient(method), reference.gradient(method)) < 1e-12


ONE_OF_EACH = """
import numpy as np, fastgrad
from fastgrad._kernels import mlp_numba
X, y = fastgrad.datasets.load_digits_standardised(40)
for batchnorm in (False, True):
    net = fastgrad.MLP([64, 8, 10], batchnorm=batchnorm, seed=0, backend="numba")
    fastgrad.optim.SGD(0.1).bind(net).step(X, y)
    fastgrad.train(net, X, y, fastgrad.Parallel(batch_size=16), epochs=1)
    net.gradient(X, y), net.gradient(X, y, method="forward"), net.forward(X, training=True)
    fastgrad.sweep(net, X, y)
print(len(mlp_numba.forward.signatures), len(mlp_numba.backprop.signatures))
"""


def test_numba_compiles_forward_and_backprop_once_per_dtype(tmp_path):
    """Kernels that call forward and backprop pass typed flags, not literals, so that the
    training step, the epoch, the sweep and Python's own calls share one compilation (each is
    seconds of a first run). In a fresh process, run outside the checkout so that the installed
    package is the one imported."""
    import subprocess
    import sys

    output = subprocess.run([sys.executable, "-c", ONE_OF_EACH], capture_output=True, text=True,
                            cwd=tmp_path)
    assert output.returncode == 0, output.stderr
    assert output.stdout.split() == ["1", "1"]


def test_numba_kernels_are_cached_and_never_blanket_fastmath():
    """cache=True everywhere; fastmath only as flags that leave NaN and inf alone."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    from fastgrad._kernels import incremental_numba, mlp_numba, parallel_numba, sequential_numba

    modules = (mlp_numba, incremental_numba, parallel_numba, sequential_numba)
    kernels = [value for module in modules for value in vars(module).values()
               if isinstance(value, CPUDispatcher) and value.__module__ == module.__name__]
    assert len(kernels) > 50
    assert any(kernel.targetoptions.get("fastmath") for kernel in kernels), \
        "the flag-set kernels are among those checked"
    for kernel in kernels:
        assert not isinstance(kernel._cache, NullCache), kernel.__name__
        fastmath = kernel.targetoptions.get("fastmath", False)
        assert fastmath is not True and set(fastmath or ()) <= {"contract", "reassoc"}, kernel


def evaluate_objective(backend, dtype, loss, reduction, n_out, alpha, weighted, hidden,
                       batchnorm):
    """What every kernel computes for one of the objectives' options: the point, the three
    gradients, loss changes, optimizer steps, a sweep per step rule and a minibatch epoch."""
    net, X, y, w = objective_problem(loss, reduction, n_out, alpha, weighted, hidden, "sigmoid",
                                     batchnorm, backend, seed=5, dtype=dtype)
    point = net.point(X, y, sample_weight=w)
    results = {"loss": point.loss, "G": point.G, "Q": point.Q, "rowloss": point.rowloss}
    for method in ("backprop", "forward", "finite_difference"):
        results[method] = point.gradient(method)
    for delta in DELTAS:
        results[f"change {delta}"] = np.array([point.loss_change(j, delta)
                                               for j in range(net.n_params)])
    twin = net.copy()
    # (SGD: Adam would turn the round-off gradient of a bias before BatchNorm into whole steps)
    opt = fastgrad.optim.SGD(0.05, momentum=0.9).bind(twin)
    results["steps"] = [opt.step(X, y, sample_weight=w) for _ in range(3)]
    results["step params"] = twin.params.copy()
    for rule in ("gradient", "newton"):
        twin = net.copy()
        report = fastgrad.sweep(twin, X, y, order="reverse", lr=0.3, step=rule, sample_weight=w)
        results[f"sweep {rule}"] = twin.params.copy()
        # (not the raised and flipped counts: a bias before BatchNorm has a derivative that is
        # round-off, whose sign differs between backends)
        results[f"sweep {rule} losses"] = [report.loss_before, report.loss]
    twin = net.copy()
    history = fastgrad.train(twin, X, y, fastgrad.Parallel(fastgrad.optim.SGD(0.1, momentum=0.5),
                                                           batch_size=4),
                             epochs=2, sample_weight=w)
    results["epochs"] = twin.params.copy()
    results["epoch losses"] = history.loss
    return results


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("alpha, weighted", [(0.0, True), (0.5, False), (0.5, True)],
                         ids=["weights", "alpha", "alpha-weights"])
@pytest.mark.parametrize("loss, reduction, n_out", [
    ("cross_entropy", "mean", 3), ("mse", "sum", 2), ("squared_error", "mean", 3),
    ("binary_cross_entropy", "mean", 1), ("binary_cross_entropy", "sum", 3),
    ("poisson", "mean", 3), ("poisson", "sum", 1)])
@pytest.mark.parametrize("hidden, batchnorm", [((4,), False), ((4, 3), True)], ids=["1h", "2h-bn"])
def test_compiled_objectives_match_the_numpy_reference(hidden, batchnorm, loss, reduction, n_out,
                                                       alpha, weighted, backend, dtype):
    case = (loss, reduction, n_out, alpha, weighted, hidden, batchnorm)
    expected = evaluate_objective("numpy", dtype, *case)
    actual = evaluate_objective(backend, dtype, *case)
    for name, value in expected.items():
        assert relative_error(actual[name], value) <= TOLERANCE[dtype], name


def run_every_entry_point(bundle):
    """Every Numba entry point that takes bundles, called in turn on a fresh 5-4-3 BatchNorm
    network with each bundle passed through ``bundle``; what each returns and writes."""
    from fastgrad._kernels import bundles, codes
    from fastgrad._kernels import incremental_numba as incremental
    from fastgrad._kernels import mlp_numba as mlp
    from fastgrad._kernels import parallel_numba as parallel
    from fastgrad._kernels import sequential_numba as sequential
    from fastgrad.model import Workspace

    net, X, y = make_problem((4,), batchnorm=True, backend="numba", seed=3)
    work = Workspace(net, len(X))
    T = np.eye(3)[y]
    network = bundle(bundles.Network(*net.kernel_network))
    cache = bundle(bundles.Cache(*work.cache(X)))
    state = bundle(bundles.LossState(*work.loss_state(T)))
    scratch = bundle(bundles.Scratch(*work.scratch))
    running = bundle(bundles.RunningStats(*net.kernel_running))
    hyper = np.zeros(codes.N_HYPER)
    hyper[codes.LR], hyper[codes.SGD_MOMENTUM] = 0.1, 0.9
    optimizer = bundle(bundles.OptimizerState(
        codes.SGD, hyper, np.zeros(2, dtype=np.int64), np.zeros((1, net.n_params)),
        np.zeros((2, net.n_params))))
    plan = bundle(bundles.SweepPlan(np.arange(net.n_params), False, codes.NEWTON, 0.5))
    grad, grad0 = np.zeros(net.n_params), np.zeros(net.n_params)
    results = []
    mlp.forward(network, cache, True)
    results += [mlp.loss(network, cache, state), work.A.copy(), work.Q.copy()]
    mlp.backprop(network, cache, state, grad, scratch, 0)
    results.append(grad.copy())
    mlp.update_running_stats(network, cache, running)
    results.append(net._running_var.copy())
    results += [incremental.coordinate_derivative(j, network, cache, state, scratch) for j in (0, 7)]
    results += [incremental.loss_change(j, 0.01, network, cache, state, scratch) for j in (0, 7)]
    incremental.forward_mode_gradient(network, cache, state, grad, scratch)
    results.append(grad.copy())
    incremental.finite_difference_gradient(network, cache, state, 1e-6, grad, scratch)
    results.append(grad.copy())
    results += [parallel.train_step(network, cache, state, optimizer, grad, scratch, running, 0, 1)
                for _ in range(2)]
    results += [parallel.apply_update(network, optimizer, grad, 1, 1), net.params.copy()]
    results += [sequential.sweep(network, cache, state, plan, grad0, grad, scratch),
                net.params.copy(), grad0.copy()]
    return results


def test_numba_entry_points_take_namedtuples_and_plain_tuples_alike():
    """fastgrad hands Numba plain tuples (fastgrad/model/backends.bundle_type); a training script
    may pass the namedtuples: the same kernels, bit for bit the same results."""
    as_namedtuples = run_every_entry_point(lambda bundle: bundle)
    as_tuples = run_every_entry_point(tuple)
    assert len(as_namedtuples) == len(as_tuples) == 18
    for named, plain in zip(as_namedtuples, as_tuples):
        np.testing.assert_array_equal(np.asarray(named, dtype=float), np.asarray(plain, dtype=float))
