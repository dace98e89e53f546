"""The parallel approach: optimizer updates with torch.optim's rules and the fused training step
(forward, loss, backprop, update). The numpy reference of ``parallel_numba.py`` and
``parallel_cython.pyx``.

``hyper`` (float64, 5 values) holds an optimizer's hyperparameters:
  SGD:     lr, momentum, weight_decay, nesterov (0/1), unused
  Adam:    lr, beta1, beta2, eps, weight_decay
  RMSprop: lr, alpha, eps, momentum, weight_decay
``state`` (n_state, P) its state (SGD: momentum buffer; Adam: exp_avg, exp_avg_sq; RMSprop:
square_avg, momentum buffer); ``steps`` (per layer) how many updates each layer has had.
"""
import numpy as np

from .codes import ADAM, BN_EPS, COL_OFF, N_OUT, OFF_GAMMA, OFF_W, SGD
from .mlp_numpy import backprop, forward, loss


def load_batch(X, labels, T):
    """Check a batch and, for cross-entropy (labels not empty), write T = one-hot(labels).
    Returns 0, or 1 when X holds NaN or inf, or 2 when a label is outside [0, n_out)."""
    if not np.isfinite(X).all():
        return 1
    if len(labels):
        if labels.min() < 0 or labels.max() >= T.shape[1]:
            return 2
        T[:] = 0
        T[np.arange(len(labels)), labels] = 1
    return 0


def update(opt, hyper, step, params, grad, state, new):
    """One update of the parameters ``params`` with gradient ``grad`` (the ``step``-th, counting
    from 1), computed into ``new`` — new[0] the parameters, new[1:] the state — leaving params
    and state untouched. Returns whether every new value is finite."""
    if opt == SGD:
        lr, momentum, weight_decay, nesterov = hyper[:4]
        g = grad + weight_decay * params
        new[1:] = state
        if momentum != 0:
            # torch: buf = g on the first step, then buf = momentum * buf + g
            buf = g.copy() if step == 1 else momentum * state[0] + g
            new[1] = buf
            g = g + momentum * buf if nesterov else buf
        new[0] = params - lr * g
    elif opt == ADAM:
        lr, beta1, beta2, eps, weight_decay = hyper
        g = grad + weight_decay * params
        m = state[0] + (1 - beta1) * (g - state[0])  # torch: exp_avg.lerp_(g, 1 - beta1)
        v = beta2 * state[1] + (1 - beta2) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps
        new[0] = params - (lr / (1 - beta1 ** step)) * (m / denom)
        new[1], new[2] = m, v
    else:
        lr, alpha, eps, momentum, weight_decay = hyper
        g = grad + weight_decay * params
        square_avg = alpha * state[0] + (1 - alpha) * g * g
        avg = np.sqrt(square_avg) + eps
        new[1], new[2] = square_avg, state[1]
        if momentum > 0:
            new[2] = momentum * state[1] + g / avg
            new[0] = params - lr * new[2]
        else:
            new[0] = params - lr * (g / avg)
    return bool(np.isfinite(new).all())


def update_running_stats(table, N, mean, istd, running_mean, running_var, momentum):
    """BatchNorm's running statistics after a training batch of N samples, as torch does:
    running = (1 - momentum) running + momentum * batch, with the unbiased batch variance."""
    for l in range(len(table) - 1):
        if table[l, OFF_GAMMA] < 0:
            continue
        cols = slice(table[l, COL_OFF], table[l, COL_OFF] + table[l, N_OUT])
        variance = (1 / istd[cols] ** 2 - BN_EPS) * N / max(N - 1, 1)
        running_mean[cols] = (1 - momentum) * running_mean[cols] + momentum * mean[cols]
        running_var[cols] = (1 - momentum) * running_var[cols] + momentum * variance


def train_step(X, T, params, table, act, loss_code, first, last, opt, hyper, steps, state, new,
               Z, A, Zhat, mean, istd, rowloss, G, Q, grad, work1, work2, running_mean,
               running_var, bn_momentum):
    """One step on the batch (X, T) moving layers first..last (all of them: the parallel step;
    one: a layer-wise step): forward pass with batch statistics, loss, backprop down to layer
    ``first``, and the optimizer's update of those layers' parameters. Returns (loss, status):
    status 0 the step was taken; 1 the loss was not finite and 2 the update was not, and then
    nothing changed (parameters, optimizer state, running statistics)."""
    N, n_out = len(X), table[-1, N_OUT]
    logits = Z[len(Z) - N * n_out:].reshape(N, n_out)
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite loss is reported by status
        forward(X, params, table, act, True, Z, A, Zhat, mean, istd)
        J = loss(logits, T, loss_code, rowloss, G, Q)
    if not np.isfinite(J):
        return J, 1
    backprop(X, params, table, act, Z, A, Zhat, istd, G, grad, work1, work2, first)
    lo, hi = table[first, OFF_W], (table[last + 1, OFF_W] if last + 1 < len(table) else len(params))
    if not update(opt, hyper, steps[first] + 1, params[lo:hi], grad[lo:hi], state[:, lo:hi],
                  new[:, lo:hi]):
        return J, 2
    params[lo:hi] = new[0, lo:hi]
    state[:, lo:hi] = new[1:, lo:hi]
    steps[first:last + 1] += 1
    update_running_stats(table, N, mean, istd, running_mean, running_var, bn_momentum)
    return J, 0
