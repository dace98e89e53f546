"""Per-coordinate work re-evaluated incrementally from a cached point: the Cython twin of
``coordinate_numpy.py`` and ``coordinate_numba.py`` (read the numpy docstring first; same
arguments, same results). Scratch space: ``col`` (N,) the moving column, ``rows`` (N,) the
samples that move, ``work1``/``work2`` (N * widest,) their downstream layers, compacted to ``m``
rows and alternating between the two."""
include "common.pxi"


cdef struct Coordinate:
    Py_ssize_t layer, kind, k, i


cdef inline Coordinate decode(Py_ssize_t j, const int64_t[:, ::1] table) noexcept nogil:
    """(layer, kind, k, i) of coordinate j; see coordinate_numpy.decode."""
    cdef Coordinate at
    cdef Py_ssize_t l = table.shape[0] - 1
    while table[l, 2] > j:
        l -= 1
    at.layer, at.k = l, 0
    if j < table[l, 3]:
        at.kind, at.k, at.i = WEIGHT, (j - table[l, 2]) // table[l, 1], (j - table[l, 2]) % table[l, 1]
    elif table[l, 4] < 0 or j < table[l, 4]:
        at.kind, at.i = BIAS, j - table[l, 3]
    elif j < table[l, 5]:
        at.kind, at.i = GAMMA, j - table[l, 4]
    else:
        at.kind, at.i = BETA, j - table[l, 5]
    return at


cdef inline const floating* layer_input(const floating[:, ::1] X, const floating[::1] A,
                                        const int64_t[:, ::1] table, Py_ssize_t l) noexcept nogil:
    # X for the first layer, the previous layer's activations after it
    if l == 0:
        return &X[0, 0]
    return &A[X.shape[0] * table[l - 1, 6]]


cdef inline Py_ssize_t moved_rows(const floating* col, Py_ssize_t N, bint batchnorm,
                                  int64_t* rows) noexcept nogil:
    """Fill rows with the samples a column change reaches downstream; return their count."""
    cdef Py_ssize_t r, m = 0
    for r in range(N):
        if batchnorm or col[r] != 0:
            rows[m] = r
            m += 1
    return m


cdef inline void next_layer(const floating* w_row, Py_ssize_t n_next, const floating* col,
                            const int64_t* rows, Py_ssize_t m, floating* out) noexcept nogil:
    """out[:m] = outer(col[rows], W_{l+1}[i, :]): how the next layer's z moves."""
    cdef Py_ssize_t r, c
    for r in range(m):
        for c in range(n_next):
            out[r * n_next + c] = col[rows[r]] * w_row[c]


cdef double coordinate_derivative_c(
        Py_ssize_t j, const floating[:, ::1] X, const floating[::1] params,
        const int64_t[:, ::1] table, int act, const floating[::1] Z, const floating[::1] A,
        const floating[::1] Zhat, const floating[::1] istd, const floating[:, ::1] G,
        floating[::1] col, int64_t[::1] rows, floating[::1] work1, floating[::1] work2) noexcept nogil:
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], r, c, m, layer, width, cm
    cdef Coordinate at = decode(j, table)
    cdef Py_ssize_t l = at.layer, i = at.i
    cdef Py_ssize_t n_out = table[l, 1], off_gamma = table[l, 4], c0 = table[l, 6]
    cdef const floating* a_in
    cdef floating* dz
    cdef floating* out
    cdef double total = 0.0
    cdef bint batchnorm = off_gamma >= 0
    # the tangent of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if at.kind == WEIGHT:
        a_in = layer_input(X, A, table, l)
        for r in range(N):
            col[r] = a_in[r * table[l, 0] + at.k]
    elif at.kind == GAMMA:
        for r in range(N):
            col[r] = Zhat[N * c0 + r * n_out + i]
    else:
        for r in range(N):
            col[r] = 1
    if l == n_layers - 1:
        # dJ = G[:, i] @ dz
        for r in range(N):
            total += G[r, i] * col[r]
        return total
    if batchnorm and at.kind <= BIAS:
        batchnorm_jacobian(&col[0], N, 1, 1, &Zhat[N * c0 + i], n_out, &istd[c0 + i],
                           &params[off_gamma + i])
    for r in range(N):
        col[r] *= activation_slope(act, A[N * c0 + r * n_out + i])
    m = moved_rows(&col[0], N, batchnorm, &rows[0])
    dz = &work1[0]
    next_layer(&params[table[l + 1, 2] + i * table[l + 1, 1]], table[l + 1, 1], &col[0],
               &rows[0], m, dz)
    for layer in range(l + 1, n_layers - 1):
        width, cm = table[layer, 1], table[layer, 6]
        if table[layer, 4] >= 0:
            batchnorm_jacobian(dz, N, width, width, &Zhat[N * cm], width, &istd[cm],
                               &params[table[layer, 4]])
        for r in range(m):
            for c in range(width):
                dz[r * width + c] *= activation_slope(act, A[N * cm + rows[r] * width + c])
        # dz = dz @ W_{layer+1}, into the other work buffer
        out = &work2[0] if (layer - l) % 2 == 1 else &work1[0]
        gemm(c'N', c'N', <int>m, <int>table[layer + 1, 1], <int>width, dz, <int>width,
             &params[table[layer + 1, 2]], <int>table[layer + 1, 1], out, <int>table[layer + 1, 1])
        dz = out
    # dJ = (G[rows] * dz).sum()
    width = table[n_layers - 1, 1]
    for r in range(m):
        for c in range(width):
            total += G[rows[r], c] * dz[r * width + c]
    return total


cdef void hidden_column_change(
        Coordinate at, double delta, const floating[:, ::1] X, const floating[::1] params,
        const int64_t[:, ::1] table, int act, const floating[::1] Z, const floating[::1] A,
        const floating[::1] Zhat, const floating[::1] istd, floating* col) noexcept nogil:
    """col = how much column i of layer l's activations moves when θ_j moves by delta, for a
    coordinate of a hidden layer; see coordinate_numpy.loss_change."""
    cdef Py_ssize_t N = X.shape[0], l = at.layer, i = at.i, r
    cdef Py_ssize_t n_in = table[l, 0], n_out = table[l, 1], off_gamma = table[l, 4]
    cdef Py_ssize_t off_beta = table[l, 5], start = N * table[l, 6]
    cdef const floating* a_in
    cdef double g, b
    # col = the change of column i of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if at.kind == WEIGHT:
        a_in = layer_input(X, A, table, l)
        for r in range(N):
            col[r] = delta * a_in[r * n_in + at.k]
    elif at.kind == GAMMA:
        for r in range(N):
            col[r] = delta * Zhat[start + r * n_out + i]
    else:
        for r in range(N):
            col[r] = delta
    if off_gamma < 0:
        for r in range(N):
            col[r] = activation_change(act, Z[start + r * n_out + i], A[start + r * n_out + i],
                                       col[r])
        return
    g, b = params[off_gamma + i], params[off_beta + i]
    if at.kind <= BIAS:
        # du = g * (zhat(z + dz) - zhat(z)): the column's statistics move too
        batchnorm_change(col, N, 1, 1, &Zhat[start + i], n_out, &istd[table[l, 6] + i])
        for r in range(N):
            col[r] *= g
    for r in range(N):
        col[r] = activation_change(act, g * Zhat[start + r * n_out + i] + b,
                                   A[start + r * n_out + i], col[r])


cdef double output_change_rank1(int loss, const floating[:, ::1] T, const floating[:, ::1] Q,
                                const floating* da, const floating* w, double* s,
                                double* v) noexcept nogil:
    """Sum over samples of the loss change when the logits move by outer(da, w), every move
    at most SMALL_CHANGE. The loops run down the samples (contiguous in Q) so they vectorise."""
    cdef Py_ssize_t N = Q.shape[1], n_out = Q.shape[0], r, c
    cdef double total = 0.0, ww = 0.0
    for r in range(N):
        s[r] = 0.0
    if loss == MSE:
        # mean over c of dz (2 q + dz) with dz = da w: (2 da (q @ w) + da² (w @ w)) / n_out
        for c in range(n_out):
            ww += w[c] * w[c]
            for r in range(N):
                s[r] += Q[c, r] * w[c]
        for r in range(N):
            total += da[r] * (2.0 * s[r] + da[r] * ww)
        return total / (n_out * N)
    # s = sum_c q_c expm1(da w_c), per sample
    for c in range(n_out):
        for r in range(N):
            s[r] += Q[c, r] * expm1_small(da[r] * w[c])
    for r in range(N):
        s[r] = log1p_small(s[r])
    # sum_r da_r (T_r @ w) = w @ (T.T @ da), with v = T.T @ da
    for c in range(n_out):
        v[c] = 0.0
    for r in range(N):
        for c in range(n_out):
            v[c] += T[r, c] * da[r]
    for r in range(N):
        total += s[r]
    for c in range(n_out):
        total -= w[c] * v[c]
    return total / N


cdef double loss_change_c(
        Py_ssize_t j, double delta, const floating[:, ::1] X, const floating[::1] params,
        const int64_t[:, ::1] table, int act, int loss, const floating[:, ::1] T,
        const floating[::1] Z, const floating[::1] A, const floating[::1] Zhat,
        const floating[::1] istd, const floating[:, ::1] Q, const floating[::1] rowloss,
        floating[::1] col, int64_t[::1] rows, floating[::1] work1, floating[::1] work2,
        double* scratch) noexcept nogil:
    """J(θ + delta e_j) − J(θ); see coordinate_numpy.loss_change. scratch: scratch_for()."""
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], r, c, m, layer, width, cm, n_next
    cdef Py_ssize_t out = n_layers - 1, n_out = table[n_layers - 1, 1]
    cdef Coordinate at = decode(j, table)
    cdef Py_ssize_t l = at.layer, i = at.i
    cdef const floating* logits = &Z[N * table[out, 6]]
    cdef const floating* a_in
    cdef const floating* w
    cdef const floating* gamma
    cdef const floating* beta
    cdef floating* dz
    cdef floating* nxt
    cdef double total = 0.0, d, largest = 0.0, w_largest = 0.0
    if l == out:
        # only column i of the logits moves, by delta * a_in[:, k] (W) or delta (b)
        a_in = layer_input(X, A, table, l)
        dz = &work1[0]
        for c in range(n_out):
            dz[c] = 0
        for r in range(N):
            d = delta * (a_in[r * table[l, 0] + at.k] if at.kind == WEIGHT else 1.0)
            if d == 0:
                continue
            if abs(d) <= MODERATE_CHANGE:
                total += logit_change(loss, Q[i, r], T[r, i], d, n_out)
            else:
                dz[i] = d
                total += row_loss_change(loss, logits + r * n_out, &Q[0, r], N, &T[r, 0],
                                         rowloss[r], dz, n_out)
                for c in range(n_out):
                    dz[c] = 0
        return total / N
    hidden_column_change(at, delta, X, params, table, act, Z, A, Zhat, istd, &col[0])
    n_next = table[l + 1, 1]
    w = &params[table[l + 1, 2] + i * n_next]
    if l + 1 == out:
        for r in range(N):
            largest = max(largest, abs(<double>col[r]))
        for c in range(n_out):
            w_largest = max(w_largest, abs(<double>w[c]))
        if largest * w_largest <= SMALL_CHANGE:
            return output_change_rank1(loss, T, Q, &col[0], w, scratch, scratch + N)
    m = moved_rows(&col[0], N, table[l, 4] >= 0, &rows[0])
    dz = &work1[0]
    next_layer(w, n_next, &col[0], &rows[0], m, dz)
    for layer in range(l + 1, out):
        width, cm = table[layer, 1], N * table[layer, 6]
        # dz becomes the change of the layer's activations, in place
        if table[layer, 4] >= 0:
            # du = gamma * (zhat(z + dz) - zhat(z)), all samples (m == N)
            gamma, beta = &params[table[layer, 4]], &params[table[layer, 5]]
            batchnorm_change(dz, m, width, width, &Zhat[cm], width, &istd[table[layer, 6]])
            for r in range(m):
                for c in range(width):
                    dz[r * width + c] = activation_change(
                        act, gamma[c] * Zhat[cm + r * width + c] + beta[c],
                        A[cm + r * width + c], gamma[c] * dz[r * width + c])
        else:
            for r in range(m):
                for c in range(width):
                    dz[r * width + c] = activation_change(act, Z[cm + rows[r] * width + c],
                                                          A[cm + rows[r] * width + c],
                                                          dz[r * width + c])
        # dz = da @ W_{layer+1}, into the other work buffer
        nxt = &work2[0] if (layer - l) % 2 == 1 else &work1[0]
        n_next = table[layer + 1, 1]
        gemm(c'N', c'N', <int>m, <int>n_next, <int>width, dz, <int>width,
             &params[table[layer + 1, 2]], <int>n_next, nxt, <int>n_next)
        dz = nxt
    for r in range(m):
        total += row_loss_change(loss, logits + rows[r] * n_out, &Q[0, rows[r]], N,
                                 &T[rows[r], 0], rowloss[rows[r]], dz + r * n_out, n_out)
    return total / N


cdef double* scratch_for(Py_ssize_t N, const int64_t[:, ::1] table) noexcept nogil:
    # room for output_change_rank1: N + n_out values
    return <double*>malloc((N + table[table.shape[0] - 1, 1]) * sizeof(double))


def coordinate_derivative(Py_ssize_t j, const floating[:, ::1] X, const floating[::1] params,
                          const int64_t[:, ::1] table, int act, const floating[::1] Z,
                          const floating[::1] A, const floating[::1] Zhat,
                          const floating[::1] istd, const floating[:, ::1] G, floating[::1] col,
                          int64_t[::1] rows, floating[::1] work1, floating[::1] work2):
    """dJ/dθ_j in forward mode; see coordinate_numpy.coordinate_derivative."""
    cdef double derivative
    with nogil:
        derivative = coordinate_derivative_c(j, X, params, table, act, Z, A, Zhat, istd, G, col,
                                             rows, work1, work2)
    return derivative


def loss_change(Py_ssize_t j, double delta, const floating[:, ::1] X,
                const floating[::1] params, const int64_t[:, ::1] table, int act, int loss,
                const floating[:, ::1] T, const floating[::1] Z, const floating[::1] A,
                const floating[::1] Zhat, const floating[::1] istd, const floating[::1] rowloss,
                const floating[:, ::1] Q, floating[::1] col, int64_t[::1] rows,
                floating[::1] work1, floating[::1] work2):
    """J(θ + delta e_j) − J(θ) with θ unchanged; see coordinate_numpy.loss_change."""
    cdef double change
    cdef double* scratch
    with nogil:
        scratch = scratch_for(X.shape[0], table)
        change = loss_change_c(j, delta, X, params, table, act, loss, T, Z, A, Zhat, istd, Q, rowloss,
                               col, rows, work1, work2, scratch)
        free(scratch)
    return change


def forward_mode_gradient(const floating[:, ::1] X, const floating[::1] params,
                          const int64_t[:, ::1] table, int act, const floating[::1] Z,
                          const floating[::1] A, const floating[::1] Zhat,
                          const floating[::1] istd, const floating[:, ::1] G, floating[::1] grad,
                          floating[::1] col, int64_t[::1] rows, floating[::1] work1,
                          floating[::1] work2):
    """grad[j] = coordinate_derivative(j) for every coordinate."""
    cdef Py_ssize_t j
    with nogil:
        for j in range(params.shape[0]):
            grad[j] = coordinate_derivative_c(j, X, params, table, act, Z, A, Zhat, istd, G, col,
                                              rows, work1, work2)


def finite_difference_gradient(const floating[:, ::1] X, const floating[::1] params,
                               const int64_t[:, ::1] table, int act, int loss,
                               const floating[:, ::1] T, const floating[::1] Z,
                               const floating[::1] A, const floating[::1] Zhat,
                               const floating[::1] istd, const floating[::1] rowloss,
                               const floating[:, ::1] Q, double eps, floating[::1] grad,
                               floating[::1] col, int64_t[::1] rows, floating[::1] work1,
                               floating[::1] work2):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated incrementally."""
    cdef Py_ssize_t j
    cdef double up, down
    cdef double* scratch
    with nogil:
        scratch = scratch_for(X.shape[0], table)
        for j in range(params.shape[0]):
            up = loss_change_c(j, eps, X, params, table, act, loss, T, Z, A, Zhat, istd, Q, rowloss,
                               col, rows, work1, work2, scratch)
            down = loss_change_c(j, -eps, X, params, table, act, loss, T, Z, A, Zhat, istd, Q, rowloss,
                                 col, rows, work1, work2, scratch)
            grad[j] = (up - down) / (2 * eps)
        free(scratch)
