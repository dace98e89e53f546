"""The optimizers against torch.optim, step by step, in float64: the network rebuilt in torch
from the same flat parameter vector (one parameter tensor per layer), the same batches."""
import numpy as np
import pytest
import torch

import fastgrad
from fastgrad import NonFiniteStep
from fastgrad.optim import SGD, Adam, RMSprop
from helpers import BACKENDS, make_problem, relative_error
from torch_oracle import torch_loss

OPTIMIZERS = [
    pytest.param(SGD, torch.optim.SGD, dict(lr=0.1), id="sgd"),
    pytest.param(SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.01), id="sgd-wd"),
    pytest.param(SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9), id="momentum"),
    pytest.param(SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01),
                 id="momentum-wd"),
    pytest.param(SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True), id="nesterov"),
    pytest.param(SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True,
                                            weight_decay=0.02), id="nesterov-wd"),
    pytest.param(Adam, torch.optim.Adam, dict(lr=0.01), id="adam"),
    pytest.param(Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6,
                                              weight_decay=0.01), id="adam-wd"),
    pytest.param(RMSprop, torch.optim.RMSprop, dict(lr=0.01), id="rmsprop"),
    pytest.param(RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5,
                                                    weight_decay=0.01), id="rmsprop-momentum-wd"),
]


def torch_layers(net):
    """One float64 leaf tensor per layer, holding that layer's slice of the parameters."""
    bounds = [*net.table[:, 2].tolist(), net.n_params]
    return [torch.tensor(net.params[lo:hi].astype(np.float64), requires_grad=True)
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def torch_step(net, layers, optimizer, X, y, only=None):
    """One torch.optim step; with ``only`` = l, the other layers have no gradient and so do not
    move (nor count a step), as in fastgrad's layer_step."""
    optimizer.zero_grad()
    loss = torch_loss(net, torch.cat(layers), X, y)
    loss.backward()
    if only is not None:
        for l, tensor in enumerate(layers):
            if l != only:
                tensor.grad = None
    optimizer.step()
    return loss.item()


def batches(X, y, size, n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        index = rng.choice(len(X), size, replace=False)
        yield X[index], y[index]


def round_off_gradients(net, ours, options):
    """The biases of Dense layers followed by BatchNorm: J does not depend on them, so without
    weight decay their gradient is zero but for round-off, which Adam and RMSprop divide by its
    own size; these move by about lr * 1e-17 / eps, in a direction set by round-off."""
    mask = np.zeros(net.n_params, dtype=bool)
    if ours is SGD or options.get("weight_decay", 0):
        return mask
    for n_in, n_out, off_W, off_b, off_gamma, *_ in net.table:
        if off_gamma >= 0:
            mask[off_b:off_b + n_out] = True
    return mask


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("ours, theirs, options", OPTIMIZERS)
def test_ten_steps_match_torch_optim(ours, theirs, options, batchnorm, backend):
    net, X, y = make_problem((6, 5), "tanh", batchnorm, backend=backend, n_samples=40)
    layers = torch_layers(net)
    reference = theirs(layers, **options)
    optimizer = ours(**options).bind(net)
    start = net.params.copy()
    noise = round_off_gradients(net, ours, options)
    for X_batch, y_batch in batches(X, y, 16, 10):
        expected_loss = torch_step(net, layers, reference, X_batch, y_batch)
        assert optimizer.step(X_batch, y_batch) == pytest.approx(expected_loss, rel=1e-10)
        expected = torch.cat(layers).detach().numpy()
        assert relative_error(net.params[~noise], expected[~noise]) < 1e-10
    # where the gradient is round-off, both stay put but for a step of about lr * 1e-17 / eps
    lr_steps = 10 * options["lr"]
    assert np.abs(net.params - start)[noise].max(initial=0) < 1e-6 * lr_steps
    assert np.abs(expected - start)[noise].max(initial=0) < 1e-6 * lr_steps


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ours, theirs, options", OPTIMIZERS[::3])
def test_layer_steps_match_a_reference_from_the_full_gradient(ours, theirs, options, backend):
    net, X, y = make_problem((6, 5), "sigmoid", True, backend=backend, n_samples=30)
    layers = torch_layers(net)
    reference = theirs(layers, **options)
    optimizer = ours(**options).bind(net)
    noise = round_off_gradients(net, ours, options)
    for layer in (0, 1, 2, 2, 1, 0, 1):
        expected_loss = torch_step(net, layers, reference, X, y, only=layer)
        assert optimizer.layer_step(X, y, layer) == pytest.approx(expected_loss, rel=1e-10)
        expected = torch.cat(layers).detach().numpy()
        assert relative_error(net.params[~noise], expected[~noise]) < 1e-10
    np.testing.assert_array_equal(optimizer.steps, [2, 3, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm_running_statistics_follow_torch_in_training_steps(backend):
    net, X, y = make_problem((6,), "tanh", True, backend=backend, n_samples=24)
    bn = torch.nn.BatchNorm1d(6, dtype=torch.float64)
    optimizer = SGD(lr=0.1).bind(net)
    for X_batch, y_batch in batches(X, y, 8, 5):
        layer = net.layers[0]
        bn.train()
        bn(torch.as_tensor(X_batch @ layer.W + layer.b))
        optimizer.step(X_batch, y_batch)
    np.testing.assert_allclose(net.layers[0].running_mean, bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(net.layers[0].running_var, bn.running_var.numpy(), rtol=1e-12)


def test_the_learning_rate_can_follow_a_schedule():
    net, X, y = make_problem((4,), backend="numba")
    twin = net.copy()
    schedule = SGD(0.1, momentum=0.5)
    bound = schedule.bind(net)
    bound.step(X, y)
    schedule.lr = 0.05
    bound.step(X, y)
    layers = torch_layers(twin)
    reference = torch.optim.SGD(layers, lr=0.1, momentum=0.5)
    torch_step(twin, layers, reference, X, y)
    reference.param_groups[0]["lr"] = 0.05
    torch_step(twin, layers, reference, X, y)
    assert relative_error(net.params, torch.cat(layers).detach().numpy()) < 1e-12
    with pytest.raises(ValueError, match="lr"):
        schedule.lr = -1.0
    assert "lr=0.05" in repr(schedule)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ours, theirs, options", OPTIMIZERS)
def test_apply_with_a_gradient_from_elsewhere_matches_torch_optim(ours, theirs, options, backend):
    """BoundOptimizer.apply: the rule's update with the caller's gradient (here backprop's, by
    MLP.gradient), one kernel call, as torch.optim's step with the same gradient."""
    net, X, y = make_problem((6, 5), "tanh", backend=backend, n_samples=40)
    layers = torch_layers(net)
    reference = theirs(layers, **options)
    bound = ours(**options).bind(net)
    for X_batch, y_batch in batches(X, y, 16, 4):
        torch_step(net, layers, reference, X_batch, y_batch)
        bound.apply(net.gradient(X_batch, y_batch))
        assert relative_error(net.params, torch.cat(layers).detach().numpy()) < 1e-10
    np.testing.assert_array_equal(bound.steps, [4, 4, 4])
    # one layer alone: the others keep their parameters and step counts
    before = net.params.copy()
    bound.apply(net.gradient(X, y), layer=1)
    lo, hi = net.table[1, 2], net.table[2, 2]
    np.testing.assert_array_equal(np.delete(net.params, np.s_[lo:hi]),
                                  np.delete(before, np.s_[lo:hi]))
    assert not np.array_equal(net.params[lo:hi], before[lo:hi])
    np.testing.assert_array_equal(bound.steps, [4, 5, 4])


@pytest.mark.parametrize("change, torch_name, value", [
    ("momentum", "momentum", 0.2), ("weight_decay", "weight_decay", 0.05),
    ("nesterov", "nesterov", True)])
def test_a_hyperparameter_changed_after_binding_takes_effect_at_the_next_step(change, torch_name,
                                                                                value):
    net, X, y = make_problem((4,), backend="numba")
    twin = net.copy()
    rule = SGD(0.1, momentum=0.5)
    bound = rule.bind(net)
    bound.step(X, y)
    setattr(rule, change, value)
    bound.step(X, y)
    layers = torch_layers(twin)
    reference = torch.optim.SGD(layers, lr=0.1, momentum=0.5)
    torch_step(twin, layers, reference, X, y)
    reference.param_groups[0][torch_name] = value
    torch_step(twin, layers, reference, X, y)
    assert relative_error(net.params, torch.cat(layers).detach().numpy()) < 1e-12


def test_an_invalid_hyperparameter_change_raises_and_changes_nothing():
    rule = Adam(0.01)
    bound = rule.bind(fastgrad.MLP([3, 4, 2]))
    hyper = rule.hyper.copy()
    for name, value, error in (("betas", (0.9, 1.5), ValueError), ("eps", 0.0, ValueError),
                               ("lr", "fast", TypeError), ("weight_decay", -1.0, ValueError)):
        with pytest.raises(error, match=name.rstrip("s") if name == "betas" else name):
            setattr(rule, name, value)
    with pytest.raises(ValueError, match="nesterov needs a momentum"):
        SGD(0.1, momentum=0.5, nesterov=True).set_params(momentum=0.0)
    np.testing.assert_array_equal(rule.hyper, hyper)
    assert rule.betas == (0.9, 0.999) and bound.kernel_state[1] is rule.hyper


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_whose_update_overflows_raises_and_changes_nothing(backend):
    """A finite loss and gradient, but an update that overflows to inf (weight decay of 1e308
    times the weights, times lr 10): every backend raises NonFiniteStep and leaves the network,
    the optimizer's state and step counts and the running statistics as they were, in a single
    step, in an update with the caller's gradient and in a whole epoch."""
    net, X, y = make_problem((5,), "tanh", True, backend=backend, n_samples=24)
    bound = SGD(0.1, momentum=0.5).bind(net)
    bound.step(X, y)
    bound.rule.set_params(lr=10.0, weight_decay=1e308)
    saved, kept = net.state_dict(), bound.state_dict()

    def unchanged():
        for name, value in net.state_dict().items():
            np.testing.assert_array_equal(value, saved[name])
        for name, value in bound.state_dict().items():
            np.testing.assert_array_equal(value, kept[name])

    with pytest.raises(NonFiniteStep, match="update is not finite"):
        bound.step(X, y)
    unchanged()
    with pytest.raises(NonFiniteStep, match="update is not finite"):
        bound.layer_step(X, y, 0)
    unchanged()
    with pytest.raises(NonFiniteStep, match="update is not finite"):
        bound.apply(np.ones(net.n_params))
    unchanged()
    approach = fastgrad.Parallel(bound.rule, batch_size=8)
    approach.load_state_dict(kept)
    approach.optimizer.set_params(weight_decay=0.0)
    fastgrad.train(net, X, y, approach, epochs=1)  # binds, and steps once fine
    saved, kept = net.state_dict(), approach.state_dict()
    approach.optimizer.set_params(weight_decay=1e308)
    with pytest.raises(NonFiniteStep, match=r"epoch 1, step 1: the step's update") as failure:
        fastgrad.train(net, X, y, approach, epochs=1)
    assert (failure.value.epoch, failure.value.step) == (1, 1)
    bound = approach.bound
    unchanged()


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_with_correct_eps_is_scikit_learns_adam(backend):
    """Adam(correct_eps=True) against scikit-learn's AdamOptimizer (eps added to √v before the
    bias correction), the same gradients, in every backend; a large eps makes the difference
    from torch's rule (correct_eps=False) visible, and that one stays torch's."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    net, X, y = make_problem((6, 5), "tanh", backend=backend, n_samples=40)
    twin = net.copy()
    theirs = [net.params.copy()]
    reference = AdamOptimizer(theirs, learning_rate_init=0.01, beta_1=0.8, beta_2=0.9,
                              epsilon=1e-3)
    bound = Adam(0.01, betas=(0.8, 0.9), eps=1e-3, correct_eps=True).bind(net)
    torch_rule = Adam(0.01, betas=(0.8, 0.9), eps=1e-3).bind(twin)
    for X_batch, y_batch in batches(X, y, 16, 6):
        gradient = net.gradient(X_batch, y_batch)
        reference.update_params(theirs, [gradient.copy()])
        bound.apply(gradient)
        torch_rule.apply(gradient)
        assert relative_error(net.params, theirs[0]) < 1e-13
    assert relative_error(twin.params, theirs[0]) > 1e-6
    with pytest.raises(TypeError, match="correct_eps"):
        Adam(correct_eps="yes")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_momentum_with_a_rescaled_buffer_follows_scikit_learns_velocity(backend):
    """scikit-learn's SGD keeps a velocity of past steps (v ← μv − lr·g), torch's a buffer of
    past gradients (b ← μb + g, θ ← θ − lr·b): equal while lr is constant; when lr changes,
    rescaling the buffer by old/new (what fastgrad.sklearn does on a schedule's change) keeps
    them equal, Nesterov too."""
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    for nesterov in (False, True):
        net, X, y = make_problem((6, 5), "tanh", backend=backend, n_samples=40)
        theirs = [net.params.copy()]
        reference = SGDOptimizer(theirs, learning_rate_init=0.1, momentum=0.9,
                                 nesterov=nesterov)
        bound = SGD(0.1, momentum=0.9, nesterov=nesterov).bind(net)
        for step, (X_batch, y_batch) in enumerate(batches(X, y, 16, 8)):
            if step in (3, 6):  # a new rate, as an epoch's end sets it
                old, new = bound.rule.lr, bound.rule.lr / 3
                reference.learning_rate = new
                bound.rule.lr = new
                bound.state[0] *= old / new
            gradient = net.gradient(X_batch, y_batch)
            reference.update_params(theirs, [gradient.copy()])
            bound.apply(gradient)
            assert relative_error(net.params, theirs[0]) < 1e-13
