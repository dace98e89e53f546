"""Properties over random small architectures and inputs (hypothesis): the three gradient
methods agree, the three backends agree, and the incremental loss change equals a full
re-evaluation of the moved network."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgrad
from helpers import relative_error

architectures = st.fixed_dictionaries({
    "hidden": st.lists(st.integers(1, 6), min_size=1, max_size=3),
    "n_features": st.integers(1, 6),
    "n_classes": st.integers(2, 5),
    "n_samples": st.integers(2, 12),
    "activation": st.sampled_from(["tanh", "relu", "sigmoid", "identity"]),
    "loss": st.sampled_from(["cross_entropy", "mse", "binary_cross_entropy"]),
    "batchnorm": st.booleans(),
    "scale": st.sampled_from([0.1, 1.0, 3.0]),
    "seed": st.integers(0, 2 ** 32 - 1),
})


def build(spec, backend="numpy", dtype="float64"):
    rng = np.random.default_rng(spec["seed"])
    n_out = 1 if spec["loss"] == "binary_cross_entropy" else spec["n_classes"]
    sizes = [spec["n_features"], *spec["hidden"], n_out]
    net = fastgrad.MLP(sizes, spec["activation"], spec["batchnorm"], spec["loss"], dtype,
                       seed=spec["seed"] % 1000, backend=backend)
    net.params = net.params + rng.normal(0, 0.5, net.n_params)
    X = spec["scale"] * rng.normal(size=(spec["n_samples"], spec["n_features"]))
    if spec["loss"] == "cross_entropy":
        y = rng.integers(0, n_out, spec["n_samples"])
    elif spec["loss"] == "binary_cross_entropy":
        y = rng.integers(0, 2, spec["n_samples"])
    else:
        y = rng.normal(size=(spec["n_samples"], n_out))
    return net, X, y


# (the examples are the same on every run unless HYPOTHESIS_PROFILE=explore: see tests/conftest.py)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(architectures)
def test_forward_mode_equals_backprop(spec):
    for backend in ("numpy", "numba", "cython"):
        net, X, y = build(spec, backend)
        point = net.point(X, y)
        assert relative_error(point.gradient("forward"), point.gradient("backprop")) < 1e-10


@SETTINGS
@given(architectures, st.sampled_from(["float64", "float32"]))
def test_backends_agree(spec, dtype):
    """1e-12 in float64 and 1e-5 in float32, times BatchNorm's largest 1/std where that exceeds
    1 (dividing by a small batch standard deviation magnifies round-off by as much); in float32
    also no further apart than float32 round-off moves the reference itself away from its
    float64 value (BatchNorm over two nearly equal samples, say). Finite differences, a
    difference quotient whose round-off can outweigh a tiny gradient, are held to being as
    close to the exact (backprop, float64) gradient as the reference's finite differences are."""
    reference = build(spec, "numpy", dtype)
    ref_point = reference[0].point(*reference[1:])
    exact = build(spec, "numpy", "float64")
    exact_point = exact[0].point(*exact[1:])
    exact_gradient = exact_point.gradient("backprop")
    conditioning = max(1.0, exact_point.istd.max())
    for method in ("backprop", "forward", "finite_difference"):
        expected = ref_point.gradient(method)
        own_error = relative_error(expected, exact_point.gradient(method))
        tolerance = 1e-12 * conditioning
        if dtype == "float32":
            tolerance = max(1e-5 * conditioning, 4 * own_error)
        for backend in ("numba", "cython"):
            net, X, y = build(spec, backend, dtype)
            point = net.point(X, y)
            assert abs(point.loss - ref_point.loss) <= 1e-5 * max(1.0, abs(ref_point.loss))
            actual = point.gradient(method)
            if method == "finite_difference":
                limit = 4 * relative_error(expected, exact_gradient) + tolerance
                assert relative_error(actual, exact_gradient) <= limit, method
            else:
                assert relative_error(actual, expected) <= tolerance, method


@SETTINGS
@given(architectures, st.data())
def test_loss_change_equals_a_full_re_evaluation(spec, data):
    net, X, y = build(spec, data.draw(st.sampled_from(["numpy", "numba", "cython"])))
    point = net.point(X, y)
    j = data.draw(st.integers(0, net.n_params - 1))
    delta = data.draw(st.sampled_from([1e-6, -1e-2, 0.05, -0.7, 4.0]))
    moved = net.copy()
    moved.params[j] += delta
    direct = moved.loss(X, y) - point.loss
    # the full re-evaluation carries round-off of order eps * J
    assert abs(point.loss_change(j, delta) - direct) <= 1e-11 * max(1.0, point.loss)
