"""Learning curves: CSV round trip, the running loss estimate, the history figure."""

import numpy as np
import pytest

from fastnn import layers as L
from fastnn import plotting
from fastnn.diagnostics import LearningSpeed
from fastnn.model import Sequential


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X, y = rng.random((90, 5)), rng.integers(0, 3, 90)
    model = Sequential([L.Dense(5, 4), L.Sigmoid(), L.Dense(4, 3), L.Softmax()],
                       dtype="float64", seed=0)
    speed = LearningSpeed(X, y, n_samples=50)
    history = model.fit(X[:60], y[:60], epochs=3, batch_size=8, validation_data=(X[60:], y[60:]),
                        callbacks=[speed])
    return history, speed


def test_history_csv_round_trip_is_exact(trained, tmp_path):
    history, speed = trained
    path = tmp_path / "history.csv"
    plotting.history_to_csv(history, path)
    back = plotting.history_from_csv(path)
    assert back == {"epoch": [1, 2, 3], **history.history}  # floats bit for bit
    # the history also records what LearningSpeed adds to each epoch's logs
    assert path.read_text().splitlines()[0] == ("epoch,loss,accuracy,lr,val_loss,val_accuracy,"
                                                "speed_b[0],speed_b[1],speed_W[0],speed_W[1]")

    plotting.history_to_csv(speed, path)  # its own epoch axis, per-layer columns
    back = plotting.history_from_csv(path)
    assert back == speed.history
    assert path.read_text().splitlines()[0] == \
        "epoch,speed_b[0],speed_b[1],speed_W[0],speed_W[1]"


def test_missing_values_survive_the_round_trip(tmp_path):
    history = {"loss": [0.5, 0.25], "val_loss": [None, 0.3], "speed_b": [[1.0, None], [0.5, 2.0]]}
    path = tmp_path / "h.csv"
    plotting.history_to_csv(history, path)
    assert plotting.history_from_csv(path) == {"epoch": [1, 2], **history}


def test_history_csv_bad_input(tmp_path):
    with pytest.raises(TypeError, match="history"):
        plotting.history_to_csv([1, 2], tmp_path / "x.csv")
    with pytest.raises(ValueError, match="differ in length"):
        plotting.history_to_csv({"loss": [1.0], "lr": [0.1, 0.1]}, tmp_path / "x.csv")
    (tmp_path / "bad.csv").write_text("loss\n1.0\n")
    with pytest.raises(ValueError, match="epoch"):
        plotting.history_from_csv(tmp_path / "bad.csv")


def test_running_loss_is_the_exponential_average():
    rng = np.random.default_rng(1)
    losses, weight = rng.random(50), 0.1
    estimate = None
    for loss in losses:
        estimate = plotting.smoothed(estimate, loss, weight)
    # Closed form: Q_n = (1 − λ)^(n−1) L_1 + Σ_{i≥2} λ (1 − λ)^(n−i) L_i
    n = len(losses)
    powers = (1 - weight) ** (n - 1 - np.arange(n))
    expected = powers[0] * losses[0] + weight * np.dot(powers[1:], losses[1:])
    assert estimate == pytest.approx(expected, rel=1e-13)
    assert plotting.smoothed(None, 2.5) == 2.5
    assert plotting.smoothed(1.0, 3.0, weight=1.0) == 3.0
    with pytest.raises(ValueError, match="weight"):
        plotting.smoothed(1.0, 2.0, weight=0.0)
    with pytest.raises(TypeError, match="loss"):
        plotting.smoothed(1.0, "2")


def test_plot_history_writes_a_png(trained, tmp_path):
    pytest.importorskip("matplotlib")
    history, speed = trained
    path = plotting.plot_history(history, tmp_path / "curves.png", speed=speed, title="t")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="none of"):
        plotting.plot_history({"other": [1.0]}, tmp_path / "x.png")
