"""Ensembles: averaged probabilities, Jensen's bound on the loss, clear errors."""

import numpy as np
import pytest

from fastnn import layers as L
from fastnn.ensemble import Ensemble
from fastnn.model import Sequential
from fastnn.optimizers import Adam

from test_model import blobs


def softmax_net(seed, hidden=8, dtype="float64", n_in=6, n_out=3):
    return Sequential([L.Dense(n_in, hidden), L.Tanh(), L.Dense(hidden, n_out), L.Softmax()],
                      optimizer=Adam(lr=0.02), dtype=dtype, seed=seed)


def sigmoid_net(seed, n_out=1):
    return Sequential([L.Dense(6, 5), L.ReLU(), L.Dense(5, n_out), L.Sigmoid()],
                      loss="sigmoid_cross_entropy", optimizer=Adam(lr=0.02),
                      dtype="float64", seed=seed)


def split(n=600, n_classes=3, spread=1.5):
    X, y = blobs(n=n, n_classes=n_classes, spread=spread, seed=4)
    return (X[:n // 2], y[:n // 2]), (X[n // 2:], y[n // 2:])


@pytest.mark.parametrize("weights", [None, [0.5, 0.2, 0.2, 0.1, 0.0]], ids=["equal", "weighted"])
def test_the_ensemble_loss_is_at_most_the_mean_member_loss_on_held_out_data(weights):
    # Cross-entropy is convex in the probabilities (Jensen): −log Σ w_k p_k ≤ Σ w_k (−log p_k).
    (X, y), (X_test, y_test) = split()
    ensemble = Ensemble.train(lambda seed: softmax_net(seed, hidden=4 + seed), X, y,
                              weights=weights, epochs=3, batch_size=16)
    w = ensemble.weights
    losses = np.array([model.evaluate(X_test, y_test)["loss"] for model in ensemble.models])
    assert len({round(loss, 6) for loss in losses}) == 5      # the members differ
    assert ensemble.evaluate(X_test, y_test)["loss"] < w @ losses


def test_jensen_holds_for_sigmoid_members_too():
    (X, y), (X_test, y_test) = split(n_classes=2)
    ensemble = Ensemble.train(sigmoid_net, X, y, seeds=(1, 2, 3), epochs=2, batch_size=16)
    losses = [model.evaluate(X_test, y_test)["loss"] for model in ensemble.models]
    assert ensemble.evaluate(X_test, y_test)["loss"] < np.mean(losses)


def test_probabilities_are_the_weighted_mean_of_the_members_and_predictions_their_argmax():
    (X, y), (X_test, _) = split()
    models = [softmax_net(seed) for seed in range(3)]
    for model in models:
        model.fit(X, y, epochs=1)
    weights = np.array([3.0, 1.0, 1.0])
    ensemble = Ensemble(models, weights)
    expected = sum(w * m.predict_proba(X_test) for w, m in zip(weights, models)) / weights.sum()
    np.testing.assert_allclose(ensemble.predict_proba(X_test), expected, rtol=1e-14)
    np.testing.assert_array_equal(ensemble.predict(X_test), expected.argmax(axis=1))
    np.testing.assert_allclose(ensemble.predict_proba(X_test[0]), expected[0], rtol=1e-14)
    binary = Ensemble([sigmoid_net(0), sigmoid_net(1)])
    proba = binary.predict_proba(X_test)
    np.testing.assert_array_equal(binary.predict(X_test), (proba[:, 0] > 0.5).astype(int))


@pytest.mark.parametrize("build", [softmax_net, sigmoid_net, lambda seed: sigmoid_net(seed, 3)],
                         ids=["softmax", "binary", "multi-label"])
def test_an_ensemble_of_one_scores_as_its_member(build):
    # The member computes its loss from logits in compiled code; the
    # ensemble from probabilities in NumPy.
    (X, y), (X_test, y_test) = split(n_classes=2)
    model = build(0)
    if model.n_outputs_ == 3:
        y, y_test = np.eye(3)[y], np.eye(3)[y_test]
    model.fit(X, y, epochs=2)
    mine, reference = Ensemble([model]).evaluate(X_test, y_test), model.evaluate(X_test, y_test)
    assert mine["loss"] == pytest.approx(reference["loss"], rel=1e-10)
    assert mine["accuracy"] == reference["accuracy"]


def test_train_fits_one_member_per_seed_as_a_manual_loop_would():
    (X, y), _ = split()
    ensemble = Ensemble.train(softmax_net, X, y, seeds=(7, 8), epochs=2, batch_size=8)
    for seed, member in zip((7, 8), ensemble.models):
        manual = softmax_net(seed)
        manual.fit(X, y, epochs=2, batch_size=8)
        np.testing.assert_array_equal(member.params_, manual.params_)


@pytest.mark.parametrize("models, weights, error, message", [
    (lambda: [], None, ValueError, "needs at least one model"),
    (lambda: softmax_net(0), None, TypeError, "sequence of Sequential"),
    (lambda: [softmax_net(0), "model"], None, TypeError, r"models\[1\] must be a Sequential"),
    (lambda: [softmax_net(0), softmax_net(1, n_in=5)], None, ValueError, "input width 5"),
    (lambda: [softmax_net(0), softmax_net(1, n_out=4)], None, ValueError, "number of outputs"),
    (lambda: [sigmoid_net(0, 3), softmax_net(1)], None, ValueError, "different things"),
    (lambda: [Sequential([L.Dense(6, 3)], loss="mse")], None, ValueError, "averages probabilities"),
    (lambda: [softmax_net(0)], [1.0, 2.0], ValueError, "one weight per model"),
    (lambda: [softmax_net(0), softmax_net(1)], [1.0, -1.0], ValueError, ">= 0"),
    (lambda: [softmax_net(0), softmax_net(1)], [0.0, 0.0], ValueError, "not all 0"),
    (lambda: [softmax_net(0), softmax_net(1)], [1.0, np.nan], ValueError, "weights must be finite"),
])
def test_mismatched_members_and_bad_weights_are_refused(models, weights, error, message):
    with pytest.raises(error, match=message):
        Ensemble(models(), weights)


def test_train_refuses_a_bad_factory_or_seeds():
    (X, y), _ = split(n=40)
    with pytest.raises(TypeError, match="build must be a callable"):
        Ensemble.train(None, X, y)
    with pytest.raises(TypeError, match="seeds must be integers"):
        Ensemble.train(softmax_net, X, y, seeds=(1.5,))
    with pytest.raises(ValueError, match="seeds is empty"):
        Ensemble.train(softmax_net, X, y, seeds=())
    with pytest.raises(TypeError, match="returned"):
        Ensemble.train(lambda seed: None, X, y)
