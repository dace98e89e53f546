# The bundles of bundles.py as C structs, and their unpacking (included by every .pyx after
# codes.pxi and common.pxi). A def entry point unpacks each bundle it takes once, here, then runs
# nogil code that passes the structs on; docs/design.md, "The kernel interface".
#
# A struct cannot hold a fused type, so a struct's arrays are untyped pointers, each cast to
# floating* (the network's precision) by the function that reads it; NULL stands for an empty
# array (Zhat without BatchNorm). A function whose arguments are all structs takes one more,
# ``floating* precision``, passed as NULL: its type alone picks the precision the function is
# compiled for. Unpacking checks each array as a typed memoryview would (an ndarray of the
# network's dtype, or int64, with the expected number of dimensions, C-contiguous, writable
# when written), for a few nanoseconds instead of a memoryview's ~0.2 µs; the shapes are the
# Python layer's to check (fastgrad/model/workspace.py), and the bounds-checked build
# (FASTGRAD_BOUNDSCHECK=1), whose kernels index these pointers unchecked, checks each one
# against the layer table here too.
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    #ifndef FASTGRAD_BOUNDSCHECK
    #define FASTGRAD_BOUNDSCHECK 0
    #endif
    """
    # 1 in the bounds-checked build (setup.py defines it), else 0: the checks below compile out
    const bint FASTGRAD_BOUNDSCHECK

# one row of the layer table, so that table[l][COL_OFF] reads column COL_OFF of layer l
ctypedef int64_t LayerRow[N_COLUMNS]


cdef struct Network:
    void* params              # (P,) the flat parameter vector
    const LayerRow* table     # (n_layers,) the layer table's rows (codes.py)
    Py_ssize_t n_layers, n_params
    int act, loss             # the hidden activation's and the loss's codes
    int dtype                 # params' numpy type number: cnp.NPY_DOUBLE or cnp.NPY_FLOAT
    double output_divisor     # a row's per-output loss terms' sum is divided by it (codes.py)
    double alpha              # the L2 penalty on the Dense weights: J += alpha/(2n) sum ||W||^2


cdef struct Cache:
    # the cached point on a batch of N samples; per-sample buffers (N * C) hold layer l's
    # (N, n_out) block at N * col_off, per-column ones (C,) its n_out values at col_off
    const void* X             # (N, n_in) the inputs
    void* Z                   # Dense outputs (the last layer's block: the logits)
    void* A                   # activations
    void* Zhat                # normalised values (NULL without BatchNorm)
    void* mean                # BatchNorm's statistics
    void* istd
    Py_ssize_t N


cdef struct LossState:
    const void* T             # (N, n_out) the targets
    void* rowloss             # (N,) per-sample losses
    void* G                   # (N, n_out) dJ/dlogits
    void* Q                   # (n_out, N) the loss state, transposed
    const void* weight        # (N,) the sample weights (train_epoch gathers them)
    const void* weight_sum    # (1,) their sum n, J's divisor (train_epoch writes it)


cdef struct Scratch:
    void* column              # (N,)
    int64_t* rows             # (N,) sample indices
    void* work1               # (N * W,) each
    void* work2


cdef struct OptimizerState:
    int code                  # codes.SGD, ADAM or RMSPROP
    const double* hyper       # (N_HYPER,) in the slots named in codes.py
    int64_t* steps            # (n_layers,) the updates each layer has had
    void* state               # (n_state, P) the optimizer's buffers
    void* new                 # (n_state + 1, P) an update before it is accepted
    Py_ssize_t n_state


cdef struct RunningStats:
    void* mean                # (C,) BatchNorm's running statistics
    void* var
    double momentum


cdef struct EpochPlan:
    const void* X             # (n, n_in) the training set's inputs
    const void* T             # (n, n_out) its targets
    const void* weight        # (n,) its sample weights
    const int64_t* order      # (n,) the samples in the epoch's order
    Py_ssize_t n, batch_size
    bint count_raised


cdef struct SweepPlan:
    const int64_t* order      # (n_steps,) the coordinates in turn (PICK_GREEDILY when greedy)
    Py_ssize_t n_steps
    bint greedy
    int rule                  # codes.GRADIENT or NEWTON
    double lr


cdef inline const floating* layer_input(const floating* X, const floating* A, Py_ssize_t N,
                                        const LayerRow* table, Py_ssize_t l) noexcept nogil:
    # what layer l reads: X for the first layer, the previous layer's activations after it
    if l == 0:
        return X
    return &A[N * table[l - 1][COL_OFF]]


cdef inline Py_ssize_t kind_offset(const LayerRow* table, Py_ssize_t l,
                                   Py_ssize_t kind) noexcept nogil:
    # where layer l's parameters of a kind (WEIGHT, BIAS, GAMMA, BETA) start: each kind's offset
    # column is OFF_W + kind (codes.py numbers them so)
    return table[l][OFF_W + kind]


cdef inline Py_ssize_t max_width(Network net) noexcept nogil:
    # the widest layer's n_out
    cdef Py_ssize_t l, widest = 0
    for l in range(net.n_layers):
        widest = max(widest, net.table[l][N_OUT])
    return widest


cdef inline double loss_divisor(Network net) noexcept nogil:
    # what a row's per-output loss terms are divided by: 1 for cross-entropy, whose row loss is
    # no sum of per-output terms (codes.py, "losses")
    return 1.0 if net.loss == CROSS_ENTROPY else net.output_divisor


# ---------------------------------------------------------------- unpacking (with the GIL)
cdef str _describe(object value):
    if isinstance(value, cnp.ndarray):
        return (f"a {value.ndim}-D {value.dtype} array (C-contiguous: "
                f"{value.flags.c_contiguous}, writable: {value.flags.writeable})")
    return f"a {type(value).__name__}"


cdef void* array_data(object value, int dtype, int ndim, bint written,
                      str name) except? NULL:
    """The data of ``value``, a C-contiguous ndim-D ndarray of numpy type ``dtype``, writable
    when ``written`` (NULL when it is empty); raises TypeError naming the field otherwise."""
    cdef cnp.ndarray array
    cdef int found
    if isinstance(value, cnp.ndarray):
        array = <cnp.ndarray>value
        found = cnp.PyArray_TYPE(array)
        if ((found == dtype or cnp.PyArray_EquivTypenums(found, dtype))
                and cnp.PyArray_NDIM(array) == ndim and cnp.PyArray_IS_C_CONTIGUOUS(array)
                and (not written or cnp.PyArray_ISWRITEABLE(array))):
            return cnp.PyArray_DATA(array) if cnp.PyArray_SIZE(array) > 0 else NULL
    raise TypeError(f"{name} must be a C-contiguous{' writable' if written else ''} {ndim}-D "
                    f"{cnp.PyArray_DescrFromType(dtype)} array; got {_describe(value)}")


cdef inline Network unpack_network(object net, bint written) except *:
    """net = Network(params, table, act, loss, output_divisor, alpha); ``written``: the kernel
    changes params."""
    cdef Network out
    cdef object params = net.params, table = net.table
    out.dtype = cnp.PyArray_TYPE(<cnp.ndarray>params) if isinstance(params, cnp.ndarray) else -1
    if out.dtype != cnp.NPY_DOUBLE and out.dtype != cnp.NPY_FLOAT:
        raise TypeError(f"net.params must be a float64 or float32 array; got {_describe(params)}")
    out.params = array_data(params, out.dtype, 1, written, "net.params")
    out.table = <const LayerRow*>array_data(table, cnp.NPY_INT64, 2, False, "net.table")
    if cnp.PyArray_DIM(<cnp.ndarray>table, 1) != N_COLUMNS:
        raise TypeError(f"net.table must have {N_COLUMNS} columns; got {_describe(table)}")
    out.n_layers = cnp.PyArray_DIM(<cnp.ndarray>table, 0)
    out.n_params = cnp.PyArray_SIZE(<cnp.ndarray>params)
    out.act, out.loss = net.act, net.loss
    out.output_divisor, out.alpha = net.output_divisor, net.alpha
    if FASTGRAD_BOUNDSCHECK:
        check_table(out)
    return out


cdef inline Cache unpack_cache(object cache, Network net, bint written) except *:
    """cache = Cache(X, Z, A, Zhat, mean, istd); ``written``: the kernel fills Z, A, Zhat (and
    mean, istd)."""
    cdef Cache out
    cdef object X = cache.X
    out.X = array_data(X, net.dtype, 2, False, "cache.X")
    out.N = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
    out.Z = array_data(cache.Z, net.dtype, 1, written, "cache.Z")
    out.A = array_data(cache.A, net.dtype, 1, written, "cache.A")
    out.Zhat = array_data(cache.Zhat, net.dtype, 1, written, "cache.Zhat")
    out.mean = array_data(cache.mean, net.dtype, 1, written, "cache.mean")
    out.istd = array_data(cache.istd, net.dtype, 1, written, "cache.istd")
    if FASTGRAD_BOUNDSCHECK:
        N, C = out.N, n_columns(net)
        expect(X, (N, net.table[0][N_IN]), "cache.X")
        expect(cache.Z, (N * C,), "cache.Z")
        expect(cache.A, (N * C,), "cache.A")
        expect(cache.Zhat, (N * C if has_batchnorm(net) else 0,), "cache.Zhat")
        expect(cache.mean, (C,), "cache.mean")
        expect(cache.istd, (C,), "cache.istd")
    return out


cdef inline LossState unpack_loss_state(object state, Network net, Cache cache,
                                        bint written) except *:
    """state = LossState(T, rowloss, G, Q, weight, weight_sum) on the batch of cache;
    ``written``: the kernel fills rowloss, G, Q (the weights are read only, but by
    train_epoch, which checks them writable itself)."""
    cdef LossState out
    out.T = array_data(state.T, net.dtype, 2, False, "state.T")
    out.rowloss = array_data(state.rowloss, net.dtype, 1, written, "state.rowloss")
    out.G = array_data(state.G, net.dtype, 2, written, "state.G")
    out.Q = array_data(state.Q, net.dtype, 2, written, "state.Q")
    out.weight = array_data(state.weight, net.dtype, 1, False, "state.weight")
    out.weight_sum = array_data(state.weight_sum, net.dtype, 1, False, "state.weight_sum")
    if FASTGRAD_BOUNDSCHECK:
        N, n_out = cache.N, net.table[net.n_layers - 1][N_OUT]
        expect(state.T, (N, n_out), "state.T")
        expect(state.rowloss, (N,), "state.rowloss")
        expect(state.G, (N, n_out), "state.G")
        expect(state.Q, (n_out, N), "state.Q")
        expect(state.weight, (N,), "state.weight")
        expect(state.weight_sum, (1,), "state.weight_sum")
    return out


cdef inline Scratch unpack_scratch(object scratch, Network net, Cache cache) except *:
    """scratch = Scratch(column, rows, work1, work2) for the batch of cache, all written."""
    cdef Scratch out
    out.column = array_data(scratch.column, net.dtype, 1, True, "scratch.column")
    out.rows = <int64_t*>array_data(scratch.rows, cnp.NPY_INT64, 1, True, "scratch.rows")
    out.work1 = array_data(scratch.work1, net.dtype, 1, True, "scratch.work1")
    out.work2 = array_data(scratch.work2, net.dtype, 1, True, "scratch.work2")
    if FASTGRAD_BOUNDSCHECK:
        expect(scratch.column, (cache.N,), "scratch.column")
        expect(scratch.rows, (cache.N,), "scratch.rows")
        for work, name in ((scratch.work1, "scratch.work1"), (scratch.work2, "scratch.work2")):
            if len(work) < cache.N * max_width(net):
                raise IndexError(f"{name} holds {len(work)} values; the batch and the widest "
                                 f"layer need {cache.N * max_width(net)}")
    return out


cdef inline OptimizerState unpack_optimizer(object optimizer, Network net) except *:
    """optimizer = OptimizerState(code, hyper, steps, state, new)."""
    cdef OptimizerState out
    cdef object state = optimizer.state
    out.code = optimizer.code
    out.hyper = <const double*>array_data(optimizer.hyper, cnp.NPY_DOUBLE, 1, False,
                                          "optimizer.hyper")
    out.steps = <int64_t*>array_data(optimizer.steps, cnp.NPY_INT64, 1, True, "optimizer.steps")
    out.state = array_data(state, net.dtype, 2, True, "optimizer.state")
    out.new = array_data(optimizer.new, net.dtype, 2, True, "optimizer.new")
    out.n_state = cnp.PyArray_DIM(<cnp.ndarray>state, 0)
    if FASTGRAD_BOUNDSCHECK:
        expect(optimizer.hyper, (N_HYPER,), "optimizer.hyper")
        expect(optimizer.steps, (net.n_layers,), "optimizer.steps")
        expect(state, (out.n_state, net.n_params), "optimizer.state")
        expect(optimizer.new, (out.n_state + 1, net.n_params), "optimizer.new")
    return out


cdef inline RunningStats unpack_running(object running, Network net) except *:
    """running = RunningStats(mean, var, momentum)."""
    cdef RunningStats out
    out.mean = array_data(running.mean, net.dtype, 1, True, "running.mean")
    out.var = array_data(running.var, net.dtype, 1, True, "running.var")
    out.momentum = running.momentum
    if FASTGRAD_BOUNDSCHECK:
        expect(running.mean, (n_columns(net),), "running.mean")
        expect(running.var, (n_columns(net),), "running.var")
    return out


cdef inline EpochPlan unpack_epoch_plan(object plan, Network net, Cache cache) except *:
    """plan = EpochPlan(X, T, weight, order, batch_size, count_raised), gathered batch by
    batch into the cache of a batch of cache.N = batch_size samples."""
    cdef EpochPlan out
    cdef object order = plan.order
    out.X = array_data(plan.X, net.dtype, 2, False, "plan.X")
    out.T = array_data(plan.T, net.dtype, 2, False, "plan.T")
    out.weight = array_data(plan.weight, net.dtype, 1, False, "plan.weight")
    out.order = <const int64_t*>array_data(order, cnp.NPY_INT64, 1, False, "plan.order")
    out.n, out.batch_size, out.count_raised = len(order), plan.batch_size, plan.count_raised
    if out.batch_size != cache.N:
        raise ValueError(f"plan.batch_size ({out.batch_size}) must be the workspace's batch "
                         f"size ({cache.N})")
    if FASTGRAD_BOUNDSCHECK:
        expect(plan.X, (plan.X.shape[0], net.table[0][N_IN]), "plan.X")
        expect(plan.T, (plan.X.shape[0], net.table[net.n_layers - 1][N_OUT]), "plan.T")
        expect(plan.weight, (plan.X.shape[0],), "plan.weight")
        if len(order) and not (0 <= order.min() and order.max() < plan.X.shape[0]):
            raise IndexError(f"plan.order must hold samples in [0, {plan.X.shape[0]}); got "
                             f"[{order.min()}, {order.max()}]")
    return out


cdef inline SweepPlan unpack_plan(object plan, Network net) except *:
    """plan = SweepPlan(order, greedy, rule, lr)."""
    cdef SweepPlan out
    cdef object order = plan.order
    out.order = <const int64_t*>array_data(order, cnp.NPY_INT64, 1, False, "plan.order")
    out.n_steps = cnp.PyArray_SIZE(<cnp.ndarray>order)
    out.greedy, out.rule, out.lr = plan.greedy, plan.rule, plan.lr
    if FASTGRAD_BOUNDSCHECK and len(order) and not (
            (order == PICK_GREEDILY).all() if out.greedy
            else 0 <= order.min() and order.max() < net.n_params):
        raise IndexError(f"plan.order must hold coordinates in [0, {net.n_params}) (or only "
                         f"PICK_GREEDILY, greedy); got [{order.min()}, {order.max()}]")
    return out


cdef inline void* buffer_of(object array, Network net, str name) except? NULL:
    """A loose (P,) array of the network's dtype the kernel writes (grad)."""
    if FASTGRAD_BOUNDSCHECK:
        expect(array, (net.n_params,), name)
    return array_data(array, net.dtype, 1, True, name)


# ---------------------------------------------------------------- the bounds-checked build's checks
cdef inline Py_ssize_t n_columns(Network net) noexcept nogil:
    # C = sum of the layers' widths: the last layer's columns end the per-column buffers
    return net.table[net.n_layers - 1][COL_OFF] + net.table[net.n_layers - 1][N_OUT]


cdef inline bint has_batchnorm(Network net) noexcept nogil:
    cdef Py_ssize_t l
    for l in range(net.n_layers):
        if net.table[l][OFF_GAMMA] >= 0:
            return True
    return False


cdef int expect(object array, tuple shape, str name) except -1:
    if array.shape != shape:
        raise IndexError(f"{name} has shape {array.shape}; the network and the batch need {shape}")
    return 0


cdef int check_table(Network net) except -1:
    """Every offset of the layer table inside params and every layer's columns inside C, each
    layer reading what the previous one writes."""
    cdef Py_ssize_t l, n_in, n_out, P = net.n_params, C = n_columns(net)
    cdef const LayerRow* table = net.table
    for l in range(net.n_layers):
        n_in, n_out = table[l][N_IN], table[l][N_OUT]
        if not (n_in > 0 and n_out > 0 and 0 <= table[l][OFF_W]
                and table[l][OFF_W] + n_in * n_out <= P and 0 <= table[l][OFF_B]
                and table[l][OFF_B] + n_out <= P and 0 <= table[l][COL_OFF]
                and table[l][COL_OFF] + n_out <= C and (l == 0 or n_in == table[l - 1][N_OUT])
                and (table[l][OFF_GAMMA] < 0 or l < net.n_layers - 1
                     and 0 <= table[l][OFF_BETA] and table[l][OFF_GAMMA] + n_out <= P
                     and table[l][OFF_BETA] + n_out <= P)):
            raise IndexError(f"net.table's row {l} ({[table[l][c] for c in range(N_COLUMNS)]}) "
                             f"does not fit {P} parameters and {C} columns")
    return 0
