"""The sequential sweep: the Cython twin of ``sequential_numpy.py`` and ``sequential_numba.py``
(read the numpy docstring first, then the numba one for the transposed layout; same arguments,
same results)."""
import numpy as np

include "common.pxi"
include "mlp.pxi"
include "coordinate.pxi"

from libc.float cimport DBL_EPSILON, FLT_EPSILON

cdef enum:
    GRADIENT = 0
    NEWTON = 1
    RAISED_ULPS = 4

SEQUENTIAL_CODES = {"GRADIENT": GRADIENT, "NEWTON": NEWTON, "RAISED_ULPS": RAISED_ULPS}


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


cdef const floating* source_column(Coordinate at, const floating* XT, const floating* AT,
                                   const floating* ZhatT, const int64_t[:, ::1] table,
                                   const floating* ones, Py_ssize_t N) noexcept nogil:
    """d(column i of z, or of u for gamma/beta)/dθ, read in place; see sequential_numba."""
    if at.kind == WEIGHT:
        return XT + at.k * N if at.layer == 0 else AT + N * (table[at.layer - 1, 6] + at.k)
    if at.kind == GAMMA:
        return ZhatT + N * (table[at.layer, 6] + at.i)
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


cdef inline double total_of(const floating* x, Py_ssize_t N) noexcept nogil:
    """Σ x in four interleaved partial sums."""
    cdef Py_ssize_t r
    cdef double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0
    for r in range(0, N - 3, 4):
        t0 += x[r]
        t1 += x[r + 1]
        t2 += x[r + 2]
        t3 += x[r + 3]
    for r in range(N - N % 4, N):
        t0 += x[r]
    return (t0 + t1) + (t2 + t3)


# ---------------------------------------------------------------- derivatives
# The loss state: QT (n_out rows of N) and a per-sample scale; see sequential_numba.
cdef inline double slope(int loss, const floating* QT, const floating* scale, const floating* TT,
                         Py_ssize_t c, Py_ssize_t r, Py_ssize_t n_out,
                         Py_ssize_t N) noexcept nogil:
    """N dJ/dlogit_c of sample r: q - t, or 2 q / n_out for mse."""
    if loss == MSE:
        return 2.0 * QT[c * N + r] / n_out
    return QT[c * N + r] * scale[r] - TT[c * N + r]


cdef inline double curvature(int loss, const floating* QT, const floating* scale,
                             const floating* t, Py_ssize_t r, Py_ssize_t n_out,
                             Py_ssize_t N) noexcept nogil:
    """Sample r's tᵀ H t, H the Hessian of its loss in the logits."""
    cdef Py_ssize_t c
    cdef double total = 0.0, first = 0.0, q
    if loss == MSE:
        for c in range(n_out):
            total += t[c] * t[c]
        return 2.0 * total / n_out
    if loss == CROSS_ENTROPY:
        for c in range(n_out):
            q = QT[c * N + r] * scale[r]
            first += q * t[c]
            total += q * t[c] * t[c]
        return total - first * first
    return QT[r] * (1.0 - QT[r]) * t[0] * t[0]


cdef (double, double) output_derivatives(int loss, const floating* w, const floating* ta,
                                         const floating* sa, const floating* QT,
                                         const floating* scale, const floating* TT,
                                         const int64_t* labels, bint newton, floating* y,
                                         floating* row, Py_ssize_t n_out,
                                         Py_ssize_t N) noexcept nogil:
    """(g, h) when the logits move along w by ta_r per sample; see sequential_numba."""
    cdef Py_ssize_t r, c
    cdef double g, h
    for r in range(N):
        y[r] = 0.0
    for c in range(n_out):
        for r in range(N):
            y[r] += QT[c * N + r] * w[c]
    if loss == CROSS_ENTROPY:
        for r in range(N):
            y[r] = y[r] * scale[r] - w[labels[r]]
    elif loss == MSE:
        for r in range(N):
            y[r] *= 2.0 / n_out
    else:
        for r in range(N):
            y[r] -= TT[r] * w[0]
    g = dot(ta, y, N)
    if not newton:
        return g / N, 0.0
    h = dot(sa, y, N)
    for r in range(N):
        for c in range(n_out):
            row[c] = ta[r] * w[c]
        h += curvature(loss, QT, scale, row, r, n_out, N)
    return g / N, h / N


cdef (double, double) block_loss_derivatives(int loss, const floating* T1, const floating* S1,
                                             const floating* QT, const floating* scale,
                                             const floating* TT, bint newton, floating* row,
                                             Py_ssize_t n_out, Py_ssize_t N) noexcept nogil:
    """(g, h) when the logits have tangents T1 and second tangents S1 (n_out rows of N)."""
    cdef Py_ssize_t r, c
    cdef double g = 0.0, h = 0.0, G
    for c in range(n_out):
        for r in range(N):
            G = slope(loss, QT, scale, TT, c, r, n_out, N)
            g += G * T1[c * N + r]
            h += G * S1[c * N + r]
    if not newton:
        return g / N, 0.0
    for r in range(N):
        for c in range(n_out):
            row[c] = T1[c * N + r]
        h += curvature(loss, QT, scale, row, r, n_out, N)
    return g / N, h / N


cdef (double, double) derivatives(Py_ssize_t j, bint newton, const floating[::1] params,
                                  const int64_t[:, ::1] table, int act, int loss,
                                  const floating* XT, const floating* AT, const floating* ZhatT,
                                  const floating[::1] istd, const floating* QT,
                                  const floating* scale, const floating* TT,
                                  const int64_t* labels, const floating* ones, floating* t,
                                  floating* s, floating* y, floating* row, floating* work,
                                  Py_ssize_t N) noexcept nogil:
    """(g, h) of coordinate j at the cached point, by forward mode; see sequential_numba.
    work: 4 blocks of widest * N."""
    cdef Py_ssize_t out = table.shape[0] - 1, n_out = table[out, 1], r, c, m, width, n_next
    cdef Py_ssize_t stride = N * max_width(table)
    cdef Coordinate at = decode(j, table)
    cdef Py_ssize_t l = at.layer, i = at.i, off_gamma = table[at.layer, 4]
    cdef double g = 0.0, h = 0.0
    cdef floating* T1
    cdef floating* S1
    cdef floating* T_next
    cdef floating* S_next
    cdef const floating* w
    cdef const floating* v = source_column(at, XT, AT, ZhatT, table, ones, N)
    for r in range(N):
        t[r] = v[r]
        s[r] = 0.0
    if l == out:
        # the logits' column i moves by t
        for r in range(N):
            g += slope(loss, QT, scale, TT, i, r, n_out, N) * t[r]
        if newton:
            for c in range(n_out):
                row[c] = 0.0
            for r in range(N):
                row[i] = t[r]
                h += curvature(loss, QT, scale, row, r, n_out, N)
        return g / N, h / N
    if off_gamma >= 0 and at.kind <= BIAS:
        batchnorm_column_tangents(t, s, ZhatT + N * (table[l, 6] + i), istd[table[l, 6] + i],
                                  params[off_gamma + i], newton, N)
    through_activation(act, AT + N * (table[l, 6] + i), t, s, newton, N)
    width = table[l + 1, 1]
    w = &params[table[l + 1, 2] + i * width]
    if l + 1 == out:
        return output_derivatives(loss, w, t, s, QT, scale, TT, labels, newton, y, row, n_out, N)
    # deeper: the next layer's tangents are outer(w, t), then layer after layer
    T1, S1 = work, work + stride
    for c in range(width):
        for r in range(N):
            T1[c * N + r] = w[c] * t[r]
            S1[c * N + r] = w[c] * s[r]
    for m in range(l + 1, out):
        width = table[m, 1]
        for c in range(width):
            if table[m, 4] >= 0:
                batchnorm_column_tangents(T1 + c * N, S1 + c * N, ZhatT + N * (table[m, 6] + c),
                                          istd[table[m, 6] + c], params[table[m, 4] + c],
                                          newton, N)
            through_activation(act, AT + N * (table[m, 6] + c), T1 + c * N, S1 + c * N,
                               newton, N)
        # tangents of the next z: W_{m+1}ᵀ @ T1 (row-major (n_next, N))
        n_next = table[m + 1, 1]
        T_next = work + (2 * stride if (m - l) % 2 == 1 else 0)
        S_next = T_next + stride
        gemm(c'T', c'N', <int>n_next, <int>N, <int>width, &params[table[m + 1, 2]], <int>n_next,
             T1, <int>N, T_next, <int>N)
        gemm(c'T', c'N', <int>n_next, <int>N, <int>width, &params[table[m + 1, 2]], <int>n_next,
             S1, <int>N, S_next, <int>N)
        T1, S1 = T_next, S_next
    return block_loss_derivatives(loss, T1, S1, QT, scale, TT, newton, row, n_out, N)


cdef inline Py_ssize_t max_width(const int64_t[:, ::1] table) noexcept nogil:
    cdef Py_ssize_t l, widest = 0
    for l in range(table.shape[0]):
        widest = max(widest, table[l, 1])
    return widest


# ---------------------------------------------------------------- the step and the cache
# a sample whose scale leaves [2^-60, 2^60] is renormalised (see sequential_numba)
cdef double SCALE_LOW = 2.0 ** -60, SCALE_HIGH = 2.0 ** 60


cdef void refresh_loss_state(int loss, const floating* LT, const floating* TT, floating* QT,
                             floating* scale, floating* rowloss, Py_ssize_t r, double* q,
                             floating* z, floating* tr, Py_ssize_t n_out,
                             Py_ssize_t N) noexcept nogil:
    """Sample r's loss and loss state recomputed from its logits, scale 1."""
    cdef Py_ssize_t c
    for c in range(n_out):
        z[c] = LT[c * N + r]
        tr[c] = TT[c * N + r]
    rowloss[r] = row_loss_and_state(loss, z, tr, q, n_out)
    for c in range(n_out):
        QT[c * N + r] = q[c]
    scale[r] = 1.0


cdef inline double logit_move(const floating* D, const floating* w, const floating* d,
                              bint rank1, Py_ssize_t c, Py_ssize_t r,
                              Py_ssize_t N) noexcept nogil:
    """How much logit c of sample r moves: d_r w_c (rank1) or D[c, r]."""
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


cdef void logit_changes(int loss, floating* LT, const floating* TT, const int64_t* labels,
                        floating* QT, floating* scale, floating* rowloss, const floating* D,
                        const floating* w, const floating* d, bint rank1, double bound,
                        floating* e, floating* changes, floating* S, double* q, floating* z,
                        floating* tr, Py_ssize_t n_out, Py_ssize_t N) noexcept nogil:
    """The logits move by D (n_out rows of N) or outer(w, d); see
    sequential_numba.logit_changes."""
    cdef Py_ssize_t r, c
    cdef double grow, old, shift, total, x
    cdef bint tiny = bound <= TINY_CHANGE, small = bound <= SMALL_CHANGE
    for r in range(N):
        changes[r] = 0.0
    if loss == MSE:
        for c in range(n_out):
            logit_moves(D, w, d, rank1, c, e, N)
            for r in range(N):
                changes[r] += e[r] * (2.0 * QT[c * N + r] + e[r]) / n_out
                QT[c * N + r] += e[r]
        for r in range(N):
            rowloss[r] += changes[r]
        return
    if loss == CROSS_ENTROPY and bound > MODERATE_CHANGE:
        for r in range(N):
            shift = logit_move(D, w, d, rank1, 0, r, N)
            for c in range(n_out):
                shift = max(shift, logit_move(D, w, d, rank1, c, r, N))
            total = 0.0
            for c in range(n_out):
                q[c] = QT[c * N + r] * scale[r] * exp(logit_move(D, w, d, rank1, c, r, N) - shift)
                total += q[c]
            for c in range(n_out):
                QT[c * N + r] = q[c] / total
            scale[r] = 1.0
            changes[r] = log(total) + shift - logit_move(D, w, d, rank1, labels[r], r, N)
            rowloss[r] += changes[r]
        return
    if bound > MODERATE_CHANGE:
        for r in range(N):
            old = rowloss[r]
            LT[r] += logit_move(D, w, d, rank1, 0, r, N)
            refresh_loss_state(loss, LT, TT, QT, scale, rowloss, r, q, z, tr, n_out, N)
            changes[r] = rowloss[r] - old
        return
    for r in range(N):
        S[r] = 0.0
    for c in range(n_out):
        if loss != CROSS_ENTROPY:
            logit_moves(D, w, d, rank1, c, e, N)
            for r in range(N):
                changes[r] = -e[r] * TT[r]
                LT[r] += e[r]
        expm1_of_moves(D, w, d, rank1, c, 0 if tiny else 1 if small else 2, e, N)
        for r in range(N):
            grow = QT[c * N + r] * e[r]
            S[r] += grow
            QT[c * N + r] += grow
    if loss == CROSS_ENTROPY:
        for r in range(N):
            changes[r] = -logit_move(D, w, d, rank1, labels[r], r, N)
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
    if loss != CROSS_ENTROPY:
        # one logit: fold the scale back
        for r in range(N):
            QT[r] *= scale[r]
            scale[r] = 1.0
        return
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


cdef struct Scratch:
    # the sweep's scratch (see sweep): ones, and du, e, u_old, S, changes (N each), the (n_out,)
    # rows z, t and q of a sample recomputed from its logits
    void* ones
    void* du
    void* e
    void* u_old
    void* S
    void* changes
    void* z
    void* t
    double* q


cdef floating* layer_change(Py_ssize_t m, floating* D, double bound, floating[::1] params,
                           const int64_t[:, ::1] table, int act, floating* ZT, floating* AT,
                           floating* ZhatT, floating[::1] mean, floating[::1] istd,
                           floating* u_old, floating* old_zhat, floating* out,
                           Py_ssize_t N) noexcept nogil:
    """Hidden layer m's z moves by D (width rows of N); returns the next layer's change in out;
    see sequential_numba.layer_change."""
    cdef Py_ssize_t width = table[m, 1], cm = table[m, 6], c, r
    cdef Py_ssize_t off_g = table[m, 4], off_bt = table[m, 5]
    cdef floating* z
    cdef floating* a
    cdef floating* d
    cdef floating* zhat
    cdef double gamma, beta, column_bound
    for c in range(width):
        z, a, d = ZT + N * (cm + c), AT + N * (cm + c), D + c * N
        column_bound = bound
        if off_g >= 0:
            # d becomes the change of u = gamma * zhat + beta
            zhat = ZhatT + N * (cm + c)
            gamma, beta = params[off_g + c], params[off_bt + c]
            for r in range(N):
                old_zhat[r] = zhat[r]
                u_old[r] = gamma * zhat[r] + beta
                z[r] += d[r]
            column_statistics(z, zhat, &mean[cm + c], &istd[cm + c], N)
            for r in range(N):
                d[r] = gamma * (zhat[r] - old_zhat[r])
            column_bound = largest_magnitude(d, N)
        else:
            for r in range(N):
                u_old[r] = z[r]
                z[r] += d[r]
        activation_changes(act, u_old, a, d, N, column_bound)
        for r in range(N):
            a[r] += d[r]
    # out = W_{m+1}ᵀ @ D, row-major (n_next, N)
    gemm(c'T', c'N', <int>table[m + 1, 1], <int>N, <int>width, &params[table[m + 1, 2]],
         <int>table[m + 1, 1], D, <int>N, out, <int>N)
    return out


cdef void apply_step(Py_ssize_t j, double delta, floating[::1] params,
                     const int64_t[:, ::1] table, int act, int loss, const floating* XT,
                     const floating* x_bounds, floating* ZT, floating* AT, floating* ZhatT,
                     floating[::1] mean, floating[::1] istd, const floating* TT,
                     const int64_t* labels, floating* QT, floating* scale,
                     floating[::1] rowloss, floating* work, Scratch ws,
                     Py_ssize_t N) noexcept nogil:
    """θ_j += delta and the transposed cached point follows; see sequential_numba.apply_step.
    work: 4 blocks of widest * N."""
    cdef Py_ssize_t out = table.shape[0] - 1, n_out = table[out, 1], r, c, m, width
    cdef Py_ssize_t stride = N * max_width(table)
    cdef Coordinate at = decode(j, table)
    cdef Py_ssize_t l = at.layer, i = at.i, off_gamma = table[at.layer, 4]
    cdef Py_ssize_t off_beta = table[at.layer, 5], c0 = table[at.layer, 6]
    cdef const floating* v = source_column(at, XT, AT, ZhatT, table, <floating*>ws.ones, N)
    cdef floating* du = <floating*>ws.du
    cdef floating* u_old = <floating*>ws.u_old
    cdef floating* LT = ZT + N * table[out, 6]
    cdef floating* z = ZT + N * (c0 + i)
    cdef floating* a = AT + N * (c0 + i)
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
        # only logit i moves, by delta v: rank 1 with w = e_i
        params[j] += delta
        for c in range(n_out):
            work[c] = 1.0 if c == i else 0.0
        for r in range(N):
            du[r] = delta * v[r]
        logit_changes(loss, LT, TT, labels, QT, scale, &rowloss[0], NULL, work, du, True,
                      abs(delta) * source_bound, <floating*>ws.e, <floating*>ws.changes,
                      <floating*>ws.S, ws.q, <floating*>ws.z, <floating*>ws.t, n_out, N)
        return
    if off_gamma >= 0:
        zhat = ZhatT + N * (c0 + i)
        gamma, beta = params[off_gamma + i], params[off_beta + i]
        for r in range(N):
            u_old[r] = gamma * zhat[r] + beta
        params[j] += delta
        if at.kind <= BIAS:
            for r in range(N):
                z[r] += delta * v[r]
            column_statistics(z, zhat, &mean[c0 + i], &istd[c0 + i], N)
        gamma, beta = params[off_gamma + i], params[off_beta + i]
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
    width = table[l + 1, 1]
    w = &params[table[l + 1, 2] + i * width]
    bound *= largest_magnitude(w, width)
    if l + 1 == out:
        logit_changes(loss, LT, TT, labels, QT, scale, &rowloss[0], NULL, w, du, True, bound,
                      <floating*>ws.e, <floating*>ws.changes, <floating*>ws.S, ws.q,
                      <floating*>ws.z, <floating*>ws.t, n_out, N)
        return
    D = work
    for c in range(width):
        for r in range(N):
            D[c * N + r] = w[c] * du[r]
    for m in range(l + 1, out):
        D = layer_change(m, D, bound, params, table, act, ZT, AT, ZhatT, mean, istd, u_old, du,
                         work + ((m - l) % 2) * stride, N)
        bound = largest_magnitude(D, table[m + 1, 1] * N)
    logit_changes(loss, LT, TT, labels, QT, scale, &rowloss[0], D, w, du, False, bound,
                  <floating*>ws.e, <floating*>ws.changes, <floating*>ws.S, ws.q,
                  <floating*>ws.z, <floating*>ws.t, n_out, N)


# ---------------------------------------------------------------- the sweep
cdef void transpose_into(const floating[::1] buf, Py_ssize_t N, const int64_t[:, ::1] table,
                         floating* out) noexcept nogil:
    """out = buf with every layer's (N, n_out) block transposed to (n_out, N)."""
    cdef Py_ssize_t l, r, c, n, c0
    if buf.shape[0] == 0:
        return
    for l in range(table.shape[0]):
        n, c0 = table[l, 1], N * table[l, 6]
        for r in range(N):
            for c in range(n):
                out[c0 + c * N + r] = buf[c0 + r * n + c]


cdef void load_point(const floating[:, ::1] X, const floating[:, ::1] T, floating[::1] params,
                     const int64_t[:, ::1] table, int act, int loss, floating[::1] Z,
                     floating[::1] A, floating[::1] Zhat, floating[::1] mean,
                     floating[::1] istd, floating[::1] rowloss, floating[:, ::1] G,
                     floating[:, ::1] Q, floating[::1] grad, floating[::1] work1,
                     floating[::1] work2, floating* ZT, floating* AT, floating* ZhatT,
                     floating* scale) noexcept nogil:
    """A full forward pass, loss and backprop (grad) at params, and the transposed copies of
    the cached point (Q is already transposed; scale = 1)."""
    cdef Py_ssize_t N = X.shape[0], out = table.shape[0] - 1, n_out = table[out, 1], r
    forward_c(X, params, table, act, True, Z, A, Zhat, mean, istd)
    loss_c(&Z[N * table[out, 6]], N, n_out, &T[0, 0], loss, &rowloss[0], &G[0, 0], &Q[0, 0])
    backprop_c(X, params, table, act, Z, A, Zhat, istd, &G[0, 0], grad, work1, work2, 0)
    transpose_into(Z, N, table, ZT)
    transpose_into(A, N, table, AT)
    transpose_into(Zhat, N, table, ZhatT)
    for r in range(N):
        scale[r] = 1.0


def sweep(const int64_t[::1] order, bint greedy, int rule, double lr,
          const floating[:, ::1] X, const floating[:, ::1] T, floating[::1] params,
          const int64_t[:, ::1] table, int act, int loss, floating[::1] Z, floating[::1] A,
          floating[::1] Zhat, floating[::1] mean, floating[::1] istd, floating[::1] rowloss,
          floating[:, ::1] G, floating[:, ::1] Q, floating[::1] grad0, floating[::1] grad,
          floating[::1] work1, floating[::1] work2):
    """One sweep; see sequential_numpy.sweep."""
    cdef Py_ssize_t N = X.shape[0], out = table.shape[0] - 1
    cdef Py_ssize_t n_out = table[out, 1], P = params.shape[0], step, j, k
    dtype = np.float64 if floating is double else np.float32
    cdef floating[:, ::1] XT = np.ascontiguousarray(np.asarray(X).T)
    cdef floating[:, ::1] TT = np.ascontiguousarray(np.asarray(T).T)
    cdef int64_t[::1] labels = np.asarray(T).argmax(axis=1).astype(np.int64)
    cdef floating[::1] x_bounds = np.abs(np.asarray(X)).max(axis=0)
    cdef floating[::1] ZT = np.empty(Z.shape[0], dtype), AT = np.empty(A.shape[0], dtype)
    cdef floating[::1] ZhatT = np.empty(max(Zhat.shape[0], 1), dtype)
    cdef floating[::1] scale = np.ones(N, dtype)
    cdef floating[::1] work = np.empty(4 * N * max_width(table), dtype)
    cdef floating[:, ::1] columns = np.empty((10, max(N, n_out)), dtype)
    cdef double[::1] q = np.empty(n_out)
    cdef Scratch ws
    cdef double g, h, delta, total, level, old, start
    cdef double eps = DBL_EPSILON if floating is double else FLT_EPSILON
    cdef bint newton = rule != GRADIENT
    cdef long raised = 0, flipped = 0
    cdef int status = 0
    cdef Py_ssize_t done = order.shape[0]
    # derivatives work in columns 0-3 (t, s, y, row), apply_step in 1-8 (ones stays 9)
    columns[9, :] = 1.0
    ws.ones, ws.du, ws.e, ws.u_old = &columns[9, 0], &columns[1, 0], &columns[2, 0], &columns[3, 0]
    ws.S, ws.changes, ws.z, ws.t = &columns[4, 0], &columns[5, 0], &columns[6, 0], &columns[7, 0]
    ws.q = &q[0]
    with nogil:
        load_point(X, T, params, table, act, loss, Z, A, Zhat, mean, istd, rowloss, G, Q, grad0,
                   work1, work2, &ZT[0], &AT[0], &ZhatT[0], &scale[0])
        level = total_of(&rowloss[0], N)  # N J, kept up to date by the steps' changes
        start = level / N
        for step in range(order.shape[0]):
            if greedy:
                # Gauss–Southwell: a full forward and backward pass at the current point
                load_point(X, T, params, table, act, loss, Z, A, Zhat, mean, istd, rowloss, G,
                           Q, grad, work1, work2, &ZT[0], &AT[0], &ZhatT[0], &scale[0])
                level = total_of(&rowloss[0], N)
                j = 0
                for k in range(P):
                    if abs(grad[k]) > abs(grad[j]):
                        j = k
            else:
                j = order[step]
            g, h = derivatives(j, newton, params, table, act, loss, &XT[0, 0], &AT[0],
                               &ZhatT[0], istd, &Q[0, 0], &scale[0], &TT[0, 0], &labels[0],
                               &columns[9, 0], &columns[0, 0], &columns[1, 0], &columns[2, 0],
                               &columns[3, 0], &work[0], N)
            delta = -lr * g if rule == GRADIENT else -g / max(h, 1.0 / lr)
            old = params[j]
            apply_step(j, delta, params, table, act, loss, &XT[0, 0], &x_bounds[0], &ZT[0],
                       &AT[0], &ZhatT[0], mean, istd, &TT[0, 0], &labels[0], &Q[0, 0],
                       &scale[0], rowloss, &work[0], ws, N)
            total = total_of(<floating*>ws.changes, N)
            if not isfinite(total):
                params[j] = old
                status, done = 1, step
                break
            level += total
            raised += total > RAISED_ULPS * eps * level
            flipped += g * grad0[j] < 0.0
    return status, done, raised, flipped, start
