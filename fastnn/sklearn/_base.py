"""What the classifier and the regressor share: hyper-parameters and the training loop.

The loop is scikit-learn's ``BaseMultilayerPerceptron._fit_stochastic``
with fastnn doing the epochs: the same first-pass and warm-start rules, the
same validation split, batch size, stopping rule (``_stopping``), curves and
warnings.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from fastnn.optimizers import OPTIMIZERS
from fastnn.training import NonFiniteError

from ._compat import NO_SAMPLE_WEIGHT, fit_takes_sample_weight, validate_data
from ._network import (ACTIVATIONS, SCHEDULES, NetworkSpec, OptimizerSpec, as_dtype_name,
                       rebuild, snapshot)
from ._stopping import NoImprovementStopping

#: the parameters documented once for both estimators (numpydoc)
PARAMETERS_DOC = """\
    hidden_layer_sizes : array-like of int or int, default=(100,)
        Width of each hidden layer; ``()`` gives no hidden layer.
    activation : {"relu", "tanh", "logistic", "sigmoid", "identity", \
"leaky_relu", "prelu", "silu"}, default="relu"
        Hidden-layer activation ("logistic" and "sigmoid" are the same;
        "leaky_relu" has slope 0.01, "prelu" a learned slope per unit).
    solver : {"adam", "sgd", "adamw", "adagrad", "rmsprop", "adadelta", \
"lion"}, default="adam"
        The fastnn optimizer (``fastnn.optimizers.OPTIMIZERS``).
    alpha : float, default=1e-4
        Strength of the L2 penalty, as scikit-learn's MLP: a mini-batch of
        m rows adds α/(2m)·Σw² (weights, not biases) to its mean loss.
        fastnn's ``l2`` λ adds λ/(2n)·Σw² at every step, n being the number
        of training rows, so the model gets λ = α·n/m with
        m = the batch size.  The gradient step is then exactly
        scikit-learn's for every full batch; a last, smaller batch of m' rows
        gets α/m·w where scikit-learn's gets α/m'·w.
    l1 : float, default=0.0
        Strength of an L1 penalty in the same convention: a mini-batch adds
        l1/m·Σ|w|, i.e. fastnn's ``l1`` is l1·n/m.
    batch_size : int or "auto", default="auto"
        Rows per mini-batch; "auto" is min(200, n_samples).  Larger values
        are clipped to n_samples with a warning.
    learning_rate : {"constant", "step", "exponential", "inverse_time", \
"plateau"}, default="constant"
        The schedule (``fastnn.schedules``: ``Constant``, ``StepDecay``,
        ``ExponentialDecay``, ``InverseTimeDecay``, ``ReduceLROnPlateau``)
        starting at ``learning_rate_init``.  "plateau" watches "val_loss"
        with early stopping and the training "loss" without, unless
        ``learning_rate_params`` names a ``monitor``.
    learning_rate_init : float, default=1e-3
        Initial learning rate (for "adadelta" the multiplier of its step).
    learning_rate_params : dict, default=None
        Further arguments of the schedule, e.g. ``{"factor": 0.5,
        "every": 10}`` for "step" or ``{"k": 0.1, "per": "step"}`` for
        "exponential".
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Visit the rows in a fresh random order every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, shuffling, dropout, gradient noise and the
        validation split.
    tol : float, default=1e-4
        Smallest improvement of the loss (or of the validation score with
        early stopping) that counts.
    verbose : bool, default=False
        Show fastnn's progress bar and the metrics of every epoch.
    warm_start : bool, default=False
        Continue from the fitted network when ``fit`` is called again.
        The optimizer and its state are kept while the optimizer's
        hyper-parameters stay the same; a change makes a new optimizer.
        Changing the network's hyper-parameters (``hidden_layer_sizes``,
        ``activation``, ``dropout``, ``batch_norm``, ``dtype``,
        ``clip_norm``, ``gradient_noise``) is an error.
    momentum : float, default=0.9
        Momentum of "sgd", in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov momentum for "sgd" (when ``momentum`` > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified for
        single-label classification) and stop when the validation score
        (accuracy or R²) has not improved by ``tol`` for more than
        ``n_iter_no_change`` epochs; the network keeps the weights of its
        best epoch.  Not used by ``partial_fit``.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping, in (0, 1).
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the moment estimates of "adam" and "adamw", in [0, 1).
    epsilon : float, default=1e-8
        ε of "adam" and "adamw".
    n_iter_no_change : int, default=10
        Epochs without improvement tolerated before stopping.
    dropout : float, default=0.0
        Probability of dropping a hidden unit during training, in [0, 1);
        0 adds no dropout layers.
    batch_norm : bool, default=False
        Batch normalization after every hidden dense layer.
    clip_norm : float, default=None
        Rescale each step's gradient to at most this global 2-norm.
    gradient_noise : float or (float, float), default=None
        η or (η, γ) of annealed Gaussian gradient noise, variance
        η/(1 + t)^γ at step t.
    solver_params : dict, default=None
        Further arguments of the optimizer's constructor, e.g.
        ``{"amsgrad": True}`` or ``{"weight_decay": 0.01}``.
    dtype : {"float32", "float64"}, default="float32"
        Precision the network computes in."""

#: the fitted attributes both estimators have (numpydoc)
ATTRIBUTES_DOC = """\
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when X has string column names (a DataFrame).
    n_outputs_ : int
        Number of network outputs.
    model_ : fastnn.Sequential
        The trained network.
    loss_ : float
        Training loss (mean loss plus penalty) of the last epoch.
    loss_curve_ : list of float
        Training loss of every epoch, across warm starts.
    validation_scores_ : list of float or None
        Validation score of every epoch with early stopping, else None.
    validation_loss_curve_ : list of float or None
        Mean validation loss (without penalty) of every epoch with early
        stopping, else None.
    best_validation_score_ : float or None
        Best validation score with early stopping, else None.
    best_loss_ : float or None
        Smallest training loss without early stopping, else None.
    n_iter_ : int
        Epochs run by the last call to ``fit`` (1 for ``partial_fit``).
    t_ : int
        Training rows seen, across calls."""


class BaseFastNN(BaseEstimator):
    """Hyper-parameters and training loop of the fastnn estimators.

    Subclasses provide ``_validate_input`` (checked X and y the network
    trains on), ``_validation_score`` and ``_output`` (the kind of output
    layer), as scikit-learn's ``BaseMultilayerPerceptron`` does.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions(set(OPTIMIZERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(SCHEDULES))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_params": [dict, None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "gradient_noise": [Interval(Real, 0, None, closed="neither"), tuple, None],
        "solver_params": [dict, None],
        "dtype": [StrOptions({"float32", "float64"}),
                  Options(type, {np.float32, np.float64})],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=1e-4, l1=0.0, batch_size="auto", learning_rate="constant",
                 learning_rate_init=1e-3, learning_rate_params=None, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, dropout=0.0, batch_norm=False,
                 clip_norm=None, gradient_noise=None, solver_params=None, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.l1 = l1
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.learning_rate_params = learning_rate_params
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.clip_norm = clip_norm
        self.gradient_noise = gradient_noise
        self.solver_params = solver_params
        self.dtype = dtype

    # ----------------------------------------------------------- specifications

    @property
    def _dtype(self):
        return np.dtype(as_dtype_name(self.dtype)).type

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(h, Integral) and not isinstance(h, bool) for h in sizes):
            raise TypeError(f"hidden_layer_sizes must hold integers, got {sizes!r}")
        if any(h <= 0 for h in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}")
        return tuple(int(h) for h in sizes)

    def _network_spec(self, n_features, n_outputs, seed):
        return NetworkSpec(
            n_features=n_features, n_outputs=n_outputs, output=self._output(),
            hidden_layer_sizes=self._hidden(), activation=self.activation,
            dropout=float(self.dropout), batch_norm=bool(self.batch_norm),
            dtype=as_dtype_name(self.dtype),
            clip_norm=None if self.clip_norm is None else float(self.clip_norm),
            gradient_noise=(tuple(self.gradient_noise)
                            if isinstance(self.gradient_noise, (tuple, list))
                            else self.gradient_noise),
            seed=seed)

    def _optimizer_spec(self, early_stopping):
        return OptimizerSpec(
            solver=self.solver, learning_rate_init=float(self.learning_rate_init),
            learning_rate=self.learning_rate,
            learning_rate_params=dict(self.learning_rate_params or {}),
            momentum=float(self.momentum), nesterov=bool(self.nesterovs_momentum),
            beta_1=float(self.beta_1), beta_2=float(self.beta_2),
            epsilon=float(self.epsilon), solver_params=dict(self.solver_params or {}),
            # Only the plateau schedule watches a metric; elsewhere switching early
            # stopping on or off must not count as a new optimizer.
            monitor=("val_loss" if early_stopping and self.learning_rate == "plateau"
                     else "loss"))

    # ----------------------------------------------------------------- training

    def _initialize(self, n_features, n_outputs, rng, early_stopping):
        """Build the network and reset every fitted curve and counter."""
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self._network = self._network_spec(n_features, n_outputs, seed)
        self._optimizer = self._optimizer_spec(early_stopping)
        model = self._network.build()
        model.optimizer = self._optimizer.build()
        self.model_ = model
        self.n_outputs_ = n_outputs
        self.loss_curve_ = []
        self.t_ = 0
        self._no_improvement_count = 0
        self._reset_stopping(early_stopping)

    def _reset_stopping(self, early_stopping):
        if early_stopping:
            self.validation_scores_, self.validation_loss_curve_ = [], []
            self.best_validation_score_, self.best_loss_ = -np.inf, None
            self._best_state = self.model_.get_state()
        else:
            self.validation_scores_ = self.validation_loss_curve_ = None
            self.best_validation_score_, self.best_loss_ = None, np.inf
            self._best_state = None

    def _continue(self, n_features, n_outputs, incremental, early_stopping):
        """Keep the fitted network for a warm start or ``partial_fit``; check it still fits."""
        if n_outputs != self.n_outputs_:
            raise ValueError(f"y needs {n_outputs} network outputs, the fitted network has "
                             f"{self.n_outputs_}; refit with warm_start=False")
        wanted = self._network_spec(n_features, n_outputs, self._network.seed)
        changed = [name for name in wanted.__dataclass_fields__
                   if getattr(wanted, name) != getattr(self._network, name)]
        if changed:
            raise ValueError(f"{', '.join(changed)} changed since the network was fitted; "
                             "continuing training keeps the network, so set warm_start=False "
                             "(or restore the parameters) to build a new one")
        if not incremental:
            optimizer = self._optimizer_spec(early_stopping)
            if optimizer != self._optimizer:
                # New optimizer hyper-parameters take effect, with fresh state, as in
                # scikit-learn (which makes a new optimizer on every warm start).
                self.model_.optimizer = optimizer.build()
                self._optimizer = optimizer
        if early_stopping and self.validation_scores_ is None:
            self._reset_stopping(True)
        elif not early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf

    def _check_sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if (weights < 0).any():
            raise ValueError("sample_weight must be non-negative, got "
                             f"{weights[weights < 0][0]}")
        return weights

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if not first_pass:
            return self._train(X, y, sample_weight, incremental, classes, first_pass)
        # A new fit that fails leaves no fitted state behind: the classes or
        # feature count of the new data beside the network of the old would
        # give wrong predictions.
        if hasattr(self, "model_"):
            del self.model_
        try:
            return self._train(X, y, sample_weight, incremental, classes, first_pass)
        except Exception:
            if hasattr(self, "model_"):
                del self.model_
            raise

    def _train(self, X, y, sample_weight, incremental, classes, first_pass):
        early_stopping = self.early_stopping and not incremental
        X, y = self._validate_input(X, y, incremental, first_pass, classes)
        weights = self._check_sample_weight(sample_weight, X)
        weights = self._class_weights(y, weights, incremental)
        if weights is not None and not fit_takes_sample_weight():
            raise NotImplementedError(NO_SAMPLE_WEIGHT)
        n_outputs = self._n_outputs(y)
        rng = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], n_outputs, rng, early_stopping)
        else:
            self._continue(X.shape[1], n_outputs, incremental, early_stopping)

        if early_stopping:
            X_train, y_train, w_train, validation = self._split(X, y, weights, rng)
        else:
            X_train, y_train, w_train, validation = X, y, weights, None
        n_train = X_train.shape[0]
        batch_size = self._batch_size(n_train)
        # scikit-learn's penalty α/(2m)·Σw² per batch of m rows in fastnn's λ/(2n)·Σw².
        self.model_.l2 = float(self.alpha) * n_train / batch_size
        self.model_.l1 = float(self.l1) * n_train / batch_size
        fit_kwargs = {}
        if w_train is not None:
            total = w_train.sum()
            if not total > 0:
                raise ValueError("sample_weight is zero on every training row")
            # Mean 1, so that the weights say how much a row counts relative to the
            # others and the learning rate keeps its meaning (scikit-learn's MLP
            # divides by the batch's weight sum; fastnn by its row count).
            fit_kwargs["sample_weight"] = w_train * (n_train / total)

        stopping = NoImprovementStopping(self, n_train, validation)
        self.n_iter_ = 0
        try:
            self.model_.fit(
                X_train, y_train, epochs=1 if incremental else self.max_iter,
                batch_size=batch_size, shuffle=bool(self.shuffle),
                validation_data=None if validation is None else validation[:2],
                callbacks=[stopping], verbose=bool(self.verbose), **fit_kwargs)
        except NonFiniteError as error:
            raise ValueError(f"training diverged ({error}); the input data may contain "
                             "large values and need to be scaled, or the learning rate "
                             "is too large") from error
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
            if hasattr(stopping, "model"):  # interrupted after training began
                stopping.on_train_end()
        if not incremental and not stopping.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning)
        return self

    def _split(self, X, y, weights, rng):
        """Training rows and (X_val, y_val, weights_val) as scikit-learn's MLP splits them."""
        arrays = [X, y] + ([weights] if weights is not None else [])
        parts = train_test_split(*arrays, random_state=rng,
                                 test_size=self.validation_fraction,
                                 stratify=self._stratify(y))
        X_train, X_val, y_train, y_val = parts[:4]
        w_train, w_val = parts[4:] if weights is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        return X_train, y_train, w_train, (X_val, y_val, w_val)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"Got `batch_size` larger than the sample size ({n_samples}). "
                          "It is going to be clipped")
        return min(int(self.batch_size), n_samples)

    def _stratify(self, y):
        return None

    def _class_weights(self, y, weights, incremental):
        return weights

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and y for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of every row: its loss and gradient are
            multiplied by it (the weights are rescaled to mean 1).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # --------------------------------------------------------------- prediction

    def _forward(self, X):
        """Network outputs for X, checked against what was fitted, as float64."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=self._network_dtype())
        return self._outputs(X)

    def _outputs(self, X):
        return self.model_.predict_proba(X).astype(np.float64)

    def _network_dtype(self):
        return np.dtype(self._network.dtype).type

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        # A Sequential holds weak references and read-only mappings, which do not
        # pickle: keep its arrays and rebuild it from the specifications.
        state = super().__getstate__()
        if "model_" in state:
            state = dict(state)
            state["model_"] = snapshot(state["model_"])
        return state

    def __setstate__(self, state):
        saved = state.get("model_")
        super().__setstate__(state)
        if isinstance(saved, dict):
            self.model_ = rebuild(self._network, self._optimizer, saved)


def expected_failed_checks(estimator):
    """The estimator checks this estimator does not pass, each with the reason.

    Returns
    -------
    dict
        Check name → reason (the ``_xfail_checks`` tag of scikit-learn < 1.6
        and the ``expected_failed_checks`` of ``parametrize_with_checks``).
    """
    failing = {
        "check_sample_weight_equivalence_on_dense_data": (
            "mini-batch training: a row of weight 2 and the same row twice fall into "
            "different batches, so the steps differ"),
        # scikit-learn < 1.6: kind='zeros' compares against a fit without the rows.
        "check_sample_weights_invariance": (
            "mini-batch training: dropping the rows of weight zero changes which rows "
            "share a batch, so the steps differ"),
    }
    if not fit_takes_sample_weight():
        for name in ("check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
                     "check_sample_weights_list", "check_sample_weights_shape",
                     "check_sample_weights_not_overwritten",
                     "check_classifiers_one_label_sample_weights",
                     "check_class_weight_classifiers"):
            failing[name] = NO_SAMPLE_WEIGHT
    return failing
