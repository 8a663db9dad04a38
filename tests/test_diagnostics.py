"""Per-layer gradient norms against finite differences, and the vanishing gradient."""

import numpy as np

from fastnn import layers as L
from fastnn.diagnostics import gradient_norms
from fastnn.model import Sequential


def sigmoid_net(widths, seed=0):
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [L.Dense(n_in, n_out, init="normal", bias_init="normal"), L.Sigmoid()]
    return Sequential(layers, loss="mse", dtype="float64", seed=seed)


def test_norms_match_finite_differences():
    rng = np.random.default_rng(0)
    X, y = rng.random((20, 6)), rng.integers(0, 3, 20)
    model = sigmoid_net([6, 5, 4, 3])
    report = gradient_norms(model, X, y)
    h = 1e-6
    for entry in report:
        bias = model.layers[entry["layer"]].params["b"]
        numeric = np.empty(bias.size)
        for j in range(bias.size):
            saved = bias[j]
            bias[j] = saved + h
            plus = model.loss_and_gradients(X, y)[0]
            bias[j] = saved - h
            minus = model.loss_and_gradients(X, y)[0]
            bias[j] = saved
            numeric[j] = (plus - minus) / (2 * h)
        assert abs(entry["bias"] - np.linalg.norm(numeric)) < 1e-7 * max(1.0, np.linalg.norm(numeric))


def test_earlier_layers_learn_more_slowly():
    """Nielsen's vanishing gradient: in a deep sigmoid net with N(0, 1) weights
    the bias gradient shrinks toward the input."""
    rng = np.random.default_rng(1)
    X, y = rng.random((500, 784)), rng.integers(0, 10, 500)
    report = gradient_norms(sigmoid_net([784, 30, 30, 30, 10], seed=2), X, y)
    hidden = [entry["bias"] for entry in report[:-1]]
    assert hidden[0] < hidden[1] < hidden[2]
