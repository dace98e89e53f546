"""The parallel approach: optimizer updates with torch.optim's rules and the fused training step
(forward, loss, backprop, update). The numpy reference of ``parallel_numba.py`` and
``parallel_cython.pyx``; ``apply_update`` (the update of ``update``, applied once it is finite),
``train_step`` and ``train_epoch`` take the bundles of ``bundles.py`` (docs/design.md, "The
kernel interface").

An optimizer is its ``code`` (codes.SGD, ADAM, RMSPROP) and its hyperparameters ``hyper``
(float64, N_HYPER values) in the slots codes.py names: LR first for every optimizer, then
SGD_MOMENTUM, SGD_WEIGHT_DECAY, SGD_NESTEROV (0/1); ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
ADAM_WEIGHT_DECAY; RMSPROP_ALPHA, RMSPROP_EPS, RMSPROP_MOMENTUM, RMSPROP_WEIGHT_DECAY. Its
``state`` (n_state, P) holds SGD's momentum buffer, Adam's exp_avg and exp_avg_sq, or RMSprop's
square_avg and momentum buffer; ``steps`` (per layer) how many updates each layer has had.
"""
import time

import numpy as np

from .bundles import Cache, LossState, Scratch
from .codes import (ADAM, ADAM_BETA1, ADAM_BETA2, ADAM_CORRECT_EPS, ADAM_EPS, ADAM_WEIGHT_DECAY,
                    LABEL_OUT_OF_RANGE,
                    LR, NONFINITE_INPUT, NONFINITE_LOSS, NONFINITE_UPDATE, OFF_W, OK, RMSPROP_ALPHA,
                    RMSPROP_EPS, RMSPROP_MOMENTUM, RMSPROP_WEIGHT_DECAY, SGD, SGD_MOMENTUM,
                    SGD_NESTEROV, SGD_WEIGHT_DECAY)
from .mlp_numpy import backprop, forward, loss, update_running_stats


def load_batch(X, labels, T):
    """Check a batch and, for cross-entropy (labels not empty), write T = one-hot(labels).
    Returns OK, or NONFINITE_INPUT when X holds NaN or inf, or LABEL_OUT_OF_RANGE when a label
    is outside [0, n_out)."""
    if not np.isfinite(X).all():
        return NONFINITE_INPUT
    if len(labels):
        if labels.min() < 0 or labels.max() >= T.shape[1]:
            return LABEL_OUT_OF_RANGE
        T[:] = 0
        T[np.arange(len(labels)), labels] = 1
    return OK


def update(code, hyper, step, params, grad, state, new):
    """One update by optimizer ``code`` of the parameters ``params`` with gradient ``grad`` (the
    ``step``-th, counting from 1), computed into ``new`` — new[0] the parameters, new[1:] the
    state — leaving params and state untouched. Returns whether every new value is finite."""
    lr = hyper[LR]
    if code == SGD:
        momentum, nesterov = hyper[SGD_MOMENTUM], hyper[SGD_NESTEROV]
        g = grad + hyper[SGD_WEIGHT_DECAY] * params
        new[1:] = state
        if momentum != 0:
            # torch: buf = g on the first step, then buf = momentum * buf + g
            buf = g.copy() if step == 1 else momentum * state[0] + g
            new[1] = buf
            g = g + momentum * buf if nesterov else buf
        new[0] = params - lr * g
    elif code == ADAM:
        beta1, beta2 = hyper[ADAM_BETA1], hyper[ADAM_BETA2]
        g = grad + hyper[ADAM_WEIGHT_DECAY] * params
        m = state[0] + (1 - beta1) * (g - state[0])  # torch: exp_avg.lerp_(g, 1 - beta1)
        v = beta2 * state[1] + (1 - beta2) * g * g
        # torch's bias corrections: step_size = lr / (1 - beta1^t), sqrt(1 - beta2^t)
        step_size, correction2_root = lr / (1 - beta1 ** step), np.sqrt(1 - beta2 ** step)
        # scikit-learn's Adam adds eps to sqrt(v) before the correction: eps / correction2_root
        eps = hyper[ADAM_EPS] / (correction2_root if hyper[ADAM_CORRECT_EPS] else 1.0)
        # torch's sqrt(v) / correction2_root, as a product with the reciprocal: one division
        # per parameter fewer, within an ulp of torch's
        denom = np.sqrt(v) * (1.0 / correction2_root) + eps
        new[0] = params - step_size * (m / denom)
        new[1], new[2] = m, v
    else:  # RMSPROP
        alpha, momentum = hyper[RMSPROP_ALPHA], hyper[RMSPROP_MOMENTUM]
        g = grad + hyper[RMSPROP_WEIGHT_DECAY] * params
        square_avg = alpha * state[0] + (1 - alpha) * g * g
        avg = np.sqrt(square_avg) + hyper[RMSPROP_EPS]
        new[1], new[2] = square_avg, state[1]
        if momentum > 0:
            new[2] = momentum * state[1] + g / avg
            new[0] = params - lr * new[2]
        else:
            new[0] = params - lr * (g / avg)
    return bool(np.isfinite(new).all())


def layer_span(net, first, last):
    """(lo, hi): layers first..last's parameters are params[lo:hi], one contiguous run from
    layer first's W to the next layer's W (or the end)."""
    table = net.table
    hi = table[last + 1, OFF_W] if last + 1 < len(table) else len(net.params)
    return table[first, OFF_W], hi


def train_step(net, cache, state, optimizer, grad, scratch, running, first, last):
    """One step on the batch (cache.X, state.T) moving layers first..last (all of them: the
    parallel step; one: a layer-wise step): forward pass with batch statistics, loss, backprop
    down to layer ``first``, the optimizer's update of those layers' parameters and BatchNorm's
    running statistics. Returns (J before the step, status): OK the step was taken;
    NONFINITE_LOSS the loss was not finite, NONFINITE_UPDATE the update was not, and then
    nothing changed (parameters, optimizer state and steps, running statistics)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite loss is reported by status
        forward(net, cache, True)
        J = loss(net, cache, state)
    if not np.isfinite(J):
        return J, NONFINITE_LOSS
    backprop(net, cache, state, grad, scratch, first)
    status = apply_update(net, optimizer, grad, first, last)
    if status != OK:
        return J, status
    update_running_stats(net, cache, running)
    return J, OK


def apply_update(net, optimizer, grad, first, last):
    """The optimizer's update of layers first..last with the gradient ``grad`` (aligned with
    net.params; only layers first..last's share is read): computed into optimizer.new and copied
    over only once it is finite. Returns OK (parameters, optimizer state and the layers' step
    counts updated) or NONFINITE_UPDATE (nothing changed). ``train_step`` takes its step
    through this; ``BoundOptimizer.apply`` calls it with a gradient of its caller's."""
    lo, hi = layer_span(net, first, last)
    params, buffers, new = net.params, optimizer.state, optimizer.new
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite update: the status says
        finite = update(optimizer.code, optimizer.hyper, optimizer.steps[first] + 1,
                        params[lo:hi], grad[lo:hi], buffers[:, lo:hi], new[:, lo:hi])
    if not finite:
        return NONFINITE_UPDATE
    params[lo:hi] = new[0, lo:hi]
    buffers[:, lo:hi] = new[1:, lo:hi]
    optimizer.steps[first:last + 1] += 1
    return OK


def batch_bundles(cache, state, scratch, N):
    """The bundles of a batch of N samples in the workspace of a larger batch size: the first N
    samples' share of each buffer (per-sample buffers hold layer l's block at N * col_off, so a
    smaller batch is a prefix; the transposed loss state Q too, as the first n_out * N values of
    its flat buffer)."""
    size = len(cache.X)
    columns, widest = len(cache.Z) // size, len(scratch.work1) // size
    n_out = state.T.shape[1]
    batch = Cache(cache.X[:N], cache.Z[:N * columns], cache.A[:N * columns],
                  cache.Zhat[:N * columns], cache.mean, cache.istd)
    losses = LossState(state.T[:N], state.rowloss[:N], state.G[:N],
                       state.Q.reshape(-1)[:n_out * N].reshape(n_out, N), state.weight[:N],
                       state.weight_sum)
    work = Scratch(scratch.column[:N], scratch.rows[:N], scratch.work1[:N * widest],
                   scratch.work2[:N * widest])
    return batch, losses, work


def train_epoch(net, plan, cache, state, optimizer, grad, scratch, running):
    """One epoch of the parallel approach in one call: for each batch of plan.batch_size samples
    in plan.order (the last may be smaller), its rows of plan.X, plan.T and plan.weight gathered
    into the workspace's cache.X, state.T and state.weight (whose length is the batch size) and
    the weights' sum into state.weight_sum, then train_step on every layer (a batch whose weights
    sum to zero has no loss: it is skipped, and not counted); with plan.count_raised the batch's
    loss is evaluated again after its step.

    Returns (steps, raised, status, J, check_seconds): the steps taken, how many raised their
    batch's loss, OK or the failing step's status (NONFINITE_LOSS or NONFINITE_UPDATE: that step,
    number steps + 1, changed nothing, and the epoch stopped there), J — after a whole epoch the
    running loss, the mean over the samples of the batches stepped on of their batch's loss
    before its step (scikit-learn's loss_curve_; 0 if no batch was), after a failure the
    failing step's loss — and the seconds spent on the re-evaluations."""
    n_all, size, last = len(plan.order), plan.batch_size, len(net.table) - 1
    steps = raised = stepped_samples = 0
    check_seconds = running_loss = 0.0
    for lo in range(0, n_all, size):
        batch, losses, work = batch_bundles(cache, state, scratch, min(size, n_all - lo))
        take = plan.order[lo:lo + size]
        losses.weight[:] = plan.weight[take]
        losses.weight_sum[0] = losses.weight.sum()
        if losses.weight_sum[0] == 0:
            continue
        batch.X[:] = plan.X[take]
        losses.T[:] = plan.T[take]
        J, status = train_step(net, batch, losses, optimizer, grad, work, running, 0, last)
        if status != OK:
            return steps, raised, status, J, check_seconds
        steps += 1
        running_loss += J * len(take)
        stepped_samples += len(take)
        if plan.count_raised:
            start = time.perf_counter()
            with np.errstate(over="ignore", invalid="ignore"):  # as in train_step
                forward(net, batch, True)
                raised += int(loss(net, batch, losses) > J)
            check_seconds += time.perf_counter() - start
    return steps, raised, OK, running_loss / max(stepped_samples, 1), check_seconds
