"""Experiments: ``compare`` (the main job, compare.py), the contenders it trains, each an
approach config (contenders.py), one training run as a function of data (runs.py:
``train_one`` and its ``Run``), the results and their files (results.py, plots.py) and the
environment they ran in (environment.py)."""
from .compare import DEFAULT_EPOCHS, compare
from .contenders import CONTENDERS, MINIBATCH, Contender
from .environment import environment
from .plots import plot
from .results import Comparison
from .runs import Run, Seeds, cell_key, train_one

__all__ = ["compare", "Comparison", "Contender", "CONTENDERS", "DEFAULT_EPOCHS", "MINIBATCH",
           "Run", "Seeds", "cell_key", "train_one", "environment", "plot"]
