"""The sequential sweep: the Numba twin of ``sequential_numpy.py`` (read its docstring first;
same arguments, same results).

The sweep works on a transposed copy of the cached point, one row per column of the network
(``ZT``, ``AT``, ``ZhatT``: layer l's block is ``buf[N*c0 : N*(c0 + n_out)].reshape(n_out, N)``;
``QT``, ``GT``, ``TT`` (n_out, N) the loss state, dJ/dlogits and the targets), so that the
column a coordinate feeds, the input column it reads and every per-sample loop run along
contiguous memory and vectorise. When a coordinate feeds the last hidden layer (or the logits),
its derivatives and its step touch O(N n_out) numbers: the logits move by a rank-1 term and the
per-sample losses and softmax follow through exact change identities (``logit_rank1_change``);
deeper coordinates recompute the layers after the next one.
"""
import numpy as np

from .codes import (BIAS, BN_EPS, CROSS_ENTROPY, GAMMA, GRADIENT, MODERATE_CHANGE, MSE,
                    RAISED_ULPS, SIGMOID, SMALL_CHANGE, TANH, WEIGHT)
from .coordinate_numba import activation_changes, decode, largest_magnitude
from .mlp_numba import (activate, activation_slope, backprop, block, expm1_small, forward,
                        kernel, log1p_small, loss as evaluate_loss, row_loss_and_state, weights)


# ---------------------------------------------------------------- columns and tangents
@kernel
def activation_curve(act, a):
    """act''(u) written in terms of a = act(u)."""
    if act == TANH:
        return -2.0 * a * (1.0 - a * a)
    if act == SIGMOID:
        return a * (1.0 - a) * (1.0 - 2.0 * a)
    return 0.0


@kernel
def batchnorm_column_tangents(t, s, zhat, istd, gamma, second):
    """In place, one column: t, s (first and second tangents of z) become those of
    u = gamma * zhat + beta; see sequential_numpy.batchnorm_tangents."""
    N = t.shape[0]
    mean_t = rho = 0.0
    for r in range(N):
        mean_t += t[r]
        rho += zhat[r] * t[r]
    mean_t /= N
    rho /= N
    if second:
        var_t = mean_s = rho_s = 0.0
        for r in range(N):
            var_t += (t[r] - mean_t) ** 2
            mean_s += s[r]
            rho_s += zhat[r] * s[r]
        var_t /= N
        mean_s /= N
        rho_s /= N
        for r in range(N):
            s[r] = gamma * (istd * (s[r] - mean_s - zhat[r] * rho_s) + istd * istd * (
                3.0 * rho * rho * zhat[r] - 2.0 * rho * (t[r] - mean_t) - var_t * zhat[r]))
    for r in range(N):
        t[r] = gamma * istd * (t[r] - mean_t - zhat[r] * rho)


@kernel
def through_activation(act, a, t, s, second):
    """In place: t, s tangents of u become those of a = act(u): s = act'' t² + act' s, t = act' t."""
    for r in range(t.shape[0]):
        slope = activation_slope(act, a[r])
        if second:
            s[r] = activation_curve(act, a[r]) * t[r] * t[r] + slope * s[r]
        t[r] *= slope


@kernel
def source_column(kind, l, k, i, XT, AT, ZhatT, table, v):
    """v = d(column i of z, or of u for gamma/beta)/dθ: the input column (W), zhat's column
    (gamma) or ones (b, beta)."""
    N = v.shape[0]
    if kind == WEIGHT:
        v[:] = XT[k] if l == 0 else transposed(AT, N, table, l - 1)[k]
    elif kind == GAMMA:
        v[:] = transposed(ZhatT, N, table, l)[i]
    else:
        v[:] = 1.0


@kernel
def transposed(buf, N, table, l):
    """Layer l's (n_out, N) block of a transposed per-sample buffer."""
    start = N * table[l, 6]
    return buf[start:start + N * table[l, 1]].reshape(table[l, 1], N)


# ---------------------------------------------------------------- derivatives
@kernel
def output_derivatives(loss, w, ta, sa, QT, GT, newton, y):
    """(g, h) when the logits move along w by ta_r per sample (second tangent sa_r w): g = Σ_r
    ta_r (G_r · w), h = Σ_r sa_r (G_r · w) + Σ_r ta_r² wᵀ H_r w / N. y is scratch (N,)."""
    n_out, N = QT.shape
    # y = G @ w, one class at a time along the samples
    y[:] = 0.0
    for c in range(n_out):
        for r in range(N):
            y[r] += GT[c, r] * w[c]
    g = 0.0
    for r in range(N):
        g += ta[r] * y[r]
    if not newton:
        return g, 0.0
    h = 0.0
    for r in range(N):
        h += sa[r] * y[r]
    curvature = 0.0
    if loss == MSE:
        ww = 0.0
        for c in range(n_out):
            ww += w[c] * w[c]
        for r in range(N):
            curvature += ta[r] * ta[r]
        return g, h + curvature * 2.0 * ww / n_out / N
    if loss == CROSS_ENTROPY:
        # wᵀ H_r w = Σ q w² − (Σ q w)², accumulated in y (first moment) and qww
        y[:] = 0.0
        for c in range(n_out):
            for r in range(N):
                y[r] += QT[c, r] * w[c]
        for r in range(N):
            qww = 0.0
            for c in range(n_out):
                qww += QT[c, r] * w[c] * w[c]
            curvature += ta[r] * ta[r] * (qww - y[r] * y[r])
        return g, h + curvature / N
    for r in range(N):
        curvature += ta[r] * ta[r] * QT[0, r] * (1.0 - QT[0, r]) * w[0] * w[0]
    return g, h + curvature / N


@kernel
def block_loss_derivatives(loss, T1, S1, QT, GT, newton):
    """(g, h) when the logits have tangents T1 and second tangents S1 (n_out, N)."""
    n_out, N = QT.shape
    g = h = 0.0
    for c in range(n_out):
        for r in range(N):
            g += GT[c, r] * T1[c, r]
            h += GT[c, r] * S1[c, r]
    if not newton:
        return g, 0.0
    curvature = 0.0
    for r in range(N):
        if loss == MSE:
            for c in range(n_out):
                curvature += 2.0 * T1[c, r] * T1[c, r] / n_out
        elif loss == CROSS_ENTROPY:
            first = second = 0.0
            for c in range(n_out):
                first += QT[c, r] * T1[c, r]
                second += QT[c, r] * T1[c, r] * T1[c, r]
            curvature += second - first * first
        else:
            curvature += QT[0, r] * (1.0 - QT[0, r]) * T1[0, r] * T1[0, r]
    return g, h + curvature / N


@kernel
def derivatives(j, newton, params, table, act, loss, XT, AT, ZhatT, istd, QT, GT, t, s, y,
                work):
    """(g, h) of coordinate j at the cached point, by forward mode; see sequential_numpy.
    t, s, y: (N,) scratch; work: 4 blocks of (widest, N) scratch."""
    N, out = t.shape[0], table.shape[0] - 1
    l, kind, k, i = decode(j, table)
    source_column(kind, l, k, i, XT, AT, ZhatT, table, t)
    s[:] = 0.0
    if l == out:
        # the logits' column i moves by t
        g = h = 0.0
        for r in range(N):
            g += GT[i, r] * t[r]
        if newton:
            for r in range(N):
                if loss == MSE:
                    diag = 2.0 / table[out, 1]
                elif loss == CROSS_ENTROPY:
                    diag = QT[i, r] * (1.0 - QT[i, r])
                else:
                    diag = QT[0, r] * (1.0 - QT[0, r])
                h += diag * t[r] * t[r] / N
        return g, h
    off_gamma, c0 = table[l, 4], table[l, 6]
    if off_gamma >= 0 and kind <= BIAS:
        batchnorm_column_tangents(t, s, transposed(ZhatT, N, table, l)[i], istd[c0 + i],
                                  params[off_gamma + i], newton)
    through_activation(act, transposed(AT, N, table, l)[i], t, s, newton)
    w = weights(params, table, l + 1)[i]
    if l + 1 == out:
        return output_derivatives(loss, w, t, s, QT, GT, newton, y)
    # deeper: the next layer's tangents are outer(w, t), then layer after layer
    width = table[l + 1, 1]
    T1 = work[0, :width * N].reshape(width, N)
    S1 = work[1, :width * N].reshape(width, N)
    for c in range(width):
        for r in range(N):
            T1[c, r] = w[c] * t[r]
            S1[c, r] = w[c] * s[r]
    for m in range(l + 1, out):
        width, off_g, cm = table[m, 1], table[m, 4], table[m, 6]
        a = transposed(AT, N, table, m)
        for c in range(width):
            if off_g >= 0:
                batchnorm_column_tangents(T1[c], S1[c], transposed(ZhatT, N, table, m)[c],
                                          istd[cm + c], params[off_g + c], newton)
            through_activation(act, a[c], T1[c], S1[c], newton)
        # tangents of the next z: W_{m+1}ᵀ @ T1, into the other pair of work blocks
        n_next = table[m + 1, 1]
        pair = 2 if (m - l) % 2 == 1 else 0
        T_next = work[pair, :n_next * N].reshape(n_next, N)
        S_next = work[pair + 1, :n_next * N].reshape(n_next, N)
        W_t = weights(params, table, m + 1).T
        np.dot(W_t, T1, T_next)
        np.dot(W_t, S1, S_next)
        T1, S1 = T_next, S_next
    return block_loss_derivatives(loss, T1, S1, QT, GT, newton)


# ---------------------------------------------------------------- the step and the cache
@kernel
def refresh_loss_state(loss, LT, TT, QT, GT, rowloss, r, q, z, tr):
    """Sample r's loss, loss state and dJ/dlogits recomputed from its logits (q, z, tr: (n_out,)
    scratch)."""
    n_out, N = LT.shape
    for c in range(n_out):
        z[c] = LT[c, r]
        tr[c] = TT[c, r]
    rowloss[r] = row_loss_and_state(loss, z, tr, q)
    for c in range(n_out):
        QT[c, r] = q[c]
        GT[c, r] = (2.0 * q[c] / n_out if loss == MSE else q[c] - tr[c]) / N


@kernel
def logit_rank1_change(loss, LT, TT, QT, GT, rowloss, w, d, E, changes, scratch):
    """The logits move by outer(w, d) (sample r's by d_r w); rowloss, QT, GT follow and changes
    receives each sample's exact loss change. Cross-entropy: with e_c = expm1(d_r w_c) and
    S = Σ_c q_c e_c, the loss changes by log1p(S) − d_r t·w and q_c becomes q_c (1 + e_c)/(1 + S);
    binary cross-entropy is its one-logit case with q_1 = 1 − q (so q' = q (1 + e)/(1 + q e));
    mse: the residual moves by d_r w. While every |d_r w_c| <= SMALL_CHANGE the Taylor forms of
    expm1 and log1p keep the loops branch-free; moves beyond MODERATE_CHANGE recompute the
    sample's loss from its new logits. E: (n_out, N) scratch."""
    n_out, N = LT.shape
    bound = largest_magnitude(d) * largest_magnitude(w)
    if loss == MSE:
        for r in range(N):
            changes[r] = 0.0
        for c in range(n_out):
            for r in range(N):
                dz = d[r] * w[c]
                changes[r] += dz * (2.0 * QT[c, r] + dz) / n_out
                QT[c, r] += dz
                LT[c, r] += dz
                GT[c, r] = 2.0 * QT[c, r] / n_out / N
        for r in range(N):
            rowloss[r] += changes[r]
        return
    if bound > MODERATE_CHANGE:
        q, z, tr = scratch[0, :n_out], scratch[1, :n_out], scratch[2, :n_out]
        for r in range(N):
            old = rowloss[r]
            for c in range(n_out):
                LT[c, r] += d[r] * w[c]
            refresh_loss_state(loss, LT, TT, QT, GT, rowloss, r, q, z, tr)
            changes[r] = rowloss[r] - old
        return
    # one pass over the logits: they move by x = d_r w_c, changes = -d_r (t·w), and (cross-
    # entropy) S = Σ_c q_c e_c with e_c = expm1(x) kept in E; a second pass per sample, a third
    # for the new loss state
    small = bound <= SMALL_CHANGE
    S = scratch[0, :N]
    S[:] = 0.0
    changes[:] = 0.0
    for c in range(n_out):
        if small:  # a loop of its own: with libm's expm1 in it, it would not vectorise
            for r in range(N):
                E[c, r] = expm1_small(d[r] * w[c])
        else:
            for r in range(N):
                E[c, r] = np.expm1(d[r] * w[c])
        for r in range(N):
            x = d[r] * w[c]
            S[r] += QT[c, r] * E[c, r]
            changes[r] -= x * TT[c, r]
            LT[c, r] += x
    inv_N = 1.0 / N
    if small:  # then |S| <= expm1(SMALL_CHANGE) < 1/16: branch-free, so that it vectorises
        for r in range(N):
            changes[r] += log1p_small(S[r])
    else:
        for r in range(N):
            changes[r] += log1p_small(S[r]) if abs(S[r]) <= 1 / 16 else np.log1p(S[r])
    for r in range(N):
        rowloss[r] += changes[r]
        S[r] = 1.0 / (1.0 + S[r])
    # q_c becomes q_c (1 + e_c) / (1 + S) (binary: sigmoid(z + x) = q (1 + e) / (1 + q e))
    for c in range(n_out):
        for r in range(N):
            QT[c, r] = QT[c, r] * (1.0 + E[c, r]) * S[r]
            GT[c, r] = (QT[c, r] - TT[c, r]) * inv_N


@kernel
def column_statistics(z, zhat):
    """One column's training-mode BatchNorm: zhat = (z − mean) istd; returns (mean, istd)."""
    N = z.shape[0]
    mean = 0.0
    for r in range(N):
        mean += z[r]
    mean /= N
    var = 0.0
    for r in range(N):
        var += (z[r] - mean) ** 2
    istd = 1.0 / np.sqrt(var / N + BN_EPS)
    for r in range(N):
        zhat[r] = (z[r] - mean) * istd
    return mean, istd


@kernel
def apply_step(j, delta, params, table, act, loss, XT, ZT, AT, ZhatT, mean, istd, TT, QT, GT,
               rowloss, changes, v, du, work, E, scratch):
    """θ_j += delta and the transposed cached point follows; changes receives each sample's
    loss change. See sequential_numpy.apply_step. v, du: (N,) scratch; work: (4, widest N)."""
    N, out = v.shape[0], table.shape[0] - 1
    l, kind, k, i = decode(j, table)
    source_column(kind, l, k, i, XT, AT, ZhatT, table, v)
    z = transposed(ZT, N, table, l)[i]
    if l == out:
        params[j] += delta
        unit = np.zeros(table[out, 1], dtype=params.dtype)
        unit[i] = 1.0
        logit_rank1_change(loss, ZT_logits(ZT, N, table), TT, QT, GT, rowloss, unit,
                           scale(v, delta, du), E, changes, scratch)
        return
    off_gamma, off_beta, c0 = table[l, 4], table[l, 5], table[l, 6]
    a = transposed(AT, N, table, l)[i]
    u_old = scratch[1, :N]
    if off_gamma >= 0:
        zhat = transposed(ZhatT, N, table, l)[i]
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        for r in range(N):
            u_old[r] = gamma * zhat[r] + beta
        params[j] += delta
        if kind <= BIAS:
            for r in range(N):
                z[r] += delta * v[r]
            mean[c0 + i], istd[c0 + i] = column_statistics(z, zhat)
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        for r in range(N):
            du[r] = gamma * zhat[r] + beta - u_old[r]
    else:
        params[j] += delta
        for r in range(N):
            u_old[r] = z[r]
            du[r] = delta * v[r]
            z[r] += du[r]
    # du becomes the change of column i of the activations
    activation_changes(act, u_old, a, du, largest_magnitude(du))
    for r in range(N):
        a[r] += du[r]
    w = weights(params, table, l + 1)[i]
    if l + 1 == out:
        logit_rank1_change(loss, ZT_logits(ZT, N, table), TT, QT, GT, rowloss, w, du, E,
                           changes, scratch)
        return
    # deeper: the next z moves by outer(w, du); the layers after it are recomputed
    z_next = transposed(ZT, N, table, l + 1)
    for c in range(w.shape[0]):
        for r in range(N):
            z_next[c, r] += w[c] * du[r]
    logits = ZT_logits(ZT, N, table)
    n_out = table[out, 1]
    old = work[0, :n_out * N].reshape(n_out, N)
    old[:] = logits
    for m in range(l + 1, out):
        width, off_g, off_bt, cm = table[m, 1], table[m, 4], table[m, 5], table[m, 6]
        zm, am = transposed(ZT, N, table, m), transposed(AT, N, table, m)
        for c in range(width):
            if off_g >= 0:
                zh = transposed(ZhatT, N, table, m)[c]
                mean[cm + c], istd[cm + c] = column_statistics(zm[c], zh)
                for r in range(N):
                    am[c, r] = activate(act, params[off_g + c] * zh[r] + params[off_bt + c])
            else:
                for r in range(N):
                    am[c, r] = activate(act, zm[c, r])
        # z_{m+1} = W_{m+1}ᵀ @ a_m + b_{m+1}
        z_next = transposed(ZT, N, table, m + 1)
        np.dot(weights(params, table, m + 1).T, am, z_next)
        b = params[table[m + 1, 3]:table[m + 1, 3] + table[m + 1, 1]]
        for c in range(z_next.shape[0]):
            for r in range(N):
                z_next[c, r] += b[c]
    q, zr, tr = scratch[0, :n_out], scratch[1, :n_out], scratch[2, :n_out]
    for r in range(N):
        before = rowloss[r]
        refresh_loss_state(loss, logits, TT, QT, GT, rowloss, r, q, zr, tr)
        changes[r] = rowloss[r] - before


@kernel
def ZT_logits(ZT, N, table):
    return transposed(ZT, N, table, table.shape[0] - 1)


@kernel
def scale(v, delta, out):
    for r in range(v.shape[0]):
        out[r] = delta * v[r]
    return out


# ---------------------------------------------------------------- the sweep
@kernel
def transpose_into(buf, N, table, out):
    """out = buf with every layer's (N, n_out) block transposed to (n_out, N)."""
    for l in range(table.shape[0]):
        if buf.shape[0] == 0:
            return
        transposed(out, N, table, l)[:] = block(buf, N, table, l).T


@kernel
def load_point(X, T, params, table, act, loss, Z, A, Zhat, mean, istd, rowloss, G, Q, grad,
               work1, work2, ZT, AT, ZhatT, GT):
    """A full forward pass, loss and backprop (grad) at params, and the transposed copies of
    the cached point the sweep works on (Q is already transposed)."""
    N, out = X.shape[0], table.shape[0] - 1
    forward(X, params, table, act, True, Z, A, Zhat, mean, istd)
    evaluate_loss(block(Z, N, table, out), T, loss, rowloss, G, Q)
    backprop(X, params, table, act, Z, A, Zhat, istd, G, grad, work1, work2, 0)
    transpose_into(Z, N, table, ZT)
    transpose_into(A, N, table, AT)
    transpose_into(Zhat, N, table, ZhatT)
    GT[:] = G.T


@kernel
def sweep(order, greedy, rule, lr, X, T, params, table, act, loss, Z, A, Zhat, mean, istd,
          rowloss, G, Q, grad0, grad, work1, work2):
    """One sweep; see sequential_numpy.sweep."""
    N, out = X.shape[0], table.shape[0] - 1
    n_out = table[out, 1]
    dtype = X.dtype
    XT = np.ascontiguousarray(X.T)
    ZT, AT, ZhatT = np.empty_like(Z), np.empty_like(A), np.empty_like(Zhat)
    TT, GT = np.ascontiguousarray(T.T), np.empty((n_out, N), dtype=dtype)
    QT = Q  # already (n_out, N)
    work = np.empty((4, np.max(table[:, 1]) * N), dtype=dtype)
    E = np.empty((n_out, N), dtype=dtype)
    scratch = np.empty((3, max(N, n_out)), dtype=dtype)
    t, s, y, changes = np.empty(N, dtype), np.empty(N, dtype), np.empty(N, dtype), np.empty(N, dtype)
    load_point(X, T, params, table, act, loss, Z, A, Zhat, mean, istd, rowloss, G, Q, grad0,
               work1, work2, ZT, AT, ZhatT, GT)
    newton = rule != GRADIENT
    eps = np.finfo(dtype).eps
    raised = flipped = 0
    for step in range(order.shape[0]):
        if greedy:
            # Gauss–Southwell: a full forward and backward pass at the current point
            load_point(X, T, params, table, act, loss, Z, A, Zhat, mean, istd, rowloss, G, Q,
                       grad, work1, work2, ZT, AT, ZhatT, GT)
            j = np.argmax(np.abs(grad))
        else:
            j = order[step]
        g, h = derivatives(j, newton, params, table, act, loss, XT, AT, ZhatT, istd, QT, GT, t,
                           s, y, work)
        delta = -lr * g if rule == GRADIENT else -g / max(h, 1.0 / lr)
        old = params[j]
        apply_step(j, delta, params, table, act, loss, XT, ZT, AT, ZhatT, mean, istd, TT, QT,
                   GT, rowloss, changes, t, s, work, E, scratch)
        total = level = 0.0
        for r in range(N):
            total += changes[r]
            level += rowloss[r]
        if not np.isfinite(total):
            params[j] = old
            return 1, step, raised, flipped
        raised += total > RAISED_ULPS * eps * level
        flipped += g * grad0[j] < 0.0
    return 0, order.shape[0], raised, flipped
