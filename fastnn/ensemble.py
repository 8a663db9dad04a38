"""Ensembles: the averaged class probabilities of several fitted classifiers.

    p̄(x) = Σ_k w_k · p_k(x) / Σ_k w_k

over K models trained apart (different seeds, or different architectures
with the same input width, number of classes and loss).  The cross-entropy
is convex in the probabilities, so by Jensen's inequality the ensemble's
loss is at most the weighted mean of its members' losses, on any data.
"""

import numbers

import numpy as np

from fastnn._validation import check_features, check_real_array, one_hot
from fastnn.losses import SigmoidCrossEntropy, SoftmaxCrossEntropy
from fastnn.model import Sequential

__all__ = ["Ensemble"]


class Ensemble:
    """Average the predicted probabilities of fitted classifiers.

    Parameters
    ----------
    models : sequence of Sequential
        At least one, all with the same input width, number of outputs and
        loss, a ``"softmax_cross_entropy"`` or ``"sigmoid_cross_entropy"``
        (whose outputs are probabilities).
    weights : array_like of shape (K,), optional
        w_k ≥ 0, finite, not all 0 (default: all equal); normalized to sum 1.

    Attributes
    ----------
    models : list of Sequential
    weights : ndarray of float64, shape (K,)
        The normalized weights.
    """

    def __init__(self, models, weights=None):
        if isinstance(models, Sequential) or not hasattr(models, "__iter__"):
            raise TypeError(f"models must be a sequence of Sequential models, got {models!r}")
        models = list(models)
        if not models:
            raise ValueError("models is empty: an ensemble needs at least one model")
        for k, model in enumerate(models):
            if not isinstance(model, Sequential):
                raise TypeError(f"models[{k}] must be a Sequential, got {model!r}")
        first = models[0]
        for k, model in enumerate(models):
            if not isinstance(model.loss, (SoftmaxCrossEntropy, SigmoidCrossEntropy)):
                raise ValueError(f"models[{k}] is trained with {model.loss!r}: an ensemble "
                                 "averages probabilities, of softmax or sigmoid "
                                 "cross-entropy classifiers")
            for what, attribute in (("input width", "n_features_"),
                                    ("number of outputs", "n_outputs_")):
                if getattr(model, attribute) != getattr(first, attribute):
                    raise ValueError(f"models[{k}] has {what} {getattr(model, attribute)}, "
                                     f"models[0] {getattr(first, attribute)}")
            if type(model.loss) is not type(first.loss):
                raise ValueError(f"models[{k}] is trained with {model.loss!r}, models[0] with "
                                 f"{first.loss!r}: their outputs mean different things")
        self.models = models
        if weights is None:
            weights = np.ones(len(models))
        weights = check_real_array("weights", weights)
        if weights.shape != (len(models),):
            raise ValueError(f"weights must hold one weight per model ({len(models)}), "
                             f"got shape {weights.shape}")
        if (weights < 0).any() or not weights.any():
            raise ValueError("weights must be >= 0 and not all 0")
        self.weights = weights / weights.sum()

    @classmethod
    def train(cls, build, X, y, seeds=(0, 1, 2, 3, 4), weights=None, **fit_args):
        """Build and fit one model per seed, and ensemble them.

        Parameters
        ----------
        build : callable
            ``build(seed)`` returns a new, untrained Sequential (the seed
            goes to its ``seed``: each member starts and shuffles differently).
        X, y : training data, passed to every member's ``fit``.
        seeds : sequence of int
            One member per seed.
        weights : array_like, optional
            As for the constructor.
        **fit_args
            Passed to ``fit`` (``epochs``, ``batch_size``, ...).

        Returns
        -------
        Ensemble
        """
        if not callable(build):
            raise TypeError(f"build must be a callable build(seed) -> Sequential, got {build!r}")
        seeds = list(seeds)
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seeds must be integers, got {seed!r}")
        if not seeds:
            raise ValueError("seeds is empty: an ensemble needs at least one model")
        models = []
        for seed in seeds:
            model = build(seed)
            if not isinstance(model, Sequential):
                raise TypeError(f"build({seed}) returned {model!r}, not a Sequential")
            model.fit(X, y, **fit_args)
            models.append(model)
        return cls(models, weights)

    @property
    def n_features_(self):
        return self.models[0].n_features_

    @property
    def n_outputs_(self):
        return self.models[0].n_outputs_

    def predict_proba(self, X):
        """p̄(X) = Σ_k w_k · p_k(X): the weighted mean of the members' ``predict_proba``.

        ``X`` is (n_samples, n_features), or one sample (n_features,).
        """
        total = None
        for weight, model in zip(self.weights, self.models):
            proba = model.predict_proba(X).astype(np.float64)
            total = weight * proba if total is None else total + weight * proba
        return total

    def predict(self, X):
        """Class predictions: argmax of p̄, or p̄ > 0.5 for one output."""
        proba = self.predict_proba(X)
        if self.n_outputs_ == 1:
            return (proba[..., 0] > 0.5).astype(np.int64)
        return proba.argmax(axis=-1)

    def evaluate(self, X, y):
        """Mean cross-entropy and accuracy of the averaged probabilities, as a dict.

        loss = −1/n Σ_x Σ_k y_k log p̄_k for softmax members; for sigmoid members
        −1/n Σ_x Σ_k [y_k log p̄_k + (1 − y_k) log(1 − p̄_k)], the losses their
        own ``evaluate`` reports.  p̄ is clipped to [ε, 1 − ε], ε the smallest
        normal number of the members' dtype, so that a probability rounded to
        0 gives a large finite loss rather than ∞.
        """
        first = self.models[0]
        X = check_features(X, first.dtype, self.n_features_)
        labels, targets = first._targets(y, X.shape[0])
        if labels is not None:
            targets = one_hot(labels, self.n_outputs_, np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        proba = self.predict_proba(X)
        eps = np.finfo(first.dtype).tiny
        log_p = np.log(np.clip(proba, eps, 1.0))
        if isinstance(first.loss, SoftmaxCrossEntropy):
            loss = -(targets * log_p).sum(axis=1)
        else:
            log_not_p = np.log(np.clip(1.0 - proba, eps, 1.0))
            loss = -(targets * log_p + (1 - targets) * log_not_p).sum(axis=1)
        # As the members count: the argmax, or p̄ > 0.5 for one output.
        if self.n_outputs_ == 1:
            correct = (proba[:, 0] > 0.5) == (targets[:, 0] > 0.5)
        else:
            correct = proba.argmax(axis=1) == targets.argmax(axis=1)
        return {"loss": float(loss.mean()), "accuracy": float(correct.mean())}

    def __repr__(self):
        return f"Ensemble({len(self.models)} models)"
