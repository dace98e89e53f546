"""The parallel approach: optimizer updates and the fused training step. The Numba twin of
``parallel_numpy.py`` (read its docstring for ``hyper``, ``state`` and ``steps``). ``load_batch``
and ``update`` take arrays; ``apply_update(net, optimizer, grad, first, last)``,
``train_step(net, cache, state, optimizer, grad, scratch, running, first, last)`` and
``train_epoch`` take the bundles of ``bundles.py``, unpacked by position as in mlp_numba
(docs/design.md, "The kernel interface"). BatchNorm's running statistics are updated by
``mlp_numba.update_running_stats``.
"""
import time

import numpy as np
from numba import objmode

from .codes import (ADAM, ADAM_BETA1, ADAM_BETA2, ADAM_CORRECT_EPS, ADAM_EPS, ADAM_WEIGHT_DECAY,
                    LABEL_OUT_OF_RANGE,
                    LR, NONFINITE_INPUT, NONFINITE_LOSS, NONFINITE_UPDATE, OFF_W, OK,
                    RMSPROP_ALPHA, RMSPROP_EPS, RMSPROP_MOMENTUM, RMSPROP_WEIGHT_DECAY, SGD,
                    SGD_MOMENTUM, SGD_NESTEROV, SGD_WEIGHT_DECAY)
from .mlp_numba import backprop, forward, kernel, loss, update_running_stats


@kernel
def load_batch(X, labels, T):
    """Check a batch and, for cross-entropy, write T = one-hot(labels); returns OK,
    NONFINITE_INPUT or LABEL_OUT_OF_RANGE. See parallel_numpy.load_batch."""
    # an and-reduction with no early exit, so that the loop vectorises
    finite = True
    for r in range(X.shape[0]):
        for k in range(X.shape[1]):
            finite &= np.isfinite(X[r, k])
    if not finite:
        return NONFINITE_INPUT
    if labels.shape[0] == 0:
        return OK
    for r in range(labels.shape[0]):
        if labels[r] < 0 or labels[r] >= T.shape[1]:
            return LABEL_OUT_OF_RANGE
    T[:] = 0.0
    # T[np.arange(N), labels] = 1
    for r in range(labels.shape[0]):
        T[r, labels[r]] = 1.0
    return OK


@kernel
def update(code, hyper, step, params, grad, state, new):
    """One update of the optimizer ``code`` (hyperparameters in hyper's slots named in codes.py)
    computed into new (row 0 the parameters, rows 1: the state), params and state untouched;
    returns whether every new value is finite. See parallel_numpy.update. One loop per
    optimizer, its per-step numbers (Adam's bias corrections) computed once before it, so
    that each loop vectorises."""
    lr = hyper[LR]
    if code == SGD:
        momentum, weight_decay = hyper[SGD_MOMENTUM], hyper[SGD_WEIGHT_DECAY]
        nesterov = hyper[SGD_NESTEROV] != 0.0
        for j in range(params.shape[0]):
            g = grad[j] + weight_decay * params[j]
            new[1, j] = state[0, j]
            if momentum != 0.0:
                # torch: buf = g on the first step, then buf = momentum * buf + g
                buf = g if step == 1 else momentum * state[0, j] + g
                new[1, j] = buf
                g = g + momentum * buf if nesterov else buf
            new[0, j] = params[j] - lr * g
    elif code == ADAM:
        beta1, beta2 = hyper[ADAM_BETA1], hyper[ADAM_BETA2]
        eps, weight_decay = hyper[ADAM_EPS], hyper[ADAM_WEIGHT_DECAY]
        step_size = lr / (1.0 - beta1 ** step)
        correction2_root = np.sqrt(1.0 - beta2 ** step)
        if hyper[ADAM_CORRECT_EPS] != 0.0:  # scikit-learn's Adam (see parallel_numpy.update)
            eps = eps / correction2_root
        inverse_root = 1.0 / correction2_root
        for j in range(params.shape[0]):
            g = grad[j] + weight_decay * params[j]
            m = state[0, j] + (1.0 - beta1) * (g - state[0, j])  # exp_avg.lerp_(g, 1 - beta1)
            v = beta2 * state[1, j] + (1.0 - beta2) * g * g
            denom = np.sqrt(v) * inverse_root + eps  # see parallel_numpy.update
            new[0, j] = params[j] - step_size * (m / denom)
            new[1, j] = m
            new[2, j] = v
    else:
        alpha, eps = hyper[RMSPROP_ALPHA], hyper[RMSPROP_EPS]
        momentum, weight_decay = hyper[RMSPROP_MOMENTUM], hyper[RMSPROP_WEIGHT_DECAY]
        for j in range(params.shape[0]):
            g = grad[j] + weight_decay * params[j]
            square_avg = alpha * state[0, j] + (1.0 - alpha) * g * g
            avg = np.sqrt(square_avg) + eps
            new[1, j] = square_avg
            if momentum > 0.0:
                new[2, j] = momentum * state[1, j] + g / avg
                new[0, j] = params[j] - lr * new[2, j]
            else:
                new[2, j] = state[1, j]
                new[0, j] = params[j] - lr * (g / avg)
    finite = True
    # finite = np.isfinite(new).all(), with no early exit so that the loop vectorises
    for row in range(new.shape[0]):
        for j in range(new.shape[1]):
            finite &= np.isfinite(new[row, j])
    return finite


@kernel
def train_step(net, cache, state, optimizer, grad, scratch, running, first, last):
    """One step of the optimizer moving layers first..last; returns (loss, status), status OK,
    NONFINITE_LOSS or NONFINITE_UPDATE (then nothing changed). See parallel_numpy.train_step."""
    forward(net, cache, np.bool_(True))  # (a typed bool, not a literal: see mlp_numba)
    J = loss(net, cache, state)
    if not np.isfinite(J):
        return J, NONFINITE_LOSS
    backprop(net, cache, state, grad, scratch, first)
    status = apply_update(net, optimizer, grad, first, last)
    if status != OK:
        return J, status
    update_running_stats(net, cache, running)
    return J, OK


@kernel
def apply_update(net, optimizer, grad, first, last):
    """The optimizer's update of layers first..last with the gradient ``grad``, applied only
    once it is finite; returns OK or NONFINITE_UPDATE (then nothing changed). See
    parallel_numpy.apply_update."""
    params, table, _, _, _, _ = net
    code, hyper, steps, opt_state, new = optimizer
    n_layers = table.shape[0]
    lo = table[first, OFF_W]
    hi = table[last + 1, OFF_W] if last + 1 < n_layers else params.shape[0]
    if not update(code, hyper, steps[first] + 1, params[lo:hi], grad[lo:hi],
                  opt_state[:, lo:hi], new[:, lo:hi]):
        return NONFINITE_UPDATE
    # params[lo:hi] = new[0, lo:hi]; opt_state[:, lo:hi] = new[1:, lo:hi] (loops: see
    # mlp_numba.copy_into)
    for j in range(lo, hi):
        params[j] = new[0, j]
    for row in range(opt_state.shape[0]):
        for j in range(lo, hi):
            opt_state[row, j] = new[row + 1, j]
    for l in range(first, last + 1):  # steps[first:last + 1] += 1
        steps[l] += 1
    return OK


@kernel
def clock():
    """time.perf_counter(), for the seconds a kernel spends on something it reports apart."""
    with objmode(now="float64"):
        now = time.perf_counter()
    return now


@kernel
def train_epoch(net, plan, cache, state, optimizer, grad, scratch, running):
    """One epoch of the parallel approach in one call: each batch gathered into the workspace
    (its sample weights into state.weight, their sum into state.weight_sum), then train_step on
    every layer, a batch whose weights sum to zero skipped; returns (steps, raised, status, J,
    check_seconds), J the running loss after a whole epoch. See parallel_numpy.train_epoch."""
    _, table, _, _, _, _ = net
    X_all, T_all, weight_all, order, size, count_raised = plan
    X, Z, A, Zhat, mean, istd = cache
    T, rowloss, G, Q, weight, weight_sum = state
    column, rows, work1, work2 = scratch
    n_all, n_in, n_out = order.shape[0], X.shape[1], T.shape[1]
    columns, widest = Z.shape[0] // size, work1.shape[0] // size
    # train_step's first layer as an int64, not a literal 0 (see mlp_numba)
    first, last = np.int64(0), table.shape[0] - 1
    steps = raised = stepped_samples = 0
    check_seconds = running_loss = 0.0
    for lo in range(0, n_all, size):
        N = min(size, n_all - lo)
        # weight[:N] = weight_all[order[lo:lo + N]]; weight_sum[0] = weight[:N].sum()
        total = 0.0
        for r in range(N):
            weight[r] = weight_all[order[lo + r]]
            total += weight[r]
        weight_sum[0] = total
        if weight_sum[0] == 0.0:
            continue  # no loss to step on
        # X[:N] = X_all[order[lo:lo + N]]; T[:N] = T_all[order[lo:lo + N]]
        for r in range(N):
            for k in range(n_in):
                X[r, k] = X_all[order[lo + r], k]
            for c in range(n_out):
                T[r, c] = T_all[order[lo + r], c]
        # the batch's bundles: the first N samples' share of each buffer (see
        # parallel_numpy.batch_bundles)
        batch = (X[:N], Z[:N * columns], A[:N * columns], Zhat[:N * columns], mean, istd)
        losses = (T[:N], rowloss[:N], G[:N], Q.reshape(-1)[:n_out * N].reshape(n_out, N),
                  weight[:N], weight_sum)
        work = (column[:N], rows[:N], work1[:N * widest], work2[:N * widest])
        J, status = train_step(net, batch, losses, optimizer, grad, work, running, first, last)
        if status != OK:
            return steps, raised, status, J, check_seconds
        steps += 1
        running_loss += J * N
        stepped_samples += N
        if count_raised:
            start = clock()
            forward(net, batch, np.bool_(True))
            raised += loss(net, batch, losses) > J
            check_seconds += clock() - start
    return steps, raised, OK, running_loss / max(stepped_samples, 1), check_seconds
