"""L-BFGS: full-batch quasi-Newton steps, scipy's L-BFGS-B driven by fastgrad's fused
loss-and-gradient (one forward pass and one backprop per evaluation, in the network's backend).

    history = fastgrad.train(net, X, y, LBFGS(max_iter=200), epochs=1)

An epoch is one run of scipy.optimize.minimize(method="L-BFGS-B") from the current weights: at
most ``max_iter`` iterations and ``max_fun`` evaluations of J, stopping earlier once the largest
component of the (projected) gradient is at most ``tol`` (scipy's ``gtol``). That is
scikit-learn's ``solver="lbfgs"``, which makes one such run per ``fit``. The curvature memory
does not outlive the epoch: a second epoch starts L-BFGS afresh from where the first ended.
"""
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from .. import validation as check
from ..errors import NonFiniteStep
from .._kernels.bundles import RunningStats
from ..model import Point
from ..model.backends import bundle_type
from .base import Approach, EpochResult


@dataclass(eq=False)
class LBFGS(Approach):
    """Full-batch L-BFGS (scipy's L-BFGS-B, no bounds) on the whole training set.

    max_iter : the most L-BFGS iterations per epoch (default 200, scikit-learn's max_iter).
    max_fun : the most evaluations of J and its gradient per epoch (default 15000,
        scikit-learn's max_fun).
    tol : stop once max |dJ/dθ_j| is at most tol (scipy's gtol; default 1e-4, scikit-learn's).
    memory : the number of past steps kept to model the curvature (scipy's maxcor, default 10).

    The epoch's ``steps`` are its iterations and ``raised`` the iterations whose J exceeded the
    one before (the line search makes that rare); its figures are ``evaluations`` (of J and the
    gradient), ``converged`` (1 when scipy reports success: the gradient or the change of J
    fell below its tolerance; 0 when max_iter or max_fun ended it) and ``gradient_max``, the
    largest |dJ/dθ_j| at the final weights. With BatchNorm, J uses the batch statistics of
    the whole set, and the running statistics become those of the whole set at the final
    weights (the mean and the unbiased variance), which evaluation then uses."""

    max_iter: int = 200
    max_fun: int = 15000
    tol: float = 1e-4
    memory: int = 10

    name = "lbfgs"

    def __post_init__(self):
        self.max_iter = check.check_positive_int("max_iter", self.max_iter)
        self.max_fun = check.check_positive_int("max_fun", self.max_fun)
        self.tol = check.check_non_negative("tol", self.tol)
        self.memory = check.check_positive_int("memory", self.memory)

    def run_epoch(self, net, data, rng):
        point = Point(net, data.X, data.T, data.workspace(len(data.X)), data.weight)
        start = net.params.copy()
        first, losses = [], []  # J at the start, and at each iterate scipy accepted

        def loss_and_gradient(x):
            # scipy works in float64; a float32 network computes in float32
            net.params[:] = x
            point.forward(batch_stats=True)
            point.evaluate_loss()
            if not first:
                first.append(point.loss)
            if not np.isfinite(point.loss):
                return np.inf, np.zeros_like(x)  # the line search steps back
            return point.loss, point.gradient().astype(np.float64)

        def record(intermediate_result):
            losses.append(float(intermediate_result.fun))

        result = scipy.optimize.minimize(
            loss_and_gradient, start.astype(np.float64), jac=True, method="L-BFGS-B",
            callback=record, options={"maxiter": self.max_iter, "maxfun": self.max_fun,
                                      "gtol": self.tol, "maxcor": self.memory})
        if not np.isfinite(first[0]):
            net.params[:] = start
            raise NonFiniteStep("the loss at the starting weights is not finite", step=1)
        if not (np.isfinite(result.fun) and np.isfinite(result.x).all()):
            net.params[:] = start
            raise NonFiniteStep("L-BFGS ended at non-finite weights or loss; the weights were "
                                "put back", step=int(result.nit) + 1)
        net.params[:] = result.x
        if net.batchnorm:
            # the running statistics become the final weights' statistics of the whole set
            # (momentum 1: one batch, the whole set, stands for every batch there is)
            point.forward(batch_stats=True)
            whole = bundle_type(net.backend, RunningStats)(
                (net._running_mean, net._running_var, 1.0))
            point.kernels.mlp.update_running_stats(net.kernel_network, point.cache, whole)
            net.track_batches(1)
        previous = first + losses[:-1]
        raised = sum(after > before for before, after in zip(previous, losses))
        return EpochResult(int(result.nit), int(raised), running_loss=float(first[0]),
                           figures={"evaluations": int(result.nfev),
                                    "converged": int(result.success),
                                    "gradient_max": float(np.abs(result.jac).max())})
