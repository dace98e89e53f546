"""fastgrad: train multilayer perceptrons on the CPU the parallel way (backprop, all weights at
once) and the sequential way (one weight at a time), with Numba and Cython kernels."""
from .network import MLP, Point, default_eps

__version__ = "0.1.0"
__all__ = ["MLP", "Point", "default_eps"]
