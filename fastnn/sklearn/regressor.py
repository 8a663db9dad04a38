"""FastNNRegressor: scikit-learn's MLPRegressor interface on a fastnn network."""

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score

from ._base import ATTRIBUTES_DOC, PARAMETERS_DOC, BaseFastNN, expected_failed_checks
from ._compat import validate_data


class FastNNRegressor(RegressorMixin, BaseFastNN):
    __doc__ = f"""A fully-connected network regressor trained by fastnn.

    scikit-learn's ``MLPRegressor`` interface and training rules with
    fastnn's compiled training.  The network ends in a linear layer with one
    unit per target column and is trained on fastnn's squared-error loss
    ``"mse"``; ``score`` is R² (averaged uniformly over the targets).

    Parameters
    ----------
{PARAMETERS_DOC}

    Attributes
    ----------
{ATTRIBUTES_DOC}

    Examples
    --------
    >>> import numpy as np
    >>> from fastnn.sklearn import FastNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> reg = FastNNRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01,
    ...                       random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    def _validate_input(self, X, y, incremental, reset, classes=None):
        """X in the network's dtype and y as a 2-D float array."""
        X, y = validate_data(self, X, y, dtype=self._dtype, multi_output=True, y_numeric=True,
                             reset=reset)
        y = np.asarray(y, dtype=np.float64)
        return X, y.reshape(-1, 1) if y.ndim == 1 else y

    def _n_outputs(self, y):
        return y.shape[1]

    def _output(self):
        return "linear"

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch over X and y, continuing from the fitted network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of every row.

        Returns
        -------
        self : object
            The estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validation_score(self, X, y, sample_weight):
        return float(r2_score(y, self._outputs(X), sample_weight=sample_weight))

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when there is one target.
        """
        outputs = self._forward(X)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):
        # The same tags for scikit-learn < 1.6.
        return {"multioutput": True, "_xfail_checks": expected_failed_checks(self)}
