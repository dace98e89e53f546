"""The sequential approach: one kernel call runs a whole sweep of exact single-coordinate steps,

    for j in order:  g = dJ/dθ_j at the current θ;  θ_j ← θ_j − lr·g   (or the Newton step)

keeping the cached point (activations, BatchNorm statistics, logits, per-sample losses and the
loss state) up to date after every step, so that each derivative costs only the work downstream
of its coordinate (docs/design.md, "Incremental re-evaluation"). The numpy reference of
``sequential_numba.py`` and ``sequential_cython.pyx``: every step written with whole-array
operations over all samples, for a reader to follow. ``sweep`` takes the bundles of
``bundles.py`` (docs/design.md, "The kernel interface").

A coordinate of layer l feeds column i of that layer (see incremental_numpy.decode and
source_column). Its first and second derivatives along e_j are pushed front to back in forward
mode (a tangent t and a second-order tangent s per activation): through Dense, t and s move
linearly; through the activation a = f(u): t_a = f'(u) t_u, s_a = f''(u) t_u² + f'(u) s_u;
through training-mode BatchNorm, see ``batchnorm_tangents``; at the loss, g = Σ G·t and
h = Σ G·s + Σ_r w_r t_rᵀ H_r t_r / n with H_r the per-sample loss Hessian in the logits, w_r the
sample weights and n their sum (G holds them already); a weight's L2 penalty adds alpha/n·θ_j
to g and alpha/n to h.

Step rules (plan.rule): ``GRADIENT`` θ_j ← θ_j − lr·g; ``NEWTON`` θ_j ← θ_j − g / max(h, 1/lr):
where the curvature along the coordinate is below 1/lr (including h ≤ 0, where Newton's step
would go uphill or be unbounded) the step falls back to the gradient step with lr, so lr caps
its size.

``sweep`` returns (status, steps, raised, flipped, J at the start; state.rowloss then holds the
per-sample losses at the end): status OK done, NONFINITE_STEP a step made the loss non-finite
(that step is undone, so ``net.params`` holds the last finite weights; the cached point is then
stale), ``steps`` the number of steps kept, ``raised`` how many of them increased J by more
than RAISED_ULPS units in |J|'s last place (the weighted per-sample changes and the
penalty's, exact where the logits move by a rank-1 term; smaller changes are round-off),
``flipped`` how many had a derivative of the opposite sign from the gradient at the start of
the sweep.
"""
import numpy as np

from .codes import (BIAS, CROSS_ENTROPY, GRADIENT, MSE, N_OUT, NONFINITE_STEP, OK, POISSON,
                    RAISED_ULPS, RELU, SIGMOID, TANH, WEIGHT)
from .incremental_numpy import penalty_change, penalty_slope, source_column
from .mlp_numpy import (activate, backprop, batch_normalise, batchnorm_jacobian, block, columns,
                        forward, layer_params, loss as evaluate_loss, loss_state, output_logits,
                        row_loss_changes, row_loss_gradients, weight_penalty, weights)


def activation_derivatives(act, a):
    """(f'(u), f''(u)) of the activation, written in terms of its output a = f(u)."""
    if act == TANH:
        slope = 1 - a * a
        return slope, -2 * a * slope
    if act == SIGMOID:
        slope = a * (1 - a)
        return slope, slope * (1 - 2 * a)
    if act == RELU:
        return (a > 0).astype(a.dtype), np.zeros_like(a)
    return np.ones_like(a), np.zeros_like(a)


def batchnorm_tangents(t, s, zhat, istd):
    """First and second derivatives of zhat along a path z(θ) with z' = t, z'' = s, column by
    column: zhat' = J t and zhat'' = J s + istd² (3ρ² zhat − 2ρ t_c − mean(t_c²) zhat), where J
    is batchnorm_jacobian, t_c = t − mean(t) and ρ = mean(zhat t) (the derivative of the
    column's standard deviation)."""
    centred = t - t.mean(axis=0)
    rho = (zhat * t).mean(axis=0)
    second = istd ** 2 * (3 * rho ** 2 * zhat - 2 * rho * centred - (centred ** 2).mean(axis=0) * zhat)
    return batchnorm_jacobian(t, zhat, istd), batchnorm_jacobian(s, zhat, istd) + second


def loss_curvature(loss, q, t, divisor):
    """Each row's t·H t, H the Hessian of its loss in the logits (q: loss_state rows)."""
    if loss == CROSS_ENTROPY:
        # H = diag(q) - q qᵀ
        return (q * t * t).sum(axis=1) - (q * t).sum(axis=1) ** 2
    if loss == MSE:
        return 2 * (t * t).sum(axis=1) / divisor
    if loss == POISSON:
        return (q * (t * t)).sum(axis=1) / divisor  # H = diag(exp(z)) / divisor
    return (q * (1 - q) * (t * t)).sum(axis=1) / divisor  # H = diag(q (1 - q)) / divisor


def derivatives(j, newton, net, cache, state):
    """(g, h): dJ/dθ_j and (when newton) d²J/dθ_j² at the cached point, by forward mode; the L2
    penalty adds alpha / n · θ_j to g and alpha / n to h for a weight."""
    params, table, act = net.params, net.table, net.act
    N, out = len(cache.X), len(table) - 1
    l, kind, k, i, v = source_column(j, net, cache)
    # t, s: the first and second tangents of layer l's z (W, b) or u (gamma, beta): only
    # column i moves, and linearly in θ_j, so s starts at 0
    t = np.zeros((N, table[l, N_OUT]), dtype=cache.X.dtype)
    t[:, i] = v
    s = np.zeros_like(t)
    for m in range(l, out):
        _, _, gamma, _ = layer_params(params, table, m)
        if gamma is not None and not (m == l and kind > BIAS):
            # t, s are tangents of z; BatchNorm turns them into tangents of u = gamma zhat + beta
            t, s = batchnorm_tangents(t, s, block(cache.Zhat, N, table, m),
                                      columns(cache.istd, table, m))
            t, s = gamma * t, gamma * s
        slope, curve = activation_derivatives(act, block(cache.A, N, table, m))
        t, s = slope * t, curve * t * t + slope * s
        W_next = weights(params, table, m + 1)
        t, s = t @ W_next, s @ W_next
    n = state.weight_sum[0]
    g = (state.G * t).sum() + penalty_slope(j, kind, net) / n
    if not newton:
        return g, 0.0
    curvature = (state.weight * loss_curvature(net.loss, state.Q.T, t, net.output_divisor)).sum()
    if kind == WEIGHT:
        curvature += net.alpha  # the penalty's alpha / (2 n) θ_j², times n
    return g, (state.G * s).sum() + curvature / n


def step_size(plan, g, h):
    """The move of θ_j: −lr g, or −g / max(h, 1/lr) for Newton."""
    if plan.rule == GRADIENT:
        return -plan.lr * g
    return -g / max(h, 1 / plan.lr)


def apply_step(j, delta, net, cache, state):
    """θ_j += delta and the cached point follows it; returns the change of n·J (n =
    state.weight_sum): the weighted sum of the per-sample loss changes plus the penalty's.
    Column i of layer l moves (z by delta·v for W and b; u for gamma and beta), then with
    BatchNorm its statistics; the next layer's z moves by outer(Δa_i, W_next[i]); every later
    layer is recomputed; the per-sample losses move by their exact changes (row_loss_changes)
    and the loss state is recomputed from the new logits."""
    params, table, act, T, rowloss = net.params, net.table, net.act, state.T, state.rowloss
    N, out = len(cache.X), len(table) - 1
    l, kind, k, i, v = source_column(j, net, cache)
    logits = output_logits(net, cache)
    old_logits = logits.copy()
    penalty = penalty_change(j, kind, delta, net)  # at θ_j before the step
    params[j] += delta
    z = block(cache.Z, N, table, l)
    if kind <= BIAS:
        z[:, i] += delta * v  # W, b move z's column i; gamma, beta only u's
    if l < out:
        _, _, gamma, beta = layer_params(params, table, l)
        u = z[:, i]
        if gamma is not None:
            # column i's batch statistics change with it
            zhat, mean_i, istd_i = batch_normalise(z[:, i:i + 1])
            columns(cache.mean, table, l)[i] = mean_i[0]
            columns(cache.istd, table, l)[i] = istd_i[0]
            block(cache.Zhat, N, table, l)[:, i] = zhat[:, 0]
            u = gamma[i] * zhat[:, 0] + beta[i]
        a = block(cache.A, N, table, l)
        new = activate(act, u)
        change = new - a[:, i]
        a[:, i] = new
        block(cache.Z, N, table, l + 1)[:] += np.outer(change, weights(params, table, l + 1)[i])
        # every later layer recomputed from its (moved) z
        for m in range(l + 1, out):
            z_m = block(cache.Z, N, table, m)
            _, _, gamma, beta = layer_params(params, table, m)
            u = z_m
            if gamma is not None:
                zhat, columns(cache.mean, table, m)[:], columns(cache.istd, table, m)[:] = \
                    batch_normalise(z_m)
                block(cache.Zhat, N, table, m)[:] = zhat
                u = gamma * zhat + beta
            block(cache.A, N, table, m)[:] = activate(act, u)
            W_next, b_next, _, _ = layer_params(params, table, m + 1)
            block(cache.Z, N, table, m + 1)[:] = block(cache.A, N, table, m) @ W_next + b_next
    changes = row_loss_changes(net.loss, old_logits, state.Q.T, T, rowloss, logits - old_logits,
                               net.output_divisor)
    rowloss += changes
    q = loss_state(net.loss, logits, T)
    state.Q[:] = q.T
    n = state.weight_sum[0]
    state.G[:] = row_loss_gradients(net.loss, q, T, net.output_divisor) * state.weight[:, None] / n
    return (state.weight * changes).sum() + penalty


def level(net, state):
    """n J at the cached point (n = state.weight_sum): the weighted per-sample losses plus the
    penalty."""
    total = (state.weight * state.rowloss).sum()
    return total + weight_penalty(net) if net.alpha != 0 else total


def load_point(net, cache, state, grad, scratch):
    """A full forward pass (batch statistics), loss and backprop (into grad) at net.params."""
    forward(net, cache, True)
    evaluate_loss(net, cache, state)
    backprop(net, cache, state, grad, scratch, 0)


def sweep(net, cache, state, plan, grad0, grad, scratch):
    """One sweep: len(plan.order) single-coordinate steps at the current point, coordinates
    taken from ``plan.order`` or, when ``plan.greedy``, the one with the largest |dJ/dθ_j| (a
    full backprop per step, into ``grad``). Starts from a full forward pass; grad0 receives the
    gradient at the start. Returns (status, steps, raised, flipped, J at the start); see the
    module docstring."""
    params, rowloss = net.params, state.rowloss
    load_point(net, cache, state, grad0, scratch)
    start = level(net, state) / state.weight_sum[0]
    raised = flipped = 0
    newton = plan.rule != GRADIENT
    for step in range(len(plan.order)):
        if plan.greedy:
            # Gauss–Southwell: a full forward and backward pass at the current point
            load_point(net, cache, state, grad, scratch)
            j = int(np.argmax(np.abs(grad)))
        else:
            j = plan.order[step]
        g, h = derivatives(j, newton, net, cache, state)
        old = params[j]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            change = apply_step(j, step_size(plan, g, h), net, cache, state)
        if not np.isfinite(rowloss.sum()):
            params[j] = old  # undo the step; the cached point stays stale
            return NONFINITE_STEP, step, raised, flipped, start
        raised += change > RAISED_ULPS * np.finfo(cache.X.dtype).eps * abs(level(net, state))
        flipped += g * grad0[j] < 0
    return OK, len(plan.order), raised, flipped, start
