"""Argument checks, all done in Python before any kernel runs, in one module that every public
function reaches before it does any work. Each error names the argument and what was expected;
arrays that pass come back C-contiguous in the network's dtype."""
import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def is_integer(value):
    """An integer (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


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
        if not is_integer(width):
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


def as_real_array(name, values):
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array; got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got dtype {array.dtype}")
    return array


def check_array(name, values, shape, finite=True):
    """A real array of exactly ``shape`` (and, with ``finite``, no NaN or inf), returned as
    given (not converted)."""
    array = as_real_array(name, values)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {array.shape}")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf")
    return array


def check_optimizer(optimizer):
    """A fastgrad.optim optimizer (an update rule)."""
    from .optim import Optimizer

    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastgrad.optim optimizer (SGD, Adam, RMSprop); "
                        f"got {optimizer!r}")
    return optimizer


def check_X(X, n_features, dtype, finite=True):
    """A finite, non-empty (N, n_features) array; returned C-contiguous in ``dtype`` (without a
    copy when it already is). ``finite=False`` leaves the NaN/inf check to the caller."""
    # an array the kernels can read as it is needs no conversion, only the NaN/inf check
    if not (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] > 0
            and X.shape[1] == n_features and X.flags.c_contiguous):
        X = as_real_array("X", X)
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
    cross-entropy, the targets themselves for the other losses (checked by check_target_values;
    with ``check_values=False`` the caller checks them)."""
    y = as_real_array("y", y)
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
    if check_values:
        check_target_values(T, loss)
    return T


def check_target_values(T, loss):
    """The values a loss's targets must hold: finite; 0 or 1 for binary cross-entropy;
    non-negative for poisson. (Reductions, not element-wise masks, where they suffice: a NaN
    or inf anywhere shows in min or max.)"""
    low, high = T.min(), T.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("y holds NaN or inf")
    if loss == "binary_cross_entropy" and not ((T == 0) | (T == 1)).all():
        raise ValueError("y must hold 0/1 targets for binary_cross_entropy")
    if loss == "poisson" and low < 0:
        raise ValueError(f"y must hold non-negative targets for poisson; got a minimum of {low}")


def check_sample_weight(sample_weight, n_samples, dtype):
    """Sample weights as a fresh (N,) array in ``dtype`` (the caller's never changes), or None:
    finite, non-negative, not all zero."""
    if sample_weight is None:
        return None
    weight = as_real_array("sample_weight", sample_weight)
    if weight.shape != (n_samples,):
        raise ValueError(f"sample_weight must be a 1-D array of {n_samples} weights, one per "
                         f"sample; got shape {weight.shape}")
    weight = np.array(weight, dtype=dtype)  # a copy
    if not np.isfinite(weight).all():
        raise ValueError("sample_weight holds NaN or inf")
    if (weight < 0).any():
        raise ValueError(f"sample_weight must be non-negative; got a minimum of {weight.min()}")
    if not weight.any():
        raise ValueError("sample_weight is all zeros: no sample would count")
    with np.errstate(over="ignore"):  # an overflowing sum is the error said here
        total = weight.sum()
    if not np.isfinite(total):
        raise ValueError(f"sample_weight's sum overflows {dtype}: scale the weights down")
    return weight


def check_coordinate(j, n_params):
    """An integer index into the parameter vector."""
    if not is_integer(j):
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


def check_positive_int(name, value, allow_none=False):
    """A positive integer (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not is_integer(value):
        raise TypeError(f"{name} must be a positive integer{' or None' if allow_none else ''}; "
                        f"got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def check_bool(name, value):
    """True or False (numpy's bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_unit_interval(name, value, closed_left=True):
    """A finite number in [0, 1) (or (0, 1))."""
    value = check_finite_number(name, value)
    if not ((0 <= value if closed_left else 0 < value) and value < 1):
        raise ValueError(f"{name} must lie in {'[' if closed_left else '('}0, 1); got {value!r}")
    return value


def check_non_negative(name, value):
    """A finite number >= 0."""
    value = check_finite_number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return value


def check_network(net):
    """A fastgrad.MLP."""
    from .model import MLP

    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastgrad.MLP; got {type(net).__name__}")
    return net


def check_layer(layer, n_layers):
    """A layer index in [0, n_layers)."""
    if not is_integer(layer) or not 0 <= layer < n_layers:
        raise ValueError(f"layer must be an integer in [0, {n_layers - 1}]; got {layer!r}")
    return int(layer)


def check_seed(name, seed):
    """An integer seed (numpy's too), returned as an int."""
    if not is_integer(seed):
        raise TypeError(f"{name} must be an integer; got {seed!r}")
    return int(seed)


def check_rng(rng, seed):
    """The run's generator: ``rng`` (a numpy Generator, used and advanced as it is, so that a
    run can continue where another stopped) or, without one, a new one from ``seed`` (an
    integer, or None for fresh entropy)."""
    if rng is None:
        return np.random.default_rng(None if seed is None else check_seed("seed", seed))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    return rng


def check_pair(name, value, what):
    """A pair (a, b)."""
    try:
        first, second = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair {what}; got {value!r}") from None
    return first, second


def check_validation(value):
    """(X_val, y_val, sample_weight_val or None) from a validation pair or triple."""
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise TypeError(f"validation must be a pair (X_val, y_val) or a triple (X_val, y_val, "
                        f"sample_weight_val); got {value!r:.80}")
    return (*value, None) if len(value) == 2 else tuple(value)
