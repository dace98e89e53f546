# Per-coordinate helpers shared by coordinate_cython.pyx and sequential_cython.pyx (included
# textually after common.pxi): the Cython twins of coordinate_numba's decode,
# largest_magnitude and activation_changes.


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


cdef inline double largest_magnitude(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t r
    cdef double largest = 0.0
    for r in range(n):
        largest = max(largest, abs(<double>x[r]))
    return largest


cdef void activation_changes(int act, const floating* u, const floating* a, floating* du,
                             Py_ssize_t N, double bound) noexcept nogil:
    """In place, a whole column: du = act(u + du) - act(u), a = act(u). When every |du| is
    small (bound >= max |du|) the identities of activation_change run as a branch-free loop,
    which vectorises."""
    cdef Py_ssize_t r
    cdef double t, e
    if (act == TANH or act == SIGMOID) and bound <= SMALL_CHANGE:
        if act == TANH:
            for r in range(N):
                t = tanh_small(du[r])
                du[r] = t * (1.0 - a[r] * a[r]) / (1.0 + a[r] * t)
        else:
            for r in range(N):
                e = expm1_small(du[r])
                du[r] = a[r] * (1.0 - a[r]) * e / (1.0 + a[r] * e)
        return
    for r in range(N):
        du[r] = activation_change(act, u[r], a[r], du[r])
