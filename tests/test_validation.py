"""Bad input: a ValueError or TypeError naming the argument, raised in Python before any
kernel runs, and the network left as it was."""
import numpy as np
import pytest

import fastgrad
from helpers import make_problem


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sizes=[3]), ValueError, "sizes"),
    (dict(sizes=[]), ValueError, "sizes"),
    (dict(sizes=[3, 0, 2]), ValueError, "sizes"),
    (dict(sizes=[3, -4, 2]), ValueError, "sizes"),
    (dict(sizes=[3, 2.5, 2]), TypeError, "sizes"),
    (dict(sizes=[3, True, 2]), TypeError, "sizes"),
    (dict(sizes=5), TypeError, "sizes"),
    (dict(sizes=[3, 2], activation="softplus"), ValueError, "activation"),
    (dict(sizes=[3, 2], activation=None), TypeError, "activation"),
    (dict(sizes=[3, 2], loss="hinge"), ValueError, "loss"),
    (dict(sizes=[3, 2], backend="jax"), ValueError, "backend"),
    (dict(sizes=[3, 2], dtype="float16"), ValueError, "dtype"),
    (dict(sizes=[3, 2], dtype="int64"), ValueError, "dtype"),
    (dict(sizes=[3, 2], dtype=object()), TypeError, "dtype"),
    (dict(sizes=[3, 2], batchnorm="yes"), TypeError, "batchnorm"),
    (dict(sizes=[3, 2], loss="cross_entropy", output_reduction="sum"), ValueError,
     "cross_entropy"),
    (dict(sizes=[3, 1], loss="cross_entropy"), ValueError, "two outputs"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastgrad.MLP(**kwargs)


@pytest.fixture
def problem():
    return make_problem((4,), backend="numba")


BAD_X = [
    (np.zeros(5), ValueError, "X must be 2-D"),
    (np.zeros((2, 3, 5)), ValueError, "X must be 2-D"),
    (np.zeros((0, 5)), ValueError, "X is empty"),
    (np.zeros((9, 4)), ValueError, "5 columns"),
    (np.full((9, 5), np.nan), ValueError, "NaN or inf"),
    (np.full((9, 5), np.inf), ValueError, "NaN or inf"),
    (np.full((9, 5), "a"), TypeError, "X must be a numeric array"),
    (np.zeros((9, 5), dtype=complex), TypeError, "X must be real"),
]


@pytest.mark.parametrize("X, error, match", BAD_X)
def test_bad_X(problem, X, error, match):
    net, _, y = problem
    before = net.params.copy()
    for call in (lambda: net.forward(X), lambda: net.loss(X, y),
                 lambda: net.gradient(X, y, "forward"), lambda: net.predict(X)):
        with pytest.raises(error, match=match):
            call()
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("y, error, match", [
    (np.zeros(8, dtype=int), ValueError, "9 class labels"),
    (np.zeros((9, 1), dtype=int), ValueError, "9 class labels"),
    (np.zeros(9), TypeError, "integer class labels"),
    (np.array([0, 1, 2, 3, 0, 1, 2, 0, 1]), ValueError, r"labels must lie in \[0, 2\]"),
    (np.array([0, 1, 2, -1, 0, 1, 2, 0, 1]), ValueError, "labels must lie"),
    (np.array(["a"] * 9), TypeError, "y must be a numeric array"),
])
def test_bad_labels_for_cross_entropy(problem, y, error, match):
    net, X, _ = problem
    with pytest.raises(error, match=match):
        net.loss(X, y)


def test_bad_targets_for_mse_and_binary_cross_entropy():
    net, X, y = make_problem((4,), loss="mse")
    with pytest.raises(ValueError, match=r"shape \(9, 3\)"):
        net.loss(X, y[:, :2])
    with pytest.raises(ValueError, match="NaN or inf"):
        net.loss(X, np.where(y > 0, np.nan, y))
    net, X, y = make_problem((4,), loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="0/1 targets"):
        net.loss(X, y + 0.5)
    with pytest.raises(ValueError, match=r"shape \(9, 1\)"):
        net.loss(X, y[:5])


def test_bad_gradient_and_primitive_arguments(problem):
    net, X, y = problem
    with pytest.raises(ValueError, match="method"):
        net.gradient(X, y, method="reverse")
    with pytest.raises(ValueError, match="eps"):
        net.gradient(X, y, method="finite_difference", eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        net.gradient(X, y, method="finite_difference", eps=np.nan)
    point = net.point(X, y)
    with pytest.raises(ValueError, match="j must lie"):
        point.loss_at(net.n_params, 0.1)
    with pytest.raises(TypeError, match="j must be an integer"):
        point.loss_at(1.0, 0.1)
    with pytest.raises(ValueError, match="delta must be finite"):
        point.loss_at(0, np.inf)
    with pytest.raises(ValueError, match="params must have shape"):
        net.params = np.zeros(3)
    with pytest.raises(ValueError, match="params holds NaN"):
        net.params = np.full(net.n_params, np.nan)
    with pytest.raises(ValueError, match="layer"):
        net.index(5, "W", (0, 0))
    with pytest.raises(ValueError, match="no gamma"):
        net.index(0, "gamma", 0)


def test_other_layouts_and_dtypes_are_converted_not_misread():
    net, X, y = make_problem((4,), backend="cython")
    expected = net.loss(X, y)
    fortran = np.asfortranarray(X)
    strided = np.repeat(X, 2, axis=1)[:, ::2]
    as_float32 = X.astype(np.float32)
    assert net.loss(fortran, y) == expected
    assert net.loss(strided, y) == expected
    assert net.loss(as_float32, y) == net.loss(as_float32.astype(np.float64), y)
    assert net.loss(X.tolist(), y.astype(np.int32)) == expected
    readonly = X.copy()
    readonly.flags.writeable = False
    assert net.loss(readonly, y) == expected
