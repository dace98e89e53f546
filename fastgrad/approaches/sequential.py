"""The sequential approach: sweeps of exact single-coordinate steps.

    report = fastgrad.sweep(net, X, y, order="cyclic", lr=0.5)                  # one sweep
    history = fastgrad.train(net, X, y, Sequential(order="permutation", lr=0.5))  # epochs

A sweep takes ``n_params`` steps (orders below); each evaluates dJ/dθ_j at the current weights,
which already hold every earlier step of the sweep, and moves θ_j alone:

- ``step="gradient"``: θ_j ← θ_j − lr·g;
- ``step="newton"``: θ_j ← θ_j − g / max(h, 1/lr), with h = d²J/dθ_j² the exact second
  derivative along the coordinate. Where h is below 1/lr — flat or negatively curved along the
  coordinate, where Newton's step would be huge or go uphill — the step is the gradient step
  with lr, so lr bounds every step's size.

Orders: ``"cyclic"`` (0 … n_params−1), ``"reverse"``, ``"permutation"`` (a fresh one each
sweep), ``"random"`` (``n_steps`` draws with replacement, default n_params), an integer array
(used as given, any length), and ``"greedy"`` (Gauss–Southwell: at each step the coordinate
with the largest |dJ/dθ_j|). Greedy needs the whole gradient at every step, so each of its steps
costs a full forward and backward pass: a greedy sweep costs as much as the naive sweep
(n_params full passes), where a sweep in the other orders costs a few dozen to a few hundred
parallel steps (``fastgrad bench`` measures both).

The kernel (one call per sweep) keeps the cached activations, BatchNorm statistics, logits,
per-sample losses and softmax of the current point up to date after every step, so each step
costs O(N × the work downstream of its coordinate) — O(N × n_out) for a weight of the last
hidden layer — never a full forward and backward pass (docs/design.md, "Incremental
re-evaluation"). With BatchNorm, the running statistics are updated once per sweep, from the
batch statistics at its end.
"""
import time
from dataclasses import dataclass

import numpy as np

from .. import validation as check
from .._kernels.bundles import SweepPlan
from .._kernels.codes import NONFINITE_STEP, PICK_GREEDILY, STEP_RULES
from ..errors import NonFiniteStep
from ..model import Workspace, cached_loss
from ..model.backends import bundle_type
from .base import Approach, EpochResult

ORDERS = ("cyclic", "reverse", "permutation", "random", "greedy")


@dataclass
class SweepReport:
    """What one sweep did on its batch: J before and after it, the number of single-coordinate
    steps, how many of them raised J (from the exact per-sample loss changes of the step),
    how many ``flipped``: had a derivative of the opposite sign from the gradient at the start
    of the sweep (the effect of evaluating at a partially updated point; ``flipped_fraction``
    of the steps), and the wall time in ``seconds``."""

    loss_before: float
    loss: float
    steps: int
    raised: int
    flipped: int
    seconds: float

    @property
    def flipped_fraction(self):
        return self.flipped / self.steps


def check_order(order, n_params, n_steps=None):
    """(order, greedy): the order's name, or the given index array as int64, validated before
    any weight moves (with n_steps, the number of steps of "random" and "greedy")."""
    if isinstance(order, str):
        check.check_choice("order", order, ORDERS)
        if n_steps is not None and order not in ("random", "greedy"):
            raise ValueError(f"n_steps applies to order='random' or 'greedy'; order={order!r} "
                             f"visits each of the {n_params} coordinates once")
        check.check_positive_int("n_steps", n_steps, allow_none=True)
        return order, order == "greedy"
    if n_steps is not None:
        raise ValueError("n_steps applies to order='random' or 'greedy', not to an order array")
    array = np.asarray(order)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"order must be one of {ORDERS} or a non-empty 1-D array of coordinate "
                         f"indices; got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"order must hold integer coordinate indices; got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= n_params:
        raise ValueError(f"order's entries must lie in [0, {n_params - 1}]; got range "
                         f"[{array.min()}, {array.max()}]")
    return array.astype(np.int64), False


def draw_order(order, n_params, rng, n_steps=None):
    """The coordinates of one sweep, from a checked order (see check_order)."""
    if not isinstance(order, str):
        return order
    if order == "cyclic":
        return np.arange(n_params, dtype=np.int64)
    if order == "reverse":
        return np.arange(n_params - 1, -1, -1, dtype=np.int64)
    if order == "permutation":
        return rng.permutation(n_params).astype(np.int64)
    n_steps = n_params if n_steps is None else int(n_steps)
    if order == "random":
        return rng.integers(0, n_params, n_steps, dtype=np.int64)
    return np.full(n_steps, PICK_GREEDILY, dtype=np.int64)  # the kernel picks each coordinate


def check_step(step, lr):
    check.check_choice("step", step, tuple(STEP_RULES))
    return STEP_RULES[step], check.check_positive("lr", lr)


def sweep(net, X, y, order="cyclic", lr=0.1, step="gradient", seed=0, n_steps=None,
          sample_weight=None):
    """One sweep of single-coordinate steps on (X, y) (the whole of it: J is the mean loss over
    X, weighted by ``sample_weight`` when given, plus the network's L2 penalty); returns a
    SweepReport. ``order``, ``lr`` and ``step`` as in the module docstring; ``seed`` (default
    0, like every other) seeds the "permutation" and "random" orders; ``n_steps`` sets the
    number of steps of "random" and "greedy" (default n_params).

    A step that makes the loss non-finite raises NonFiniteStep (its ``step`` and
    ``coordinate``); that step is undone, so the network keeps the last finite weights (the
    steps before it in the sweep stay taken)."""
    X, T, weight = check.check_network(net).check_batch(X, y, sample_weight)
    order, greedy = check_order(order, net.n_params, n_steps)
    rule, lr = check_step(step, lr)
    coordinates = draw_order(order, net.n_params, check.check_rng(None, seed), n_steps)
    return run_sweep(net, Workspace(net, len(X)), X, T, weight,
                     SweepPlan(coordinates, greedy, rule, lr))


def run_sweep(net, workspace, X, T, weight, plan):
    """One sweep on checked inputs (weight None: all ones), in ``workspace`` (for len(X)
    samples): the kernel call and its report."""
    start = time.perf_counter()
    k = workspace.kernels
    cache, state = workspace.cache(X), workspace.loss_state(T, weight)
    status, steps, raised, flipped, loss_before = k.sequential.sweep(
        net.kernel_network, cache, state, bundle_type(net.backend, SweepPlan)(plan),
        workspace.start_grad, workspace.grad, workspace.scratch)
    if status == NONFINITE_STEP:
        j = None if plan.greedy else int(plan.order[steps])
        where = "a greedy step" if plan.greedy else f"coordinate {j}, {net.coordinate(j)}"
        raise NonFiniteStep(f"{where} made the loss non-finite; that step was undone, the "
                            f"{steps} before it in the sweep were kept", step=int(steps) + 1,
                            coordinate=j)
    # the kernel leaves the cached point of the final weights: per-sample losses and BatchNorm
    # statistics, kept exact to round-off by its incremental updates
    if net.batchnorm:
        k.mlp.update_running_stats(net.kernel_network, cache, net.kernel_running)
        net.track_batches(1)
    return SweepReport(float(loss_before), cached_loss(net, workspace), int(steps),
                       int(raised), int(flipped), time.perf_counter() - start)


@dataclass(eq=False)
class Sequential(Approach):
    """One weight at a time: each epoch is a sweep of single-coordinate steps over all the
    parameters on each batch (one sweep per batch with ``batch_size``, J that batch's mean
    loss).

    order : "cyclic" (default), "reverse", "permutation" (a fresh one every sweep), "random"
        (n_params draws with replacement), "greedy" (Gauss–Southwell, n_params steps, each a
        full pass) or an integer array of coordinates used as given.
    lr : the learning rate (default 0.1); with ``step="newton"`` the bound on every step's size.
    step : "gradient" (θ_j ← θ_j − lr·g) or "newton" (θ_j ← θ_j − g / max(h, 1/lr)).
    batch_size : samples per sweep; None (the default) sweeps on the whole set.
    shuffle : with a batch size, draw a fresh order of the samples every epoch (default True);
        False takes the batches in the data's order.

    Every step's effect on its batch's loss is known exactly, so raised steps are always
    counted, at no cost."""

    order: object = "cyclic"
    lr: float = 0.1
    step: str = "gradient"
    batch_size: int | None = None
    shuffle: bool = True

    name = "sequential"

    def __post_init__(self):
        # the order's entries are checked against the network in check()
        if isinstance(self.order, str):
            check.check_choice("order", self.order, ORDERS)
        _, self.lr = check_step(self.step, self.lr)
        self.batch_size = check.check_positive_int("batch_size", self.batch_size,
                                                   allow_none=True)
        self.shuffle = check.check_bool("shuffle", self.shuffle)

    def check(self, net, n_samples):
        super().check(net, n_samples)
        check_order(self.order, net.n_params)

    def run_epoch(self, net, data, rng):
        steps = raised = flipped = stepped_samples = 0
        running_loss = 0.0
        order, greedy = check_order(self.order, net.n_params)
        rule = STEP_RULES[self.step]
        for sweep_number, (X, _, T, weight) in enumerate(
                data.batches(self.batch_size, rng, self.shuffle), 1):
            plan = SweepPlan(draw_order(order, net.n_params, rng), greedy, rule, self.lr)
            try:
                report = run_sweep(net, data.workspace(len(X)), X, T, weight, plan)
            except NonFiniteStep as error:
                raise error.where(sweep=sweep_number) from None
            steps += report.steps
            raised += report.raised
            flipped += report.flipped
            running_loss += report.loss_before * len(X)
            stepped_samples += len(X)
        return EpochResult(steps, raised, flipped,
                           running_loss=running_loss / max(stepped_samples, 1))
