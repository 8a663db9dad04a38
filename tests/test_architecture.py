"""The training core's shape: one update step, layers that describe their compiled
form, registries, and the checks at every entry point of fastnn_ext.train."""

import numpy as np

from fastnn_ext.update import UpdateStep
import pytest

from fastnn import layers as L
from fastnn import optimizers as O
from fastnn.model import Sequential
from fastnn.plan import PlanBuilder
from fastnn_ext import activations as act
from fastnn_ext import layer_ops, silu, train


def blobs(n=120, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centres[y] + 0.6 * rng.standard_normal((n, n_features)), y


def small_model(optimizer=None, dtype="float64", **options):
    return Sequential([L.Dense(6, 8), L.SiLU(), L.Dense(8, 3), L.Softmax()],
                      optimizer=optimizer or O.SGD(lr=0.1), dtype=dtype, seed=3, **options)


# -- every optimizer, both paths, bit for bit ------------------------------------

OPTIMIZER_CASES = [O.SGD(lr=0.1, momentum=0.9, nesterov=True), O.AdaGrad(lr=0.05),
                   O.RMSProp(lr=0.01, centered=True), O.AdaDelta(lr=1.0), O.Adam(lr=0.01),
                   O.AdamW(lr=0.01, weight_decay=0.1), O.Lion(lr=1e-3, weight_decay=0.1)]


@pytest.mark.parametrize("make", [lambda o=o: type(o)(**o._params()) for o in OPTIMIZER_CASES],
                         ids=[type(o).__name__ for o in OPTIMIZER_CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_optimizer_gives_the_same_weights_on_both_paths(make, dtype):
    X, y = blobs()
    compiled, layered = small_model(make(), dtype), small_model(make(), dtype)
    compiled.fit(X, y, epochs=2, batch_size=16, compiled=True)
    layered.fit(X, y, epochs=2, batch_size=16, compiled=False)
    assert not np.array_equal(compiled.params_, small_model(make(), dtype).params_)
    np.testing.assert_array_equal(compiled.params_, layered.params_)
    np.testing.assert_array_equal(compiled.optimizer.state_, layered.optimizer.state_)
    assert compiled.optimizer.t_ == layered.optimizer.t_ == 2 * 8


def test_silu_kernels_match_numpy(rng):
    z = rng.standard_normal((5, 7)) * 4
    z[0, :3] = [-800.0, 800.0, 0.0]  # e^{−z} overflows to ∞ for the first: σ = 0
    out = np.empty_like(z)
    act.forward(z, out, silu.SILU)
    with np.errstate(over="ignore"):
        sigma = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(out, z * sigma, rtol=1e-14, atol=0)
    g = rng.standard_normal(z.shape)
    grad = np.empty_like(z)
    act.backward(out, g, grad, silu.SILU, 0.0, z)
    np.testing.assert_allclose(grad, g * sigma * (1 + z * (1 - sigma)), rtol=1e-13, atol=1e-300)
    # its derivative needs z: leaving it out is an error, not a silent zero
    with pytest.raises(ValueError, match="needs z"):
        act.backward(out, g, grad, silu.SILU)
    assert act.needs_input(silu.SILU) and not act.needs_input(act.RELU)


def test_silu_gradient_against_finite_differences():
    from fastnn.gradcheck import check_gradients

    X, y = blobs(n=20)
    errors = check_gradients(small_model(), X, y)
    assert max(errors.values()) < 1e-7


# -- the plan: records the layers describe, checked before any kernel --------------

def test_layers_describe_their_ops():
    model = Sequential([L.Dropout(0.1), L.Dense(6, 8), L.ReLU(), L.BatchNorm(), L.Dense(8, 3),
                        L.Softmax()], dtype="float64")
    records, kernels, activations = PlanBuilder(model, 10).records(model._loss_layers)
    assert [k for k in kernels] == [layer_ops.DROPOUT, layer_ops.DENSE, layer_ops.BATCHNORM,
                                    layer_ops.DENSE]
    assert activations[1] is act.RELU          # the ReLU runs inside the dense op
    assert list(records["need_grad_in"]) == [0, 0, 1, 1]
    assert records[0]["saved_size"] == 10 * 6  # the dropout mask
    assert records[2]["state_size"] == 2 * 8   # running mean, then running variance


def plan_and_update(model, batch_size=8):
    update = UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_)
    records, kernels, activations = PlanBuilder(model, batch_size).records(model._loss_layers)
    return records, kernels, activations, update


@pytest.mark.parametrize("field, value, message", [
    ("weight", 10 ** 6, "weight slice"),
    ("weight", -5, "weight slice"),
    ("bias_size", 10 ** 6, "bias slice"),
    ("state", 0, "state slice"),
    ("input", 64, "does not read"),
    ("output", 0, "overlaps"),
    ("out_size", 0, "sizes must be positive"),
    ("saved", 0, "overlaps"),
])
def test_plan_refuses_inconsistent_records(field, value, message):
    model = small_model()
    records, kernels, activations, update = plan_and_update(model)
    row = 1 if field in ("input", "saved") else 0
    if field == "saved":
        records[row]["saved_size"] = 4
    records[row][field] = value
    with pytest.raises(ValueError, match=message):
        train.EpochPlan(records, kernels, activations, model.buffers_, 8, model.loss, update)


def test_plan_refuses_wrong_tables_and_sizes():
    model = small_model()
    records, kernels, activations, update = plan_and_update(model)
    with pytest.raises(TypeError, match="op kernel capsules"):
        train.EpochPlan(records, [act.RELU] * 2, activations, model.buffers_, 8, model.loss,
                        update)
    with pytest.raises(TypeError, match="activation kernel capsule"):
        train.EpochPlan(records, kernels, [layer_ops.DENSE] * 2, model.buffers_, 8,
                        model.loss, update)
    with pytest.raises(ValueError, match="at least one op"):
        train.EpochPlan(records[:0], [], [], model.buffers_, 8, model.loss, update)
    for batch_size in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            train.EpochPlan(records, kernels, activations, model.buffers_, batch_size,
                            model.loss, update)
    with pytest.raises(TypeError, match="OP_RECORD"):
        train.EpochPlan(np.zeros((2, 17)), kernels, activations, model.buffers_, 8,
                        model.loss, update)


@pytest.mark.parametrize("change, message", [
    (dict(labels=np.full(40, 3)), "labels must lie"),
    (dict(labels=np.full(40, -1)), "labels must lie"),
    (dict(labels=np.zeros(40, np.int32)), "labels must be"),
    (dict(order=np.array([0, 40])), "outside"),
    (dict(order=np.array([-1])), "outside"),
    (dict(order=np.zeros(3)), "order must be"),
    (dict(rates=np.ones(1)), "learning_rates needs"),
    (dict(rates=np.full(5, np.nan)), "finite"),
    (dict(X=np.ones((40, 5))), "columns"),
    (dict(X=np.ones((40, 6), np.float32)), "float64"),
    (dict(generator=np.random.RandomState(0)), "Generator"),
])
def test_epoch_run_checks_its_arguments(change, message):
    model = small_model()
    records, kernels, activations, update = plan_and_update(model)
    plan = train.EpochPlan(records, kernels, activations, model.buffers_, 8, model.loss, update)
    args = dict(X=np.ones((40, 6)), targets=None, labels=np.zeros(40, np.int64),
                order=np.arange(40), rates=np.full(5, 0.1), generator=np.random.default_rng())
    args.update(change)
    before = model.params_.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        plan.run(args["X"], args["targets"], args["labels"], args["order"], args["rates"],
                 args["generator"])
    np.testing.assert_array_equal(model.params_, before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("given", ["labels", "targets"])
def test_an_epoch_on_two_threads_gives_the_bits_of_one(dtype, given):
    # Batches of 8 of 40 shuffled rows: the threads copy parts of every batch
    # (and its targets) for the step.
    X, y = blobs(n=40)
    X = X.astype(dtype)
    runs = []
    for threads in (1, 2):
        model = small_model(O.Adam(lr=0.01), dtype)
        records, kernels, activations, update = plan_and_update(model)
        plan = train.EpochPlan(records, kernels, activations, model.buffers_, 8, model.loss,
                               update)
        labels = y.astype(np.int64) if given == "labels" else None
        targets = np.eye(3, dtype=dtype)[y] if given == "targets" else None
        totals = plan.run(X, targets, labels, np.random.default_rng(1).permutation(40),
                          np.full(5, 0.01), np.random.default_rng(2), threads)
        runs.append((totals, model.params_.copy()))
    assert runs[0][0] == runs[1][0]
    assert not np.array_equal(runs[0][1], small_model(O.Adam(lr=0.01), dtype).params_)
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_update_step_checks_its_arguments():
    model = small_model()
    opt = model.optimizer
    with pytest.raises(TypeError, match="fastnn optimizer"):
        UpdateStep(model.params_, model.grads_, object(), model.n_weights_)
    with pytest.raises(ValueError, match="shape"):
        UpdateStep(model.params_, model.grads_[:-1], opt, model.n_weights_)
    with pytest.raises(ValueError, match="n_weights"):
        UpdateStep(model.params_, model.grads_, opt, model.params_.size + 1)
    with pytest.raises(ValueError, match="clip_norm"):
        UpdateStep(model.params_, model.grads_, opt, 0, clip_norm=-1.0)
    update = UpdateStep(model.params_, model.grads_, opt, model.n_weights_)
    with pytest.raises(ValueError, match="lr"):
        update.update(float("nan"), model.rng)


def test_one_update_counts_steps_and_detects_non_finite_state():
    model = small_model(O.Adam(lr=0.1))
    update = UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_)
    model.grads_[:] = 1.0
    assert update.update(0.1, model.rng) == train.STATUS_OK and update.steps == 1
    model.grads_[0] = 1e200  # squares to ∞ in the second moment, not in the gradient
    assert update.update(0.1, model.rng) == train.STATUS_NONFINITE_UPDATE


def test_adding_a_kind_touches_no_central_table():
    # SiLU and Lion live in modules of their own; the registries find them.
    assert O.OPTIMIZERS["lion"] is O.Lion
    assert L.SiLU.kernels is silu.SILU
