"""Forward pass, loss and backprop of an MLP: the Cython twin of ``mlp_numpy.py`` and
``mlp_numba.py`` (same arguments, same results to round-off). Layout: see ``codes.py``; the
table's columns are (n_in, n_out, off_W, off_b, off_gamma, off_beta, col_off). The work is done
by the nogil functions of mlp.pxi."""
import numpy as np

include "common.pxi"
include "mlp.pxi"


def forward(const floating[:, ::1] X, const floating[::1] params, const int64_t[:, ::1] table,
            int act, bint batch_stats, floating[::1] Z, floating[::1] A, floating[::1] Zhat,
            floating[::1] mean, floating[::1] istd):
    """Fill Z, A (and Zhat) for the whole network; see mlp_numpy.forward."""
    with nogil:
        forward_c(X, params, table, act, batch_stats, Z, A, Zhat, mean, istd)


def loss(const floating[:, ::1] logits, const floating[:, ::1] T, int loss_code,
         floating[::1] rowloss, floating[:, ::1] G, floating[:, ::1] Q):
    """J = mean of the per-sample losses (stored in rowloss); G = dJ/dlogits; Q (n_out, N) the
    transposed loss state; see mlp_numpy.loss."""
    cdef double J
    with nogil:
        J = loss_c(&logits[0, 0], logits.shape[0], logits.shape[1], &T[0, 0], loss_code,
                   &rowloss[0], &G[0, 0], &Q[0, 0])
    return J


def backprop(const floating[:, ::1] X, const floating[::1] params, const int64_t[:, ::1] table,
             int act, const floating[::1] Z, const floating[::1] A, const floating[::1] Zhat,
             const floating[::1] istd, const floating[:, ::1] G, floating[::1] grad,
             floating[::1] work1, floating[::1] work2, Py_ssize_t first):
    """grad = dJ/dparams by reverse mode for layers first .. last; see mlp_numpy.backprop."""
    with nogil:
        backprop_c(X, params, table, act, Z, A, Zhat, istd, &G[0, 0], grad, work1, work2, first)

def small_change_functions(const double[::1] x):
    """expm1_small(x), tanh_small(x) and log1p_small(2 x) at every x: exposed so that the tests
    can check the polynomials against libm."""
    cdef Py_ssize_t n
    cdef double[::1] e = np.empty(x.shape[0]), t = np.empty(x.shape[0]), g = np.empty(x.shape[0])
    for n in range(x.shape[0]):
        e[n], t[n], g[n] = expm1_small(x[n]), tanh_small(x[n]), log1p_small(2 * x[n])
    return {"expm1": np.asarray(e), "tanh": np.asarray(t), "log1p": np.asarray(g)}


def single_tanh(const float[::1] x):
    """tanh_single at every x: exposed so that the tests can check it against libm."""
    cdef Py_ssize_t n
    cdef float[::1] out = np.empty(x.shape[0], dtype=np.float32)
    for n in range(x.shape[0]):
        out[n] = tanh_single(x[n])
    return np.asarray(out)
