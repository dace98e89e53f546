# The forward pass, loss, backprop and BatchNorm's running statistics as nogil functions on
# the bundle structs, included by mlp_cython.pyx (which wraps them for Python),
# parallel_cython.pyx (whose fused training step calls them) and sequential_cython.pyx.
# Include codes.pxi, common.pxi and bundles.pxi first.


cdef void forward_c(Network net, Cache cache, bint batch_stats,
                    floating* precision) noexcept nogil:
    """Fill cache.Z, A (and Zhat, and with batch_stats mean, istd) for the whole network; see
    mlp_numpy.forward."""
    cdef Py_ssize_t N = cache.N, n_layers = net.n_layers, l
    cdef Py_ssize_t n_in, n_out, off_gamma, off_beta, c0
    cdef const LayerRow* table = net.table
    cdef const floating* params = <const floating*>net.params
    cdef const floating* X = <const floating*>cache.X
    cdef floating* Z = <floating*>cache.Z
    cdef floating* A = <floating*>cache.A
    cdef floating* zhat = <floating*>cache.Zhat
    cdef floating* mean = <floating*>cache.mean
    cdef floating* istd = <floating*>cache.istd
    cdef const floating* a_in
    cdef floating* z
    cdef floating* a
    for l in range(n_layers):
        n_in, n_out, c0 = table[l][N_IN], table[l][N_OUT], table[l][COL_OFF]
        off_gamma, off_beta = table[l][OFF_GAMMA], table[l][OFF_BETA]
        a_in = layer_input(X, A, N, table, l)
        z = &Z[N * c0]
        if l < n_layers - 1 and off_gamma < 0:
            # z = a_in @ W, then z += b and a = act(z) in one pass
            gemm(c'N', c'N', <int>N, <int>n_out, <int>n_in, a_in, <int>n_in,
                 &params[table[l][OFF_W]], <int>n_out, z, <int>n_out)
            add_bias_and_activate(net.act, &params[table[l][OFF_B]], z, &A[N * c0], N, n_out)
            continue
        # z = a_in @ W + b
        dense(a_in, N, n_in, &params[table[l][OFF_W]], &params[table[l][OFF_B]], n_out, z)
        if l == n_layers - 1:
            break
        a = &A[N * c0]
        if batch_stats:
            column_stats(z, N, n_out, n_out, &mean[c0], &istd[c0])
        normalise_and_activate(net.act, z, N, n_out, zhat + N * c0, &params[off_gamma],
                               &params[off_beta], &mean[c0], &istd[c0], a)


cdef double weight_penalty(Network net, floating* precision) noexcept nogil:
    """alpha / 2 · Σ_l ‖W_l‖², the L2 penalty times n (J holds it divided by the sum n of the
    sample weights); see mlp_numpy.weight_penalty."""
    cdef const floating* params = <const floating*>net.params
    cdef Py_ssize_t l, j, k, off_W, end
    cdef double total = 0.0
    cdef double partial[8]
    for l in range(net.n_layers):
        off_W = net.table[l][OFF_W]
        end = off_W + net.table[l][N_IN] * net.table[l][N_OUT]
        # total += (W_l ** 2).sum(), in eight running sums (one sum would wait on each addition
        # before the next), added up in order at the end
        for k in range(8):
            partial[k] = 0.0
        j = off_W
        while j + 8 <= end:
            for k in range(8):
                partial[k] += <double>params[j + k] * params[j + k]
            j += 8
        while j < end:
            partial[0] += <double>params[j] * params[j]
            j += 1
        for k in range(8):
            total += partial[k]
    return 0.5 * net.alpha * total


cdef double loss_c(Network net, Cache cache, LossState state,
                   floating* precision) noexcept nogil:
    """J = the weighted mean of the per-sample losses of the logits (the last layer's block of
    cache.Z) against state.T, plus the L2 penalty: with n = state.weight_sum, J = Σ_r weight_r
    rowloss_r / n + alpha / (2 n) Σ_l ‖W_l‖². Fills state.rowloss (the per-sample losses,
    unweighted), state.G (N, n_out) = dJ/dlogits (weighted) and state.Q (n_out, N), the
    transposed loss state; see mlp_numpy.loss."""
    cdef Py_ssize_t N = cache.N, out = net.n_layers - 1, r, c
    cdef Py_ssize_t n_out = net.table[out][N_OUT]
    cdef const floating* logits = (<const floating*>cache.Z) + N * net.table[out][COL_OFF]
    cdef const floating* T = <const floating*>state.T
    cdef const floating* weight = <const floating*>state.weight
    cdef floating* rowloss = <floating*>state.rowloss
    cdef floating* G = <floating*>state.G
    cdef floating* Q = <floating*>state.Q
    # n in the network's precision for the softmax's G (float / float, as (Q - T) / N was), in
    # double elsewhere
    cdef floating n_own = (<const floating*>state.weight_sum)[0], w_own
    cdef double n = n_own, divisor = loss_divisor(net), total = 0.0, shift, row_total, dot, J
    cdef double* q
    if net.loss == CROSS_ENTROPY:
        # the softmax with its exponentials in one pass over the whole block, which vectorises
        # (row_loss_and_state's arithmetic, reordered): E = logits - the row's max, then
        # E = exp(E); each row's loss log(sum E) + max - t @ z; Q = E / sum E;
        # G = (Q - T) * weight / n
        q = <double*>malloc(N * n_out * sizeof(double))
        for r in range(N):
            shift = logits[r * n_out]
            for c in range(1, n_out):
                shift = max(shift, <double>logits[r * n_out + c])
            rowloss[r] = shift  # kept here until the row's loss replaces it
            for c in range(n_out):
                q[r * n_out + c] = logits[r * n_out + c] - shift
        for c in range(N * n_out):
            q[c] = exp_double(q[c])
        for r in range(N):
            row_total = 0.0
            dot = 0.0
            for c in range(n_out):
                row_total += q[r * n_out + c]
                dot += T[r * n_out + c] * logits[r * n_out + c]
            rowloss[r] = log(row_total) + rowloss[r] - dot
            w_own = weight[r]  # (held here: the stores to G below might alias weight)
            for c in range(n_out):
                Q[c * N + r] = q[r * n_out + c] / row_total
                G[r * n_out + c] = (Q[c * N + r] - T[r * n_out + c]) * w_own / n_own
            total += w_own * rowloss[r]
        free(q)
    elif net.loss == BINARY_CROSS_ENTROPY:
        # the sigmoids in one pass over the whole block, which vectorises (row_loss_and_state's
        # arithmetic, reordered): Q = sigmoid(logits).T; each row's loss sum(softplus(z) -
        # t z) / divisor; G = (Q - T) / divisor * weight / n
        for c in range(n_out):
            for r in range(N):
                Q[c * N + r] = sigmoid(logits[r * n_out + c])
        for r in range(N):
            row_total = 0.0
            for c in range(n_out):
                row_total += (max(<double>logits[r * n_out + c], 0.0)
                              - T[r * n_out + c] * logits[r * n_out + c]
                              + log1p(exp(-abs(<double>logits[r * n_out + c]))))
            rowloss[r] = row_total if divisor == 1.0 else row_total / divisor
            w_own = weight[r]
            for c in range(n_out):
                G[r * n_out + c] = (Q[c * N + r] - T[r * n_out + c] if divisor == 1.0
                                    else (Q[c * N + r] - T[r * n_out + c]) / divisor) * w_own / n
            total += w_own * rowloss[r]
    else:
        # mse and poisson, row by row
        q = <double*>malloc(n_out * sizeof(double))
        for r in range(N):
            rowloss[r] = row_loss_and_state(net.loss, logits + r * n_out, T + r * n_out, q, n_out,
                                            divisor)
            w_own = weight[r]
            for c in range(n_out):
                Q[c * N + r] = q[c]
                # G = 2 q / divisor * weight / n for mse, (q - t) / divisor * weight / n
                G[r * n_out + c] = (2.0 * Q[c * N + r] if net.loss == MSE
                                    else Q[c * N + r] - T[r * n_out + c]) / divisor * w_own / n
            total += w_own * rowloss[r]
        free(q)
    J = total / n
    if net.alpha != 0:
        J += weight_penalty(net, <floating*>NULL) / n
    return J


cdef void backprop_c(Network net, Cache cache, LossState state, floating* grad, Scratch scratch,
                     Py_ssize_t first) noexcept nogil:
    """grad = dJ/dparams by reverse mode for layers first .. last, the L2 penalty's alpha / n · W
    included (n = state.weight_sum); see mlp_numpy.backprop. delta (dJ/dz of the current
    layer) alternates between scratch.work1 and work2."""
    cdef Py_ssize_t N = cache.N, n_layers = net.n_layers, l, r, c, j, off_W
    cdef Py_ssize_t n_in, n_out, off_gamma, off_beta, c0
    cdef const LayerRow* table = net.table
    cdef const floating* params = <const floating*>net.params
    cdef const floating* X = <const floating*>cache.X
    cdef const floating* A = <const floating*>cache.A
    cdef const floating* Zhat = <const floating*>cache.Zhat
    cdef const floating* istd = <const floating*>cache.istd
    cdef floating* work1 = <floating*>scratch.work1
    cdef floating* work2 = <floating*>scratch.work2
    cdef const floating* delta = <const floating*>state.G
    cdef const floating* a_in
    cdef const floating* a_prev
    cdef const floating* zhat
    cdef floating* du
    cdef double decay = 0.0
    if net.alpha != 0:
        decay = net.alpha / (<const floating*>state.weight_sum)[0]
    # each layer's bias gradient gb = delta.sum(axis=0): the last layer's here, the others' in
    # the pass that finishes their delta
    column_sums(delta, &grad[table[n_layers - 1][OFF_B]], N, table[n_layers - 1][N_OUT])
    for l in range(n_layers - 1, first - 1, -1):
        n_in, n_out = table[l][N_IN], table[l][N_OUT]
        a_in = layer_input(X, A, N, table, l)
        # gW = a_in.T @ delta
        off_W = table[l][OFF_W]
        gemm(c'T', c'N', <int>n_in, <int>n_out, <int>N, a_in, <int>n_in, delta, <int>n_out,
             &grad[off_W], <int>n_out)
        if net.alpha != 0:
            # gW += alpha / n * W: the penalty's alpha / (2 n) ‖W‖²
            for j in range(off_W, off_W + n_in * n_out):
                grad[j] += decay * params[j]
        if l == first:
            break
        du = work1 if (n_layers - 1 - l) % 2 == 0 else work2
        # du = delta @ W.T, then du *= act'(a_prev) in the pass that sums du's columns: layer
        # l-1's bias gradient, or with BatchNorm its beta's
        gemm(c'N', c'T', <int>N, <int>n_in, <int>n_out, delta, <int>n_out,
             &params[table[l][OFF_W]], <int>n_out, du, <int>n_in)
        a_prev = &A[N * table[l - 1][COL_OFF]]
        off_gamma, off_beta = table[l - 1][OFF_GAMMA], table[l - 1][OFF_BETA]
        c0 = table[l - 1][COL_OFF]
        if off_gamma < 0:
            slope_and_column_sums(net.act, a_prev, du, &grad[table[l - 1][OFF_B]], N, n_in)
        else:
            zhat = &Zhat[N * c0]
            # g_beta = du.sum(axis=0); g_gamma = (du * zhat).sum(axis=0)
            slope_and_column_sums(net.act, a_prev, du, &grad[off_beta], N, n_in)
            for c in range(n_in):
                grad[off_gamma + c] = 0
            for r in range(N):
                for c in range(n_in):
                    grad[off_gamma + c] += du[r * n_in + c] * zhat[r * n_in + c]
            # du = batchnorm_jacobian(du * gamma, zhat, istd)
            batchnorm_jacobian(du, N, n_in, n_in, zhat, n_in, &istd[c0], &params[off_gamma])
            column_sums(du, &grad[table[l - 1][OFF_B]], N, n_in)
        delta = du


cdef void update_running_stats_c(Network net, Cache cache, RunningStats running,
                                 floating* precision) noexcept nogil:
    """BatchNorm's running statistics after a training batch of N = cache.N samples whose
    statistics cache.mean, istd hold; see mlp_numpy.update_running_stats."""
    cdef Py_ssize_t N = cache.N, l, c
    cdef const floating* mean = <const floating*>cache.mean
    cdef const floating* istd = <const floating*>cache.istd
    cdef floating* running_mean = <floating*>running.mean
    cdef floating* running_var = <floating*>running.var
    cdef double momentum = running.momentum, variance
    for l in range(net.n_layers - 1):
        if net.table[l][OFF_GAMMA] < 0:
            continue  # a layer without BatchNorm
        for c in range(net.table[l][COL_OFF], net.table[l][COL_OFF] + net.table[l][N_OUT]):
            # the biased variance 1/istd² - eps, made unbiased
            variance = (1.0 / (istd[c] * istd[c]) - BN_EPS) * N / max(N - 1, 1)
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * variance
