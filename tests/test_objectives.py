"""The objectives beyond a plain mean loss — the L2 penalty ``alpha``, sample weights, multi-label
binary cross-entropy, the Poisson loss, half the squared error and a sum over the outputs —
against PyTorch in float64 wherever J is seen: the three gradient methods, ten optimizer steps
against torch.optim, and sweeps against the naive sweep, in every backend; their definitions
against scikit-learn's; what a user meets (predictions, files, errors)."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgrad
from fastgrad import optim
from helpers import BACKENDS, objective_problem, orders_of, relative_error
from torch_oracle import torch_loss, torch_loss_and_gradient, torch_naive_sweep

# (loss, output_reduction, n_out)
OBJECTIVES = [
    pytest.param("cross_entropy", "mean", 3, id="ce"),
    pytest.param("mse", "sum", 3, id="mse-sum"),
    pytest.param("squared_error", "mean", 2, id="squared_error"),
    pytest.param("binary_cross_entropy", "mean", 1, id="bce-1"),
    pytest.param("binary_cross_entropy", "mean", 3, id="multilabel-mean"),
    pytest.param("binary_cross_entropy", "sum", 3, id="multilabel-sum"),
    pytest.param("poisson", "mean", 2, id="poisson-mean"),
    pytest.param("poisson", "sum", 3, id="poisson-sum"),
]
# (alpha, weighted): a penalty, sample weights, both
WEIGHTINGS = [pytest.param(0.0, True, id="weights"), pytest.param(0.4, False, id="alpha"),
              pytest.param(0.4, True, id="alpha-weights")]
GRADIENT_TOLERANCE = {"backprop": 1e-10, "forward": 1e-10, "finite_difference": 1e-6}


# ---------------------------------------------------------------- the gradient, three ways
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha, weighted", WEIGHTINGS)
@pytest.mark.parametrize("loss, reduction, n_out", OBJECTIVES)
@pytest.mark.parametrize("hidden, batchnorm", [((6,), False), ((5, 4), True)],
                         ids=["1h", "2h-bn"])
def test_three_methods_match_torch_autograd(hidden, batchnorm, loss, reduction, n_out, alpha,
                                            weighted, backend):
    net, X, y, weight = objective_problem(loss, reduction, n_out, alpha, weighted, hidden,
                                          "sigmoid" if batchnorm else "tanh", batchnorm, backend)
    expected_loss, expected = torch_loss_and_gradient(net, X, y, weight)
    point = net.point(X, y, sample_weight=weight)
    assert point.loss == pytest.approx(expected_loss, rel=1e-12)
    for method, tolerance in GRADIENT_TOLERANCE.items():
        assert relative_error(point.gradient(method), expected) < tolerance, method
    # single coordinates: forward mode and the incremental loss change (against torch's loss
    # at the moved point, a difference of two evaluations: hence the looser tolerance)
    for j in np.linspace(0, net.n_params - 1, 6).astype(int):
        assert point.coordinate_derivative(j) == pytest.approx(expected[j], rel=1e-9, abs=1e-12)
        theta = torch.tensor(net.params.astype(np.float64))
        theta[j] += 0.05
        moved = torch_loss(net, theta, X, y, weight).item()
        assert point.loss_change(j, 0.05) == pytest.approx(moved - expected_loss, rel=1e-8,
                                                           abs=1e-13)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loss=st.sampled_from(["mse", "squared_error", "binary_cross_entropy", "poisson",
                             "cross_entropy"]),
       reduction=st.sampled_from(["mean", "sum"]), n_out=st.integers(2, 4),
       hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       batchnorm=st.booleans(), alpha=st.floats(0, 5), n_samples=st.integers(2, 12),
       weighted=st.booleans(), backend=st.sampled_from(BACKENDS), seed=st.integers(0, 2**16))
def test_random_objectives_match_torch_autograd(loss, reduction, n_out, hidden, batchnorm,
                                                alpha, n_samples, weighted, backend, seed):
    if loss == "cross_entropy":
        reduction = "mean"
    net, X, y, weight = objective_problem(loss, reduction, n_out, alpha, weighted, tuple(hidden),
                                          "tanh", batchnorm, backend, seed, n_samples)
    expected_loss, expected = torch_loss_and_gradient(net, X, y, weight)
    point = net.point(X, y, sample_weight=weight)
    assert point.loss == pytest.approx(expected_loss, rel=1e-11)
    for method in ("backprop", "forward"):
        assert relative_error(point.gradient(method), expected) < 1e-9, method


def test_float32_objectives_agree_with_float64():
    for loss, reduction, n_out in [("poisson", "sum", 3), ("binary_cross_entropy", "sum", 3)]:
        for backend in BACKENDS:
            net, X, y, weight = objective_problem(loss, reduction, n_out, 0.3, True,
                                                  backend=backend)
            single = fastgrad.MLP(net.sizes, net.activation, False, loss, "float32", 0, backend,
                                  output_reduction=reduction, alpha=0.3)
            single.params = net.params.astype(np.float32)
            net.params = single.params.astype(np.float64)
            assert relative_error(single.gradient(X, y, sample_weight=weight),
                                  net.gradient(X, y, sample_weight=weight)) < 1e-5


# ---------------------------------------------------------------- optimizers, torch.optim
OPTIMIZERS = [
    pytest.param(optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9), id="momentum"),
    pytest.param(optim.Adam, torch.optim.Adam, dict(lr=0.01), id="adam"),
    pytest.param(optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.5),
                 id="rmsprop"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ours, theirs, options", OPTIMIZERS)
@pytest.mark.parametrize("loss, reduction, n_out", OBJECTIVES)
def test_ten_weighted_penalised_steps_match_torch_optim(loss, reduction, n_out, ours, theirs,
                                                        options, backend):
    net, X, y, weight = objective_problem(loss, reduction, n_out, 0.4, True, (6, 5),
                                          backend=backend, n_samples=40)
    theta = torch.tensor(net.params.astype(np.float64), requires_grad=True)
    reference = theirs([theta], **options)
    optimizer = ours(**options).bind(net)
    rng = np.random.default_rng(1)
    for _ in range(10):
        batch = rng.choice(len(X), 16, replace=False)  # the weights travel with their samples
        reference.zero_grad()
        expected_loss = torch_loss(net, theta, X[batch], y[batch], weight[batch])
        expected_loss.backward()
        reference.step()
        assert optimizer.step(X[batch], y[batch], sample_weight=weight[batch]) == \
            pytest.approx(expected_loss.item(), rel=1e-10)
        assert relative_error(net.params, theta.detach().numpy()) < 1e-10


# ---------------------------------------------------------------- sweeps, the naive sweep
@pytest.mark.parametrize("step", ["gradient", "newton"])
@pytest.mark.parametrize("alpha, weighted", WEIGHTINGS)
@pytest.mark.parametrize("loss, reduction, n_out", OBJECTIVES)
@pytest.mark.parametrize("hidden, batchnorm", [((4,), False), pytest.param(
    (4, 3), True, marks=pytest.mark.slow)], ids=["1h", "2h-bn"])
def test_sweeps_in_every_order_equal_the_naive_sweep(hidden, batchnorm, loss, reduction, n_out,
                                                     alpha, weighted, step):
    net, X, y, weight = objective_problem(loss, reduction, n_out, alpha, weighted, hidden,
                                          "tanh", batchnorm, n_samples=8)
    for order, kwargs, visited in orders_of(net):
        expected, raised, flipped = torch_naive_sweep(
            net, X, y, visited, step, 0.3, greedy_steps=12 if visited is None else 0,
            sample_weight=weight)
        for backend in BACKENDS:
            twin = net.copy(backend=backend)
            report = fastgrad.sweep(twin, X, y, order=order, lr=0.3, step=step,
                                    sample_weight=weight, **kwargs)
            assert relative_error(twin.params, expected) < 1e-11, (order, backend)
            if not batchnorm:  # (a bias before BatchNorm: its derivative's sign is round-off)
                assert report.flipped == flipped, (order, backend)
            assert report.loss == pytest.approx(
                torch_loss(net, torch.tensor(expected), X, y, weight).item(), rel=1e-11)


# ---------------------------------------------------------------- the definitions
def sklearn_loss(name, y, prediction, weight):
    """scikit-learn's MLP loss functions (neural_network._base), weighted as its MLP weights
    them."""
    from sklearn.neural_network._base import LOSS_FUNCTIONS

    return LOSS_FUNCTIONS[name](y, prediction, weight)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_losses_and_the_penalty_are_scikit_learns(weighted):
    """squared_error, multi-label binary cross-entropy and poisson with output_reduction="sum"
    (the mean for squared_error) and alpha compute scikit-learn's MLP objective: its loss on
    the network's predictions plus alpha / (2 n) Σ‖W‖², n the sum of the weights."""
    cases = [("squared_error", "mean", "squared_error", lambda net, X: net.forward(X)),
             ("binary_cross_entropy", "sum", "binary_log_loss",
              lambda net, X: net.predict_proba(X)),
             ("poisson", "sum", "poisson", lambda net, X: net.predict(X))]
    for loss, reduction, theirs, predict in cases:
        net, X, y, weight = objective_problem(loss, reduction, 3, 0.7, weighted)
        n = len(X) if weight is None else weight.sum()
        penalty = 0.7 / (2 * n) * sum((layer.W ** 2).sum() for layer in net.layers)
        expected = sklearn_loss(theirs, y, predict(net, X), weight) + penalty
        if loss == "poisson":
            # scikit-learn keeps the constant y log y - y, which fastgrad's loss drops
            from scipy.special import xlogy

            expected -= np.average((xlogy(y, y) - y).sum(axis=1), weights=weight)
        assert net.loss(X, y, sample_weight=weight) == pytest.approx(expected, rel=1e-12)


def test_the_gradient_with_alpha_and_weights_is_scikit_learns():
    """scikit-learn's MLPRegressor computes the same loss and gradient from the same weights.
    With several outputs its loss is half the mean over them but its gradient that of half
    their sum (its output delta is not divided by the number of outputs): fastgrad's
    "squared_error" gives the first, output_reduction="sum" the second."""
    from sklearn.neural_network import MLPRegressor

    for n_out in (1, 2):
        net, X, y, weight = objective_problem("squared_error", "mean", n_out, 0.7, True, (5, 4))
        summed = fastgrad.MLP(net.sizes, "tanh", loss="squared_error", output_reduction="sum",
                              alpha=0.7, backend="numpy")
        summed.params = net.params
        theirs = MLPRegressor(hidden_layer_sizes=(5, 4), activation="tanh", alpha=0.7)
        theirs._random_state = np.random.RandomState(0)
        theirs._initialize(y, list(net.sizes), X.dtype)
        theirs.coefs_ = [layer.W.copy() for layer in net.layers]
        theirs.intercepts_ = [layer.b.copy() for layer in net.layers]
        activations = [X] + [None] * len(net.layers)
        loss, coef_grads, intercept_grads = theirs._backprop(
            X, y, weight, activations, [None] * len(net.layers),
            [np.empty_like(W) for W in theirs.coefs_],
            [np.empty_like(b) for b in theirs.intercepts_])
        assert net.loss(X, y, sample_weight=weight) == pytest.approx(loss, rel=1e-12)
        expected = np.concatenate([part.ravel() for pair in zip(coef_grads, intercept_grads)
                                   for part in pair])
        assert relative_error(summed.gradient(X, y, sample_weight=weight), expected) < 1e-12
        if n_out == 1:
            assert relative_error(net.gradient(X, y, sample_weight=weight), expected) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_integer_weight_counts_a_sample_that_many_times(backend):
    net, X, y, _ = objective_problem("poisson", "sum", 2, 0.5, False, backend=backend)
    weight = np.array([2, 0, 1, 3, 1, 1, 0, 2, 1, 1, 1], dtype=float)
    repeated = np.repeat(np.arange(len(X)), weight.astype(int))
    assert net.loss(X, y, sample_weight=weight) == pytest.approx(
        net.loss(X[repeated], y[repeated]), rel=1e-13)
    assert relative_error(net.gradient(X, y, sample_weight=weight),
                          net.gradient(X[repeated], y[repeated])) < 1e-13
    twin = net.copy()
    fastgrad.sweep(net, X, y, sample_weight=weight)
    fastgrad.sweep(twin, X[repeated], y[repeated])
    assert relative_error(net.params, twin.params) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_of_one_and_alpha_zero_compute_exactly_what_none_do(backend):
    for loss, reduction, n_out in [("cross_entropy", "mean", 3), ("mse", "mean", 2),
                                   ("binary_cross_entropy", "mean", 1)]:
        net, X, y, _ = objective_problem(loss, reduction, n_out, 0.0, False, (5, 4), "tanh",
                                         True, backend)
        ones = np.ones(len(X))
        assert net.loss(X, y, sample_weight=ones) == net.loss(X, y)
        np.testing.assert_array_equal(net.gradient(X, y, sample_weight=ones), net.gradient(X, y))
        a, b = net.copy(), net.copy()
        fastgrad.sweep(a, X, y, order="reverse", step="newton", sample_weight=ones)
        fastgrad.sweep(b, X, y, order="reverse", step="newton")
        np.testing.assert_array_equal(a.params, b.params)


# ---------------------------------------------------------------- training with weights
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_epoch_kernel_equals_the_loop_of_weighted_steps(backend):
    """Parallel's whole-epoch kernel gathers each batch's weights with its samples and skips a
    batch whose weights sum to zero, as the loop of steps does; its running loss (the batches'
    losses before their steps, by their sizes) is the loop's, and the mean of the losses the
    steps return."""
    from fastgrad.approaches.base import TrainingData, run_steps
    from fastgrad.model import Workspaces

    net, X, y, weight = objective_problem("binary_cross_entropy", "sum", 3, 0.2, True,
                                          backend=backend, n_samples=30)
    weight[3:] = 0.0  # of the 6 batches of 5, at least 3 weigh nothing
    approach = fastgrad.Parallel(optim.Adam(0.02), batch_size=5)
    loop, fused = net.copy(), net.copy()
    reference = fastgrad.Parallel(optim.Adam(0.02), batch_size=5)
    running = {"fused": [], "loop": [], "steps": []}
    for twin, used in ((fused, approach), (loop, reference)):
        workspaces = Workspaces(twin)
        _, T, checked = twin.check_batch(X, y, weight)
        used.prepare(twin, workspaces)
        rng = np.random.default_rng(4)
        data = TrainingData(X, y, T, workspaces, checked)
        for _ in range(3):
            if used is approach:
                running["fused"].append(used.run_epoch(twin, data, rng).running_loss)
            else:
                losses, sizes = [], []
                step = used.bound.step
                used.bound.step = lambda X, y, w: losses.append(step(X, y, w)) or losses[-1]
                running["loop"].append(run_steps(used.bound, data, rng, 5, True,
                                                 lambda rng: [None]).running_loss)
                del used.bound.step
                running["steps"].append(np.mean(losses))  # every batch has 5 samples
    assert relative_error(fused.params, loop.params) < 1e-13
    assert relative_error(np.array(running["fused"]), np.array(running["loop"])) < 1e-13
    assert relative_error(np.array(running["loop"]), np.array(running["steps"])) < 1e-15
    assert approach.bound.steps[0] == reference.bound.steps[0] <= 3 * 3


@pytest.mark.parametrize("approach", [
    fastgrad.Parallel(optim.SGD(0.1), batch_size=4), fastgrad.LayerWise(optim.SGD(0.1)),
    fastgrad.Sequential(lr=0.2, batch_size=6)], ids=["parallel", "layerwise", "sequential"])
def test_a_weighted_run_reports_the_weighted_loss_and_accuracy(approach):
    net, X, y, weight = objective_problem("binary_cross_entropy", "sum", 3, 0.1, True,
                                          n_samples=24, backend="cython")
    other = weight[::-1].copy()  # the validation set: the same samples, other weights
    history = fastgrad.train(net, X, y, approach, epochs=2, sample_weight=weight,
                             validation=(X, y, other))
    correct = (net.predict(X) == y).all(axis=1)
    for w, loss, accuracy in ((weight, history.loss, history.accuracy),
                              (other, history.val_loss, history.val_accuracy)):
        assert loss[-1] == pytest.approx(net.loss(X, y, sample_weight=w), rel=1e-12)
        assert accuracy[-1] == pytest.approx(np.average(correct, weights=w))
    assert history.val_loss != history.loss


# ---------------------------------------------------------------- predictions and files
def test_multilabel_and_poisson_predictions():
    net, X, y, _ = objective_problem("binary_cross_entropy", "sum", 3, 0.0, False)
    logits = net.forward(X)
    np.testing.assert_array_equal(net.predict(X), (logits > 0).astype(np.int64))
    np.testing.assert_allclose(net.predict_proba(X), 1 / (1 + np.exp(-logits)), rtol=1e-14)
    single, X1, _, _ = objective_problem("binary_cross_entropy", "mean", 1, 0.0, False)
    assert single.predict(X1).shape == single.predict_proba(X1).shape == (len(X1),)
    poisson, Xp, _, _ = objective_problem("poisson", "sum", 2, 0.0, False)
    np.testing.assert_allclose(poisson.predict(Xp), np.exp(poisson.forward(Xp)), rtol=1e-15)
    with pytest.raises(ValueError, match="classification loss"):
        poisson.predict_proba(Xp)


def test_files_carry_the_objective(tmp_path):
    net, X, y, weight = objective_problem("poisson", "sum", 2, 0.25, True, backend="cython")
    net.save(tmp_path / "net.safetensors")
    loaded = fastgrad.load(tmp_path / "net.safetensors")
    assert (loaded.loss_name, loaded.output_reduction, loaded.alpha) == ("poisson", "sum", 0.25)
    assert loaded.loss(X, y, sample_weight=weight) == net.loss(X, y, sample_weight=weight)
    assert fastgrad.MLP.from_config(net.config()).config() == net.config()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("weight, error, match", [
    (-np.ones(11), ValueError, "non-negative"),
    (np.r_[np.ones(10), np.nan], ValueError, "NaN or inf"),
    (np.r_[np.ones(10), np.inf], ValueError, "NaN or inf"),
    (np.ones(10), ValueError, "11 weights"),
    (np.ones((11, 1)), ValueError, "1-D"),
    (np.zeros(11), ValueError, "all zeros"),
    (np.array(["a"] * 11), TypeError, "numeric"),
    (np.full(11, 1e308), ValueError, "sum overflows"),
], ids=["negative", "nan", "inf", "short", "2-d", "zeros", "strings", "overflow"])
@pytest.mark.parametrize("call", ["loss", "gradient", "point", "step", "train", "sweep"])
def test_bad_sample_weights_are_refused_before_any_kernel_runs(call, weight, error, match):
    net, X, y, _ = objective_problem("poisson", "sum", 2, 0.1, False, backend="cython")
    before, given = net.params.copy(), weight.copy()
    calls = {"loss": lambda: net.loss(X, y, sample_weight=weight),
             "gradient": lambda: net.gradient(X, y, sample_weight=weight),
             "point": lambda: net.point(X, y, sample_weight=weight),
             "step": lambda: optim.Adam(0.1).bind(net).step(X, y, sample_weight=weight),
             "train": lambda: fastgrad.train(net, X, y, "sequential", sample_weight=weight),
             "sweep": lambda: fastgrad.sweep(net, X, y, sample_weight=weight)}
    with pytest.raises(error, match=match):
        calls[call]()
    np.testing.assert_array_equal(net.params, before)
    np.testing.assert_array_equal(weight, given)


def test_sample_weights_are_not_changed():
    net, X, y, weight = objective_problem("mse", "mean", 2, 0.1, True, backend="cython")
    given = weight.copy()
    weight.flags.writeable = False  # a read-only array works, and is read only
    fastgrad.train(net, X, y, fastgrad.Parallel(optim.SGD(0.1), batch_size=4),
                   sample_weight=weight, epochs=2)
    fastgrad.sweep(net, X, y, sample_weight=weight)
    np.testing.assert_array_equal(weight, given)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(alpha=-1.0), ValueError, "alpha"),
    (dict(alpha=np.nan), ValueError, "alpha"),
    (dict(alpha="big"), TypeError, "alpha"),
    (dict(output_reduction="max"), ValueError, "output_reduction"),
    (dict(output_reduction="sum", loss="cross_entropy"), ValueError, "cross_entropy"),
    (dict(loss="hinge"), ValueError, "loss"),
])
def test_bad_objective_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastgrad.MLP((3, 4, 2), **kwargs)


@pytest.mark.parametrize("loss, y, match", [
    ("poisson", [[1.0, -0.5]] * 3, "non-negative"),
    ("poisson", [[1.0, np.nan]] * 3, "NaN or inf"),
    ("binary_cross_entropy", [[1, 0.5]] * 3, "0/1"),
    ("binary_cross_entropy", [[1, 2]] * 3, "0/1"),
    ("binary_cross_entropy", [1, 0, 1], r"shape \(3, 2\)"),
])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_targets_are_refused(loss, y, match, backend):
    net = fastgrad.MLP((2, 3, 2), loss=loss, backend=backend)
    X = np.ones((3, 2))
    before = net.params.copy()
    for call in (lambda: net.loss(X, y), lambda: optim.SGD(0.1).bind(net).step(X, y),
                 lambda: fastgrad.sweep(net, X, y), lambda: fastgrad.train(net, X, y)):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_poisson_sweep_keeps_its_means_through_a_huge_move(backend, dtype):
    """A logit moved far down and back: exp(z) must not be lost on the way (q (1 + expm1(dz))
    rounds to 0 once expm1(dz) rounds to -1, exp(z) underflows below -745 (float64) or -104
    (float32), and a mean carried by its changes would stay 0)."""
    net, X, y, weight = objective_problem("poisson", "sum", 1, 0.0, True, (4,), backend=backend,
                                          seed=3, dtype=dtype)
    y = np.ones_like(y)
    bias = net.index(1, "b", 0)
    net.params[bias] = 5.0  # the first step moves the output bias down by about 320
    reference = net.copy(backend="numpy")
    order = np.full(330, bias)
    report = fastgrad.sweep(net, X, y, order=order, lr=1.0, sample_weight=weight)
    fastgrad.sweep(reference, X, y, order=order, lr=1.0, sample_weight=weight)
    assert reference.params[bias] > -5  # back up, where exp(z) counts again
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    assert relative_error(net.params, reference.params) < tolerance
    assert report.loss == pytest.approx(net.loss(X, y, sample_weight=weight), rel=tolerance)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_poisson_sweep_counts_raised_steps_where_its_loss_is_negative(backend):
    """The Poisson loss drops y log y - y and is negative where the counts are large: a step
    raised J when J grew by more than a few units of |J|'s last place."""
    net, X, y, weight = objective_problem("poisson", "sum", 2, 0.1, True, backend=backend)
    y = y + 5.0
    assert net.loss(X, y, sample_weight=weight) < 0
    order = np.arange(net.n_params)
    _, raised, _ = torch_naive_sweep(net, X, y, order, "gradient", 0.05, sample_weight=weight)
    report = fastgrad.sweep(net.copy(), X, y, order=order, lr=0.05, sample_weight=weight)
    assert report.raised == raised == 0
    # steps that lower J by less than its round-off: not raised either
    report = fastgrad.sweep(net, X, y, order=order, lr=1e-12, sample_weight=weight)
    assert report.raised == 0
