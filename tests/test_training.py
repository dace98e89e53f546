"""fastgrad.train: the parallel and layer-wise approaches, History, callbacks, failures."""
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastgrad
from fastgrad import LayerWise, NonFiniteStep, Parallel, Sequential
from fastgrad.approaches import TrainingData
from fastgrad.model import Workspaces
from fastgrad.optim import SGD, Adam, RMSprop
from fastgrad.training import OnEpochEnd
from helpers import BACKENDS, make_problem, relative_error


@pytest.fixture(scope="module")
def digits():
    """Standardised digits, stratified 75/25 split, seeded."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_adam_reaches_97_percent_on_digits(digits, backend, record_property):
    X_train, X_test, y_train, y_test = digits
    net = fastgrad.MLP([64, 256, 10], backend=backend, seed=0)
    history = fastgrad.train(net, X_train, y_train, Parallel(Adam(1e-3), batch_size=32),
                             epochs=20, validation=(X_test, y_test))
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    record_property("test_accuracy", accuracy)
    print(f"64-256-10, Adam(1e-3), 20 epochs of batch 32: test accuracy {accuracy:.4f}")
    assert accuracy >= 0.97
    assert history.val_accuracy[-1] == pytest.approx(accuracy)
    assert history.loss[-1] < history.loss[0]


def test_history_records_every_epoch(digits):
    X_train, X_test, y_train, y_test = digits
    net = fastgrad.MLP([64, 16, 10], backend="numba")
    history = fastgrad.train(net, X_train, y_train, Parallel(SGD(0.05), batch_size=100),
                             epochs=3, validation=(X_test, y_test))
    assert history.epochs == 3 and history.approach == "parallel"
    assert history.steps == [14, 14, 14]  # ceil(1347 / 100)
    assert all(0 <= r <= 14 for r in history.raised)
    assert all(t > 0 for t in history.train_seconds)
    assert history.loss[-1] == pytest.approx(net.loss(X_train, y_train))
    assert history.accuracy[-1] == pytest.approx(np.mean(net.predict(X_train) == y_train))
    assert "val loss" in str(history)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_the_one_pass_evaluation_equals_loss_and_predict(digits, batchnorm):
    """History's loss is net.loss (BatchNorm on the set's statistics) and its accuracy that of
    net.predict (evaluation mode), on the training and the validation set."""
    X_train, X_test, y_train, y_test = digits
    net = fastgrad.MLP([64, 16, 10], batchnorm=batchnorm, backend="numba")
    history = fastgrad.train(net, X_train, y_train, Parallel(SGD(0.05), batch_size=100),
                             epochs=2, validation=(X_test, y_test))
    for X, y, loss, accuracy in ((X_train, y_train, history.loss, history.accuracy),
                                 (X_test, y_test, history.val_loss, history.val_accuracy)):
        assert loss[-1] == net.loss(X, y)
        assert accuracy[-1] == float(np.mean(net.predict(X) == y))


def test_training_time_leaves_out_the_evaluation_and_the_raised_step_checks(digits):
    import time

    X_train, X_test, y_train, y_test = digits
    net = fastgrad.MLP([64, 16, 10], backend="numba")
    start = time.perf_counter()
    history = fastgrad.train(net, X_train, y_train, Parallel(SGD(0.05), batch_size=100),
                             epochs=3, validation=(X_test, y_test))
    wall = time.perf_counter() - start
    assert len(history.eval_seconds) == 3 and all(t > 0 for t in history.eval_seconds)
    assert sum(history.train_seconds) + sum(history.eval_seconds) <= wall
    # the check of raised steps is timed by the epoch itself, and only when asked for
    X, T, _ = net.check_batch(X_train, y_train)
    workspaces = Workspaces(net)
    for count_raised in (True, False):
        approach = Parallel(SGD(0.05), batch_size=100, count_raised=count_raised)
        approach.prepare(net, workspaces)
        result = approach.run_epoch(net, TrainingData(X, y_train, T, workspaces),
                                    np.random.default_rng(0))
        assert (result.check_seconds > 0) == count_raised
        assert count_raised or result.raised == 0  # nothing counted without the check


def test_training_is_reproducible_and_the_seed_shuffles(digits):
    X_train, _, y_train, _ = digits
    runs = []
    for seed in (1, 1, 2):
        net = fastgrad.MLP([64, 8, 10], backend="cython")
        fastgrad.train(net, X_train, y_train, Parallel(SGD(0.1), batch_size=50), epochs=2,
                       seed=seed)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("order", ["cyclic", "reverse", "permutation"])
def test_layerwise_training_lowers_the_loss(digits, order):
    X_train, _, y_train, _ = digits
    net = fastgrad.MLP([64, 32, 16, 10], backend="numba")
    history = fastgrad.train(net, X_train, y_train,
                             LayerWise(SGD(0.1), order=order, batch_size=200), epochs=3)
    assert history.steps == [21, 21, 21]  # 7 batches x 3 layers
    assert history.loss[-1] < history.loss[0]


@pytest.mark.parametrize("order, layers", [("cyclic", (0, 1, 2)), ("reverse", (2, 1, 0))])
def test_layerwise_full_batch_sweeps_equal_layer_steps_by_hand(order, layers):
    net, X, y = make_problem((5, 4), "tanh", backend="numba", n_samples=20)
    twin = net.copy()
    fastgrad.train(net, X, y, LayerWise(SGD(0.1), order=order), epochs=2)
    optimizer = SGD(0.1).bind(twin)
    for _ in range(2):
        for layer in layers:
            optimizer.layer_step(X, y, layer)
    np.testing.assert_array_equal(net.params, twin.params)


def test_a_function_callback_can_stop_training():
    net, X, y = make_problem((4,), backend="numba")
    seen = []

    def stop_after_two(run):
        seen.append((run.epoch, run.history.epochs))
        return run.epoch == 2

    history = fastgrad.train(net, X, y, epochs=10, callbacks=[OnEpochEnd(stop_after_two)])
    assert history.epochs == 2 and seen == [(1, 1), (2, 2)]


class Recorder(fastgrad.Callback):
    """Every hook call, with what the run holds at that moment."""

    def __init__(self):
        self.calls = []

    def on_train_start(self, run):
        self.calls.append(("start", run.epoch, run.history.epochs, run.error))

    def on_epoch_end(self, run):
        self.calls.append(("epoch", run.epoch, run.history.epochs, run.error))

    def on_train_end(self, run):
        self.calls.append(("end", run.epoch, run.history.epochs, run.error))


def test_callbacks_see_the_start_every_epoch_and_the_end_even_of_a_failed_run():
    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    recorder = Recorder()
    fastgrad.train(net, X, y, epochs=3, callbacks=[recorder])
    assert recorder.calls == [("start", 0, 0, None), ("epoch", 1, 1, None),
                              ("epoch", 2, 2, None), ("epoch", 3, 3, None), ("end", 3, 3, None)]
    failing = Recorder()
    with pytest.raises(NonFiniteStep) as failure:
        fastgrad.train(net, X, y, Parallel(SGD(10.0, weight_decay=1e308)), epochs=3,
                       callbacks=[failing])
    assert [call[0] for call in failing.calls] == ["start", "end"]
    assert failing.calls[-1][3] is failure.value and failure.value.epoch == 1


class Snapshots(fastgrad.Callback):
    """The network's state after every epoch, to compare with."""

    def __init__(self):
        self.after = []

    def on_epoch_end(self, run):
        self.after.append(run.net.state_dict())


@pytest.mark.parametrize("batchnorm", [False, True])
def test_early_stopping_stops_and_puts_the_best_epochs_weights_back(batchnorm):
    """On a run whose validation loss rises after its first epochs (a large step on few
    samples), EarlyStopping(patience=3) stops three epochs after the best one, and the network
    ends with that epoch's weights and running statistics; History.best_epoch names it."""
    net, X, y = make_problem((16,), "tanh", batchnorm, backend="numba", n_samples=60,
                             n_features=20)
    X_val, y_val = X[40:], y[40:]
    snapshots = Snapshots()
    history = fastgrad.train(net, X[:40], y[:40], Parallel(SGD(2.0)), epochs=100,
                             validation=(X_val, y_val),
                             callbacks=[snapshots, fastgrad.training.EarlyStopping(3)])
    best = int(np.argmin(history.val_loss))
    assert history.epochs == best + 4 < 100  # stopped three epochs after the best
    assert history.best_epoch == best + 1
    for name, array in net.state_dict().items():
        np.testing.assert_array_equal(array, snapshots.after[best][name])
    assert net.loss(X_val, y_val) == history.val_loss[best] or batchnorm
    # without restore_best the last epoch's weights stay
    net, X, y = make_problem((16,), "tanh", batchnorm, backend="numba", n_samples=60,
                             n_features=20)
    history = fastgrad.train(net, X[:40], y[:40], Parallel(SGD(2.0)), epochs=100,
                             validation=(X_val, y_val), callbacks=[
                                 fastgrad.training.EarlyStopping(3, restore_best=False)])
    assert history.best_epoch is None and history.epochs == best + 4
    np.testing.assert_array_equal(net.params, snapshots.after[-1]["params"])


def test_early_stopping_follows_scikit_learns_rule():
    """scikit-learn's MLP counts an epoch as no improvement when its figure is above the best
    minus tol, moves the best on any gain, and stops once more than n_iter_no_change epochs
    in a row did not improve: EarlyStopping(patience=n + 1, min_delta=tol) on a given
    sequence of figures stops where that rule does; a NaN never improves; on_plateau can go on
    instead of stopping."""
    from fastgrad.training import EarlyStopping

    def stops_after(figures, stopping):
        class Run:
            stopped, epoch = False, 0
            history = fastgrad.History("x")
            net = None

            def stop(self):
                self.stopped = True

        run = Run()
        stopping.on_train_start(run)
        for figure in figures:
            run.epoch += 1
            run.history.running_loss.append(figure)
            stopping.on_epoch_end(run)
            if run.stopped:
                return run.epoch
        return None

    def sklearn_rule(figures, n, tol):  # _update_no_improvement_count, on the training loss
        best, count = np.inf, 0
        for epoch, loss in enumerate(figures, 1):
            count = count + 1 if loss > best - tol else 0
            best = min(best, loss)
            if count > n:
                return epoch
        return None

    rng = np.random.default_rng(0)
    for _ in range(200):
        figures = list(np.cumsum(rng.normal(-0.01, 0.05, 60)))
        n, tol = int(rng.integers(1, 6)), float(rng.choice([0.0, 1e-3, 0.02]))
        stopping = EarlyStopping(n + 1, "running_loss", tol, restore_best=False)
        assert stops_after(figures, stopping) == sklearn_rule(figures, n, tol)
    # a NaN never improves (scikit-learn's comparisons would count it as an improvement)
    assert stops_after([1.0, np.nan, np.nan],
                       EarlyStopping(2, "running_loss", restore_best=False)) == 3

    class Patient(EarlyStopping):
        plateaus = 0

        def on_plateau(self, run):
            self.plateaus += 1
            return self.plateaus == 3

    patient = Patient(2, "running_loss", 0.1, restore_best=False)
    assert stops_after([1.0] * 10, patient) == 7 and patient.plateaus == 3
    with pytest.raises(ValueError, match="monitor"):
        EarlyStopping(monitor="val_los")
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(monitor=lambda run: 0.0)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    with pytest.raises(ValueError, match="val_loss.*does not record"):
        fastgrad.train(net, X, y, epochs=2, callbacks=[EarlyStopping()])


def test_time_budget_and_progress_bar_callbacks():
    import io

    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    history = fastgrad.train(net, X, y, Sequential(), epochs=10 ** 6,
                             callbacks=[fastgrad.training.TimeBudget(0.01)])
    assert sum(history.train_seconds) >= 0.01 > sum(history.train_seconds[:-1])
    shown = io.StringIO()
    fastgrad.train(net, X, y, epochs=4,
                   callbacks=[fastgrad.training.ProgressBar("sgd", file=shown, disable=False)])
    assert "sgd" in shown.getvalue() and "4/4" in shown.getvalue()
    fastgrad.train(net, X, y, epochs=2, progress=True)  # a bar on stderr, not a terminal here
    with pytest.raises(TypeError, match="progress"):
        fastgrad.train(net, X, y, epochs=2, progress="yes")
    with pytest.raises(ValueError, match="seconds"):
        fastgrad.training.TimeBudget(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_run_stops_with_the_epoch_and_step_and_finite_weights(backend):
    net, X, y = make_problem((8,), "relu", loss="mse", backend=backend, n_samples=30)
    with pytest.raises(NonFiniteStep, match=r"epoch (\d+), step (\d+)") as failure:
        fastgrad.train(net, X, y, Parallel(SGD(lr=50.0), batch_size=10), epochs=500)
    assert np.isfinite(net.params).all()
    epoch, step = (int(n) for n in re.search(r"epoch (\d+), step (\d+)",
                                             str(failure.value)).groups())
    assert (failure.value.epoch, failure.value.step) == (epoch, step)
    assert 1 <= step <= 3  # three batches of 10 per epoch
    # the history holds every epoch completed before the failing one
    history = failure.value.history
    assert history.epochs == epoch - 1 and history.steps == [3] * (epoch - 1)


def step_by_step(net, X, y, optimizer, batch_size, epochs, seed):
    """The parallel approach as a loop of optimizer.step calls over the batches ``train``
    draws (the reference the whole-epoch kernel is checked against); returns the raised steps
    of each epoch, or the (epoch, step) of a NonFiniteStep."""
    from fastgrad.approaches.base import run_steps

    X, T, _ = net.check_batch(X, y)
    data = TrainingData(X, y, T, optimizer.workspaces)
    rng, raised = np.random.default_rng(seed), []
    for epoch in range(1, epochs + 1):
        try:
            raised.append(run_steps(optimizer, data, rng, batch_size, True,
                                    lambda rng: (None,)).raised)
        except NonFiniteStep as error:
            return epoch, error.step
    return raised


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm, loss", [(False, "cross_entropy"), (True, "mse")])
@pytest.mark.parametrize("batch_size", [None, 7, 10])
@pytest.mark.parametrize("make_optimizer", [lambda: SGD(3.0, momentum=0.9),
                                            lambda: Adam(0.05, weight_decay=0.01),
                                            lambda: RMSprop(0.01, momentum=0.5)])
def test_a_whole_epoch_in_one_kernel_call_equals_the_step_by_step_loop(
        backend, batchnorm, loss, batch_size, make_optimizer):
    """The same weights, optimizer state, running statistics and raised-step counts as a loop
    of optimizer.step calls on the same batches (30 samples: batches of 7 leave one of 2)."""
    nets = [make_problem((6, 5), "tanh", batchnorm, loss, backend, n_samples=30)[0]
            for _ in range(2)]
    _, X, y = make_problem((6, 5), "tanh", batchnorm, loss, backend, n_samples=30)
    approach = Parallel(make_optimizer(), batch_size=batch_size)
    history = fastgrad.train(nets[0], X, y, approach, epochs=4, seed=3)
    reference = make_optimizer().bind(nets[1])
    raised = step_by_step(nets[1], X, y, reference, batch_size, epochs=4, seed=3)
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(approach.bound.state, reference.state, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(approach.bound.steps, reference.steps)
    np.testing.assert_allclose(nets[0]._running_var, nets[1]._running_var, rtol=1e-13)
    assert history.raised == raised
    assert history.steps == [-(-30 // (batch_size or 30))] * 4


def test_the_step_by_step_comparison_sees_raised_steps():
    """The case above that must raise the loss of some batches does (SGD at lr 3 with
    momentum), so that equal raised counts are not equal zeros."""
    net, X, y = make_problem((6, 5), "tanh", False, "cross_entropy", "numba", n_samples=30)
    assert sum(step_by_step(net, X, y, SGD(3.0, momentum=0.9).bind(net), 7, epochs=4,
                            seed=3)) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_epoch_stops_where_the_step_by_step_loop_does(backend):
    """The whole-epoch kernel stops at the same epoch and step as the loop of steps, with the
    weights of the steps before it."""
    nets = [make_problem((8,), "relu", loss="mse", backend=backend, n_samples=30)[0]
            for _ in range(2)]
    _, X, y = make_problem((8,), "relu", loss="mse", backend=backend, n_samples=30)
    with pytest.raises(NonFiniteStep) as failure:
        fastgrad.train(nets[0], X, y, Parallel(SGD(lr=50.0), batch_size=10), epochs=500)
    where = tuple(int(n) for n in re.search(r"epoch (\d+), step (\d+)",
                                            str(failure.value)).groups())
    assert step_by_step(nets[1], X, y, SGD(lr=50.0).bind(nets[1]), 10, epochs=500,
                        seed=0) == where
    np.testing.assert_array_equal(nets[0].params, nets[1].params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_step_changes_nothing(backend):
    net, X, y = make_problem((4,), "tanh", True, loss="mse", backend=backend, n_samples=12)
    optimizer = Adam(0.1).bind(net)
    optimizer.step(X, y)
    params, state, steps = net.params.copy(), optimizer.state.copy(), optimizer.steps.copy()
    running = net._running_var.copy()
    with pytest.raises(NonFiniteStep):
        optimizer.step(X, np.full_like(y, 1e300))  # the loss overflows
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(optimizer.state, state)
    np.testing.assert_array_equal(optimizer.steps, steps)
    np.testing.assert_array_equal(net._running_var, running)


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_a_warm_step_allocates_no_arrays(backend):
    import tracemalloc

    net, X, y = make_problem((64,), "tanh", True, backend=backend, n_samples=256,
                             n_features=32, n_classes=10)
    optimizer = Adam(1e-3).bind(net)
    # warm: the buffers, and Numba's dispatcher, whose typing of namedtuple arguments (the
    # bundles) fills a cache of its own over the first hundred or so calls
    for _ in range(150):
        optimizer.step(X, y)
    tracemalloc.start()
    for _ in range(20):
        optimizer.step(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one batch's activations alone would be 256 * 64 * 8 = 131 kB
    assert peak < 4096


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(approach="greedy"), ValueError, "approach"),
    (dict(approach=SGD(0.1)), TypeError, "approach"),
    (dict(approach=Parallel(batch_size=10)), ValueError, "batch_size"),
    (dict(approach=Sequential(order=np.array([0, 10 ** 6]))), ValueError, "order"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=2.5), TypeError, "epochs"),
    (dict(validation=np.zeros(3)), TypeError, "validation"),
    (dict(callbacks=[3]), TypeError, "callbacks"),
    (dict(seed=1, rng=np.random.default_rng(1)), ValueError, "seed or rng"),
    (dict(rng=1), TypeError, "rng"),
])
def test_bad_training_arguments_move_no_weight(kwargs, error, match):
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
def test_an_approach_serves_one_network_and_an_optimizer_checks_batches(backend):
    net, X, y = make_problem((4,), backend=backend)
    approach = Parallel(SGD(0.1))
    fastgrad.train(net, X, y, approach, epochs=1)
    before = net.params.copy()
    with pytest.raises(ValueError, match="another network"):
        fastgrad.train(net.copy(), X, y, approach, epochs=1)
    optimizer = approach.bound
    with pytest.raises(ValueError, match="5 columns"):
        optimizer.step(X[:, :3], y)
    with pytest.raises(ValueError, match="NaN or inf"):
        optimizer.step(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match="labels must lie"):
        optimizer.step(X, y + 5)
    with pytest.raises(ValueError, match="layer must be"):
        optimizer.layer_step(X, y, 2)
    with pytest.raises(TypeError, match="integer class labels"):
        optimizer.step(X, y.astype(float))
    with pytest.raises(ValueError, match="9 class labels"):
        optimizer.step(X, y[:5])
    with pytest.raises(ValueError, match="gradient must have shape"):
        optimizer.apply(np.zeros(3))
    with pytest.raises(TypeError, match="gradient must be a numeric array"):
        optimizer.apply(np.array(["x"] * net.n_params))
    np.testing.assert_array_equal(net.params, before)
    np.testing.assert_array_equal(optimizer.steps, [1, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_optimizer_checks_regression_and_binary_targets(backend):
    net, X, y = make_problem((4,), loss="mse", backend=backend)
    with pytest.raises(ValueError, match="NaN or inf"):
        SGD(0.1).bind(net).step(X, np.where(y > 0, np.inf, y))
    net, X, y = make_problem((4,), loss="binary_cross_entropy", backend=backend)
    with pytest.raises(ValueError, match="0/1 targets"):
        SGD(0.1).bind(net).step(X, y + 0.5)
    assert np.isfinite(SGD(0.1).bind(net).step(X, y))


@pytest.mark.parametrize("make, error, match", [
    (lambda: Parallel(optimizer="adam"), TypeError, "optimizer"),
    (lambda: Parallel(batch_size=0), ValueError, "batch_size"),
    (lambda: Parallel(batch_size=2.5), TypeError, "batch_size"),
    (lambda: Parallel(count_raised="yes"), TypeError, "count_raised"),
    (lambda: LayerWise(order="sideways"), ValueError, "order"),
    (lambda: LayerWise(SGD(0.1), order="forward"), ValueError, "order"),
    (lambda: Sequential(order="sideways"), ValueError, "order"),
    (lambda: Sequential(lr=0), ValueError, "lr"),
    (lambda: Sequential(step="line_search"), ValueError, "step"),
    (lambda: Sequential(batch_size=-1), ValueError, "batch_size"),
    (lambda: Sequential().set_params(lr=-1.0), ValueError, "lr"),
    (lambda: Sequential().set_params(momentum=0.9), ValueError, "momentum"),
])
def test_an_approach_checks_its_options_when_made(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_name_is_the_approach_with_its_defaults():
    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    for name, approach in (("parallel", Parallel()), ("layerwise", LayerWise()),
                           ("sequential", Sequential())):
        by_name, by_object = net.copy(), net.copy()
        first = fastgrad.train(by_name, X, y, name, epochs=2)
        second = fastgrad.train(by_object, X, y, approach, epochs=2)
        np.testing.assert_array_equal(by_name.params, by_object.params)
        assert first.loss == second.loss and first.approach == name


@pytest.mark.parametrize("make", [
    lambda n_params: Parallel(Adam(0.01), batch_size=8),
    lambda n_params: LayerWise(RMSprop(0.01, momentum=0.5), order="permutation", batch_size=10),
    lambda n_params: Sequential(order="permutation", step="newton", batch_size=12),
    lambda n_params: Sequential(order=np.arange(n_params)[::-1], lr=0.2, batch_size=10),
], ids=["parallel", "layerwise", "sequential", "sequential-array"])
def test_a_run_continued_with_the_same_generator_equals_the_uninterrupted_run(make):
    """Four epochs in one run against two runs of two epochs, the second continuing with the
    first's generator and with a pickle round trip of the network and the approach in between
    (which carries the optimizer's state, not the network): the weights, running statistics
    and optimizer state end bit for bit the same. Every approach here draws from the
    generator (a fresh order of the samples every epoch, of the layers or coordinates)."""
    import pickle

    net, X, y = make_problem((6,), "tanh", True, backend="numba", n_samples=24)
    whole, approach = net.copy(), make(net.n_params)
    fastgrad.train(whole, X, y, approach, epochs=4, seed=1)

    first, halves = net.copy(), make(net.n_params)
    rng = np.random.default_rng(1)
    fastgrad.train(first, X, y, halves, epochs=2, rng=rng)
    first, halves = pickle.loads(pickle.dumps((first, halves)))
    assert getattr(halves, "bound", None) is None  # bound again to the next network it trains
    fastgrad.train(first, X, y, halves, epochs=2, rng=rng)
    for name, value in whole.state_dict().items():
        np.testing.assert_array_equal(first.state_dict()[name], value)
    for name, value in approach.state_dict().items():
        np.testing.assert_array_equal(halves.state_dict()[name], value)
    # a second run with a fresh generator of the same seed does not continue: its shuffles
    # repeat the first run's, so it ends elsewhere
    restarted, again = net.copy(), make(net.n_params)
    fastgrad.train(restarted, X, y, again, epochs=2, seed=1)
    fastgrad.train(restarted, X, y, again, epochs=2, seed=1)
    assert not np.array_equal(restarted.params, whole.params)


def test_an_unpickled_approach_binds_its_state_only_to_a_network_of_the_same_shape():
    import pickle

    net, X, y = make_problem((6,), "tanh", backend="numba", n_samples=24)
    approach = Parallel(Adam(0.01), batch_size=8)
    fastgrad.train(net, X, y, approach, epochs=1)
    carried = pickle.loads(pickle.dumps(approach))
    assert carried.bound is None and carried.state_dict()["steps"].tolist() == [3, 3]
    other = fastgrad.MLP([5, 3, 3], backend="numba")
    with pytest.raises(ValueError, match="optimizer's state is"):
        fastgrad.train(other, X, y, carried, epochs=1)


def test_approach_options_read_and_change_like_estimator_parameters():
    approach = Sequential(order="permutation", lr=0.5)
    assert approach.get_params() == {"order": "permutation", "lr": 0.5, "step": "gradient",
                                     "batch_size": None, "shuffle": True}
    assert approach.set_params(step="newton", lr=0.25) is approach
    assert (approach.step, approach.lr) == ("newton", 0.25)
    with pytest.raises(ValueError, match="lr"):
        approach.set_params(lr=-1.0, step="gradient")
    assert (approach.step, approach.lr) == ("newton", 0.25)  # nothing changed
    with pytest.raises(ValueError, match="no option"):
        Parallel().set_params(momentum=0.5)


def test_nested_options_reach_the_optimizer_as_scikit_learn_expects():
    """get_params(deep=True) names the optimizer's options ``optimizer__lr``; set_params and
    sklearn's clone and ParameterGrid reach them; the config round-trips through JSON."""
    import json

    from sklearn.base import clone
    from sklearn.model_selection import ParameterGrid

    approach = Parallel(Adam(0.01, betas=(0.8, 0.9)), batch_size=16)
    params = approach.get_params(deep=True)
    assert params["optimizer__lr"] == 0.01 and params["optimizer__betas"] == (0.8, 0.9)
    assert "optimizer__lr" not in approach.get_params(deep=False)
    copy = clone(approach)
    assert copy is not approach and copy.optimizer is not approach.optimizer
    assert copy.get_params(deep=False)["batch_size"] == 16 and copy.optimizer.betas == (0.8, 0.9)
    lrs = []
    for cell in ParameterGrid({"optimizer__lr": [0.1, 0.2], "batch_size": [8, None]}):
        lrs.append(clone(approach).set_params(**cell).optimizer.lr)
    assert sorted(lrs) == [0.1, 0.1, 0.2, 0.2]
    with pytest.raises(ValueError, match="lr"):
        approach.set_params(optimizer__lr=-1.0)
    assert approach.optimizer.lr == 0.01
    config = json.loads(json.dumps(approach.config()))
    rebuilt = fastgrad.Approach.from_config(config)
    assert rebuilt.config() == approach.config() and isinstance(rebuilt.optimizer, Adam)
    with pytest.raises(ValueError, match="type must be one of"):
        fastgrad.Approach.from_config({"type": "Adam"})


def test_an_assigned_option_is_checked_and_used_by_the_next_run():
    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    approach = Sequential(lr=0.3)
    approach.step = "newton"
    newton = net.copy()
    fastgrad.train(newton, X, y, approach, epochs=1)
    expected = net.copy()
    fastgrad.train(expected, X, y, Sequential(lr=0.3, step="newton"), epochs=1)
    np.testing.assert_array_equal(newton.params, expected.params)
    approach.batch_size = 0
    with pytest.raises(ValueError, match="batch_size"):
        fastgrad.train(net, X, y, approach, epochs=1)


@pytest.mark.parametrize("make", [lambda: Parallel(SGD(0.1)), lambda: Sequential(),
                                  lambda: LayerWise(SGD(0.1))])
def test_a_full_batch_run_shares_one_workspace_between_its_steps_and_its_evaluation(make):
    """The run's pool: the steps on the whole training set and the evaluation of it after every
    epoch use the same buffers (one workspace), the validation set of another size a second."""
    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    sizes = []

    class Pool(fastgrad.Callback):
        def on_train_end(self, run):
            sizes.extend(run.workspaces.sizes)

    fastgrad.train(net, X, y, make(), epochs=2, validation=(X[:7], y[:7]), callbacks=[Pool()])
    assert sizes == [7, 20]


def test_the_run_calls_an_approachs_hooks():
    """An approach of a test's own (docs/design.md, "Adding an approach"): it widens nothing but
    doubles the inputs (prepare_inputs), steps with a gradient it computes itself through the
    optimizer's apply (as forward gradients will), predicts its own way (predict) and reports
    a figure of its own on odd epochs (EpochResult.figures)."""
    import dataclasses

    from fastgrad.approaches import EpochResult
    from fastgrad.approaches.base import WithOptimizer

    @dataclasses.dataclass
    class Doubled(WithOptimizer):
        optimizer: object = dataclasses.field(default_factory=lambda: SGD(0.1))
        name = "doubled"

        batch_size: None = None
        count_raised: bool = False

        def prepare_inputs(self, net, X, y):
            return 2 * np.asarray(X)

        def run_epoch(self, net, data, rng):
            gradient = net.gradient(data.X, data.y)
            self.bound.apply(gradient)
            odd = self.bound.steps[0] % 2 == 1
            return EpochResult(1, 0, figures={"norm": float(np.linalg.norm(gradient))} if odd
                               else {})

        def predict(self, net, point):
            return np.zeros(len(point.logits), dtype=np.int64)

    net, X, y = make_problem((4,), "tanh", backend="cython", n_samples=20)
    reference = net.copy()
    history = fastgrad.train(net, X, y, Doubled(), epochs=3, validation=(X[:6], y[:6]))
    fastgrad.train(reference, 2 * X, y, Parallel(SGD(0.1), count_raised=False), epochs=3)
    np.testing.assert_allclose(net.params, reference.params, rtol=1e-14, atol=1e-15)
    assert history.approach == "doubled"
    assert history.accuracy == [float(np.mean(y == 0))] * 3
    assert history.val_accuracy == [float(np.mean(y[:6] == 0))] * 3
    assert history.loss[-1] == net.loss(2 * X, y)
    norms = history.figures["norm"]
    assert norms[1] is None and norms[0] > 0 and norms[2] > 0 and len(norms) == 3


def test_set_params_is_all_or_nothing_across_nested_objects():
    approach = Parallel(SGD(0.1, momentum=0.5), batch_size=4)
    with pytest.raises(ValueError, match="lr"):
        approach.set_params(batch_size=2, optimizer__momentum=0.9, optimizer__lr=-1.0)
    assert approach.batch_size == 4
    assert approach.optimizer.get_params() == {"lr": 0.1, "momentum": 0.5, "nesterov": False,
                                               "weight_decay": 0.0}
    np.testing.assert_array_equal(approach.optimizer.hyper, SGD(0.1, momentum=0.5).hyper)


def test_a_copied_optimizer_has_hyperparameters_of_its_own():
    import copy
    import pickle

    rule = Adam(0.1)
    for twin in (copy.copy(rule), copy.deepcopy(rule), pickle.loads(pickle.dumps(rule))):
        twin.lr = 0.5
        assert rule.lr == 0.1 and rule.hyper[0] == 0.1 and twin.hyper[0] == 0.5
    with pytest.raises(AttributeError):
        rule.hyper = np.zeros(3)


def test_an_approach_with_a_new_optimizer_starts_fresh_and_keeps_a_state_it_could_not_bind():
    import pickle

    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    approach = Parallel(SGD(0.1, momentum=0.9))
    fastgrad.train(net, X, y, approach, epochs=2)
    assert approach.state_dict()["steps"].tolist() == [2, 2]
    approach.set_params(optimizer=Adam(0.01))
    assert approach.bound is None and approach.state_dict() == {}
    fastgrad.train(net, X, y, approach, epochs=1)
    assert approach.bound.rule is approach.optimizer and approach.bound.state.shape[0] == 2
    carried = pickle.loads(pickle.dumps(approach))
    with pytest.raises(ValueError, match="optimizer's state is"):
        fastgrad.train(fastgrad.MLP([5, 3, 3], backend="numba"), X, y, carried, epochs=1)
    assert carried.state_dict()["steps"].tolist() == [1, 1]  # still there for the right one
    fastgrad.train(net.copy(), X, y, carried, epochs=1)
    assert carried.bound.steps.tolist() == [2, 2]


def test_what_does_not_pickle_says_so_and_configs_name_only_real_classes():
    import pickle

    net = fastgrad.MLP([3, 4, 2])
    with pytest.raises(TypeError, match="state_dict"):
        pickle.dumps(SGD(0.1).bind(net))
    with pytest.raises(ValueError, match="type must be one of"):
        fastgrad.Approach.from_config({"type": "Approach"})
    with pytest.raises(ValueError, match="type must be one of"):
        fastgrad.optim.Optimizer.from_config({"type": "Optimizer", "lr": 0.1})
    with pytest.raises(TypeError, match="exists already"):
        type("SGD", (fastgrad.optim.Optimizer,), {})  # another module's SGD


def test_callbacks_must_be_a_list_and_only_started_callbacks_see_the_end():
    net, X, y = make_problem((4,), backend="numba", n_samples=20)
    with pytest.raises(TypeError, match="list of fastgrad.Callback"):
        fastgrad.train(net, X, y, epochs=1, callbacks=lambda run: None)
    with pytest.raises(TypeError, match="list of fastgrad.Callback"):
        fastgrad.train(net, X, y, epochs=1, callbacks=fastgrad.training.TimeBudget(1.0))

    class Broken(fastgrad.Callback):
        def on_train_start(self, run):
            raise RuntimeError("broken at the start")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="broken at the start"):
        fastgrad.train(net, X, y, epochs=1, callbacks=[recorder, Broken(), Recorder()])
    assert [call[0] for call in recorder.calls] == ["start", "end"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm", [False, True])
def test_lbfgs_is_scipys_l_bfgs_b_on_the_loss_and_gradient(backend, batchnorm):
    """An LBFGS epoch ends where scipy's L-BFGS-B ends on J and its gradient (computed here
    through the public MLP.loss and MLP.gradient, with sample weights and alpha), with its
    iterations as steps; with BatchNorm the running statistics come from the final weights."""
    import scipy.optimize

    from fastgrad import LBFGS

    net, X, y = make_problem((6,), "tanh", batchnorm, backend=backend, n_samples=40)
    weight = np.random.default_rng(2).uniform(0.5, 1.5, len(X))
    reference = net.copy()
    start = net.loss(X, y, sample_weight=weight)

    def loss_and_gradient(theta):
        reference.params[:] = theta
        return (reference.loss(X, y, sample_weight=weight),
                reference.gradient(X, y, sample_weight=weight))

    expected = scipy.optimize.minimize(loss_and_gradient, net.params.copy(), jac=True,
                                       method="L-BFGS-B",
                                       options={"maxiter": 30, "gtol": 1e-6, "maxcor": 10})
    history = fastgrad.train(net, X, y, LBFGS(max_iter=30, tol=1e-6), epochs=1,
                             sample_weight=weight)
    assert relative_error(net.params, expected.x) < 1e-9
    assert history.steps == [expected.nit] and history.raised == [0]
    assert history.figures["evaluations"] == [expected.nfev]
    assert history.figures["converged"] == [int(expected.success)]
    assert history.loss[0] == pytest.approx(expected.fun, rel=1e-12)
    assert history.running_loss[0] == pytest.approx(start, rel=1e-12)  # J before the epoch
    if batchnorm:  # the running statistics: the whole set's at the final weights
        point, hidden = net.point(X, y, sample_weight=weight), slice(0, net.sizes[1])
        biased = 1 / point.istd[hidden] ** 2 - 1e-5
        np.testing.assert_allclose(net._running_mean[hidden], point.mean[hidden], rtol=1e-10,
                                   atol=1e-14)
        np.testing.assert_allclose(net._running_var[hidden], biased * len(X) / (len(X) - 1),
                                   rtol=1e-8)


def test_lbfgs_options_and_config():
    from fastgrad import LBFGS

    approach = LBFGS(max_iter=5, max_fun=50, tol=0.0, memory=3)
    assert fastgrad.Approach.from_config(approach.config()).get_params() == approach.get_params()
    for option, value in (("max_iter", 0), ("max_fun", -1), ("tol", -1e-3), ("memory", 0)):
        with pytest.raises(ValueError, match=option):
            LBFGS(**{option: value})
    net, X, y = make_problem((4,), backend="numpy", n_samples=20)
    history = fastgrad.train(net, X, y, "lbfgs", epochs=2)
    assert history.epochs == 2 and history.running_loss[1] == pytest.approx(history.loss[0])


def test_evaluate_training_false_and_shuffle_false():
    """evaluate_training=False leaves History.loss and accuracy None (the running loss stays,
    and the weights are those of the evaluated run); shuffle=False takes the batches in order:
    the same steps as a loop over them."""
    net, X, y = make_problem((5,), backend="cython", n_samples=30)
    twin = net.copy()
    evaluated = fastgrad.train(net, X, y, Parallel(Adam(0.01), batch_size=8), epochs=3)
    quiet = fastgrad.train(twin, X, y, Parallel(Adam(0.01), batch_size=8), epochs=3,
                           evaluate_training=False)
    np.testing.assert_array_equal(net.params, twin.params)
    assert quiet.loss == [None] * 3 and quiet.accuracy == [None] * 3
    assert str(quiet).splitlines()[1].split()[1:3] == ["-", "-"]  # printed without them
    assert quiet.running_loss == evaluated.running_loss
    in_order, loop = net.copy(), net.copy()
    fastgrad.train(in_order, X, y, Parallel(SGD(0.1), batch_size=8, shuffle=False), epochs=2)
    bound = SGD(0.1).bind(loop)
    for _ in range(2):
        for first in range(0, 30, 8):
            bound.step(X[first:first + 8], y[first:first + 8])
    assert relative_error(in_order.params, loop.params) < 1e-14
    with pytest.raises(TypeError, match="shuffle"):
        Parallel(shuffle="no")
