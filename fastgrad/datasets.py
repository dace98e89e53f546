"""The data fastgrad trains on: scikit-learn's small embedded datasets (no download) and a
user's own ``.csv`` or ``.npz`` file, split and standardised the same way for every caller (the
CLI, the benchmarks, the tests, a notebook).

    X, y = fastgrad.datasets.load_digits_standardised()          # all 1,797 digits, scaled
    data = fastgrad.datasets.load("breast_cancer", seed=0)         # a stratified 75/25 split
    data = fastgrad.datasets.load("measurements.csv", target="label")
    data = fastgrad.datasets.load("counts.csv", target="visits", task="poisson", weight="w")
"""
import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import validation as check

BUILTIN = ("digits", "breast_cancer", "iris", "wine")
# what a dataset's targets are, and the loss a network fits them with
TASK_LOSSES = {"classification": "cross_entropy", "regression": "mse",
               "multilabel": "binary_cross_entropy", "poisson": "poisson"}
TASKS = tuple(TASK_LOSSES)


def load_digits_standardised(n_samples=None):
    """scikit-learn's digits (1,797 8x8 images, shipped with scikit-learn), each pixel
    standardised over the samples returned; the first ``n_samples`` of them (default all)."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    return StandardScaler().fit_transform(X), y


@dataclass
class Dataset:
    """A train/test split: ``X_*`` float64 standardised with the training part's mean and
    standard deviation; ``y_*`` class indices 0..n_classes-1 (int64) for classification, a 0/1
    matrix (N, n_labels) for multilabel, float targets of shape (N, n_targets) for regression
    and poisson (counts, non-negative); ``classes`` the original labels (classification, and
    multilabel made from one label column: one output per class, one-vs-rest); ``split_seed``
    the seed of the split (None if not known); ``w_*`` the sample weights (None: unweighted)."""

    name: str
    task: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list
    classes: np.ndarray | None
    split_seed: int | None = None
    w_train: np.ndarray | None = None
    w_test: np.ndarray | None = None

    @property
    def n_outputs(self):
        """The network's output width for this data: classes, labels or targets."""
        return len(self.classes) if self.task == "classification" else self.y_train.shape[1]

    @property
    def loss(self):
        """The loss a network fits this task with."""
        return TASK_LOSSES[self.task]


def read_arrays(source, target=None, weight=None):
    """(X, y, sample weights or None, feature names) from a built-in dataset's name or a path
    to a ``.csv`` (a header row, numeric cells; ``target`` names the label column, default the
    last, or several separated by commas; ``weight`` names a column of sample weights) or
    ``.npz`` (arrays ``X`` and ``y``, y 1-D or (N, k); ``weight`` names an array of sample
    weights). Raises ValueError naming the problem."""
    source = str(source)
    if source in BUILTIN:
        if target is not None:
            raise ValueError(f"target applies to a .csv file; {source!r} has its own labels")
        if weight is not None:
            raise ValueError(f"weight applies to a .csv or .npz file; {source!r} has no "
                             f"sample weights")
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{source}")()
        return bunch.data.astype(np.float64), bunch.target, None, list(bunch.feature_names)
    path = Path(source)
    if path.suffix.lower() not in (".csv", ".npz"):
        raise ValueError(f"dataset must be one of {list(BUILTIN)} or a path to a .csv or .npz "
                         f"file; got {source!r}")
    if not path.is_file():
        raise ValueError(f"dataset file {source!r} does not exist")
    if path.suffix.lower() == ".npz":
        if target is not None:
            raise ValueError("target applies to a .csv file; an .npz file holds X and y")
        return _read_npz(path, weight)
    return _read_csv(path, target, weight)


def _read_npz(path, weight):
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read {path} as an .npz file: {error}") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive of X and y")
    with arrays:
        names = ("X", "y") if weight is None else ("X", "y", weight)
        missing = [name for name in names if name not in arrays.files]
        if missing:
            needed = "arrays 'X' and 'y'" + ("" if weight is None else f" and {weight!r}")
            raise ValueError(f"{path} must hold {needed}; it has no "
                             f"{' or '.join(repr(m) for m in missing)} (it holds "
                             f"{arrays.files})")
        try:
            X, y = arrays["X"], arrays["y"]
            w = None if weight is None else arrays[weight]
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"cannot read {path}'s arrays: {error}") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise ValueError(f"{path}: y must be 1-D (one label or target per row) or 2-D (several "
                         f"per row); got shape {y.shape}")
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{path}: X must be a 2-D numeric array; got shape {X.shape}, "
                         f"dtype {X.dtype}")
    if len(y) != len(X):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    if w is not None and (w.shape != (len(X),) or not np.issubdtype(w.dtype, np.number)):
        raise ValueError(f"{path}: {weight!r} must be a 1-D numeric array of {len(X)} sample "
                         f"weights; got shape {w.shape}, dtype {w.dtype}")
    return (X.astype(np.float64), y, None if w is None else w.astype(np.float64),
            [f"x{k}" for k in range(X.shape[1])])


def _read_csv(path, target, weight):
    try:
        with open(path, newline="") as file:
            rows = [row for row in csv.reader(file) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if len(rows) < 2:
        raise ValueError(f"{path} needs a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    targets = [len(header) - 1] if target is None else [
        _column(path, header, name.strip()) for name in str(target).split(",")]
    weights = None if weight is None else _column(path, header, weight)
    if weights in targets:
        raise ValueError(f"{path}: column {weight!r} cannot be both the target and the weight")
    values = np.empty((len(rows) - 1, len(header)))
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {r}: {len(row)} cells, the header has {len(header)}")
        for c, cell in enumerate(row):
            try:
                values[r - 2, c] = float(cell)
            except ValueError:
                raise ValueError(f"{path}, line {r}, column {header[c]!r}: {cell!r} is not a "
                                 f"number (every cell must be numeric)") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{path} holds NaN or inf")
    used = [*targets, *([] if weights is None else [weights])]
    features = [name for c, name in enumerate(header) if c not in used]
    y = values[:, targets[0]] if len(targets) == 1 else values[:, targets]
    return (np.delete(values, used, axis=1), y,
            None if weights is None else values[:, weights], features)


def _column(path, header, target):
    if target not in header:
        raise ValueError(f"{path} has no column {target!r}; its columns are {header}")
    return header.index(target)


def load(source="digits", target=None, task="classification", test_size=0.25, seed=0,
         weight=None):
    """A Dataset from ``source`` (see read_arrays): split into training and test parts
    (``test_size`` of the samples; stratified by class for classification, and for multilabel
    made from one label column), seeded, and standardised with a scaler fitted on the training
    part only. ``task``: "classification" (one label per sample), "multilabel" (a 0/1 column per
    label; one label column becomes one-vs-rest indicators of its classes), "regression" or
    "poisson" (non-negative counts). ``weight`` names the sample weights' column or array;
    they are split with their samples."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    check.check_choice("task", task, TASKS)
    check.check_unit_interval("test_size", test_size, closed_left=False)
    check.check_rng(None, seed)  # an integer seed (or None)
    X, y, w, features = read_arrays(source, target, weight)
    if not np.isfinite(X).all():
        raise ValueError(f"{source}: X holds NaN or inf")
    classes, stratify = None, None
    if task == "classification" or (task == "multilabel" and y.ndim == 1):
        if y.ndim != 1:
            raise ValueError(f"{source}: classification needs one label per sample; y has "
                             f"{y.shape[1]} columns (task='multilabel' takes several)")
        classes, y = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{source}: {task} needs at least two classes; the labels hold "
                             f"{len(classes)}")
        stratify = y if np.bincount(y).min() >= 2 else None
        if task == "multilabel":  # one-vs-rest indicators
            y = (y[:, None] == np.arange(len(classes))).astype(np.float64)
    else:
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if not np.isfinite(y).all():
            raise ValueError(f"{source}: y holds NaN or inf")
        if task == "multilabel" and not np.isin(y, (0, 1)).all():
            raise ValueError(f"{source}: multilabel targets must be 0/1")
        if task == "poisson" and (y < 0).any():
            raise ValueError(f"{source}: poisson targets must be non-negative counts; the "
                             f"smallest is {y.min():g}")
    if w is not None:
        check.check_sample_weight(w, len(X), np.float64)
    parts = [X, y] if w is None else [X, y, w]
    try:
        split = train_test_split(*parts, test_size=test_size, random_state=seed,
                                 stratify=stratify)
    except ValueError as error:
        raise ValueError(f"{source}: cannot split {len(X)} samples: {error}") from None
    X_train, X_test, y_train, y_test = split[:4]
    w_train, w_test = (None, None) if w is None else split[4:]
    for part, weights in (("training", w_train), ("test", w_test)):
        if weights is not None and not weights.any():
            raise ValueError(f"{source}: the {part} part's sample weights are all zero")
    scaler = StandardScaler().fit(X_train)
    name = source if str(source) in BUILTIN else Path(source).name
    labels = task == "classification"
    return Dataset(str(name), task, scaler.transform(X_train), scaler.transform(X_test),
                   y_train.astype(np.int64) if labels else y_train,
                   y_test.astype(np.int64) if labels else y_test, features, classes, seed,
                   w_train, w_test)
