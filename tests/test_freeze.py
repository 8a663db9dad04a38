"""Frozen layers and transfer learning: no update, no state, no penalty for a frozen layer."""

import numpy as np
import pytest

from fastnn import initializers
from fastnn import layers as L
from fastnn.model import Sequential
from fastnn.optimizers import SGD, Adam
from fastnn.plan import build_plan
from fastnn.training import fused_sgd_decay
from fastnn_ext.update import UpdateStep

from conftest import assert_close
from test_model import blobs


#: the update's every part at once: Adam, both penalties, both clippings, noise
EVERYTHING = dict(optimizer=lambda: Adam(lr=0.01), l2=0.3, l1=0.05, clip_norm=0.5,
                  clip_value=0.05, gradient_noise=(0.01, 0.55))
#: plain SGD with L2, which the compiled epoch fuses into the weight products
FUSED_SGD = dict(optimizer=lambda: SGD(lr=0.1), l2=0.3)


def make(layers, settings, dtype=np.float64, seed=3, loss="softmax_cross_entropy"):
    settings = dict(settings)
    optimizer = settings.pop("optimizer")()
    return Sequential(layers, loss=loss, optimizer=optimizer, dtype=dtype, seed=seed,
                      **settings)


def middle_frozen():
    return [L.Dense(6, 5), L.Tanh(), L.Dense(5, 4), L.ReLU(), L.Dense(4, 3), L.Softmax()]


def batchnorm_frozen():
    return [L.Dense(6, 5), L.BatchNorm(momentum=0.3), L.Tanh(), L.Dense(5, 4), L.PReLU(),
            L.Dense(4, 3), L.Softmax()]


# which layers of each network are frozen
CASES = {"prefix": (middle_frozen, (0,)), "middle": (middle_frozen, (2,)),
         "batchnorm and prelu": (batchnorm_frozen, (0, 1, 4)),
         "batchnorm after a trained layer": (batchnorm_frozen, (1,))}


@pytest.mark.parametrize("settings", [EVERYTHING, FUSED_SGD], ids=["adam-l2-l1-clip-noise",
                                                                   "fused-sgd"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_frozen_parameters_do_not_move_and_both_paths_agree_bit_for_bit(case, settings, dtype):
    X, y = blobs()
    build, frozen = CASES[case]
    results = []
    for compiled in (True, False):
        model = make(build(), settings, dtype)
        model.freeze(*frozen)
        before = model.get_weights()
        buffers = {i: {k: v.copy() for k, v in model.layers[i].buffers.items()}
                   for i in frozen}
        model.fit(X, y, epochs=3, batch_size=32, compiled=compiled)
        after = model.get_weights()
        for i in frozen:
            for name in before[i]:
                assert np.array_equal(before[i][name], after[i][name]), (i, name)
            for name, value in buffers[i].items():   # a frozen batch norm keeps its statistics
                assert np.array_equal(value, model.layers[i].buffers[name]), (i, name)
        trained = [i for i, w in enumerate(before) if w and i not in frozen]
        assert all(not np.array_equal(before[i][n], after[i][n])
                   for i in trained for n in before[i])
        results.append((model.params_.copy(), model.buffers_.copy(),
                        model.optimizer.state_.copy()))
    for compiled_array, layer_array in zip(*results):
        if settings is FUSED_SGD:   # one fused product w ← keep·w − lr·xᵀdZ rounds otherwise
            assert_close(compiled_array, layer_array, dtype)
        else:
            assert np.array_equal(compiled_array, layer_array)


def features(model, X):
    """What the frozen prefix [Dense, BatchNorm (inference mode), Tanh] computes, in NumPy."""
    dense, norm = model.layers[0], model.layers[1]
    z = X @ dense.params["W"] + dense.params["b"]
    z = (norm.params["gamma"] * (z - norm.buffers["running_mean"])
         / np.sqrt(norm.buffers["running_var"] + norm.eps) + norm.params["beta"])
    return np.tanh(z)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "layers"])
def test_training_behind_frozen_layers_is_training_the_head_on_their_features(compiled):
    # The frozen layers compute fixed features; the rest trains exactly as a
    # network of its own would on those features.  Clipping and noise then see
    # the head's gradient only: the frozen ones are dropped.
    X, y = blobs()
    model = make([L.Dense(6, 5), L.BatchNorm(), L.Tanh(), L.Dense(5, 4), L.ReLU(),
                  L.Dense(4, 3), L.Softmax()], EVERYTHING)
    model.layers[1].buffers["running_mean"][...] = [0.1, -0.2, 0.3, 0.0, 0.5]
    model.layers[1].buffers["running_var"][...] = [0.5, 2.0, 1.0, 1.5, 0.8]
    model.freeze(0, 1)
    head = make([L.Dense(5, 4), L.ReLU(), L.Dense(4, 3), L.Softmax()], EVERYTHING)
    head.set_weights(model.get_weights()[3:])
    head.rng.bit_generator.state = model.rng.bit_generator.state   # same shuffles, same noise
    F = features(model, X)
    model.fit(X, y, epochs=3, batch_size=32, compiled=compiled)
    head.fit(F, y, epochs=3, batch_size=32, compiled=compiled)
    for mine, reference in zip(model.get_weights()[3:], head.get_weights()):
        for name in reference:
            np.testing.assert_allclose(mine[name], reference[name], rtol=1e-10, atol=1e-12)


def test_one_step_with_a_frozen_middle_layer_is_the_update_without_its_gradient():
    # NumPy transcription of one full-batch step: the gradient (from the
    # unfrozen twin) loses the frozen layer's entries, the L2 term goes to the
    # trainable weights only and the clipping norm counts the rest.
    X, y = blobs(n=64)
    lr, l2, clip = 0.5, 0.4, 0.3
    settings = dict(optimizer=lambda: SGD(lr=lr), l2=l2, clip_norm=clip)
    model, twin = make(middle_frozen(), settings), make(middle_frozen(), settings)
    _, full = twin.loss_and_gradients(X, y)                # objective with every penalty
    grads = [{name: full[twin._offsets[id(layer), name] + np.arange(array.size)]
              .reshape(array.shape) for name, array in layer.params.items()}
             for layer in twin.layers]
    start = twin.get_weights()
    trainable = [0, 4]
    step = {i: dict(grads[i]) for i in trainable}
    for i in trainable:      # loss_and_gradients added λ/n·w to every weight; the frozen
        step[i]["W"] = grads[i]["W"]    # layer's penalty is gone, the others' stays
    norm = np.sqrt(sum((g ** 2).sum() for i in trainable for g in step[i].values()))
    scale = min(1.0, clip / norm)
    model.freeze(2)
    model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False)
    after = model.get_weights()
    assert all(np.array_equal(after[2][n], start[2][n]) for n in start[2])
    for i in trainable:
        for name in start[i]:
            np.testing.assert_allclose(after[i][name], start[i][name] - lr * scale * step[i][name],
                                       rtol=1e-12, atol=1e-14)


def test_loss_and_gradients_penalizes_only_trainable_weights():
    X, y = blobs(n=50)
    model = make(middle_frozen(), dict(optimizer=SGD, l2=0.7, l1=0.2))
    reference = make(middle_frozen(), dict(optimizer=SGD))
    model.freeze(2)
    objective, grads = model.loss_and_gradients(X, y)
    data_loss, data_grads = reference.loss_and_gradients(X, y)
    n = len(X)
    for i, layer in enumerate(model.layers):
        for name, array in layer.params.items():
            at = model._offsets[id(layer), name] + np.arange(array.size)
            ref_at = reference._offsets[id(reference.layers[i]), name] + np.arange(array.size)
            expected = data_grads[ref_at]
            if name == "W" and i != 2:
                expected = expected + 0.7 / n * array.ravel() + 0.2 / n * np.sign(array.ravel())
            np.testing.assert_allclose(grads[at], expected, rtol=1e-12, atol=1e-15)
    weights = np.concatenate([model.layers[i].params["W"].ravel() for i in (0, 4)])
    penalty = 0.7 / (2 * n) * (weights ** 2).sum() + 0.2 / n * np.abs(weights).sum()
    np.testing.assert_allclose(objective, data_loss + penalty, rtol=1e-12)


def test_optimizer_state_covers_only_trainable_parameters():
    model = make(middle_frozen(), EVERYTHING)
    model.freeze(0, model.layers[2])
    trainable = 4 * 3 + 3
    assert model.n_trainable_ == trainable and model.n_params == 6 * 5 + 5 + 5 * 4 + 4 + 15
    assert model.optimizer.state_.shape == (2, trainable)
    assert model.n_weights_ == 4 * 3
    # the leading block is the trainable layer's: its weights, then its bias
    dense = model.layers[4]
    assert np.array_equal(model.params_[:trainable],
                          np.concatenate([dense.params["W"].ravel(), dense.params["b"]]))
    model.unfreeze(0)
    assert model.optimizer.state_.shape == (2, trainable + 35)


def test_changing_what_is_frozen_keeps_every_value_and_restarts_the_optimizer():
    X, y = blobs()
    model = make(batchnorm_frozen(), EVERYTHING)
    model.fit(X, y, epochs=1, batch_size=32)
    weights, buffers = model.get_weights(), model.buffers_.copy()
    assert model.optimizer.t_ > 0
    model.freeze(0, 1)
    model.unfreeze(1)
    for before, after in zip(weights, model.get_weights()):
        assert before.keys() == after.keys()
        assert all(np.array_equal(before[k], after[k]) for k in before)
    assert np.array_equal(buffers, model.buffers_)
    assert model.optimizer.t_ == 0 and model.optimizer.epoch_ == 0
    assert not model.optimizer.state_.any()


def test_a_trainable_flag_set_directly_is_seen_by_the_next_fit():
    X, y = blobs()
    model = make(middle_frozen(), FUSED_SGD)
    before = model.layers[0].params["W"].copy()
    model.layers[0].trainable = False
    model.fit(X, y, epochs=1, batch_size=32)
    assert np.array_equal(model.layers[0].params["W"], before)
    assert model.optimizer.n_params_ == model.n_trainable_ == model.params_.size - 35


def test_freezing_everything_and_bad_selections_are_refused():
    model = make(middle_frozen(), EVERYTHING)
    with pytest.raises(ValueError, match="every layer with parameters is frozen"):
        model.freeze(0, 2, 4)
    assert all(layer.trainable for layer in model.layers)      # nothing changed
    assert model.n_trainable_ == model.params_.size
    with pytest.raises(ValueError, match="layer index 6"):
        model.freeze(6)
    with pytest.raises(ValueError, match="not a layer of this network"):
        model.freeze(L.Dense(6, 5))
    with pytest.raises(TypeError, match="layers are given as"):
        model.freeze("0")
    with pytest.raises(ValueError, match="at least one layer"):
        model.unfreeze()
    X, y = blobs(n=40)
    for layer in model.layers:
        layer.trainable = False
    with pytest.raises(ValueError, match="every layer with parameters is frozen"):
        model.fit(X, y)
    model.layers[4].trainable = "no"
    with pytest.raises(TypeError, match="trainable must be True or False"):
        model.fit(X, y)


def test_the_backward_pass_starts_at_the_first_trainable_layer():
    X, y = blobs(n=64)
    model = make([L.Dropout(0.1), L.Dense(6, 5), L.Tanh(), L.Dense(5, 4), L.Tanh(),
                  L.Dense(4, 3), L.Softmax()], EVERYTHING)
    model.freeze(1)
    update = UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_,
                        n_trainable=model.n_trainable_)
    # ops: dropout, dense+tanh (frozen), dense+tanh, dense
    assert build_plan(model, model._loss_layers, 16, update).first_backward == 2
    model.unfreeze(1)
    assert build_plan(model, model._loss_layers, 16, update).first_backward == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("backward of a layer before the first trainable one")

    model.freeze(1)
    for layer in model.layers[:3]:
        layer.backward = must_not_run
    model.fit(X, y, epochs=1, batch_size=16, compiled=False)


def test_fused_sgd_stays_available_with_frozen_layers():
    model = make(middle_frozen(), FUSED_SGD)
    model.freeze(2)
    assert fused_sgd_decay(model) == 0.0


def test_reset_parameters_draws_from_the_model_generator():
    model = make(batchnorm_frozen(), EVERYTHING, seed=11)
    twin = make(batchnorm_frozen(), EVERYTHING, seed=11)
    dense, norm = model.layers[3], model.layers[1]
    generator = np.random.default_rng()
    generator.bit_generator.state = model.rng.bit_generator.state
    expected = initializers.get("glorot_uniform")(generator, (5, 4), 5, 4)
    dense.params["b"][...] = 7.0
    norm.params["gamma"][...] = 3.0
    norm.buffers["running_var"][...] = 9.0
    dense.reset_parameters()
    norm.reset_parameters()
    np.testing.assert_array_equal(dense.params["W"], expected)
    assert not dense.params["b"].any()
    assert (norm.params["gamma"] == 1).all() and (norm.buffers["running_var"] == 1).all()
    twin.layers[3].reset_parameters()     # same seed, same draws
    np.testing.assert_array_equal(twin.layers[3].params["W"], dense.params["W"])
    with pytest.raises(ValueError, match="belongs to no Sequential"):
        L.Dense(3, 2).reset_parameters()


def test_transfer_learning_reuses_frozen_features_for_new_classes():
    # Ten clusters; the network learns classes 0-4, then its hidden layers are
    # frozen and only a re-initialized output layer learns classes 5-9.
    rng = np.random.default_rng(0)
    centres = 3 * rng.standard_normal((10, 2))
    mixing = rng.standard_normal((2, 20))

    def sample(classes, n):
        labels = rng.choice(classes, n)
        points = centres[labels] + 0.3 * rng.standard_normal((n, 2))
        return np.tanh(points @ mixing), labels

    X_old, y_old = sample(np.arange(5), 1500)
    X_new, y_new = sample(np.arange(5, 10), 1500)
    X_test, y_test = sample(np.arange(5, 10), 500)
    model = Sequential([L.Dense(20, 64, init="he_normal"), L.ReLU(), L.Dense(64, 64,
                        init="he_normal"), L.ReLU(), L.Dense(64, 10), L.Softmax()],
                       optimizer=Adam(lr=3e-3), dtype="float32", seed=0)
    model.fit(X_old, y_old, epochs=15, batch_size=32)
    hidden = model.get_weights()[:4]
    model.freeze(0, 2)
    model.layers[4].reset_parameters()
    assert model.evaluate(X_test, y_test)["accuracy"] < 0.5
    model.fit(X_new, y_new, epochs=15, batch_size=32)
    assert all(np.array_equal(hidden[i][k], model.get_weights()[i][k])
               for i in (0, 2) for k in hidden[i])
    assert model.evaluate(X_test, y_test)["accuracy"] > 0.9


def test_the_compiled_pieces_check_their_new_arguments():
    from fastnn.plan import PlanBuilder
    from fastnn_ext import train

    model = make(middle_frozen(), EVERYTHING)
    model.freeze(0)
    args = (model.params_, model.grads_, model.optimizer, model.n_weights_)
    with pytest.raises(TypeError, match="n_trainable must be an integer"):
        UpdateStep(*args, n_trainable=1.5)
    with pytest.raises(ValueError, match="n_trainable must be in"):
        UpdateStep(*args, n_trainable=model.params_.size + 1)
    with pytest.raises(ValueError, match="optimizer state has shape"):
        UpdateStep(*args)      # the optimizer is bound to the trainable parameters only
    update = UpdateStep(*args, n_trainable=model.n_trainable_)
    records, kernels, activations = PlanBuilder(model, 8).records(model._loss_layers)
    for bad in (-1, len(records), True):
        with pytest.raises(ValueError, match="first_backward"):
            train.EpochPlan(records, kernels, activations, model.buffers_, 8, model.loss,
                            update, None, bad)


def test_gradients_with_frozen_layers_match_finite_differences():
    # Every parameter's gradient, frozen ones included, is the derivative of
    # the objective, whose penalty counts the trainable weights and whose
    # frozen batch norm normalizes with its running statistics.
    from fastnn.gradcheck import check_gradients

    X, y = blobs(n=13)
    model = make(batchnorm_frozen(), dict(optimizer=SGD, l2=0.7, l1=0.05))
    model.fit(X, y, epochs=2, batch_size=5)
    model.freeze(0, 1)
    report = check_gradients(model, X, y)
    assert len(report) == 9 and max(report.values()) < 1e-7, report


def test_summary_counts_the_trainable_parameters():
    model = make(middle_frozen(), FUSED_SGD)
    assert "trainable" not in model.summary()
    model.freeze(0)
    last = model.summary().splitlines()[-1].split()
    assert last == ["trainable", str(model.params_.size - 35)]


def test_freezing_a_layer_without_parameters_changes_nothing():
    X, y = blobs(n=64)
    model = make(middle_frozen(), EVERYTHING)
    model.fit(X, y, epochs=1, batch_size=16)
    state, t = model.optimizer.state_.copy(), model.optimizer.t_
    model.freeze(1)           # the Tanh
    assert model.optimizer.t_ == t and np.array_equal(model.optimizer.state_, state)
    assert model.n_trainable_ == model.params_.size


def test_weight_files_and_states_read_the_same_whatever_is_frozen(tmp_path):
    # Files hold the parameters in the all-trainable order: written frozen,
    # read unfrozen (and back), every layer gets its own values.
    X, y = blobs(n=64)
    model = make(batchnorm_frozen(), EVERYTHING)
    model.fit(X, y, epochs=1, batch_size=16)
    reference = make(batchnorm_frozen(), EVERYTHING, seed=9)
    reference.set_weights(model.get_weights())
    reference.buffers_[...] = model.buffers_
    reference.save_weights(tmp_path / "plain.npz")
    model.freeze(0, 4)
    model.save_weights(tmp_path / "frozen.npz")
    assert np.array_equal(np.load(tmp_path / "frozen.npz")["params"],
                          np.load(tmp_path / "plain.npz")["params"])
    for source, target in (("frozen", make(batchnorm_frozen(), EVERYTHING, seed=5)),
                           ("plain", make(batchnorm_frozen(), EVERYTHING, seed=6))):
        if source == "plain":
            target.freeze(3)
        target.load_weights(tmp_path / f"{source}.npz")
        for mine, expected in zip(target.get_weights(), model.get_weights()):
            assert all(np.array_equal(mine[k], expected[k]) for k in expected)
        np.testing.assert_array_equal(target.buffers_, model.buffers_)
    state = model.get_state()
    model.unfreeze(0)
    with pytest.raises(ValueError, match="other layers frozen"):
        model.set_state(state)
