"""The console command: the main job on Fashion-MNIST, small data, missing data."""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interrupts import interruptible_popen
from test_data import idx_bytes, write_dataset

from fastnn.cli import build_network, main
from fastnn.data import DEFAULT_DATA_DIR, load_mnist
from fastnn.model import Sequential


def numpy_relu_network_accuracy(weights_path, widths, X, y):
    """Accuracy of saved weights, by a NumPy transcription of the forward pass."""
    return float((numpy_relu_network_logits(weights_path, widths, X).argmax(axis=1) == y).mean())


def numpy_relu_network_logits(weights_path, widths, X):
    """The saved network's outputs before the softmax, by a NumPy transcription."""
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
    return h


@pytest.mark.skipif(not os.path.isdir(DEFAULT_DATA_DIR), reason="Fashion-MNIST not installed")
def test_main_job_reaches_088_on_fashion_mnist(tmp_path, capsys):
    weights = tmp_path / "model.npz"
    assert main(["train", "--quiet", "--save", str(weights)]) == 0
    reported = float(re.search(r"test accuracy (\d\.\d+)", capsys.readouterr().out).group(1))
    _, (X_test, y_test) = load_mnist()
    independent = numpy_relu_network_accuracy(weights, [784, 256, 128, 10], X_test, y_test)
    assert independent == pytest.approx(reported, abs=1e-4)
    assert independent >= 0.88


@pytest.mark.skipif(not os.path.isdir(DEFAULT_DATA_DIR), reason="Fashion-MNIST not installed")
def test_the_best_recipe_reaches_090_on_fashion_mnist(tmp_path, capsys):
    from fastnn import load_model

    saved = tmp_path / "model.npz"
    assert main(["train", "--quiet", "--recipe", "best", "--save", str(saved)]) == 0
    reported = reported_accuracy(capsys.readouterr().out)
    _, (X_test, y_test) = load_mnist()
    # A NumPy transcription of the evaluation pass: Dense, BatchNorm with the running
    # statistics, ReLU (dropout is the identity), and the output Dense.
    h = X_test.astype(np.float64)
    for layer in load_model(saved).layers:
        kind = type(layer).__name__
        if kind == "Dense":
            h = h @ layer.params["W"] + layer.params["b"]
        elif kind == "BatchNorm":
            h = (layer.params["gamma"] * (h - layer.buffers["running_mean"])
                 / np.sqrt(layer.buffers["running_var"] + layer.eps) + layer.params["beta"])
        elif kind == "ReLU":
            h = np.maximum(h, 0)
        else:  # the identity when evaluating; Softmax keeps the argmax
            assert kind in ("Dropout", "Softmax")
    independent = float((h.argmax(axis=1) == y_test).mean())
    assert independent == pytest.approx(reported, abs=1e-4)
    assert independent >= 0.90


def test_train_on_a_small_idx_directory(tmp_path, capsys):
    write_dataset(tmp_path, n_train=200, n_test=50)
    code = main(["train", "--data-dir", str(tmp_path), "--hidden", "8", "--epochs", "2",
                 "--validation", "20", "--optimizer", "momentum", "--lr", "0.05"])
    output = capsys.readouterr()
    assert code == 0
    # results on stdout, so that `fastnn train | tee log` keeps them: one line of
    # metrics per epoch (stderr is not a terminal: no bar), then the test score
    lines = output.out.splitlines()
    assert [line.split()[:2] for line in lines[1:-1]] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert lines[-1].startswith("test accuracy")
    assert output.err == ""


def test_missing_data_exits_nonzero_with_instructions(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path)]) != 0
    assert "apt-get install -y dataset-fashion-mnist" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--hidden", "3,x"],
                                  ["train", "--activation", "swish"], ["bogus"]])
def test_bad_arguments_exit_with_usage(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


# --- wrong values, damaged data: one line, exit status 2 ----------------------

def run(argv, capsys):
    """Exit status, stdout and stderr of ``fastnn argv``, run in this process."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    output = capsys.readouterr()
    return code, output.out, output.err


def small_run(directory, *options):
    return ["train", "--data-dir", str(directory), "--hidden", "8", "--epochs", "2",
            "--validation", "20", *options]


@pytest.mark.parametrize("option, value", [
    ("--lr", "-1"), ("--lr", "nan"), ("--lr", "inf"), ("--lr", "0"), ("--lr", "fast"),
    ("--l2", "-1"), ("--l2", "nan"), ("--lr-decay", "-1"), ("--lr-decay", "inf"),
    ("--seed", "x"), ("--seed", "-1"), ("--seed", "1.5"),
    ("--batch-size", "0"), ("--batch-size", str(10**30)), ("--epochs", "0"),
    ("--epochs", "-3"), ("--threads", str(10**20)), ("--threads", "0"),
    ("--validation", "-1"), ("--hidden", "0"), ("--hidden", ","), ("--hidden", str(10**20)),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, capsys, option, value):
    write_dataset(tmp_path)
    code, out, err = run(small_run(tmp_path, option, value), capsys)
    assert code == 2
    assert "Traceback" not in err and out == ""
    message = err.strip().splitlines()[-1]
    assert message.startswith("fastnn train: error: argument " + option)


@pytest.mark.parametrize("options, message", [
    (["--batch-size", "10000"], "--batch-size 10000 exceeds the 10 training samples"),
    (["--validation", "30"], "--validation"),
])
def test_values_that_do_not_fit_the_data(tmp_path, capsys, options, message):
    write_dataset(tmp_path)  # 30 training samples; small_run holds out 20
    code, out, err = run(small_run(tmp_path, *options), capsys)
    assert code == 2 and "Traceback" not in err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name, content, message", [
    ("train-images-idx3-ubyte", lambda: idx_bytes(np.full((30, 4, 3), np.nan), 0x0D), "NaN"),
    ("train-images-idx3-ubyte", lambda: b"\x1f\x8b" + bytes(40), "gzip"),
    ("t10k-labels-idx1-ubyte", lambda: idx_bytes(np.zeros(10, np.uint8))[:-4], "truncated"),
])
def test_damaged_data_is_one_line_naming_the_file(tmp_path, capsys, name, content, message):
    write_dataset(tmp_path, compressed=False)
    (tmp_path / name).write_bytes(content())
    code, out, err = run(small_run(tmp_path), capsys)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and name in err and message in err


# --- keeping the result of a run ------------------------------------------------

def test_an_unwritable_destination_is_refused_before_training(tmp_path, capsys):
    write_dataset(tmp_path)
    code, out, err = run(small_run(tmp_path, "--save", str(tmp_path / "missing" / "m.npz")),
                         capsys)
    assert code == 2 and "Traceback" not in err
    assert "epoch" not in out  # nothing trained
    assert err.strip().splitlines()[-1].startswith("fastnn train: error: argument --save")
    assert "missing" in err


def reported_accuracy(out):
    return float(re.search(r"test accuracy (\d\.\d+)", out).group(1))


def test_a_save_failing_after_training_keeps_the_weights(tmp_path, capsys, monkeypatch):
    (tmp_path / "data").mkdir()
    write_dataset(tmp_path / "data", n_train=200, n_test=50)
    (tmp_path / "out").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    fit = Sequential.fit

    def fit_then_lose_the_directory(self, *args, **kwargs):
        history = fit(self, *args, **kwargs)
        shutil.rmtree(tmp_path / "out")  # removed while the network trained
        return history

    monkeypatch.setattr(Sequential, "fit", fit_then_lose_the_directory)
    code, out, err = run(small_run(tmp_path / "data", "--save", str(tmp_path / "out" / "m.npz")),
                         capsys)
    assert code == 1 and "Traceback" not in err
    saved = Path(re.search(r"saved to (\S+) instead", err).group(1))
    assert saved == tmp_path / "cwd" / "m.npz"
    _, (X_test, y_test) = load_mnist(tmp_path / "data")
    assert numpy_relu_network_accuracy(saved, [12, 8, 10], X_test, y_test) == pytest.approx(
        reported_accuracy(out), abs=1e-12)


def test_a_diverging_run_reports_in_one_line_and_keeps_the_last_good_weights(tmp_path, capsys):
    write_dataset(tmp_path, n_train=200, n_test=50)
    weights = tmp_path / "m.npz"
    code, out, err = run(small_run(tmp_path, "--optimizer", "sgd", "--lr", "1e30",
                                   "--save", str(weights)), capsys)
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "NaN or infinite" in err
    with np.load(weights) as data:
        assert np.isfinite(data["params"]).all()
    # The last good weights are huge (one step of lr 1e30): a float64 transcription
    # would not overflow where the float32 network does, so the saved file is
    # checked by loading it into the same network and evaluating it.
    _, (X_test, y_test) = load_mnist(tmp_path)
    model = Sequential(build_network(12, [8], 10, "relu"), dtype="float32")
    model.load_weights(weights)
    assert model.evaluate(X_test, y_test)["accuracy"] == pytest.approx(reported_accuracy(out),
                                                                       abs=1e-12)


ROOT = Path(__file__).resolve().parent.parent


def test_ctrl_c_evaluates_and_saves_the_last_finished_step(tmp_path):
    write_dataset(tmp_path, n_train=400, n_test=50)
    weights = tmp_path / "m.npz"
    command = [sys.executable, "-m", "fastnn.cli", *small_run(tmp_path), "--epochs", "1000000",
               "--lr-decay", "0", "--save", str(weights)]
    process = interruptible_popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    try:
        header = process.stdout.readline()
        first_epoch = process.stdout.readline()
        assert header.startswith("fastnn:") and first_epoch.startswith("epoch 1/1000000")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "interrupted" in err
    _, (X_test, y_test) = load_mnist(tmp_path)
    assert numpy_relu_network_accuracy(weights, [12, 8, 10], X_test, y_test) == pytest.approx(
        reported_accuracy(out), abs=1e-12)


# --- learning curves and every registered optimizer and activation -------------

def test_history_csv_and_learning_curves(tmp_path, capsys):
    from fastnn.plotting import have_matplotlib, history_from_csv

    write_dataset(tmp_path, n_train=200, n_test=50)
    csv, png = tmp_path / "history.csv", tmp_path / "curves.png"
    code = main(["train", "--data-dir", str(tmp_path), "--hidden", "8", "--epochs", "3",
                 "--validation", "20", "--quiet", "--history", str(csv), "--plot", str(png)])
    assert code == 0
    history = history_from_csv(csv)
    assert len(history["loss"]) == len(history["val_accuracy"]) == 3
    assert all(0 <= value <= 1 for value in history["val_accuracy"])
    if have_matplotlib():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "needs matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["lion", "adamw", "nesterov"])
@pytest.mark.parametrize("activation", ["silu", "tanh"])
def test_the_command_line_reads_the_registries(tmp_path, capsys, optimizer, activation):
    write_dataset(tmp_path, n_train=120, n_test=30)
    assert main(["train", "--data-dir", str(tmp_path), "--hidden", "6", "--epochs", "1",
                 "--validation", "20", "--quiet", "--optimizer", optimizer,
                 "--activation", activation, "--lr", "0.001"]) == 0
    assert "test accuracy" in capsys.readouterr().out


# --- saving, resuming, evaluating and predicting with model files ---------------

@pytest.mark.parametrize("architecture", [[], ["--batchnorm", "--dropout", "0.2"]])
def test_a_resumed_run_ends_where_one_longer_run_ends(tmp_path, capsys, architecture):
    from fastnn import load_model
    from fastnn.plotting import history_from_csv

    write_dataset(tmp_path, n_train=200, n_test=50)
    options = ["--quiet", "--optimizer", "momentum", "--lr", "0.05", "--dtype", "float64",
               *architecture]
    assert run(small_run(tmp_path, *options, "--epochs", "4", "--save",
                         str(tmp_path / "four.npz")), capsys)[0] == 0
    assert run(small_run(tmp_path, *options, "--save", str(tmp_path / "two.npz")),
               capsys)[0] == 0
    code, out, err = run(["train", "--data-dir", str(tmp_path), "--validation", "20",
                          "--quiet", "--resume", str(tmp_path / "two.npz"), "--epochs", "2",
                          "--hidden", "8", "--history", str(tmp_path / "resumed.csv"),
                          "--save", str(tmp_path / "resumed.npz")], capsys)
    assert code == 0 and err == "", err
    assert "resumed from" in out and "after 2 epochs" in out
    straight, resumed = load_model(tmp_path / "four.npz"), load_model(tmp_path / "resumed.npz")
    np.testing.assert_array_equal(resumed.params_, straight.params_)
    np.testing.assert_array_equal(resumed.optimizer.state_, straight.optimizer.state_)
    assert resumed.optimizer.epoch_ == straight.optimizer.epoch_ == 4
    assert resumed.history_.history == straight.history_.history  # all four epochs
    assert history_from_csv(tmp_path / "resumed.csv") == {"epoch": [1, 2, 3, 4],
                                                           **straight.history_.history}


@pytest.mark.parametrize("options, message", [
    (["--hidden", "16"], r"--hidden \[16\] contradicts the model resumed from .*: leave it out"),
    (["--optimizer", "adam"], "--optimizer adam contradicts .*--optimizer is momentum"),
    (["--dtype", "float64"], "--dtype float64 contradicts"),
    (["--lr", "0.1"], "--lr 0.1 contradicts"),
    (["--lr-decay", "0"], "--lr-decay 0.0 contradicts"),
    (["--activation", "tanh"], "--activation tanh contradicts .*is relu"),
    (["--seed", "3"], "--seed 3 contradicts"),
    (["--batchnorm"], "--batchnorm contradicts .*whose --batchnorm is off"),
    (["--dropout", "0.5"], "--dropout 0.5 contradicts .*--dropout is 0.0"),
    (["--loss", "mse"], "--loss mse contradicts .*--loss is softmax_cross_entropy"),
    (["--init", "zeros"], "--init zeros contradicts .*--init is he_normal"),
])
def test_options_that_contradict_the_resumed_model_are_refused(tmp_path, capsys, options,
                                                                message):
    write_dataset(tmp_path, n_train=200, n_test=50)
    saved = tmp_path / "m.npz"
    assert run(small_run(tmp_path, "--quiet", "--optimizer", "momentum", "--lr", "0.05",
                         "--save", str(saved)), capsys)[0] == 0
    before = saved.read_bytes()
    code, out, err = run(["train", "--data-dir", str(tmp_path), "--resume", str(saved),
                          *options, "--save", str(saved)], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert saved.read_bytes() == before


@pytest.mark.parametrize("content, message", [
    (None, "No such file"), (b"garbage", "not a readable fastnn model file"),
])
def test_an_unreadable_model_is_a_one_line_error(tmp_path, capsys, content, message):
    write_dataset(tmp_path)
    model = tmp_path / "m.npz"
    if content is not None:
        model.write_bytes(content)
    for argv in (small_run(tmp_path, "--resume", str(model)),
                 ["evaluate", str(model), "--data-dir", str(tmp_path)],
                 ["predict", str(model), str(tmp_path / "rows.npy")]):
        code, out, err = run(argv, capsys)
        assert code == 2 and out == "" and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and message in err


def trained(tmp_path, capsys):
    """A model file trained on small IDX data, and the test accuracy train reported."""
    write_dataset(tmp_path, n_train=200, n_test=50)
    code, out, _ = run(small_run(tmp_path, "--quiet", "--save", str(tmp_path / "m.npz")),
                       capsys)
    assert code == 0
    return tmp_path / "m.npz", reported_accuracy(out)


def test_evaluate_prints_the_test_loss_and_accuracy(tmp_path, capsys):
    model, accuracy = trained(tmp_path, capsys)
    code, out, err = run(["evaluate", str(model), "--data-dir", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    reported = re.fullmatch(r"test accuracy (\S+)  test loss (\S+)\n", out)
    _, (X_test, y_test) = load_mnist(tmp_path)
    logits = numpy_relu_network_logits(model, [12, 8, 10], X_test)
    shifted = logits - logits.max(axis=1, keepdims=True)
    loss = -np.mean(shifted[np.arange(len(y_test)), y_test] - np.log(np.exp(shifted).sum(1)))
    assert float(reported[1]) == pytest.approx(accuracy, abs=1e-12)
    assert float(reported[1]) == pytest.approx((logits.argmax(1) == y_test).mean(), abs=1e-4)
    assert float(reported[2]) == pytest.approx(loss, abs=1e-4)


def test_evaluate_refuses_data_the_model_does_not_take(tmp_path, capsys):
    model, _ = trained(tmp_path, capsys)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "t10k-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((5, 4, 4), np.uint8)))
    (tmp_path / "other" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    (tmp_path / "other" / "train-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((5, 4, 4), np.uint8)))
    (tmp_path / "other" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    code, out, err = run(["evaluate", str(model), "--data-dir", str(tmp_path / "other")], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert "16 features, the network expects 12" in err
    code, _, err = run(["evaluate", str(model), "--data-dir", str(tmp_path / "none")], capsys)
    assert code == 2 and "apt-get install -y dataset-fashion-mnist" in err


def test_predict_writes_classes_and_probabilities(tmp_path, capsys):
    model, _ = trained(tmp_path, capsys)
    _, (X_test, _) = load_mnist(tmp_path)
    np.save(tmp_path / "rows.npy", X_test)
    logits = numpy_relu_network_logits(model, [12, 8, 10], X_test)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)

    assert run(["predict", str(model), str(tmp_path / "rows.npy"), "--output",
                str(tmp_path / "classes.npy")], capsys)[:2] == (0, "")
    np.testing.assert_array_equal(np.load(tmp_path / "classes.npy"), expected.argmax(1))
    assert run(["predict", str(model), str(tmp_path / "rows.npy"), "--proba", "--output",
                str(tmp_path / "proba.npy")], capsys)[0] == 0
    proba = np.load(tmp_path / "proba.npy")
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-7)

    code, out, _ = run(["predict", str(model), str(tmp_path / "rows.npy")], capsys)
    assert code == 0
    np.testing.assert_array_equal(np.array(out.split(), dtype=np.int64), expected.argmax(1))
    code, out, _ = run(["predict", str(model), str(tmp_path / "rows.npy"), "--proba"], capsys)
    np.testing.assert_array_equal(np.loadtxt(io.StringIO(out), dtype=np.float32), proba)
    np.save(tmp_path / "row.npy", X_test[3])
    code, out, _ = run(["predict", str(model), str(tmp_path / "row.npy")], capsys)
    assert code == 0 and out == f"{expected[3].argmax()}\n"


@pytest.mark.parametrize("array, message", [
    (lambda X: X[:, :5], r"shape \(50, 5\); the model takes rows of 12 features"),
    (lambda X: X.reshape(50, 3, 4), "shape"),
    (lambda X: X.astype(str), "holds <U.* values; it needs real numbers"),
    (lambda X: X > 0.5, "holds bool values"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), "NaN"),
    (lambda X: X.astype(np.complex64), "complex64"),
])
def test_predict_refuses_rows_the_model_does_not_take(tmp_path, capsys, array, message):
    model, _ = trained(tmp_path, capsys)
    _, (X_test, _) = load_mnist(tmp_path)
    np.save(tmp_path / "rows.npy", array(X_test))
    code, out, err = run(["predict", str(model), str(tmp_path / "rows.npy"), "--output",
                          str(tmp_path / "out.npy")], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "rows.npy" in err
    assert re.search(message, err), err
    assert not (tmp_path / "out.npy").exists()


def test_predict_refuses_an_archive_and_a_pickle(tmp_path, capsys):
    model, _ = trained(tmp_path, capsys)
    np.savez(tmp_path / "rows.npz", X=np.zeros((2, 12)))
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}], dtype=object))
    for name, message in (("rows.npz", "archive"), ("objects.npy", "cannot read")):
        code, out, err = run(["predict", str(model), str(tmp_path / name)], capsys)
        assert code == 2 and out == "" and message in err and "Traceback" not in err


# --- regularization options, the loss, the initializer, early stopping, the preset --

def saved_header(path):
    """The header of a model file, read with NumPy and json alone."""
    with np.load(path) as data:
        return json.loads(str(data["header"]))


def saved_layers(path):
    """(kind, config) of each layer a model file records, input to output."""
    return [(entry["kind"], entry["config"]) for entry in saved_header(path)["layers"]]


def dense(n_in, n_out, init):
    return ("Dense", {"n_in": n_in, "n_out": n_out, "init": init, "bias_init": "zeros"})


BATCHNORM = ("BatchNorm", {"momentum": 0.1, "eps": 1e-5})
RELU, TANH = ("ReLU", {}), ("Tanh", {})


@pytest.mark.parametrize("options, layers, loss", [
    ([], [dense(12, 8, "he_normal"), RELU, dense(8, 6, "he_normal"), RELU,
          dense(6, 10, "glorot_uniform"), ("Softmax", {})], "softmax_cross_entropy"),
    (["--dropout", "0.25"],
     [dense(12, 8, "he_normal"), RELU, ("Dropout", {"rate": 0.25}),
      dense(8, 6, "he_normal"), RELU, ("Dropout", {"rate": 0.25}),
      dense(6, 10, "glorot_uniform"), ("Softmax", {})], "softmax_cross_entropy"),
    (["--dropout", "0"], [dense(12, 8, "he_normal"), RELU, dense(8, 6, "he_normal"), RELU,
                          dense(6, 10, "glorot_uniform"), ("Softmax", {})],
     "softmax_cross_entropy"),
    (["--batchnorm", "--activation", "tanh"],
     [dense(12, 8, "glorot_uniform"), BATCHNORM, TANH, dense(8, 6, "glorot_uniform"),
      BATCHNORM, TANH, dense(6, 10, "glorot_uniform"), ("Softmax", {})],
     "softmax_cross_entropy"),
    (["--batchnorm", "--dropout", "0.5", "--init", "he_uniform"],
     [dense(12, 8, "he_uniform"), BATCHNORM, RELU, ("Dropout", {"rate": 0.5}),
      dense(8, 6, "he_uniform"), BATCHNORM, RELU, ("Dropout", {"rate": 0.5}),
      dense(6, 10, "glorot_uniform"), ("Softmax", {})], "softmax_cross_entropy"),
    (["--loss", "sigmoid_cross_entropy", "--init", "zeros"],
     [dense(12, 8, "zeros"), RELU, dense(8, 6, "zeros"), RELU, dense(6, 10, "glorot_uniform"),
      ("Sigmoid", {})], "sigmoid_cross_entropy"),
    (["--loss", "mse"], [dense(12, 8, "he_normal"), RELU, dense(8, 6, "he_normal"), RELU,
                         dense(6, 10, "glorot_uniform")], "mse"),
    (["--loss", "quadratic", "--no-batchnorm"],
     [dense(12, 8, "he_normal"), RELU, dense(8, 6, "he_normal"), RELU,
      dense(6, 10, "glorot_uniform")], "quadratic"),
])
def test_each_option_builds_the_network_it_names(tmp_path, capsys, options, layers, loss):
    write_dataset(tmp_path, n_train=200, n_test=50)
    saved = tmp_path / "m.npz"
    code, out, err = run(small_run(tmp_path, "--hidden", "8,6", "--quiet", *options,
                                   "--save", str(saved)), capsys)
    assert code == 0 and err == "", err
    assert saved_layers(saved) == layers
    assert saved_header(saved)["model"]["loss"] == loss


@pytest.mark.parametrize("loss, half", [("mse", False), ("quadratic", True)])
def test_a_squared_error_run_scores_one_hot_targets(tmp_path, capsys, loss, half):
    write_dataset(tmp_path, n_train=200, n_test=50)
    saved = tmp_path / "m.npz"
    code, out, _ = run(small_run(tmp_path, "--quiet", "--loss", loss, "--dtype", "float64",
                                 "--save", str(saved)), capsys)
    assert code == 0
    _, (X_test, y_test) = load_mnist(tmp_path)
    outputs = numpy_relu_network_logits(saved, [12, 8, 10], X_test)  # no output layer
    squared = (outputs - np.eye(10)[y_test]) ** 2
    expected = squared.sum(axis=1).mean() / 2 if half else squared.mean()
    assert reported_accuracy(out) == pytest.approx((outputs.argmax(1) == y_test).mean(),
                                                   abs=1e-12)
    assert float(re.search(r"test loss (\S+)", out).group(1)) == pytest.approx(expected,
                                                                               abs=1e-4)


@pytest.mark.parametrize("option, value", [
    ("--dropout", "1"), ("--dropout", "1.5"), ("--dropout", "-0.1"), ("--dropout", "nan"),
    ("--dropout", "x"), ("--early-stopping", "-1"), ("--early-stopping", "2.5"),
    ("--loss", "hinge"), ("--init", "orthogonal"),
    ("--recipe", "fastest"),
])
def test_bad_values_of_the_new_options(tmp_path, capsys, option, value):
    write_dataset(tmp_path)
    code, out, err = run(small_run(tmp_path, option, value), capsys)
    assert code == 2 and "Traceback" not in err and out == ""
    assert err.strip().splitlines()[-1].startswith("fastnn train: error: argument " + option)


@pytest.mark.parametrize("options, message", [
    (["--early-stopping", "3", "--validation", "0"],
     "--early-stopping watches the validation loss: it needs --validation > 0"),
    (["--augment"], "--augment moves square images; the data's images have 12 pixels"),
    (["--batchnorm", "--batch-size", "1"], "--batchnorm needs --batch-size >= 2"),
])
def test_options_that_do_not_fit_are_refused_before_training(tmp_path, capsys, options,
                                                              message):
    write_dataset(tmp_path, n_train=200, n_test=50)
    code, out, err = run(small_run(tmp_path, *options), capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def split(directory, seed, n_validation, dtype=np.float32):
    """The training, validation and test sets as fastnn train draws them (NumPy alone)."""
    (X, y), test = load_mnist(directory, dtype=dtype)
    order = np.random.default_rng(seed).permutation(len(X))
    held, kept = order[:n_validation], order[n_validation:]
    return (X[kept], y[kept]), (X[held], y[held]), test


def test_early_stopping_gives_the_weights_of_sequential_fit(tmp_path, capsys):
    from fastnn import load_model
    from fastnn.callbacks import EarlyStopping
    from fastnn.layers import Dense, ReLU, Softmax
    from fastnn.optimizers import Adam
    from fastnn.schedules import ExponentialDecay

    write_dataset(tmp_path, n_train=200, n_test=50)
    saved = tmp_path / "m.npz"
    code, out, err = run(small_run(tmp_path, "--quiet", "--early-stopping", "2", "--epochs",
                                   "60", "--lr", "0.01", "--seed", "3", "--save", str(saved)),
                         capsys)
    assert code == 0 and err == ""
    # random labels: the validation loss soon rises, and the run stops long before 60 epochs
    stopped = int(re.search(r"stopped after epoch (\d+) of 60", out).group(1))
    best = int(re.search(r"those of epoch (\d+)", out).group(1))
    assert best + 2 == stopped < 60

    (X, y), validation, _ = split(tmp_path, 3, 20)
    model = Sequential([Dense(12, 8, init="he_normal"), ReLU(), Dense(8, 10), Softmax()],
                       loss="softmax_cross_entropy",
                       optimizer=Adam(lr=ExponentialDecay(0.01, k=0.1)), dtype="float32",
                       seed=3)
    stopping = EarlyStopping(monitor="val_loss", patience=2, restore_best=True)
    history = model.fit(X, y, epochs=60, batch_size=64, validation_data=validation,
                        callbacks=[stopping])
    cli = load_model(saved)
    np.testing.assert_array_equal(cli.params_, model.params_)
    assert len(history.history["val_loss"]) == stopped
    # the weights kept are the best epoch's: their validation loss is the lowest seen
    val_losses = history.history["val_loss"]
    assert int(np.argmin(val_losses)) + 1 == best
    assert cli.evaluate(*validation)["loss"] == pytest.approx(min(val_losses), rel=1e-6)
    assert cli.evaluate(*validation)["loss"] < val_losses[-1]


def test_augment_gives_the_weights_of_sequential_fit(tmp_path, capsys):
    from test_data import write_idx

    from fastnn import load_model
    from fastnn.augment import Augmentation, RandomFlip, RandomShift
    from fastnn.layers import Dense, ReLU, Softmax
    from fastnn.optimizers import Adam
    from fastnn.schedules import ExponentialDecay

    rng = np.random.default_rng(5)
    for part, n in (("train", 200), ("t10k", 50)):
        write_idx(tmp_path / f"{part}-images-idx3-ubyte", rng.integers(0, 256, (n, 5, 5),
                                                                        dtype=np.uint8))
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte", rng.integers(0, 10, n,
                                                                        dtype=np.uint8))
    saved, plain = tmp_path / "m.npz", tmp_path / "plain.npz"
    assert run(small_run(tmp_path, "--quiet", "--augment", "--save", str(saved)),
               capsys)[0] == 0
    assert run(small_run(tmp_path, "--quiet", "--save", str(plain)), capsys)[0] == 0

    (X, y), validation, _ = split(tmp_path, 0, 20)
    model = Sequential([Dense(25, 8, init="he_normal"), ReLU(), Dense(8, 10), Softmax()],
                       optimizer=Adam(lr=ExponentialDecay(0.001, k=0.1)), seed=0)
    model.fit(X, y, epochs=2, batch_size=64, validation_data=validation,
              augment=Augmentation((5, 5), RandomShift(2), RandomFlip()))
    np.testing.assert_array_equal(load_model(saved).params_, model.params_)
    assert not np.array_equal(load_model(plain).params_, model.params_)


def recipe_options(name):
    """The options the help text gives for recipe ``name``."""
    import argparse

    from fastnn.cli import train_parser

    parser = argparse.ArgumentParser()
    train_parser(parser)
    text = " ".join(parser.format_help().split())
    return re.search(rf'{name} is "([^"]*)"', text).group(1).split()


def test_the_preset_builds_what_its_help_says(tmp_path, capsys):
    from fastnn import load_model

    write_dataset(tmp_path, n_train=400, n_test=50)
    preset, spelled = tmp_path / "preset.npz", tmp_path / "spelled.npz"
    common = ["train", "--data-dir", str(tmp_path), "--validation", "20", "--quiet"]
    options = recipe_options("best")
    assert "--batchnorm" in options and "--dropout" in options
    assert run([*common, "--recipe", "best", "--save", str(preset)], capsys)[0] == 0
    assert run([*common, *options, "--save", str(spelled)], capsys)[0] == 0
    assert saved_header(preset) == saved_header(spelled)
    a, b = load_model(preset), load_model(spelled)
    np.testing.assert_array_equal(a.params_, b.params_)
    epochs = int(options[options.index("--epochs") + 1])
    assert len(a.history_.history["loss"]) == epochs


def test_options_given_with_the_preset_override_it(tmp_path, capsys):
    write_dataset(tmp_path, n_train=400, n_test=50)
    saved = tmp_path / "m.npz"
    options = recipe_options("best")
    assert run(["train", "--data-dir", str(tmp_path), "--validation", "20", "--quiet",
                "--recipe", "best", "--dropout", "0.125", "--no-batchnorm", "--epochs", "1",
                "--optimizer", "sgd", "--save", str(saved)], capsys)[0] == 0
    layers = saved_layers(saved)
    kinds = [kind for kind, _ in layers]
    assert "BatchNorm" not in kinds
    assert {config["rate"] for kind, config in layers if kind == "Dropout"} == {0.125}
    widths = [config["n_out"] for kind, config in layers if kind == "Dense"][:-1]
    assert widths == [int(w) for w in options[options.index("--hidden") + 1].split(",")]
    header = saved_header(saved)
    assert header["optimizer"]["kind"] == "sgd" and header["optimizer"]["epoch"] == 1
    assert header["optimizer"]["config"]["lr"]["config"]["lr"] == float(
        options[options.index("--lr") + 1])


def test_the_preset_is_refused_with_resume(tmp_path, capsys):
    model, _ = trained(tmp_path, capsys)
    before = model.read_bytes()
    code, out, err = run(small_run(tmp_path, "--resume", str(model), "--recipe", "best",
                                   "--save", str(model)), capsys)
    assert code == 2 and out == "" and "--recipe best sets options" in err
    assert model.read_bytes() == before
