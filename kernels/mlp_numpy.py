"""Forward pass, loss, backprop and BatchNorm's running statistics of an MLP: the numpy
reference the Numba and Cython twins (``mlp_numba.py``, ``mlp_cython.pyx``) are tested against.
Each entry point takes the bundles of ``bundles.py`` (docs/design.md, "The kernel interface");
the flat layout of parameters and cached buffers is described in ``codes.py``.

A hidden layer is ``z = a_prev @ W + b``, then with BatchNorm ``u = gamma * zhat + beta`` where
``zhat = (z - mean) * istd``, else ``u = z``, then ``a = act(u)``. The last layer's ``z`` is the
logits, fed to the loss.
"""
import numpy as np

from .codes import (BN_EPS, COL_OFF, CROSS_ENTROPY, EXP_MAX, EXP_MIN, EXP_ROUND, EXP_TAYLOR,
                    IDENTITY, LN2_HI, LN2_LO, LOG2E, MODERATE_CHANGE, MSE, N_IN, N_OUT, OFF_B,
                    OFF_BETA, OFF_GAMMA, OFF_W, POISSON, RELU, SIGMOID, SMALL_CHANGE, TANH,
                    TANH_DOUBLE_CLAMP, TANH_DOUBLE_P, TANH_DOUBLE_Q, TANH_DOUBLE_SMALL,
                    TANH_SINGLE_CLAMP, TANH_SINGLE_P, TANH_SINGLE_Q)


# ---------------------------------------------------------------- views of the flat buffers
def layer_params(params, table, l):
    """(W, b, gamma, beta) of layer l as views into ``params`` (or into a gradient of the same
    layout); gamma/beta are None without BatchNorm."""
    n_in, n_out = table[l, N_IN], table[l, N_OUT]
    off_W, off_b = table[l, OFF_W], table[l, OFF_B]
    off_gamma, off_beta = table[l, OFF_GAMMA], table[l, OFF_BETA]
    W = params[off_W:off_W + n_in * n_out].reshape(n_in, n_out)
    b = params[off_b:off_b + n_out]
    if off_gamma < 0:
        return W, b, None, None
    return W, b, params[off_gamma:off_gamma + n_out], params[off_beta:off_beta + n_out]


def weights(params, table, l):
    """Layer l's (n_in, n_out) weight matrix W, a view into ``params``."""
    return layer_params(params, table, l)[0]


def block(buf, N, table, l):
    """Layer l's (N, n_out) block of a per-sample buffer (cache.Z, A or Zhat)."""
    start = N * table[l, COL_OFF]
    return buf[start:start + N * table[l, N_OUT]].reshape(N, table[l, N_OUT])


def columns(buf, table, l):
    """Layer l's (n_out,) block of a per-column buffer (cache.mean or istd, running.mean or var)."""
    return buf[table[l, COL_OFF]:table[l, COL_OFF] + table[l, N_OUT]]


def layer_input(cache, table, l):
    """What layer l reads: the inputs X for the first layer, the previous layer's activations
    after it."""
    return cache.X if l == 0 else block(cache.A, len(cache.X), table, l - 1)


def output_logits(net, cache):
    """The last layer's block of cache.Z: the (N, n_out) logits."""
    return block(cache.Z, len(cache.X), net.table, len(net.table) - 1)


# ---------------------------------------------------------------- activations and losses
def tanh_single(x):
    """tanh of float32 data (see codes.TANH_SINGLE_P): x P(x²) / Q(x²), x clamped to ±9, in
    float32 arithmetic."""
    x = np.clip(x, np.float32(-TANH_SINGLE_CLAMP), np.float32(TANH_SINGLE_CLAMP))
    y = x * x
    P = np.polynomial.polynomial.polyval(y, np.array(TANH_SINGLE_P, dtype=np.float32))
    Q = np.polynomial.polynomial.polyval(y, np.array(TANH_SINGLE_Q, dtype=np.float32))
    return x * P / Q


# The compiled backends' float64 exp, tanh and sigmoid, which vectorise where libm's scalar calls
# do not (codes.EXP_ROUND), written out in numpy: their readable twins, which the tests hold them
# to bit for bit. The numpy backend itself calls numpy's exp and tanh, already vectorised.
def exp_double(x):
    """exp of float64 data as the compiled twins compute it (codes.EXP_ROUND): exp(x) = 2^n
    exp(r), n = round(x log2 e), r = x - n ln 2, exp(r) by its Taylor polynomial, 2^n from its
    exponent bits in two factors."""
    x = np.asarray(x, dtype=np.float64)
    x = np.where(x > EXP_MAX, EXP_MAX, np.where(x < EXP_MIN, EXP_MIN, x))  # NaN stays NaN
    k = x * LOG2E + EXP_ROUND  # n = round(x log2 e) in k's low bits
    n_float = k - EXP_ROUND
    r = (x - n_float * LN2_HI) - n_float * LN2_LO
    p = np.polynomial.polynomial.polyval(r, EXP_TAYLOR)
    n = k.view(np.int64) - np.float64(EXP_ROUND).view(np.int64)
    half = n >> 1
    with np.errstate(invalid="ignore", over="ignore"):  # NaN gives garbage bits, times NaN
        return p * ((half + 1023) << 52).view(np.float64) * ((n - half + 1023) << 52).view(
            np.float64)


def tanh_double(x):
    """tanh of float64 data as the compiled twins compute it (codes.TANH_DOUBLE_P): on |x|,
    a rational form below TANH_DOUBLE_SMALL, 1 - 2 / (exp(2|x|) + 1) above; the sign copied
    back."""
    ax = np.abs(x)
    ax = np.where(ax > TANH_DOUBLE_CLAMP, TANH_DOUBLE_CLAMP, ax)
    large = 1 - 2 / (exp_double(2 * ax) + 1)
    s = ax * ax
    polyval = np.polynomial.polynomial.polyval
    small = ax + ax * s * polyval(s, TANH_DOUBLE_P) / polyval(s, TANH_DOUBLE_Q)
    return np.copysign(np.where(ax < TANH_DOUBLE_SMALL, small, large), x)


def sigmoid_double(x):
    """sigmoid of float64 data as the compiled twins compute it: sigmoid with exp_double."""
    return sigmoid(x, exp=exp_double)


def activate(act, u):
    if act == TANH:
        return tanh_single(u) if u.dtype == np.float32 else np.tanh(u)
    if act == RELU:
        return np.maximum(u, 0)
    if act == SIGMOID:
        return sigmoid(u)
    return u.copy()


def activation_slope(act, a):
    """act'(u) written in terms of the output a = act(u)."""
    if act == TANH:
        return 1 - a * a
    if act == RELU:
        return (a > 0).astype(a.dtype)
    if act == SIGMOID:
        return a * (1 - a)
    return np.ones_like(a)


def sigmoid(x, exp=np.exp):
    """1 / (1 + exp(-x)) without overflow for large |x|: (1 or e) / (1 + e), e = exp(-|x|)."""
    e = exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1 + e)


def row_losses(loss, logits, T, divisor):
    """Per-sample loss (J is their weighted mean). ``T`` is one-hot for cross-entropy, the
    targets else; the other losses sum a term per output and divide by ``divisor``
    (codes.py, "losses")."""
    if loss == CROSS_ENTROPY:
        shift = logits.max(axis=1, keepdims=True)
        logsumexp = np.log(np.exp(logits - shift).sum(axis=1)) + shift[:, 0]
        return logsumexp - (T * logits).sum(axis=1)
    if loss == MSE:
        terms = (logits - T) ** 2
    elif loss == POISSON:
        terms = np.exp(logits) - T * logits
    else:  # binary cross-entropy with logits, one sigmoid per output: softplus(z) - t z
        terms = np.maximum(logits, 0) - T * logits + np.log1p(np.exp(-np.abs(logits)))
    return terms.sum(axis=1) / divisor


def loss_state(loss, logits, T):
    """What a row's loss slope and loss changes are computed from: softmax(logits) for
    cross-entropy, sigmoid(logits) for binary cross-entropy, exp(logits) (the predicted mean)
    for poisson, the residual logits - T for mse."""
    if loss == CROSS_ENTROPY:
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)
    if loss == MSE:
        return logits - T
    if loss == POISSON:
        return np.exp(logits)
    return sigmoid(logits)


def row_loss_gradients(loss, q, T, divisor):
    """Each row's d(row loss)/dlogits, from the loss state q."""
    if loss == MSE:
        return 2 * q / divisor
    if loss == CROSS_ENTROPY:
        return q - T
    return (q - T) / divisor  # binary cross-entropy, poisson


def row_loss_changes(loss, z, q, T, rowloss, dz, divisor):
    """Each row's loss change when its logits z move by dz, from the cached state q and losses.
    A difference of two nearly equal losses would lose the digits of a small change, so:
    mse: sum(dz * (2 (z - t) + dz)) / divisor; poisson: sum(q expm1(dz) - t dz) / divisor, exact
    for any dz; cross-entropy: log1p(sum(q * expm1(dz))) - t @ dz and binary cross-entropy:
    sum(log1p(q expm1(dz)) - t dz) / divisor, exact for any dz and used while |dz| <=
    MODERATE_CHANGE; beyond, the row's loss is recomputed."""
    if loss == MSE:
        return (dz * (2 * q + dz)).sum(axis=1) / divisor
    if loss == POISSON:
        return (q * np.expm1(dz) - T * dz).sum(axis=1) / divisor
    moderate = np.abs(dz).max(axis=1) <= MODERATE_CHANGE
    with np.errstate(over="ignore", invalid="ignore"):
        if loss == CROSS_ENTROPY:
            change = np.log1p((q * np.expm1(dz)).sum(axis=1)) - (T * dz).sum(axis=1)
        else:
            change = (np.log1p(q * np.expm1(dz)) - T * dz).sum(axis=1) / divisor
    return np.where(moderate, change, row_losses(loss, z + dz, T, divisor) - rowloss)


def weight_penalty(net):
    """alpha / 2 · Σ_l ‖W_l‖², the L2 penalty times n (J holds it divided by the weight sum n)."""
    return 0.5 * net.alpha * sum((weights(net.params, net.table, l) ** 2).sum()
                                 for l in range(len(net.table)))


def activation_change(act, u, a, du):
    """act(u + du) - act(u) where a = act(u). Small moves go through identities free of
    cancellation: tanh: t (1 - a²) / (1 + a t) with t = tanh(du); sigmoid: a (1 - a) e / (1 + a e)
    with e = expm1(du); identity: du; relu: du where u and u + du are both positive."""
    if act == IDENTITY:
        return du.copy()
    direct = activate(act, u + du) - a
    if act == RELU:
        return np.where((u > 0) & (u + du > 0), du, direct)
    if act == TANH:
        t = np.tanh(du)
        small = t * (1 - a * a) / (1 + a * t)
    else:
        e = np.expm1(du)
        small = a * (1 - a) * e / (1 + a * e)
    return np.where(np.abs(du) <= SMALL_CHANGE, small, direct)


# ---------------------------------------------------------------- the kernels
def forward(net, cache, batch_stats):
    """Fill cache.Z, A (and Zhat) for the whole network at net.params. With ``batch_stats``
    BatchNorm normalises with (and stores in cache.mean, istd) the batch's mean and
    1/sqrt(biased var + eps); else with the ones cache.mean, istd hold (evaluation)."""
    table, N, n_layers = net.table, len(cache.X), len(net.table)
    for l in range(n_layers):
        W, b, gamma, beta = layer_params(net.params, table, l)
        z = block(cache.Z, N, table, l)
        z[:] = layer_input(cache, table, l) @ W + b
        if l == n_layers - 1:
            break  # z is the logits: no BatchNorm, no activation
        u = z
        if gamma is not None:
            mean, istd = columns(cache.mean, table, l), columns(cache.istd, table, l)
            if batch_stats:
                _, mean[:], istd[:] = batch_normalise(z)
            zhat = block(cache.Zhat, N, table, l)
            zhat[:] = (z - mean) * istd
            u = gamma * zhat + beta
        block(cache.A, N, table, l)[:] = activate(net.act, u)


def loss(net, cache, state):
    """J = the weighted mean of the per-sample losses of the logits (the last layer's block of
    cache.Z) against state.T, for the loss ``net.loss``, plus the L2 penalty: with n =
    state.weight_sum, J = Σ_r weight_r rowloss_r / n + alpha / (2 n) Σ_l ‖W_l‖². Fills
    state.rowloss (the per-sample losses, unweighted), state.G = dJ/dlogits (weighted) and
    state.Q (n_out, N), the transposed loss state (see loss_state) that loss changes are
    computed from."""
    logits, T, weight = output_logits(net, cache), state.T, state.weight
    n = state.weight_sum[0]
    state.rowloss[:] = row_losses(net.loss, logits, T, net.output_divisor)
    q = loss_state(net.loss, logits, T)
    state.G[:] = row_loss_gradients(net.loss, q, T, net.output_divisor) * weight[:, None] / n
    state.Q[:] = q.T
    J = (weight * state.rowloss).sum() / n
    if net.alpha != 0:
        J += weight_penalty(net) / n
    return J


def batch_normalise(z):
    """Training-mode BatchNorm statistics of each column: (zhat, mean, istd)."""
    mean = z.mean(axis=0)
    istd = 1 / np.sqrt(((z - mean) ** 2).mean(axis=0) + BN_EPS)
    return (z - mean) * istd, mean, istd


def batchnorm_change(zhat, istd, dz):
    """zhat(z + dz) - zhat(z) for training-mode BatchNorm, column by column, without the
    cancellation of renormalising and subtracting: with m = mean(dz), the variance grows by
    var·x where x = 2 istd mean(zhat dz) + istd² mean((dz - m)²), so istd becomes istd/√(1+x) and
    zhat(z + dz) - zhat(z) = zhat (1/√(1+x) - 1) + (dz - m) istd/√(1+x)."""
    centred = dz - dz.mean(axis=0)
    x = 2 * istd * (zhat * dz).mean(axis=0) + istd ** 2 * (centred ** 2).mean(axis=0)
    root = np.sqrt(1 + x)
    return zhat * (-x / (root * (1 + root))) + centred * (istd / root)


def batchnorm_jacobian(dzhat, zhat, istd):
    """The Jacobian of training-mode BatchNorm, column by column, applied to dzhat. It is
    symmetric, so it maps dJ/dzhat to dJ/dz (reverse mode) and a tangent dz to dzhat (forward)."""
    return istd * (dzhat - dzhat.mean(axis=0) - zhat * (dzhat * zhat).mean(axis=0))


def backprop(net, cache, state, grad, scratch, first):
    """grad = dJ/dparams by reverse mode, from the cached forward pass (cache) and state.G =
    dJ/dlogits, plus the L2 penalty's alpha / n · W (n = state.weight_sum), for layers first ..
    last (first = 0: the whole gradient; the rest of grad is left as it was). (scratch.work1,
    work2 are the compiled twins' work space; unused here.)"""
    table, N = net.table, len(cache.X)
    delta = state.G  # dJ/dz of the current layer
    for l in range(len(table) - 1, first - 1, -1):
        gW, gb, _, _ = layer_params(grad, table, l)
        gW[:] = layer_input(cache, table, l).T @ delta
        if net.alpha != 0:
            # the penalty's alpha / (2 n) ‖W‖² adds alpha / n · W
            gW += (net.alpha / state.weight_sum[0]) * weights(net.params, table, l)
        gb[:] = delta.sum(axis=0)
        if l == first:
            break
        # step back into layer l-1: through the activation (du = dJ/du), then BatchNorm
        du = (delta @ weights(net.params, table, l).T) * activation_slope(
            net.act, block(cache.A, N, table, l - 1))
        _, _, gamma, _ = layer_params(net.params, table, l - 1)
        if gamma is None:
            delta = du
            continue
        zhat = block(cache.Zhat, N, table, l - 1)
        _, _, g_gamma, g_beta = layer_params(grad, table, l - 1)
        g_gamma[:] = (du * zhat).sum(axis=0)
        g_beta[:] = du.sum(axis=0)
        delta = batchnorm_jacobian(du * gamma, zhat, columns(cache.istd, table, l - 1))


def update_running_stats(net, cache, running):
    """BatchNorm's running statistics (running.mean, var) after a training batch of N =
    len(cache.X) samples whose statistics cache.mean, istd hold, as torch does: running = (1 -
    momentum) running + momentum * batch, with the unbiased batch variance."""
    table, N, momentum = net.table, len(cache.X), running.momentum
    for l in range(len(table) - 1):
        if table[l, OFF_GAMMA] < 0:
            continue  # a layer without BatchNorm
        istd = columns(cache.istd, table, l)
        # the biased variance 1/istd² - eps, made unbiased
        variance = (1 / istd ** 2 - BN_EPS) * N / max(N - 1, 1)
        running_mean, running_var = columns(running.mean, table, l), columns(running.var, table, l)
        running_mean[:] = (1 - momentum) * running_mean + momentum * columns(cache.mean, table, l)
        running_var[:] = (1 - momentum) * running_var + momentum * variance
