"""Per-coordinate work re-evaluated incrementally from a cached point: the Numba twin of
``coordinate_numpy.py`` (read its docstring first; same arguments, same results).

Scratch space passed in: ``col`` (N,) holds the moving column, ``rows`` (N,) the samples that
move, ``work1``/``work2`` (N * widest,) the downstream layers of those samples, compacted to
``m`` rows, alternating between the two.
"""
import numpy as np
from numba import njit

from .codes import BETA, BIAS, GAMMA, WEIGHT
from .mlp_numba import (activate, activation_slope, batchnorm_jacobian, block, column_stats,
                        dense, normalise_and_activate, row_loss, weights)


@njit(cache=True)
def decode(j, table):
    """(layer, kind, k, i) of coordinate j; see coordinate_numpy.decode."""
    l = table.shape[0] - 1
    while table[l, 2] > j:
        l -= 1
    n_out, off_W, off_b, off_gamma, off_beta = table[l, 1], table[l, 2], table[l, 3], table[l, 4], table[l, 5]
    if j < off_b:
        return l, WEIGHT, (j - off_W) // n_out, (j - off_W) % n_out
    if off_gamma < 0 or j < off_gamma:
        return l, BIAS, 0, j - off_b
    if j < off_beta:
        return l, GAMMA, 0, j - off_gamma
    return l, BETA, 0, j - off_beta


@njit(cache=True)
def layer_input_column(X, A, table, l, k, col):
    # col = (X if l == 0 else A_{l-1})[:, k]
    N = X.shape[0]
    if l == 0:
        for r in range(N):
            col[r] = X[r, k]
    else:
        a_in = block(A, N, table, l - 1)
        for r in range(N):
            col[r] = a_in[r, k]


@njit(cache=True)
def moved_rows(col, batchnorm, rows):
    """Fill rows with the samples a column change reaches downstream; return their count."""
    m = 0
    for r in range(col.shape[0]):
        if batchnorm or col[r] != 0.0:
            rows[m] = r
            m += 1
    return m


@njit(cache=True)
def next_layer(Z, params, table, l, i, col, rows, m, out_base, work):
    """work[:m] = base[rows] + outer(col[rows], W_{l+1}[i, :]) where base is layer l+1's cached
    Dense output (``out_base``) or zero (a tangent); returns that (m, n_next) view."""
    N = col.shape[0]
    n_next = table[l + 1, 1]
    w_row = weights(params, table, l + 1)[i]
    z_next = block(Z, N, table, l + 1)
    out = work[:m * n_next].reshape(m, n_next)
    for r in range(m):
        for c in range(n_next):
            out[r, c] = col[rows[r]] * w_row[c]
            if out_base:
                out[r, c] += z_next[rows[r], c]
    return out


@njit(cache=True)
def coordinate_derivative(j, X, params, table, act, Z, A, Zhat, istd, G, col, rows, work1, work2):
    """dJ/dθ_j in forward mode; see coordinate_numpy.coordinate_derivative."""
    N, n_layers = X.shape[0], table.shape[0]
    l, kind, k, i = decode(j, table)
    n_out, off_gamma, c0 = table[l, 1], table[l, 4], table[l, 6]
    # the tangent of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if kind == WEIGHT:
        layer_input_column(X, A, table, l, k, col)
    elif kind == GAMMA:
        zhat = block(Zhat, N, table, l)
        for r in range(N):
            col[r] = zhat[r, i]
    else:
        col[:N] = 1.0
    if l == n_layers - 1:
        # dJ = G[:, i] @ dz
        total = 0.0
        for r in range(N):
            total += G[r, i] * col[r]
        return total
    batchnorm = off_gamma >= 0
    if batchnorm and kind <= BIAS:
        c = c0 + i
        batchnorm_jacobian(col[:N].reshape(N, 1), block(Zhat, N, table, l)[:, i:i + 1],
                           istd[c:c + 1], params[off_gamma + i:off_gamma + i + 1])
    a = block(A, N, table, l)
    for r in range(N):
        col[r] *= activation_slope(act, a[r, i])
    m = moved_rows(col[:N], batchnorm, rows)
    dz = next_layer(Z, params, table, l, i, col, rows, m, False, work1)
    for layer in range(l + 1, n_layers - 1):
        width, off_g, cm = table[layer, 1], table[layer, 4], table[layer, 6]
        if off_g >= 0:
            batchnorm_jacobian(dz, block(Zhat, N, table, layer), istd[cm:cm + width],
                               params[off_g:off_g + width])
        a = block(A, N, table, layer)
        for r in range(m):
            for c in range(width):
                dz[r, c] *= activation_slope(act, a[rows[r], c])
        # dz = dz @ W_{layer+1}, into the other work buffer
        work = work2 if (layer - l) % 2 == 1 else work1
        out = work[:m * table[layer + 1, 1]].reshape(m, table[layer + 1, 1])
        np.dot(dz, weights(params, table, layer + 1), out)
        dz = out
    # dJ = (G[rows] * dz).sum()
    total = 0.0
    for r in range(m):
        for c in range(dz.shape[1]):
            total += G[rows[r], c] * dz[r, c]
    return total


@njit(cache=True)
def loss_change(j, delta, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, col, rows,
                work1, work2):
    """J(θ + delta e_j) − J(θ) with θ unchanged; see coordinate_numpy.loss_change."""
    N, n_layers = X.shape[0], table.shape[0]
    l, kind, k, i = decode(j, table)
    n_out, off_gamma, off_beta, c0 = table[l, 1], table[l, 4], table[l, 5], table[l, 6]
    z = block(Z, N, table, l)
    # col = the new column i of z (unchanged for gamma and beta)
    if kind == WEIGHT:
        layer_input_column(X, A, table, l, k, col)
        for r in range(N):
            col[r] = z[r, i] + delta * col[r]
    else:
        for r in range(N):
            col[r] = z[r, i] + (delta if kind == BIAS else 0.0)
    if l == n_layers - 1:
        # only column i of the logits moves, and only where it changed
        logits = work1[:n_out]
        total = 0.0
        for r in range(N):
            if col[r] == z[r, i]:
                continue
            logits[:] = z[r]
            logits[i] = col[r]
            total += row_loss(loss, logits, T[r]) - rowloss[r]
        return total / N
    batchnorm = off_gamma >= 0
    if batchnorm:
        g = params[off_gamma + i] + (delta if kind == GAMMA else 0.0)
        b = params[off_beta + i] + (delta if kind == BETA else 0.0)
        if kind <= BIAS:
            # u = g * batchnorm(z_new) + b
            column = col[:N].reshape(N, 1)
            mean, s = np.empty(1, dtype=col.dtype), np.empty(1, dtype=col.dtype)
            column_stats(column, mean, s)
            for r in range(N):
                col[r] = g * ((col[r] - mean[0]) * s[0]) + b
        else:
            zhat = block(Zhat, N, table, l)
            for r in range(N):
                col[r] = g * zhat[r, i] + b
    # col = act(u_new) - a[:, i]: how much column i of the activations moves
    a = block(A, N, table, l)
    for r in range(N):
        col[r] = activate(act, col[r]) - a[r, i]
    m = moved_rows(col[:N], batchnorm, rows)
    z_rows = next_layer(Z, params, table, l, i, col, rows, m, True, work1)
    for layer in range(l + 1, n_layers - 1):
        width, off_g, off_bt = table[layer, 1], table[layer, 4], table[layer, 5]
        # the activations of the moved samples, in place of their z
        if off_g >= 0:
            mean, s = np.empty(width, dtype=col.dtype), np.empty(width, dtype=col.dtype)
            column_stats(z_rows, mean, s)
            normalise_and_activate(act, z_rows, z_rows, params[off_g:off_g + width],
                                   params[off_bt:off_bt + width], mean, s, z_rows)
        else:
            for r in range(m):
                for c in range(width):
                    z_rows[r, c] = activate(act, z_rows[r, c])
        work = work2 if (layer - l) % 2 == 1 else work1
        n_next, off_b = table[layer + 1, 1], table[layer + 1, 3]
        out = work[:m * n_next].reshape(m, n_next)
        dense(z_rows, weights(params, table, layer + 1), params[off_b:off_b + n_next], out)
        z_rows = out
    total = 0.0
    for r in range(m):
        total += row_loss(loss, z_rows[r], T[rows[r]]) - rowloss[rows[r]]
    return total / N


@njit(cache=True)
def forward_mode_gradient(X, params, table, act, Z, A, Zhat, istd, G, grad, col, rows, work1,
                          work2):
    """grad[j] = coordinate_derivative(j) for every coordinate."""
    for j in range(params.shape[0]):
        grad[j] = coordinate_derivative(j, X, params, table, act, Z, A, Zhat, istd, G, col, rows,
                                        work1, work2)


@njit(cache=True)
def finite_difference_gradient(X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, eps,
                               grad, col, rows, work1, work2):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated incrementally."""
    for j in range(params.shape[0]):
        up = loss_change(j, eps, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss, col,
                         rows, work1, work2)
        down = loss_change(j, -eps, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss,
                           col, rows, work1, work2)
        grad[j] = (up - down) / (2 * eps)
