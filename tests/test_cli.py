"""The console command: the main job on Fashion-MNIST, small data, missing data."""

import os
import re

import numpy as np
import pytest
from test_data import write_dataset

from fastnn.cli import main
from fastnn.data import DEFAULT_DATA_DIR, load_mnist


def numpy_relu_network_accuracy(weights_path, widths, X, y):
    """Accuracy of saved weights, by a NumPy transcription of the forward pass."""
    with np.load(weights_path) as data:
        flat = data["params"].astype(np.float64)
    shapes = list(zip(widths[:-1], widths[1:]))
    n_weights = sum(a * b for a, b in shapes)
    weights, biases, w_at, b_at = [], [], 0, n_weights
    for a, b in shapes:  # weights first, then biases, in layer order
        weights.append(flat[w_at:w_at + a * b].reshape(a, b))
        biases.append(flat[b_at:b_at + b])
        w_at, b_at = w_at + a * b, b_at + b
    h = X.astype(np.float64)
    for i, (W, b) in enumerate(zip(weights, biases)):
        h = h @ W + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0)
    return float((h.argmax(axis=1) == y).mean())


@pytest.mark.skipif(not os.path.isdir(DEFAULT_DATA_DIR), reason="Fashion-MNIST not installed")
def test_main_job_reaches_088_on_fashion_mnist(tmp_path, capsys):
    weights = tmp_path / "model.npz"
    assert main(["train", "--quiet", "--save", str(weights)]) == 0
    reported = float(re.search(r"test accuracy (\d\.\d+)", capsys.readouterr().out).group(1))
    _, (X_test, y_test) = load_mnist()
    independent = numpy_relu_network_accuracy(weights, [784, 256, 128, 10], X_test, y_test)
    assert independent == pytest.approx(reported, abs=1e-4)
    assert independent >= 0.88


def test_train_on_a_small_idx_directory(tmp_path, capsys):
    write_dataset(tmp_path, n_train=200, n_test=50)
    code = main(["train", "--data-dir", str(tmp_path), "--hidden", "8", "--epochs", "2",
                 "--validation", "20", "--optimizer", "momentum", "--lr", "0.05"])
    output = capsys.readouterr()
    assert code == 0
    assert "test accuracy" in output.out
    # not a terminal: no redrawn bar, one line of metrics per epoch
    assert [line.split()[:2] for line in output.err.splitlines()] == [["epoch", "1/2"], ["epoch", "2/2"]]


def test_missing_data_exits_nonzero_with_instructions(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path)]) != 0
    assert "apt-get install -y dataset-fashion-mnist" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--hidden", "3,x"],
                                  ["train", "--activation", "swish"], ["bogus"]])
def test_bad_arguments_exit_with_usage(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
