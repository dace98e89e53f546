"""The model: the multilayer perceptron (``MLP``), its cached point on a batch (``Point``) and
the gradient methods on it, the kernel backends, and the workspaces the kernels compute in."""
from .network import MLP, Dense, layer_table
from .point import (CLASSIFICATION_LOSSES, GRADIENT_METHODS, Point, cached_loss, default_eps,
                    predictions)
from .workspace import Workspace, Workspaces

__all__ = ["MLP", "Dense", "Point", "Workspace", "Workspaces", "CLASSIFICATION_LOSSES",
           "GRADIENT_METHODS", "cached_loss", "default_eps", "layer_table", "predictions"]
