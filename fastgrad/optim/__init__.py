"""Optimizers of the parallel and layer-wise approaches, with torch.optim's update rules: a rule
and its hyperparameters (``SGD``, ``Adam``, ``RMSprop``), and the state it keeps for one
network once bound (``BoundOptimizer``: ``step``, ``layer_step``, ``apply``)."""
from .optimizer import BoundOptimizer, Optimizer
from .rules import SGD, Adam, RMSprop

__all__ = ["Optimizer", "BoundOptimizer", "SGD", "Adam", "RMSprop"]
