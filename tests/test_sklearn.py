"""fastnn.sklearn: scikit-learn's estimator checks, and agreement with scikit-learn's MLP.

The references are scikit-learn itself: its estimator checks, its MLP's
training step and penalty, its metrics, its splitter and its stopping rule
(transcribed below from ``BaseMultilayerPerceptron``).
"""

import inspect
import pathlib
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.model_selection import (GridSearchCV, cross_val_score,  # noqa: E402
                                     train_test_split)
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn  # noqa: E402
from fastnn.layers import (BatchNorm, Dropout, Identity, LeakyReLU, PReLU, ReLU,  # noqa: E402
                           Sigmoid, SiLU, Softmax, Tanh)
from fastnn.optimizers import OPTIMIZERS  # noqa: E402
from fastnn.schedules import StepDecay  # noqa: E402
from fastnn.sklearn import FastNNClassifier, FastNNRegressor  # noqa: E402
from fastnn.sklearn import _base  # noqa: E402
from fastnn.sklearn._compat import NO_SAMPLE_WEIGHT, fit_takes_sample_weight  # noqa: E402

needs_sample_weight = pytest.mark.skipif(not fit_takes_sample_weight(), reason=NO_SAMPLE_WEIGHT)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def blobs(n=120, n_features=4, n_classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=n_features,
                               n_redundant=0, n_classes=n_classes, n_clusters_per_class=1,
                               class_sep=2.0, random_state=seed)
    return X, y


# ------------------------------------------------------------ estimator checks

ESTIMATORS = [FastNNClassifier(random_state=0), FastNNRegressor(random_state=0)]
if "expected_failed_checks" in inspect.signature(parametrize_with_checks).parameters:
    # scikit-learn >= 1.6 takes the expected failures as an argument ...
    checked = parametrize_with_checks(
        ESTIMATORS, expected_failed_checks=lambda est: est._more_tags()["_xfail_checks"])
else:
    # ... older versions read them from the estimator's _xfail_checks tag
    checked = parametrize_with_checks(ESTIMATORS)


@checked
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_expected_failures_state_their_reasons():
    for estimator in (FastNNClassifier(), FastNNRegressor()):
        failing = estimator._more_tags()["_xfail_checks"]
        assert failing and all(isinstance(reason, str) and len(reason) > 20
                               for reason in failing.values())


def test_import_fastnn_does_not_import_sklearn():
    code = "import sys, fastnn; print('sklearn' in sys.modules)"
    root = pathlib.Path(fastnn.__file__).parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root)
    assert out.stdout.strip() == "False"


# ------------------------------------------------- agreement with MLPClassifier

def _dense_weights(model):
    return [(layer.params["W"], layer.params["b"]) for layer in model.layers
            if "W" in layer.params]


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_sgd_epoch_matches_mlpclassifier(n_classes, activation):
    """From the same weights, one epoch of plain SGD with alpha gives scikit-learn's weights.

    This pins the alpha → l2 mapping (α·n/m), the output layer (one sigmoid
    unit for two classes, a softmax otherwise), the loss gradient and the
    batching; with l2 = α the weights would differ by η·α·(1/m − 1/n)·W per step.
    """
    X, y = blobs(n=60, n_classes=n_classes)
    params = dict(hidden_layer_sizes=(5,), activation=activation, solver="sgd",
                  momentum=0.0, alpha=0.5, batch_size=20, learning_rate_init=0.1,
                  shuffle=False, max_iter=1, warm_start=True, random_state=0)
    reference = MLPClassifier(**params).fit(X, y)
    ours = FastNNClassifier(**params, dtype="float64").fit(X, y)
    weights = [{"W": W, "b": b} for W, b in zip(reference.coefs_, reference.intercepts_)]
    dense = [layer for layer in ours.model_.layers if "W" in layer.params]
    for layer, w in zip(dense, weights):
        layer.set_weights(w)
    reference.fit(X, y)
    ours.fit(X, y)
    for (W, b), W_ref, b_ref in zip(_dense_weights(ours.model_), reference.coefs_,
                                    reference.intercepts_):
        np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b, b_ref, rtol=1e-12, atol=1e-12)


def test_penalty_is_sklearns_per_batch_penalty():
    X, y = blobs(n=90)
    alpha, m = 0.3, 30
    clf = FastNNClassifier(hidden_layer_sizes=(6, 4), alpha=alpha, l1=0.2, batch_size=m,
                           max_iter=2, random_state=0, dtype="float64").fit(X, y)
    coefs = [W for W, _ in _dense_weights(clf.model_)]
    # scikit-learn's _backprop: loss += (0.5 * alpha) * Σ‖W‖² / n_samples of the batch
    expected = 0.5 * alpha * sum(np.dot(W.ravel(), W.ravel()) for W in coefs) / m
    expected += 0.2 * sum(np.abs(W).sum() for W in coefs) / m
    assert clf.model_.penalty(X.shape[0]) == pytest.approx(expected, rel=1e-12)
    assert clf.model_.l2 == pytest.approx(alpha * X.shape[0] / m)


def test_auto_batch_size_and_outputs_as_mlpclassifier():
    X, y = blobs(n=450, n_classes=3)
    for n_classes in (2, 3):
        y_k = y % n_classes
        ours = FastNNClassifier(max_iter=1).fit(X, y_k)
        reference = MLPClassifier(max_iter=1).fit(X, y_k)
        assert ours.n_outputs_ == reference.n_outputs_
        assert isinstance(ours.model_.layers[-1], Sigmoid if n_classes == 2 else Softmax)
    # "auto" is min(200, n): l2 = α·n/200 for 450 rows, α·n/n for 150
    assert FastNNClassifier(max_iter=1, alpha=1.0).fit(X, y).model_.l2 == pytest.approx(450 / 200)
    assert FastNNClassifier(max_iter=1, alpha=1.0).fit(X[:150], y[:150]).model_.l2 == 1.0


# ---------------------------------------------------------------- labels

@pytest.mark.parametrize("labels", [
    np.array([-7, 3, 1000]), np.array(["cat", "dog", "emu"]), np.array([True, False]),
    np.array([2.0, -1.0]), np.array(["yes", "no"], dtype=object)])
def test_labels_round_trip(labels):
    X, y = blobs(n=150, n_classes=len(labels), seed=1)
    y_labels = labels[y]
    clf = FastNNClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=200,
                           random_state=0).fit(X, y_labels)
    np.testing.assert_array_equal(clf.classes_, np.unique(y_labels))
    predicted = clf.predict(X)
    assert predicted.dtype == clf.classes_.dtype
    assert set(predicted.tolist()) <= set(labels.tolist())
    assert accuracy_score(y_labels, predicted) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (150, len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # the columns follow classes_
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], predicted)
    assert clf.score(X, y_labels) == accuracy_score(y_labels, predicted)


def test_multilabel_as_mlpclassifier():
    X, Y = make_multilabel_classification(n_samples=200, n_features=6, n_classes=4,
                                          random_state=0)
    clf = FastNNClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300,
                           random_state=0).fit(X, Y)
    reference = MLPClassifier(hidden_layer_sizes=(32,), max_iter=5).fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, reference.classes_)
    assert clf.n_outputs_ == reference.n_outputs_ == 4
    assert isinstance(clf.model_.layers[-1], Sigmoid)
    predicted, proba = clf.predict(X), clf.predict_proba(X)
    assert predicted.shape == proba.shape == Y.shape
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(int))
    assert clf.score(X, Y) == accuracy_score(Y, predicted)  # subset accuracy
    assert clf.score(X, Y) > 0.5


def test_multioutput_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    Y = X @ rng.normal(size=(5, 3)) + 0.01 * rng.normal(size=(400, 3))
    reg = FastNNRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300,
                          random_state=0).fit(X, Y)
    assert reg.n_outputs_ == 3
    predicted = reg.predict(X)
    assert predicted.shape == Y.shape and predicted.dtype == np.float64
    assert reg.score(X, Y) == pytest.approx(r2_score(Y, predicted))
    assert reg.score(X, Y) > 0.95
    one = FastNNRegressor(max_iter=5).fit(X, Y[:, 0])
    assert one.predict(X).shape == (400,)


# ------------------------------------------------------------------ errors

def test_errors():
    X, y = blobs()
    with pytest.raises(NotFittedError):
        FastNNClassifier().predict(X)
    with pytest.raises(NotFittedError):
        FastNNRegressor().predict(X)
    clf = FastNNClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="solver"):
        FastNNClassifier(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        FastNNClassifier(alpha=-1).fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed"):
        FastNNClassifier().partial_fit(X, y)
    partial = FastNNClassifier().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        partial.partial_fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match="not in `classes`"):
        FastNNClassifier().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="same classes"):
        FastNNClassifier(warm_start=True, max_iter=2).fit(X, y).fit(X, y % 2)
    with pytest.raises(ValueError, match="hidden_layer_sizes changed"):
        FastNNClassifier(warm_start=True, max_iter=2).fit(X, y).set_params(
            hidden_layer_sizes=(7,)).fit(X, y)
    with pytest.raises(ValueError, match="class"):
        FastNNClassifier().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        FastNNClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="early_stopping"):
        FastNNClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="learning_rate"):
        FastNNClassifier(learning_rate="invscaling").fit(X, y)
    with pytest.raises(TypeError, match="learning_rate_params"):
        FastNNClassifier(learning_rate="step", learning_rate_params={"nope": 1}).fit(X, y)
    with pytest.raises(TypeError, match="solver_params"):
        FastNNClassifier(solver_params={"nope": 1}).fit(X, y)


# -------------------------------------------------- scikit-learn's tools

def test_pipeline_grid_search_cross_validation_clone():
    X, y = blobs(n=150)
    X = X * 100 + 50   # badly scaled: the pipeline's scaler is needed
    pipe = make_pipeline(StandardScaler(), FastNNClassifier(hidden_layer_sizes=(16,),
                                                            learning_rate_init=0.01,
                                                            max_iter=100, random_state=0))
    assert pipe.fit(X, y).score(X, y) > 0.9
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    grid = GridSearchCV(pipe, {"fastnnclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "fastnnclassifier__alpha": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert set(grid.best_params_) == {"fastnnclassifier__hidden_layer_sizes",
                                      "fastnnclassifier__alpha"}
    fitted = pipe[-1]
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_")


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = FastNNClassifier(max_iter=3, random_state=0).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    assert clf.n_features_in_ == 4
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[["b", "a", "c", "d"]])


# ----------------------------------------------------------- training rules

def _sklearn_stop_epoch(values, tol, n_iter_no_change, larger_is_better):
    """1-based epoch at which scikit-learn's MLP stops, or None (its rule, transcribed)."""
    best = -np.inf if larger_is_better else np.inf
    count = 0
    for epoch, value in enumerate(values, start=1):
        if larger_is_better:
            count = count + 1 if value < best + tol else 0
            best = max(best, value)
        else:
            count = count + 1 if value > best - tol else 0
            best = min(best, value)
        if count > n_iter_no_change:
            return epoch
    return None


def test_loss_stopping_rule():
    X, y = blobs(n=200)
    clf = FastNNClassifier(hidden_layer_sizes=(8,), tol=1e-3, n_iter_no_change=3,
                           learning_rate_init=0.01, max_iter=500, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.loss_curve_) == clf.n_iter_
    assert _sklearn_stop_epoch(clf.loss_curve_, 1e-3, 3, False) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.loss_ == clf.loss_curve_[-1]
    # the curve is the epoch's mean loss plus the penalty (scikit-learn's loss_)
    last = clf.model_.history_["loss"][-1] + clf.model_.penalty(X.shape[0])
    assert clf.loss_curve_[-1] == pytest.approx(last)
    assert clf.validation_scores_ is None and clf.validation_loss_curve_ is None


def test_early_stopping_split_scores_and_best_weights():
    X, y = blobs(n=300, seed=3)
    X = X + np.random.default_rng(0).normal(scale=2.0, size=X.shape)  # overlap: scores vary
    clf = FastNNClassifier(hidden_layer_sizes=(16,), early_stopping=True,
                           validation_fraction=0.2, n_iter_no_change=4, tol=1e-4,
                           learning_rate_init=0.01, max_iter=500, random_state=0).fit(X, y)
    # the same split as scikit-learn's MLP: stratified, from the random state after the seed
    rng = np.random.RandomState(0)
    rng.randint(np.iinfo(np.int32).max)
    _, X_val, _, y_val = train_test_split(X, y, random_state=rng, test_size=0.2, stratify=y)
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == clf.n_iter_
    assert _sklearn_stop_epoch(clf.validation_scores_, 1e-4, 4, True) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the network ends with the weights of its best epoch
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)
    assert clf.best_loss_ is None


def test_partial_fit_and_warm_start_continue_training():
    """Two partial fits, or a fit and a warm fit, of one epoch each equal one fit of two."""
    X, y = blobs(n=100)
    params = dict(hidden_layer_sizes=(8,), batch_size=16, tol=0.0, n_iter_no_change=100,
                  random_state=0)
    whole = FastNNClassifier(max_iter=2, **params).fit(X, y)
    parts = FastNNClassifier(**params)
    parts.partial_fit(X, y, classes=np.unique(y)).partial_fit(X, y)
    warm = FastNNClassifier(max_iter=1, warm_start=True, **params).fit(X, y).fit(X, y)
    for other in (parts, warm):
        np.testing.assert_array_equal(other.model_.params_, whole.model_.params_)
        np.testing.assert_allclose(other.loss_curve_, whole.loss_curve_, rtol=1e-12)
    assert parts.n_iter_ == 1 and parts.t_ == 200 == whole.t_
    assert warm.n_iter_ == 1 and whole.n_iter_ == 2
    # the optimizer and its moments are kept while its hyper-parameters stay ...
    optimizer = warm.model_.optimizer
    warm.set_params(early_stopping=True, max_iter=2).fit(X, y)
    assert warm.model_.optimizer is optimizer and optimizer.t_ > 14
    # ... and a changed one takes effect on a warm start, with a new optimizer
    warm.set_params(learning_rate_init=0.5).fit(X, y)
    assert warm.model_.optimizer is not optimizer and warm.model_.optimizer.lr.lr == 0.5


def test_pickle_keeps_weights_and_training_state():
    X, y = blobs(n=100)
    clf = FastNNClassifier(hidden_layer_sizes=(8,), batch_norm=True, dropout=0.1,
                           learning_rate="plateau", max_iter=3, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # training on continues identically: optimizer moments, step count, schedule, generator
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.model_.params_, clf.model_.params_)
    np.testing.assert_array_equal(copy.model_.buffers_, clf.model_.buffers_)


# ------------------------------------------------------------ hyper-parameters

@pytest.mark.parametrize("solver", sorted(OPTIMIZERS))
def test_every_solver(solver):
    X, y = blobs()
    clf = FastNNClassifier(solver=solver, max_iter=3, random_state=0, beta_1=0.8,
                           momentum=0.5).fit(X, y)
    optimizer = clf.model_.optimizer
    assert type(optimizer) is OPTIMIZERS[solver]
    assert optimizer.lr.lr == 1e-3
    if solver == "sgd":
        assert optimizer.momentum == 0.5 and optimizer.nesterov
    if solver in ("adam", "adamw"):
        assert optimizer.betas == (0.8, 0.999) and optimizer.eps == 1e-8
    assert np.isfinite(clf.loss_curve_).all()


def test_solver_params_reach_the_optimizer():
    X, y = blobs()
    clf = FastNNClassifier(solver="adam", solver_params={"amsgrad": True},
                           max_iter=1).fit(X, y)
    assert clf.model_.optimizer.amsgrad


@pytest.mark.parametrize("name, layer", [
    ("relu", ReLU), ("tanh", Tanh), ("logistic", Sigmoid), ("sigmoid", Sigmoid),
    ("identity", Identity), ("leaky_relu", LeakyReLU), ("prelu", PReLU), ("silu", SiLU)])
def test_every_activation(name, layer):
    X, y = blobs()
    clf = FastNNRegressor(hidden_layer_sizes=(5, 3), activation=name, max_iter=2).fit(X, y)
    kinds = [type(item) for item in clf.model_.layers]
    assert kinds.count(layer) == 2


def test_dropout_and_batch_norm_layers():
    X, y = blobs()
    clf = FastNNClassifier(hidden_layer_sizes=(5, 3), dropout=0.25, batch_norm=True,
                           max_iter=2).fit(X, y)
    kinds = [type(item).__name__ for item in clf.model_.layers]
    assert kinds == ["Dense", "BatchNorm", "ReLU", "Dropout", "Dense", "BatchNorm", "ReLU",
                     "Dropout", "Dense", "Softmax"]
    assert [layer.rate for layer in clf.model_.layers if isinstance(layer, Dropout)] == [0.25] * 2
    assert sum(isinstance(layer, BatchNorm) for layer in clf.model_.layers) == 2


def test_schedule_rates_per_epoch():
    X, y = blobs()
    clf = FastNNClassifier(learning_rate="step", learning_rate_init=0.01,
                           learning_rate_params={"factor": 0.5, "every": 2}, tol=0.0,
                           n_iter_no_change=100, max_iter=6).fit(X, y)
    assert isinstance(clf.model_.optimizer.lr, StepDecay)
    expected = [0.01 * 0.5 ** (epoch // 2) for epoch in range(6)]
    np.testing.assert_allclose(clf.model_.history_["lr"], expected, rtol=1e-15)


def test_plateau_watches_the_loss_that_exists():
    X, y = blobs()
    plain = FastNNClassifier(learning_rate="plateau", max_iter=2).fit(X, y)
    assert plain.model_.optimizer.lr.monitor == "loss"
    early = FastNNClassifier(learning_rate="plateau", early_stopping=True, max_iter=2).fit(X, y)
    assert early.model_.optimizer.lr.monitor == "val_loss"


# --------------------------------------------------------------- sample weights

def test_weights_given_to_the_network(monkeypatch):
    """sample_weight × class weight, rescaled to mean 1 over the training rows."""
    received = []
    original = fastnn.Sequential.fit

    def recording_fit(self, X, y, *args, sample_weight=None, **kwargs):
        received.append(sample_weight)
        return original(self, X, y, *args, **kwargs)

    monkeypatch.setattr(_base, "fit_takes_sample_weight", lambda: True)
    monkeypatch.setattr(fastnn.Sequential, "fit", recording_fit)
    X, y = blobs(n=90)
    weights = np.linspace(0.5, 2.0, 90)
    FastNNClassifier(max_iter=1, class_weight={0: 1.0, 1: 2.0, 2: 4.0}).fit(
        X, y, sample_weight=weights)
    expected = weights * np.array([1.0, 2.0, 4.0])[y]
    np.testing.assert_allclose(received[-1], expected * 90 / expected.sum(), rtol=1e-15)
    FastNNClassifier(max_iter=1, class_weight="balanced").fit(X[:60], y[:60])
    counts = np.bincount(y[:60])
    balanced = (60 / (3 * counts))[y[:60]]
    np.testing.assert_allclose(received[-1], balanced * 60 / balanced.sum(), rtol=1e-15)
    with pytest.raises(ValueError, match="balanced"):
        FastNNClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_sample_weight_without_support_is_a_clear_error():
    if fit_takes_sample_weight():
        pytest.skip("this fastnn's Sequential.fit accepts sample_weight")
    X, y = blobs()
    with pytest.raises(NotImplementedError, match="sample_weight"):
        FastNNClassifier(max_iter=1).fit(X, y, sample_weight=np.ones(len(y)))


@needs_sample_weight
def test_unit_weights_change_nothing():
    X, y = blobs()
    plain = FastNNClassifier(max_iter=3, random_state=0).fit(X, y)
    ones = FastNNClassifier(max_iter=3, random_state=0).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(ones.model_.params_, plain.model_.params_)


@needs_sample_weight
def test_class_weight_is_sample_weight():
    X, y = blobs()
    by_class = FastNNClassifier(max_iter=3, random_state=0,
                                class_weight={0: 3.0, 1: 1.0, 2: 0.5}).fit(X, y)
    by_row = FastNNClassifier(max_iter=3, random_state=0).fit(
        X, y, sample_weight=np.array([3.0, 1.0, 0.5])[y])
    np.testing.assert_array_equal(by_class.model_.params_, by_row.model_.params_)


def test_a_failed_refit_leaves_the_estimator_unfitted():
    """Not half-updated: classes_ of the new y beside the network of the old one."""
    X, y = blobs()
    clf = FastNNClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="weight"):
        clf.fit(X, y % 2, sample_weight=np.zeros(len(y)))
    with pytest.raises(NotFittedError):
        clf.predict(X)
    reg = FastNNRegressor(max_iter=2, batch_norm=True, batch_size=len(y) - 1).fit(X[1:], y[1:])
    with pytest.raises(ValueError, match="batch"):
        reg.fit(X[:, :3], y)   # a last batch of one row: batch normalization refuses it
    with pytest.raises(NotFittedError):
        reg.predict(X[:, :3])
