"""The model: both training paths, gradient checks, reproducibility, bad input."""

import os

import numpy as np

from fastnn_ext.update import UpdateStep
import pytest

from fastnn import layers as L
from fastnn.gradcheck import check_gradients
from fastnn.model import NonFiniteError, Sequential
from fastnn.plan import build_plan
from fastnn.training import fused_sgd_decay
from fastnn.optimizers import SGD, AdaDelta, AdaGrad, Adam, AdamW, RMSProp

from conftest import in_parent_and_forked_child


def blobs(n=200, n_features=6, n_classes=3, seed=0, spread=0.6):
    """Gaussian clusters around random centres: a learnable synthetic task."""
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    X = centres[y] + spread * rng.standard_normal((n, n_features))
    return X, y


def network(kind, n_in=6, n_out=3):
    """Small networks covering every layer, activation and loss."""
    return {
        "sigmoid_bce": ([L.Dense(n_in, 5), L.Sigmoid(), L.Dense(5, n_out), L.Sigmoid()],
                        "sigmoid_cross_entropy"),
        "relu_softmax": ([L.Dense(n_in, 7), L.ReLU(), L.Dense(7, 4), L.ReLU(),
                          L.Dense(4, n_out), L.Softmax()], "softmax_cross_entropy"),
        "tanh_mse": ([L.Dense(n_in, 5), L.Tanh(), L.Dense(5, n_out), L.Sigmoid()], "mse"),
        "leaky_identity_mse": ([L.Dense(n_in, 5), L.LeakyReLU(0.1), L.Dense(5, n_out),
                                L.Identity()], "mse"),
        "prelu_softmax": ([L.Dense(n_in, 5), L.PReLU(), L.Dense(5, n_out), L.Softmax()],
                          "softmax_cross_entropy"),
        "softmax_hidden_mse": ([L.Dense(n_in, 4), L.Softmax(), L.Dense(4, n_out)], "mse"),
        "activation_after_activation": ([L.Dense(n_in, 5), L.Tanh(), L.Sigmoid(),
                                         L.Dense(5, n_out), L.Softmax()],
                                        "softmax_cross_entropy"),
        "dropout": ([L.Dense(n_in, 8), L.ReLU(), L.Dropout(0.3), L.Dense(8, n_out),
                     L.Softmax()], "softmax_cross_entropy"),
        "input_dropout": ([L.Dropout(0.2), L.Dense(n_in, 5), L.Tanh(), L.Dense(5, n_out),
                           L.Sigmoid()], "sigmoid_cross_entropy"),
        "silu_softmax": ([L.Dense(n_in, 6), L.SiLU(), L.Dense(6, n_out), L.Softmax()],
                         "softmax_cross_entropy"),
        "silu_unfused": ([L.Dense(n_in, 6), L.Dropout(0.2), L.SiLU(), L.Dense(6, n_out),
                          L.Softmax()], "softmax_cross_entropy"),
        "batchnorm": ([L.Dense(n_in, 6), L.BatchNorm(), L.ReLU(), L.Dense(6, 5),
                       L.BatchNorm(momentum=0.3), L.Tanh(), L.Dense(5, n_out), L.Softmax()],
                      "softmax_cross_entropy"),
    }[kind]


KINDS = ["sigmoid_bce", "relu_softmax", "tanh_mse", "leaky_identity_mse", "prelu_softmax",
         "softmax_hidden_mse", "activation_after_activation", "dropout", "input_dropout",
         "silu_softmax", "silu_unfused", "batchnorm"]


def make_model(kind, dtype="float64", seed=1, optimizer=None, **options):
    layers, loss = network(kind)
    return Sequential(layers, loss=loss, optimizer=optimizer or SGD(lr=0.2), dtype=dtype,
                      seed=seed, **options)


@pytest.mark.parametrize("kind", KINDS)
def test_backprop_matches_finite_differences(kind):
    X, y = blobs(n=13)
    model = make_model(kind, l2=0.7, l1=0.05)
    # Move off the initial point so that no gradient is trivially small.
    model.fit(X, y, epochs=2, batch_size=5)
    report = check_gradients(model, X, y)
    assert set(report) == {f"{i}.{type(layer).__name__}.{name}"
                           for i, layer in enumerate(model.layers) for name in layer.params}
    assert max(report.values()) < 1e-7, report


def test_gradient_check_detects_a_wrong_gradient():
    X, y = blobs(n=9)
    model = make_model("sigmoid_bce")
    dense = model.layers[0]
    original = dense.backward

    def broken(grad_out, need_grad_in=True):
        result = original(grad_out, need_grad_in)
        dense.grads["W"][0, 0] *= 1.01
        return result

    dense.backward = broken
    assert check_gradients(model, X, y)["0.Dense.W"] > 1e-4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_size", [1, 7, 200])
def test_compiled_and_layer_paths_give_the_same_weights(kind, batch_size):
    if kind == "batchnorm" and batch_size == 1:
        pytest.skip("batch normalization needs two rows per batch")
    X, y = blobs(n=200)
    options = dict(l2=3.0, l1=0.1, clip_norm=5.0, clip_value=1.0, gradient_noise=(1e-4, 0.55))
    fast, slow = make_model(kind, **options), make_model(kind, **options)
    fast.fit(X, y, epochs=1, batch_size=batch_size, compiled=True)
    slow.fit(X, y, epochs=1, batch_size=batch_size, compiled=False)
    assert not np.array_equal(fast.params_, make_model(kind, **options).params_)
    scale = np.abs(slow.params_).max()
    assert np.abs(fast.params_ - slow.params_).max() <= 1e-12 * scale
    assert fast.history_["loss"] == pytest.approx(slow.history_["loss"], rel=1e-12)
    assert fast.history_["accuracy"] == slow.history_["accuracy"]
    np.testing.assert_allclose(fast.buffers_, slow.buffers_, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_sgd_update_matches_the_layer_path(kind, weight_decay):
    """Plain SGD + L2 folds the update into the weight GEMM; same weights to 1e-12."""
    X, y = blobs(n=200)
    fast = make_model(kind, l2=5.0, optimizer=SGD(lr=0.2, weight_decay=weight_decay))
    slow = make_model(kind, l2=5.0, optimizer=SGD(lr=0.2, weight_decay=weight_decay))
    assert fused_sgd_decay(fast) is not None
    fast.fit(X, y, epochs=1, batch_size=10, compiled=True)
    slow.fit(X, y, epochs=1, batch_size=10, compiled=False)
    assert np.abs(fast.params_ - slow.params_).max() <= 1e-12 * np.abs(slow.params_).max()


def test_compiled_and_layer_paths_agree_with_adam_and_targets():
    X, y = blobs(n=150)
    targets = np.eye(3)[y] * 0.9 + 0.1 / 3  # soft probability targets
    fast = make_model("relu_softmax", optimizer=Adam(lr=0.01))
    slow = make_model("relu_softmax", optimizer=Adam(lr=0.01))
    fast.fit(X, targets, epochs=2, batch_size=16, compiled=True)
    slow.fit(X, targets, epochs=2, batch_size=16, compiled=False)
    np.testing.assert_allclose(fast.params_, slow.params_, rtol=0, atol=1e-12 * np.abs(slow.params_).max())


def test_sgd_with_l2_is_nielsens_update():
    """One full-batch step equals w ← (1 − ηλ/n)w − η∇C₀, computed independently."""
    X, y = blobs(n=50)
    eta, lam = 0.3, 5.0
    model = make_model("sigmoid_bce", optimizer=SGD(lr=eta), l2=lam)
    reference = make_model("sigmoid_bce", optimizer=SGD(lr=eta))
    _, grad_c0 = reference.loss_and_gradients(X, y)
    before = model.params_.copy()
    model.fit(X, y, epochs=1, batch_size=50, shuffle=False)
    decay = np.ones_like(before)
    decay[:model.n_weights_] = 1 - eta * lam / 50
    np.testing.assert_allclose(model.params_, decay * before - eta * grad_c0, rtol=1e-13, atol=1e-15)


def test_same_seed_same_run_bit_for_bit():
    X, y = blobs(n=120)
    runs = []
    for _ in range(2):
        model = make_model("relu_softmax", dtype="float32", seed=7, gradient_noise=0.01)
        model.fit(X, y, epochs=3, batch_size=10)
        runs.append(model.params_.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    other = make_model("relu_softmax", dtype="float32", seed=8)
    assert not np.array_equal(other.params_, make_model("relu_softmax", dtype="float32", seed=7).params_)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("compiled", [True, False])
def test_training_learns_a_separable_task(dtype, compiled):
    X, y = blobs(n=600, seed=3)
    X_val, y_val = blobs(n=300, seed=3)[0][:0], None
    model = make_model("relu_softmax", dtype=dtype, optimizer=SGD(lr=0.1, momentum=0.9))
    start = model.evaluate(X, y)
    history = model.fit(X[:450], y[:450], epochs=15, batch_size=16, compiled=compiled,
                        validation_data=(X[450:], y[450:]))
    assert history["val_accuracy"][-1] >= 0.95
    assert history["loss"][-1] < start["loss"] / 4
    assert set(history.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    held_out = model.evaluate(X[450:], y[450:])
    assert held_out["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert (model.predict(X[450:]) == y[450:]).mean() == pytest.approx(held_out["accuracy"])
    proba = model.predict_proba(X[450:])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_binary_single_output():
    X, y = blobs(n=300, n_classes=2, seed=5)
    model = Sequential([L.Dense(6, 4), L.Tanh(), L.Dense(4, 1), L.Sigmoid()],
                       loss="sigmoid_cross_entropy", optimizer=SGD(lr=0.5), seed=0)
    history = model.fit(X, y, epochs=20, batch_size=10)
    assert history["accuracy"][-1] > 0.95
    assert set(np.unique(model.predict(X))) <= {0, 1}
    assert model.evaluate(X, y)["accuracy"] == pytest.approx((model.predict(X) == y).mean())


@pytest.mark.parametrize("clip_norm", [None, 1e30])
def test_divergence_stops_with_the_last_good_weights(clip_norm):
    """Both paths stop at the same step and keep the weights from before it."""
    X, y = blobs(n=64)
    messages, weights = [], []
    for compiled in (True, False):
        model = make_model("leaky_identity_mse", optimizer=SGD(lr=1e3), dtype="float32",
                           clip_norm=clip_norm)
        with pytest.raises(NonFiniteError, match=r"epoch \d+, step \d+") as error:
            model.fit(X * 1e3, y, epochs=50, batch_size=8, compiled=compiled)
        assert np.isfinite(model.params_).all()
        messages.append(str(error.value))
        weights.append(model.params_.copy())
    assert messages[0] == messages[1]
    # float32, and plain SGD rides on the GEMM in the compiled path: equal to rounding
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6)


def test_save_and_load_weights(tmp_path):
    X, y = blobs(n=40)
    model = make_model("relu_softmax")
    model.fit(X, y, epochs=1, batch_size=8)
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    clone = make_model("relu_softmax", seed=99)
    clone.load_weights(path)
    np.testing.assert_array_equal(clone.predict_proba(X), model.predict_proba(X))
    assert [p.name for p in tmp_path.iterdir()] == ["weights.npz"]  # no temporary left
    with pytest.raises(ValueError, match="belongs to another network"):
        make_model("sigmoid_bce").load_weights(path)


BAD_FIT = [
    (lambda X, y: (X[:, :5], y), {}, ValueError, "features"),
    (lambda X, y: (X[0], y), {}, ValueError, "2-dimensional"),
    (lambda X, y: (X[:0], y[:0]), {}, ValueError, "empty"),
    (lambda X, y: (X, y[:-1]), {}, ValueError, "samples"),
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y), {}, ValueError, "NaN"),
    (lambda X, y: (X, np.where(np.arange(y.size) == 3, 3, y)), {}, ValueError, "labels must lie"),
    (lambda X, y: (X, y - 1), {}, ValueError, "labels must lie"),
    (lambda X, y: (X, y + 0.5), {}, ValueError, "integer"),
    (lambda X, y: (X.astype(str), y), {}, TypeError, "real numbers"),
    (lambda X, y: (X, np.eye(4)[y]), {}, ValueError, "columns"),
    (lambda X, y: (X, y), {"batch_size": 0}, ValueError, "batch_size"),
    (lambda X, y: (X, y), {"epochs": -1}, ValueError, "epochs"),
]


@pytest.mark.parametrize("transform, options, error, message", BAD_FIT)
def test_bad_fit_input_is_refused_before_training(transform, options, error, message):
    X, y = blobs(n=20)
    model = make_model("relu_softmax")
    before = model.params_.copy()
    with pytest.raises(error, match=message):
        model.fit(*transform(X, y), **options)
    np.testing.assert_array_equal(model.params_, before)


@pytest.mark.parametrize("n, batch_size", [(20, 1), (21, 10), (1, 4)])
def test_batchnorm_refuses_one_row_batches(n, batch_size):
    X, y = blobs(n=n)
    with pytest.raises(ValueError, match="two rows"):
        make_model("batchnorm").fit(X, y, batch_size=batch_size)


def test_dropout_is_random_in_training_and_off_in_evaluation():
    X, y = blobs(n=50)
    model = make_model("dropout")
    first, second = model.predict_proba(X), model.predict_proba(X)
    np.testing.assert_array_equal(first, second)
    dropout = model.layers[2]
    hidden = np.ones((400, 8))
    a, b = dropout.forward(hidden, training=True), dropout.forward(hidden, training=True)
    assert not np.array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1 / 0.7}


def test_non_contiguous_and_integer_input_is_converted():
    X, y = blobs(n=30)
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    a, b = make_model("relu_softmax"), make_model("relu_softmax")
    a.fit(wide, y.astype(np.int32), epochs=1, batch_size=5)
    b.fit(X, y, epochs=1, batch_size=5)
    np.testing.assert_array_equal(a.params_, b.params_)


@pytest.mark.parametrize("build, error, message", [
    (lambda: Sequential([L.Dense(3, 2), L.ReLU()], loss="softmax_cross_entropy"), ValueError, "Softmax output"),
    (lambda: Sequential([L.Dense(3, 2), L.Dense(4, 2), L.Softmax()]), ValueError, "width 2"),
    (lambda: Sequential([L.ReLU(), L.Softmax()]), ValueError, "needs a Dense layer"),
    (lambda: Sequential([L.Dense(3, 2), L.Softmax()], loss="hinge"), ValueError, "unknown loss"),
    (lambda: Sequential([L.Dense(3, 2), L.Softmax()], dtype="int32"), TypeError, "dtype"),
    (lambda: Sequential([L.Dense(3, 2), L.Softmax()], l2=-1), ValueError, "l2"),
    (lambda: Sequential([]), TypeError, "non-empty"),
    (lambda: L.Dense(0, 2), ValueError, "n_in"),
    (lambda: L.Dense(3, 2, init="bogus"), ValueError, "initializer"),
    (lambda: L.LeakyReLU(-0.1), ValueError, "alpha"),
])
def test_bad_construction_is_refused(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    X, y = blobs(n=20)
    model = make_model("relu_softmax")
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    before = path.read_bytes()

    def failing_savez(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", failing_savez)
    model.fit(X, y, epochs=1)
    with pytest.raises(KeyboardInterrupt):
        model.save_weights(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["weights.npz"]


# Networks above the size (2¹⁵ parameters) from which the compiled epoch splits
# its optimizer step across threads; the end of the decayed weights then falls
# inside the second thread's slice.
PARALLEL_STEP_OPTIMIZERS = {
    "sgd_nesterov": lambda: SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adagrad": lambda: AdaGrad(lr=0.05, lr_decay=0.01, weight_decay=0.01),
    "rmsprop_centered": lambda: RMSProp(lr=0.01, centered=True, momentum=0.5, weight_decay=0.01),
    "adadelta": lambda: AdaDelta(weight_decay=0.01),
    "adam_amsgrad": lambda: Adam(lr=0.01, amsgrad=True, weight_decay=0.01),
    "adamw": lambda: AdamW(lr=0.01),
}


def wide_network(optimizer, seed):
    model = Sequential([L.Dense(40, 200), L.Tanh(), L.Dense(200, 200), L.ReLU(),
                        L.Dense(200, 3), L.Softmax()], loss="softmax_cross_entropy",
                       optimizer=optimizer, seed=seed)
    assert model.params_.size > 2 ** 15
    return model


@pytest.mark.parametrize("name", PARALLEL_STEP_OPTIMIZERS)
def test_threaded_optimizer_step_gives_the_same_weights(name):
    from threadpoolctl import threadpool_limits

    X, y = blobs(n=60, n_features=40)

    def trained(threads, compiled):
        model = wide_network(PARALLEL_STEP_OPTIMIZERS[name](), seed=3)
        with threadpool_limits(limits=threads, user_api="openmp"):
            model.fit(X, y, epochs=2, batch_size=8, compiled=compiled)
        return model.params_

    one_thread, two_threads = trained(1, True), trained(2, True)
    assert np.array_equal(one_thread, two_threads)
    assert np.array_equal(two_threads, trained(2, False))


def _train_threaded_network(seed):
    X, y = blobs(n=60, n_features=40, seed=seed)
    model = wide_network(Adam(lr=0.01), seed)
    model.fit(X, y, epochs=1, batch_size=8)
    return model.params_


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_training_in_a_forked_child_after_threaded_training():
    # children train on one thread, to the same weights
    in_parent, in_child = in_parent_and_forked_child(_train_threaded_network, 0)
    assert np.array_equal(in_parent, in_child)


def test_thread_count_follows_openmp_limits():
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastnn_ext import train

    if not any(pool["user_api"] == "openmp" for pool in threadpool_info()):
        pytest.skip("built without OpenMP")
    for limit in (1, 3):
        with threadpool_limits(limits=limit, user_api="openmp"):
            assert train.max_threads() == limit


def test_own_threads_only_where_blas_threads_cannot_run():
    from fastnn_ext import train
    from fastnn_ext.dense import small_gemm_available

    def threads(widths, batch_size, blas_threaded):
        layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [L.Dense(n_in, n_out), L.ReLU()]
        model = Sequential(layers[:-1] + [L.Softmax()], loss="softmax_cross_entropy",
                           dtype="float32")
        update = UpdateStep(model.params_, model.grads_, model.optimizer,
                                  model.n_weights_)
        plan = build_plan(model, model._loss_layers, batch_size, update)
        return plan.step_threads(2, blas_threaded)

    from fastnn_ext import gemm_choice

    # a machine whose calibration chose fastnn's kernels for batches of up to 10 rows
    saved = gemm_choice.get_choice(np.float32)
    gemm_choice.set_choice(np.float32, **{**saved, "own_min_length": 0,
                                          "own_max_rows": dict.fromkeys(gemm_choice.PRODUCTS, 10)})
    try:
        # every product of [784, 256, 128, 10] at batch 10 runs in fastnn's kernels
        # where the CPU has them (else in BLAS, and then large enough to thread)
        assert threads([784, 256, 128, 10], 10, True) == (2 if small_gemm_available() else 1)
        # at batch 128 the input gradient 128×128 · (256×128)ᵀ goes to BLAS
        assert threads([784, 256, 128, 10], 128, True) == 1
        assert threads([784, 256, 128, 10], 128, False) == 2
        # products too small for BLAS to thread leave the threads on
        assert threads([20, 16, 3], 8, True) == 2
    finally:
        gemm_choice.set_choice(np.float32, **saved)


# ----------------------------------------------------- widths from context

def _width_net(first, seed=3):
    return Sequential([first, L.ReLU(), L.Dense(4), L.Softmax()], optimizer=Adam(lr=0.01), seed=seed)


def test_dense_with_one_width_takes_its_input_width_from_the_layer_before():
    X, y = blobs(64, 6, 4, seed=2)
    inferred = _width_net(L.Dense(6, 8))
    explicit = Sequential([L.Dense(6, 8), L.ReLU(), L.Dense(8, 4), L.Softmax()],
                          optimizer=Adam(lr=0.01), seed=3)
    assert repr(inferred.layers[2]) == "Dense(8, 4)"
    np.testing.assert_array_equal(inferred.params_, explicit.params_)
    inferred.fit(X, y, epochs=2, batch_size=16)
    explicit.fit(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(inferred.params_, explicit.params_)


def test_first_dense_without_input_width_is_built_from_the_data():
    X, y = blobs(64, 6, 4, seed=2)
    lazy = _width_net(L.Dense(8))
    with pytest.raises(AttributeError, match="not built yet.*params_"):
        lazy.params_
    with pytest.raises(AttributeError, match="not built yet"):
        lazy.predict(X)
    lazy.fit(X, y, epochs=2, batch_size=16)
    explicit = _width_net(L.Dense(6, 8))
    explicit.fit(X, y, epochs=2, batch_size=16)
    assert lazy.n_features_ == 6
    np.testing.assert_array_equal(lazy.params_, explicit.params_)
    with pytest.raises(ValueError, match="built already"):
        lazy.build(6)
    with pytest.raises(ValueError, match="expects 6"):
        lazy.fit(X[:, :5], y)


def test_build_fixes_the_width_before_any_data():
    model = _width_net(L.Dense(8))
    model.build(5)
    assert model.predict_proba(np.zeros((2, 5), np.float32)).shape == (2, 4)
    with pytest.raises(ValueError, match="n_features"):
        _width_net(L.Dense(8)).build(0)


def test_an_x_that_fails_its_checks_does_not_fix_an_unbuilt_models_width():
    X, y = blobs(64, 6, 4, seed=2)
    lazy = _width_net(L.Dense(8))
    with pytest.raises(ValueError, match="2-dimensional"):
        lazy.fit(X[0], y[:1])
    assert not lazy.built
    lazy.fit(X, y, epochs=1, batch_size=16)
    assert lazy.built and lazy.n_features_ == 6
