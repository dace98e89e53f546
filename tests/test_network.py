"""The MLP API: the parameter vector and its views, coordinates, copies, evaluation, BatchNorm
running statistics (against torch.nn.BatchNorm1d) and the incremental loss primitive."""
import numpy as np
import pytest
import torch

import fastgrad
from helpers import BACKENDS, make_problem, relative_error


def test_parameter_vector_follows_the_documented_order():
    net = fastgrad.MLP([3, 4, 2], batchnorm=True)
    # W0 (3x4), b0 (4), gamma0 (4), beta0 (4), W1 (4x2), b1 (2)
    assert net.n_params == 12 + 4 + 4 + 4 + 8 + 2
    net.params = np.arange(net.n_params, dtype=float)
    first, last = net.layers
    np.testing.assert_array_equal(first.W, np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(first.b, np.arange(12.0, 16.0))
    np.testing.assert_array_equal(first.gamma, np.arange(16.0, 20.0))
    np.testing.assert_array_equal(first.beta, np.arange(20.0, 24.0))
    np.testing.assert_array_equal(last.W, np.arange(24.0, 32.0).reshape(4, 2))
    np.testing.assert_array_equal(last.b, [32.0, 33.0])
    assert last.gamma is None and last.beta is None


def test_layer_attributes_are_views_that_stay_valid_after_assignment():
    net = fastgrad.MLP([3, 4, 2])
    W = net.layers[0].W
    net.params = np.zeros(net.n_params)
    W[1, 2] = 5.0
    assert net.params[net.index(0, "W", (1, 2))] == 5.0


def test_coordinate_and_index_are_inverse():
    net = fastgrad.MLP([3, 4, 5, 2], batchnorm=True)
    names = set()
    for j in range(net.n_params):
        layer, name, index = net.coordinate(j)
        names.add(name)
        assert net.index(layer, name, index) == j
    assert names == {"W", "b", "gamma", "beta"}
    assert net.coordinate(0) == (0, "W", (0, 0))
    assert net.coordinate(net.n_params - 1) == (2, "b", 1)


def test_copy_is_independent():
    net, X, y = make_problem((4,), batchnorm=True)
    twin = net.copy()
    np.testing.assert_array_equal(twin.params, net.params)
    twin.params[0] += 1.0
    twin.layers[0].running_mean[:] = 3.0
    assert twin.params[0] != net.params[0]
    assert net.layers[0].running_mean[0] == 0.0


def test_a_pickled_network_is_the_same_network_with_live_views():
    import pickle

    net, X, y = make_problem((5, 4), "relu", True, backend="numpy", n_samples=10)
    net.forward(X, training=True)  # running statistics away from their initial values
    twin = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(twin.params, net.params)
    np.testing.assert_array_equal(twin._running_var, net._running_var)
    assert twin.loss(X, y) == net.loss(X, y)
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    twin.params = twin.params + 1  # the layer views follow the new network's vector
    np.testing.assert_array_equal(twin.layers[1].W.ravel(), twin.params[
        net.index(1, "W", (0, 0)):net.index(1, "W", (0, 0)) + 20])
    assert not np.shares_memory(twin.params, net.params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_is_kept_throughout(backend, dtype):
    net, X, y = make_problem((4, 3), batchnorm=True, backend=backend, dtype=dtype)
    assert net.params.dtype == dtype
    assert net.forward(X).dtype == dtype
    for method in ("backprop", "forward", "finite_difference"):
        assert net.gradient(X, y, method).dtype == dtype


def test_initialisation_is_seeded_glorot_for_tanh_and_he_for_relu():
    a, b = fastgrad.MLP([200, 300, 10], seed=1), fastgrad.MLP([200, 300, 10], seed=1)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, fastgrad.MLP([200, 300, 10], seed=2).params)
    limit = np.sqrt(6 / 500)
    assert np.abs(a.layers[0].W).max() <= limit
    assert np.std(a.layers[0].W) == pytest.approx(limit / np.sqrt(3), rel=0.02)
    relu = fastgrad.MLP([200, 300, 10], activation="relu", seed=1)
    assert np.std(relu.layers[0].W) == pytest.approx(np.sqrt(2 / 200), rel=0.02)
    assert np.all(relu.layers[0].b == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_running_statistics_match_torch(backend):
    """forward(training=True) normalises by the batch and updates running statistics like
    torch.nn.BatchNorm1d in train mode; forward() then evaluates with them like eval mode."""
    net, X, y = make_problem((4,), "tanh", True, backend=backend, n_samples=7)
    layer = net.layers[0]
    bn = torch.nn.BatchNorm1d(4, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.as_tensor(layer.gamma))
        bn.bias.copy_(torch.as_tensor(layer.beta))
    z = torch.as_tensor(X @ layer.W + layer.b)
    bn.train()
    for _ in range(3):
        train_out = bn(z)
        train_logits = net.forward(X, training=True)
    np.testing.assert_allclose(layer.running_mean, bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, bn.running_var.numpy(), rtol=1e-12)
    expected_train = torch.tanh(train_out).detach().numpy() @ net.layers[1].W + net.layers[1].b
    np.testing.assert_allclose(train_logits, expected_train, rtol=1e-12)
    bn.eval()
    expected_eval = torch.tanh(bn(z)).detach().numpy() @ net.layers[1].W + net.layers[1].b
    np.testing.assert_allclose(net.forward(X), expected_eval, rtol=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_predictions(loss):
    net, X, y = make_problem((5,), loss=loss, n_samples=20)
    logits = net.forward(X)
    if loss == "mse":
        np.testing.assert_array_equal(net.predict(X), logits)
        with pytest.raises(ValueError, match="mse"):
            net.predict_proba(X)
        return
    proba = net.predict_proba(X)
    if loss == "cross_entropy":
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(net.predict(X), proba.argmax(axis=1))
        np.testing.assert_allclose(proba, torch.softmax(torch.as_tensor(logits), 1).numpy())
    else:
        np.testing.assert_allclose(proba, torch.sigmoid(torch.as_tensor(logits[:, 0])).numpy())
        np.testing.assert_array_equal(net.predict(X), (proba > 0.5).astype(int))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm", [False, True])
def test_loss_at_equals_the_loss_of_the_moved_network(backend, batchnorm):
    """The incremental primitive J(θ + δ e_j) against a full evaluation of a moved copy."""
    net, X, y = make_problem((5, 4), "tanh", batchnorm, backend=backend, n_samples=10)
    point = net.point(X, y)
    for j in range(0, net.n_params, 3):
        for delta in (1e-4, -0.3, 2.5):
            moved = net.copy()
            moved.params[j] += delta
            assert point.loss_at(j, delta) == pytest.approx(moved.loss(X, y), rel=1e-12, abs=1e-14)
    np.testing.assert_array_equal(point.net.params, net.params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_loss_changes_keep_their_digits(backend):
    """A change of 1e-9 in one weight moves J by about 1e-9 * g_j: computed as a change, not
    as a difference of two losses, it matches g_j * delta to many more digits than
    subtraction (which leaves ~1e-16 / 1e-9 ≈ 1e-7 relative) could."""
    net, X, y = make_problem((6,), "tanh", True, backend=backend, n_samples=30)
    point = net.point(X, y)
    gradient = point.gradient("backprop")
    delta = 1e-9
    changes = np.array([point.loss_change(j, delta) for j in range(net.n_params)])
    assert relative_error(changes / delta, gradient) < 1e-8


def test_point_coordinate_derivative_matches_the_gradient():
    net, X, y = make_problem((4, 3), "sigmoid", True, backend="numba")
    point = net.point(X, y)
    gradient = point.gradient("backprop")
    for j in range(net.n_params):
        assert point.coordinate_derivative(j) == pytest.approx(gradient[j], rel=1e-10, abs=1e-14)


def test_repr_says_what_the_network_is():
    net = fastgrad.MLP([3, 4, 2], batchnorm=True)
    assert "MLP([3, 4, 2]" in repr(net) and "batchnorm=True" in repr(net)
    assert repr(net.layers[0]) == "Dense(3 -> 4, batchnorm)"


def test_the_architecture_is_read_only_and_describes_itself_as_data():
    """The kernels keep what was set at construction, so the architecture cannot be
    reassigned; config() rebuilds the network, state_dict() carries its arrays, and the label
    names it."""
    import json
    import pickle

    net = fastgrad.MLP([5, 4, 3], activation="relu", batchnorm=True, dtype="float32", seed=2,
                       backend="numba")
    for name, value in (("activation", "tanh"), ("loss_name", "mse"), ("backend", "numpy"),
                        ("sizes", (5, 3)), ("batchnorm", False), ("dtype", "float64"),
                        ("alpha", 1.0), ("output_reduction", "sum")):
        with pytest.raises(AttributeError):
            setattr(net, name, value)
    config = json.loads(json.dumps(net.config()))
    assert config == {"sizes": [5, 4, 3], "activation": "relu", "batchnorm": True,
                      "loss": "cross_entropy", "output_reduction": "mean", "alpha": 0.0,
                      "dtype": "float32", "seed": 2, "backend": "numba"}
    assert net.label == "5-4-3 relu + BatchNorm"
    net.forward(np.ones((6, 5)), training=True)  # running statistics move
    twin = fastgrad.MLP.from_config(config)
    twin.load_state_dict(net.state_dict())
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(twin.state_dict()[name], value)
    copied = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(copied.layers[0].running_var, net.layers[0].running_var)
    assert copied.layers[0].W.base is not None  # still a view into params
    copied.params[0] = 7.0
    assert copied.layers[0].W[0, 0] == 7.0


@pytest.mark.parametrize("change, error, match", [
    (lambda state: state.pop("running_var"), ValueError, "must hold"),
    (lambda state: state.update(params=state["params"][:-1]), ValueError, "shape"),
    (lambda state: state["params"].__setitem__(0, np.nan), ValueError, "NaN or inf"),
    (lambda state: state["running_var"].__setitem__(0, -1.0), ValueError, "negative"),
    (lambda state: state.update(params=np.array(["x"] * 43)), TypeError, "numeric"),
])
def test_a_bad_state_dict_changes_nothing(change, error, match):
    net = fastgrad.MLP([5, 4, 3], batchnorm=True)
    state, before = net.state_dict(), net.state_dict()
    state["params"] = state["params"] + 1
    change(state)
    with pytest.raises(error, match=match):
        net.load_state_dict(state)
    for name, value in before.items():
        np.testing.assert_array_equal(net.state_dict()[name], value)
