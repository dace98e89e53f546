"""Per-coordinate work from a cached point, re-evaluating only what the coordinate touches:
the numpy reference of ``incremental_numba.py`` and ``incremental_cython.pyx`` (docs/design.md,
"Incremental re-evaluation"). Each entry point takes the bundles of ``bundles.py``
(docs/design.md, "The kernel interface").

A coordinate of layer l feeds one column i of that layer (W[k, i] and b[i] its Dense output,
gamma[i] and beta[i] its BatchNorm output). Only column i of the layer's activations moves; the
next layer's Dense output moves by a rank-1 term (``outer(d a[:, i], W_next[i, :])``); from there
on, every layer is recomputed, but only on the samples that moved (without BatchNorm a sample
whose column-i activation did not move is untouched; BatchNorm couples all samples of a column).

- ``coordinate_derivative``: forward mode, dJ/dθ_j by pushing a tangent front to back;
- ``loss_change``: J(θ + δ e_j) − J(θ), the change itself pushed downstream and summed over
  the per-sample losses that changed;
- ``forward_mode_gradient`` / ``finite_difference_gradient``: every coordinate in turn.

``source_column`` (where a coordinate enters the network) is shared with ``sequential_numpy``.
"""
import numpy as np

from .codes import BETA, BIAS, GAMMA, N_OUT, OFF_B, OFF_BETA, OFF_GAMMA, OFF_W, WEIGHT
from .mlp_numpy import (activation_change, activation_slope, batchnorm_change, batchnorm_jacobian,
                        block, columns, layer_input, layer_params, output_logits, row_loss_changes,
                        weights)


def decode(j, table):
    """(layer, kind, k, i) of coordinate j: kind WEIGHT is W[k, i]; BIAS, GAMMA, BETA are
    b[i], gamma[i], beta[i] (k = 0)."""
    l = len(table) - 1
    while table[l, OFF_W] > j:
        l -= 1
    n_out, off_W, off_b = table[l, N_OUT], table[l, OFF_W], table[l, OFF_B]
    off_gamma, off_beta = table[l, OFF_GAMMA], table[l, OFF_BETA]
    if j < off_b:
        return l, WEIGHT, (j - off_W) // n_out, (j - off_W) % n_out
    if off_gamma < 0 or j < off_gamma:
        return l, BIAS, 0, j - off_b
    if j < off_beta:
        return l, GAMMA, 0, j - off_gamma
    return l, BETA, 0, j - off_beta


def _moved_rows(change, batchnorm):
    """The samples a column change reaches downstream: all with BatchNorm, the nonzero ones else."""
    return np.arange(len(change)) if batchnorm else np.flatnonzero(change)


def source_column(j, net, cache):
    """(l, kind, k, i, v): coordinate j's place (decode) and v = d(column i of z or u)/dθ_j,
    the (N,) column it scales: the input column it multiplies (W), zhat's column (gamma) or
    ones (b, beta)."""
    N = len(cache.X)
    l, kind, k, i = decode(j, net.table)
    if kind == WEIGHT:
        v = layer_input(cache, net.table, l)[:, k].copy()
    elif kind == GAMMA:
        v = block(cache.Zhat, N, net.table, l)[:, i].copy()
    else:
        v = np.ones(N, dtype=cache.X.dtype)
    return l, kind, k, i, v


def penalty_slope(j, kind, net):
    """n times the L2 penalty's share of dJ/dθ_j (n the sum of the sample weights): alpha θ_j
    for a weight, 0 for a bias, gamma or beta."""
    return net.alpha * net.params[j] if kind == WEIGHT and net.alpha != 0 else 0.0


def penalty_change(j, kind, delta, net):
    """n times the L2 penalty's share of J(θ + delta e_j) − J(θ): alpha / 2 · ((θ_j + delta)² −
    θ_j²) = alpha / 2 · delta (2 θ_j + delta) for a weight, 0 else."""
    if kind != WEIGHT or net.alpha == 0:
        return 0.0
    return 0.5 * net.alpha * delta * (2 * net.params[j] + delta)


def coordinate_derivative(j, net, cache, state, scratch):
    """dJ/dθ_j in forward mode: the tangent of column i pushed downstream, dotted with state.G
    = dJ/dlogits, plus the penalty's slope. (scratch is the compiled twins' work space; unused
    here.)"""
    params, table, act = net.params, net.table, net.act
    N, n_layers = len(cache.X), len(table)
    # the tangent of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    l, kind, k, i, dcol = source_column(j, net, cache)
    if l == n_layers - 1:
        # a logit's own coordinate
        return state.G[:, i] @ dcol + penalty_slope(j, kind, net) / state.weight_sum[0]
    _, _, gamma, _ = layer_params(params, table, l)
    batchnorm = gamma is not None
    if batchnorm and kind in (WEIGHT, BIAS):
        # a tangent of z: through column i's BatchNorm into a tangent of u
        zhat = block(cache.Zhat, N, table, l)[:, i:i + 1]
        istd = columns(cache.istd, table, l)[i:i + 1]
        dcol = gamma[i] * batchnorm_jacobian(dcol[:, None], zhat, istd)[:, 0]
    da = activation_slope(act, block(cache.A, N, table, l)[:, i]) * dcol
    rows = _moved_rows(da, batchnorm)
    # the next layer's z moves by the rank-1 term outer(da, W_next[i]); later layers in full
    dz = np.outer(da[rows], weights(params, table, l + 1)[i])
    for m in range(l + 1, n_layers - 1):
        _, _, gamma, _ = layer_params(params, table, m)
        if gamma is not None:
            dz = gamma * batchnorm_jacobian(dz, block(cache.Zhat, N, table, m),
                                            columns(cache.istd, table, m))
        da = activation_slope(act, block(cache.A, N, table, m)[rows]) * dz
        dz = da @ weights(params, table, m + 1)
    return (state.G[rows] * dz).sum() + penalty_slope(j, kind, net) / state.weight_sum[0]


def loss_change(j, delta, net, cache, state, scratch):
    """J(θ + delta e_j) − J(θ), θ left unchanged, from the cached point and the loss state
    (state.T, rowloss, Q, the weights): the weighted sum of the per-sample loss changes and the
    penalty's change, over n = state.weight_sum. Changes, not new values, are pushed downstream
    (so a small change keeps its digits): column i of the activations moves by da, the next
    layer's z by outer(da, W_next[i]), and so on; only the samples that move are visited.
    (scratch is the compiled twins' work space; unused here.)"""
    params, table, act, X = net.params, net.table, net.act, cache.X
    N, n_layers = len(X), len(table)
    l, kind, k, i = decode(j, table)
    # the change of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if kind == WEIGHT:
        dcol = delta * layer_input(cache, table, l)[:, k]
    elif kind == GAMMA:
        dcol = delta * block(cache.Zhat, N, table, l)[:, i]
    else:
        dcol = np.full(N, delta, dtype=X.dtype)
    if l == n_layers - 1:
        # a logit's own coordinate: only logit column i moves
        rows = np.flatnonzero(dcol)
        dz = np.zeros((len(rows), table[l, N_OUT]), dtype=X.dtype)
        dz[:, i] = dcol[rows]
    else:
        _, _, gamma, beta = layer_params(params, table, l)
        batchnorm = gamma is not None
        u, du = block(cache.Z, N, table, l)[:, i], dcol  # the activation's input and its change
        if batchnorm:
            zhat = block(cache.Zhat, N, table, l)[:, i]
            u = gamma[i] * zhat + beta[i]
            if kind in (WEIGHT, BIAS):
                # a change of z: through column i's BatchNorm into a change of u
                istd = columns(cache.istd, table, l)[i:i + 1]
                du = gamma[i] * batchnorm_change(zhat[:, None], istd, dcol[:, None])[:, 0]
        da = activation_change(act, u, block(cache.A, N, table, l)[:, i], du)
        rows = _moved_rows(da, batchnorm)
        dz = np.outer(da[rows], weights(params, table, l + 1)[i])
        for m in range(l + 1, n_layers - 1):
            _, _, gamma, beta = layer_params(params, table, m)
            u, du = block(cache.Z, N, table, m)[rows], dz
            if gamma is not None:
                zhat = block(cache.Zhat, N, table, m)
                u = gamma * zhat + beta
                du = gamma * batchnorm_change(zhat, columns(cache.istd, table, m), dz)
            da = activation_change(act, u, block(cache.A, N, table, m)[rows], du)
            dz = da @ weights(params, table, m + 1)
    # the moved rows' loss changes, from their cached logits, loss state and losses
    logits = output_logits(net, cache)[rows]
    changes = row_loss_changes(net.loss, logits, state.Q.T[rows], state.T[rows],
                               state.rowloss[rows], dz, net.output_divisor)
    return (((state.weight[rows] * changes).sum() + penalty_change(j, kind, delta, net))
            / state.weight_sum[0])


def forward_mode_gradient(net, cache, state, grad, scratch):
    """grad[j] = coordinate_derivative(j) for every coordinate j."""
    for j in range(len(net.params)):
        grad[j] = coordinate_derivative(j, net, cache, state, scratch)


def finite_difference_gradient(net, cache, state, eps, grad, scratch):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps) for every j, each side re-evaluated
    incrementally (loss_change); eps is in the network's dtype."""
    for j in range(len(net.params)):
        up = loss_change(j, eps, net, cache, state, scratch)
        down = loss_change(j, -eps, net, cache, state, scratch)
        grad[j] = (up - down) / (2 * eps)
