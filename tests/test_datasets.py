"""fastgrad.datasets: the embedded datasets, a user's .csv and .npz, and the errors a user meets."""
import numpy as np
import pytest

from fastgrad import datasets


def test_a_builtin_dataset_is_split_stratified_and_scaled_on_the_training_part():
    data = datasets.load("wine", seed=0)
    assert data.task == "classification" and data.n_outputs == 3
    assert len(data.X_test) == pytest.approx(0.25 * 178, abs=1)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-12)
    assert abs(data.X_test.mean()) > 1e-6  # the test part is scaled with the training part's
    train_share = np.bincount(data.y_train) / len(data.y_train)
    test_share = np.bincount(data.y_test) / len(data.y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.05)
    again = datasets.load("wine", seed=0)
    np.testing.assert_array_equal(again.X_train, data.X_train)


def test_a_csv_with_a_named_target_and_labels_of_any_value(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    label = np.where(X[:, 0] > 0, 7, -2)
    path = tmp_path / "data.csv"
    rows = ["a,label,b,c"] + [f"{x[0]},{t},{x[1]},{x[2]}" for x, t in zip(X, label)]
    path.write_text("\n".join(rows) + "\n")
    data = datasets.load(path, target="label")
    assert data.feature_names == ["a", "b", "c"]
    assert list(data.classes) == [-2, 7] and set(data.y_train) == {0, 1}
    regression = datasets.load(path, task="regression")  # the last column, c
    assert regression.y_train.shape == (30, 1)


def test_an_npz_file(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.arange(80.0).reshape(20, 4), y=np.arange(20) % 2)
    data = datasets.load(path)
    assert data.X_train.shape == (15, 4) and data.n_outputs == 2


@pytest.mark.parametrize("write, kwargs, match", [
    (None, {"source": "mnist"}, "dataset must be one of"),
    (None, {"source": "missing.csv"}, "does not exist"),
    ("a,b\n1,2\n3,x\n", {}, r"line 3, column 'b': 'x' is not a number"),
    ("a,b\n1,2\n3,4\n", {"target": "label"}, "no column 'label'"),
    ("a,b\n1,2,3\n", {}, "3 cells, the header has 2"),
    ("a,b\n", {}, "at least one data row"),
    (b"\x00\xff garbage", {"suffix": ".npz"}, "cannot read"),
    ("npz-without-y", {"suffix": ".npz"}, "no 'y'"),
    ("npy", {"suffix": ".npz"}, "single .npy array"),
    ("a,b\n1,0\n2,0\n", {}, "at least two classes"),
])
def test_a_bad_dataset_is_one_clear_error(tmp_path, write, kwargs, match):
    kwargs = dict(kwargs)
    suffix = kwargs.pop("suffix", ".csv")
    if write is not None:
        path = tmp_path / f"data{suffix}"
        if write == "npz-without-y":
            np.savez(path, X=np.zeros((4, 2)))
        elif write == "npy":
            with open(path, "wb") as file:
                np.save(file, np.zeros(3))
        elif isinstance(write, bytes):
            path.write_bytes(write)
        else:
            path.write_text(write)
        kwargs["source"] = path
    with pytest.raises(ValueError, match=match):
        datasets.load(**kwargs)


def write_csv(path, header, columns):
    rows = [",".join(header)] + [",".join(f"{v:g}" for v in row) for row in zip(*columns)]
    path.write_text("\n".join(rows) + "\n")


def test_sample_weights_multilabel_and_counts_from_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    a, b = rng.normal(size=n), rng.normal(size=n)
    weight = rng.uniform(0.5, 2, n)
    tag1, tag2 = (a > 0).astype(float), (b > 0).astype(float)
    count = rng.poisson(2.0, n).astype(float)
    path = tmp_path / "data.csv"
    write_csv(path, ["a", "w", "b", "tag1", "tag2", "count"], [a, weight, b, tag1, tag2, count])
    data = datasets.load(path, target="tag1,tag2", task="multilabel", weight="w")
    assert data.feature_names == ["a", "b", "count"] and data.loss == "binary_cross_entropy"
    assert data.y_train.shape == (30, 2) and data.n_outputs == 2
    # the weights travel with their samples through the split
    rows = np.flatnonzero(np.isin(np.round(weight, 5), np.round(data.w_test, 5)))
    assert len(data.w_train) == 30 and len(rows) == 10
    counts = datasets.load(path, target="count", task="poisson", weight="w")
    assert counts.loss == "poisson" and counts.y_train.min() >= 0
    np.testing.assert_allclose(np.sort(np.r_[counts.w_train, counts.w_test]), np.sort(weight),
                               rtol=1e-5)


def test_builtin_data_as_multilabel_and_counts():
    tags = datasets.load("iris", task="multilabel")
    assert tags.y_train.shape == (112, 3) and (tags.y_train.sum(axis=1) == 1).all()
    assert list(tags.classes) == [0, 1, 2]
    counts = datasets.load("iris", task="poisson")
    assert set(np.unique(counts.y_train)) == {0.0, 1.0, 2.0}


def test_an_npz_with_weights_and_several_labels(tmp_path):
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(1)
    np.savez(path, X=rng.normal(size=(20, 3)), y=rng.integers(0, 2, (20, 4)),
             weights=rng.uniform(size=20))
    data = datasets.load(path, task="multilabel", weight="weights")
    assert data.y_train.shape == (15, 4) and data.w_train.shape == (15,)


@pytest.mark.parametrize("columns, kwargs, match", [
    ({"x": [1, 2, 3, 4], "y": [1, -1, 2, 0]}, {"task": "poisson"}, "non-negative counts"),
    ({"x": [1, 2, 3, 4], "y": [1, 0.5, 1, 0]}, {"task": "multilabel", "target": "x,y"}, "0/1"),
    ({"x": [1, 2, 3, 4], "w": [1, -1, 1, 1], "y": [0, 1, 0, 1]}, {"weight": "w"},
     "non-negative"),
    ({"x": [1, 2, 3, 4], "w": [0, 0, 0, 0], "y": [0, 1, 0, 1]}, {"weight": "w"}, "all zeros"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"weight": "w"}, "no column 'w'"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"weight": "y"}, "both the target and the weight"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"target": "x,y"}, "one label per sample"),
])
def test_bad_weights_and_targets_are_one_clear_error(tmp_path, columns, kwargs, match):
    path = tmp_path / "data.csv"
    write_csv(path, list(columns), list(columns.values()))
    with pytest.raises(ValueError, match=match):
        datasets.load(path, **kwargs)
    with pytest.raises(ValueError, match="weight applies to a .csv or .npz"):
        datasets.load("iris", weight="w")
