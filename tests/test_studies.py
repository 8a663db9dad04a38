"""The studies: optimizer landscapes and the vanishing gradient, each claim against a reference."""

import math

import numpy as np
import pytest

from fastnn.studies import landscapes as LS

# ------------------------------------------------------------ landscapes


@pytest.mark.parametrize("lr", [1e-3, 1e-2, 5e-2])
def test_sgd_on_the_saddles_stable_manifold_never_leaves_it(lr):
    result = LS.run("saddle", "SGD", lr)
    assert result.steps is None
    assert np.all(result.points[:, 1] == 0.0)
    # x follows x_t = x_0 (1 − 2η)^t towards the saddle point (NumPy transcription).
    t = np.arange(len(result.points))
    np.testing.assert_allclose(result.points[:, 0], -(1 - 2 * lr) ** t, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("seed", range(5))
def test_gradient_noise_escapes_the_saddle(seed):
    result = LS.run("saddle", "SGD", 0.05, noise=LS.NOISE, seed=seed)
    assert result.steps is not None
    assert result.values[result.steps] < -1.0 and abs(result.points[-1, 1]) > 1.0


def sgd_steps_on_the_ravine(lr, goal=1e-6):
    """Steps plain SGD needs on ½(x² + 100y²): each coordinate scales by (1 − ηλ) per step."""
    t = np.arange(1, 100_000)
    x, y = -10.0 * (1 - lr) ** t, 1.0 * (1 - 100 * lr) ** t
    below = np.flatnonzero(0.5 * (x ** 2 + 100 * y ** 2) < goal)
    return int(t[below[0]]) if below.size else None


def test_sgd_on_the_ravine_follows_its_closed_form():
    for lr in (1e-3, 5e-3, 1e-2):
        expected = sgd_steps_on_the_ravine(lr)
        steps = LS.run("ravine", "SGD", lr, max_steps=10_000).steps
        assert steps is not None and abs(steps - expected) <= 1  # the last step may round either way
    assert LS.run("ravine", "SGD", 2e-2).steps is None  # ηλ = 2: the y-coordinate flips forever


@pytest.fixture(scope="module")
def ravines():
    names = ["SGD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"]
    return {surface: {name: LS.best_run(surface, name) for name in names}
            for surface in ("ravine", "ravine45")}


def test_momentum_and_adaptive_methods_beat_sgd_on_the_ravine(ravines):
    runs = ravines["ravine"]
    sgd = runs["SGD"].steps
    assert sgd is not None
    for name in ("momentum", "Nesterov", "RMSProp", "Adam"):
        assert runs[name].steps is not None and runs[name].steps < sgd, name


def test_rotating_the_ravine_takes_away_the_per_coordinate_advantage(ravines):
    axis, rotated = ravines["ravine"], ravines["ravine45"]
    for name in ("SGD", "momentum", "Nesterov"):  # invariant under rotation
        assert abs(rotated[name].steps - axis[name].steps) <= 1
    for name in ("AdaGrad", "RMSProp"):
        assert axis[name].steps < axis["momentum"].steps
        assert rotated[name].steps is None or rotated[name].steps > rotated["momentum"].steps


def test_adagrad_step_sizes_shrink_while_rmsprops_recover():
    lr, eps = 0.5, 1e-10
    g, rates = LS.step_sizes("AdaGrad", lr, n_steps=400)
    expected = lr / (np.sqrt(np.cumsum(g ** 2, axis=0)) + eps)  # γ / (√Σg² + ε)
    np.testing.assert_allclose(rates, expected, rtol=1e-9)
    assert np.all(np.diff(rates, axis=0) <= 1e-15 * rates[1:])
    # Along x, where the gradient persists, the accumulator keeps growing: the rate falls.
    assert rates[-1, 0] < 0.5 * rates[0, 0]

    lr, alpha, eps = 0.01, 0.99, 1e-8
    g, rates = LS.step_sizes("RMSProp", lr, n_steps=400)
    v = np.zeros(2)
    expected = []
    for row in g:  # v_t = α v_{t−1} + (1 − α) g_t²
        v = alpha * v + (1 - alpha) * row ** 2
        expected.append(lr / (np.sqrt(v) + eps))
    np.testing.assert_allclose(rates, expected, rtol=1e-9)
    # v forgets old gradients: as they shrink, the rate comes back up from its low point
    # (most along y, which converges first) instead of only falling as AdaGrad's does.
    lowest = rates.min(axis=0)
    assert rates[-1, 0] > 1.1 * lowest[0] and rates[-1, 1] > 2 * lowest[1]


def test_landscape_table_and_bad_input():
    results = LS.study(surfaces=["saddle", "cubic"], optimizers=["SGD", "momentum"], quick=True)
    table = LS.format_table(results)
    assert "saddle: f = x² − y²" in table and "stable manifold" in table
    assert results["saddle"]["exact"]["SGD"].steps is None
    assert results["cubic"]["exact"]["momentum"].steps is not None
    with pytest.raises(ValueError, match="optimizer"):
        LS.run("saddle", "Newton", 0.1)
    with pytest.raises(ValueError, match="surface"):
        LS.study(surfaces=["everest"])
    with pytest.raises(ValueError, match="noise"):
        LS.run("saddle", "SGD", 0.1, noise=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        LS.run("saddle", "SGD", 0.1, max_steps=0)
    assert math.isfinite(results["cubic"]["noisy"]["SGD"].final)
