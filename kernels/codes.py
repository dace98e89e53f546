"""Every integer that means something to the kernels, named once, for all three backends: the
numpy and Numba kernels import this module; setup.py writes ``codes.pxi`` from it for the Cython
kernels (``tests/test_codes.py`` checks the generated file against this one). The generator
takes every ``NAME = int``, ``NAME = float`` and ``NAME = (floats)`` assignment and leaves out
the name tables the Python layer reads (dicts, tuples of strings); it rejects anything else.
See docs/design.md, "The kernel interface".

The network's layout reaches the kernels as an int64 array ``table`` of shape (n_layers, 7):

    table[l] = (n_in, n_out, off_W, off_b, off_gamma, off_beta, col_off)

``off_*`` are offsets into the flat parameter vector (``off_gamma = off_beta = -1`` for a layer
without BatchNorm, always so for the last layer). Cached per-sample arrays (Dense outputs ``Z``,
activations ``A``, normalised ``Zhat``) live in flat buffers of length ``N * sum(n_out)`` where
layer l's block is ``buf[N*col_off : N*(col_off + n_out)].reshape(N, n_out)``; per-column
statistics (``mean``, ``istd``) live in buffers of length ``sum(n_out)`` at ``col_off``.
"""

# the columns of the layer table
N_IN, N_OUT, OFF_W, OFF_B, OFF_GAMMA, OFF_BETA, COL_OFF = 0, 1, 2, 3, 4, 5, 6
N_COLUMNS = 7

# activations (hidden layers)
IDENTITY, TANH, RELU, SIGMOID = 0, 1, 2, 3
ACTIVATIONS = {"identity": IDENTITY, "tanh": TANH, "relu": RELU, "sigmoid": SIGMOID}

# losses (on the last layer's output, the logits). Every loss but cross-entropy has one term per
# output, and a row's loss is the sum of its terms divided by the network's ``output_divisor``
# (bundles.Network): n_out for a mean over the outputs (PyTorch's), 1 for a sum (scikit-learn's
# multi-label and Poisson losses), twice either for the squared error, which is half the mse:
# "squared_error" is the MSE kernel with a divisor of 2 n_out (or 2). Cross-entropy's divisor is 1.
#   CROSS_ENTROPY         softmax + negative log-likelihood of one-hot targets
#   MSE                   (z - t)² per output
#   BINARY_CROSS_ENTROPY  softplus(z) - t z per output: one sigmoid per output (multi-label)
#   POISSON               exp(z) - t z per output: log link, the mean is exp(z)
CROSS_ENTROPY, MSE, BINARY_CROSS_ENTROPY, POISSON = 0, 1, 2, 3
LOSSES = {"cross_entropy": CROSS_ENTROPY, "mse": MSE, "squared_error": MSE,
          "binary_cross_entropy": BINARY_CROSS_ENTROPY, "poisson": POISSON}

# what a coordinate is inside its layer. Each kind's parameters start at the offset in table
# column OFF_W + kind: the kinds are numbered in the order of their offset columns, on purpose
# (the compiled backends' kind_offset reads it so).
WEIGHT, BIAS, GAMMA, BETA = 0, 1, 2, 3
KIND_NAMES = ("W", "b", "gamma", "beta")

# BatchNorm's epsilon and running-statistics momentum (torch.nn.BatchNorm1d's defaults)
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

# Changes smaller than this in magnitude (in an activation's input, or in a logit) are computed
# through cancellation-free identities whose special functions (expm1, tanh, log1p of a small
# argument) the compiled kernels evaluate by short Taylor polynomials, accurate to ~1 ulp there.
SMALL_CHANGE = 1.0 / 32
# Changes below this (2^-10) need only the degree-5 expm1 and degree-6 log1p polynomials for
# the same accuracy (the first omitted terms are below 1e-18 relative): the sequential sweep's
# usual steps, where the polynomials are most of the work.
TINY_CHANGE = 2.0 ** -10
# A row whose logits all move by less than this has its loss change computed as
# log1p(sum(q * expm1(dz))) - t @ dz; larger moves recompute the row's loss directly.
MODERATE_CHANGE = 1.0

# optimizers (the parallel approach)
SGD, ADAM, RMSPROP = 0, 1, 2
# the slots of an optimizer's hyperparameter vector ``hyper`` (float64, N_HYPER long): the
# learning rate first for every optimizer, then each optimizer's own (an unused slot is 0)
N_HYPER = 6
LR = 0
SGD_MOMENTUM, SGD_WEIGHT_DECAY, SGD_NESTEROV = 1, 2, 3
ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ADAM_WEIGHT_DECAY = 1, 2, 3, 4
# 1: eps divided by the second moment's bias correction too (scikit-learn's Adam), 0: torch's
ADAM_CORRECT_EPS = 5
RMSPROP_ALPHA, RMSPROP_EPS, RMSPROP_MOMENTUM, RMSPROP_WEIGHT_DECAY = 1, 2, 3, 4

# status codes a kernel returns (one list for every kernel, so a code means one thing)
OK = 0
NONFINITE_INPUT = 1     # load_batch: X holds NaN or inf
LABEL_OUT_OF_RANGE = 2  # load_batch: a class label outside [0, n_out)
NONFINITE_LOSS = 3      # train_step: the batch loss is not finite; nothing changed
NONFINITE_UPDATE = 4    # train_step: the update is not finite; nothing changed
NONFINITE_STEP = 5      # sweep: a step made the loss non-finite; that step was undone

# tanh for float32 data: x P(x²) / Q(x²) with x clamped to [-9, 9] (where tanh is 1 to within
# float32's resolution), a rational fit by reweighted least squares (relative error below 6e-8
# in exact arithmetic), evaluated in float32 arithmetic: within 6 ulp of the exact tanh. Unlike
# libm's tanh it vectorises; every backend uses it for float32 (float64: below).
TANH_SINGLE_CLAMP = 9.0
TANH_SINGLE_P = (0.9999999841490874, 0.13392565417644328, 0.003509287991755814, 2.0834328234530533e-05, 1.366643828191734e-08)
TANH_SINGLE_Q = (1.0, 0.4672588431531748, 0.02592911552030987, 0.0003308030753586418, 7.904232751078186e-07)

# exp, tanh and sigmoid of float64 data in forms the compilers vectorise (libm's are scalar
# calls, about 19 ns each for tanh), Numba and Cython the same arithmetic (mlp_numpy has twins):
# exp(x) = 2^n exp(r) with n = round(x log2 e) (found by adding and subtracting EXP_ROUND, which
# leaves n in the low bits of the sum) and r = x - n ln 2, ln 2 split into LN2_HI (32 significant
# bits: n LN2_HI is exact) and LN2_LO; exp(r), |r| <= ln 2 / 2, by its Taylor polynomial of
# degree 13 (EXP_TAYLOR[k] = 1/k!; the first omitted term is below 1e-17 relative); 2^n built
# from its exponent bits in two factors, so that a subnormal result is rounded once. x is
# clamped to [EXP_MIN, EXP_MAX], beyond which exp is 0 or inf. Within 1.2 ulp of the exact exp.
EXP_ROUND = 6755399441055744.0  # 1.5 * 2**52
EXP_MIN = -746.0
EXP_MAX = 710.0
LOG2E = 1.4426950408889634
LN2_HI = 0.6931471803691238
LN2_LO = 1.9082149292705877e-10
EXP_TAYLOR = (1.0, 1.0, 0.5, 0.16666666666666666, 0.041666666666666664, 0.008333333333333333,
              0.001388888888888889, 0.0001984126984126984, 2.48015873015873e-05,
              2.7557319223985893e-06, 2.755731922398589e-07, 2.505210838544172e-08,
              2.08767569878681e-09, 1.6059043836821613e-10)
# tanh(x) for float64 data, on |x| with the sign copied back: below TANH_DOUBLE_SMALL,
# |x| + |x| s P(s) / Q(s) with s = x² (the rational form of the Cephes library, S. L. Moshier;
# P and Q low order first, Q's leading 1 included); above, 1 - 2 / (exp(2|x|) + 1), |x| clamped
# to TANH_DOUBLE_CLAMP (tanh is 1 there in float64). Within 1.3 ulp of the exact tanh; sigmoid
# (1 or e over 1 + e, e = exp(-|x|)) within 2.3 ulp.
TANH_DOUBLE_SMALL = 0.625
TANH_DOUBLE_CLAMP = 20.0
TANH_DOUBLE_P = (-1614.6876844170845, -99.28772310019185, -0.9643991794250523)
TANH_DOUBLE_Q = (4844.063053251255, 2235.4883906010045, 112.81167849163293, 1.0)

# step rules of the sequential approach
GRADIENT, NEWTON = 0, 1
STEP_RULES = {"gradient": GRADIENT, "newton": NEWTON}
# a sweep's order entry that asks the kernel to pick the coordinate (greedy, Gauss-Southwell)
PICK_GREEDILY = -1
# a single-coordinate step "raised" the loss when J grew by more than this many units of J's
# last place (RAISED_ULPS * eps * |J|; the Poisson loss can be negative): smaller changes are
# within the round-off of evaluating J
RAISED_ULPS = 4
