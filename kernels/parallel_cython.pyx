"""The parallel approach: optimizer updates (``apply_update``) and the fused training step. The
Cython twin of ``parallel_numpy.py`` and ``parallel_numba.py`` (read the numpy docstring for
``hyper``, whose slots codes.py names, ``state`` and ``steps``); the forward pass, loss,
backprop and running statistics come from mlp.pxi. ``apply_update``, ``train_step`` and
``train_epoch`` take the bundles of ``bundles.py`` and unpack them once into the structs of
bundles.pxi; docs/design.md, "The kernel interface".
"""
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

include "codes.pxi"
include "common.pxi"
include "bundles.pxi"
include "mlp.pxi"


cdef bint update_c(int code, const double* hyper, long step, const floating* params,
                   const floating* grad, const floating* state, floating* new, Py_ssize_t n,
                   Py_ssize_t P) noexcept nogil:
    """One update by optimizer ``code`` of n parameters computed into new (row 0 the
    parameters, rows 1: the state; rows are P apart, like state's), params and state untouched;
    returns whether every new value is finite. See parallel_numpy.update. One loop per
    optimizer, its per-step numbers (Adam's bias corrections) computed once before it, so that
    each loop vectorises."""
    cdef Py_ssize_t j
    cdef double lr = hyper[LR], g, buf, m, v, denom, square_avg, avg
    cdef double momentum, weight_decay, beta1, beta2, eps, alpha, step_size, correction2_root
    cdef double inverse_root
    cdef bint finite = True, nesterov
    if code == SGD:
        momentum, weight_decay = hyper[SGD_MOMENTUM], hyper[SGD_WEIGHT_DECAY]
        nesterov = hyper[SGD_NESTEROV] != 0.0
        for j in range(n):
            g = grad[j] + weight_decay * params[j]
            new[P + j] = state[j]
            if momentum != 0.0:
                # torch: buf = g on the first step, then buf = momentum * buf + g
                buf = g if step == 1 else momentum * state[j] + g
                new[P + j] = buf
                g = g + momentum * buf if nesterov else buf
            new[j] = params[j] - lr * g
            finite &= isfinite(new[j]) & isfinite(new[P + j])
    elif code == ADAM:
        beta1, beta2 = hyper[ADAM_BETA1], hyper[ADAM_BETA2]
        eps, weight_decay = hyper[ADAM_EPS], hyper[ADAM_WEIGHT_DECAY]
        step_size = lr / (1.0 - beta1 ** step)
        correction2_root = sqrt(1.0 - beta2 ** step)
        if hyper[ADAM_CORRECT_EPS] != 0.0:  # scikit-learn's Adam (see parallel_numpy.update)
            eps = eps / correction2_root
        inverse_root = 1.0 / correction2_root
        for j in range(n):
            g = grad[j] + weight_decay * params[j]
            m = state[j] + (1.0 - beta1) * (g - state[j])  # exp_avg.lerp_(g, 1 - beta1)
            v = beta2 * state[P + j] + (1.0 - beta2) * g * g
            denom = sqrt(v) * inverse_root + eps  # see parallel_numpy.update
            new[j] = params[j] - step_size * (m / denom)
            new[P + j] = m
            new[2 * P + j] = v
            finite &= isfinite(new[j]) & isfinite(new[P + j]) & isfinite(new[2 * P + j])
    else:  # RMSPROP
        alpha, eps = hyper[RMSPROP_ALPHA], hyper[RMSPROP_EPS]
        momentum, weight_decay = hyper[RMSPROP_MOMENTUM], hyper[RMSPROP_WEIGHT_DECAY]
        for j in range(n):
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
            finite &= isfinite(new[j]) & isfinite(new[P + j]) & isfinite(new[2 * P + j])
    # finite = np.isfinite(new[:rows used, :n]).all(): checked in the loops above as each
    # value is written
    return finite


cdef int apply_update_c(Network net, OptimizerState optimizer, const floating* grad,
                        Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    """The optimizer's update of layers first..last with the gradient grad, applied only once
    it is finite; returns OK or NONFINITE_UPDATE (then nothing changed). See
    parallel_numpy.apply_update."""
    cdef Py_ssize_t n_layers = net.n_layers, P = net.n_params, lo, hi, j, row, l
    cdef floating* params = <floating*>net.params
    cdef floating* buffers = <floating*>optimizer.state
    cdef floating* new = <floating*>optimizer.new
    # the update of params[lo:hi] is computed into new and copied over only once it is finite
    lo = net.table[first][OFF_W]
    hi = net.table[last + 1][OFF_W] if last + 1 < n_layers else P
    if not update_c(optimizer.code, optimizer.hyper, optimizer.steps[first] + 1, &params[lo],
                    &grad[lo], &buffers[lo], &new[lo], hi - lo, P):
        return NONFINITE_UPDATE
    # params[lo:hi] = new[0, lo:hi]; state[:, lo:hi] = new[1:, lo:hi]
    for j in range(lo, hi):
        params[j] = new[j]
    for row in range(optimizer.n_state):
        for j in range(lo, hi):
            buffers[row * P + j] = new[(row + 1) * P + j]
    for l in range(first, last + 1):
        optimizer.steps[l] += 1
    return OK


cdef (double, int) train_step_c(Network net, Cache cache, LossState state,
                                OptimizerState optimizer, floating* grad, Scratch scratch,
                                RunningStats running, Py_ssize_t first,
                                Py_ssize_t last) noexcept nogil:
    """One step moving layers first..last; returns (J, status); see parallel_numpy.train_step."""
    cdef double J
    cdef int status
    forward_c(net, cache, True, <floating*>NULL)
    J = loss_c(net, cache, state, <floating*>NULL)
    if not isfinite(J):
        return J, NONFINITE_LOSS
    backprop_c(net, cache, state, grad, scratch, first)
    status = apply_update_c(net, optimizer, grad, first, last)
    if status != OK:
        return J, status
    update_running_stats_c(net, cache, running, <floating*>NULL)
    return J, OK


cdef inline double seconds_now() noexcept nogil:
    # time.perf_counter()
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + 1e-9 * now.tv_nsec


cdef (Py_ssize_t, Py_ssize_t, int, double, double) train_epoch_c(
        Network net, EpochPlan plan, Cache cache, LossState state, OptimizerState optimizer,
        floating* grad, Scratch scratch, RunningStats running) noexcept nogil:
    """One epoch in one call; returns (steps, raised, status, J, check_seconds), J the running
    loss after a whole epoch; see parallel_numpy.train_epoch."""
    cdef Py_ssize_t size = plan.batch_size, n_in = net.table[0][N_IN]
    cdef Py_ssize_t n_out = net.table[net.n_layers - 1][N_OUT], lo, N, r, k, row
    cdef Py_ssize_t steps = 0, raised = 0, stepped_samples = 0
    cdef floating* X = <floating*>cache.X
    cdef floating* T = <floating*>state.T
    cdef floating* weight = <floating*>state.weight
    cdef floating* weight_sum = <floating*>state.weight_sum
    cdef const floating* X_all = <const floating*>plan.X
    cdef const floating* T_all = <const floating*>plan.T
    cdef const floating* weight_all = <const floating*>plan.weight
    cdef double J, after, start, check_seconds = 0.0, total, running_loss = 0.0
    cdef int status
    lo = 0
    while lo < plan.n:  # for lo in range(0, n, size)
        N = min(size, plan.n - lo)
        # weight[:N] = weight_all[order[lo:lo + N]]; weight_sum[0] = weight[:N].sum()
        total = 0.0
        for r in range(N):
            weight[r] = weight_all[plan.order[lo + r]]
            total += weight[r]
        weight_sum[0] = total
        if weight_sum[0] == 0:
            lo += size
            continue  # a batch without weight has no loss: no step
        # X[:N] = X_all[order[lo:lo + N]]; T[:N] = T_all[order[lo:lo + N]]
        for r in range(N):
            row = plan.order[lo + r]
            for k in range(n_in):
                X[r * n_in + k] = X_all[row * n_in + k]
            for k in range(n_out):
                T[r * n_out + k] = T_all[row * n_out + k]
        # the batch: the first N samples' share of each buffer, since every kernel lays out
        # its buffers by cache.N (see parallel_numpy.batch_bundles)
        cache.N = N
        J, status = train_step_c(net, cache, state, optimizer, grad, scratch, running, 0,
                                 net.n_layers - 1)
        if status != OK:
            return steps, raised, status, J, check_seconds
        steps += 1
        # the running loss: the batches' losses before their steps, weighted by their sizes
        running_loss += J * N
        stepped_samples += N
        if plan.count_raised:
            start = seconds_now()
            forward_c(net, cache, True, <floating*>NULL)
            after = loss_c(net, cache, state, <floating*>NULL)
            raised += after > J
            check_seconds += seconds_now() - start
        lo += size
    return steps, raised, OK, running_loss / max(stepped_samples, 1), check_seconds


def load_batch(const floating[:, ::1] X, const int64_t[::1] labels, floating[:, ::1] T):
    """Check a batch and, for cross-entropy, write T = one-hot(labels); returns OK,
    NONFINITE_INPUT or LABEL_OUT_OF_RANGE; see parallel_numpy.load_batch."""
    cdef Py_ssize_t r, k
    cdef int status = OK
    cdef bint finite = True
    with nogil:
        # finite = np.isfinite(X).all(): an and-reduction with no branch, so that it vectorises
        for r in range(X.shape[0]):
            for k in range(X.shape[1]):
                finite = finite & (isfinite(X[r, k]) != 0)
        status = OK if finite else NONFINITE_INPUT
        if status == OK and labels.shape[0] > 0:
            for r in range(labels.shape[0]):
                if labels[r] < 0 or labels[r] >= T.shape[1]:
                    status = LABEL_OUT_OF_RANGE
            if status == OK:
                # T[:] = 0; T[arange(N), labels] = 1
                for r in range(T.shape[0]):
                    for k in range(T.shape[1]):
                        T[r, k] = 0
                for r in range(labels.shape[0]):
                    T[r, labels[r]] = 1
    return status


def apply_update(net, optimizer, grad, Py_ssize_t first, Py_ssize_t last):
    """The optimizer's update of layers first..last with the gradient grad (aligned with
    net.params); returns OK or NONFINITE_UPDATE (then nothing changed). See
    parallel_numpy.apply_update."""
    cdef Network network = unpack_network(net, True)
    cdef OptimizerState opt = unpack_optimizer(optimizer, network)
    cdef void* g = buffer_of(grad, network, "grad")
    cdef int status
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            status = apply_update_c(network, opt, <double*>g, first, last)
        else:
            status = apply_update_c(network, opt, <float*>g, first, last)
    return status


def train_step(net, cache, state, optimizer, grad, scratch, running, Py_ssize_t first,
               Py_ssize_t last):
    """One step on the batch (cache.X, state.T, state.weight) moving layers first..last;
    returns (J, status), status OK, NONFINITE_LOSS or NONFINITE_UPDATE (and then nothing
    changed). See parallel_numpy.train_step."""
    cdef Network network = unpack_network(net, True)
    cdef Cache cached = unpack_cache(cache, network, True)
    cdef LossState losses = unpack_loss_state(state, network, cached, True)
    cdef OptimizerState opt = unpack_optimizer(optimizer, network)
    cdef void* g = buffer_of(grad, network, "grad")
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    cdef RunningStats stats = unpack_running(running, network)
    cdef double J
    cdef int status
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            J, status = train_step_c(network, cached, losses, opt, <double*>g, work, stats,
                                     first, last)
        else:
            J, status = train_step_c(network, cached, losses, opt, <float*>g, work, stats,
                                     first, last)
    return J, status


def train_epoch(net, plan, cache, state, optimizer, grad, scratch, running):
    """One epoch of the parallel approach in one call: each batch of plan.order gathered into
    cache.X, state.T and state.weight (their sum into state.weight_sum), then a step on every
    layer (none for a batch whose weights sum to zero); returns (steps, raised, status, J,
    check_seconds). See parallel_numpy.train_epoch."""
    cdef Network network = unpack_network(net, True)
    cdef Cache cached = unpack_cache(cache, network, True)
    cdef LossState losses = unpack_loss_state(state, network, cached, True)
    cdef EpochPlan epoch = unpack_epoch_plan(plan, network, cached)
    cdef OptimizerState opt = unpack_optimizer(optimizer, network)
    cdef void* g = buffer_of(grad, network, "grad")
    cdef Scratch work = unpack_scratch(scratch, network, cached)
    cdef RunningStats stats = unpack_running(running, network)
    cdef Py_ssize_t steps, raised
    cdef double J, check_seconds
    cdef int status
    # the batches are gathered into cache.X, state.T and state.weight (and weight_sum): written
    array_data(cache.X, network.dtype, 2, True, "cache.X")
    array_data(state.T, network.dtype, 2, True, "state.T")
    array_data(state.weight, network.dtype, 1, True, "state.weight")
    array_data(state.weight_sum, network.dtype, 1, True, "state.weight_sum")
    with nogil:
        if network.dtype == cnp.NPY_DOUBLE:
            steps, raised, status, J, check_seconds = train_epoch_c(
                network, epoch, cached, losses, opt, <double*>g, work, stats)
        else:
            steps, raised, status, J, check_seconds = train_epoch_c(
                network, epoch, cached, losses, opt, <float*>g, work, stats)
    return steps, raised, status, J, check_seconds
