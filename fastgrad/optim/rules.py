"""The update rules, torch.optim's, each a special case of the next where the math allows: SGD
(with momentum and Nesterov), Adam, RMSprop. The kernels compute them (parallel_numpy.update is
the readable reference)."""
from .. import validation as check
from .._kernels.codes import ADAM, RMSPROP, SGD as SGD_CODE
from .optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent as torch.optim.SGD (dampening 0): with ``momentum`` a buffer
    b ← momentum·b + g (b = g on the first step) replaces g, and ``nesterov`` steps along
    g + momentum·b; ``weight_decay`` adds weight_decay·θ to g."""

    code, n_state = SGD_CODE, 1

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def _slots(self, lr, momentum, nesterov, weight_decay):
        slots = {"LR": check.check_positive("lr", lr),
                 "SGD_MOMENTUM": check.check_unit_interval("momentum", momentum),
                 "SGD_NESTEROV": float(check.check_bool("nesterov", nesterov)),
                 "SGD_WEIGHT_DECAY": check.check_non_negative("weight_decay", weight_decay)}
        if nesterov and slots["SGD_MOMENTUM"] == 0:
            raise ValueError("nesterov needs a momentum > 0")
        return slots


class Adam(Optimizer):
    """Adam as torch.optim.Adam (no amsgrad): m ← m + (1 − β1)(g − m), v ← β2 v + (1 − β2) g²,
    θ ← θ − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps); ``weight_decay`` adds weight_decay·θ
    to g (L2, not AdamW). ``correct_eps=True`` divides eps by √(1 − β2ᵗ) along with √v —
    θ ← θ − lr·√(1 − β2ᵗ)/(1 − β1ᵗ) · m / (√v + eps) — which is scikit-learn's Adam (its eps
    is added before the bias correction); the two differ only where √v̂ is within a few eps of
    zero."""

    code, n_state = ADAM, 2

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 correct_eps=False):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         correct_eps=correct_eps)

    def _slots(self, lr, betas, eps, weight_decay, correct_eps):
        beta1, beta2 = check.check_pair("betas", betas, "(beta1, beta2)")
        return {"LR": check.check_positive("lr", lr),
                "ADAM_BETA1": check.check_unit_interval("betas[0]", beta1),
                "ADAM_BETA2": check.check_unit_interval("betas[1]", beta2),
                "ADAM_EPS": check.check_positive("eps", eps),
                "ADAM_WEIGHT_DECAY": check.check_non_negative("weight_decay", weight_decay),
                "ADAM_CORRECT_EPS": float(check.check_bool("correct_eps", correct_eps))}


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop (not centred): s ← α s + (1 − α) g², and θ moves by
    −lr · g / (√s + eps), through a momentum buffer b ← momentum·b + g / (√s + eps) when
    ``momentum`` > 0; ``weight_decay`` adds weight_decay·θ to g."""

    code, n_state = RMSPROP, 2

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        super().__init__(lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                         weight_decay=weight_decay)

    def _slots(self, lr, alpha, eps, momentum, weight_decay):
        return {"LR": check.check_positive("lr", lr),
                "RMSPROP_ALPHA": check.check_unit_interval("alpha", alpha),
                "RMSPROP_EPS": check.check_positive("eps", eps),
                "RMSPROP_MOMENTUM": check.check_unit_interval("momentum", momentum),
                "RMSPROP_WEIGHT_DECAY": check.check_non_negative("weight_decay", weight_decay)}
