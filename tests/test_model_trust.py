"""The model never gives a silent wrong answer: reuse, files, weights, non-finite state,
a valid network of any shape, interrupts, and the options of both training paths."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from fastnn_ext.update import UpdateStep
import pytest
from interrupts import interruptible_popen

from fastnn import layers as L
from fastnn import optimizers as O
from fastnn.gradcheck import check_gradients
from fastnn.model import NonFiniteError, Sequential


def blobs(n=120, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centres[y] + 0.6 * rng.standard_normal((n, n_features)), y


def mlp(*middle, dtype="float64", optimizer=None, seed=0, **options):
    return Sequential([L.Dense(6, 8), *middle, L.Dense(8, 3), L.Softmax()],
                      optimizer=optimizer or O.SGD(lr=0.1), dtype=dtype, seed=seed, **options)


# -- objects belong to one model -------------------------------------------------

def test_a_layer_cannot_join_a_second_model():
    dense = L.Dense(6, 3)
    first = Sequential([dense, L.Softmax()], seed=0)
    before = first.predict_proba(np.ones((2, 6)))
    with pytest.raises(ValueError, match="already belongs to another Sequential"):
        Sequential([dense, L.Softmax()], seed=1)
    np.testing.assert_array_equal(first.predict_proba(np.ones((2, 6))), before)


def test_a_layer_cannot_appear_twice():
    relu = L.ReLU()
    with pytest.raises(ValueError, match="appears twice"):
        Sequential([L.Dense(6, 6), relu, L.Dense(6, 6), relu, L.Dense(6, 3), L.Softmax()])


def test_an_optimizer_cannot_serve_two_models():
    adam = O.Adam()
    first = mlp(optimizer=adam)
    with pytest.raises(ValueError, match="already belongs to another Sequential"):
        mlp(optimizer=adam)
    assert first.optimizer is adam and adam.state_.shape[1] == first.n_params


def test_replacing_the_optimizer_binds_the_new_one():
    X, y = blobs()
    model = mlp(optimizer=O.SGD(lr=0.1))
    model.fit(X, y, epochs=1, batch_size=20)
    old = model.optimizer
    model.optimizer = O.Adam(lr=0.01)
    assert model.optimizer.state_.shape == (2, model.n_params)
    model.fit(X, y, epochs=1, batch_size=20, compiled=False)
    assert model.optimizer.t_ == 6
    mlp(optimizer=old)  # released by its first model
    with pytest.raises(TypeError, match="optimizer"):
        model.optimizer = "adam"


# -- weights: read-only views, get and set -----------------------------------------

def test_assigning_a_parameter_array_is_refused():
    model = mlp()
    with pytest.raises(TypeError):
        model.layers[0].params["W"] = np.zeros((6, 8))


@pytest.mark.parametrize("compiled", [True, False])
def test_set_weights_reaches_both_training_paths(compiled):
    X, y = blobs()
    source, target = mlp(seed=1), mlp(seed=2)
    target.set_weights(source.get_weights())
    np.testing.assert_array_equal(target.params_, source.params_)
    # (different seeds would shuffle differently: keep the order)
    source.fit(X, y, epochs=1, batch_size=20, compiled=compiled, shuffle=False)
    target.fit(X, y, epochs=1, batch_size=20, compiled=compiled, shuffle=False)
    np.testing.assert_array_equal(target.params_, source.params_)


@pytest.mark.parametrize("weights, error, message", [
    ({"W": np.zeros((8, 6))}, ValueError, "shape"),
    ({"V": np.zeros((6, 8))}, ValueError, "no parameter 'V'"),
    ({"W": np.full((6, 8), np.nan)}, ValueError, "NaN"),
    ({"W": np.full((6, 8), "x")}, TypeError, "real numbers"),
    ({"W": np.full((6, 8), 1e300)}, ValueError, "range"),
    ([np.zeros((6, 8))], TypeError, "mapping"),
])
def test_set_weights_checks_what_it_writes(weights, error, message):
    model = mlp(dtype="float32")
    before = model.params_.copy()
    with pytest.raises(error, match=message):
        model.layers[0].set_weights(weights)
    np.testing.assert_array_equal(model.params_, before)


# -- weight files ----------------------------------------------------------------------

def test_batchnorm_statistics_are_saved_and_reloaded(tmp_path):
    X, y = blobs(n=200)
    model = mlp(L.BatchNorm(), L.ReLU())
    model.fit(X, y, epochs=3, batch_size=16)
    model.save_weights(tmp_path / "m.npz")
    clone = mlp(L.BatchNorm(), L.ReLU(), seed=5)
    clone.load_weights(tmp_path / "m.npz")
    np.testing.assert_array_equal(clone.buffers_, model.buffers_)
    np.testing.assert_array_equal(clone.predict_proba(X), model.predict_proba(X))


def test_a_file_of_another_architecture_is_refused(tmp_path):
    # Same parameter count: PReLU + PReLU has 2·8 slopes, BatchNorm 8 γ and 8 β.
    prelus = Sequential([L.Dense(6, 8), L.PReLU(), L.PReLU(), L.Dense(8, 3), L.Softmax()])
    batchnorm = Sequential([L.Dense(6, 8), L.BatchNorm(), L.Dense(8, 3), L.Softmax()])
    assert prelus.n_params == batchnorm.n_params
    prelus.save_weights(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="layer 1 is PReLU"):
        batchnorm.load_weights(tmp_path / "p.npz")


def test_values_beyond_float32_are_refused(tmp_path):
    wide = mlp(dtype="float64")
    wide.params_[0] = 1e300
    wide.save_weights(tmp_path / "w.npz")
    narrow = mlp(dtype="float32")
    before = narrow.params_.copy()
    with pytest.raises(ValueError, match="beyond float32's range"):
        narrow.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(narrow.params_, before)


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04truncated"])
def test_damaged_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.npz"):
        mlp().load_weights(path)


def test_a_truncated_file_is_refused(tmp_path):
    model = mlp()
    model.save_weights(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        mlp().load_weights(tmp_path / "cut.npz")


def test_an_older_file_without_header_loads_with_a_warning(tmp_path):
    model = mlp(seed=4)
    np.savez(tmp_path / "old.npz", params=model.params_, n_weights=model.n_weights_)
    clone = mlp(seed=9)
    with pytest.warns(UserWarning, match="no architecture"):
        clone.load_weights(tmp_path / "old.npz")
    np.testing.assert_array_equal(clone.params_, model.params_)


# -- non-finite optimizer state ----------------------------------------------------------

@pytest.mark.parametrize("compiled", [True, False])
def test_adam_second_moment_overflow_is_detected(compiled):
    # Inputs near 1e20 give finite float32 losses and gradients near 1e20,
    # whose squares overflow Adam's second moment to ∞.
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((64, 6)) * 1e20).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = mlp(dtype="float32", optimizer=O.Adam(lr=1e-3))
    with pytest.raises(NonFiniteError, match="update"):
        model.fit(X, y, epochs=1, batch_size=16, compiled=compiled)
    assert np.isfinite(model.params_).all() and np.isfinite(model.optimizer.state_).all()


def test_both_paths_stop_at_the_same_step_with_the_same_weights():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((64, 6)) * 1e20).astype(np.float32)
    y = rng.integers(0, 3, 64)
    runs = []
    for compiled in (True, False):
        model = mlp(dtype="float32", optimizer=O.Adam(lr=1e-3))
        with pytest.raises(NonFiniteError) as error:
            model.fit(X, y, epochs=1, batch_size=16, compiled=compiled)
        runs.append((str(error.value), model.params_.copy(), model.optimizer.t_))
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


# -- a valid network of any shape ---------------------------------------------------------

def test_a_network_starting_with_an_activation_trains_and_checks():
    X, y = blobs(n=40)
    layers = lambda: [L.Tanh(), L.Dense(6, 3), L.Softmax()]  # noqa: E731
    compiled = Sequential(layers(), dtype="float64", seed=0)
    layered = Sequential(layers(), dtype="float64", seed=0)
    compiled.fit(X, y, epochs=2, batch_size=8, compiled=True)
    layered.fit(X, y, epochs=2, batch_size=8, compiled=False)
    # plain SGD: the compiled path folds the update into the product (rounding)
    np.testing.assert_allclose(compiled.params_, layered.params_, rtol=1e-12, atol=1e-14)
    assert max(check_gradients(layered, X, y).values()) < 1e-7


@pytest.mark.parametrize("validation_data, message", [
    ((np.ones((4, 6)),), "pair"),
    (np.ones((4, 6)), "pair"),
    ((np.ones((4, 5)), np.zeros(4, int)), "validation_data: X has 5 features"),
    ((np.ones((4, 6)), np.zeros(3, int)), "validation_data"),
])
def test_malformed_validation_data_is_named(validation_data, message):
    X, y = blobs(n=20)
    with pytest.raises(ValueError, match=message):
        mlp().fit(X, y, validation_data=validation_data)


@pytest.mark.parametrize("noise", [(0.1, 0.5, 1), "x", (0.1, "y")])
def test_malformed_gradient_noise_is_named(noise):
    with pytest.raises((TypeError, ValueError), match="gradient_noise"):
        mlp(gradient_noise=noise)


def test_a_huge_batch_size_is_full_batch():
    X, y = blobs(n=30)
    full, huge = mlp(), mlp()
    full.fit(X, y, epochs=2, batch_size=30, shuffle=False)
    huge.fit(X, y, epochs=2, batch_size=2 ** 63 - 1, shuffle=False)
    np.testing.assert_array_equal(full.params_, huge.params_)


# -- options, each alone and in pairs, on both paths --------------------------------------

OPTIONS = {
    "l1": dict(l1=0.5), "l2": dict(l2=2.0), "clip_value": dict(clip_value=0.05),
    "clip_norm": dict(clip_norm=0.1), "noise": dict(gradient_noise=(0.05, 0.55)),
}
OPTIMIZERS = {"sgd": lambda: O.SGD(lr=0.1), "sgd-wd": lambda: O.SGD(lr=0.1, weight_decay=0.1),
              "momentum": lambda: O.SGD(lr=0.1, momentum=0.9), "adam": lambda: O.Adam(lr=0.01),
              "adamw": lambda: O.AdamW(lr=0.01), "rmsprop": lambda: O.RMSProp(lr=0.01)}
LAYERS = {"plain": lambda: [L.ReLU()], "dropout": lambda: [L.ReLU(), L.Dropout(0.3)],
          "batchnorm": lambda: [L.BatchNorm(), L.Tanh()]}
PAIRS = ([(a,) for a in OPTIONS]
         + [(a, b) for i, a in enumerate(OPTIONS) for b in list(OPTIONS)[i + 1:]])


@pytest.mark.parametrize("options", PAIRS, ids=["+".join(p) for p in PAIRS])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("layers", list(LAYERS))
def test_each_option_alone_and_in_pairs_on_both_paths(options, optimizer, layers):
    X, y = blobs(n=60)
    settings = {k: v for name in options for k, v in OPTIONS[name].items()}

    def run(compiled):
        model = mlp(*LAYERS[layers](), optimizer=OPTIMIZERS[optimizer](), seed=2, **settings)
        model.fit(X, y, epochs=2, batch_size=20, compiled=compiled)
        return model.params_

    plain = mlp(*LAYERS[layers](), optimizer=OPTIMIZERS[optimizer](), seed=2)
    plain.fit(X, y, epochs=2, batch_size=20, compiled=False)
    compiled, layered = run(True), run(False)
    # the option changed the result, and both paths agree on how
    assert not np.allclose(layered, plain.params_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(compiled, layered, rtol=1e-12, atol=1e-12)


# -- shuffling ----------------------------------------------------------------------------

def test_shuffle_visits_a_new_permutation_every_epoch_the_same_on_both_paths(monkeypatch):
    from fastnn import training

    X, y = blobs(n=30)
    seen = {}
    original = training.shuffled_order
    for compiled in (True, False):
        orders = []

        def record(model, n, shuffle, _original=original, _orders=orders):
            order = _original(model, n, shuffle)
            _orders.append(order.copy())
            return order

        monkeypatch.setattr(training, "shuffled_order", record)
        mlp(seed=7).fit(X, y, epochs=3, batch_size=10, compiled=compiled)
        seen[compiled] = orders
    for orders in seen.values():
        assert len(orders) == 3
        for order in orders:
            assert sorted(order) == list(range(30))
        assert not np.array_equal(orders[0], orders[1])
        assert not np.array_equal(orders[0], np.arange(30))
    for a, b in zip(seen[True], seen[False]):
        np.testing.assert_array_equal(a, b)


def test_shuffle_changes_the_result_and_is_seeded():
    X, y = blobs(n=30)
    runs = {}
    for shuffle in (True, False):
        models = [mlp(seed=7), mlp(seed=7)]
        for model in models:
            model.fit(X, y, epochs=2, batch_size=10, shuffle=shuffle)
        np.testing.assert_array_equal(models[0].params_, models[1].params_)
        runs[shuffle] = models[0].params_
    assert not np.array_equal(runs[True], runs[False])


# -- gradient noise follows its schedule ---------------------------------------------------

def test_gradient_noise_variance_follows_the_annealing_schedule():
    eta, gamma, n = 0.3, 0.55, 200_000
    model = Sequential([L.Dense(n, 1)], loss="mse", optimizer=O.SGD(lr=1.0), dtype="float64",
                       seed=0, gradient_noise=(eta, gamma))
    update = UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_,
                              noise=(eta, gamma))
    for t in (0, 1, 10, 100):
        update.steps = t
        model.params_[:] = 0
        model.grads_[:] = 0
        update.update(1.0, model.rng)
        # with lr 1 and a zero gradient, −params is exactly the noise drawn
        variance = np.var(-model.params_)
        expected = eta / (1 + t) ** gamma
        # the sample variance of n normals has relative s.d. √(2/n) = 0.3 %
        assert abs(variance / expected - 1) < 5 * np.sqrt(2 / n), (t, variance, expected)


# -- Ctrl-C ----------------------------------------------------------------------------------

def test_interrupting_a_compiled_epoch_stops_promptly_and_keeps_a_consistent_model(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        import numpy as np
        from fastnn import Sequential, Dense, ReLU, Softmax, SGD, Callback
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, 512)).astype(np.float32)
        y = rng.integers(0, 10, 20000)
        model = Sequential([Dense(512, 1024), ReLU(), Dense(1024, 1024), ReLU(),
                            Dense(1024, 10), Softmax()], optimizer=SGD(lr=0.01), seed=0)
        class Ready(Callback):
            def on_epoch_begin(self, epoch):
                print("ready", flush=True)
        try:
            model.fit(X, y, epochs=50, batch_size=64, callbacks=[Ready()])
        except KeyboardInterrupt:
            print("stopped", time.monotonic(), model.optimizer.t_,
                  bool(np.isfinite(model.params_).all()), flush=True)
    """))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    process = interruptible_popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                  text=True, env=env)
    # the second epoch's start: the first epoch's steps are done, whatever the
    # first fit's calibration cost on this machine
    assert [process.stdout.readline().strip() for _ in range(2)] == ["ready", "ready"]
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    word, when, steps, finite = out.split()
    assert word == "stopped" and finite == "True" and int(steps) > 0
    assert float(when) - sent < 1.0


# -- batch norm in evaluation mode ---------------------------------------------------------

@pytest.mark.parametrize("trained", [False, True])
def test_batchnorm_gradients_in_evaluation_mode_match_finite_differences(trained):
    X, y = blobs(n=40)
    model = mlp(L.BatchNorm(), L.Tanh(), seed=3)
    if trained:
        model.fit(X, y, epochs=2, batch_size=10)  # running statistics away from 0 and 1
    objective, grads = model.loss_and_gradients(X, y, training=False)
    params = model.params_
    numeric = np.empty_like(grads)
    h = 1e-6
    for i in range(params.size):
        saved = params[i]
        params[i] = saved + h
        plus = model.loss_and_gradients(X, y, training=False)[0]
        params[i] = saved - h
        minus = model.loss_and_gradients(X, y, training=False)[0]
        params[i] = saved
        numeric[i] = (plus - minus) / (2 * h)
    error = np.linalg.norm(grads - numeric) / np.linalg.norm(numeric)
    assert error < 1e-7


# -- regression is not classification ---------------------------------------------------

def regression_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    return X, X @ rng.standard_normal(6) + 0.1 * rng.standard_normal(n)


@pytest.mark.parametrize("loss", ["mse", "quadratic"])
def test_a_one_output_regression_trains_on_real_1d_targets(loss):
    X, y = regression_data()
    model = Sequential([L.Dense(6, 16), L.Tanh(), L.Dense(16, 1)], loss=loss,
                       optimizer=O.Adam(lr=0.01), dtype="float64", seed=0)
    history = model.fit(X, y, epochs=30, batch_size=20, validation_data=regression_data(50, 1))
    assert model.regression
    assert "accuracy" not in history.keys() and "val_r2" in history.keys()
    prediction = model.predict(X)
    np.testing.assert_array_equal(prediction, model.predict_proba(X))  # the outputs themselves
    scores = model.evaluate(X, y)
    error = prediction[:, 0] - y
    assert scores["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-12)
    assert scores["r2"] == pytest.approx(1 - (error ** 2).sum() / ((y - y.mean()) ** 2).sum(),
                                         rel=1e-12)
    assert scores["r2"] > 0.9
    mse = (error ** 2).mean()
    assert scores["loss"] == pytest.approx(mse if loss == "mse" else mse / 2, rel=1e-10)
    assert model.predict(X[0]).shape == (1,)  # one sample, one prediction


def test_a_squared_error_classifier_on_labels_stays_a_classifier():
    X, y = blobs()
    model = Sequential([L.Dense(6, 8), L.Sigmoid(), L.Dense(8, 3), L.Sigmoid()],
                       loss="quadratic", optimizer=O.SGD(lr=3.0), dtype="float64", seed=0)
    model.fit(X, y, epochs=20, batch_size=10)
    assert not model.regression
    assert set(model.predict(X)) <= {0, 1, 2}
    assert model.evaluate(X, y)["accuracy"] > 0.9
    assert model.predict(X[3]) == model.predict(X[3:4])[0]


def test_finite_values_beyond_float32_are_named_as_such():
    X, y = blobs(n=20)
    X[2, 1] = 1e300
    with pytest.raises(ValueError, match="beyond float32's range"):
        mlp(dtype="float32").fit(X, y)
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        mlp(dtype="float32").fit(X, y)


# -- sample weights -------------------------------------------------------------------------

@pytest.mark.parametrize("loss, output", [("softmax_cross_entropy", L.Softmax),
                                          ("sigmoid_cross_entropy", L.Sigmoid),
                                          ("mse", L.Identity)])
def test_a_zero_weight_removes_a_sample(loss, output):
    # Full-batch SGD: weights (1, ..., 1, 0) over m rows give the gradient
    # Σ_{i<m} gᵢ / m, which is the unweighted m − 1 rows' with the rate scaled
    # by (m − 1)/m.
    X, y = blobs(n=40)
    m = X.shape[0]
    weights = np.ones(m)
    weights[-5:] = 0

    def model(lr):
        return Sequential([L.Dense(6, 8), L.Tanh(), L.Dense(8, 3), output()], loss=loss,
                          optimizer=O.SGD(lr=lr), dtype="float64", seed=0)

    weighted, dropped = model(0.5), model(0.5 * (m - 5) / m)
    targets = np.eye(3)[y]
    weighted.fit(X, targets, epochs=3, batch_size=m, shuffle=False, sample_weight=weights)
    dropped.fit(X[:-5], targets[:-5], epochs=3, batch_size=m, shuffle=False)
    np.testing.assert_allclose(weighted.params_, dropped.params_, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample_weights_give_the_same_weights_on_both_paths(dtype):
    X, y = blobs()
    weights = np.random.default_rng(1).uniform(0, 3, X.shape[0])
    runs = []
    for compiled in (True, False):
        model = mlp(L.ReLU(), L.Dropout(0.2), dtype=dtype, optimizer=O.Adam(lr=0.01))
        model.fit(X, y, epochs=2, batch_size=16, compiled=compiled, sample_weight=weights)
        runs.append(model.params_)
    unweighted = mlp(L.ReLU(), L.Dropout(0.2), dtype=dtype, optimizer=O.Adam(lr=0.01))
    unweighted.fit(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], unweighted.params_)


@pytest.mark.parametrize("weights, error, message", [
    (np.ones(5), ValueError, "one weight per sample"),
    (np.full(120, -1.0), ValueError, ">= 0"),
    (np.full(120, np.nan), ValueError, "finite"),
    (np.zeros(120), ValueError, "zero for every sample"),
    (np.full(120, "a"), TypeError, "real numbers"),
])
def test_bad_sample_weights_are_refused(weights, error, message):
    X, y = blobs()
    model = mlp()
    before = model.params_.copy()
    with pytest.raises(error, match=message):
        model.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(model.params_, before)


# -- conveniences -------------------------------------------------------------------------

def test_validation_split_holds_out_the_last_samples():
    X, y = blobs(n=100)
    split, explicit = mlp(seed=1), mlp(seed=1)
    a = split.fit(X, y, epochs=2, batch_size=10, validation_split=0.2)
    b = explicit.fit(X[:80], y[:80], epochs=2, batch_size=10, validation_data=(X[80:], y[80:]))
    assert a["val_loss"] == b["val_loss"]
    np.testing.assert_array_equal(split.params_, explicit.params_)
    for bad in (1.0, -0.1, 0.001):
        with pytest.raises(ValueError, match="validation_split"):
            mlp().fit(X, y, validation_split=bad)
    with pytest.raises(ValueError, match="not both"):
        mlp().fit(X, y, validation_split=0.2, validation_data=(X, y))


def test_summary_counts_every_parameter():
    model = Sequential([L.Dense(6, 8), L.BatchNorm(), L.ReLU(), L.Dense(8, 3), L.Softmax()])
    lines = model.summary().splitlines()
    counts = [int(line.split()[-1]) for line in lines[1:-1]]
    assert counts == [6 * 8 + 8, 2 * 8, 0, 8 * 3 + 3, 0]
    assert int(lines[-1].split()[-1]) == sum(counts) == model.n_params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_row_predicted_alone_equals_the_same_row_in_a_batch(dtype):
    X, y = blobs(n=40)
    model = mlp(L.ReLU(), dtype=dtype)
    model.fit(X, y, epochs=1, batch_size=8)
    together = model.predict_proba(X)
    for i in (0, 7, 39):
        np.testing.assert_array_equal(model.predict_proba(X[i]), together[i])
        np.testing.assert_array_equal(model.predict_proba(X[i:i + 3]), together[i:i + 3])


# -- the running loss estimate ----------------------------------------------------------

@pytest.mark.parametrize("compiled", [True, False])
def test_the_running_loss_is_the_courses_exponential_smoothing(compiled):
    # One batch per epoch: each epoch's loss is that batch's, so Q folds them.
    from fastnn.plotting import smoothed
    from fastnn.training import RUNNING_LOSS_WEIGHT

    X, y = blobs(n=50)
    model = mlp()
    history = model.fit(X, y, epochs=6, batch_size=50, compiled=compiled)
    q = None
    for loss in history["loss"]:
        q = smoothed(q, loss, RUNNING_LOSS_WEIGHT)
    assert model.running_loss_ == pytest.approx(q, rel=1e-12)


def test_the_progress_bar_shows_the_running_loss():
    import io

    from fastnn.callbacks import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    X, y = blobs(n=200)
    screen, log = Terminal(), io.StringIO()
    model = mlp()
    model.fit(X, y, epochs=1, batch_size=10,
              callbacks=[ProgressBar(1, stream=log, bar_stream=screen)])
    assert "loss~" in screen.getvalue()
    assert f"loss~{model.running_loss_:.4g}" in screen.getvalue()
