"""Forward pass, loss, backprop and BatchNorm's running statistics of an MLP: the Cython twin
of ``mlp_numpy.py`` and ``mlp_numba.py`` (same entry points, same results to round-off). Each
entry point takes the bundles of ``bundles.py`` and unpacks them once into the structs of
bundles.pxi; the work is done by the nogil functions of mlp.pxi. Layout: see ``codes.py``;
docs/design.md, "The kernel interface"."""
import numpy as np

include "codes.pxi"
include "common.pxi"
include "bundles.pxi"
include "mlp.pxi"


def forward(net, cache, bint batch_stats):
    """Fill cache.Z, A (and Zhat, and with batch_stats mean, istd) for the whole network; see
    mlp_numpy.forward."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, True)
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            forward_c(network, cached, batch_stats, <double*>NULL)
        else:
            forward_c(network, cached, batch_stats, <float*>NULL)


def loss(net, cache, state):
    """J = the weighted mean (weights state.weight, over their sum state.weight_sum) of the
    per-sample losses (stored, unweighted, in state.rowloss) of the logits in cache.Z, plus the
    L2 penalty; state.G = dJ/dlogits; state.Q (n_out, N) the transposed loss state; see
    mlp_numpy.loss."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef LossState losses = unpack_loss_state(state, network, cached, True)
    cdef double J
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            J = loss_c(network, cached, losses, <double*>NULL)
        else:
            J = loss_c(network, cached, losses, <float*>NULL)
    return J


def backprop(net, cache, state, grad, scratch, Py_ssize_t first):
    """grad = dJ/dparams by reverse mode for layers first .. last (first = 0: all of them), the
    L2 penalty's share included; see mlp_numpy.backprop."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef LossState losses = unpack_loss_state(state, network, cached, False)
    cdef void* g = buffer_of(grad, network, "grad")
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            backprop_c(network, cached, losses, <double*>g, work, first)
        else:
            backprop_c(network, cached, losses, <float*>g, work, first)


def update_running_stats(net, cache, running):
    """BatchNorm's running statistics after a training batch of len(cache.X) samples; see
    mlp_numpy.update_running_stats."""
    cdef Network network = unpack_network(net, False)
    cdef Cache cached = unpack_cache(cache, network, False)
    cdef RunningStats stats = unpack_running(running, network)
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            update_running_stats_c(network, cached, stats, <double*>NULL)
        else:
            update_running_stats_c(network, cached, stats, <float*>NULL)


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


def double_functions(const double[::1] x):
    """exp_double(x), and tanh and sigmoid by activate_all (the loops the forward pass runs),
    at every x: exposed so that the tests can measure their error in ulps."""
    cdef Py_ssize_t n
    cdef double[::1] e = np.empty(x.shape[0]), t = np.empty(x.shape[0]), s = np.empty(x.shape[0])
    for n in range(x.shape[0]):
        e[n] = exp_double(x[n])
    activate_all(TANH, &x[0], &t[0], x.shape[0])
    activate_all(SIGMOID, &x[0], &s[0], x.shape[0])
    return {"exp": np.asarray(e), "tanh": np.asarray(t), "sigmoid": np.asarray(s)}
