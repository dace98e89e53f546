"""Per-coordinate work re-evaluated incrementally from a cached point: the Numba twin of
``incremental_numpy.py`` (read its docstring first; same arguments, same results). Each entry
point takes the bundles of ``bundles.py``: ``coordinate_derivative(j, net, cache, state,
scratch)``, ``loss_change(j, delta, net, cache, state, scratch)``, ``forward_mode_gradient(net,
cache, state, grad, scratch)``, ``finite_difference_gradient(net, cache, state, eps, grad,
scratch)``, unpacked by position as in mlp_numba (docs/design.md, "The kernel interface").

The scratch bundle: ``column`` (N,) holds a column (the tangent in forward mode, the input
column a weight reads in loss_change), ``rows`` (N,) the samples that move, ``work1``/``work2``
(N * widest,) the downstream layers of those samples, compacted to
``m`` rows, alternating between the two. The finite-difference kernel visits coordinates column
by column and works on contiguous copies of each column (load_column, load_inputs); the hidden
column a coordinate feeds travels as a ``Column`` bundle.

Sample weights and the L2 penalty (bundles.py): a loss change is the weighted sum of the
per-sample changes plus the penalty's, over n = state.weight_sum[0]; a derivative reads the
weights in state.G and adds the penalty's slope. The vectorised (fastmath) sums over samples
take a ``unit`` flag (every weight 1, unit_weights): they then run their unweighted loops
unchanged, which ``contract`` would otherwise fuse differently, so that unit weights compute
exactly what no weights did.
"""
from collections import namedtuple

import numpy as np

from .codes import (BETA, BIAS, BINARY_CROSS_ENTROPY, COL_OFF, CROSS_ENTROPY, GAMMA,
                    MODERATE_CHANGE, MSE, N_IN, N_OUT, OFF_B, OFF_BETA, OFF_GAMMA, OFF_W, POISSON,
                    SIGMOID, SMALL_CHANGE, TANH, WEIGHT)
from .mlp_numba import (activation_change, activation_slope, batchnorm_change, batchnorm_jacobian,
                        block, expm1_small, kernel, kind_offset, log1p_small, logit_change,
                        row_loss_change, tanh_small, weights)


@kernel
def decode(j, table):
    """(layer, kind, k, i) of coordinate j; see incremental_numpy.decode."""
    l = table.shape[0] - 1
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


@kernel
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


@kernel
def moved_rows(col, batchnorm, rows):
    """Fill rows with the samples a column change reaches downstream; return their count."""
    m = 0
    # rows = np.flatnonzero(col != 0) (every sample with BatchNorm)
    for r in range(col.shape[0]):
        if batchnorm or col[r] != 0.0:
            rows[m] = r
            m += 1
    return m


@kernel
def next_layer(w_row, col, rows, m, work):
    """work[:m] = outer(col[rows], W_{l+1}[i, :]): how the next layer's z moves; returns that
    (m, n_next) view."""
    n_next = w_row.shape[0]
    out = work[:m * n_next].reshape(m, n_next)
    # out = np.outer(col[rows[:m]], w_row)
    for r in range(m):
        for c in range(n_next):
            out[r, c] = col[rows[r]] * w_row[c]
    return out


@kernel
def unit_weights(weight):
    """Whether every sample weight is 1: the sums over samples then leave the weights out."""
    unit = True
    # unit = (weight == 1).all(), an and-reduction with no early exit, so that it vectorises
    for r in range(weight.shape[0]):
        unit &= weight[r] == 1.0
    return unit


@kernel
def penalty_change(theta, delta, alpha):
    """n times the L2 penalty's share of J's change when a weight θ moves by delta: alpha / 2 ·
    ((θ + delta)² − θ²) = alpha / 2 · delta (2 θ + delta), exact for any delta."""
    return 0.5 * alpha * delta * (2.0 * theta + delta)


@kernel
def coordinate_derivative(j, net, cache, state, scratch):
    """dJ/dθ_j in forward mode, from state.G, plus the L2 penalty's alpha θ_j / n for a weight;
    see incremental_numpy.coordinate_derivative."""
    params, table, act, _, _, alpha = net
    X, _, A, Zhat, _, istd = cache
    _, _, G, _, _, weight_sum = state
    col, rows, work1, work2 = scratch
    N, n_layers = X.shape[0], table.shape[0]
    l, kind, k, i = decode(j, table)
    off_gamma, c0 = table[l, OFF_GAMMA], table[l, COL_OFF]
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
        if kind == WEIGHT and alpha != 0.0:
            total += alpha * params[j] / np.float64(weight_sum[0])
        return total
    batchnorm = off_gamma >= 0
    if batchnorm and kind <= BIAS:
        c = c0 + i
        batchnorm_jacobian(col[:N].reshape(N, 1), block(Zhat, N, table, l)[:, i:i + 1],
                           istd[c:c + 1], params[off_gamma + i:off_gamma + i + 1])
    a = block(A, N, table, l)
    # col *= act'(a[:, i])
    for r in range(N):
        col[r] *= activation_slope(act, a[r, i])
    m = moved_rows(col[:N], batchnorm, rows)
    dz = next_layer(weights(params, table, l + 1)[i], col, rows, m, work1)
    for layer in range(l + 1, n_layers - 1):
        width, off_g, cm = table[layer, N_OUT], table[layer, OFF_GAMMA], table[layer, COL_OFF]
        if off_g >= 0:
            batchnorm_jacobian(dz, block(Zhat, N, table, layer), istd[cm:cm + width],
                               params[off_g:off_g + width])
        a = block(A, N, table, layer)
        # dz *= act'(a[rows])
        for r in range(m):
            for c in range(width):
                dz[r, c] *= activation_slope(act, a[rows[r], c])
        # dz = dz @ W_{layer+1}, into the other work buffer
        work = work2 if (layer - l) % 2 == 1 else work1
        n_next = table[layer + 1, N_OUT]
        out = work[:m * n_next].reshape(m, n_next)
        np.dot(dz, weights(params, table, layer + 1), out)
        dz = out
    # dJ = (G[rows] * dz).sum()
    total = 0.0
    for r in range(m):
        for c in range(dz.shape[1]):
            total += G[rows[r], c] * dz[r, c]
    if kind == WEIGHT and alpha != 0.0:
        total += alpha * params[j] / np.float64(weight_sum[0])
    return total


# A column workspace C (4, N): the activation input u, the activations a and (BatchNorm) the
# normalised values zhat of the hidden column a coordinate feeds, copied so that they are
# contiguous, and the column's change.
U, ACT, ZHAT, CHANGE = 0, 1, 2, 3

# The column (l, i) the coordinates of column_loss_change feed: ``C`` its column workspace
# (load_column, hidden layers) and ``M`` (MOMENTS, N) its rank1_moments (last hidden layer),
# loaded once for every coordinate feeding it.
Column = namedtuple("Column", "l i C M")


@kernel
def load_column(net, cache, l, i, C):
    """C[U], C[ACT], C[ZHAT] = column i of hidden layer l; returns max |zhat| (0 without
    BatchNorm)."""
    params, table, _, _, _, _ = net
    _, Z, A, Zhat, _, _ = cache
    N = C.shape[1]
    z, a = block(Z, N, table, l), block(A, N, table, l)
    off_gamma = table[l, OFF_GAMMA]
    # C[U], C[ACT] = z[:, i], a[:, i] (u = gamma * zhat[:, i] + beta[i] with BatchNorm)
    if off_gamma < 0:
        for r in range(N):
            C[U, r] = z[r, i]
            C[ACT, r] = a[r, i]
        return 0.0
    zhat = block(Zhat, N, table, l)
    g, b = params[off_gamma + i], params[table[l, OFF_BETA] + i]
    for r in range(N):
        C[ZHAT, r] = zhat[r, i]
        C[U, r] = g * zhat[r, i] + b
        C[ACT, r] = a[r, i]
    return largest_magnitude(C[ZHAT])


@kernel
def load_inputs(cache, table, l, inputs, bounds):
    """inputs[:n_in] = the transposed input of layer l (X, or the previous activations);
    bounds[k] = max |inputs[k]|."""
    X, _, A, _, _, _ = cache
    N = X.shape[0]
    a_in = X if l == 0 else block(A, N, table, l - 1)
    # inputs[:n_in] = a_in.T
    for r in range(N):
        for k in range(table[l, N_IN]):
            inputs[k, r] = a_in[r, k]
    for k in range(table[l, N_IN]):
        bounds[k] = largest_magnitude(inputs[k])


@kernel
def activation_changes(act, u, a, du, bound):
    """In place, a whole column: du = act(u + du) - act(u), a = act(u). When every |du| is
    small (bound >= max |du|) the identities of activation_change run as a branch-free loop,
    which vectorises."""
    if (act == TANH or act == SIGMOID) and bound <= SMALL_CHANGE:
        if act == TANH:
            for r in range(du.shape[0]):
                t = tanh_small(du[r])
                du[r] = t * (1.0 - a[r] * a[r]) / (1.0 + a[r] * t)
        else:
            for r in range(du.shape[0]):
                e = expm1_small(du[r])
                du[r] = a[r] * (1.0 - a[r]) * e / (1.0 + a[r] * e)
        return
    # du = act(u + du) - a, through activation_change's identities one sample at a time
    for r in range(du.shape[0]):
        du[r] = activation_change(act, u[r], a[r], du[r])


# Taylor moments of a rank-1 change of the logits: when sample r's logits move by d_r w,
# sum_c q_rc expm1(d_r w_c) = sum_k d_r^k M[k, r] with M[k, r] = sum_c q_rc w_c^k / k!, exact to
# about one ulp while every |d_r w_c| <= SMALL_CHANGE (the degree-8 Taylor polynomial of expm1,
# summed over c). Every coordinate feeding column i of the last hidden layer shares w, so the
# moments are computed once per column and each coordinate then costs O(N), not O(N n_out).
# Cross-entropy, mse and poisson have such a form (and binary cross-entropy with one output,
# cross-entropy's one-logit case); binary cross-entropy's several outputs, a log1p each, do not
# (rank1_form).
MOMENTS = 9


@kernel
def rank1_form(loss, n_out):
    """Whether a rank-1 change of the logits has rank1_change's moment form for this loss."""
    return loss != BINARY_CROSS_ENTROPY or n_out == 1


@kernel(fastmath={"contract"})
def rank1_moments(loss, Q, T, w, M):
    """M (MOMENTS, N) for logits moving along w: cross-entropy, binary cross-entropy (one
    output) and poisson: M[0] = T @ w and M[k] = sum_c q_c w_c^k / k!; mse: M[1] = q @ w (q the
    residual) and M[2] = w @ w. ``contract`` only lets multiply-adds fuse (it changes no NaN or
    inf handling)."""
    n_out, N = Q.shape
    M[:, :N] = 0.0
    if loss == MSE:
        ww = 0.0
        for c in range(n_out):
            ww += w[c] * w[c]
            for r in range(N):
                M[1, r] += Q[c, r] * w[c]
        M[2, :N] = ww
        return
    for c in range(n_out):
        power = 1.0
        for k in range(1, MOMENTS):
            power *= w[c] / k  # w_c^k / k!
            for r in range(N):
                M[k, r] += Q[c, r] * power
    for r in range(N):
        for c in range(n_out):
            M[0, r] += T[r, c] * w[c]


@kernel(inline="always")
def moment_sum(M, x, r):
    # sum_k x^k M[k, r], k = 1 .. 8: sample r's sum_c q_c expm1(x w_c)
    return x * (M[1, r] + x * (M[2, r] + x * (M[3, r] + x * (M[4, r] + x * (M[5, r] + x * (
        M[6, r] + x * (M[7, r] + x * M[8, r])))))))


@kernel(fastmath={"contract", "reassoc"})
def rank1_change(loss, M, d, weight, unit, divisor):
    """n J-change, Σ_r weight_r times sample r's loss change, when sample r's logits move by
    d_r w, from rank1_moments: log1p(sum_k d^k M[k]) - d M[0] per sample (cross-entropy; binary
    cross-entropy's one output, over divisor), (sum_k d^k M[k] - d M[0]) / divisor (poisson),
    d (2 q @ w + d w @ w) / divisor (mse). ``unit``: every weight is 1 (left out). ``reassoc``
    lets the sum over samples vectorise; the inputs are finite and bounded here."""
    total = 0.0
    if loss == MSE:
        if unit:
            for r in range(d.shape[0]):
                total += d[r] * (2.0 * M[1, r] + d[r] * M[2, r])
        else:
            for r in range(d.shape[0]):
                total += weight[r] * (d[r] * (2.0 * M[1, r] + d[r] * M[2, r]))
        return total / divisor
    if loss == POISSON:
        for r in range(d.shape[0]):
            x = d[r]
            total += weight[r] * (moment_sum(M, x, r) - x * M[0, r])
        return total / divisor
    if unit:
        for r in range(d.shape[0]):
            x = d[r]
            total += log1p_small(moment_sum(M, x, r)) - x * M[0, r]
    else:
        for r in range(d.shape[0]):
            x = d[r]
            total += weight[r] * (log1p_small(moment_sum(M, x, r)) - x * M[0, r])
    return total if loss == CROSS_ENTROPY else total / divisor


@kernel(fastmath={"contract", "reassoc"})
def logit_column_change(loss, q, d, weight, unit, divisor):
    """Σ_r weight_r times sample r's loss change when its logit i moves by d_r, every |d_r| <=
    SMALL_CHANGE, q = Q[i], leaving out the target term -Σ_r weight_r t_ri d_r and (but for
    mse) the division by divisor, both the caller's. ``unit``: every weight is 1 (left out)."""
    total = 0.0
    if loss == MSE:
        if unit:
            for r in range(d.shape[0]):
                total += d[r] * (2.0 * q[r] + d[r])
        else:
            for r in range(d.shape[0]):
                total += weight[r] * (d[r] * (2.0 * q[r] + d[r]))
        return total / divisor
    if loss == POISSON:
        # q expm1(d) per sample
        for r in range(d.shape[0]):
            total += weight[r] * (q[r] * expm1_small(d[r]))
        return total
    if unit:
        for r in range(d.shape[0]):
            total += log1p_small(q[r] * expm1_small(d[r]))
    else:
        for r in range(d.shape[0]):
            total += weight[r] * log1p_small(q[r] * expm1_small(d[r]))
    return total


@kernel
def largest_magnitude(x):
    # np.abs(x).max(initial=0)
    largest = 0.0
    for v in x:
        largest = max(largest, abs(v))
    return largest


@kernel
def loss_change(j, delta, net, cache, state, scratch):
    """J(θ + delta e_j) − J(θ) with θ unchanged, from state.T, rowloss, Q and the sample weights:
    the weighted sum of the per-sample changes plus the L2 penalty's, over n =
    state.weight_sum[0]; see incremental_numpy.loss_change. (scratch.column: room for the input
    column a W coordinate reads.)"""
    params, table, _, loss, _, alpha = net
    X, _, A, _, _, _ = cache
    T, _, _, Q, weight, weight_sum = state
    col, _, _, _ = scratch
    N, n_layers = X.shape[0], table.shape[0]
    l, kind, k, i = decode(j, table)
    if kind == WEIGHT:
        layer_input_column(X, A, table, l, k, col)
    column = Column(l, i, np.empty((4, N), dtype=X.dtype), np.empty((MOMENTS, N)))
    zhat_bound = 0.0
    if l < n_layers - 1:
        zhat_bound = load_column(net, cache, l, i, column.C)
    if l == n_layers - 2 and rank1_form(loss, Q.shape[0]):
        rank1_moments(loss, Q, T, weights(params, table, l + 1)[i], column.M)
    source_bound = (largest_magnitude(col[:N]) if kind == WEIGHT else
                    zhat_bound if kind == GAMMA else 1.0)
    total = column_loss_change(column, kind, delta, col[:N], source_bound, unit_weights(weight),
                               net, cache, state, scratch)
    if kind == WEIGHT and alpha != 0.0:
        total += penalty_change(params[j], delta, alpha)
    return total / np.float64(weight_sum[0])


@kernel
def column_loss_change(column, kind, delta, source, source_bound, unit, net, cache, state,
                       scratch):
    """n times loss_change, the penalty left out (the weighted sum of the per-sample loss
    changes), for a coordinate of the given kind feeding column (l, i) (a Column: C =
    load_column(l, i) for hidden layers, M = the rank1_moments of column i for the last hidden
    layer), given source = the input column it reads (W) and source_bound >= the largest
    |column| the coordinate scales: max |source| (W), max |zhat| (gamma), 1 (b, beta); ``unit``:
    every sample weight is 1 (unit_weights). Bounds on the changes, not scans of them, decide
    when the vectorised small-change paths apply. Uses scratch.rows, work1 and work2 (not
    scratch.column)."""
    l, i, C, M = column.l, column.i, column.C, column.M
    params, table, act, loss, divisor, _ = net
    _, Z, A, Zhat, _, istd = cache
    T, rowloss, _, Q, weight, _ = state
    _, rows, work1, work2 = scratch
    N, n_layers = C.shape[1], table.shape[0]
    out = n_layers - 1
    n_out = table[out, N_OUT]
    logits = block(Z, N, table, out)
    # col = the change of column i of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    col = C[CHANGE]
    if kind == WEIGHT:
        for r in range(N):
            col[r] = delta * source[r]
    elif kind == GAMMA:
        for r in range(N):
            col[r] = delta * C[ZHAT, r]
    else:
        col[:] = delta
    bound = abs(delta) * source_bound
    if l == out:
        # only column i of the logits moves
        if bound <= SMALL_CHANGE:
            total = logit_column_change(loss, Q[i], col, weight, unit, divisor)
            if loss != MSE:
                # total -= (weight * T[:, i]) @ col, then the divisor (not cross-entropy's)
                for r in range(N):
                    total -= weight[r] * T[r, i] * col[r]
                if loss != CROSS_ENTROPY:
                    total /= divisor
            return total
        dz = work1[:n_out]
        dz[:] = 0.0
        total = 0.0
        # total = the weighted sum over the samples of each row's loss change
        for r in range(N):
            d = col[r]
            if d == 0.0:
                continue
            if abs(d) <= MODERATE_CHANGE:
                total += weight[r] * logit_change(loss, Q[i, r], T[r, i], d, divisor)
            else:
                dz[i] = d
                total += weight[r] * row_loss_change(loss, logits[r], Q[:, r], T[r], rowloss[r],
                                                     dz, divisor)
                dz[:] = 0.0
        return total
    # col = the change of column i of the activations
    off_gamma = table[l, OFF_GAMMA]
    batchnorm = off_gamma >= 0
    if batchnorm and kind <= BIAS:
        # du = gamma * (zhat(z + dz) - zhat(z)): the column's statistics move too
        c = table[l, COL_OFF] + i
        batchnorm_change(col.reshape(N, 1), C[ZHAT].reshape(N, 1), istd[c:c + 1])
        for r in range(N):
            col[r] *= params[off_gamma + i]
        bound = largest_magnitude(col)
    activation_changes(act, C[U], C[ACT], col, bound)
    # |act(u + d) - act(u)| <= |d| max|act'|: 1, or 1/4 for sigmoid
    bound *= 0.25 if act == SIGMOID else 1.0
    w = weights(params, table, l + 1)[i]
    if (l + 1 == out and rank1_form(loss, n_out)
            and bound * largest_magnitude(w) <= SMALL_CHANGE):
        return rank1_change(loss, M, col, weight, unit, divisor)
    m = moved_rows(col, batchnorm, rows)
    dz = next_layer(w, col, rows, m, work1)
    for layer in range(l + 1, out):
        width, off_g = table[layer, N_OUT], table[layer, OFF_GAMMA]
        off_bt, cm = table[layer, OFF_BETA], table[layer, COL_OFF]
        z, a = block(Z, N, table, layer), block(A, N, table, layer)
        # dz becomes the change of the layer's activations, in place
        if off_g >= 0:
            # du = gamma * (zhat(z + dz) - zhat(z)), all samples (m == N)
            zhat = block(Zhat, N, table, layer)
            gamma, beta = params[off_g:off_g + width], params[off_bt:off_bt + width]
            batchnorm_change(dz, zhat, istd[cm:cm + width])
            # dz = act(gamma * zhat + beta + gamma * dz) - a
            for r in range(m):
                for c in range(width):
                    dz[r, c] = activation_change(act, gamma[c] * zhat[r, c] + beta[c], a[r, c],
                                                 gamma[c] * dz[r, c])
        else:
            # dz = act(z[rows] + dz) - a[rows]
            for r in range(m):
                for c in range(width):
                    dz[r, c] = activation_change(act, z[rows[r], c], a[rows[r], c], dz[r, c])
        # dz = da @ W_{layer+1}, into the other work buffer
        work = work2 if (layer - l) % 2 == 1 else work1
        n_next = table[layer + 1, N_OUT]
        nxt = work[:m * n_next].reshape(m, n_next)
        np.dot(dz, weights(params, table, layer + 1), nxt)
        dz = nxt
    total = 0.0
    # total = the weighted sum of row_loss_change over the rows that moved
    for r in range(m):
        total += weight[rows[r]] * row_loss_change(loss, logits[rows[r]], Q[:, rows[r]],
                                                   T[rows[r]], rowloss[rows[r]], dz[r], divisor)
    return total


@kernel
def forward_mode_gradient(net, cache, state, grad, scratch):
    """grad[j] = coordinate_derivative(j) for every coordinate."""
    for j in range(grad.shape[0]):
        grad[j] = coordinate_derivative(j, net, cache, state, scratch)


@kernel
def finite_difference_gradient(net, cache, state, eps, grad, scratch):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated
    incrementally (eps in the network's dtype; the penalty's share included). Coordinates are
    visited column by column: those feeding one column share its load_column and, in the last
    hidden layer, its rank1_moments."""
    params, table, _, loss, _, alpha = net
    X, _, _, _, _, _ = cache
    T, _, _, Q, weight, weight_sum = state
    n = np.float64(weight_sum[0])
    unit = unit_weights(weight)
    rank1 = rank1_form(loss, Q.shape[0])
    N, n_layers = X.shape[0], table.shape[0]
    C = np.empty((4, N), dtype=X.dtype)
    M = np.empty((MOMENTS, N))
    inputs = np.empty((np.max(table[:, N_IN]), N), dtype=X.dtype)
    bounds = np.empty(np.max(table[:, N_IN]))
    for l in range(n_layers):
        n_in, n_out = table[l, N_IN], table[l, N_OUT]
        load_inputs(cache, table, l, inputs, bounds)
        # the coordinates feeding column i: W[k, i] for every k, then b[i], gamma[i], beta[i]
        # (the kinds are WEIGHT, BIAS, GAMMA, BETA = 0 .. 3)
        n_kinds = 2 if table[l, OFF_GAMMA] < 0 else 4
        for i in range(n_out):
            zhat_bound = 0.0
            if l < n_layers - 1:
                zhat_bound = load_column(net, cache, l, i, C)
            if l == n_layers - 2 and rank1:
                rank1_moments(loss, Q, T, weights(params, table, l + 1)[i], M)
            column = Column(l, i, C, M)
            for kind in range(n_kinds):
                for k in range(n_in if kind == WEIGHT else 1):
                    j = (kind_offset(table, l, WEIGHT) + k * n_out if kind == WEIGHT else
                         kind_offset(table, l, kind)) + i
                    scale = bounds[k] if kind == WEIGHT else zhat_bound if kind == GAMMA else 1.0
                    up = column_loss_change(column, kind, eps, inputs[k], scale, unit, net,
                                            cache, state, scratch)
                    down = column_loss_change(column, kind, -eps, inputs[k], scale, unit, net,
                                              cache, state, scratch)
                    if kind == WEIGHT and alpha != 0.0:
                        up += penalty_change(params[j], eps, alpha)
                        down += penalty_change(params[j], -eps, alpha)
                    grad[j] = (up / n - down / n) / (2 * eps)
