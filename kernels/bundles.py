"""The bundles every kernel entry point takes, in all three backends: what travels together,
named once. They are plain namedtuples of arrays and numbers, so that Numba's nopython mode takes
them (and caches the kernels compiled for them) and a Cython ``def`` entry point unpacks each
once into the structs of bundles.pxi. fastgrad's Python layer builds them
(fastgrad/model/workspace.py) after validating every input; a kernel trusts what it receives. See docs/design.md, "The kernel
interface".

Shapes: N samples, P = n_params, L layers, C = sum of the layers' widths (every layer's output
columns side by side), n_out the last layer's width, W = the widest layer.
"""
from collections import namedtuple

# The network: ``params`` (P,) the flat parameter vector, ``table`` (L, N_COLUMNS) int64 the
# layer table (codes.py), ``act`` the hidden activation's code, ``loss`` the loss's code,
# ``output_divisor`` (float) what the sum of a row's per-output loss terms is divided by (codes.py,
# "losses"; 1 for cross-entropy) and ``alpha`` (float) the L2 penalty on the Dense weights: J gains
# alpha / (2 n) · Σ_l ‖W_l‖², n the sum of the batch's sample weights (scikit-learn's definition).
Network = namedtuple("Network", "params table act loss output_divisor alpha")

# The cached point on one batch: the inputs ``X`` (N, n_in) and, in the flat per-layer layout of
# codes.py, the Dense outputs ``Z`` (N·C), activations ``A`` (N·C), normalised values ``Zhat``
# (N·C with BatchNorm, else empty) and the BatchNorm statistics ``mean``, ``istd`` (C,).
Cache = namedtuple("Cache", "X Z A Zhat mean istd")

# The loss on that batch: the targets ``T`` (N, n_out; one-hot labels for cross-entropy), the
# per-sample losses ``rowloss`` (N,), ``G`` = dJ/dlogits (N, n_out) and the loss state ``Q``
# (n_out, N): softmax probabilities, sigmoid outputs, exp(logits) (poisson) or the residuals
# logits - T (mse), transposed; the sample weights ``weight`` (N,) (ones when none are given) and
# their sum ``weight_sum`` (1,) (N then), all in the network's dtype. J is the weighted mean
# Σ_r weight_r rowloss_r / weight_sum, plus the penalty; G holds the weights (row r's dJ/dlogits
# is its loss slope · weight_r / weight_sum). Weights of 1 compute exactly what no weights did.
LossState = namedtuple("LossState", "T rowloss G Q weight weight_sum")

# Work space of the per-coordinate and backprop kernels: ``column`` (N,), ``rows`` (N,) int64,
# ``work1`` and ``work2`` (N·W each).
Scratch = namedtuple("Scratch", "column rows work1 work2")

# An optimizer of the parallel approach: its ``code`` (codes.SGD, ADAM, RMSPROP), ``hyper``
# (N_HYPER,) float64 in the slots named in codes.py, ``steps`` (L,) int64 the updates each layer
# has had, ``state`` (n_state, P) its buffers, ``new`` (n_state + 1, P) where an update is
# computed before it is accepted.
OptimizerState = namedtuple("OptimizerState", "code hyper steps state new")

# BatchNorm's running statistics (C,), kept for evaluation, and their ``momentum``.
RunningStats = namedtuple("RunningStats", "mean var momentum")

# An epoch of the parallel approach: the training set's inputs ``X`` (n, n_in), targets ``T``
# (n, n_out; one-hot labels for cross-entropy) and sample weights ``weight`` (n,) (ones when none
# are given), ``order`` (n,) int64 the samples in the epoch's order, cut into batches of
# ``batch_size`` (the last may be smaller) that the kernel gathers into the workspace (the
# weights into the loss state's, with their sum); ``count_raised``: re-evaluate each batch's loss
# after its step. A batch whose weights sum to zero has no loss: its step is skipped.
EpochPlan = namedtuple("EpochPlan", "X T weight order batch_size count_raised")

# A sequential sweep: ``order`` (n_steps,) int64 the coordinates in turn; ``greedy``: pick each
# step's coordinate instead (Gauss-Southwell; order then holds codes.PICK_GREEDILY n_steps
# times); ``rule`` (codes.GRADIENT or NEWTON) and ``lr``.
SweepPlan = namedtuple("SweepPlan", "order greedy rule lr")
