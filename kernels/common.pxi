# Helpers shared by the Cython kernels (included textually by every .pyx, after codes.pxi).
# They mirror the scalar helpers of mlp_numba.py; buffers are row-major, reached by pointers
# with an explicit row width.
from libc.math cimport copysign, exp, expm1, fabs, isfinite, log, log1p, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline int64_t bits_of(double x) noexcept nogil:
    # x.view(np.int64)
    cdef int64_t bits
    memcpy(&bits, &x, sizeof(double))
    return bits


cdef inline double float_of(int64_t bits) noexcept nogil:
    # bits.view(np.float64)
    cdef double x
    memcpy(&x, &bits, sizeof(double))
    return x


cdef inline double exp_double(double x) noexcept nogil:
    # exp of a float64, branch-free so that loops over it vectorise (codes.EXP_ROUND)
    cdef double k, n_float, r, p
    cdef int64_t n, half
    x = EXP_MAX if x > EXP_MAX else (EXP_MIN if x < EXP_MIN else x)  # NaN stays NaN
    k = x * LOG2E + EXP_ROUND  # n = round(x log2 e) in k's low bits
    n_float = k - EXP_ROUND
    r = (x - n_float * LN2_HI) - n_float * LN2_LO
    p = EXP_TAYLOR[0] + r * (EXP_TAYLOR[1] + r * (EXP_TAYLOR[2] + r * (EXP_TAYLOR[3] + r * (
        EXP_TAYLOR[4] + r * (EXP_TAYLOR[5] + r * (EXP_TAYLOR[6] + r * (EXP_TAYLOR[7] + r * (
            EXP_TAYLOR[8] + r * (EXP_TAYLOR[9] + r * (EXP_TAYLOR[10] + r * (EXP_TAYLOR[11] + r * (
                EXP_TAYLOR[12] + r * EXP_TAYLOR[13]))))))))))))
    # p * 2**n, as p * 2**(n // 2) * 2**(n - n // 2); the shifts on unsigned integers
    n = bits_of(k) - bits_of(EXP_ROUND)
    half = n >> 1
    return p * float_of(<int64_t>(<uint64_t>(half + 1023) << 52)) * float_of(
        <int64_t>(<uint64_t>(n - half + 1023) << 52))


cdef inline double tanh_double(double x) noexcept nogil:
    # tanh of a float64, branch-free (codes.TANH_DOUBLE_P); NaN stays NaN, -0 stays -0
    cdef double ax = fabs(x), large, s, small
    ax = TANH_DOUBLE_CLAMP if ax > TANH_DOUBLE_CLAMP else ax
    large = 1.0 - 2.0 / (exp_double(2.0 * ax) + 1.0)
    s = ax * ax
    small = ax + ax * s * (TANH_DOUBLE_P[0] + s * (TANH_DOUBLE_P[1] + s * TANH_DOUBLE_P[2])) / (
        TANH_DOUBLE_Q[0] + s * (TANH_DOUBLE_Q[1] + s * (TANH_DOUBLE_Q[2] + s * TANH_DOUBLE_Q[3])))
    return copysign(small if ax < TANH_DOUBLE_SMALL else large, x)


cdef inline double sigmoid(double x) noexcept nogil:
    # 1 / (1 + exp(-x)) as (1 or e) / (1 + e) with e = exp(-|x|): no overflow for large |x|,
    # branch-free
    cdef double e = exp_double(-fabs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)


cdef inline float tanh_single(float x) noexcept nogil:
    # tanh for float32 data (see codes.TANH_SINGLE_P): x P(x²) / Q(x²), x clamped, in float32
    # arithmetic throughout like the other backends; NaN stays NaN
    cdef float clamp = <float>TANH_SINGLE_CLAMP, y
    x = clamp if x > clamp else (-clamp if x < -clamp else x)
    y = x * x
    return x * (<float>TANH_SINGLE_P[0] + y * (<float>TANH_SINGLE_P[1] + y * (
        <float>TANH_SINGLE_P[2] + y * (<float>TANH_SINGLE_P[3] + y * <float>TANH_SINGLE_P[4])))) / (
        <float>1.0 + y * (<float>TANH_SINGLE_Q[1] + y * (<float>TANH_SINGLE_Q[2] + y * (
            <float>TANH_SINGLE_Q[3] + y * <float>TANH_SINGLE_Q[4]))))


cdef inline double activate(int act, floating u) noexcept nogil:
    # (the precision of u picks tanh: tanh_single for float32 data, tanh_double for float64)
    if act == TANH:
        return tanh_single(u) if floating is float else tanh_double(u)
    if act == RELU:
        return u if u > 0 else 0.0
    if act == SIGMOID:
        return sigmoid(u)
    return u


cdef inline void activate_all(int act, const floating* u, floating* a, Py_ssize_t n) noexcept nogil:
    """a = act(u) over n values (may run in place), one loop per activation so that each loop
    vectorises."""
    cdef Py_ssize_t j
    if act == TANH:
        for j in range(n):
            a[j] = tanh_single(u[j]) if floating is float else tanh_double(u[j])
    elif act == RELU:
        for j in range(n):
            a[j] = u[j] if u[j] > 0 else 0
    elif act == SIGMOID:
        for j in range(n):
            a[j] = sigmoid(u[j])
    else:
        for j in range(n):
            a[j] = u[j]


cdef inline void add_bias_and_activate(int act, const floating* b, floating* z, floating* a,
                                       Py_ssize_t N, Py_ssize_t n) noexcept nogil:
    """In one pass over an (N, n) block: z += b (row by row), then a = act(z); one loop per
    activation so that each loop vectorises."""
    cdef Py_ssize_t r, c
    if act == TANH:
        for r in range(N):
            for c in range(n):
                z[r * n + c] += b[c]
                a[r * n + c] = tanh_single(z[r * n + c]) if floating is float else tanh_double(
                    z[r * n + c])
    elif act == RELU:
        for r in range(N):
            for c in range(n):
                z[r * n + c] += b[c]
                a[r * n + c] = z[r * n + c] if z[r * n + c] > 0 else 0
    elif act == SIGMOID:
        for r in range(N):
            for c in range(n):
                z[r * n + c] += b[c]
                a[r * n + c] = sigmoid(z[r * n + c])
    else:
        for r in range(N):
            for c in range(n):
                z[r * n + c] += b[c]
                a[r * n + c] = z[r * n + c]


cdef inline void column_sums(const floating* d, floating* sums, Py_ssize_t N,
                             Py_ssize_t n) noexcept nogil:
    # sums = d.sum(axis=0), row by row
    cdef Py_ssize_t r, c
    for c in range(n):
        sums[c] = 0
    for r in range(N):
        for c in range(n):
            sums[c] += d[r * n + c]


cdef inline void slope_and_column_sums(int act, const floating* a, floating* d, floating* sums,
                                       Py_ssize_t N, Py_ssize_t n) noexcept nogil:
    """In one pass over an (N, n) block: d *= act'(u), written with a = act(u), and sums =
    d.sum(axis=0) (row by row); one loop per activation."""
    cdef Py_ssize_t r, c
    if act != TANH and act != RELU and act != SIGMOID:
        column_sums(d, sums, N, n)
        return
    for c in range(n):
        sums[c] = 0
    if act == TANH:
        for r in range(N):
            for c in range(n):
                d[r * n + c] *= 1.0 - a[r * n + c] * a[r * n + c]
                sums[c] += d[r * n + c]
    elif act == RELU:
        for r in range(N):
            for c in range(n):
                d[r * n + c] *= 1.0 if a[r * n + c] > 0 else 0.0
                sums[c] += d[r * n + c]
    else:
        for r in range(N):
            for c in range(n):
                d[r * n + c] *= a[r * n + c] * (1.0 - a[r * n + c])
                sums[c] += d[r * n + c]


cdef inline double activation_slope(int act, double a) noexcept nogil:
    # act'(u) written in terms of the output a = act(u)
    if act == TANH:
        return 1.0 - a * a
    if act == RELU:
        return 1.0 if a > 0 else 0.0
    if act == SIGMOID:
        return a * (1.0 - a)
    return 1.0


cdef inline double row_loss_and_state(int loss, const floating* z, const floating* t, double* q,
                                     Py_ssize_t n_out, double divisor) noexcept nogil:
    """One sample's loss from its logits z and target row t (one-hot for cross-entropy), and
    its loss state q = softmax(z) (cross-entropy), sigmoid(z) (binary cross-entropy), exp(z)
    (poisson) or z - t (mse), the exponentials computed once. Every loss but cross-entropy sums
    a term per output and divides the sum by divisor (codes.py, "losses")."""
    cdef Py_ssize_t c
    cdef double shift, total = 0.0, dot = 0.0
    if loss == CROSS_ENTROPY:
        # q = exp(z - max z); loss = log(sum q) + max z - t @ z; q /= sum q
        shift = z[0]
        for c in range(1, n_out):
            shift = max(shift, <double>z[c])
        for c in range(n_out):
            q[c] = exp_double(z[c] - shift)
            total += q[c]
            dot += t[c] * z[c]
        for c in range(n_out):
            q[c] = q[c] / total
        return log(total) + shift - dot
    if loss == BINARY_CROSS_ENTROPY:
        # q = sigmoid(z); loss = sum(softplus(z) - t z) / divisor
        for c in range(n_out):
            q[c] = sigmoid(z[c])
            total += max(<double>z[c], 0.0) - t[c] * z[c] + log1p(exp(-abs(<double>z[c])))
        return total if divisor == 1.0 else total / divisor  # (no division by the usual 1)
    if loss == POISSON:
        # q = exp(z); loss = sum(q - t z) / divisor
        for c in range(n_out):
            q[c] = exp_double(z[c])
            total += q[c] - t[c] * z[c]
        return total if divisor == 1.0 else total / divisor
    for c in range(n_out):
        q[c] = z[c] - t[c]
        total += q[c] * q[c]
    return total / divisor


# Small changes, kept exact: Taylor polynomials for |x| <= SMALL_CHANGE (1/32); the first
# omitted term is below 1e-17 relative, so they match expm1 / tanh / log1p to about one ulp.
cdef inline double expm1_small(double x) noexcept nogil:
    # x + x²/2! + ... + x⁸/8!
    return x * (1.0 + x * (1.0 / 2 + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120 + x * (
        1.0 / 720 + x * (1.0 / 5040 + x * (1.0 / 40320))))))))


# For |x| <= TINY_CHANGE (2^-10) lower degrees give the same accuracy (codes.TINY_CHANGE).
cdef inline double expm1_tiny(double x) noexcept nogil:
    # x + x²/2! + ... + x⁵/5!
    return x * (1.0 + x * (1.0 / 2 + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120)))))


cdef inline double log1p_tiny(double x) noexcept nogil:
    # for |x| <= 2 TINY_CHANGE: x - x²/2 + ... - x⁶/6
    return x * (1.0 - x * (1.0 / 2 - x * (1.0 / 3 - x * (1.0 / 4 - x * (1.0 / 5 - x * (
        1.0 / 6))))))


cdef inline double tanh_small(double x) noexcept nogil:
    # x - x³/3 + 2x⁵/15 - 17x⁷/315 + 62x⁹/2835
    cdef double y = x * x
    return x * (1.0 + y * (-1.0 / 3 + y * (2.0 / 15 + y * (-17.0 / 315 + y * (62.0 / 2835)))))


cdef inline double log1p_small(double x) noexcept nogil:
    # log1p(x) for |x| <= 1/16: x - x²/2 + ... - x¹⁴/14
    return x * (1.0 - x * (1.0 / 2 - x * (1.0 / 3 - x * (1.0 / 4 - x * (1.0 / 5 - x * (
        1.0 / 6 - x * (1.0 / 7 - x * (1.0 / 8 - x * (1.0 / 9 - x * (1.0 / 10 - x * (
            1.0 / 11 - x * (1.0 / 12 - x * (1.0 / 13 - x * (1.0 / 14))))))))))))))


cdef inline double activation_change(int act, floating u, floating a,
                                     floating du) noexcept nogil:
    """act(u + du) - act(u) where a = act(u); see mlp_numpy.activation_change."""
    cdef double t, e
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


cdef inline double expm1_change(double d) noexcept nogil:
    # expm1(d), by its Taylor polynomial for |d| <= SMALL_CHANGE
    return expm1_small(d) if abs(d) <= SMALL_CHANGE else expm1(d)


cdef inline double log1p_change(double x) noexcept nogil:
    # log1p(x), by its Taylor polynomial for |x| <= 1/16
    return log1p_small(x) if abs(x) <= 1.0 / 16 else log1p(x)


cdef inline void gemm(char trans_a, char trans_b, int m, int n, int k, const floating* a, int lda,
                      const floating* b, int ldb, floating* c, int ldc) noexcept nogil:
    """Row-major c (m, n) = op(a) @ op(b), op(a) of shape (m, k); ld* are row strides.
    BLAS is column-major, so it is asked for c.T = op(b).T @ op(a).T."""
    cdef double one = 1.0, zero = 0.0
    cdef float one_f = 1.0, zero_f = 0.0
    if m == 0 or n == 0:
        return
    if floating is double:
        dgemm(&trans_b, &trans_a, &n, &m, &k, &one, <double*>b, &ldb, <double*>a, &lda, &zero,
              c, &ldc)
    else:
        sgemm(&trans_b, &trans_a, &n, &m, &k, &one_f, <float*>b, &ldb, <float*>a, &lda, &zero_f,
              c, &ldc)


cdef inline void dense(const floating* a, Py_ssize_t N, Py_ssize_t n_in, const floating* W,
                       const floating* b, Py_ssize_t n_out, floating* z) noexcept nogil:
    # z = a @ W + b
    cdef Py_ssize_t r, c
    gemm(c'N', c'N', <int>N, <int>n_out, <int>n_in, a, <int>n_in, W, <int>n_out, z, <int>n_out)
    for r in range(N):
        for c in range(n_out):
            z[r * n_out + c] += b[c]


cdef inline void column_stats(const floating* z, Py_ssize_t N, Py_ssize_t n, Py_ssize_t ld,
                              floating* mean, floating* istd) noexcept nogil:
    """Training-mode BatchNorm statistics of the n columns of z (row stride ld): mean and
    1/sqrt(biased var + eps)."""
    cdef Py_ssize_t r, c
    for c in range(n):
        mean[c] = 0
        istd[c] = 0
    for r in range(N):
        for c in range(n):
            mean[c] += z[r * ld + c]
    for c in range(n):
        mean[c] /= N
    for r in range(N):
        for c in range(n):
            istd[c] += (z[r * ld + c] - mean[c]) * (z[r * ld + c] - mean[c])
    for c in range(n):
        istd[c] = 1.0 / sqrt(istd[c] / N + BN_EPS)


cdef inline void batchnorm_jacobian(floating* d, Py_ssize_t N, Py_ssize_t n, Py_ssize_t ld_d,
                                    const floating* zhat, Py_ssize_t ld_z, const floating* istd,
                                    const floating* gamma) noexcept nogil:
    """In place, column by column: d = gamma * istd * (d - mean(d) - zhat * mean(d * zhat)),
    the (symmetric) Jacobian of training-mode BatchNorm (times gamma) applied to d."""
    cdef Py_ssize_t r, c
    cdef double* mean_d = <double*>malloc(2 * n * sizeof(double))
    cdef double* mean_dz = mean_d + n
    for c in range(n):
        mean_d[c] = 0.0
        mean_dz[c] = 0.0
    for r in range(N):
        for c in range(n):
            mean_d[c] += d[r * ld_d + c]
            mean_dz[c] += d[r * ld_d + c] * zhat[r * ld_z + c]
    for r in range(N):
        for c in range(n):
            d[r * ld_d + c] = gamma[c] * istd[c] * (
                d[r * ld_d + c] - mean_d[c] / N - zhat[r * ld_z + c] * mean_dz[c] / N)
    free(mean_d)


cdef inline void batchnorm_change(floating* d, Py_ssize_t N, Py_ssize_t n, Py_ssize_t ld_d,
                                  const floating* zhat, Py_ssize_t ld_z,
                                  const floating* istd) noexcept nogil:
    """In place, column by column: d = zhat(z + d) - zhat(z), free of cancellation; see
    mlp_numpy.batchnorm_change."""
    cdef Py_ssize_t r, c
    cdef double x, root
    cdef double* mean_d = <double*>malloc(3 * n * sizeof(double))
    cdef double* zd = mean_d + n
    cdef double* cc = mean_d + 2 * n
    for c in range(n):
        mean_d[c] = 0.0
        zd[c] = 0.0
        cc[c] = 0.0
    for r in range(N):
        for c in range(n):
            mean_d[c] += d[r * ld_d + c]
            zd[c] += zhat[r * ld_z + c] * d[r * ld_d + c]
    for c in range(n):
        mean_d[c] /= N
    for r in range(N):
        for c in range(n):
            cc[c] += (d[r * ld_d + c] - mean_d[c]) * (d[r * ld_d + c] - mean_d[c])
    # the variance grows by var * x; zd becomes the shrink of zhat, cc the new istd
    for c in range(n):
        x = 2.0 * istd[c] * (zd[c] / N) + istd[c] * istd[c] * (cc[c] / N)
        root = sqrt(1.0 + x)
        zd[c] = -x / (root * (1.0 + root))
        cc[c] = istd[c] / root
    for r in range(N):
        for c in range(n):
            d[r * ld_d + c] = zhat[r * ld_z + c] * zd[c] + (d[r * ld_d + c] - mean_d[c]) * cc[c]
    free(mean_d)


cdef inline void normalise_and_activate(int act, const floating* z, Py_ssize_t N, Py_ssize_t n,
                                        floating* zhat, const floating* gamma,
                                        const floating* beta, const floating* mean,
                                        const floating* istd, floating* a) noexcept nogil:
    # zhat = (z - mean) * istd; a = act(gamma * zhat + beta)   (may run in place: z = zhat = a)
    cdef Py_ssize_t r, c
    for r in range(N):
        for c in range(n):
            zhat[r * n + c] = (z[r * n + c] - mean[c]) * istd[c]
            a[r * n + c] = gamma[c] * zhat[r * n + c] + beta[c]
    activate_all(act, a, a, N * n)
