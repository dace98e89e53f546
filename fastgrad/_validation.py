"""Argument checks, all done in Python before any kernel runs. Each error names the argument
and what was expected; arrays that pass come back C-contiguous in the network's dtype."""
import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_choice(name, value, choices):
    """``value`` must be one of ``choices`` (a string)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}; got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}")
    return value


def check_dtype(dtype):
    """'float32' or 'float64' (or the numpy types); returns the numpy dtype."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64'; got {dtype!r}") from None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return np.dtype(name)


def check_sizes(sizes):
    """At least two layer widths, each a positive integer."""
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths; got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least two entries (inputs and outputs); got {sizes!r}")
    for width in sizes:
        if isinstance(width, (bool, np.bool_)) or not isinstance(width, numbers.Integral):
            raise TypeError(f"sizes must hold integers; got {width!r} in {sizes!r}")
        if width < 1:
            raise ValueError(f"sizes must hold positive widths; got {width!r} in {sizes!r}")
    return tuple(int(w) for w in sizes)


def check_positive(name, value):
    """A finite number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number; got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    return float(value)


def _as_real_array(name, values):
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array; got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got dtype {array.dtype}")
    return array


def check_X(X, n_features, dtype, finite=True):
    """A finite, non-empty (N, n_features) array; returned C-contiguous in ``dtype`` (without a
    copy when it already is). ``finite=False`` leaves the NaN/inf check to the caller."""
    # an array the kernels can read as it is needs no conversion, only the NaN/inf check
    if not (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] > 0
            and X.shape[1] == n_features and X.flags.c_contiguous):
        X = _as_real_array("X", X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, {n_features}); got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError("X is empty: it needs at least one sample")
        if X.shape[1] != n_features:
            raise ValueError(f"X must have {n_features} columns (the network's input width); "
                             f"got shape {X.shape}")
        X = np.ascontiguousarray(X, dtype=dtype)
    if finite and not np.isfinite(X).all():
        raise ValueError("X holds NaN or inf")
    return X


def check_targets(y, n_samples, n_out, loss, dtype, check_values=True):
    """The loss's targets as an (N, n_out) array T in ``dtype``: one-hot labels for
    cross-entropy, the targets themselves for mse and binary cross-entropy. With
    ``check_values=False`` the caller checks mse / binary cross-entropy values (finite, 0/1)."""
    y = _as_real_array("y", y)
    if loss == "cross_entropy":
        if y.ndim != 1 or len(y) != n_samples:
            raise ValueError(f"y must be a 1-D array of {n_samples} class labels; got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"y must hold integer class labels for cross_entropy; got dtype {y.dtype}")
        if y.min() < 0 or y.max() >= n_out:
            raise ValueError(f"y's labels must lie in [0, {n_out - 1}]; got range "
                             f"[{y.min()}, {y.max()}]")
        T = np.zeros((n_samples, n_out), dtype=dtype)
        T[np.arange(n_samples), y] = 1
        return T
    if y.ndim == 1 and n_out == 1:
        y = y[:, None]
    if y.shape != (n_samples, n_out):
        raise ValueError(f"y must have shape ({n_samples}, {n_out}) for {loss}; got {y.shape}")
    T = np.ascontiguousarray(y, dtype=dtype)
    if check_values and not np.isfinite(T).all():
        raise ValueError("y holds NaN or inf")
    if check_values and loss == "binary_cross_entropy" and not np.isin(T, (0, 1)).all():
        raise ValueError("y must hold 0/1 targets for binary_cross_entropy")
    return T


def check_coordinate(j, n_params):
    """An integer index into the parameter vector."""
    if isinstance(j, (bool, np.bool_)) or not isinstance(j, numbers.Integral):
        raise TypeError(f"j must be an integer coordinate index; got {j!r}")
    if not 0 <= j < n_params:
        raise ValueError(f"j must lie in [0, {n_params - 1}]; got {j}")
    return int(j)


def check_finite_number(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)
