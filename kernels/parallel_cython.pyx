"""The parallel approach: optimizer updates and the fused training step. The Cython twin of
``parallel_numpy.py`` and ``parallel_numba.py`` (read the numpy docstring for ``hyper``,
``state`` and ``steps``); the forward pass, loss and backprop come from mlp.pxi."""
include "common.pxi"
include "mlp.pxi"

cdef enum:
    SGD = 0
    ADAM = 1
    RMSPROP = 2

OPTIMIZER_CODES = {"SGD": SGD, "ADAM": ADAM, "RMSPROP": RMSPROP}


cdef bint update_c(int opt, const double[::1] hyper, long step, const floating* params,
                   const floating* grad, const floating* state, floating* new, Py_ssize_t n,
                   Py_ssize_t P) noexcept nogil:
    """One update of n parameters computed into new (row 0 the parameters, rows 1: the state;
    rows are P apart, like state's), params and state untouched; returns whether every new value
    is finite. See parallel_numpy.update."""
    cdef Py_ssize_t j, row, n_rows = 2 if opt == SGD else 3
    cdef double lr = hyper[0], g, buf, m, v, denom, square_avg, avg
    cdef double momentum, weight_decay, beta1, beta2, eps, alpha
    cdef bint finite = True
    for j in range(n):
        if opt == SGD:
            momentum, weight_decay = hyper[1], hyper[2]
            g = grad[j] + weight_decay * params[j]
            new[P + j] = state[j]
            if momentum != 0.0:
                # torch: buf = g on the first step, then buf = momentum * buf + g
                buf = g if step == 1 else momentum * state[j] + g
                new[P + j] = buf
                g = g + momentum * buf if hyper[3] != 0.0 else buf
            new[j] = params[j] - lr * g
        elif opt == ADAM:
            beta1, beta2, eps, weight_decay = hyper[1], hyper[2], hyper[3], hyper[4]
            g = grad[j] + weight_decay * params[j]
            m = state[j] + (1.0 - beta1) * (g - state[j])  # exp_avg.lerp_(g, 1 - beta1)
            v = beta2 * state[P + j] + (1.0 - beta2) * g * g
            denom = sqrt(v) / sqrt(1.0 - beta2 ** step) + eps
            new[j] = params[j] - (lr / (1.0 - beta1 ** step)) * (m / denom)
            new[P + j] = m
            new[2 * P + j] = v
        else:
            alpha, eps, momentum, weight_decay = hyper[1], hyper[2], hyper[3], hyper[4]
            g = grad[j] + weight_decay * params[j]
            square_avg = alpha * state[j] + (1.0 - alpha) * g * g
            avg = sqrt(square_avg) + eps
            new[P + j] = square_avg
            if momentum > 0.0:
                new[2 * P + j] = momentum * state[P + j] + g / avg
                new[j] = params[j] - lr * new[2 * P + j]
            else:
                new[2 * P + j] = state[P + j]
                new[j] = params[j] - lr * (g / avg)
    for row in range(n_rows):
        for j in range(n):
            finite &= isfinite(new[row * P + j])
    return finite


cdef void update_running_stats_c(const int64_t[:, ::1] table, Py_ssize_t N,
                                 const floating[::1] mean, const floating[::1] istd,
                                 floating[::1] running_mean, floating[::1] running_var,
                                 double momentum) noexcept nogil:
    """BatchNorm's running statistics after a training batch; see parallel_numpy."""
    cdef Py_ssize_t l, c
    cdef double variance
    for l in range(table.shape[0] - 1):
        if table[l, 4] < 0:
            continue
        for c in range(table[l, 6], table[l, 6] + table[l, 1]):
            variance = (1.0 / (istd[c] * istd[c]) - BN_EPS) * N / max(N - 1, 1)
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * variance


def load_batch(const floating[:, ::1] X, const int64_t[::1] labels, floating[:, ::1] T):
    """Check a batch and, for cross-entropy, write T = one-hot(labels); see parallel_numpy."""
    cdef Py_ssize_t r, k
    cdef int status = 0
    cdef bint finite = True
    with nogil:
        # an and-reduction with no branch, so that the loop vectorises
        for r in range(X.shape[0]):
            for k in range(X.shape[1]):
                finite = finite & (isfinite(X[r, k]) != 0)
        status = 0 if finite else 1
        if status == 0 and labels.shape[0] > 0:
            for r in range(labels.shape[0]):
                if labels[r] < 0 or labels[r] >= T.shape[1]:
                    status = 2
            if status == 0:
                for r in range(T.shape[0]):
                    for k in range(T.shape[1]):
                        T[r, k] = 0
                for r in range(labels.shape[0]):
                    T[r, labels[r]] = 1
    return status


def update(int opt, const double[::1] hyper, long step, const floating[::1] params,
           const floating[::1] grad, const floating[:, ::1] state, floating[:, ::1] new):
    """One update computed into new; see parallel_numpy.update."""
    cdef bint finite
    with nogil:
        finite = update_c(opt, hyper, step, &params[0], &grad[0], &state[0, 0], &new[0, 0],
                          params.shape[0], params.shape[0])
    return finite


def update_running_stats(const int64_t[:, ::1] table, Py_ssize_t N, const floating[::1] mean,
                         const floating[::1] istd, floating[::1] running_mean,
                         floating[::1] running_var, double momentum):
    """BatchNorm's running statistics after a training batch; see parallel_numpy."""
    with nogil:
        update_running_stats_c(table, N, mean, istd, running_mean, running_var, momentum)


def train_step(const floating[:, ::1] X, const floating[:, ::1] T, floating[::1] params,
               const int64_t[:, ::1] table, int act, int loss_code, Py_ssize_t first,
               Py_ssize_t last, int opt, const double[::1] hyper, int64_t[::1] steps,
               floating[:, ::1] state, floating[:, ::1] new, floating[::1] Z, floating[::1] A,
               floating[::1] Zhat, floating[::1] mean, floating[::1] istd,
               floating[::1] rowloss, floating[:, ::1] G, floating[:, ::1] Q,
               floating[::1] grad, floating[::1] work1, floating[::1] work2,
               floating[::1] running_mean, floating[::1] running_var, double bn_momentum):
    """One step moving layers first..last; returns (loss, status). See parallel_numpy.train_step."""
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], P = params.shape[0], lo, hi, j, row
    cdef Py_ssize_t n_out = table[n_layers - 1, 1], l
    cdef double J
    cdef int status = 0
    with nogil:
        forward_c(X, params, table, act, True, Z, A, Zhat, mean, istd)
        J = loss_c(&Z[N * table[n_layers - 1, 6]], N, n_out, &T[0, 0], loss_code, &rowloss[0],
                   &G[0, 0], &Q[0, 0])
        if not isfinite(J):
            status = 1
        else:
            backprop_c(X, params, table, act, Z, A, Zhat, istd, &G[0, 0], grad, work1, work2,
                       first)
            lo = table[first, 2]
            hi = table[last + 1, 2] if last + 1 < n_layers else P
            if not update_c(opt, hyper, steps[first] + 1, &params[lo], &grad[lo], &state[0, lo],
                            &new[0, lo], hi - lo, P):
                status = 2
            else:
                for j in range(lo, hi):
                    params[j] = new[0, j]
                for row in range(state.shape[0]):
                    for j in range(lo, hi):
                        state[row, j] = new[row + 1, j]
                for l in range(first, last + 1):
                    steps[l] += 1
                update_running_stats_c(table, N, mean, istd, running_mean, running_var,
                                       bn_momentum)
    return J, status
