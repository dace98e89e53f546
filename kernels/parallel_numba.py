"""The parallel approach: optimizer updates and the fused training step. The Numba twin of
``parallel_numpy.py`` (read its docstring for ``hyper``, ``state`` and ``steps``)."""
import numpy as np

from .codes import ADAM, BN_EPS, SGD
from .mlp_numba import backprop, block, forward, kernel, loss


@kernel
def load_batch(X, labels, T):
    """Check a batch and, for cross-entropy, write T = one-hot(labels); see parallel_numpy."""
    # an and-reduction with no early exit, so that the loop vectorises
    finite = True
    for r in range(X.shape[0]):
        for k in range(X.shape[1]):
            finite &= np.isfinite(X[r, k])
    if not finite:
        return 1
    if labels.shape[0] == 0:
        return 0
    for r in range(labels.shape[0]):
        if labels[r] < 0 or labels[r] >= T.shape[1]:
            return 2
    T[:] = 0.0
    for r in range(labels.shape[0]):
        T[r, labels[r]] = 1.0
    return 0


@kernel
def update(opt, hyper, step, params, grad, state, new):
    """One update computed into new (row 0 the parameters, rows 1: the state), params and state
    untouched; returns whether every new value is finite. See parallel_numpy.update."""
    lr = hyper[0]
    for j in range(params.shape[0]):
        if opt == SGD:
            momentum, weight_decay, nesterov = hyper[1], hyper[2], hyper[3]
            g = grad[j] + weight_decay * params[j]
            new[1, j] = state[0, j]
            if momentum != 0.0:
                # torch: buf = g on the first step, then buf = momentum * buf + g
                buf = g if step == 1 else momentum * state[0, j] + g
                new[1, j] = buf
                g = g + momentum * buf if nesterov != 0.0 else buf
            new[0, j] = params[j] - lr * g
        elif opt == ADAM:
            beta1, beta2, eps, weight_decay = hyper[1], hyper[2], hyper[3], hyper[4]
            g = grad[j] + weight_decay * params[j]
            m = state[0, j] + (1.0 - beta1) * (g - state[0, j])  # exp_avg.lerp_(g, 1 - beta1)
            v = beta2 * state[1, j] + (1.0 - beta2) * g * g
            denom = np.sqrt(v) / np.sqrt(1.0 - beta2 ** step) + eps
            new[0, j] = params[j] - (lr / (1.0 - beta1 ** step)) * (m / denom)
            new[1, j] = m
            new[2, j] = v
        else:
            alpha, eps, momentum, weight_decay = hyper[1], hyper[2], hyper[3], hyper[4]
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
    for row in range(new.shape[0]):
        for j in range(new.shape[1]):
            finite &= np.isfinite(new[row, j])
    return finite


@kernel
def update_running_stats(table, N, mean, istd, running_mean, running_var, momentum):
    """BatchNorm's running statistics after a training batch; see parallel_numpy."""
    for l in range(table.shape[0] - 1):
        if table[l, 4] < 0:
            continue
        for c in range(table[l, 6], table[l, 6] + table[l, 1]):
            variance = (1.0 / istd[c] ** 2 - BN_EPS) * N / max(N - 1, 1)
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * variance


@kernel
def train_step(X, T, params, table, act, loss_code, first, last, opt, hyper, steps, state, new,
               Z, A, Zhat, mean, istd, rowloss, G, Q, grad, work1, work2, running_mean,
               running_var, bn_momentum):
    """One step moving layers first..last; returns (loss, status). See parallel_numpy.train_step."""
    N, n_layers = X.shape[0], table.shape[0]
    forward(X, params, table, act, True, Z, A, Zhat, mean, istd)
    J = loss(block(Z, N, table, n_layers - 1), T, loss_code, rowloss, G, Q)
    if not np.isfinite(J):
        return J, 1
    backprop(X, params, table, act, Z, A, Zhat, istd, G, grad, work1, work2, first)
    lo = table[first, 2]
    hi = table[last + 1, 2] if last + 1 < n_layers else params.shape[0]
    if not update(opt, hyper, steps[first] + 1, params[lo:hi], grad[lo:hi], state[:, lo:hi],
                  new[:, lo:hi]):
        return J, 2
    params[lo:hi] = new[0, lo:hi]
    state[:, lo:hi] = new[1:, lo:hi]
    steps[first:last + 1] += 1
    update_running_stats(table, N, mean, istd, running_mean, running_var, bn_momentum)
    return J, 0
