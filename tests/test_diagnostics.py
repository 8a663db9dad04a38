"""Per-layer gradient norms and the LearningSpeed callback against finite differences."""

import numpy as np
import pytest

from fastnn import layers as L
from fastnn.callbacks import Callback
from fastnn.diagnostics import LayerValues, LearningSpeed, gradient_norms
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


# ------------------------------------------------ the LearningSpeed callback


def central_difference_norm(objective, array, h=1e-6):
    """‖∂objective/∂array‖ by central differences, one element at a time."""
    numeric = np.empty(array.size)
    flat = array.reshape(-1)
    for j in range(flat.size):
        saved = flat[j]
        flat[j] = saved + h
        plus = objective()
        flat[j] = saved - h
        minus = objective()
        flat[j] = saved
        numeric[j] = (plus - minus) / (2 * h)
    return np.linalg.norm(numeric)


def test_recorded_speeds_match_finite_differences_of_the_unpenalized_loss():
    rng = np.random.default_rng(3)
    X, y = rng.random((200, 6)), rng.integers(0, 3, 200)
    layers = []
    for n_in, n_out in ((6, 5), (5, 4)):
        layers += [L.Dense(n_in, n_out, init="scaled_normal", bias_init="normal"), L.Sigmoid()]
    layers += [L.Dense(4, 3, init="scaled_normal", bias_init="normal"), L.Sigmoid()]
    model = Sequential(layers, loss="sigmoid_cross_entropy", dtype="float64", seed=0, l2=5.0)
    speed = LearningSpeed(X, y, n_samples=40, seed=1)
    assert speed.X.shape == (40, 6)
    speed_b, speed_W = speed.measure(model)
    assert model.l2 == 5.0  # restored

    def loss():  # C₀: the mean loss on the sample, without the penalty
        return model.evaluate(speed.X, speed.y)["loss"]

    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    assert len(speed_b) == len(speed_W) == len(dense) == 3
    for layer, b, W in zip(dense, speed_b, speed_W):
        assert b == pytest.approx(central_difference_norm(loss, layer.params["b"]), rel=1e-7)
        assert W == pytest.approx(central_difference_norm(loss, layer.params["W"]), rel=1e-7)


def test_with_batch_norm_the_speed_is_that_of_the_shift_beta():
    rng = np.random.default_rng(4)
    X, y = rng.random((50, 6)), rng.integers(0, 3, 50)
    model = Sequential([L.Dense(6, 5), L.BatchNorm(), L.Sigmoid(), L.Dense(5, 3), L.Softmax()],
                       dtype="float64", seed=0)
    speed = LearningSpeed(X, y, n_samples=50)
    speed_b, _ = speed.measure(model)
    beta = model.layers[1].params["beta"]

    def loss():  # training mode: batch statistics of the sample, as the callback measures
        return model.loss_and_gradients(speed.X, speed.y, training=True)[0]

    assert speed_b[0] == pytest.approx(central_difference_norm(loss, beta), rel=1e-6)
    assert speed_b[0] > 1e-4  # β moves the loss; the dense bias would report exactly 0


@pytest.mark.parametrize("compiled", [True, False])
def test_measuring_leaves_training_unchanged(compiled):
    rng = np.random.default_rng(5)
    X, y = rng.random((120, 8)), rng.integers(0, 3, 120)

    def train(callbacks):
        model = Sequential([L.Dense(8, 6), L.BatchNorm(), L.ReLU(), L.Dropout(0.3),
                            L.Dense(6, 3), L.Softmax()], dtype="float64", seed=2, l2=0.5)
        model.fit(X, y, epochs=3, batch_size=16, callbacks=callbacks, compiled=compiled)
        return model

    speed = LearningSpeed(X, y, n_samples=50)
    with_speed, without = train([speed]), train([])
    np.testing.assert_array_equal(with_speed.params_, without.params_)
    np.testing.assert_array_equal(with_speed.buffers_, without.buffers_)
    assert speed.history["epoch"] == [0, 1, 2, 3]
    assert all(len(row) == 2 for row in speed.history["speed_b"])
    # The last entry is the trained network's speed.
    assert speed.history["speed_b"][-1] == speed.measure(with_speed)[0]


def test_later_callbacks_and_the_progress_bar_see_the_speeds(capsys):
    rng = np.random.default_rng(6)
    X, y = rng.random((60, 4)), rng.integers(0, 2, 60)
    seen = []

    class Watch(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(list(logs["speed_b"]))

    model = Sequential([L.Dense(4, 3), L.Sigmoid(), L.Dense(3, 2), L.Softmax()], seed=0)
    speed = LearningSpeed(X, y)
    model.fit(X, y, epochs=2, callbacks=[speed, Watch()], verbose=True)
    assert seen == [list(values) for values in speed.history["speed_b"][1:]]
    assert "speed_b [" in capsys.readouterr().out  # the epoch's metrics go to stdout
    assert model.history_["speed_b"] == speed.history["speed_b"][1:]
    assert format(LayerValues([0.5, 0.25]), ".2f") == "[0.50 0.25]"


def test_learning_speed_bad_input():
    X, y = np.zeros((10, 3)), np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="n_samples"):
        LearningSpeed(X, y, n_samples=0)
    with pytest.raises(ValueError, match="y has 9 rows"):
        LearningSpeed(X, y[:9])
    with pytest.raises(ValueError, match="X must be"):
        LearningSpeed(np.zeros(10), y)


def test_several_measurements_per_epoch():
    rng = np.random.default_rng(7)
    X, y = rng.random((400, 4)), rng.integers(0, 2, 400)
    model = Sequential([L.Dense(4, 3), L.Sigmoid(), L.Dense(3, 2), L.Softmax()], seed=0)
    speed = LearningSpeed(X, y, n_samples=100, per_epoch=4)
    model.fit(X, y, epochs=2, batch_size=4, callbacks=[speed])  # 100 steps per epoch
    assert speed.history["epoch"] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]
    with pytest.raises(ValueError, match="per_epoch"):
        LearningSpeed(X, y, per_epoch=0)
