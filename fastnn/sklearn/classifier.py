"""FastNNClassifier: scikit-learn's MLPClassifier interface on a fastnn network."""

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from ._base import ATTRIBUTES_DOC, PARAMETERS_DOC, BaseFastNN, expected_failed_checks
from ._compat import validate_data

_TARGETS = ("binary", "multiclass", "multilabel-indicator")


class FastNNClassifier(ClassifierMixin, BaseFastNN):
    __doc__ = f"""A fully-connected network classifier trained by fastnn.

    scikit-learn's ``MLPClassifier`` interface and training rules (batches,
    ``alpha``, early stopping, ``tol``/``n_iter_no_change``, warm starts,
    ``partial_fit``) with fastnn's compiled training and its further
    solvers, schedules, activations, dropout and batch normalization.

    The outputs are those of ``MLPClassifier``: for K > 2 classes a softmax
    over K units trained with the cross-entropy −Σ_k y_k log p_k; for two
    classes one sigmoid unit p = P(classes_[1]) with the binary
    cross-entropy; for a 2-D indicator y (multilabel) one sigmoid unit per
    label, each predicted present when p > 0.5.  Labels may be any values
    ``numpy.unique`` orders (integers, strings, booleans).

    Parameters
    ----------
{PARAMETERS_DOC}
    class_weight : dict, "balanced" or None, default=None
        Weight of each class, multiplied into ``sample_weight``: a dict
        label → weight, or "balanced", n_samples / (n_classes · count(c)),
        as ``sklearn.utils.class_weight.compute_class_weight``.  For
        single-label targets only; "balanced" is not accepted by
        ``partial_fit``, which sees one part of the data at a time.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multilabel y, the label indices 0..L−1).
{ATTRIBUTES_DOC}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastnn.sklearn import FastNNClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = FastNNClassifier(hidden_layer_sizes=(32,), max_iter=300,
    ...                        random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **BaseFastNN._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=1e-4, l1=0.0, batch_size="auto", learning_rate="constant",
                 learning_rate_init=1e-3, learning_rate_params=None, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, dropout=0.0, batch_norm=False,
                 clip_norm=None, gradient_noise=None, solver_params=None, dtype="float32",
                 class_weight=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, l1=l1, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, learning_rate_params=learning_rate_params,
            max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, dropout=dropout,
            batch_norm=batch_norm, clip_norm=clip_norm, gradient_noise=gradient_noise,
            solver_params=solver_params, dtype=dtype)
        self.class_weight = class_weight

    # -------------------------------------------------------------- the labels

    def _validate_input(self, X, y, incremental, reset, classes=None):
        """X in the network's dtype and y encoded: class indices, or a 0/1 matrix."""
        X, y = validate_data(self, X, y, dtype=self._dtype, multi_output=True, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in _TARGETS:
            raise ValueError(f"{type(self).__name__} takes binary, multiclass or "
                             f"multilabel-indicator targets, got {kind} y")
        multilabel = kind == "multilabel-indicator"
        if reset:
            self._define_classes(y, multilabel, classes)
        else:
            self._check_classes(y, multilabel, incremental)
        if multilabel:
            return X, np.asarray(y, dtype=self._dtype)
        return X, np.searchsorted(self.classes_, y)

    def _define_classes(self, y, multilabel, classes):
        self._multilabel = multilabel
        if multilabel:
            self.classes_ = np.arange(y.shape[1])
            return
        labels = unique_labels(y) if classes is None else unique_labels(classes)
        if classes is not None:
            unseen = np.setdiff1d(unique_labels(y), labels)
            if unseen.size:
                raise ValueError(f"`y` has classes not in `classes`: {unseen.tolist()}; "
                                 f"`classes` is {labels.tolist()}")
        if labels.size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, "
                             f"but y has only one class: {labels[0]!r}")
        self.classes_ = labels

    def _check_classes(self, y, multilabel, incremental):
        if multilabel != self._multilabel:
            fitted = "multilabel" if self._multilabel else "single-label"
            raise ValueError(f"the estimator was fitted on {fitted} targets; y is not")
        if multilabel:
            if y.shape[1] != self.classes_.size:
                raise ValueError(f"y has {y.shape[1]} labels, the estimator was fitted "
                                 f"on {self.classes_.size}")
            return
        labels = unique_labels(y)
        if self.warm_start and not incremental:
            if set(labels.tolist()) != set(self.classes_.tolist()):
                raise ValueError("warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {labels}")
        elif np.setdiff1d(labels, self.classes_).size:
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {labels}.")

    def _n_outputs(self, y):
        if self._multilabel:
            return y.shape[1]
        return 1 if self.classes_.size == 2 else self.classes_.size

    def _output(self):
        return "sigmoid" if self._multilabel or self.classes_.size == 2 else "softmax"

    def _stratify(self, y):
        return None if self._multilabel else y

    def _class_weights(self, y, weights, incremental):
        if self.class_weight is None:
            return weights
        if self._multilabel:
            raise ValueError("class_weight is for single-label targets; use sample_weight "
                             "for multilabel y")
        if incremental and isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' is not supported by partial_fit, "
                             "which sees one part of the data; pass a dict of weights")
        per_class = compute_class_weight(self.class_weight, classes=self.classes_,
                                         y=self.classes_[y])
        return per_class[y] if weights is None else weights * per_class[y]

    # -------------------------------------------------------------- training

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Train for one epoch over X and y, continuing from the fitted network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multilabel targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of every row.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole data (``numpy.unique(y_all)``): needed
            on the first call, optional later; y need not hold them all.

        Returns
        -------
        self : object
            The estimator.
        """
        first_call = not hasattr(self, "model_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if not first_call and classes is not None and not self._multilabel:
            if not np.array_equal(self.classes_, unique_labels(classes)):
                raise ValueError(f"`classes={unique_labels(classes)}` is not the same as on "
                                 f"the last call to partial_fit, was: {self.classes_}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True,
                         classes=classes)

    # -------------------------------------------------------------- prediction

    def _decide(self, outputs):
        """Encoded predictions from network outputs."""
        if self._multilabel:
            return (outputs > 0.5).astype(np.int64)
        if outputs.shape[1] == 1:
            return (outputs[:, 0] > 0.5).astype(np.int64)
        return outputs.argmax(axis=1)

    def _validation_score(self, X, y, sample_weight):
        return float(accuracy_score(y, self._decide(self._outputs(X)),
                                    sample_weight=sample_weight))

    def predict(self, X):
        """Predicted class of every row (a 0/1 indicator matrix for multilabel y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        decided = self._decide(self._forward(X))
        return decided if self._multilabel else self.classes_[decided]

    def predict_proba(self, X):
        """Probability of every class (of every label for multilabel y), in ``classes_`` order.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            For two classes the columns are 1 − p and p.
        """
        outputs = self._forward(X)
        if not self._multilabel and outputs.shape[1] == 1:
            return np.hstack([1.0 - outputs, outputs])
        return outputs

    def predict_log_proba(self, X):
        """Natural logarithm of ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    # -------------------------------------------------------------- tags

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):
        # The same tags for scikit-learn < 1.6.
        return {"multilabel": True, "_xfail_checks": expected_failed_checks(self)}
