"""scikit-learn estimators backed by fastnn networks.

``FastNNClassifier`` and ``FastNNRegressor`` follow scikit-learn's
``MLPClassifier`` and ``MLPRegressor``: the same hyper-parameters where they
exist in fastnn, the same training rules, and fastnn's compiled training.
They need scikit-learn (``pip install fastnn[sklearn]``); ``import fastnn``
does not.
"""

from .classifier import FastNNClassifier
from .regressor import FastNNRegressor

__all__ = ["FastNNClassifier", "FastNNRegressor"]
