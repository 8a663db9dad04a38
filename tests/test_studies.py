"""The studies: optimizer landscapes and the vanishing gradient, each claim against a reference."""

import math
import os

import numpy as np
import pytest
from test_data import write_dataset

from fastnn.cli import main
from fastnn.data import DEFAULT_DATA_DIR, load_mnist
from fastnn.plotting import have_matplotlib
from fastnn.studies import landscapes as LS
from fastnn.studies import vanishing as VG

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
        # The last step may round either way.
        assert steps is not None and abs(steps - expected) <= 1
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
    for noise in (-1.0, (0.1, 0.5, 2.0), "loud"):
        with pytest.raises(ValueError, match="noise"):
            LS.run("saddle", "SGD", 0.1, noise=noise)
    with pytest.raises(ValueError, match="max_steps"):
        LS.run("saddle", "SGD", 0.1, max_steps=0)
    assert math.isfinite(results["cubic"]["noisy"]["SGD"].final)


# ------------------------------------------------------------ vanishing gradient

have_fashion_mnist = pytest.mark.skipif(not os.path.isdir(DEFAULT_DATA_DIR),
                                        reason="Fashion-MNIST not installed")


@pytest.fixture(scope="module")
def fashion_train():
    (X, y), _ = load_mnist()
    return VG.split(X, y)[0]


@have_fashion_mnist
def test_first_hidden_layer_learns_slowest_in_sigmoid_nets_at_initialization(fashion_train):
    speeds = VG.initial_speeds(fashion_train, variants=("sigmoid",))
    two = speeds["sigmoid", 2][0][:-1]
    # Nielsen (MNIST): 0.07 and 0.31, about 4.4 times slower.
    assert 2.5 < two[1] / two[0] < 8
    for depth in (2, 3, 4):
        hidden = speeds["sigmoid", depth][0][:-1]
        assert all(np.diff(hidden) > 0), hidden  # every layer slower than the next
    four = speeds["sigmoid", 4][0][:-1]
    assert four[-1] / four[0] > 30  # Nielsen: about 100 times


@have_fashion_mnist
def test_relu_and_batch_norm_close_the_gap(fashion_train):
    speeds = VG.initial_speeds(fashion_train, depths=(4,), variants=("sigmoid", "relu",
                                                                     "batchnorm"))
    ratio = {}
    for variant in ("sigmoid", "relu", "batchnorm"):
        speed_b, speed_W = speeds[variant, 4]
        rms = VG.weight_rms(speed_W, 4)[:-1]
        ratio[variant] = rms[0] / rms[-1], speed_b[0] / speed_b[-2]
    assert ratio["sigmoid"][0] < 0.02 and ratio["sigmoid"][1] < 0.02
    assert ratio["relu"][0] > 0.3 and ratio["relu"][1] > 0.3
    assert ratio["batchnorm"][0] > 0.5  # the weights' speed; see the study on β


@have_fashion_mnist
def test_the_gap_persists_through_early_training(fashion_train):
    X, y = fashion_train
    result = VG.train_one(4, "sigmoid", (X[:2000], y[:2000]), (X[-500:], y[-500:]),
                          (X[-500:], y[-500:]), epochs=1, n_sample=500)
    for speed_b in result["speed"]["speed_b"]:  # 2000 steps, measured 10 times
        assert speed_b[0] < 0.2 * speed_b[3]


def test_vanishing_network_and_bad_input():
    model = VG.network(3, "batchnorm", n_in=12)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNorm", "Sigmoid"] * 3 + ["Dense", "Sigmoid"]
    assert model.l2 == 5.0 and model.optimizer.lr.rate(0, 1) == 0.1
    with pytest.raises(ValueError, match="variant"):
        VG.network(2, "swish")
    with pytest.raises(ValueError, match="depth"):
        VG.network(0)
    with pytest.raises(ValueError, match="too few"):
        VG.split(np.zeros((5, 3)), np.zeros(5))


# ------------------------------------------------------------ the commands


def test_study_vanishing_runs_on_small_synthetic_data(tmp_path, capsys):
    write_dataset(tmp_path, n_train=600, n_test=100)
    out = tmp_path / "figures"
    assert main(["study", "vanishing", "--quick", "--data-dir", str(tmp_path),
                 "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sigmoid [12, 30, 30, 30, 30, 10]" in text
    assert "book (MNIST)" in text and "96.48 %" in text
    assert "on 500 images" in text  # 600 minus the 100 held out
    if have_matplotlib():
        assert sorted(p.name for p in out.iterdir()) == ["learning_curves.png",
                                                         "vanishing_speeds.png"]
    else:
        assert 'pip install "fastnn[plot]"' in text


def test_study_landscapes_and_graph_run(tmp_path, capsys):
    assert main(["study", "landscapes", "--quick", "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for name in LS.SURFACES:
        assert f"\n{name}: " in "\n" + text
    if have_matplotlib():
        assert len(list(tmp_path.glob("landscape_*.png"))) == len(LS.SURFACES)
    assert main(["study", "graph", "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "g = 2 × b" in text and "grad 24" in text
    assert (tmp_path / "graph_example.dot").exists()


def test_study_without_data_or_with_bad_arguments(tmp_path, capsys):
    assert main(["study", "vanishing", "--data-dir", str(tmp_path), "--no-figures"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "vanishing", "--epochs", "0"])
    with pytest.raises(SystemExit):
        main(["study", "everest"])


def test_without_matplotlib_the_tables_still_print(tmp_path, capsys, monkeypatch):
    from fastnn import plotting

    monkeypatch.setattr(plotting, "have_matplotlib", lambda: False)
    assert main(["study", "landscapes", "--quick", "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "ravine: f = ½(x² + 100y²)" in text and "AdaGrad" in text
    assert 'pip install "fastnn[plot]"' in text
    assert not list(tmp_path.iterdir())
