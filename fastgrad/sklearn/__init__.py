"""scikit-learn's MLPClassifier and MLPRegressor on fastgrad's kernels: change one import,

    from fastgrad.sklearn import MLPClassifier   # was: from sklearn.neural_network import ...

and the same parameters (scikit-learn 1.9's, with their names, defaults and meanings) train
the same network with the same objective, initial weights and stopping rule, several times
faster, with fastgrad's approaches as further solvers (``solver="sequential"``,
``"layerwise"``, or any approach object, whose options become nested parameters such as
``solver__lr``). The estimators are in ``fastgrad/sklearn/mlp.py``."""
from .mlp import SOLVERS, MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "SOLVERS"]
