"""fastgrad: train multilayer perceptrons on the CPU the parallel way (backprop, all weights at
once) and the sequential way (one weight at a time), with Numba and Cython kernels.

The package by concept: ``model`` (the network, its point and gradients, the kernels'
backends and workspaces), ``optim`` (the update rules and their bound state), ``approaches``
(parallel, layer-wise, sequential, L-BFGS), ``training`` (the run, its History and
callbacks), ``experiments`` (compare and its files), ``bench`` (fastgrad bench), ``io`` (files
and PyTorch), ``sklearn`` (MLPClassifier and MLPRegressor, scikit-learn's estimators on
fastgrad; imported on its own: ``from fastgrad.sklearn import MLPClassifier``), and the single
modules ``datasets``, ``diagnostics``, ``validation``, ``config``,
``errors`` and ``cli``."""
try:
    from . import _kernels  # noqa: F401  (kernels/, installed as fastgrad._kernels)
except ModuleNotFoundError as error:  # pragma: no cover - depends on how Python was started
    raise ImportError(
        "fastgrad's kernels (fastgrad._kernels) are missing: this looks like the uninstalled "
        "source tree shadowing the installed package. Run from another directory, or install "
        "it in place with `pip install -e .`") from error

from . import datasets, diagnostics, experiments, optim
from .approaches import (Approach, EpochResult, LayerWise, LBFGS, Parallel, Sequential, SweepReport,
                         sweep)
from .errors import NonFiniteStep
from .experiments import Comparison, compare
from .io import from_torch, load, load_checkpoint, save
from .model import MLP, Point, default_eps
from .training import Callback, History, TrainingRun, train

__version__ = "0.1.0"
__all__ = ["MLP", "Point", "Approach", "EpochResult", "Parallel", "LayerWise", "Sequential", "LBFGS",
           "History", "NonFiniteStep", "SweepReport", "Comparison", "Callback", "TrainingRun",
           "compare", "datasets", "default_eps", "diagnostics", "experiments", "from_torch", "load",
           "load_checkpoint", "optim", "save", "sweep", "train"]
