"""The sequential sweep: the Numba twin of ``sequential_numpy.py`` (read its docstring first;
same arguments, same results). The entry point ``sweep(net, cache, state, plan, grad0, grad,
scratch)`` takes the bundles of ``bundles.py``, unpacked by position as in mlp_numba
(docs/design.md, "The kernel interface").

The sweep works on a transposed copy of the cached point, one row per column of the network
(``ZT``, ``AT``, ``ZhatT``: layer l's block is ``buf[N*c0 : N*(c0 + n_out)].reshape(n_out, N)``;
``TT`` (n_out, N) the targets), so that the column a coordinate feeds, the input column it reads
and every per-sample loop run along contiguous memory and vectorise. The loss state is ``QT``
(n_out, N) with a per-sample ``scale``: sample r's softmax is ``QT[:, r] * scale[r]`` (cross-
entropy; for mse, binary cross-entropy and poisson scale stays 1), so that a step renormalises
a sample by updating one number instead of a column; dJ/dlogits is computed from it where
needed (``slope``, times the sample's weight over n = state.weight_sum[0]), never stored. When
a coordinate feeds the last hidden layer (or the logits), its derivatives and its step touch
O(N n_out) numbers: the logits move by a rank-1 term and the per-sample losses and loss state
follow through exact change identities (``logit_changes``); a deeper coordinate's change is
pushed through each later layer (``layer_change``: activation changes by the same identities,
then one matrix product per layer), O(N width²) per step.

The level the sweep tracks is n J: the weighted sum of the per-sample losses plus the L2
penalty alpha / 2 · Σ ‖W‖², kept as a running number (a weight's step changes it by alpha / 2 ·
delta (2 w + delta)); the penalty adds alpha θ_j / n and alpha / n to a weight's derivatives.
The weights multiply each sample's terms where the numpy reference does (exact when they are 1);
the vectorised sums of the level and of a step's changes (``weighted_total``) run their
unweighted loops when every weight is 1 (``unit``), so that unit weights compute exactly what no
weights did.

Inside the kernel, the transposed point, its loss state and the sweep's own buffers travel as
the module's namedtuple bundles (``Transposed``, ``TransposedLoss``, ``SweepScratch``,
``LogitScratch``, ``Hidden``), built once per sweep (``Hidden`` once per deep step).
"""
from collections import namedtuple

import numpy as np

from .codes import (BETA, BIAS, BINARY_CROSS_ENTROPY, BN_EPS, COL_OFF, CROSS_ENTROPY, GAMMA,
                    GRADIENT, MODERATE_CHANGE, MSE, N_OUT, NONFINITE_STEP, OFF_BETA, OFF_GAMMA, OK,
                    POISSON, RAISED_ULPS, SIGMOID, SMALL_CHANGE, TANH, TINY_CHANGE, WEIGHT)
from .incremental_numba import (activation_changes, decode, largest_magnitude, penalty_change,
                                unit_weights)
from .mlp_numba import (activation_change, activation_slope, backprop, block, copy_into,
                        exp_double, expm1_small, expm1_tiny, forward, kernel, log1p_small,
                        log1p_tiny, loss as evaluate_loss, row_loss_and_state, tanh_small,
                        weight_penalty, weights)

# The sweep's bundles. A helper called once per step unpacks the fields it uses at its top, by
# name, and passes on only the bundles its callees read whole: Numba keeps a reference count per
# array, and a bundle still alive across a call costs an atomic increment and decrement of every
# array in it on each call (here, several percent of a small network's step).
#
# The cached point, transposed (see the module docstring): ``XT`` (n_in, N) the inputs; ``ZT``,
# ``AT``, ``ZhatT`` the Dense outputs, activations and normalised values, every layer's block
# (n_out, N); ``x_bounds`` (n_in,) max |XT[k]| per input.
Transposed = namedtuple("Transposed", "XT ZT AT ZhatT x_bounds")

# The loss state as the sweep keeps it: ``TT`` (n_out, N) the targets, ``labels`` (N,)
# cross-entropy's class labels (zeros for the other losses), ``QT`` (n_out, N) the loss state
# (state.Q itself, which loss() writes transposed already), ``scale`` (N,) its per-sample
# scale, ``weight`` (N,) the sample weights (state.weight) and ``n`` (float64) their sum.
TransposedLoss = namedtuple("TransposedLoss", "TT labels QT scale weight n")

# The sweep's work space, one buffer per use: ``ones`` (N,) ones (the source column of b and
# beta); ``t``, ``s`` (N,) a column's first and second tangents and ``y`` (N,), ``row``
# (n_out,) scratch of the derivatives; ``du`` (N,) the change of the column a step moves,
# ``u_old`` (N,) a column's activation input before the step, ``old_zhat`` (N,) its normalised
# values before the step; ``work`` (4, widest N): the tangents of a layer (derivatives) or its
# change (apply_step, layer_change).
SweepScratch = namedtuple("SweepScratch", "ones t s y row du u_old old_zhat work")

# logit_changes' buffers: ``e`` (N,) expm1 of the logits' moves, ``changes`` (N,) each sample's
# loss change, ``rows`` (3, max(N, n_out)): one sample's softmax, logits and targets (large
# moves) or every sample's sum S (small ones).
LogitScratch = namedtuple("LogitScratch", "e changes rows")

# What layer_change updates: the hidden layers' transposed blocks ``ZT``, ``AT``, ``ZhatT`` and
# their BatchNorm statistics ``mean``, ``istd`` (cache.mean, istd). apply_step builds it only
# for a step that reaches past the next layer, so that its other steps hold no extra bundle.
Hidden = namedtuple("Hidden", "ZT AT ZhatT mean istd")


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
    # mean_t = t.mean(); rho = (zhat * t).mean()
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
    """In place: t, s tangents of u become those of a = act(u): s = act'' t² + act' s,
    t = act' t."""
    # one sample at a time
    for r in range(t.shape[0]):
        slope = activation_slope(act, a[r])
        if second:
            s[r] = activation_curve(act, a[r]) * t[r] * t[r] + slope * s[r]
        t[r] *= slope


@kernel
def source_column(kind, l, k, i, XT, AT, ZhatT, table, ones):
    """d(column i of z, or of u for gamma/beta)/dθ as a view: the input column (W), zhat's
    column (gamma) or ``ones`` (b, beta)."""
    N = ones.shape[0]
    if kind == WEIGHT:
        return XT[k] if l == 0 else transposed(AT, N, table, l - 1)[k]
    if kind == GAMMA:
        return transposed(ZhatT, N, table, l)[i]
    return ones


@kernel
def transposed(buf, N, table, l):
    """Layer l's (n_out, N) block of a transposed per-sample buffer."""
    start = N * table[l, COL_OFF]
    return buf[start:start + N * table[l, N_OUT]].reshape(table[l, N_OUT], N)


# ---------------------------------------------------------------- reductions
@kernel(fastmath={"reassoc", "contract"})
def dot(x, y):
    """x · y; ``reassoc`` lets the sum vectorise (an order-dependent round-off, no change to NaN
    or inf handling)."""
    total = 0.0
    for r in range(x.shape[0]):
        total += x[r] * y[r]
    return total


@kernel(fastmath={"reassoc", "contract"})
def total_of(x):
    """Σ x, vectorised as dot is."""
    total = 0.0
    for r in range(x.shape[0]):
        total += x[r]
    return total


@kernel
def weighted_total(unit, weight, x):
    """weight @ x: total_of(x) when every weight is 1 (``unit``), as without weights."""
    return total_of(x) if unit else dot(weight, x)


# ---------------------------------------------------------------- derivatives
@kernel
def slope(loss, QT, scale, TT, divisor, c, r):
    """d(loss of sample r)/dlogit_c, unweighted: q - t (cross-entropy), (q - t) / divisor
    (binary cross-entropy, poisson) or 2 q / divisor (mse, q the residual)."""
    if loss == MSE:
        return 2.0 * QT[c, r] / divisor
    if loss == CROSS_ENTROPY:
        return QT[c, r] * scale[r] - TT[c, r]
    return (QT[c, r] - TT[c, r]) / divisor


@kernel
def curvature(loss, QT, scale, t, r, divisor):
    """Sample r's tᵀ H t, H the Hessian of its loss in the logits (t: its logits' tangent),
    unweighted."""
    n_out = QT.shape[0]
    total = 0.0
    if loss == MSE:
        # total = t @ t
        for c in range(n_out):
            total += t[c] * t[c]
        return 2.0 * total / divisor
    if loss == CROSS_ENTROPY:
        # Σ q t² − (Σ q t)²
        first = 0.0
        for c in range(n_out):
            q = QT[c, r] * scale[r]
            first += q * t[c]
            total += q * t[c] * t[c]
        return total - first * first
    if loss == POISSON:
        # H = diag(q) / divisor
        for c in range(n_out):
            total += QT[c, r] * t[c] * t[c]
        return total / divisor
    # binary cross-entropy: H = diag(q (1 - q)) / divisor
    for c in range(n_out):
        total += QT[c, r] * (1.0 - QT[c, r]) * t[c] * t[c]
    return total / divisor


@kernel
def output_derivatives(loss, divisor, w, ta, sa, tloss, newton, y, row):
    """(g, h) when the logits move along w by ta_r per sample (second tangent sa_r w): g = Σ_r
    ta_r (G_r · w), h = Σ_r sa_r (G_r · w) + Σ_r weight_r ta_r² wᵀ H_r w / n (G_r holding the
    weight over n), from the TransposedLoss tloss. y: (N,), row: (n_out,) scratch."""
    TT, labels, QT, scale = tloss.TT, tloss.labels, tloss.QT, tloss.scale
    weight, n = tloss.weight, tloss.n
    n_out, N = QT.shape
    # y = n G @ w, one class at a time along the samples
    y[:] = 0.0
    for c in range(n_out):
        for r in range(N):
            y[r] += QT[c, r] * w[c]
    # then the targets' part and the weight: y = (scale y - w[label]) weight (cross-entropy),
    # 2 y / divisor weight (mse), (y - T @ w) / divisor weight (binary cross-entropy, poisson)
    if loss == CROSS_ENTROPY:
        for r in range(N):
            y[r] = (y[r] * scale[r] - w[labels[r]]) * weight[r]
    elif loss == MSE:
        for r in range(N):
            y[r] *= 2.0 / divisor * weight[r]
    else:
        last = n_out - 1
        for c in range(last):
            for r in range(N):
                y[r] -= TT[c, r] * w[c]
        for r in range(N):
            y[r] = (y[r] - TT[last, r] * w[last]) / divisor * weight[r]
    g = dot(ta, y)
    if not newton:
        return g / n, 0.0
    h = 0.0
    # h = sa @ y + Σ_r weight_r times the curvature of row r along ta_r w
    for r in range(N):
        h += sa[r] * y[r]
    for r in range(N):
        for c in range(n_out):
            row[c] = ta[r] * w[c]
        h += weight[r] * curvature(loss, QT, scale, row, r, divisor)
    return g / n, h / n


@kernel
def block_loss_derivatives(loss, divisor, T1, S1, tloss, newton, row):
    """(g, h) when the logits have tangents T1 and second tangents S1 (n_out, N), from the
    TransposedLoss tloss. row: (n_out,) scratch."""
    TT, QT, scale, weight, n = tloss.TT, tloss.QT, tloss.scale, tloss.weight, tloss.n
    n_out, N = QT.shape
    g = h = 0.0
    # g = (n G * T1).sum() / n, n G_cr = slope_cr weight_r
    for c in range(n_out):
        for r in range(N):
            g += slope(loss, QT, scale, TT, divisor, c, r) * T1[c, r] * weight[r]
    if not newton:
        return g / n, 0.0  # (S1 is not computed then)
    # h = (n G * S1).sum() / n + Σ_r weight_r times the curvature of row r along T1[:, r]
    for c in range(n_out):
        for r in range(N):
            h += slope(loss, QT, scale, TT, divisor, c, r) * S1[c, r] * weight[r]
    for r in range(N):
        for c in range(n_out):
            row[c] = T1[c, r]
        h += weight[r] * curvature(loss, QT, scale, row, r, divisor)
    return g / n, h / n


@kernel(inline="always")
def with_penalty(g, h, kind, theta, alpha, n, newton):
    """(g, h) plus, for a weight θ, the L2 penalty's alpha θ / n and (Newton) alpha / n."""
    if kind == WEIGHT and alpha != 0.0:
        g += alpha * theta / n
        if newton:
            h += alpha / n
    return g, h


@kernel
def derivatives(j, newton, net, cache, trans, tloss, buffers):
    """(g, h) of coordinate j at the cached point, by forward mode, the L2 penalty's share
    included; see sequential_numpy.derivatives. Reads cache.istd, the Transposed point trans
    and the TransposedLoss tloss; uses buffers.ones, t, s, y, row and the 4 blocks of
    buffers.work."""
    params, table, act, loss, divisor, alpha = net
    _, _, _, _, _, istd = cache
    XT, AT, ZhatT = trans.XT, trans.AT, trans.ZhatT
    ones, t, s, y, row, work = (buffers.ones, buffers.t, buffers.s, buffers.y, buffers.row,
                                buffers.work)
    N, out = t.shape[0], table.shape[0] - 1
    l, kind, k, i = decode(j, table)
    copy_into(t, source_column(kind, l, k, i, XT, AT, ZhatT, table, ones))
    s[:] = 0.0
    if l == out:
        # the logits' column i moves by t
        TT, QT, scale, weight, n = tloss.TT, tloss.QT, tloss.scale, tloss.weight, tloss.n
        g = h = 0.0
        for r in range(N):
            g += slope(loss, QT, scale, TT, divisor, i, r) * t[r] * weight[r]
        if newton:
            row[:] = 0.0
            # h = Σ_r weight_r times the curvature of row r along t[r] e_i
            for r in range(N):
                row[i] = t[r]
                h += weight[r] * curvature(loss, QT, scale, row, r, divisor)
        return with_penalty(g / n, h / n, kind, params[j], alpha, n, newton)
    off_gamma, c0 = table[l, OFF_GAMMA], table[l, COL_OFF]
    if off_gamma >= 0 and kind <= BIAS:
        batchnorm_column_tangents(t, s, transposed(ZhatT, N, table, l)[i], istd[c0 + i],
                                  params[off_gamma + i], newton)
    through_activation(act, transposed(AT, N, table, l)[i], t, s, newton)
    w = weights(params, table, l + 1)[i]
    if l + 1 == out:
        g, h = output_derivatives(loss, divisor, w, t, s, tloss, newton, y, row)
        return with_penalty(g, h, kind, params[j], alpha, tloss.n, newton)
    # deeper: the next layer's tangents are outer(w, t), then layer after layer; the second
    # tangents S only for the Newton step (for the gradient step s, hence S, stays 0)
    width = table[l + 1, N_OUT]
    T1 = work[0, :width * N].reshape(width, N)
    S1 = work[1, :width * N].reshape(width, N)
    # T1 = np.outer(w, t); S1 = np.outer(w, s)
    for c in range(width):
        for r in range(N):
            T1[c, r] = w[c] * t[r]
    if newton:
        for c in range(width):
            for r in range(N):
                S1[c, r] = w[c] * s[r]
    for m in range(l + 1, out):
        width, off_g, cm = table[m, N_OUT], table[m, OFF_GAMMA], table[m, COL_OFF]
        a = transposed(AT, N, table, m)
        # every column of layer m through its BatchNorm and activation
        for c in range(width):
            if off_g >= 0:
                batchnorm_column_tangents(T1[c], S1[c], transposed(ZhatT, N, table, m)[c],
                                          istd[cm + c], params[off_g + c], newton)
            through_activation(act, a[c], T1[c], S1[c], newton)
        # tangents of the next z: W_{m+1}ᵀ @ T1, into the other pair of work blocks
        n_next = table[m + 1, N_OUT]
        pair = 2 if (m - l) % 2 == 1 else 0
        T_next = work[pair, :n_next * N].reshape(n_next, N)
        S_next = work[pair + 1, :n_next * N].reshape(n_next, N)
        W_t = weights(params, table, m + 1).T
        np.dot(W_t, T1, T_next)
        if newton:
            np.dot(W_t, S1, S_next)
        T1, S1 = T_next, S_next
    g, h = block_loss_derivatives(loss, divisor, T1, S1, tloss, newton, row)
    return with_penalty(g, h, kind, params[j], alpha, tloss.n, newton)


# ---------------------------------------------------------------- the step and the cache
# a sample whose scale leaves [2^-60, 2^60] is renormalised (QT's column times its scale), far
# from overflow in float32 and float64 alike
SCALE_LOW, SCALE_HIGH = 2.0 ** -60, 2.0 ** 60


@kernel
def refresh_loss_state(loss, divisor, LT, TT, QT, scale, rowloss, r, q, z, tr):
    """Sample r's loss and loss state recomputed from its logits, scale 1 (q, z, tr: (n_out,)
    scratch)."""
    n_out = LT.shape[0]
    # z, tr = LT[:, r], TT[:, r]
    for c in range(n_out):
        z[c] = LT[c, r]
        tr[c] = TT[c, r]
    rowloss[r] = row_loss_and_state(loss, z, tr, q, divisor)
    for c in range(n_out):
        QT[c, r] = q[c]
    scale[r] = 1.0


@kernel(inline="always")
def move_of(D, w, d, rank1, c, r):
    """How much column c of a layer's z (the logits, or a hidden layer in layer_change) moves
    at sample r: d_r w_c (rank1) or D[c, r]."""
    return d[r] * w[c] if rank1 else D[c, r]


@kernel
def logit_moves(D, w, d, rank1, c, x):
    """x = row c of the logits' move (one class, every sample)."""
    if rank1:
        for r in range(x.shape[0]):
            x[r] = d[r] * w[c]
    else:
        copy_into(x, D[c])


@kernel(fastmath={"contract"})
def expm1_of_moves(D, w, d, rank1, c, tier, e):
    """e = expm1 of row c of the logits' move, by the degree-5 (tier 0) or degree-8 (tier 1)
    Taylor polynomial or libm (tier 2): one loop per case, so that the polynomial ones
    vectorise."""
    N = e.shape[0]
    if rank1 and tier == 0:
        for r in range(N):
            e[r] = expm1_tiny(d[r] * w[c])
    elif rank1 and tier == 1:
        for r in range(N):
            e[r] = expm1_small(d[r] * w[c])
    elif tier == 0:
        for r in range(N):
            e[r] = expm1_tiny(D[c, r])
    elif tier == 1:
        for r in range(N):
            e[r] = expm1_small(D[c, r])
    else:
        logit_moves(D, w, d, rank1, c, e)
        for r in range(N):
            e[r] = np.expm1(e[r])


@kernel(fastmath={"contract"})
def sigmoid_changes(q, e, tier, changes, S):
    """One output of binary cross-entropy: with x = q e (q: its row of QT, e: expm1 of its
    logits' moves), each sample's loss change gains log1p(x) (the caller's -t times the move
    beside it) and q becomes sigmoid(z + move) = q (1 + e) / (1 + x), in place. log1p by the
    degree-6 (tier 0) or degree-14 (tier 1) polynomial, or libm beyond 1/16 (tier 2): one loop
    per case, so that the polynomial ones vectorise. S: (N,) scratch."""
    N = q.shape[0]
    # S = q e; q += S
    for r in range(N):
        S[r] = q[r] * e[r]
        q[r] += S[r]
    # changes += log1p(S); S = 1 / (1 + S)
    if tier == 0:
        for r in range(N):
            x = S[r]
            changes[r] += log1p_tiny(x)
            S[r] = 1.0 / (1.0 + x)
    elif tier == 1:
        for r in range(N):
            x = S[r]
            changes[r] += log1p_small(x)
            S[r] = 1.0 / (1.0 + x)
    else:
        for r in range(N):
            x = S[r]
            changes[r] += log1p_small(x) if abs(x) <= 1 / 16 else np.log1p(x)
            S[r] = 1.0 / (1.0 + x)
    # q *= S
    for r in range(N):
        q[r] *= S[r]


@kernel(fastmath={"contract"})
def logit_changes(loss, divisor, LT, tloss, rowloss, D, w, d, bound, lwork):
    """The logits move by D (n_out, N), or, when D is empty, by outer(w, d) (sample r's by
    d_r w), every move at most bound in magnitude; rowloss and the loss state (tloss.QT,
    scale) follow and lwork.changes receives each sample's exact loss change (unweighted).
    Cross-entropy: with x the sample's move, e_c = expm1(x_c) and S = Σ_c q_c e_c, the loss
    changes by log1p(S) − x_label and q_c becomes q_c (1 + e_c)/(1 + S): QT_c grows by QT_c e_c
    and the sample's scale shrinks by 1/(1 + S). Binary cross-entropy: each output is that
    one-logit case (sigmoid(z + x) = q (1 + e)/(1 + q e), sigmoid_changes), the loss changes by
    Σ_c (log1p(q_c e_c) − t_c x_c) / divisor. Poisson: exp(z + x) = q (1 + e), the loss changes
    by Σ_c (q_c e_c − t_c x_c) / divisor for any move. Mse: the residual moves by x. While bound
    <= SMALL_CHANGE (or TINY_CHANGE) Taylor forms of expm1 and log1p keep the loops branch-free;
    moves beyond MODERATE_CHANGE are taken directly: q_c e^(x_c) / Σ q e^x with the largest x_c
    factored out (cross-entropy), the loss and state recomputed from the moved logits (binary
    cross-entropy; poisson's exp(z + x)). Only binary cross-entropy and poisson keep LT (their
    logits): the other losses' states hold all they need. Scratch: lwork.e (N,) and lwork.rows
    (3, max(N, n_out))."""
    TT, labels, QT, scale = tloss.TT, tloss.labels, tloss.QT, tloss.scale
    e, changes, rows = lwork.e, lwork.changes, lwork.rows
    n_out, N = QT.shape
    # a flag computed here, not passed as a constant: Numba would compile this kernel (and
    # those it calls with the flag) once for each constant value
    rank1 = D.shape[0] == 0
    changes[:] = 0.0
    if loss == MSE:
        # the residual moves by x: each sample's loss by sum(x (2 q + x)) / divisor
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e)
            for r in range(N):
                changes[r] += e[r] * (2.0 * QT[c, r] + e[r]) / divisor
                QT[c, r] += e[r]
        for r in range(N):
            rowloss[r] += changes[r]
        return
    tiny, small = bound <= TINY_CHANGE, bound <= SMALL_CHANGE
    tier = 0 if tiny else 1 if small else 2
    if loss == POISSON:
        # changes = Σ_c (QT_c e_c - t_c x_c) / divisor, exact for any move. The logits move by x
        # and QT_c = exp(z_c) is taken from the moved logit: carried as QT_c (1 + e_c), it would
        # lose its digits where 1 + e_c is near 0, and once it underflowed stay 0 for good
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e)
            for r in range(N):
                changes[r] -= TT[c, r] * e[r]
                LT[c, r] += e[r]
            expm1_of_moves(D, w, d, rank1, c, tier, e)
            for r in range(N):
                changes[r] += QT[c, r] * e[r]
                QT[c, r] = exp_double(np.float64(LT[c, r]))
        for r in range(N):
            changes[r] /= divisor
            rowloss[r] += changes[r]
        return
    q, z, tr = rows[0, :n_out], rows[1, :n_out], rows[2, :n_out]
    if loss == CROSS_ENTROPY and bound > MODERATE_CHANGE:
        # each sample's softmax and loss recomputed from q e^x, the largest x factored out
        for r in range(N):
            shift = move_of(D, w, d, rank1, 0, r)
            for c in range(n_out):
                shift = max(shift, move_of(D, w, d, rank1, c, r))
            total = 0.0
            for c in range(n_out):
                q[c] = QT[c, r] * scale[r] * np.exp(move_of(D, w, d, rank1, c, r) - shift)
                total += q[c]
            for c in range(n_out):
                QT[c, r] = q[c] / total
            scale[r] = 1.0
            changes[r] = np.log(total) + shift - move_of(D, w, d, rank1, labels[r], r)
            rowloss[r] += changes[r]
        return
    if bound > MODERATE_CHANGE:
        # binary cross-entropy: each sample's loss and state recomputed from its moved logits
        for r in range(N):
            old = rowloss[r]
            for c in range(n_out):
                LT[c, r] += move_of(D, w, d, rank1, c, r)
            refresh_loss_state(loss, divisor, LT, TT, QT, scale, rowloss, r, q, z, tr)
            changes[r] = rowloss[r] - old
        return
    S = rows[0, :N]
    if loss == BINARY_CROSS_ENTROPY:
        # output by output: changes -= t_c x_c and the logits move, then sigmoid_changes
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e)
            for r in range(N):
                changes[r] -= e[r] * TT[c, r]
                LT[c, r] += e[r]
            expm1_of_moves(D, w, d, rank1, c, tier, e)
            sigmoid_changes(QT[c], e, tier, changes, S)
        for r in range(N):
            changes[r] /= divisor
            rowloss[r] += changes[r]
        return
    # S = Σ_c QT_c e_c (times scale below); QT_c += QT_c e_c
    S[:] = 0.0
    for c in range(n_out):
        expm1_of_moves(D, w, d, rank1, c, tier, e)
        for r in range(N):
            grow = QT[c, r] * e[r]
            S[r] += grow
            QT[c, r] += grow
    # changes = -x[label]
    for r in range(N):
        changes[r] = -move_of(D, w, d, rank1, labels[r], r)
    # each sample's change and new scale; |S| <= max |e| < 2 TINY_CHANGE, or < 1/16
    if tiny:
        for r in range(N):
            x = S[r] * scale[r]
            changes[r] += log1p_tiny(x)
            rowloss[r] += changes[r]
            scale[r] /= 1.0 + x
    elif small:
        for r in range(N):
            x = S[r] * scale[r]
            changes[r] += log1p_small(x)
            rowloss[r] += changes[r]
            scale[r] /= 1.0 + x
    else:
        for r in range(N):
            x = S[r] * scale[r]
            changes[r] += log1p_small(x) if abs(x) <= 1 / 16 else np.log1p(x)
            rowloss[r] += changes[r]
            scale[r] /= 1.0 + x
    # renormalise the samples whose scale left [SCALE_LOW, SCALE_HIGH]
    for r in range(N):
        if not SCALE_LOW < scale[r] < SCALE_HIGH:
            for c in range(n_out):
                QT[c, r] *= scale[r]
            scale[r] = 1.0


@kernel
def column_statistics(z, zhat):
    """One column's training-mode BatchNorm: zhat = (z − mean) istd; returns (mean, istd)."""
    N = z.shape[0]
    mean = 0.0
    # mean = z.mean()
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
def apply_step(j, delta, net, cache, state, trans, tloss, buffers, lwork):
    """θ_j += delta and the Transposed point trans (with cache.mean, istd, state.rowloss and
    the TransposedLoss tloss) follows; lwork.changes receives each sample's loss change
    (unweighted; the sweep weighs them and adds the penalty's change). See
    sequential_numpy.apply_step. Uses buffers.ones, du, u_old, old_zhat and work (and, through
    logit_changes, lwork). Bounds on the changes, mostly known without a scan, choose the
    vectorised small-change paths."""
    params, table, act, loss, divisor, _ = net
    _, _, _, _, mean, istd = cache
    _, rowloss, _, _, _, _ = state
    XT, ZT, AT, ZhatT, x_bounds = trans.XT, trans.ZT, trans.AT, trans.ZhatT, trans.x_bounds
    ones, du, u_old, old_zhat, work = (buffers.ones, buffers.du, buffers.u_old, buffers.old_zhat,
                                       buffers.work)
    N, out = ones.shape[0], table.shape[0] - 1
    l, kind, k, i = decode(j, table)
    v = source_column(kind, l, k, i, XT, AT, ZhatT, table, ones)
    # source_bound >= max |v|: X's column bound, 1 for a tanh or sigmoid input, b and beta
    if kind == WEIGHT and l == 0:
        source_bound = x_bounds[k]
    elif (kind == WEIGHT and (act == TANH or act == SIGMOID)) or kind == BIAS or kind == BETA:
        source_bound = 1.0
    else:
        source_bound = largest_magnitude(v)
    z = transposed(ZT, N, table, l)[i]
    n_out = table[out, N_OUT]
    if l == out:
        # only logit i moves, by delta v: rank 1 with w = e_i
        params[j] += delta
        unit = work[0, :n_out]
        unit[:] = 0.0
        unit[i] = 1.0
        # du = delta * v
        for r in range(N):
            du[r] = delta * v[r]
        logit_changes(loss, divisor, ZT_logits(ZT, N, table), tloss, rowloss,
                      work[1, :0].reshape(0, N), unit, du, abs(delta) * source_bound, lwork)
        return
    off_gamma, off_beta, c0 = table[l, OFF_GAMMA], table[l, OFF_BETA], table[l, COL_OFF]
    a = transposed(AT, N, table, l)[i]
    if off_gamma >= 0:
        zhat = transposed(ZhatT, N, table, l)[i]
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        # u_old = gamma * zhat + beta
        for r in range(N):
            u_old[r] = gamma * zhat[r] + beta
        params[j] += delta
        if kind <= BIAS:
            # z += delta * v, then the column's statistics and zhat follow
            for r in range(N):
                z[r] += delta * v[r]
            mean[c0 + i], istd[c0 + i] = column_statistics(z, zhat)
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        # du = the new u - u_old
        for r in range(N):
            du[r] = gamma * zhat[r] + beta - u_old[r]
        bound = largest_magnitude(du) if kind <= BIAS else abs(delta) * source_bound
    else:
        params[j] += delta
        # u_old = z; du = delta * v; z += du
        for r in range(N):
            u_old[r] = z[r]
            du[r] = delta * v[r]
            z[r] += du[r]
        bound = abs(delta) * source_bound
    # du becomes the change of column i of the activations: |act(u + d) - act(u)| <= |d|
    # max |act'|, which is 1, or 1/4 for sigmoid
    activation_changes(act, u_old, a, du, bound)
    bound *= 0.25 if act == SIGMOID else 1.0
    # a += du
    for r in range(N):
        a[r] += du[r]
    # the next layer's z moves by outer(w, du): the logits' move when it is the last layer;
    # else that change D is pushed through each later layer down to the logits
    w = weights(params, table, l + 1)[i]
    bound *= largest_magnitude(w)
    if l + 1 == out:
        logit_changes(loss, divisor, ZT_logits(ZT, N, table), tloss, rowloss,
                      work[0, :0].reshape(0, N), w, du, bound, lwork)
        return
    hidden = Hidden(ZT, AT, ZhatT, mean, istd)  # built here, not passed in (see Hidden)
    # layer l + 1 moves by outer(w, du), never formed (rank 1: D has no rows); each later layer
    # by the change the one before returns. Work blocks: layer m's activation changes in
    # 2k % 4, its product in 2k % 4 + 1 (k = m - l - 1), so that none is read and written at once
    D = work[1, :0].reshape(0, N)
    for m in range(l + 1, out):
        k = 2 * (m - l - 1) % 4
        D = layer_change(m, w, du, D, bound, params, table, act, hidden, u_old, old_zhat,
                         work[k], work[k + 1])
        bound = largest_magnitude(D.reshape(D.size))
    logit_changes(loss, divisor, ZT_logits(ZT, N, table), tloss, rowloss, D, w, du, bound,
                  lwork)


@kernel
def move_column(act, z, a, d, D, w, du, rank1, c, bound):
    """In place, column c of a layer without BatchNorm, in one pass over the samples: z += its
    move (move_of: rank 1 or D's row c), a = act(z) follows, d receives a's change. Every
    |move| <= bound; when that is small, activation_changes' identities run branch-free (and
    vectorise)."""
    if (act == TANH or act == SIGMOID) and bound <= SMALL_CHANGE:
        if act == TANH:
            for r in range(z.shape[0]):
                x = move_of(D, w, du, rank1, c, r)
                z[r] += x
                t = tanh_small(x)
                d[r] = t * (1.0 - a[r] * a[r]) / (1.0 + a[r] * t)
                a[r] += d[r]
        else:
            for r in range(z.shape[0]):
                x = move_of(D, w, du, rank1, c, r)
                z[r] += x
                e = expm1_small(x)
                d[r] = a[r] * (1.0 - a[r]) * e / (1.0 + a[r] * e)
                a[r] += d[r]
        return
    for r in range(z.shape[0]):
        x = move_of(D, w, du, rank1, c, r)
        u = z[r]
        z[r] = u + x
        d[r] = activation_change(act, u, a[r], x)
        a[r] += d[r]


@kernel
def layer_change(m, w, du, D, bound, params, table, act, hidden, u_old, old_zhat, changes, out):
    """Hidden layer m's z moves by outer(w, du) (rank 1: D has no rows) or by D (width, N),
    every move within bound: its columns in hidden follow (with BatchNorm, their statistics
    too), their activations' changes Δa go to changes, and the next layer's change
    W_{m+1}ᵀ @ Δa is returned, a view of out. u_old, old_zhat: (N,) scratch."""
    ZT, AT, ZhatT, mean, istd = hidden.ZT, hidden.AT, hidden.ZhatT, hidden.mean, hidden.istd
    N = du.shape[0]
    width = table[m, N_OUT]
    off_g, off_bt, cm = table[m, OFF_GAMMA], table[m, OFF_BETA], table[m, COL_OFF]
    z, a = transposed(ZT, N, table, m), transposed(AT, N, table, m)
    Da = changes[:width * N].reshape(width, N)
    rank1 = D.shape[0] == 0  # (a flag, not a constant: see logit_changes)
    for c in range(width):
        if off_g < 0:
            move_column(act, z[c], a[c], Da[c], D, w, du, rank1, c, bound)
            continue
        # with BatchNorm the column's statistics follow its move, and Da[c] receives the
        # change of u = gamma * zhat + beta before the activation's
        d, zhat = Da[c], transposed(ZhatT, N, table, m)[c]
        gamma, beta = params[off_g + c], params[off_bt + c]
        # old_zhat = zhat; u_old = gamma * zhat + beta; z[c] += its move
        for r in range(N):
            old_zhat[r] = zhat[r]
            u_old[r] = gamma * zhat[r] + beta
            z[c, r] += move_of(D, w, du, rank1, c, r)
        mean[cm + c], istd[cm + c] = column_statistics(z[c], zhat)
        # d = gamma * (zhat - old_zhat)
        for r in range(N):
            d[r] = gamma * (zhat[r] - old_zhat[r])
        activation_changes(act, u_old, a[c], d, largest_magnitude(d))
        # a[c] += d
        for r in range(N):
            a[c, r] += d[r]
    n_next = table[m + 1, N_OUT]
    D_next = out[:n_next * N].reshape(n_next, N)
    np.dot(weights(params, table, m + 1).T, Da, D_next)
    return D_next


@kernel
def ZT_logits(ZT, N, table):
    return transposed(ZT, N, table, table.shape[0] - 1)


# ---------------------------------------------------------------- the sweep
@kernel
def transpose_into(buf, N, table, out):
    """out = buf with every layer's (N, n_out) block transposed to (n_out, N)."""
    for l in range(table.shape[0]):
        if buf.shape[0] == 0:
            return
        # transposed(out, N, table, l)[:] = block(buf, N, table, l).T (a loop: see copy_into)
        b, t = block(buf, N, table, l), transposed(out, N, table, l)
        for c in range(t.shape[0]):
            for r in range(N):
                t[c, r] = b[r, c]


@kernel
def load_point(net, cache, state, grad, scratch, trans, tloss):
    """A full forward pass, loss and backprop (grad) at net.params, and the transposed copies
    of the cached point in trans the sweep works on (state.Q, which is tloss.QT, is already
    transposed; tloss.scale = 1)."""
    _, table, _, _, _, _ = net
    X, Z, A, Zhat, _, _ = cache
    N = X.shape[0]
    forward(net, cache, np.bool_(True))  # typed, not literal: see mlp_numba
    evaluate_loss(net, cache, state)
    backprop(net, cache, state, grad, scratch, np.int64(0))
    transpose_into(Z, N, table, trans.ZT)
    transpose_into(A, N, table, trans.AT)
    transpose_into(Zhat, N, table, trans.ZhatT)
    tloss.scale[:] = 1.0


@kernel
def sweep(net, cache, state, plan, grad0, grad, scratch):
    """One sweep of the plan's steps; returns (status, steps, raised, flipped, J at the start),
    status OK or NONFINITE_STEP. See sequential_numpy.sweep. The level the steps' changes keep
    up to date and the raised test compare is n J (the weighted per-sample losses plus the L2
    penalty, a running number)."""
    params, table, _, loss, _, alpha = net
    X, Z, A, Zhat, _, _ = cache
    T, rowloss, _, Q, weight, weight_sum = state
    order, greedy, rule, lr = plan
    N, out = X.shape[0], table.shape[0] - 1
    n_out = table[out, N_OUT]
    dtype = X.dtype
    labels = np.zeros(N, dtype=np.int64)  # cross-entropy's class labels, from the one-hot T
    if loss == CROSS_ENTROPY:
        # labels = T.argmax(axis=1)
        for r in range(N):
            labels[r] = np.argmax(T[r])
    XT = np.ascontiguousarray(X.T)
    x_bounds = np.empty(X.shape[1], dtype=dtype)
    trans = Transposed(XT, np.empty_like(Z), np.empty_like(A), np.empty_like(Zhat), x_bounds)
    n = np.float64(weight_sum[0])  # (float64, as the sample count it replaces was used)
    unit = unit_weights(weight)
    tloss = TransposedLoss(np.ascontiguousarray(T.T), labels, Q,  # Q is (n_out, N) already
                           np.ones(N, dtype=dtype), weight, n)
    buffers = SweepScratch(np.ones(N, dtype=dtype), np.empty(N, dtype), np.empty(N, dtype),
                           np.empty(N, dtype), np.empty(n_out, dtype=dtype), np.empty(N, dtype),
                           np.empty(N, dtype), np.empty(N, dtype),
                           np.empty((4, np.max(table[:, N_OUT]) * N), dtype))
    changes = np.empty(N, dtype)
    lwork = LogitScratch(np.empty(N, dtype), changes, np.empty((3, max(N, n_out)), dtype=dtype))
    load_point(net, cache, state, grad0, scratch, trans, tloss)
    # x_bounds = np.abs(XT).max(axis=1)
    for k in range(X.shape[1]):
        x_bounds[k] = largest_magnitude(XT[k])
    newton = rule != GRADIENT
    eps = np.finfo(dtype).eps
    # the penalty alpha / 2 Σ ‖W‖², kept up to date by the weights' steps
    penalty = weight_penalty(params, table, alpha) if alpha != 0.0 else 0.0
    level = weighted_total(unit, weight, rowloss) + penalty  # n J, kept up to date by the steps
    start = level / n
    raised = flipped = 0
    for step in range(order.shape[0]):
        if greedy:
            # Gauss–Southwell: a full forward and backward pass at the current point
            load_point(net, cache, state, grad, scratch, trans, tloss)
            level = weighted_total(unit, weight, rowloss) + penalty
            j = np.argmax(np.abs(grad))
        else:
            j = order[step]
        g, h = derivatives(j, newton, net, cache, trans, tloss, buffers)
        delta = -lr * g if rule == GRADIENT else -g / max(h, 1.0 / lr)
        old = params[j]
        apply_step(j, delta, net, cache, state, trans, tloss, buffers, lwork)
        total = weighted_total(unit, weight, changes)
        if not np.isfinite(total):
            params[j] = old
            return NONFINITE_STEP, step, raised, flipped, start
        if alpha != 0.0 and decode(j, table)[1] == WEIGHT:
            # the penalty's change, at the weight before the step
            change = penalty_change(old, delta, alpha)
            penalty += change
            total += change
        level += total
        raised += total > RAISED_ULPS * eps * abs(level)
        flipped += g * grad0[j] < 0.0
    return OK, order.shape[0], raised, flipped, start
