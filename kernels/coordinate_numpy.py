"""Per-coordinate work from a cached point, re-evaluating only what the coordinate touches:
the numpy reference of ``coordinate_numba.py`` and ``coordinate_cython.pyx``.

A coordinate of layer l feeds one column i of that layer (W[k, i] and b[i] its Dense output,
gamma[i] and beta[i] its BatchNorm output). Only column i of the layer's activations moves; the
next layer's Dense output moves by a rank-1 term (``outer(d a[:, i], W_next[i, :])``); from there
on, every layer is recomputed, but only on the samples that moved (without BatchNorm a sample
whose column-i activation did not move is untouched; BatchNorm couples all samples of a column).

- ``coordinate_derivative``: forward mode, dJ/dθ_j by pushing a tangent front to back;
- ``loss_change``: J(θ + δ e_j) − J(θ), the change itself pushed downstream and summed over
  the per-sample losses that changed;
- ``forward_mode_gradient`` / ``finite_difference_gradient``: every coordinate in turn.
"""
import numpy as np

from .codes import BETA, BIAS, GAMMA, OFF_B, OFF_BETA, OFF_GAMMA, OFF_W, N_OUT, WEIGHT
from .mlp_numpy import (activation_change, activation_slope, batchnorm_change, batchnorm_jacobian,
                        block, columns, layer_input, layer_params, row_loss_changes)


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


def source_column(j, X, params, table, A, Zhat):
    """(l, kind, k, i, v): coordinate j's place and v = d(column i of z or u)/dθ_j: the input
    column it multiplies (W), zhat's column (gamma) or ones (b, beta)."""
    N = len(X)
    l, kind, k, i = decode(j, table)
    if kind == WEIGHT:
        v = layer_input(X, A, table, l)[:, k].copy()
    elif kind == GAMMA:
        v = block(Zhat, N, table, l)[:, i].copy()
    else:
        v = np.ones(N, dtype=X.dtype)
    return l, kind, k, i, v


def coordinate_derivative(j, X, params, table, act, Z, A, Zhat, istd, G, col=None, rows=None,
                          work1=None, work2=None):
    """dJ/dθ_j in forward mode: the tangent of column i pushed downstream, dotted with G.
    (col, rows, work1, work2 are the compiled twins' scratch space; unused here.)"""
    N, n_layers = len(X), len(table)
    # the tangent of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    l, kind, k, i, dcol = source_column(j, X, params, table, A, Zhat)
    if l == n_layers - 1:
        return G[:, i] @ dcol
    _, _, gamma, _ = layer_params(params, table, l)
    batchnorm = gamma is not None
    if batchnorm and kind in (WEIGHT, BIAS):
        zhat = block(Zhat, N, table, l)[:, i:i + 1]
        s = columns(istd, table, l)[i:i + 1]
        dcol = gamma[i] * batchnorm_jacobian(dcol[:, None], zhat, s)[:, 0]
    da = activation_slope(act, block(A, N, table, l)[:, i]) * dcol
    rows = _moved_rows(da, batchnorm)
    dz = np.outer(da[rows], layer_params(params, table, l + 1)[0][i])
    for m in range(l + 1, n_layers - 1):
        _, _, gamma, _ = layer_params(params, table, m)
        if gamma is not None:
            dz = gamma * batchnorm_jacobian(dz, block(Zhat, N, table, m), columns(istd, table, m))
        da = activation_slope(act, block(A, N, table, m)[rows]) * dz
        dz = da @ layer_params(params, table, m + 1)[0]
    return (G[rows] * dz).sum()


def loss_change(j, delta, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, Q,
                col=None, rows=None, work1=None, work2=None):
    """J(θ + delta e_j) − J(θ), θ left unchanged. Changes, not new values, are pushed downstream
    (so a small change keeps its digits): column i of the activations moves by da, the next
    layer's z by outer(da, W_next[i]), and so on; only the samples that move are visited."""
    N, n_layers = len(X), len(table)
    l, kind, k, i = decode(j, table)
    # the change of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if kind == WEIGHT:
        dcol = delta * layer_input(X, A, table, l)[:, k]
    elif kind == GAMMA:
        dcol = delta * block(Zhat, N, table, l)[:, i]
    else:
        dcol = np.full(N, delta, dtype=X.dtype)
    if l == n_layers - 1:
        rows = np.flatnonzero(dcol)
        dz = np.zeros((len(rows), table[l, N_OUT]), dtype=X.dtype)
        dz[:, i] = dcol[rows]
    else:
        _, _, gamma, beta = layer_params(params, table, l)
        batchnorm = gamma is not None
        u, du = block(Z, N, table, l)[:, i], dcol
        if batchnorm:
            zhat = block(Zhat, N, table, l)[:, i]
            u = gamma[i] * zhat + beta[i]
            if kind in (WEIGHT, BIAS):
                s = columns(istd, table, l)[i:i + 1]
                du = gamma[i] * batchnorm_change(zhat[:, None], s, dcol[:, None])[:, 0]
        da = activation_change(act, u, block(A, N, table, l)[:, i], du)
        rows = _moved_rows(da, batchnorm)
        dz = np.outer(da[rows], layer_params(params, table, l + 1)[0][i])
        for m in range(l + 1, n_layers - 1):
            _, _, gamma, beta = layer_params(params, table, m)
            u, du = block(Z, N, table, m)[rows], dz
            if gamma is not None:
                zhat = block(Zhat, N, table, m)
                u = gamma * zhat + beta
                du = gamma * batchnorm_change(zhat, columns(istd, table, m), dz)
            dz = activation_change(act, u, block(A, N, table, m)[rows], du) @ layer_params(params, table, m + 1)[0]
    logits = block(Z, N, table, n_layers - 1)[rows]
    return row_loss_changes(loss, logits, Q.T[rows], T[rows], rowloss[rows], dz).sum() / N


def forward_mode_gradient(X, params, table, act, Z, A, Zhat, istd, G, grad, col, rows, work1,
                          work2):
    """grad[j] = coordinate_derivative(j) for every j (col, rows, work*: the twins' scratch)."""
    for j in range(len(params)):
        grad[j] = coordinate_derivative(j, X, params, table, act, Z, A, Zhat, istd, G)


def finite_difference_gradient(X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, Q,
                               eps, grad, col, rows, work1, work2):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated incrementally."""
    for j in range(len(params)):
        up = loss_change(j, eps, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, Q)
        down = loss_change(j, -eps, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, Q)
        grad[j] = (up - down) / (2 * eps)
