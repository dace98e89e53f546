"""Forward pass, loss, backprop and BatchNorm's running statistics of an MLP: the Numba twin of
``mlp_numpy.py`` (same arguments, same results to round-off). Each entry point takes the bundles
of ``bundles.py``: ``forward(net, cache, batch_stats)``, ``loss(net, cache, state)``,
``backprop(net, cache, state, grad, scratch, first)``, ``update_running_stats(net, cache,
running)``, as those namedtuples or as plain tuples of the same fields in the same order: every
Numba kernel unpacks its bundles by position, ``params, table, act, loss, divisor, alpha = net``
(fastgrad passes plain tuples, which Numba's dispatcher types faster; docs/design.md, "The kernel
interface"). The flat layout of parameters and cached
buffers is described in ``codes.py``. Matrix products go to BLAS through ``np.dot(a, b, out)``;
the element-wise work is written as loops over rows then columns, so the inner loop runs along
contiguous memory.

A kernel that calls another passes flags and counts as typed values (``np.bool_(True)``,
``np.int64(0)``), never as literals: Numba types a literal argument as a type of its own and
would compile the callee a second time beside the one Python's calls use (seconds of a first
run's compile for forward and backprop).
"""
import functools

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from .codes import (BINARY_CROSS_ENTROPY, BN_EPS, COL_OFF, CROSS_ENTROPY, IDENTITY,
                    EXP_MAX, EXP_MIN, EXP_ROUND, EXP_TAYLOR, LN2_HI, LN2_LO, LOG2E,
                    MODERATE_CHANGE, MSE, N_IN, N_OUT, OFF_B, OFF_BETA, OFF_GAMMA, OFF_W, POISSON,
                    RELU, SIGMOID, SMALL_CHANGE, TANH, TANH_DOUBLE_CLAMP, TANH_DOUBLE_P,
                    TANH_DOUBLE_Q, TANH_DOUBLE_SMALL, TANH_SINGLE_CLAMP, TANH_SINGLE_P,
                    TANH_SINGLE_Q)


# Every kernel: compiled once and cached on disk; division by zero gives inf or NaN as in numpy
# (Python's ZeroDivisionError check would also keep loops from vectorising); no fastmath
# unless a kernel says so, with flags that leave NaN and inf alone.
kernel = functools.partial(njit, cache=True, error_model="numpy")


# ---------------------------------------------------------------- scalar helpers
def bitcast(source, target):
    """An intrinsic that reinterprets a ``source`` scalar's bits as a ``target`` of the same
    width (numpy: x.view(target)), which LLVM vectorises like any other instruction."""
    @intrinsic
    def cast(typingctx, x):
        if x != source:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))
        return target(source), codegen
    return cast


bits_of = bitcast(types.float64, types.int64)    # x.view(np.int64)
float_of = bitcast(types.int64, types.float64)   # bits.view(np.float64)


E = EXP_TAYLOR
TP, TQ = TANH_DOUBLE_P, TANH_DOUBLE_Q
ROUND_BITS = np.int64(np.float64(EXP_ROUND).view(np.int64))


@kernel(inline="always")
def exp_double(x):
    """exp of a float64, branch-free so that loops over it vectorise (codes.EXP_ROUND)."""
    x = EXP_MAX if x > EXP_MAX else (EXP_MIN if x < EXP_MIN else x)  # NaN stays NaN
    k = x * LOG2E + EXP_ROUND  # n = round(x log2 e) in k's low bits
    n_float = k - EXP_ROUND
    r = (x - n_float * LN2_HI) - n_float * LN2_LO
    p = E[0] + r * (E[1] + r * (E[2] + r * (E[3] + r * (E[4] + r * (E[5] + r * (E[6] + r * (
        E[7] + r * (E[8] + r * (E[9] + r * (E[10] + r * (E[11] + r * (E[12] + r * E[13]))))))))))))
    # p * 2**n, as p * 2**(n // 2) * 2**(n - n // 2)
    n = bits_of(k) - ROUND_BITS
    half = n >> 1
    return p * float_of((half + 1023) << 52) * float_of((n - half + 1023) << 52)


@kernel(inline="always")
def tanh_double(x):
    """tanh of a float64, branch-free (codes.TANH_DOUBLE_P); NaN stays NaN, -0 stays -0."""
    ax = abs(x)
    ax = TANH_DOUBLE_CLAMP if ax > TANH_DOUBLE_CLAMP else ax
    large = 1.0 - 2.0 / (exp_double(2.0 * ax) + 1.0)
    s = ax * ax
    small = ax + ax * s * (TP[0] + s * (TP[1] + s * TP[2])) / (
        TQ[0] + s * (TQ[1] + s * (TQ[2] + s * TQ[3])))
    return np.copysign(small if ax < TANH_DOUBLE_SMALL else large, x)


@kernel(inline="always")
def sigmoid(x):
    """1 / (1 + exp(-x)) in float64, as (1 or e) / (1 + e) with e = exp(-|x|): no overflow for
    large |x|, branch-free."""
    e = exp_double(-abs(np.float64(x)))
    return (1.0 if x >= 0 else e) / (1.0 + e)


# tanh_single's coefficients, rounded to float32: it computes in float32 throughout
P0, P1, P2, P3, P4 = (np.float32(p) for p in TANH_SINGLE_P)
_, Q1, Q2, Q3, Q4 = (np.float32(q) for q in TANH_SINGLE_Q)
CLAMP, ONE = np.float32(TANH_SINGLE_CLAMP), np.float32(1.0)


@kernel(inline="always")
def tanh_single(x):
    """tanh of a float32 x (see codes.TANH_SINGLE_P), in float32 arithmetic; NaN stays NaN."""
    x = CLAMP if x > CLAMP else (-CLAMP if x < -CLAMP else x)
    y = x * x
    return x * (P0 + y * (P1 + y * (P2 + y * (P3 + y * P4)))) / (
        ONE + y * (Q1 + y * (Q2 + y * (Q3 + y * Q4))))


def tanh_of(x):
    """tanh at x's precision: tanh_single for float32, tanh_double for float64."""


@overload(tanh_of, jit_options={"cache": True, "error_model": "numpy"})
def _tanh_of(x):
    if x == types.float32:
        return lambda x: tanh_single(x)
    return lambda x: tanh_double(x)


@kernel
def activate(act, u):
    if act == TANH:
        return tanh_of(u)
    if act == RELU:
        return max(u, 0.0)
    if act == SIGMOID:
        return sigmoid(u)
    return u


@kernel
def activate_all(act, u, a):
    """a = act(u) over a block (may run in place), one loop per activation so that each loop
    vectorises."""
    N, n = u.shape
    if act == TANH:
        for r in range(N):
            for c in range(n):
                a[r, c] = tanh_of(u[r, c])
    elif act == RELU:
        for r in range(N):
            for c in range(n):
                a[r, c] = max(u[r, c], 0.0)
    elif act == SIGMOID:
        for r in range(N):
            for c in range(n):
                a[r, c] = sigmoid(u[r, c])
    else:
        for r in range(N):
            for c in range(n):
                a[r, c] = u[r, c]


@kernel
def double_functions(x, e, t, s):
    """e = exp_double(x), and t = tanh, s = sigmoid by activate_all (the loops the forward pass
    runs), for 1-D x: exposed so that the tests can measure their error in ulps."""
    for n in range(x.shape[0]):
        e[n] = exp_double(x[n])
    activate_all(TANH, x.reshape(1, -1), t.reshape(1, -1))
    activate_all(SIGMOID, x.reshape(1, -1), s.reshape(1, -1))


@kernel
def add_bias_and_activate(act, b, z, a):
    """In one pass over a block: z += b (row by row), then a = act(z); one loop per
    activation so that each loop vectorises."""
    N, n = z.shape
    if act == TANH:
        for r in range(N):
            for c in range(n):
                z[r, c] += b[c]
                a[r, c] = tanh_of(z[r, c])
    elif act == RELU:
        for r in range(N):
            for c in range(n):
                z[r, c] += b[c]
                a[r, c] = max(z[r, c], 0.0)
    elif act == SIGMOID:
        for r in range(N):
            for c in range(n):
                z[r, c] += b[c]
                a[r, c] = sigmoid(z[r, c])
    else:
        for r in range(N):
            for c in range(n):
                z[r, c] += b[c]
                a[r, c] = z[r, c]


@kernel
def column_sums(d, sums):
    # sums = d.sum(axis=0), row by row
    sums[:] = 0.0
    for r in range(d.shape[0]):
        for c in range(d.shape[1]):
            sums[c] += d[r, c]


@kernel
def slope_and_column_sums(act, a, d, sums):
    """In one pass over a block: d *= act'(u), written with a = act(u), and sums =
    d.sum(axis=0) (row by row); one loop per activation."""
    N, n = d.shape
    sums[:] = 0.0
    if act == TANH:
        for r in range(N):
            for c in range(n):
                d[r, c] *= 1.0 - a[r, c] * a[r, c]
                sums[c] += d[r, c]
    elif act == RELU:
        for r in range(N):
            for c in range(n):
                d[r, c] *= 1.0 if a[r, c] > 0 else 0.0
                sums[c] += d[r, c]
    elif act == SIGMOID:
        for r in range(N):
            for c in range(n):
                d[r, c] *= a[r, c] * (1.0 - a[r, c])
                sums[c] += d[r, c]
    else:
        column_sums(d, sums)


@kernel
def activation_slope(act, a):
    """act'(u) written in terms of the output a = act(u)."""
    if act == TANH:
        return 1.0 - a * a
    if act == RELU:
        return 1.0 if a > 0 else 0.0
    if act == SIGMOID:
        return a * (1.0 - a)
    return 1.0


@kernel
def row_loss_and_state(loss, z, t, q, divisor):
    """One sample's loss from its logits z and target row t (one-hot for cross-entropy), and
    its loss state q = softmax(z) (cross-entropy), sigmoid(z) (binary cross-entropy), exp(z)
    (poisson) or z - t (mse), the exponentials computed once. Every loss but cross-entropy sums
    a term per output and divides by ``divisor`` (codes.py, "losses")."""
    n_out = z.shape[0]
    if loss == CROSS_ENTROPY:
        # q = exp(z - max z); loss = log(sum q) + max z - t @ z; q /= sum q
        shift = z[0]
        for c in range(1, n_out):
            shift = max(shift, z[c])
        total = 0.0
        dot = 0.0
        for c in range(n_out):
            q[c] = exp_double(z[c] - shift)
            total += q[c]
            dot += t[c] * z[c]
        for c in range(n_out):
            q[c] = q[c] / total
        return np.log(total) + shift - dot
    total = 0.0
    if loss == BINARY_CROSS_ENTROPY:
        # softplus(z) - t z per output, one sigmoid each
        for c in range(n_out):
            q[c] = sigmoid(z[c])
            total += max(z[c], 0.0) - t[c] * z[c] + np.log1p(np.exp(-abs(z[c])))
    elif loss == POISSON:
        # exp(z) - t z per output
        for c in range(n_out):
            q[c] = exp_double(np.float64(z[c]))
            total += q[c] - t[c] * z[c]
    else:
        # (z - t)² per output
        for c in range(n_out):
            q[c] = z[c] - t[c]
            total += q[c] * q[c]
    return total / divisor


# ---------------------------------------------------------------- small changes, kept exact
# Taylor polynomials for |x| <= SMALL_CHANGE (1/32); the first omitted term is below 1e-17
# relative, so they match numpy's expm1 / tanh / log1p to about one ulp there.
@kernel(inline="always")
def expm1_small(x):
    # x + x²/2! + ... + x⁸/8!
    return x * (1.0 + x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120 + x * (
        1 / 720 + x * (1 / 5040 + x * (1 / 40320))))))))


@kernel(inline="always")
def expm1_tiny(x):
    # for |x| <= TINY_CHANGE: x + x²/2! + ... + x⁵/5!
    return x * (1.0 + x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120)))))


@kernel(inline="always")
def log1p_tiny(x):
    # for |x| <= 2 TINY_CHANGE: x - x²/2 + ... - x⁶/6
    return x * (1.0 - x * (1 / 2 - x * (1 / 3 - x * (1 / 4 - x * (1 / 5 - x * (1 / 6))))))


@kernel(inline="always")
def tanh_small(x):
    # x - x³/3 + 2x⁵/15 - 17x⁷/315 + 62x⁹/2835
    y = x * x
    return x * (1.0 + y * (-1 / 3 + y * (2 / 15 + y * (-17 / 315 + y * (62 / 2835)))))


@kernel(inline="always")
def log1p_small(x):
    """log1p(x) for |x| <= 1/16: x - x²/2 + ... - x¹⁴/14."""
    return x * (1.0 - x * (1 / 2 - x * (1 / 3 - x * (1 / 4 - x * (1 / 5 - x * (1 / 6 - x * (
        1 / 7 - x * (1 / 8 - x * (1 / 9 - x * (1 / 10 - x * (1 / 11 - x * (1 / 12 - x * (
            1 / 13 - x * (1 / 14))))))))))))))


@kernel(inline="always")
def expm1_of(x):
    """expm1(x) in float64: expm1_small's polynomial for |x| <= SMALL_CHANGE, libm's beyond."""
    return expm1_small(x) if abs(x) <= SMALL_CHANGE else np.expm1(x)


@kernel(inline="always")
def log1p_of(x):
    """log1p(x) in float64: log1p_small's polynomial for |x| <= 1/16, libm's beyond."""
    return log1p_small(x) if abs(x) <= 1 / 16 else np.log1p(np.float64(x))


@kernel
def activation_change(act, u, a, du):
    """act(u + du) - act(u) where a = act(u); see mlp_numpy.activation_change."""
    if act == IDENTITY:
        return du
    if act == RELU:
        if u > 0 and u + du > 0:
            return du
        return max(u + du, 0.0) - a
    if abs(du) > SMALL_CHANGE:
        return activate(act, u + du) - a
    if act == TANH:
        t = tanh_small(du)
        return t * (1.0 - a * a) / (1.0 + a * t)
    e = expm1_small(du)
    return a * (1.0 - a) * e / (1.0 + a * e)


@kernel
def logit_change(loss, q, t, d, divisor):
    """A row's loss change when one logit moves by d, |d| <= MODERATE_CHANGE: the one-column case
    of row_loss_change (q, t: that logit's loss state and target)."""
    if loss == MSE:
        return d * (2.0 * q + d) / divisor
    e = expm1_small(d) if abs(d) <= SMALL_CHANGE else np.expm1(d)
    x = q * e
    if loss == POISSON:
        return (x - t * d) / divisor
    change = (log1p_small(x) if abs(x) <= 1 / 16 else np.log1p(x)) - t * d
    return change if loss == CROSS_ENTROPY else change / divisor


@kernel
def row_loss_change(loss, z, q, t, rowloss, dz, divisor):
    """One row's loss change when its logits z move by dz (dz is overwritten when the change
    is large); q is the row's loss state, divisor the network's output_divisor. See
    mlp_numpy.row_loss_changes."""
    n_out = z.shape[0]
    total = 0.0
    if loss == MSE:
        # sum(dz * (2 (z - t) + dz)) / divisor
        for c in range(n_out):
            total += dz[c] * (2.0 * q[c] + dz[c])
        return total / divisor
    if loss == POISSON:
        # sum(q expm1(dz) - t dz) / divisor, exact for any dz
        for c in range(n_out):
            total += q[c] * expm1_of(dz[c]) - t[c] * dz[c]
        return total / divisor
    biggest = 0.0
    for c in range(n_out):
        biggest = max(biggest, abs(dz[c]))
    if biggest > MODERATE_CHANGE:
        for c in range(n_out):
            dz[c] += z[c]
        return row_loss_and_state(loss, dz, t, np.empty(n_out), divisor) - rowloss
    if loss == BINARY_CROSS_ENTROPY:
        # sum(log1p(q expm1(dz)) - t dz) / divisor
        for c in range(n_out):
            total += log1p_of(q[c] * expm1_of(dz[c])) - t[c] * dz[c]
        return total / divisor
    # log1p(sum(q * expm1(dz))) - t @ dz
    dot = 0.0
    for c in range(n_out):
        total += q[c] * (expm1_small(dz[c]) if abs(dz[c]) <= SMALL_CHANGE else np.expm1(dz[c]))
        dot += t[c] * dz[c]
    return (log1p_small(total) if abs(total) <= 1 / 16 else np.log1p(total)) - dot


# ---------------------------------------------------------------- views of the flat buffers
@kernel
def copy_into(dst, src):
    """dst[:] = src, for 1-D arrays. The kernels copy arrays in loops: for every slice assigned
    from an array, Numba compiles a formatter of its shape-mismatch message, seconds of a first
    run's compile in all."""
    for k in range(dst.shape[0]):
        dst[k] = src[k]


@kernel
def weights(params, table, l):
    """W_l, shape (n_in, n_out), as a view into params (or into a gradient of the same layout)."""
    start = table[l, OFF_W]
    return params[start:start + table[l, N_IN] * table[l, N_OUT]].reshape(table[l, N_IN],
                                                                           table[l, N_OUT])


@kernel
def kind_offset(table, l, kind):
    """Where layer l's parameters of one kind (WEIGHT, BIAS, GAMMA, BETA) start in params: the
    table's offset columns follow the kinds' order (codes.py)."""
    return table[l, OFF_W + kind]


@kernel
def block(buf, N, table, l):
    """Layer l's (N, n_out) block of a per-sample buffer (cache.Z, A or Zhat)."""
    start = N * table[l, COL_OFF]
    return buf[start:start + N * table[l, N_OUT]].reshape(N, table[l, N_OUT])


@kernel
def output_logits(net, cache):
    """The last layer's block of cache.Z: the (N, n_out) logits."""
    _, table, _, _, _, _ = net
    X, Z, _, _, _, _ = cache
    return block(Z, X.shape[0], table, table.shape[0] - 1)


@kernel
def column_stats(z, mean, istd):
    """Training-mode BatchNorm statistics of each column of z: mean, 1/sqrt(biased var + eps)."""
    N, n = z.shape
    mean[:] = 0.0
    istd[:] = 0.0
    for r in range(N):
        for c in range(n):
            mean[c] += z[r, c]
    for c in range(n):
        mean[c] /= N
    for r in range(N):
        for c in range(n):
            istd[c] += (z[r, c] - mean[c]) ** 2
    for c in range(n):
        istd[c] = 1.0 / np.sqrt(istd[c] / N + BN_EPS)


@kernel
def batchnorm_change(d, zhat, istd):
    """In place, column by column: d = zhat(z + d) - zhat(z), free of cancellation; see
    mlp_numpy.batchnorm_change."""
    N, n = d.shape
    mean_d, zd, cc = np.zeros(n), np.zeros(n), np.zeros(n)
    for r in range(N):
        for c in range(n):
            mean_d[c] += d[r, c]
            zd[c] += zhat[r, c] * d[r, c]
    for c in range(n):
        mean_d[c] /= N
    for r in range(N):
        for c in range(n):
            cc[c] += (d[r, c] - mean_d[c]) ** 2
    # the variance grows by var * x; zd becomes the shrink of zhat, cc the new istd
    for c in range(n):
        x = 2.0 * istd[c] * (zd[c] / N) + istd[c] ** 2 * (cc[c] / N)
        root = np.sqrt(1.0 + x)
        zd[c] = -x / (root * (1.0 + root))
        cc[c] = istd[c] / root
    for r in range(N):
        for c in range(n):
            d[r, c] = zhat[r, c] * zd[c] + (d[r, c] - mean_d[c]) * cc[c]


@kernel
def batchnorm_jacobian(d, zhat, istd, gamma):
    """In place, column by column: d = gamma * istd * (d - mean(d) - zhat * mean(d * zhat)),
    the (symmetric) Jacobian of training-mode BatchNorm (times gamma) applied to d."""
    N, n = d.shape
    mean_d = np.zeros(n)
    mean_dz = np.zeros(n)
    for r in range(N):
        for c in range(n):
            mean_d[c] += d[r, c]
            mean_dz[c] += d[r, c] * zhat[r, c]
    for r in range(N):
        for c in range(n):
            d[r, c] = gamma[c] * istd[c] * (d[r, c] - mean_d[c] / N - zhat[r, c] * mean_dz[c] / N)


@kernel
def dense(a, W, b, z):
    # z = a @ W + b
    np.dot(a, W, z)
    for r in range(z.shape[0]):
        for c in range(z.shape[1]):
            z[r, c] += b[c]


@kernel
def normalise_and_activate(act, z, zhat, gamma, beta, mean, istd, a):
    # zhat = (z - mean) * istd; a = act(gamma * zhat + beta)
    for r in range(z.shape[0]):
        for c in range(z.shape[1]):
            zhat[r, c] = (z[r, c] - mean[c]) * istd[c]
            a[r, c] = gamma[c] * zhat[r, c] + beta[c]
    activate_all(act, a, a)


# ---------------------------------------------------------------- the kernels
@kernel
def forward(net, cache, batch_stats):
    """Fill cache.Z, A (and Zhat) for the whole network at net.params; with ``batch_stats``
    BatchNorm uses (and stores in cache.mean, istd) the batch's statistics. See
    mlp_numpy.forward."""
    params, table, act, _, _, _ = net
    X, Z, A, Zhat, mean, istd = cache
    N, n_layers = X.shape[0], table.shape[0]
    for l in range(n_layers):
        n_out, off_b, off_gamma = table[l, N_OUT], table[l, OFF_B], table[l, OFF_GAMMA]
        c0 = table[l, COL_OFF]
        W, b = weights(params, table, l), params[off_b:off_b + n_out]
        z = block(Z, N, table, l)
        a_in = X if l == 0 else block(A, N, table, l - 1)
        if l < n_layers - 1 and off_gamma < 0:
            # z = a_in @ W, then z += b and a = act(z) in one pass
            np.dot(a_in, W, z)
            add_bias_and_activate(act, b, z, block(A, N, table, l))
            continue
        dense(a_in, W, b, z)
        if l == n_layers - 1:
            break
        a = block(A, N, table, l)
        if off_gamma >= 0:
            m, s = mean[c0:c0 + n_out], istd[c0:c0 + n_out]
            if batch_stats:
                column_stats(z, m, s)
            off_beta = table[l, OFF_BETA]
            gamma, beta = params[off_gamma:off_gamma + n_out], params[off_beta:off_beta + n_out]
            normalise_and_activate(act, z, block(Zhat, N, table, l), gamma, beta, m, s, a)


@kernel(fastmath={"reassoc", "contract"})
def weight_penalty(params, table, alpha):
    """alpha / 2 · Σ_l ‖W_l‖² (every layer's Dense weights; no bias, gamma or beta), in float64:
    the L2 penalty times n (J holds it divided by the weight sum n). ``reassoc`` lets the sum
    vectorise."""
    total = 0.0
    for l in range(table.shape[0]):
        start = table[l, OFF_W]
        # total += (W_l ** 2).sum()
        for j in range(start, start + table[l, N_IN] * table[l, N_OUT]):
            total += np.float64(params[j]) * params[j]
    return 0.5 * alpha * total


@kernel
def loss(net, cache, state):
    """J = the weighted mean of the per-sample losses of the logits (the last layer's block of
    cache.Z) against state.T for the loss net.loss, plus the L2 penalty: with n =
    state.weight_sum[0], J = Σ_r weight_r rowloss_r / n + alpha / (2 n) Σ_l ‖W_l‖². Fills
    state.rowloss (the per-sample losses, unweighted), state.G = dJ/dlogits (weighted: row r's
    loss slope times weight_r / n) and state.Q (n_out, N), the transposed loss state. See
    mlp_numpy.loss."""
    params, table, _, loss_code, divisor, alpha = net
    T, rowloss, G, Q, weight, weight_sum = state
    # n in float64, as the sample count it replaces was used: unit weights give the same bits
    n = np.float64(weight_sum[0])
    logits = output_logits(net, cache)
    N, n_out = logits.shape
    total = 0.0
    if loss_code == CROSS_ENTROPY:
        # the softmax with its exponentials in one pass over the whole block, which vectorises
        # (row_loss_and_state's arithmetic, reordered): G = logits - the row's max, then
        # G = exp(G); each row's loss log(Σ G) + max - t @ z; Q = G / Σ G; G = (Q - T) w_r / n
        for r in range(N):
            shift = logits[r, 0]
            for c in range(1, n_out):
                shift = max(shift, logits[r, c])
            rowloss[r] = shift  # kept here until the row's loss replaces it
            for c in range(n_out):
                G[r, c] = logits[r, c] - shift
        for r in range(N):
            for c in range(n_out):
                G[r, c] = exp_double(G[r, c])
        for r in range(N):
            row_total = 0.0
            dot = 0.0
            for c in range(n_out):
                row_total += G[r, c]
                dot += T[r, c] * logits[r, c]
            rowloss[r] = np.log(row_total) + rowloss[r] - dot
            for c in range(n_out):
                Q[c, r] = G[r, c] / row_total
                G[r, c] = (Q[c, r] - T[r, c]) * weight[r] / n
            total += weight[r] * rowloss[r]
    else:
        q = np.empty(n_out, dtype=logits.dtype)
        for r in range(N):
            rowloss[r] = row_loss_and_state(loss_code, logits[r], T[r], q, divisor)
            for c in range(n_out):
                Q[c, r] = q[c]
                # G = (q - t) / divisor (2 q / divisor for mse), times w_r / n
                G[r, c] = (2.0 * q[c] / divisor if loss_code == MSE else
                           (q[c] - T[r, c]) / divisor) * weight[r] / n
            total += weight[r] * rowloss[r]
    if alpha != 0.0:
        return (total + weight_penalty(params, table, alpha)) / n
    return total / n


@kernel
def backprop(net, cache, state, grad, scratch, first):
    """grad = dJ/dparams by reverse mode, from the cached point and state.G = dJ/dlogits, plus
    the L2 penalty's alpha / n · W (n = state.weight_sum[0]), for layers first .. last; see
    mlp_numpy.backprop. delta (dJ/dz of the current layer) alternates between scratch.work1 and
    scratch.work2."""
    params, table, act, _, _, alpha = net
    X, _, A, Zhat, _, istd = cache
    _, _, work1, work2 = scratch
    N, n_layers = X.shape[0], table.shape[0]
    _, _, delta, _, _, weight_sum = state  # G = dJ/dlogits
    decay = alpha / np.float64(weight_sum[0])
    # each layer's bias gradient gb = delta.sum(axis=0): the last layer's here, the others'
    # in the pass that finishes their delta
    out = n_layers - 1
    column_sums(delta, grad[table[out, OFF_B]:table[out, OFF_B] + table[out, N_OUT]])
    for l in range(n_layers - 1, first - 1, -1):
        n_in = table[l, N_IN]
        W = weights(params, table, l)
        # gW = a_in.T @ delta
        if l == 0:
            np.dot(X.T, delta, weights(grad, table, l))
        else:
            np.dot(block(A, N, table, l - 1).T, delta, weights(grad, table, l))
        if alpha != 0.0:
            # gW += alpha / n * W: the penalty's alpha / (2 n) ‖W‖²
            for j in range(table[l, OFF_W], table[l, OFF_W] + n_in * table[l, N_OUT]):
                grad[j] += decay * params[j]
        if l == first:
            break
        work = work1 if (n_layers - 1 - l) % 2 == 0 else work2
        du = work[:N * n_in].reshape(N, n_in)
        # du = delta @ W.T, then du *= act'(a_prev) in the pass that sums du's columns: layer
        # l-1's bias gradient, or with BatchNorm its beta's
        np.dot(delta, W.T, du)
        off_b, off_gamma = table[l - 1, OFF_B], table[l - 1, OFF_GAMMA]
        off_beta = table[l - 1, OFF_BETA]
        c0 = table[l - 1, COL_OFF]
        if off_gamma < 0:
            slope_and_column_sums(act, block(A, N, table, l - 1), du, grad[off_b:off_b + n_in])
        else:
            zhat = block(Zhat, N, table, l - 1)
            g_gamma = grad[off_gamma:off_gamma + n_in]
            # g_beta = du.sum(axis=0); g_gamma = (du * zhat).sum(axis=0)
            slope_and_column_sums(act, block(A, N, table, l - 1), du,
                                  grad[off_beta:off_beta + n_in])
            g_gamma[:] = 0.0
            for r in range(N):
                for c in range(n_in):
                    g_gamma[c] += du[r, c] * zhat[r, c]
            batchnorm_jacobian(du, zhat, istd[c0:c0 + n_in], params[off_gamma:off_gamma + n_in])
            column_sums(du, grad[off_b:off_b + n_in])
        delta = du


@kernel
def update_running_stats(net, cache, running):
    """BatchNorm's running statistics (running.mean, var, with running.momentum) after a
    training batch of N = cache.X.shape[0] samples, from its statistics cache.mean, istd; see
    mlp_numpy.update_running_stats."""
    _, table, _, _, _, _ = net
    X, _, _, _, mean, istd = cache
    running_mean, running_var, momentum = running
    N = X.shape[0]
    for l in range(table.shape[0] - 1):
        if table[l, OFF_GAMMA] < 0:
            continue
        # running = (1 - momentum) running + momentum * (batch mean, unbiased batch variance)
        for c in range(table[l, COL_OFF], table[l, COL_OFF] + table[l, N_OUT]):
            variance = (1.0 / istd[c] ** 2 - BN_EPS) * N / max(N - 1, 1)
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * variance
