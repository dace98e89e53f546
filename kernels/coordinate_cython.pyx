"""Per-coordinate work re-evaluated incrementally from a cached point: the Cython twin of
``coordinate_numpy.py`` and ``coordinate_numba.py`` (read the numpy docstring first; same
arguments, same results). Scratch space: ``col`` (N,) a column (the tangent in forward mode,
the input column a weight reads in loss_change), ``rows`` (N,) the samples that move,
``work1``/``work2`` (N * widest,) their downstream layers, compacted to ``m`` rows and
alternating between the two. The finite-difference kernel visits coordinates column by column
and works on contiguous copies of each column (load_column, load_inputs)."""
include "common.pxi"
include "coordinate.pxi"


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


# A column workspace C (4 rows of N): the activation input u, the activations a and
# (BatchNorm) the normalised values zhat of the hidden column a coordinate feeds, copied so
# that they are contiguous, and the column's change.
cdef enum:
    U = 0
    ACT = 1
    ZHAT = 2
    CHANGE = 3


cdef double load_column(const floating[::1] params, const int64_t[:, ::1] table, Py_ssize_t l,
                        Py_ssize_t i, Py_ssize_t N, const floating[::1] Z, const floating[::1] A,
                        const floating[::1] Zhat, floating* C) noexcept nogil:
    """C[U], C[ACT], C[ZHAT] = column i of hidden layer l; returns max |zhat| (0 without
    BatchNorm)."""
    cdef Py_ssize_t r, n_out = table[l, 1], start = N * table[l, 6], off_gamma = table[l, 4]
    cdef double g, b
    if off_gamma < 0:
        for r in range(N):
            C[U * N + r] = Z[start + r * n_out + i]
            C[ACT * N + r] = A[start + r * n_out + i]
        return 0.0
    g, b = params[off_gamma + i], params[table[l, 5] + i]
    for r in range(N):
        C[ZHAT * N + r] = Zhat[start + r * n_out + i]
        C[U * N + r] = g * Zhat[start + r * n_out + i] + b
        C[ACT * N + r] = A[start + r * n_out + i]
    return largest_magnitude(C + ZHAT * N, N)


cdef void load_inputs(const floating[:, ::1] X, const floating[::1] A,
                      const int64_t[:, ::1] table, Py_ssize_t l, floating* inputs,
                      double* bounds) noexcept nogil:
    """inputs (n_in rows of N) = the transposed input of layer l; bounds[k] = max |inputs[k]|."""
    cdef Py_ssize_t N = X.shape[0], n_in = table[l, 0], r, k
    cdef const floating* a_in = layer_input(X, A, table, l)
    for r in range(N):
        for k in range(n_in):
            inputs[k * N + r] = a_in[r * n_in + k]
    for k in range(n_in):
        bounds[k] = largest_magnitude(inputs + k * N, N)


# Taylor moments of a rank-1 change of the logits: when sample r's logits move by d_r w,
# sum_c q_rc expm1(d_r w_c) = sum_k d_r^k M[k, r] with M[k, r] = sum_c q_rc w_c^k / k!, exact to
# about one ulp while every |d_r w_c| <= SMALL_CHANGE (the degree-8 Taylor polynomial of expm1,
# summed over c). Every coordinate feeding column i of the last hidden layer shares w, so the
# moments are computed once per column and each coordinate then costs O(N), not O(N n_out).
cdef enum:
    MOMENTS = 9


cdef void rank1_moments(int loss, const floating[:, ::1] Q, const floating[:, ::1] T,
                        const floating* w, double* M) noexcept nogil:
    """M (MOMENTS rows of N) for logits moving along w: cross-entropy: M[0] = T @ w and M[k] =
    sum_c q_c w_c^k / k!; mse: M[1] = q @ w (q the residual) and M[2] = w @ w."""
    cdef Py_ssize_t n_out = Q.shape[0], N = Q.shape[1], r, c, k
    cdef double power, ww = 0.0
    for r in range(MOMENTS * N):
        M[r] = 0.0
    if loss == MSE:
        for c in range(n_out):
            ww += w[c] * w[c]
            for r in range(N):
                M[N + r] += Q[c, r] * w[c]
        for r in range(N):
            M[2 * N + r] = ww
        return
    for c in range(n_out):
        power = 1.0
        for k in range(1, MOMENTS):
            power *= w[c] / k  # w_c^k / k!
            for r in range(N):
                M[k * N + r] += Q[c, r] * power
    for r in range(N):
        for c in range(n_out):
            M[r] += T[r, c] * w[c]


cdef double rank1_change(int loss, const double* M, const floating* d, Py_ssize_t N,
                         Py_ssize_t n_out) noexcept nogil:
    """N J-change when sample r's logits move by d_r w, from rank1_moments: log1p(sum_k d^k M[k])
    - d M[0] per sample (cross-entropy), d (2 q @ w + d w @ w) / n_out (mse)."""
    cdef Py_ssize_t r
    cdef double x, s, total = 0.0
    if loss == MSE:
        for r in range(N):
            total += d[r] * (2.0 * M[N + r] + d[r] * M[2 * N + r])
        return total / n_out
    for r in range(N):
        x = d[r]
        s = x * (M[N + r] + x * (M[2 * N + r] + x * (M[3 * N + r] + x * (M[4 * N + r] + x * (
            M[5 * N + r] + x * (M[6 * N + r] + x * (M[7 * N + r] + x * M[8 * N + r])))))))
        total += log1p_small(s) - x * M[r]
    return total


cdef double logit_column_change(int loss, const floating* q, const floating* d, Py_ssize_t N,
                                Py_ssize_t n_out) noexcept nogil:
    """N J-change when logit i of sample r moves by d_r, every |d_r| <= SMALL_CHANGE, q = Q[i],
    leaving out the target term -sum_r t_ri d_r (added by the caller)."""
    cdef Py_ssize_t r
    cdef double total = 0.0
    if loss == MSE:
        for r in range(N):
            total += d[r] * (2.0 * q[r] + d[r])
        return total / n_out
    for r in range(N):
        total += log1p_small(q[r] * expm1_small(d[r]))
    return total


cdef double column_loss_change(
        Py_ssize_t l, Py_ssize_t kind, Py_ssize_t i, double delta, const floating* source,
        double source_bound, floating* C, const double* M, const floating[::1] params, const int64_t[:, ::1] table,
        int act, int loss, const floating[:, ::1] T, const floating[::1] Z,
        const floating[::1] A, const floating[::1] Zhat, const floating[::1] istd,
        const floating[::1] rowloss, const floating[:, ::1] Q, int64_t[::1] rows,
        floating[::1] work1, floating[::1] work2) noexcept nogil:
    """J(θ + delta e_j) − J(θ) for the coordinate (l, kind, ., i), given source = the input column
    it reads (W), C = load_column(l, i) (hidden layers), M = the rank1_moments of column i (last
    hidden layer) and source_bound >= the largest |column| the coordinate scales: max |source|
    (W), max |zhat| (gamma), 1 (b, beta); see coordinate_numpy.loss_change. Bounds on the
    changes, not scans of them, decide when the vectorised small-change paths apply."""
    cdef Py_ssize_t N = Q.shape[1], n_layers = table.shape[0], r, c, m, layer, width, cm, n_next
    cdef Py_ssize_t out = n_layers - 1, n_out = table[n_layers - 1, 1], off_gamma = table[l, 4]
    cdef const floating* logits = &Z[N * table[out, 6]]
    cdef const floating* w
    cdef const floating* gamma
    cdef const floating* beta
    cdef floating* col = C + CHANGE * N
    cdef floating* dz
    cdef floating* nxt
    cdef double total = 0.0, d, bound = abs(delta) * source_bound
    # col = the change of column i of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if kind == WEIGHT:
        for r in range(N):
            col[r] = delta * source[r]
    elif kind == GAMMA:
        for r in range(N):
            col[r] = delta * C[ZHAT * N + r]
    else:
        for r in range(N):
            col[r] = delta
    if l == out:
        # only column i of the logits moves
        if bound <= SMALL_CHANGE:
            total = logit_column_change(loss, &Q[i, 0], col, N, n_out)
            if loss != MSE:
                for r in range(N):
                    total -= T[r, i] * col[r]
            return total / N
        dz = &work1[0]
        for c in range(n_out):
            dz[c] = 0
        for r in range(N):
            d = col[r]
            if d == 0:
                continue
            if abs(d) <= MODERATE_CHANGE:
                total += logit_change(loss, Q[i, r], T[r, i], d, n_out)
            else:
                dz[i] = d
                total += row_loss_change(loss, logits + r * n_out, &Q[0, r], N, &T[r, 0],
                                         rowloss[r], dz, n_out)
                for c in range(n_out):  # row_loss_change overwrote dz
                    dz[c] = 0
        return total / N
    # col = the change of column i of the activations
    if off_gamma >= 0 and kind <= BIAS:
        # du = gamma * (zhat(z + dz) - zhat(z)): the column's statistics move too
        batchnorm_change(col, N, 1, 1, C + ZHAT * N, 1, &istd[table[l, 6] + i])
        for r in range(N):
            col[r] *= params[off_gamma + i]
        bound = largest_magnitude(col, N)
    activation_changes(act, C + U * N, C + ACT * N, col, N, bound)
    # |act(u + d) - act(u)| <= |d| max|act'|: 1, or 1/4 for sigmoid
    bound *= 0.25 if act == SIGMOID else 1.0
    n_next = table[l + 1, 1]
    w = &params[table[l + 1, 2] + i * n_next]
    if l + 1 == out and bound * largest_magnitude(w, n_out) <= SMALL_CHANGE:
        return rank1_change(loss, M, col, N, n_out) / N
    m = moved_rows(col, N, off_gamma >= 0, &rows[0])
    dz = &work1[0]
    next_layer(w, n_next, col, &rows[0], m, dz)
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
    """J(θ + delta e_j) − J(θ) with θ unchanged; see coordinate_numpy.loss_change. (col: room for
    the input column a W coordinate reads.)"""
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], r
    cdef Coordinate at = decode(j, table)
    cdef const floating* a_in
    cdef floating* C
    cdef double* M
    cdef double change, zhat_bound = 0.0, source_bound = 1.0
    with nogil:
        C = <floating*>malloc(4 * N * sizeof(floating))
        M = <double*>malloc(MOMENTS * N * sizeof(double))
        if at.layer < n_layers - 1:
            zhat_bound = load_column(params, table, at.layer, at.i, N, Z, A, Zhat, C)
        if at.layer == n_layers - 2:
            rank1_moments(loss, Q, T, &params[table[at.layer + 1, 2] + at.i * table[at.layer + 1, 1]], M)
        if at.kind == WEIGHT:
            a_in = layer_input(X, A, table, at.layer)
            for r in range(N):
                col[r] = a_in[r * table[at.layer, 0] + at.k]
            source_bound = largest_magnitude(&col[0], N)
        elif at.kind == GAMMA:
            source_bound = zhat_bound
        change = column_loss_change(at.layer, at.kind, at.i, delta, &col[0], source_bound, C, M,
                                    params, table, act, loss, T, Z, A, Zhat, istd, rowloss, Q,
                                    rows, work1, work2)
        free(C)
        free(M)
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
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated
    incrementally. Coordinates are visited column by column: those feeding one column share
    its load_column and, in the last hidden layer, its rank1_moments."""
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], l, i, k, kind, n_kinds, j, widest = 0
    cdef double up, down, zhat_bound, scale
    cdef floating* C
    cdef floating* inputs
    cdef double* M
    cdef double* bounds
    with nogil:
        for l in range(n_layers):
            widest = max(widest, table[l, 0])
        C = <floating*>malloc(4 * N * sizeof(floating))
        inputs = <floating*>malloc(widest * N * sizeof(floating))
        M = <double*>malloc(MOMENTS * N * sizeof(double))
        bounds = <double*>malloc(widest * sizeof(double))
        for l in range(n_layers):
            load_inputs(X, A, table, l, inputs, bounds)
            # the coordinates feeding column i: W[k, i] for every k, then b[i], gamma[i], beta[i]
            n_kinds = 2 if table[l, 4] < 0 else 4  # kinds are WEIGHT, BIAS, GAMMA, BETA = 0 .. 3
            for i in range(table[l, 1]):
                zhat_bound = 0.0
                if l < n_layers - 1:
                    zhat_bound = load_column(params, table, l, i, N, Z, A, Zhat, C)
                if l == n_layers - 2:
                    rank1_moments(loss, Q, T, &params[table[l + 1, 2] + i * table[l + 1, 1]], M)
                for kind in range(n_kinds):
                    for k in range(table[l, 0] if kind == WEIGHT else 1):
                        j = (table[l, 2] + k * table[l, 1] if kind == WEIGHT else table[l, 2 + kind]) + i
                        scale = bounds[k] if kind == WEIGHT else zhat_bound if kind == GAMMA else 1.0
                        up = column_loss_change(l, kind, i, eps, inputs + k * N, scale, C, M,
                                                params, table, act, loss, T, Z, A, Zhat, istd,
                                                rowloss, Q, rows, work1, work2)
                        down = column_loss_change(l, kind, i, -eps, inputs + k * N, scale, C, M,
                                                  params, table, act, loss, T, Z, A, Zhat, istd,
                                                  rowloss, Q, rows, work1, work2)
                        grad[j] = (up - down) / (2 * eps)
        free(C)
        free(inputs)
        free(M)
        free(bounds)
