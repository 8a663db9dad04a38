"""Schedules, weight decay, clipping and noise as seen through Sequential.fit."""

import numpy as np
import pytest
from test_model import blobs, make_model

from fastnn.optimizers import SGD, Adam, AdamW
from fastnn.schedules import ExponentialDecay, InverseTimeDecay, ReduceLROnPlateau, StepDecay


@pytest.mark.parametrize("compiled", [True, False])
def test_per_epoch_schedule_is_recorded_in_the_history(compiled):
    X, y = blobs(n=40)
    model = make_model("relu_softmax", optimizer=SGD(lr=ExponentialDecay(0.3, k=0.5)))
    history = model.fit(X, y, epochs=4, batch_size=8, compiled=compiled)
    np.testing.assert_allclose(history["lr"], 0.3 * np.exp(-0.5 * np.arange(4)), rtol=1e-15)


def test_per_step_schedule_reaches_the_compiled_loop():
    """With a 1/t decay per step the compiled and layer paths still agree,
    and differ from a constant rate: the loop uses every step's own rate."""
    X, y = blobs(n=60)
    schedule = lambda: InverseTimeDecay(0.5, k=0.3, per="step")  # noqa: E731
    fast = make_model("tanh_mse", optimizer=SGD(lr=schedule(), momentum=0.5))
    slow = make_model("tanh_mse", optimizer=SGD(lr=schedule(), momentum=0.5))
    constant = make_model("tanh_mse", optimizer=SGD(lr=0.5, momentum=0.5))
    for model, compiled in ((fast, True), (slow, False), (constant, True)):
        model.fit(X, y, epochs=2, batch_size=6, compiled=compiled)
    np.testing.assert_allclose(fast.params_, slow.params_, rtol=0, atol=1e-12)
    assert np.abs(fast.params_ - constant.params_).max() > 1e-3
    assert fast.history_["lr"] == [0.5, 0.5 / (1 + 0.3 * 10)]  # first step of each epoch


def test_schedule_continues_across_fit_calls():
    X, y = blobs(n=20)
    model = make_model("relu_softmax", optimizer=SGD(lr=StepDecay(1.0, factor=0.5, every=1)))
    first = model.fit(X, y, epochs=2, batch_size=10)
    second = model.fit(X, y, epochs=2, batch_size=10)
    assert first["lr"] + second["lr"] == [1.0, 0.5, 0.25, 0.125]


def test_reduce_on_plateau_lowers_the_rate_when_validation_stalls():
    X, y = blobs(n=60)
    plateau = ReduceLROnPlateau(0.1, monitor="val_loss", factor=0.5, patience=0)
    model = make_model("relu_softmax", optimizer=SGD(lr=plateau))
    # A validation set whose labels are noise: its loss cannot keep improving.
    noise_labels = np.random.default_rng(1).integers(0, 3, 60)
    history = model.fit(X, y, epochs=8, batch_size=10, validation_data=(X, noise_labels))
    rates, losses = history["lr"], history["val_loss"]
    reductions = 0
    for epoch in range(1, 8):
        # PyTorch's rule with patience 0 and a relative threshold of 1e-4
        best = min(losses[:epoch - 1], default=np.inf)
        stalled = not losses[epoch - 1] < best * (1 - plateau.threshold)
        assert rates[epoch] == pytest.approx(rates[epoch - 1] * (0.5 if stalled else 1.0))
        reductions += stalled
    assert reductions >= 1


@pytest.mark.parametrize("optimizer", [lambda: SGD(lr=0.1, weight_decay=0.5),
                                       lambda: AdamW(lr=0.1, weight_decay=0.5)])
def test_weight_decay_leaves_biases_alone(optimizer):
    """With zero gradients only weight decay moves parameters: weights shrink, biases do not."""
    X, y = blobs(n=10)
    model = make_model("relu_softmax", optimizer=optimizer())
    model.params_[model.n_weights_:] = 0.3  # biases
    before = model.params_.copy()
    model.optimizer.step(model.params_, np.zeros_like(model.params_))
    np.testing.assert_array_equal(model.params_[model.n_weights_:], before[model.n_weights_:])
    np.testing.assert_allclose(model.params_[:model.n_weights_],
                               (1 - 0.1 * 0.5) * before[:model.n_weights_], rtol=1e-6)


def test_l1_penalty_gradient_is_the_sign():
    X, y = blobs(n=12)
    plain, lasso = make_model("relu_softmax"), make_model("relu_softmax", l1=3.0)
    _, g_plain = plain.loss_and_gradients(X, y)
    _, g_lasso = lasso.loss_and_gradients(X, y)
    w = lasso.params_[:lasso.n_weights_]
    np.testing.assert_allclose(g_lasso[:lasso.n_weights_] - g_plain[:plain.n_weights_],
                               3.0 / 12 * np.sign(w), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(g_lasso[lasso.n_weights_:], g_plain[plain.n_weights_:])


def test_global_norm_clipping_bounds_every_sgd_step():
    """Plain SGD moves the parameters by exactly lr·g, so ‖Δθ‖ ≤ lr·clip_norm each step."""
    X, y = blobs(n=30)
    model = make_model("relu_softmax", optimizer=SGD(lr=1.0), clip_norm=1e-3)
    before = model.params_.copy()
    model.fit(X * 50, y, epochs=1, batch_size=30, shuffle=False)
    step = np.linalg.norm(model.params_ - before)
    assert step == pytest.approx(1e-3, rel=1e-9)  # the raw gradient is far larger


def test_gradient_noise_is_seeded_and_annealed():
    X, y = blobs(n=40)
    runs = [make_model("relu_softmax", seed=3, gradient_noise=(0.1, 0.55)) for _ in range(3)]
    runs[2] = make_model("relu_softmax", seed=3)
    for model in runs:
        model.fit(X, y, epochs=1, batch_size=40, shuffle=False)
    np.testing.assert_array_equal(runs[0].params_, runs[1].params_)
    # one full-batch SGD step at t = 0: the difference is lr·N(0, η) per parameter
    noise = (runs[2].params_ - runs[0].params_) / 0.2
    assert abs(noise.std() - np.sqrt(0.1)) < 5 * np.sqrt(0.1) * np.sqrt(2 / noise.size) + 0.05


@pytest.mark.parametrize("build, message", [
    (lambda: SGD(lr=-0.1), "lr"),
    (lambda: Adam(betas=(1.0, 0.999)), "beta"),
    (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
    (lambda: ExponentialDecay(0.1, k=0.1, per="batch"), "per"),
    (lambda: make_model("relu_softmax", clip_norm=0), "clip_norm"),
    (lambda: make_model("relu_softmax", gradient_noise=-1.0), "noise"),
])
def test_invalid_hyper_parameters_are_refused_at_construction(build, message):
    with pytest.raises(ValueError, match=message):
        build()
