"""Per-coordinate work re-evaluated incrementally from a cached point: the Cython twin of
``incremental_numpy.py`` and ``incremental_numba.py`` (read the numpy docstring first; same
entry points, same results). Each entry point takes the bundles of ``bundles.py`` and unpacks
them once into the structs of bundles.pxi (docs/design.md, "The kernel interface"). Scratch
space: ``scratch.column`` (N,) a column (the tangent in forward mode, the input column a weight
reads in loss_change), ``scratch.rows`` (N,) the samples that move, ``scratch.work1``/``work2``
(N * widest,) their downstream layers, compacted to ``m`` rows and alternating between the two.
The finite-difference kernel visits coordinates column by column and works on contiguous
copies of each column (load_column, load_inputs)."""
include "codes.pxi"
include "common.pxi"
include "bundles.pxi"
include "incremental.pxi"


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


# ---------------------------------------------------------------- a row's loss change
cdef inline double logit_change(int loss, double q, double t, double d,
                                double divisor) noexcept nogil:
    """A row's loss change when one logit moves by d, |d| <= MODERATE_CHANGE (any d for mse
    and poisson): the one-column case of row_loss_change (q, t: that logit's loss state and
    target)."""
    cdef double e, x
    if loss == MSE:
        return d * (2.0 * q + d) / divisor
    e = expm1_change(d)
    if loss == POISSON:
        return (q * e - t * d) / divisor
    x = q * e
    if loss == CROSS_ENTROPY:
        return log1p_change(x) - t * d
    return (log1p_change(x) - t * d) / divisor


cdef double general_row_loss_change(int loss, const floating* z, const floating* q,
                                    Py_ssize_t q_stride, const floating* t, double rowloss,
                                    floating* dz, double biggest, Py_ssize_t n_out,
                                    double divisor) noexcept nogil:
    """row_loss_change's less usual cases, kept out of line so that the usual ones inline
    (biggest = max |dz|): poisson's sum(q expm1(dz) - t dz) / divisor, exact for any dz; a move
    beyond MODERATE_CHANGE, the row's loss recomputed at z + dz (which dz then holds); binary
    cross-entropy's sum(log1p(q expm1(dz)) - t dz) / divisor with several outputs."""
    cdef Py_ssize_t c
    cdef double total = 0.0
    cdef double* q_new
    if loss == POISSON:
        for c in range(n_out):
            total += q[c * q_stride] * expm1_change(dz[c]) - t[c] * dz[c]
        return total / divisor
    if biggest > MODERATE_CHANGE:
        for c in range(n_out):
            dz[c] += z[c]
        q_new = <double*>malloc(n_out * sizeof(double))
        total = row_loss_and_state(loss, dz, t, q_new, n_out, divisor) - rowloss
        free(q_new)
        return total
    for c in range(n_out):
        total += log1p_change(q[c * q_stride] * expm1_change(dz[c])) - t[c] * dz[c]
    return total / divisor


cdef inline double row_loss_change(int loss, const floating* z, const floating* q,
                                   Py_ssize_t q_stride, const floating* t, double rowloss,
                                   floating* dz, Py_ssize_t n_out, double divisor) noexcept nogil:
    """One row's loss change when its logits z move by dz (dz is overwritten when the change
    is large); q[c * q_stride] is the row's loss state. See mlp_numpy.row_loss_changes."""
    cdef Py_ssize_t c
    cdef double total = 0.0, dot = 0.0, biggest = 0.0
    if loss == MSE:
        # sum(dz * (2 (z - t) + dz)) / divisor
        for c in range(n_out):
            total += dz[c] * (2.0 * q[c * q_stride] + dz[c])
        return total / divisor
    for c in range(n_out):
        biggest = max(biggest, abs(<double>dz[c]))
    if biggest > MODERATE_CHANGE or loss == POISSON or loss == BINARY_CROSS_ENTROPY and n_out > 1:
        return general_row_loss_change(loss, z, q, q_stride, t, rowloss, dz, biggest, n_out,
                                       divisor)
    # log1p(sum(q * expm1(dz))) - t @ dz: cross-entropy's, and binary cross-entropy's with one
    # output (then also sum(log1p(q * expm1(dz)) - t * dz)), over divisor
    for c in range(n_out):
        total += q[c * q_stride] * expm1_change(dz[c])
        dot += t[c] * dz[c]
    total = log1p_change(total) - dot
    return total if loss == CROSS_ENTROPY or divisor == 1.0 else total / divisor


cdef double loss_derivative(Py_ssize_t j, Network net, Cache cache, LossState state,
                            Scratch scratch, floating* precision) noexcept nogil:
    """The loss's share of dJ/dθ_j in forward mode: the tangent of column i pushed downstream,
    dotted with state.G = dJ/dlogits (which holds the sample weights)."""
    cdef Py_ssize_t N = cache.N, n_layers = net.n_layers, r, c, m, layer, width, cm
    cdef const LayerRow* table = net.table
    cdef Coordinate at = decode(j, net)
    cdef Py_ssize_t l = at.layer, i = at.i
    cdef Py_ssize_t n_out = table[l][N_OUT], off_gamma = table[l][OFF_GAMMA], c0 = table[l][COL_OFF]
    cdef Py_ssize_t n_logits = table[n_layers - 1][N_OUT]
    cdef int act = net.act
    cdef const floating* params = <const floating*>net.params
    cdef const floating* A = <const floating*>cache.A
    cdef const floating* Zhat = <const floating*>cache.Zhat
    cdef const floating* istd = <const floating*>cache.istd
    cdef const floating* G = <const floating*>state.G
    cdef floating* col = <floating*>scratch.column
    cdef int64_t* rows = scratch.rows
    cdef floating* work1 = <floating*>scratch.work1
    cdef floating* work2 = <floating*>scratch.work2
    cdef const floating* a_in
    cdef floating* dz
    cdef floating* out
    cdef double total = 0.0
    cdef bint batchnorm = off_gamma >= 0
    # the tangent of column i: of z (W, b) or of u = gamma * zhat + beta (gamma, beta)
    if at.kind == WEIGHT:
        a_in = layer_input(<const floating*>cache.X, A, N, table, l)
        # col = a_in[:, k]
        for r in range(N):
            col[r] = a_in[r * table[l][N_IN] + at.k]
    elif at.kind == GAMMA:
        # col = zhat[:, i]
        for r in range(N):
            col[r] = Zhat[N * c0 + r * n_out + i]
    else:
        for r in range(N):
            col[r] = 1
    if l == n_layers - 1:
        # dJ = G[:, i] @ dz
        for r in range(N):
            total += G[r * n_logits + i] * col[r]
        return total
    if batchnorm and at.kind <= BIAS:
        batchnorm_jacobian(col, N, 1, 1, &Zhat[N * c0 + i], n_out, &istd[c0 + i],
                           &params[off_gamma + i])
    # col *= act'(u[:, i])
    for r in range(N):
        col[r] *= activation_slope(act, A[N * c0 + r * n_out + i])
    m = moved_rows(col, N, batchnorm, rows)
    dz = work1
    next_layer(&params[table[l + 1][OFF_W] + i * table[l + 1][N_OUT]], table[l + 1][N_OUT], col,
               rows, m, dz)
    for layer in range(l + 1, n_layers - 1):
        width, cm = table[layer][N_OUT], table[layer][COL_OFF]
        if table[layer][OFF_GAMMA] >= 0:
            batchnorm_jacobian(dz, N, width, width, &Zhat[N * cm], width, &istd[cm],
                               &params[table[layer][OFF_GAMMA]])
        # dz *= act'(u[rows])
        for r in range(m):
            for c in range(width):
                dz[r * width + c] *= activation_slope(act, A[N * cm + rows[r] * width + c])
        # dz = dz @ W_{layer+1}, into the other work buffer
        out = work2 if (layer - l) % 2 == 1 else work1
        gemm(c'N', c'N', <int>m, <int>table[layer + 1][N_OUT], <int>width, dz, <int>width,
             &params[table[layer + 1][OFF_W]], <int>table[layer + 1][N_OUT], out,
             <int>table[layer + 1][N_OUT])
        dz = out
    # dJ = (G[rows] * dz).sum()
    width = n_logits
    for r in range(m):
        for c in range(width):
            total += G[rows[r] * n_logits + c] * dz[r * width + c]
    return total


cdef double coordinate_derivative_c(Py_ssize_t j, Network net, Cache cache, LossState state,
                                    Scratch scratch, floating* precision) noexcept nogil:
    """dJ/dθ_j in forward mode, the L2 penalty's slope included; see
    incremental_numpy.coordinate_derivative."""
    cdef double derivative = loss_derivative(j, net, cache, state, scratch, precision)
    if net.alpha != 0:
        derivative += penalty_slope(net, decode(j, net), (<const floating*>net.params)[j]) / (
            <const floating*>state.weight_sum)[0]
    return derivative


# A column workspace C (4 rows of N): the activation input u, the activations a and
# (BatchNorm) the normalised values zhat of the hidden column a coordinate feeds, copied so
# that they are contiguous, and the column's change.
cdef enum:
    U = 0
    ACT = 1
    ZHAT = 2
    CHANGE = 3


cdef struct ColumnCopy:
    # what the coordinates feeding one column share: C the column workspace above (load_column;
    # floating), M its rank1_moments (the last hidden layer only)
    void* C
    const double* M


cdef double load_column(Network net, Cache cache, Py_ssize_t l, Py_ssize_t i,
                        floating* C) noexcept nogil:
    """C[U], C[ACT], C[ZHAT] = column i of hidden layer l; returns max |zhat| (0 without
    BatchNorm)."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = cache.N, r, n_out = table[l][N_OUT], start = N * table[l][COL_OFF]
    cdef Py_ssize_t off_gamma = table[l][OFF_GAMMA]
    cdef const floating* params = <const floating*>net.params
    cdef const floating* Z = <const floating*>cache.Z
    cdef const floating* A = <const floating*>cache.A
    cdef const floating* Zhat = <const floating*>cache.Zhat
    cdef double g, b
    if off_gamma < 0:
        for r in range(N):
            C[U * N + r] = Z[start + r * n_out + i]
            C[ACT * N + r] = A[start + r * n_out + i]
        return 0.0
    g, b = params[off_gamma + i], params[table[l][OFF_BETA] + i]
    # C[ZHAT] = zhat[:, i]; C[U] = gamma_i zhat[:, i] + beta_i; C[ACT] = a[:, i]
    for r in range(N):
        C[ZHAT * N + r] = Zhat[start + r * n_out + i]
        C[U * N + r] = g * Zhat[start + r * n_out + i] + b
        C[ACT * N + r] = A[start + r * n_out + i]
    return largest_magnitude(C + ZHAT * N, N)


cdef void load_inputs(Network net, Cache cache, Py_ssize_t l, floating* inputs,
                      double* bounds) noexcept nogil:
    """inputs (n_in rows of N) = the transposed input of layer l; bounds[k] = max |inputs[k]|."""
    cdef Py_ssize_t N = cache.N, n_in = net.table[l][N_IN], r, k
    cdef const floating* a_in = layer_input(<const floating*>cache.X, <const floating*>cache.A,
                                            N, net.table, l)
    # inputs = a_in.T
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


cdef inline bint rank1_applies(Network net) noexcept nogil:
    # whether a rank-1 change of the logits has its loss change from the moments: not for
    # binary cross-entropy with several outputs, whose row loss is a sum of logarithms
    return net.loss != BINARY_CROSS_ENTROPY or net.table[net.n_layers - 1][N_OUT] == 1


cdef void rank1_moments(Network net, Cache cache, LossState state, const floating* w,
                        double* M) noexcept nogil:
    """M (MOMENTS rows of N) for logits moving along w: mse: M[1] = q @ w (q the residual) and
    M[2] = w @ w; the other losses (where rank1_applies): M[0] = T @ w and M[k] = sum_c q_c
    w_c^k / k!. The loss changes of mse and poisson are linear in the moments: theirs hold each
    sample's weight already (column r times weight_r), so that rank1_change need not."""
    cdef Py_ssize_t n_out = net.table[net.n_layers - 1][N_OUT], N = cache.N, r, c, k
    cdef const floating* Q = <const floating*>state.Q
    cdef const floating* T = <const floating*>state.T
    cdef const floating* weight = <const floating*>state.weight
    cdef double power, ww = 0.0
    for r in range(MOMENTS * N):
        M[r] = 0.0
    if net.loss == MSE:
        # M[1] = Q.T @ w; M[2] = w @ w
        for c in range(n_out):
            ww += w[c] * w[c]
            for r in range(N):
                M[N + r] += Q[c * N + r] * w[c]
        for r in range(N):
            M[N + r] *= weight[r]
            M[2 * N + r] = ww * weight[r]
        return
    # M[k] = Q.T @ (w**k / k!)
    for c in range(n_out):
        power = 1.0
        for k in range(1, MOMENTS):
            power *= w[c] / k  # w_c^k / k!
            for r in range(N):
                M[k * N + r] += Q[c * N + r] * power
    # M[0] = T @ w
    for r in range(N):
        for c in range(n_out):
            M[r] += T[r * n_out + c] * w[c]
    if net.loss == POISSON:
        # M[k] *= weight for every k
        for k in range(MOMENTS):
            for r in range(N):
                M[k * N + r] *= weight[r]


cdef double rank1_change(int loss, const double* M, const floating* d,
                         const floating* weight, Py_ssize_t N, double divisor) noexcept nogil:
    """The change of n J (the weighted sum of the per-sample loss changes) when sample r's
    logits move by d_r w, from rank1_moments, with s = sum_k d^k M[k] (= sum_c q_c expm1(d w_c)):
    weight_r (log1p(s) - d M[0]) per sample (cross-entropy; binary cross-entropy's one output,
    over divisor); s - d M[0] (poisson, over divisor) and d (2 q @ w + d w @ w) / divisor (mse),
    whose moments hold the weights."""
    cdef Py_ssize_t r
    cdef double x, s, total = 0.0
    if loss == MSE:
        for r in range(N):
            total += d[r] * (2.0 * M[N + r] + d[r] * M[2 * N + r])
        return total / divisor
    if loss == POISSON:
        for r in range(N):
            x = d[r]
            s = x * (M[N + r] + x * (M[2 * N + r] + x * (M[3 * N + r] + x * (M[4 * N + r] + x * (
                M[5 * N + r] + x * (M[6 * N + r] + x * (M[7 * N + r] + x * M[8 * N + r])))))))
            total += s - x * M[r]
        return total / divisor
    for r in range(N):
        x = d[r]
        s = x * (M[N + r] + x * (M[2 * N + r] + x * (M[3 * N + r] + x * (M[4 * N + r] + x * (
            M[5 * N + r] + x * (M[6 * N + r] + x * (M[7 * N + r] + x * M[8 * N + r])))))))
        total += weight[r] * (log1p_small(s) - x * M[r])
    return total if loss == CROSS_ENTROPY else total / divisor


cdef double logit_column_change(int loss, const floating* q, const floating* t,
                                Py_ssize_t t_stride, const floating* d, const floating* weight,
                                Py_ssize_t N, double divisor) noexcept nogil:
    """The change of n J when logit i of sample r moves by d_r, every |d_r| <= SMALL_CHANGE:
    q = Q[i], t[r * t_stride] = T[r, i]."""
    cdef Py_ssize_t r
    cdef double total = 0.0
    if loss == MSE:
        for r in range(N):
            total += weight[r] * (d[r] * (2.0 * q[r] + d[r]))
        return total / divisor
    if loss == POISSON:
        # total = weight @ (q * expm1(d))
        for r in range(N):
            total += weight[r] * (q[r] * expm1_small(d[r]))
    else:
        # total = weight @ log1p(q * expm1(d))
        for r in range(N):
            total += weight[r] * log1p_small(q[r] * expm1_small(d[r]))
    # total -= (weight * T[:, i]) @ d
    for r in range(N):
        total -= weight[r] * t[r * t_stride] * d[r]
    return total if loss == CROSS_ENTROPY else total / divisor


cdef double column_level_change(Coordinate at, double delta, const floating* source,
                                double source_bound, ColumnCopy column, Network net, Cache cache,
                                LossState state, Scratch scratch) noexcept nogil:
    """The losses' share of n (J(θ + delta e_j) − J(θ)), n = state.weight_sum: the weighted sum
    of the per-sample loss changes, for the coordinate at = (l, kind, ., i), given source = the
    input column it reads (W), column.C = load_column(l, i) (hidden layers), column.M = the
    rank1_moments of column i (last hidden layer, where rank1_applies) and source_bound >= the
    largest |column| the coordinate scales: max |source| (W), max |zhat| (gamma), 1 (b, beta);
    see incremental_numpy.loss_change. Bounds on the changes, not scans of them, decide when the
    vectorised small-change paths apply."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = cache.N, n_layers = net.n_layers, r, c, m, layer, width, cm, n_next
    cdef Py_ssize_t l = at.layer, kind = at.kind, i = at.i
    cdef Py_ssize_t out = n_layers - 1, n_out = table[n_layers - 1][N_OUT]
    cdef Py_ssize_t off_gamma = table[l][OFF_GAMMA]
    cdef int act = net.act, loss = net.loss
    cdef const floating* params = <const floating*>net.params
    cdef const floating* Z = <const floating*>cache.Z
    cdef const floating* A = <const floating*>cache.A
    cdef const floating* Zhat = <const floating*>cache.Zhat
    cdef const floating* istd = <const floating*>cache.istd
    cdef const floating* T = <const floating*>state.T
    cdef const floating* rowloss = <const floating*>state.rowloss
    cdef const floating* Q = <const floating*>state.Q
    cdef const floating* weight = <const floating*>state.weight
    cdef int64_t* rows = scratch.rows
    cdef floating* work1 = <floating*>scratch.work1
    cdef floating* work2 = <floating*>scratch.work2
    cdef floating* C = <floating*>column.C
    cdef const double* M = column.M
    cdef const floating* logits = &Z[N * table[out][COL_OFF]]
    cdef const floating* w
    cdef const floating* gamma
    cdef const floating* beta
    cdef floating* col = C + CHANGE * N
    cdef floating* dz
    cdef floating* nxt
    cdef double total = 0.0, d, bound = abs(delta) * source_bound, divisor = loss_divisor(net)
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
            return logit_column_change(loss, &Q[i * N], T + i, n_out, col, weight, N, divisor)
        dz = work1
        for c in range(n_out):
            dz[c] = 0
        for r in range(N):
            d = col[r]
            if d == 0:
                continue
            if abs(d) <= MODERATE_CHANGE:
                total += weight[r] * logit_change(loss, Q[i * N + r], T[r * n_out + i], d,
                                                  divisor)
            else:
                dz[i] = d
                total += weight[r] * row_loss_change(loss, logits + r * n_out, Q + r, N,
                                                     T + r * n_out, rowloss[r], dz, n_out,
                                                     divisor)
                for c in range(n_out):  # row_loss_change overwrote dz
                    dz[c] = 0
        return total
    # col = the change of column i of the activations
    if off_gamma >= 0 and kind <= BIAS:
        # du = gamma * (zhat(z + dz) - zhat(z)): the column's statistics move too
        batchnorm_change(col, N, 1, 1, C + ZHAT * N, 1, &istd[table[l][COL_OFF] + i])
        for r in range(N):
            col[r] *= params[off_gamma + i]
        bound = largest_magnitude(col, N)
    activation_changes(act, C + U * N, C + ACT * N, col, N, bound)
    # |act(u + d) - act(u)| <= |d| max|act'|: 1, or 1/4 for sigmoid
    bound *= 0.25 if act == SIGMOID else 1.0
    n_next = table[l + 1][N_OUT]
    w = &params[table[l + 1][OFF_W] + i * n_next]
    if (l + 1 == out and rank1_applies(net)
            and bound * largest_magnitude(w, n_out) <= SMALL_CHANGE):
        return rank1_change(loss, M, col, weight, N, divisor)
    m = moved_rows(col, N, off_gamma >= 0, rows)
    dz = work1
    next_layer(w, n_next, col, rows, m, dz)
    for layer in range(l + 1, out):
        width, cm = table[layer][N_OUT], N * table[layer][COL_OFF]
        # dz becomes the change of the layer's activations, in place
        if table[layer][OFF_GAMMA] >= 0:
            # du = gamma * (zhat(z + dz) - zhat(z)), all samples (m == N)
            gamma, beta = &params[table[layer][OFF_GAMMA]], &params[table[layer][OFF_BETA]]
            batchnorm_change(dz, m, width, width, &Zhat[cm], width, &istd[table[layer][COL_OFF]])
            for r in range(m):
                for c in range(width):
                    dz[r * width + c] = activation_change(
                        act, gamma[c] * Zhat[cm + r * width + c] + beta[c],
                        A[cm + r * width + c], gamma[c] * dz[r * width + c])
        else:
            # dz = act(z[rows] + dz) - act(z[rows])
            for r in range(m):
                for c in range(width):
                    dz[r * width + c] = activation_change(act, Z[cm + rows[r] * width + c],
                                                          A[cm + rows[r] * width + c],
                                                          dz[r * width + c])
        # dz = da @ W_{layer+1}, into the other work buffer
        nxt = work2 if (layer - l) % 2 == 1 else work1
        n_next = table[layer + 1][N_OUT]
        gemm(c'N', c'N', <int>m, <int>n_next, <int>width, dz, <int>width,
             &params[table[layer + 1][OFF_W]], <int>n_next, nxt, <int>n_next)
        dz = nxt
    # the moved rows' weighted loss changes, each from its logits' move
    for r in range(m):
        total += weight[rows[r]] * row_loss_change(
            loss, logits + rows[r] * n_out, Q + rows[r], N, T + rows[r] * n_out,
            rowloss[rows[r]], dz + r * n_out, n_out, divisor)
    return total


cdef double column_loss_change(Coordinate at, double delta, const floating* source,
                               double source_bound, ColumnCopy column, Network net, Cache cache,
                               LossState state, Scratch scratch) noexcept nogil:
    """J(θ + delta e_j) − J(θ) for the coordinate at, given what column_level_change takes: its
    level change and the L2 penalty's, over n = state.weight_sum."""
    cdef const LayerRow* table = net.table
    cdef double change = column_level_change(at, delta, source, source_bound, column, net, cache,
                                             state, scratch)
    cdef Py_ssize_t j
    if net.alpha != 0 and at.kind == WEIGHT:
        j = table[at.layer][OFF_W] + at.k * table[at.layer][N_OUT] + at.i
        change += penalty_change(net, at, (<const floating*>net.params)[j], delta)
    return change / (<const floating*>state.weight_sum)[0]


cdef double loss_change_c(Py_ssize_t j, double delta, Network net, Cache cache, LossState state,
                          Scratch scratch, floating* precision) noexcept nogil:
    """J(θ + delta e_j) − J(θ) with θ unchanged; see incremental_numpy.loss_change
    (scratch.column: room for the input column a W coordinate reads)."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = cache.N, n_layers = net.n_layers, r
    cdef Coordinate at = decode(j, net)
    cdef const floating* params = <const floating*>net.params
    cdef floating* col = <floating*>scratch.column
    cdef const floating* a_in
    cdef floating* C = <floating*>malloc(4 * N * sizeof(floating))
    cdef double* M = <double*>malloc(MOMENTS * N * sizeof(double))
    cdef ColumnCopy column
    cdef double change, zhat_bound = 0.0, source_bound = 1.0
    column.C, column.M = C, M
    if at.layer < n_layers - 1:
        zhat_bound = load_column(net, cache, at.layer, at.i, C)
    if at.layer == n_layers - 2 and rank1_applies(net):
        rank1_moments(net, cache, state,
                      &params[table[at.layer + 1][OFF_W] + at.i * table[at.layer + 1][N_OUT]], M)
    if at.kind == WEIGHT:
        a_in = layer_input(<const floating*>cache.X, <const floating*>cache.A, N, table, at.layer)
        # col = a_in[:, k]
        for r in range(N):
            col[r] = a_in[r * table[at.layer][N_IN] + at.k]
        source_bound = largest_magnitude(col, N)
    elif at.kind == GAMMA:
        source_bound = zhat_bound
    change = column_loss_change(at, delta, col, source_bound, column, net, cache, state, scratch)
    free(C)
    free(M)
    return change


cdef void forward_mode_gradient_c(Network net, Cache cache, LossState state, floating* grad,
                                  Scratch scratch) noexcept nogil:
    """grad[j] = coordinate_derivative(j) for every coordinate."""
    cdef Py_ssize_t j
    for j in range(net.n_params):
        grad[j] = coordinate_derivative_c(j, net, cache, state, scratch, <floating*>NULL)


cdef void finite_difference_gradient_c(Network net, Cache cache, LossState state, double eps,
                                       floating* grad, Scratch scratch) noexcept nogil:
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps), each side re-evaluated
    incrementally. Coordinates are visited column by column: those feeding one column share
    its load_column and, in the last hidden layer, its rank1_moments."""
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t N = cache.N, n_layers = net.n_layers, l, i, k, kind, n_kinds, j, widest = 0
    cdef const floating* params = <const floating*>net.params
    cdef double up, down, zhat_bound, scale
    cdef floating* C
    cdef floating* inputs
    cdef double* M
    cdef double* bounds
    cdef ColumnCopy column
    cdef Coordinate at
    for l in range(n_layers):
        widest = max(widest, table[l][N_IN])
    C = <floating*>malloc(4 * N * sizeof(floating))
    inputs = <floating*>malloc(widest * N * sizeof(floating))
    M = <double*>malloc(MOMENTS * N * sizeof(double))
    bounds = <double*>malloc(widest * sizeof(double))
    column.C, column.M = C, M
    for l in range(n_layers):
        load_inputs(net, cache, l, inputs, bounds)
        # the coordinates feeding column i: W[k, i] for every k, then b[i], gamma[i], beta[i]
        # (the kinds in the order of codes.py: WEIGHT, BIAS, then GAMMA, BETA with BatchNorm)
        n_kinds = BIAS + 1 if table[l][OFF_GAMMA] < 0 else BETA + 1
        for i in range(table[l][N_OUT]):
            zhat_bound = 0.0
            if l < n_layers - 1:
                zhat_bound = load_column(net, cache, l, i, C)
            if l == n_layers - 2 and rank1_applies(net):
                rank1_moments(net, cache, state,
                              &params[table[l + 1][OFF_W] + i * table[l + 1][N_OUT]], M)
            for kind in range(n_kinds):
                for k in range(table[l][N_IN] if kind == WEIGHT else 1):
                    j = (table[l][OFF_W] + k * table[l][N_OUT] if kind == WEIGHT
                         else kind_offset(table, l, kind)) + i
                    scale = bounds[k] if kind == WEIGHT else zhat_bound if kind == GAMMA else 1.0
                    at.layer, at.kind, at.k, at.i = l, kind, k, i
                    up = column_loss_change(at, eps, inputs + k * N, scale, column, net, cache,
                                            state, scratch)
                    down = column_loss_change(at, -eps, inputs + k * N, scale, column, net,
                                              cache, state, scratch)
                    grad[j] = (up - down) / (2 * eps)
    free(C)
    free(inputs)
    free(M)
    free(bounds)


# ---------------------------------------------------------------- entry points
def coordinate_derivative(Py_ssize_t j, net, cache, state, scratch):
    """dJ/dθ_j in forward mode (uses state.G, and the weights' sum for the L2 penalty); see
    incremental_numpy.coordinate_derivative."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef LossState losses = unpack_loss_state(state, network, cached, False)
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    cdef double derivative
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            derivative = coordinate_derivative_c(j, network, cached, losses, work, <double*>NULL)
        else:
            derivative = coordinate_derivative_c(j, network, cached, losses, work, <float*>NULL)
    return derivative


def loss_change(Py_ssize_t j, double delta, net, cache, state, scratch):
    """J(θ + delta e_j) − J(θ) with θ unchanged (uses state.T, rowloss, Q and the weights); see
    incremental_numpy.loss_change."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef LossState losses = unpack_loss_state(state, network, cached, False)
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    cdef double change
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            change = loss_change_c(j, delta, network, cached, losses, work, <double*>NULL)
        else:
            change = loss_change_c(j, delta, network, cached, losses, work, <float*>NULL)
    return change


def forward_mode_gradient(net, cache, state, grad, scratch):
    """grad[j] = coordinate_derivative(j) for every coordinate."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef LossState losses = unpack_loss_state(state, network, cached, False)
    cdef void* g = buffer_of(grad, network, "grad")
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            forward_mode_gradient_c(network, cached, losses, <double*>g, work)
        else:
            forward_mode_gradient_c(network, cached, losses, <float*>g, work)


def finite_difference_gradient(net, cache, state, double eps, grad, scratch):
    """grad[j] = (J(θ + eps e_j) − J(θ − eps e_j)) / (2 eps) for every coordinate, each side
    re-evaluated incrementally (eps in the network's dtype); see
    incremental_numpy.finite_difference_gradient."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef LossState losses = unpack_loss_state(state, network, cached, False)
    cdef void* g = buffer_of(grad, network, "grad")
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            finite_difference_gradient_c(network, cached, losses, eps, <double*>g, work)
        else:
            finite_difference_gradient_c(network, cached, losses, eps, <float*>g, work)
