"""fastgrad: train multilayer perceptrons on the CPU the parallel way (backprop, all weights at
once) and the sequential way (one weight at a time), with Numba and Cython kernels."""
try:
    from . import _kernels  # noqa: F401  (kernels/, installed as fastgrad._kernels)
except ModuleNotFoundError as error:  # pragma: no cover - depends on how Python was started
    raise ImportError(
        "fastgrad's kernels (fastgrad._kernels) are missing: this looks like the uninstalled "
        "source tree shadowing the installed package. Run from another directory, or install "
        "it in place with `pip install -e .`") from error

from . import comparison, datasets, diagnostics, optim
from .approach import Approach, EpochResult
from .comparison import Comparison, compare
from .errors import NonFiniteStep
from .layerwise import LayerWise
from .network import MLP, Point, default_eps
from .parallel import Parallel
from .sequential import Sequential, SweepReport, sweep
from .training import History, train

__version__ = "0.1.0"
__all__ = ["MLP", "Point", "Approach", "EpochResult", "Parallel", "LayerWise", "Sequential",
           "History", "NonFiniteStep", "SweepReport", "Comparison", "compare", "comparison",
           "datasets", "default_eps", "diagnostics", "optim", "sweep", "train"]
