# The forward pass, loss and backprop as nogil functions, included by mlp_cython.pyx (which
# wraps them for Python) and parallel_cython.pyx (whose fused training step calls them).
# Include common.pxi first.


cdef inline floating* data(floating[::1] buf) noexcept nogil:
    # a pointer to the buffer, NULL when it is empty (Zhat without BatchNorm)
    return &buf[0] if buf.shape[0] > 0 else NULL


cdef void forward_c(const floating[:, ::1] X, const floating[::1] params,
                    const int64_t[:, ::1] table, int act, bint batch_stats, floating[::1] Z,
                    floating[::1] A, floating[::1] Zhat, floating[::1] mean,
                    floating[::1] istd) noexcept nogil:
    """Fill Z, A (and Zhat) for the whole network; see mlp_numpy.forward."""
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], l, r, c
    cdef Py_ssize_t n_in, n_out, off_gamma, off_beta, c0
    cdef const floating* a_in
    cdef floating* z
    cdef floating* a
    cdef floating* zhat = data(Zhat)
    for l in range(n_layers):
        n_in, n_out, off_gamma, off_beta, c0 = table[l, 0], table[l, 1], table[l, 4], table[l, 5], table[l, 6]
        a_in = &X[0, 0] if l == 0 else &A[N * table[l - 1, 6]]
        z = &Z[N * c0]
        dense(a_in, N, n_in, &params[table[l, 2]], &params[table[l, 3]], n_out, z)
        if l == n_layers - 1:
            break
        a = &A[N * c0]
        if off_gamma >= 0:
            if batch_stats:
                column_stats(z, N, n_out, n_out, &mean[c0], &istd[c0])
            normalise_and_activate(act, z, N, n_out, zhat + N * c0, &params[off_gamma],
                                   &params[off_beta], &mean[c0], &istd[c0], a)
        else:
            activate_all(act, z, a, N * n_out)


cdef double loss_c(const floating* logits, Py_ssize_t N, Py_ssize_t n_out, const floating* T,
                   int loss_code, floating* rowloss, floating* G, floating* Q) noexcept nogil:
    """J = mean of the per-sample losses (stored in rowloss); G (N, n_out) = dJ/dlogits; Q
    (n_out, N) the transposed loss state; see mlp_numpy.loss."""
    cdef Py_ssize_t r, c
    cdef double total = 0.0
    cdef double* q = <double*>malloc(n_out * sizeof(double))
    for r in range(N):
        rowloss[r] = row_loss_and_state(loss_code, logits + r * n_out, T + r * n_out, q, n_out)
        for c in range(n_out):
            Q[c * N + r] = q[c]
            # G = (q - t) / N, or 2 q / (n_out N) for mse
            G[r * n_out + c] = (2.0 * Q[c * N + r] / n_out if loss_code == MSE
                                else Q[c * N + r] - T[r * n_out + c]) / N
        total += rowloss[r]
    free(q)
    return total / N


cdef void backprop_c(const floating[:, ::1] X, const floating[::1] params,
                     const int64_t[:, ::1] table, int act, const floating[::1] Z,
                     const floating[::1] A, const floating[::1] Zhat, const floating[::1] istd,
                     const floating* G, floating[::1] grad, floating[::1] work1,
                     floating[::1] work2, Py_ssize_t first) noexcept nogil:
    """grad = dJ/dparams by reverse mode for layers first .. last; see mlp_numpy.backprop.
    delta (dJ/dz of the current layer) alternates between work1 and work2."""
    cdef Py_ssize_t N = X.shape[0], n_layers = table.shape[0], l, r, c
    cdef Py_ssize_t n_in, n_out, off_gamma, off_beta, c0
    cdef const floating* delta = G
    cdef const floating* a_in
    cdef const floating* a_prev
    cdef const floating* zhat
    cdef floating* gb
    cdef floating* du
    for l in range(n_layers - 1, first - 1, -1):
        n_in, n_out = table[l, 0], table[l, 1]
        a_in = &X[0, 0] if l == 0 else &A[N * table[l - 1, 6]]
        # gW = a_in.T @ delta
        gemm(c'T', c'N', <int>n_in, <int>n_out, <int>N, a_in, <int>n_in, delta, <int>n_out,
             &grad[table[l, 2]], <int>n_out)
        # gb = delta.sum(axis=0)
        gb = &grad[table[l, 3]]
        for c in range(n_out):
            gb[c] = 0
        for r in range(N):
            for c in range(n_out):
                gb[c] += delta[r * n_out + c]
        if l == first:
            break
        du = &work1[0] if (n_layers - 1 - l) % 2 == 0 else &work2[0]
        # du = (delta @ W.T) * act'(a_prev)
        gemm(c'N', c'T', <int>N, <int>n_in, <int>n_out, delta, <int>n_out,
             &params[table[l, 2]], <int>n_out, du, <int>n_in)
        a_prev = &A[N * table[l - 1, 6]]
        multiply_by_slope(act, a_prev, du, N * n_in)
        off_gamma, off_beta, c0 = table[l - 1, 4], table[l - 1, 5], table[l - 1, 6]
        if off_gamma >= 0:
            zhat = &Zhat[N * c0]
            # g_gamma = (du * zhat).sum(axis=0); g_beta = du.sum(axis=0)
            for c in range(n_in):
                grad[off_gamma + c] = 0
                grad[off_beta + c] = 0
            for r in range(N):
                for c in range(n_in):
                    grad[off_gamma + c] += du[r * n_in + c] * zhat[r * n_in + c]
                    grad[off_beta + c] += du[r * n_in + c]
            batchnorm_jacobian(du, N, n_in, n_in, zhat, n_in, &istd[c0], &params[off_gamma])
        delta = du
