# Per-coordinate helpers shared by incremental_cython.pyx and sequential_cython.pyx (included
# textually after codes.pxi, common.pxi and bundles.pxi): the Cython twins of
# incremental_numba's decode, largest_magnitude and activation_changes, and the L2 penalty's
# share of a coordinate's derivative and loss change.


cdef struct Coordinate:
    Py_ssize_t layer, kind, k, i


cdef inline Coordinate decode(Py_ssize_t j, Network net) noexcept nogil:
    """(layer, kind, k, i) of coordinate j; see incremental_numpy.decode."""
    cdef Coordinate at
    cdef const LayerRow* table = net.table
    cdef Py_ssize_t l = net.n_layers - 1
    while table[l][OFF_W] > j:
        l -= 1
    at.layer, at.k = l, 0
    if j < table[l][OFF_B]:
        at.kind, at.k = WEIGHT, (j - table[l][OFF_W]) // table[l][N_OUT]
        at.i = (j - table[l][OFF_W]) % table[l][N_OUT]
    elif table[l][OFF_GAMMA] < 0 or j < table[l][OFF_GAMMA]:
        at.kind, at.i = BIAS, j - table[l][OFF_B]
    elif j < table[l][OFF_BETA]:
        at.kind, at.i = GAMMA, j - table[l][OFF_GAMMA]
    else:
        at.kind, at.i = BETA, j - table[l][OFF_BETA]
    return at


cdef inline double largest_magnitude(const floating* x, Py_ssize_t n) noexcept nogil:
    # abs(x[:n]).max(), 0 when n == 0
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
            # du = tanh(du) (1 - a²) / (1 + a tanh(du))
            for r in range(N):
                t = tanh_small(du[r])
                du[r] = t * (1.0 - a[r] * a[r]) / (1.0 + a[r] * t)
        else:
            # du = a (1 - a) expm1(du) / (1 + a expm1(du))
            for r in range(N):
                e = expm1_small(du[r])
                du[r] = a[r] * (1.0 - a[r]) * e / (1.0 + a[r] * e)
        return
    for r in range(N):
        du[r] = activation_change(act, u[r], a[r], du[r])


cdef inline double penalty_slope(Network net, Coordinate at, double theta) noexcept nogil:
    """n times the L2 penalty's share of dJ/dθ_j at θ_j = theta (n the sum of the sample
    weights): alpha θ_j for a weight, 0 for a bias, gamma or beta; see
    incremental_numpy.penalty_slope. (Callers skip it when alpha is 0.)"""
    return net.alpha * theta if at.kind == WEIGHT else 0.0


cdef inline double penalty_change(Network net, Coordinate at, double theta,
                                  double delta) noexcept nogil:
    """n times the L2 penalty's share of J(θ + delta e_j) − J(θ) at θ_j = theta: alpha / 2 ·
    delta (2 θ_j + delta) for a weight (exact), 0 else; see incremental_numpy.penalty_change."""
    return 0.5 * net.alpha * delta * (2.0 * theta + delta) if at.kind == WEIGHT else 0.0
