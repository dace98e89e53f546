"""fastgrad.train: the parallel and layer-wise approaches, History, callbacks, failures."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastgrad
from fastgrad.optim import SGD, Adam, NonFiniteStep, RMSprop
from conftest import BACKENDS, make_problem


@pytest.fixture(scope="module")
def digits():
    """Standardised digits, stratified 75/25 split, seeded."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_adam_reaches_97_percent_on_digits(digits, backend, record_property):
    X_train, X_test, y_train, y_test = digits
    net = fastgrad.MLP([64, 256, 10], backend=backend, seed=0)
    history = fastgrad.train(net, X_train, y_train, optimizer=Adam(1e-3), epochs=20,
                             batch_size=32, validation=(X_test, y_test))
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    record_property("test_accuracy", accuracy)
    print(f"64-256-10, Adam(1e-3), 20 epochs of batch 32: test accuracy {accuracy:.4f}")
    assert accuracy >= 0.97
    assert history.val_accuracy[-1] == pytest.approx(accuracy)
    assert history.loss[-1] < history.loss[0]


def test_history_records_every_epoch(digits):
    X_train, X_test, y_train, y_test = digits
    net = fastgrad.MLP([64, 16, 10], backend="numba")
    history = fastgrad.train(net, X_train, y_train, optimizer=SGD(0.05), epochs=3,
                             batch_size=100, validation=(X_test, y_test))
    assert history.epochs == 3 and history.approach == "parallel"
    assert history.steps == [14, 14, 14]  # ceil(1347 / 100)
    assert all(0 <= r <= 14 for r in history.raised)
    assert all(t > 0 for t in history.time)
    assert history.loss[-1] == pytest.approx(net.loss(X_train, y_train))
    assert history.accuracy[-1] == pytest.approx(np.mean(net.predict(X_train) == y_train))
    assert "val loss" in str(history)


def test_training_is_reproducible_and_the_seed_shuffles(digits):
    X_train, _, y_train, _ = digits
    runs = []
    for seed in (1, 1, 2):
        net = fastgrad.MLP([64, 8, 10], backend="cython")
        fastgrad.train(net, X_train, y_train, optimizer=SGD(0.1), epochs=2, batch_size=50,
                       seed=seed)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("order", ["forward", "backward", "random"])
def test_layerwise_training_lowers_the_loss(digits, order):
    X_train, _, y_train, _ = digits
    net = fastgrad.MLP([64, 32, 16, 10], backend="numba")
    history = fastgrad.train(net, X_train, y_train, approach="layerwise", optimizer=SGD(0.1),
                             epochs=3, batch_size=200, layer_order=order)
    assert history.steps == [21, 21, 21]  # 7 batches x 3 layers
    assert history.loss[-1] < history.loss[0]


def test_layerwise_full_batch_forward_order_equals_layer_steps_by_hand():
    net, X, y = make_problem((5, 4), "tanh", backend="numba", n_samples=20)
    twin = net.copy()
    fastgrad.train(net, X, y, approach="layerwise", optimizer=SGD(0.1), epochs=2,
                   layer_order="backward")
    optimizer = SGD(0.1)
    for _ in range(2):
        for layer in (2, 1, 0):
            optimizer.layer_step(twin, X, y, layer)
    np.testing.assert_array_equal(net.params, twin.params)


def test_callback_can_stop_training():
    net, X, y = make_problem((4,), backend="numba")
    seen = []

    def stop_after_two(epoch, history):
        seen.append((epoch, history.epochs))
        return epoch == 2

    history = fastgrad.train(net, X, y, epochs=10, callback=stop_after_two)
    assert history.epochs == 2 and seen == [(1, 1), (2, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_run_stops_with_the_epoch_and_step_and_finite_weights(backend):
    net, X, y = make_problem((8,), "relu", loss="mse", backend=backend, n_samples=30)
    with pytest.raises(NonFiniteStep, match=r"epoch \d+, step \d+") as failure:
        fastgrad.train(net, X, y, optimizer=SGD(lr=50.0), epochs=500, batch_size=10)
    assert np.isfinite(net.params).all()
    assert failure.value.history.epochs >= 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_step_changes_nothing(backend):
    net, X, y = make_problem((4,), "tanh", True, loss="mse", backend=backend, n_samples=12)
    optimizer = Adam(0.1)
    optimizer.step(net, X, y)
    params, state, steps = net.params.copy(), optimizer.state.copy(), optimizer.steps.copy()
    running = net._running_var.copy()
    with pytest.raises(NonFiniteStep):
        optimizer.step(net, X, np.full_like(y, 1e300))  # the loss overflows
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(optimizer.state, state)
    np.testing.assert_array_equal(optimizer.steps, steps)
    np.testing.assert_array_equal(net._running_var, running)


def test_a_warm_step_allocates_no_arrays():
    import tracemalloc

    net, X, y = make_problem((64,), "tanh", True, backend="numba", n_samples=256,
                             n_features=32, n_classes=10)
    optimizer = Adam(1e-3)
    for _ in range(3):
        optimizer.step(net, X, y)
    tracemalloc.start()
    for _ in range(20):
        optimizer.step(net, X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one batch's activations alone would be 256 * 64 * 8 = 131 kB
    assert peak < 4096


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(approach="greedy"), ValueError, "approach"),
    (dict(approach="sequential", optimizer=SGD(0.1)), ValueError, "optimizer"),
    (dict(approach="parallel", lr=0.1), ValueError, "lr"),
    (dict(approach="layerwise", order="cyclic"), ValueError, "order"),
    (dict(optimizer="adam"), TypeError, "optimizer"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=2.5), TypeError, "epochs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=10), ValueError, "batch_size"),
    (dict(layer_order="sideways"), ValueError, "layer_order"),
    (dict(validation=np.zeros(3)), TypeError, "validation"),
    (dict(callback=3), TypeError, "callback"),
])
def test_bad_training_arguments(kwargs, error, match):
    net, X, y = make_problem((4,), backend="numba")
    before = net.params.copy()
    with pytest.raises(error, match=match):
        fastgrad.train(net, X, y, **kwargs)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("make, match", [
    (lambda: SGD(lr=0), "lr"), (lambda: SGD(lr=-1), "lr"), (lambda: SGD(lr=np.inf), "lr"),
    (lambda: SGD(lr="fast"), "lr"), (lambda: SGD(0.1, momentum=1.0), "momentum"),
    (lambda: SGD(0.1, momentum=-0.1), "momentum"), (lambda: SGD(0.1, nesterov=True), "nesterov"),
    (lambda: SGD(0.1, weight_decay=-1), "weight_decay"),
    (lambda: Adam(betas=(0.9, 1.0)), r"betas\[1\]"), (lambda: Adam(betas=(-0.1, 0.9)), "betas"),
    (lambda: Adam(betas=0.9), "betas"), (lambda: Adam(eps=0), "eps"),
    (lambda: Adam(eps=np.nan), "eps"), (lambda: RMSprop(alpha=1.5), "alpha"),
    (lambda: RMSprop(momentum=np.nan), "momentum"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_optimizer_serves_one_network_and_checks_batches(backend):
    net, X, y = make_problem((4,), backend=backend)
    optimizer = SGD(0.1)
    optimizer.step(net, X, y)
    with pytest.raises(ValueError, match="another network"):
        optimizer.step(net.copy(), X, y)
    with pytest.raises(ValueError, match="5 columns"):
        optimizer.step(net, X[:, :3], y)
    with pytest.raises(ValueError, match="NaN or inf"):
        optimizer.step(net, np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match="labels must lie"):
        optimizer.step(net, X, y + 5)
    with pytest.raises(ValueError, match="layer must be"):
        optimizer.layer_step(net, X, y, 2)
    with pytest.raises(TypeError, match="integer class labels"):
        optimizer.step(net, X, y.astype(float))
    with pytest.raises(ValueError, match="9 class labels"):
        optimizer.step(net, X, y[:5])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_optimizer_checks_regression_and_binary_targets(backend):
    net, X, y = make_problem((4,), loss="mse", backend=backend)
    with pytest.raises(ValueError, match="NaN or inf"):
        SGD(0.1).step(net, X, np.where(y > 0, np.inf, y))
    net, X, y = make_problem((4,), loss="binary_cross_entropy", backend=backend)
    with pytest.raises(ValueError, match="0/1 targets"):
        SGD(0.1).step(net, X, y + 0.5)
    assert np.isfinite(SGD(0.1).step(net, X, y))
