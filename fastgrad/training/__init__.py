"""Training runs: ``train`` (fastgrad/training/run.py), the ``History`` it returns and the
callbacks that see a run and may stop it."""
from .callbacks import (Callback, Checkpoint, EarlyStopping, OnEpochEnd, ProgressBar,
                        TimeBudget)
from .history import History
from .run import TrainingRun, train

__all__ = ["train", "TrainingRun", "History", "Callback", "Checkpoint", "EarlyStopping",
           "OnEpochEnd", "ProgressBar", "TimeBudget"]
