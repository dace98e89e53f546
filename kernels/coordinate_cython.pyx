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


cdef inline void next_layer(const floating* z_next, const floating* w_row, Py_ssize_t n_next,
                            const floating* col, const int64_t* rows, Py_ssize_t m,
                            floating* out) noexcept nogil:
    """out[:m] = base[rows] + outer(col[rows], W_{l+1}[i, :]), base being layer l+1's cached
    Dense output z_next, or zero (a tangent) when z_next is NULL."""
    cdef Py_ssize_t r, c
    for r in range(m):
        for c in range(n_next):
            out[r * n_next + c] = col[rows[r]] * w_row[c]
            if z_next != NULL:
                out[r * n_next + c] += z_next[rows[r] * n_next + c]


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
    next_layer(NULL, &params[table[l + 1, 2] + i * table[l + 1, 1]], table[l + 1, 1], &col[0],
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


cdef double loss_change_c(
        Py_ssize_t j, double delta, const floating[:, ::1] X, const floating[::1] params,
        const int64_t[:, ::1] table, int act, int loss, const floating[:, ::1] T,
        const floating[::1] Z, const floating[::1] A, const floating[::1] Zhat,
        const floating[::1] istd, const floating[::1] rowloss, floating[::1] col,
        int64_t[::1] rows, floating[::1] work1, floating[::1] work2) noexcept nogil:
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], r, c, m, layer, width, n_next
    cdef Coordinate at = decode(j, table)
    cdef Py_ssize_t l = at.layer, i = at.i
    cdef Py_ssize_t n_out = table[l, 1], off_gamma = table[l, 4], off_beta = table[l, 5]
    cdef Py_ssize_t c0 = table[l, 6]
    cdef const floating* a_in
    cdef const floating* z = &Z[N * c0]
    cdef floating* logits
    cdef floating* z_rows
    cdef floating* out
    cdef floating* stats
    cdef floating column_mean_istd[2]
    cdef floating g, b
    cdef double total = 0.0
    cdef bint batchnorm = off_gamma >= 0
    # col = the new column i of z (unchanged for gamma and beta)
    if at.kind == WEIGHT:
        a_in = layer_input(X, A, table, l)
        for r in range(N):
            col[r] = z[r * n_out + i] + delta * a_in[r * table[l, 0] + at.k]
    else:
        for r in range(N):
            col[r] = z[r * n_out + i] + (delta if at.kind == BIAS else 0.0)
    if l == n_layers - 1:
        # only column i of the logits moves, and only where it changed
        logits = &work1[0]
        for r in range(N):
            if col[r] == z[r * n_out + i]:
                continue
            for c in range(n_out):
                logits[c] = z[r * n_out + c]
            logits[i] = col[r]
            total += row_loss(loss, logits, &T[r, 0], n_out) - rowloss[r]
        return total / N
    if batchnorm:
        g = params[off_gamma + i] + (delta if at.kind == GAMMA else 0.0)
        b = params[off_beta + i] + (delta if at.kind == BETA else 0.0)
        if at.kind <= BIAS:
            # u = g * batchnorm(z_new) + b
            column_stats(&col[0], N, 1, 1, &column_mean_istd[0], &column_mean_istd[1])
            for r in range(N):
                col[r] = g * ((col[r] - column_mean_istd[0]) * column_mean_istd[1]) + b
        else:
            for r in range(N):
                col[r] = g * Zhat[N * c0 + r * n_out + i] + b
    # col = act(u_new) - a[:, i]: how much column i of the activations moves
    for r in range(N):
        col[r] = activate(act, col[r]) - A[N * c0 + r * n_out + i]
    m = moved_rows(&col[0], N, batchnorm, &rows[0])
    z_rows = &work1[0]
    n_next = table[l + 1, 1]
    next_layer(&Z[N * table[l + 1, 6]], &params[table[l + 1, 2] + i * n_next], n_next, &col[0],
               &rows[0], m, z_rows)
    for layer in range(l + 1, n_layers - 1):
        width = table[layer, 1]
        out = &work2[0] if (layer - l) % 2 == 1 else &work1[0]
        # the activations of the moved samples, in place of their z
        if table[layer, 4] >= 0:
            stats = <floating*>malloc(2 * width * sizeof(floating))
            column_stats(z_rows, m, width, width, stats, stats + width)
            normalise_and_activate(act, z_rows, m, width, z_rows, &params[table[layer, 4]],
                                   &params[table[layer, 5]], stats, stats + width, z_rows)
            free(stats)
        else:
            for r in range(m):
                for c in range(width):
                    z_rows[r * width + c] = activate(act, z_rows[r * width + c])
        n_next = table[layer + 1, 1]
        dense(z_rows, m, width, &params[table[layer + 1, 2]], &params[table[layer + 1, 3]],
              n_next, out)
        z_rows = out
    for r in range(m):
        total += row_loss(loss, z_rows + r * n_next, &T[rows[r], 0], n_next) - rowloss[rows[r]]
    return total / N


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
                floating[::1] col, int64_t[::1] rows, floating[::1] work1, floating[::1] work2):
    """J(θ + delta e_j) − J(θ) with θ unchanged; see coordinate_numpy.loss_change."""
    cdef double change
    with nogil:
        change = loss_change_c(j, delta, X, params, table, act, loss, T, Z, A, Zhat, istd,
                               rowloss, col, rows, work1, work2)
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
                               double eps, floating[::1] grad, floating[::1] col,
                               int64_t[::1] rows, floating[::1] work1, floating[::1] work2):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated incrementally."""
    cdef Py_ssize_t j
    cdef double up, down
    with nogil:
        for j in range(params.shape[0]):
            up = loss_change_c(j, eps, X, params, table, act, loss, T, Z, A, Zhat, istd, rowloss,
                               col, rows, work1, work2)
            down = loss_change_c(j, -eps, X, params, table, act, loss, T, Z, A, Zhat, istd,
                                 rowloss, col, rows, work1, work2)
            grad[j] = (up - down) / (2 * eps)
