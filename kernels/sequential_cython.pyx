"""The sequential sweep: the Cython twin of ``sequential_numpy.py`` and ``sequential_numba.py``
(read the numpy docstring first, then the numba one for the transposed layout; same entry
point, same results). ``sweep`` takes the bundles of ``bundles.py`` and unpacks them once into
the structs of bundles.pxi, adding two of its own: ``Transposed``, the transposed copy of the
cached point its steps keep up to date, and ``Columns``, a step's scratch columns;
docs/design.md, "The kernel interface"."""
import numpy as np

include "codes.pxi"
include "common.pxi"
include "bundles.pxi"
include "mlp.pxi"
include "incremental.pxi"

from libc.float cimport DBL_EPSILON, FLT_EPSILON


cdef struct Transposed:
    # The sweep's transposed copy of the cached point: each layer's (N, n_out) block of cache.Z,
    # A, Zhat stored as (n_out, N) at the same offset, so that a column is contiguous (see
    # sequential_numba); the loss state is state.Q, transposed already, times a per-sample scale
    # (cross-entropy's; it stays 1 for the other losses). The sample weights are state.weight's.
    const void* XT            # (n_in, N) the inputs
    const void* x_bounds      # (n_in,) max |X[:, k]|
    void* ZT
    void* AT
    void* ZhatT               # (1,) without BatchNorm
    const void* TT            # (n_out, N) the targets
    const int64_t* labels     # (N,) the targets' argmax (cross-entropy's labels)
    void* scale               # (N,) the scale of each sample's column of state.Q (softmax)
    void* work                # 4 blocks of stride: tangents (derivatives), changes (apply_step)
    Py_ssize_t stride         # N * the widest layer
    Py_ssize_t N


cdef struct Columns:
    # A step's scratch, each max(N, n_out) long: derivatives' first and second tangents t, s,
    # y and row; apply_step's du, u_old, old_zhat (layer_change) and logit_changes' e, S,
    # changes (the per-sample loss changes), z, tr (one sample's logits and targets) and q (its
    # loss state, float64); ones, the source column of b and beta.
    void* t
    void* s
    void* y
    void* row
    void* du
    void* u_old
    void* old_zhat
    void* e
    void* S
    void* changes
    void* z
    void* tr
    void* ones
    double* q


# ---------------------------------------------------------------- columns and tangents
cdef inline double activation_curve(int act, double a) noexcept nogil:
    """act''(u) written in terms of a = act(u)."""
    if act == TANH:
        return -2.0 * a * (1.0 - a * a)
    if act == SIGMOID:
        return a * (1.0 - a) * (1.0 - 2.0 * a)
    return 0.0


cdef void batchnorm_column_tangents(floating* t, floating* s, const floating* zhat, double istd,
                                    double gamma, bint second, Py_ssize_t N) noexcept nogil:
    """In place, one column: t, s (first and second tangents of z) become those of
    u = gamma * zhat + beta; see sequential_numpy.batchnorm_tangents."""
    cdef Py_ssize_t r
    cdef double mean_t = 0.0, rho = 0.0, var_t = 0.0, mean_s = 0.0, rho_s = 0.0
    for r in range(N):
        mean_t += t[r]
        rho += zhat[r] * t[r]
    mean_t /= N
    rho /= N
    if second:
        for r in range(N):
            var_t += (t[r] - mean_t) * (t[r] - mean_t)
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


cdef void through_activation(int act, const floating* a, floating* t, floating* s, bint second,
                             Py_ssize_t N) noexcept nogil:
    """In place: t, s tangents of u become those of a = act(u): s = act'' t² + act' s, t = act' t."""
    cdef Py_ssize_t r
    cdef double slope
    for r in range(N):
        slope = activation_slope(act, a[r])
        if second:
            s[r] = activation_curve(act, a[r]) * t[r] * t[r] + slope * s[r]
        t[r] = t[r] * slope


cdef const floating* source_column(Coordinate at, Network net, Transposed point,
                                   const floating* ones) noexcept nogil:
    """d(column i of z, or of u for gamma/beta)/dθ, read in place; see sequential_numba."""
    cdef Py_ssize_t N = point.N
    if at.kind == WEIGHT:
        if at.layer == 0:
            return (<const floating*>point.XT) + at.k * N
        return (<const floating*>point.AT) + N * (net.table[at.layer - 1][COL_OFF] + at.k)
    if at.kind == GAMMA:
        return (<const floating*>point.ZhatT) + N * (net.table[at.layer][COL_OFF] + at.i)
    return ones


# ---------------------------------------------------------------- reductions
cdef inline double dot(const floating* x, const floating* y, Py_ssize_t N) noexcept nogil:
    """x · y in four interleaved partial sums, so that the additions need not wait for each
    other (numba's twin lets LLVM reassociate instead)."""
    cdef Py_ssize_t r
    cdef double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0
    for r in range(0, N - 3, 4):
        t0 += x[r] * y[r]
        t1 += x[r + 1] * y[r + 1]
        t2 += x[r + 2] * y[r + 2]
        t3 += x[r + 3] * y[r + 3]
    for r in range(N - N % 4, N):
        t0 += x[r] * y[r]
    return (t0 + t1) + (t2 + t3)


# ---------------------------------------------------------------- derivatives
# The loss state: QT (n_out rows of N) and a per-sample scale; see sequential_numba.
cdef inline double slope(int loss, const floating* QT, const floating* scale, const floating* TT,
                         const floating* weight, Py_ssize_t c, Py_ssize_t r, double divisor,
                         Py_ssize_t N) noexcept nogil:
    """n dJ/dlogit_c of sample r (n the weights' sum): its weight times q - t (cross-entropy),
    (q - t) / divisor (binary cross-entropy, poisson) or 2 q / divisor (mse, q the residual)."""
    if loss == MSE:
        return 2.0 * QT[c * N + r] / divisor * weight[r]
    if loss == CROSS_ENTROPY:
        return (QT[c * N + r] * scale[r] - TT[c * N + r]) * weight[r]
    if divisor == 1.0:  # (no division by the usual 1)
        return (QT[c * N + r] - TT[c * N + r]) * weight[r]
    return (QT[c * N + r] - TT[c * N + r]) / divisor * weight[r]


cdef inline double curvature(int loss, const floating* QT, const floating* scale,
                             const floating* t, Py_ssize_t r, Py_ssize_t n_out, double divisor,
                             Py_ssize_t N) noexcept nogil:
    """Sample r's tᵀ H t, H the Hessian of its loss in the logits: diag(q) - q qᵀ
    (cross-entropy), 2 I / divisor (mse), diag(q (1 - q)) / divisor (binary cross-entropy),
    diag(q) / divisor (poisson)."""
    cdef Py_ssize_t c
    cdef double total = 0.0, first = 0.0, q
    if loss == MSE:
        for c in range(n_out):
            total += t[c] * t[c]
        return 2.0 * total / divisor
    if loss == CROSS_ENTROPY:
        for c in range(n_out):
            q = QT[c * N + r] * scale[r]
            first += q * t[c]
            total += q * t[c] * t[c]
        return total - first * first
    if loss == BINARY_CROSS_ENTROPY:
        for c in range(n_out):
            q = QT[c * N + r]
            total += q * (1.0 - q) * t[c] * t[c]
    else:
        for c in range(n_out):
            total += QT[c * N + r] * t[c] * t[c]
    return total if divisor == 1.0 else total / divisor


cdef (double, double) output_derivatives(Network net, LossState state, Transposed point,
                                         Columns cols, const floating* w,
                                         bint newton) noexcept nogil:
    """(g, h) of the loss when the logits move along w by t_r per sample (t, s: the tangents in
    cols); see sequential_numba."""
    cdef Py_ssize_t N = point.N, n_out = net.table[net.n_layers - 1][N_OUT], r, c
    cdef int loss = net.loss
    cdef const floating* QT = <const floating*>state.Q
    cdef const floating* scale = <const floating*>point.scale
    cdef const floating* TT = <const floating*>point.TT
    cdef const int64_t* labels = point.labels
    cdef const floating* weight = <const floating*>state.weight
    cdef const floating* t = <const floating*>cols.t
    cdef const floating* s = <const floating*>cols.s
    cdef floating* y = <floating*>cols.y
    cdef floating* row = <floating*>cols.row
    cdef double g, h, total, divisor = loss_divisor(net), n = (<const floating*>state.weight_sum)[0]
    cdef floating x
    # y = n dJ/dlogits @ w per sample: weight * ((q * scale - t) @ w) (cross-entropy),
    # weight * (q - t) @ w / divisor, or weight * 2 q @ w / divisor for mse
    for r in range(N):
        y[r] = 0.0
    for c in range(n_out):
        for r in range(N):
            y[r] += QT[c * N + r] * w[c]
    if loss == CROSS_ENTROPY:
        for r in range(N):
            y[r] = (y[r] * scale[r] - w[labels[r]]) * weight[r]
    elif loss == MSE:
        for r in range(N):
            y[r] = y[r] * (2.0 / divisor) * weight[r]
    else:
        # y -= T @ w
        for c in range(n_out):
            for r in range(N):
                y[r] -= TT[c * N + r] * w[c]
        if divisor == 1.0:
            for r in range(N):
                y[r] *= weight[r]
        else:
            for r in range(N):
                y[r] = y[r] / divisor * weight[r]
    g = dot(t, y, N)
    if not newton:
        return g / n, 0.0
    h = dot(s, y, N)
    # h += weight @ curvature(outer(t, w)); the diagonal Hessians (every loss but
    # cross-entropy's) in loops of their own, curvature's arithmetic without its dispatch
    if loss == CROSS_ENTROPY:
        for r in range(N):
            for c in range(n_out):
                row[c] = t[r] * w[c]
            h += weight[r] * curvature(loss, QT, scale, row, r, n_out, divisor, N)
    elif loss == MSE:
        for r in range(N):
            total = 0.0
            for c in range(n_out):
                x = t[r] * w[c]
                total += x * x
            h += weight[r] * (2.0 * total / divisor)
    elif loss == BINARY_CROSS_ENTROPY:
        for r in range(N):
            total = 0.0
            for c in range(n_out):
                x = t[r] * w[c]
                total += QT[c * N + r] * (1.0 - QT[c * N + r]) * x * x
            h += weight[r] * (total if divisor == 1.0 else total / divisor)
    else:
        for r in range(N):
            total = 0.0
            for c in range(n_out):
                x = t[r] * w[c]
                total += QT[c * N + r] * x * x
            h += weight[r] * (total if divisor == 1.0 else total / divisor)
    return g / n, h / n


cdef (double, double) block_loss_derivatives(Network net, LossState state, Transposed point,
                                             Columns cols, const floating* T1,
                                             const floating* S1, bint newton) noexcept nogil:
    """(g, h) of the loss when the logits have tangents T1 and second tangents S1 (n_out rows
    of N)."""
    cdef Py_ssize_t N = point.N, n_out = net.table[net.n_layers - 1][N_OUT], r, c
    cdef int loss = net.loss
    cdef const floating* QT = <const floating*>state.Q
    cdef const floating* scale = <const floating*>point.scale
    cdef const floating* TT = <const floating*>point.TT
    cdef const floating* weight = <const floating*>state.weight
    cdef floating* row = <floating*>cols.row
    cdef double g = 0.0, h = 0.0, divisor = loss_divisor(net)
    cdef double n = (<const floating*>state.weight_sum)[0]
    # g = (G * T1).sum(), G = n dJ/dlogits
    for c in range(n_out):
        for r in range(N):
            g += slope(loss, QT, scale, TT, weight, c, r, divisor, N) * T1[c * N + r]
    if not newton:
        return g / n, 0.0  # (S1 is not computed then)
    # h = (G * S1).sum() + weight @ curvature(T1.T)
    for c in range(n_out):
        for r in range(N):
            h += slope(loss, QT, scale, TT, weight, c, r, divisor, N) * S1[c * N + r]
    for r in range(N):
        for c in range(n_out):
            row[c] = T1[c * N + r]
        h += weight[r] * curvature(loss, QT, scale, row, r, n_out, divisor, N)
    return g / n, h / n


cdef (double, double) derivatives(Py_ssize_t j, bint newton, Network net, Cache cache,
                                  LossState state, Transposed point, Columns cols,
                                  floating* precision) noexcept nogil:
    """(g, h) of coordinate j at the cached point, by forward mode, the loss's share (the L2
    penalty's is sweep_c's); see sequential_numba. point.work: 4 blocks of point.stride."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = point.N, out = net.n_layers - 1, n_out = table[out][N_OUT]
    cdef Py_ssize_t r, c, m, width, n_next, stride = point.stride
    cdef Coordinate at = decode(j, net)
    cdef Py_ssize_t l = at.layer, i = at.i, off_gamma = table[at.layer][OFF_GAMMA]
    cdef int act = net.act, loss = net.loss
    cdef const floating* params = <const floating*>net.params
    cdef const floating* istd = <const floating*>cache.istd
    cdef const floating* AT = <const floating*>point.AT
    cdef const floating* ZhatT = <const floating*>point.ZhatT
    cdef const floating* QT = <const floating*>state.Q
    cdef const floating* scale = <const floating*>point.scale
    cdef const floating* TT = <const floating*>point.TT
    cdef const floating* weight = <const floating*>state.weight
    cdef floating* work = <floating*>point.work
    cdef floating* t = <floating*>cols.t
    cdef floating* s = <floating*>cols.s
    cdef floating* row = <floating*>cols.row
    cdef double g = 0.0, h = 0.0, divisor = loss_divisor(net)
    cdef double n = (<const floating*>state.weight_sum)[0]
    cdef floating* T1
    cdef floating* S1
    cdef floating* T_next
    cdef floating* S_next
    cdef const floating* w
    cdef const floating* v = source_column(at, net, point, <const floating*>cols.ones)
    for r in range(N):
        t[r] = v[r]
        s[r] = 0.0
    if l == out:
        # the logits' column i moves by t
        for r in range(N):
            g += slope(loss, QT, scale, TT, weight, i, r, divisor, N) * t[r]
        if newton:
            for c in range(n_out):
                row[c] = 0.0
            for r in range(N):
                row[i] = t[r]
                h += weight[r] * curvature(loss, QT, scale, row, r, n_out, divisor, N)
        return g / n, h / n
    if off_gamma >= 0 and at.kind <= BIAS:
        batchnorm_column_tangents(t, s, ZhatT + N * (table[l][COL_OFF] + i),
                                  istd[table[l][COL_OFF] + i], params[off_gamma + i], newton, N)
    through_activation(act, AT + N * (table[l][COL_OFF] + i), t, s, newton, N)
    width = table[l + 1][N_OUT]
    w = &params[table[l + 1][OFF_W] + i * width]
    if l + 1 == out:
        return output_derivatives(net, state, point, cols, w, newton)
    # deeper: the next layer's tangents are outer(w, t), then layer after layer; the second
    # tangents S only for the Newton step (for the gradient step s, hence S, stays 0)
    T1, S1 = work, work + stride
    for c in range(width):
        for r in range(N):
            T1[c * N + r] = w[c] * t[r]
    if newton:
        for c in range(width):
            for r in range(N):
                S1[c * N + r] = w[c] * s[r]
    for m in range(l + 1, out):
        width = table[m][N_OUT]
        for c in range(width):
            if table[m][OFF_GAMMA] >= 0:
                batchnorm_column_tangents(T1 + c * N, S1 + c * N,
                                          ZhatT + N * (table[m][COL_OFF] + c),
                                          istd[table[m][COL_OFF] + c],
                                          params[table[m][OFF_GAMMA] + c], newton, N)
            through_activation(act, AT + N * (table[m][COL_OFF] + c), T1 + c * N, S1 + c * N,
                               newton, N)
        # tangents of the next z: W_{m+1}ᵀ @ T1 (row-major (n_next, N))
        n_next = table[m + 1][N_OUT]
        T_next = work + (2 * stride if (m - l) % 2 == 1 else 0)
        S_next = T_next + stride
        gemm(c'T', c'N', <int>n_next, <int>N, <int>width, &params[table[m + 1][OFF_W]],
             <int>n_next, T1, <int>N, T_next, <int>N)
        if newton:
            gemm(c'T', c'N', <int>n_next, <int>N, <int>width, &params[table[m + 1][OFF_W]],
                 <int>n_next, S1, <int>N, S_next, <int>N)
        T1, S1 = T_next, S_next
    return block_loss_derivatives(net, state, point, cols, T1, S1, newton)


# ---------------------------------------------------------------- the step and the cache
# a sample whose scale leaves [2^-60, 2^60] is renormalised (see sequential_numba)
cdef double SCALE_LOW = 2.0 ** -60, SCALE_HIGH = 2.0 ** 60


cdef void refresh_loss_state(Network net, LossState state, Transposed point, Columns cols,
                             const floating* LT, Py_ssize_t r) noexcept nogil:
    """Sample r's loss and loss state recomputed from its logits LT[:, r], scale 1."""
    cdef Py_ssize_t N = point.N, n_out = net.table[net.n_layers - 1][N_OUT], c
    cdef const floating* TT = <const floating*>point.TT
    cdef floating* QT = <floating*>state.Q
    cdef floating* rowloss = <floating*>state.rowloss
    cdef floating* z = <floating*>cols.z
    cdef floating* tr = <floating*>cols.tr
    cdef double* q = cols.q
    for c in range(n_out):
        z[c] = LT[c * N + r]
        tr[c] = TT[c * N + r]
    rowloss[r] = row_loss_and_state(net.loss, z, tr, q, n_out, loss_divisor(net))
    for c in range(n_out):
        QT[c * N + r] = q[c]
    (<floating*>point.scale)[r] = 1.0


cdef inline void add_output_changes(floating* changes, floating* rowloss, double divisor,
                                    Py_ssize_t N) noexcept nogil:
    """The per-output losses' summed changes over the divisor, added to the rows' losses:
    changes /= divisor (skipped for 1, a sum); rowloss += changes."""
    cdef Py_ssize_t r
    if divisor != 1.0:
        for r in range(N):
            changes[r] /= divisor
    for r in range(N):
        rowloss[r] += changes[r]


cdef inline double move_of(const floating* D, const floating* w, const floating* d, bint rank1,
                           Py_ssize_t c, Py_ssize_t r, Py_ssize_t N) noexcept nogil:
    """How much column c of a layer's z (the logits, or a hidden layer in layer_change) moves
    at sample r: d_r w_c (rank1) or D[c, r]."""
    return d[r] * w[c] if rank1 else D[c * N + r]


cdef inline void logit_moves(const floating* D, const floating* w, const floating* d, bint rank1,
                             Py_ssize_t c, floating* x, Py_ssize_t N) noexcept nogil:
    """x = row c of the logits' move (one class, every sample)."""
    cdef Py_ssize_t r
    if rank1:
        for r in range(N):
            x[r] = d[r] * w[c]
    else:
        for r in range(N):
            x[r] = D[c * N + r]


cdef void expm1_of_moves(const floating* D, const floating* w, const floating* d, bint rank1,
                         Py_ssize_t c, int tier, floating* e, Py_ssize_t N) noexcept nogil:
    """e = expm1 of row c of the logits' move; see sequential_numba.expm1_of_moves."""
    cdef Py_ssize_t r
    if rank1 and tier == 0:
        for r in range(N):
            e[r] = expm1_tiny(d[r] * w[c])
    elif rank1 and tier == 1:
        for r in range(N):
            e[r] = expm1_small(d[r] * w[c])
    elif tier == 0:
        for r in range(N):
            e[r] = expm1_tiny(D[c * N + r])
    elif tier == 1:
        for r in range(N):
            e[r] = expm1_small(D[c * N + r])
    else:
        logit_moves(D, w, d, rank1, c, e, N)
        for r in range(N):
            e[r] = expm1(e[r])


cdef void sigmoid_changes(floating* q, const floating* e, floating* changes, int tier,
                          Py_ssize_t N) noexcept nogil:
    """In place, one output of binary cross-entropy whose logits moved by dz, e = expm1(dz):
    changes += log1p(q e) and q becomes sigmoid(z + dz) = (q + q e) / (1 + q e); one loop per
    tier of |dz| (0 tiny, 1 small, 2 moderate: see expm1_of_moves), so that each vectorises."""
    cdef Py_ssize_t r
    cdef floating x
    if tier == 0:
        for r in range(N):
            x = q[r] * e[r]
            changes[r] += log1p_tiny(x)
            q[r] = <floating>(q[r] + x) * <floating>(1.0 / (1.0 + x))
    elif tier == 1:
        for r in range(N):
            x = q[r] * e[r]
            changes[r] += log1p_small(x)
            q[r] = <floating>(q[r] + x) * <floating>(1.0 / (1.0 + x))
    else:
        for r in range(N):
            x = q[r] * e[r]
            changes[r] += log1p_small(x) if abs(x) <= 1.0 / 16 else log1p(x)
            q[r] = <floating>(q[r] + x) * <floating>(1.0 / (1.0 + x))


cdef void logit_changes(Network net, LossState state, Transposed point, Columns cols,
                        const floating* D, const floating* w, const floating* d, bint rank1,
                        double bound) noexcept nogil:
    """The logits move by D (n_out rows of N) or outer(w, d) (rank1); cols.changes receives the
    per-sample loss changes (unweighted). See sequential_numba.logit_changes; binary
    cross-entropy and poisson go output by output (a sigmoid, or an exponential, per output)."""
    cdef Py_ssize_t N = point.N, out = net.n_layers - 1, n_out = net.table[out][N_OUT]
    cdef int loss = net.loss
    cdef floating* LT = (<floating*>point.ZT) + N * net.table[out][COL_OFF]
    cdef const floating* TT = <const floating*>point.TT
    cdef const int64_t* labels = point.labels
    cdef floating* QT = <floating*>state.Q
    cdef floating* scale = <floating*>point.scale
    cdef floating* rowloss = <floating*>state.rowloss
    cdef floating* e = <floating*>cols.e
    cdef floating* changes = <floating*>cols.changes
    cdef floating* S = <floating*>cols.S
    cdef double* q = cols.q
    cdef Py_ssize_t r, c
    cdef double grow, old, shift, total, x, divisor = loss_divisor(net)
    cdef bint tiny = bound <= TINY_CHANGE, small = bound <= SMALL_CHANGE
    cdef int tier = 0 if tiny else 1 if small else 2
    for r in range(N):
        changes[r] = 0.0
    if loss == MSE:
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e, N)
            for r in range(N):
                changes[r] += e[r] * (2.0 * QT[c * N + r] + e[r]) / divisor
                QT[c * N + r] += e[r]
        for r in range(N):
            rowloss[r] += changes[r]
        return
    if loss == POISSON:
        # per output: changes += (q expm1(dz) - t dz) / divisor, exact for any dz. The logits
        # move by dz and q = exp(z) is taken from the moved logit: carried as q (1 + expm1(dz)),
        # it would lose its digits where that is near 0, and once it underflowed stay 0 for good
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e, N)
            for r in range(N):
                changes[r] -= TT[c * N + r] * e[r]
                LT[c * N + r] += e[r]
            expm1_of_moves(D, w, d, rank1, c, tier, e, N)
            for r in range(N):
                changes[r] += QT[c * N + r] * e[r]
                QT[c * N + r] = exp_double(LT[c * N + r])
        add_output_changes(changes, rowloss, divisor, N)
        return
    if loss == CROSS_ENTROPY and bound > MODERATE_CHANGE:
        for r in range(N):
            shift = move_of(D, w, d, rank1, 0, r, N)
            for c in range(n_out):
                shift = max(shift, move_of(D, w, d, rank1, c, r, N))
            total = 0.0
            for c in range(n_out):
                q[c] = QT[c * N + r] * scale[r] * exp(move_of(D, w, d, rank1, c, r, N) - shift)
                total += q[c]
            for c in range(n_out):
                QT[c * N + r] = q[c] / total
            scale[r] = 1.0
            changes[r] = log(total) + shift - move_of(D, w, d, rank1, labels[r], r, N)
            rowloss[r] += changes[r]
        return
    if bound > MODERATE_CHANGE:
        # binary cross-entropy: each sample's loss and state recomputed from its moved logits
        for r in range(N):
            old = rowloss[r]
            for c in range(n_out):
                LT[c * N + r] += move_of(D, w, d, rank1, c, r, N)
            refresh_loss_state(net, state, point, cols, LT, r)
            changes[r] = rowloss[r] - old
        return
    if loss == BINARY_CROSS_ENTROPY:
        # per output: changes += (log1p(q expm1(dz)) - t dz) / divisor; q = sigmoid(z + dz)
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e, N)
            for r in range(N):
                changes[r] -= e[r] * TT[c * N + r]
                LT[c * N + r] += e[r]
            expm1_of_moves(D, w, d, rank1, c, tier, e, N)
            sigmoid_changes(QT + c * N, e, changes, tier, N)
        add_output_changes(changes, rowloss, divisor, N)
        return
    # cross-entropy: S = sum_c q_c expm1(dz_c), QT grows to q exp(dz) (unnormalised: the scale
    # divides by 1 + S)
    for r in range(N):
        S[r] = 0.0
    for c in range(n_out):
        expm1_of_moves(D, w, d, rank1, c, tier, e, N)
        for r in range(N):
            grow = QT[c * N + r] * e[r]
            S[r] += grow
            QT[c * N + r] += grow
    for r in range(N):
        changes[r] = -move_of(D, w, d, rank1, labels[r], r, N)
    # each sample's change and new scale
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
            changes[r] += log1p_small(x) if abs(x) <= 1.0 / 16 else log1p(x)
            rowloss[r] += changes[r]
            scale[r] /= 1.0 + x
    for r in range(N):
        if not SCALE_LOW < scale[r] < SCALE_HIGH:
            for c in range(n_out):
                QT[c * N + r] *= scale[r]
            scale[r] = 1.0


cdef void column_statistics(const floating* z, floating* zhat, floating* mean, floating* istd,
                            Py_ssize_t N) noexcept nogil:
    """One column's training-mode BatchNorm: zhat = (z − mean) istd."""
    cdef Py_ssize_t r
    cdef double m = 0.0, var = 0.0, s
    for r in range(N):
        m += z[r]
    m /= N
    for r in range(N):
        var += (z[r] - m) * (z[r] - m)
    s = 1.0 / sqrt(var / N + BN_EPS)
    for r in range(N):
        zhat[r] = (z[r] - m) * s
    mean[0], istd[0] = m, s


cdef void move_column(int act, floating* z, floating* a, floating* d, const floating* D,
                      const floating* w, const floating* du, bint rank1, Py_ssize_t c,
                      double bound, Py_ssize_t N) noexcept nogil:
    """In place, column c of a layer without BatchNorm, in one pass over the samples; see
    sequential_numba.move_column."""
    cdef Py_ssize_t r
    cdef floating x, u
    cdef double t, e
    if (act == TANH or act == SIGMOID) and bound <= SMALL_CHANGE:
        if act == TANH:
            for r in range(N):
                x = move_of(D, w, du, rank1, c, r, N)
                z[r] += x
                t = tanh_small(x)
                d[r] = t * (1.0 - a[r] * a[r]) / (1.0 + a[r] * t)
                a[r] += d[r]
        else:
            for r in range(N):
                x = move_of(D, w, du, rank1, c, r, N)
                z[r] += x
                e = expm1_small(x)
                d[r] = a[r] * (1.0 - a[r]) * e / (1.0 + a[r] * e)
                a[r] += d[r]
        return
    for r in range(N):
        x = move_of(D, w, du, rank1, c, r, N)
        u = z[r]
        z[r] = u + x
        d[r] = activation_change(act, u, a[r], x)
        a[r] += d[r]


cdef floating* layer_change(Py_ssize_t m, const floating* w, const floating* du,
                            const floating* D, bint rank1, double bound, floating* changes,
                            floating* out, Network net, Cache cache, Transposed point,
                            Columns cols) noexcept nogil:
    """Hidden layer m's z moves by outer(w, du) (rank1) or by D (width rows of N); its
    activations' changes go to changes; returns the next layer's change in out; see
    sequential_numba.layer_change."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = point.N, width = table[m][N_OUT], cm = table[m][COL_OFF], c, r
    cdef Py_ssize_t off_g = table[m][OFF_GAMMA], off_bt = table[m][OFF_BETA]
    cdef const floating* params = <const floating*>net.params
    cdef floating* ZT = <floating*>point.ZT
    cdef floating* AT = <floating*>point.AT
    cdef floating* ZhatT = <floating*>point.ZhatT
    cdef floating* mean = <floating*>cache.mean
    cdef floating* istd = <floating*>cache.istd
    cdef floating* u_old = <floating*>cols.u_old
    cdef floating* old_zhat = <floating*>cols.old_zhat
    cdef floating* z
    cdef floating* a
    cdef floating* d
    cdef floating* zhat
    cdef double gamma, beta
    for c in range(width):
        z, a, d = ZT + N * (cm + c), AT + N * (cm + c), changes + c * N
        if off_g < 0:
            move_column(net.act, z, a, d, D, w, du, rank1, c, bound, N)
            continue
        # with BatchNorm the column's statistics follow its move, and d receives the change
        # of u = gamma * zhat + beta before the activation's
        zhat = ZhatT + N * (cm + c)
        gamma, beta = params[off_g + c], params[off_bt + c]
        for r in range(N):
            old_zhat[r] = zhat[r]
            u_old[r] = gamma * zhat[r] + beta
            z[r] += <floating>move_of(D, w, du, rank1, c, r, N)
        column_statistics(z, zhat, &mean[cm + c], &istd[cm + c], N)
        # d = gamma * (zhat - old_zhat)
        for r in range(N):
            d[r] = gamma * (zhat[r] - old_zhat[r])
        activation_changes(net.act, u_old, a, d, N, largest_magnitude(d, N))
        for r in range(N):
            a[r] += d[r]
    # out = W_{m+1}ᵀ @ changes, row-major (n_next, N)
    gemm(c'T', c'N', <int>table[m + 1][N_OUT], <int>N, <int>width, &params[table[m + 1][OFF_W]],
         <int>table[m + 1][N_OUT], changes, <int>N, out, <int>N)
    return out


cdef void apply_step(Py_ssize_t j, double delta, Network net, Cache cache, LossState state,
                     Transposed point, Columns cols, floating* precision) noexcept nogil:
    """θ_j += delta and the transposed cached point follows; cols.changes receives the
    per-sample loss changes. See sequential_numba.apply_step. point.work: 4 blocks of
    point.stride."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = point.N, out = net.n_layers - 1, n_out = table[out][N_OUT]
    cdef Py_ssize_t r, c, m, k, width, stride = point.stride
    cdef Coordinate at = decode(j, net)
    cdef Py_ssize_t l = at.layer, i = at.i, off_gamma = table[at.layer][OFF_GAMMA]
    cdef Py_ssize_t off_beta = table[at.layer][OFF_BETA], c0 = table[at.layer][COL_OFF]
    cdef int act = net.act
    cdef floating* params = <floating*>net.params
    cdef floating* mean = <floating*>cache.mean
    cdef floating* istd = <floating*>cache.istd
    cdef const floating* x_bounds = <const floating*>point.x_bounds
    cdef floating* work = <floating*>point.work
    cdef const floating* v = source_column(at, net, point, <const floating*>cols.ones)
    cdef floating* du = <floating*>cols.du
    cdef floating* u_old = <floating*>cols.u_old
    cdef floating* z = (<floating*>point.ZT) + N * (c0 + i)
    cdef floating* a = (<floating*>point.AT) + N * (c0 + i)
    cdef floating* zhat
    cdef floating* D
    cdef const floating* w
    cdef double gamma, beta, source_bound, bound
    # source_bound >= max |v|: X's column bound, 1 for a tanh or sigmoid input, b and beta
    if at.kind == WEIGHT and l == 0:
        source_bound = x_bounds[at.k]
    elif (at.kind == WEIGHT and (act == TANH or act == SIGMOID)) or at.kind == BIAS \
            or at.kind == BETA:
        source_bound = 1.0
    else:
        source_bound = largest_magnitude(v, N)
    if l == out:
        # only logit i moves, by delta v: rank 1 with w = e_i (in work)
        params[j] += delta
        for c in range(n_out):
            work[c] = 1.0 if c == i else 0.0
        for r in range(N):
            du[r] = delta * v[r]
        logit_changes(net, state, point, cols, <const floating*>NULL, work, du, True,
                      abs(delta) * source_bound)
        return
    if off_gamma >= 0:
        zhat = (<floating*>point.ZhatT) + N * (c0 + i)
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        for r in range(N):
            u_old[r] = gamma * zhat[r] + beta
        params[j] += delta
        if at.kind <= BIAS:
            for r in range(N):
                z[r] += delta * v[r]
            column_statistics(z, zhat, &mean[c0 + i], &istd[c0 + i], N)
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        # du = the change of u = gamma * zhat + beta
        for r in range(N):
            du[r] = gamma * zhat[r] + beta - u_old[r]
        bound = largest_magnitude(du, N) if at.kind <= BIAS else abs(delta) * source_bound
    else:
        params[j] += delta
        for r in range(N):
            u_old[r] = z[r]
            du[r] = delta * v[r]
            z[r] += du[r]
        bound = abs(delta) * source_bound
    # du becomes the change of column i of the activations (|change| <= |du| max |act'|)
    activation_changes(act, u_old, a, du, N, bound)
    bound *= 0.25 if act == SIGMOID else 1.0
    for r in range(N):
        a[r] += du[r]
    # the next layer's z moves by outer(w, du): the logits' move when it is the last layer;
    # else that change D is pushed through each later layer down to the logits
    width = table[l + 1][N_OUT]
    w = &params[table[l + 1][OFF_W] + i * width]
    bound *= largest_magnitude(w, width)
    if l + 1 == out:
        logit_changes(net, state, point, cols, <const floating*>NULL, w, du, True, bound)
        return
    # layer l + 1 moves by outer(w, du), never formed (rank 1); each later layer by the change
    # the one before returns. Work blocks: layer m's activation changes in 2k % 4, its product
    # in 2k % 4 + 1 (k = m - l - 1), so that none is read and written at once
    D = <floating*>NULL
    for m in range(l + 1, out):
        k = 2 * (m - l - 1) % 4
        D = layer_change(m, w, du, D, m == l + 1, bound, work + k * stride,
                         work + (k + 1) * stride, net, cache, point, cols)
        bound = largest_magnitude(D, table[m + 1][N_OUT] * N)
    logit_changes(net, state, point, cols, D, w, du, False, bound)


# ---------------------------------------------------------------- the sweep
cdef void transpose_into(const floating* buf, floating* out, Network net,
                         Py_ssize_t N) noexcept nogil:
    """out = buf with every layer's (N, n_out) block transposed to (n_out, N) (nothing when buf
    is empty: Zhat without BatchNorm)."""
    cdef Py_ssize_t l, r, c, n, c0
    if buf == NULL:
        return
    for l in range(net.n_layers):
        n, c0 = net.table[l][N_OUT], N * net.table[l][COL_OFF]
        for r in range(N):
            for c in range(n):
                out[c0 + c * N + r] = buf[c0 + r * n + c]


cdef void load_point(Network net, Cache cache, LossState state, floating* grad, Scratch scratch,
                     Transposed point) noexcept nogil:
    """A full forward pass, loss and backprop (grad) at net.params, and the transposed copies
    of the cached point (state.Q is transposed already; scale = 1)."""
    cdef Py_ssize_t N = cache.N, r
    forward_c(net, cache, True, <floating*>NULL)
    loss_c(net, cache, state, <floating*>NULL)
    backprop_c(net, cache, state, grad, scratch, 0)
    transpose_into(<const floating*>cache.Z, <floating*>point.ZT, net, N)
    transpose_into(<const floating*>cache.A, <floating*>point.AT, net, N)
    transpose_into(<const floating*>cache.Zhat, <floating*>point.ZhatT, net, N)
    for r in range(N):
        (<floating*>point.scale)[r] = 1.0


cdef (int, Py_ssize_t, long, long, double) sweep_c(
        Network net, Cache cache, LossState state, SweepPlan plan, Transposed point,
        Columns cols, floating* grad0, floating* grad, Scratch scratch) noexcept nogil:
    """One sweep; returns (status, steps, raised, flipped, J at the start); see
    sequential_numpy.sweep."""
    cdef Py_ssize_t N = cache.N, P = net.n_params, step, j, k
    cdef floating* params = <floating*>net.params
    cdef const floating* rowloss = <const floating*>state.rowloss
    cdef const floating* weight = <const floating*>state.weight
    cdef const floating* changes = <const floating*>cols.changes
    cdef double n = (<const floating*>state.weight_sum)[0]
    cdef double g, h, delta, total, level, old, start, lr = plan.lr
    cdef double eps = DBL_EPSILON if floating is double else FLT_EPSILON
    cdef bint newton = plan.rule != GRADIENT
    cdef Coordinate at
    cdef long raised = 0, flipped = 0
    cdef int status = OK
    cdef Py_ssize_t done = plan.n_steps
    load_point(net, cache, state, grad0, scratch, point)
    # n J (n the weights' sum): the weighted losses and the penalty, kept up to date by the
    # steps' changes
    level = dot(weight, rowloss, N)
    if net.alpha != 0:
        level += weight_penalty(net, <floating*>NULL)
    start = level / n
    for step in range(plan.n_steps):
        if plan.greedy:
            # Gauss–Southwell: a full forward and backward pass at the current point
            load_point(net, cache, state, grad, scratch, point)
            level = dot(weight, rowloss, N)
            if net.alpha != 0:
                level += weight_penalty(net, <floating*>NULL)
            # j = argmax(abs(grad))
            j = 0
            for k in range(P):
                if abs(grad[k]) > abs(grad[j]):
                    j = k
        else:
            j = plan.order[step]
        g, h = derivatives(j, newton, net, cache, state, point, cols, <floating*>NULL)
        if net.alpha != 0:
            # the L2 penalty's share: alpha θ_j / n, and alpha / n in h (a weight's)
            at = decode(j, net)
            g += penalty_slope(net, at, params[j]) / n
            if newton and at.kind == WEIGHT:
                h += net.alpha / n
        delta = -lr * g if plan.rule == GRADIENT else -g / max(h, 1.0 / lr)
        old = params[j]
        apply_step(j, delta, net, cache, state, point, cols, <floating*>NULL)
        # the change of n J: the weighted per-sample changes, and the penalty's (from θ_j = old)
        total = dot(weight, changes, N)
        if net.alpha != 0:
            total += penalty_change(net, at, old, delta)
        if not isfinite(total):
            params[j] = old
            status, done = NONFINITE_STEP, step
            break
        level += total
        raised += total > RAISED_ULPS * eps * abs(level)
        flipped += g * grad0[j] < 0.0
    return status, done, raised, flipped, start


def sweep(net, cache, state, plan, grad0, grad, scratch):
    """One sweep of plan.order (or, when plan.greedy, of greedily picked coordinates); grad0
    receives the gradient at the start, grad is the greedy order's work gradient. Returns
    (status, steps, raised, flipped, J at the start), status OK or NONFINITE_STEP; see
    sequential_numpy.sweep."""
    cdef Network network = unpack_network(net, True)
    cdef Cache cached = unpack_cache(cache, network, True)
    cdef LossState losses = unpack_loss_state(state, network, cached, True)
    cdef SweepPlan steps = unpack_plan(plan, network)
    cdef void* g0 = buffer_of(grad0, network, "grad0")
    cdef void* g = buffer_of(grad, network, "grad")
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    cdef Py_ssize_t N = cached.N, n_out = network.table[network.n_layers - 1][N_OUT]
    cdef Transposed point
    cdef Columns cols
    cdef (int, Py_ssize_t, long, long, double) result
    X, T, dtype, length = cache.X, state.T, net.params.dtype, max(N, n_out)
    # the transposed point (see Transposed); scale = 1 and the rest are filled by load_point
    XT, TT = np.ascontiguousarray(X.T), np.ascontiguousarray(T.T)
    labels = T.argmax(axis=1).astype(np.int64)
    x_bounds = np.abs(X).max(axis=0)
    ZT, AT = np.empty(cache.Z.shape[0], dtype), np.empty(cache.A.shape[0], dtype)
    ZhatT = np.empty(max(cache.Zhat.shape[0], 1), dtype)
    scale = np.ones(N, dtype)
    point.stride = N * max_width(network)
    point.N = N
    point_work = np.empty(4 * point.stride, dtype)
    point.XT = array_data(XT, network.dtype, 2, False, "XT")
    point.x_bounds = array_data(x_bounds, network.dtype, 1, False, "x_bounds")
    point.ZT = array_data(ZT, network.dtype, 1, True, "ZT")
    point.AT = array_data(AT, network.dtype, 1, True, "AT")
    point.ZhatT = array_data(ZhatT, network.dtype, 1, True, "ZhatT")
    point.TT = array_data(TT, network.dtype, 2, False, "TT")
    point.labels = <const int64_t*>array_data(labels, cnp.NPY_INT64, 1, False, "labels")
    point.scale = array_data(scale, network.dtype, 1, True, "scale")
    point.work = array_data(point_work, network.dtype, 1, True, "work")
    # a step's scratch columns (see Columns)
    t, s, y, row = (np.empty(length, dtype) for _ in range(4))
    du, u_old, old_zhat = (np.empty(length, dtype) for _ in range(3))
    e, S, changes, z, tr = (np.empty(length, dtype) for _ in range(5))
    ones, q = np.ones(length, dtype), np.empty(n_out)
    cols.t = array_data(t, network.dtype, 1, True, "t")
    cols.s = array_data(s, network.dtype, 1, True, "s")
    cols.y = array_data(y, network.dtype, 1, True, "y")
    cols.row = array_data(row, network.dtype, 1, True, "row")
    cols.du = array_data(du, network.dtype, 1, True, "du")
    cols.u_old = array_data(u_old, network.dtype, 1, True, "u_old")
    cols.old_zhat = array_data(old_zhat, network.dtype, 1, True, "old_zhat")
    cols.e = array_data(e, network.dtype, 1, True, "e")
    cols.S = array_data(S, network.dtype, 1, True, "S")
    cols.changes = array_data(changes, network.dtype, 1, True, "changes")
    cols.z = array_data(z, network.dtype, 1, True, "z")
    cols.tr = array_data(tr, network.dtype, 1, True, "tr")
    cols.ones = array_data(ones, network.dtype, 1, False, "ones")
    cols.q = <double*>array_data(q, cnp.NPY_DOUBLE, 1, True, "q")
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            result = sweep_c(network, cached, losses, steps, point, cols, <double*>g0,
                             <double*>g, work)
        else:
            result = sweep_c(network, cached, losses, steps, point, cols, <float*>g0,
                             <float*>g, work)
    return result
