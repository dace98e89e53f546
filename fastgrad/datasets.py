"""The data fastgrad trains on: scikit-learn's small embedded datasets (no download) and a
user's own ``.csv`` or ``.npz`` file, split and standardised the same way for every caller (the
CLI, the benchmarks, the tests, a notebook).

    X, y = fastgrad.datasets.load_digits_standardised()          # all 1,797 digits, scaled
    data = fastgrad.datasets.load("breast_cancer", seed=0)         # a stratified 75/25 split
    data = fastgrad.datasets.load("measurements.csv", target="label")
"""
import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import validation as check

BUILTIN = ("digits", "breast_cancer", "iris", "wine")
TASKS = ("classification", "regression")


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
    standard deviation; ``y_*`` class indices 0..n_classes-1 (int64) for classification, float
    targets of shape (N, n_targets) for regression; ``classes`` the original labels;
    ``split_seed`` the seed of the split (None if not known)."""

    name: str
    task: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list
    classes: np.ndarray | None
    split_seed: int | None = None

    @property
    def n_outputs(self):
        """The network's output width for this data: classes, or regression targets."""
        return len(self.classes) if self.task == "classification" else self.y_train.shape[1]


def read_arrays(source, target=None):
    """(X, y, feature names) from a built-in dataset's name or a path to a ``.csv`` (a header
    row, numeric cells; ``target`` names the label column, default the last) or ``.npz`` (arrays
    ``X`` and ``y``). Raises ValueError naming the problem."""
    source = str(source)
    if source in BUILTIN:
        if target is not None:
            raise ValueError(f"target applies to a .csv file; {source!r} has its own labels")
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{source}")()
        return bunch.data.astype(np.float64), bunch.target, list(bunch.feature_names)
    path = Path(source)
    if path.suffix.lower() not in (".csv", ".npz"):
        raise ValueError(f"dataset must be one of {list(BUILTIN)} or a path to a .csv or .npz "
                         f"file; got {source!r}")
    if not path.is_file():
        raise ValueError(f"dataset file {source!r} does not exist")
    if path.suffix.lower() == ".npz":
        if target is not None:
            raise ValueError("target applies to a .csv file; an .npz file holds X and y")
        return _read_npz(path)
    return _read_csv(path, target)


def _read_npz(path):
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read {path} as an .npz file: {error}") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive of X and y")
    with arrays:
        missing = [name for name in ("X", "y") if name not in arrays.files]
        if missing:
            raise ValueError(f"{path} must hold arrays 'X' and 'y'; it has no "
                             f"{' or '.join(repr(m) for m in missing)} (it holds "
                             f"{arrays.files})")
        try:
            X, y = arrays["X"], arrays["y"]
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"cannot read {path}'s arrays: {error}") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{path}: y must be 1-D (one label or target per row); got shape "
                         f"{y.shape}")
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{path}: X must be a 2-D numeric array; got shape {X.shape}, "
                         f"dtype {X.dtype}")
    if len(y) != len(X):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    return X.astype(np.float64), y, [f"x{k}" for k in range(X.shape[1])]


def _read_csv(path, target):
    try:
        with open(path, newline="") as file:
            rows = [row for row in csv.reader(file) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if len(rows) < 2:
        raise ValueError(f"{path} needs a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    column = len(header) - 1 if target is None else _column(path, header, target)
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
    features = [name for c, name in enumerate(header) if c != column]
    return np.delete(values, column, axis=1), values[:, column], features


def _column(path, header, target):
    if target not in header:
        raise ValueError(f"{path} has no column {target!r}; its columns are {header}")
    return header.index(target)


def load(source="digits", target=None, task="classification", test_size=0.25, seed=0):
    """A Dataset from ``source`` (see read_arrays): split into training and test parts
    (``test_size`` of the samples; stratified by class for classification), seeded, and
    standardised with a scaler fitted on the training part only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    check.check_choice("task", task, TASKS)
    check.check_unit_interval("test_size", test_size, closed_left=False)
    check.check_rng(None, seed)  # an integer seed (or None)
    X, y, features = read_arrays(source, target)
    if not np.isfinite(X).all():
        raise ValueError(f"{source}: X holds NaN or inf")
    if task == "classification":
        classes, y = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{source}: classification needs at least two classes; the labels "
                             f"hold {len(classes)}")
        counts = np.bincount(y)
        stratify = y if counts.min() >= 2 else None
    else:
        classes, stratify = None, None
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as error:
        raise ValueError(f"{source}: cannot split {len(X)} samples: {error}") from None
    scaler = StandardScaler().fit(X_train)
    name = source if str(source) in BUILTIN else Path(source).name
    return Dataset(str(name), task, scaler.transform(X_train), scaler.transform(X_test),
                   y_train.astype(np.int64) if classes is not None else y_train,
                   y_test.astype(np.int64) if classes is not None else y_test, features, classes,
                   seed)
