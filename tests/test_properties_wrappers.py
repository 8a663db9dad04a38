"""Property tests of every public callable of fastnn_ext not covered by
test_properties_kernels.py: the dense and activation wrappers, the optimizer
kernels' Python entry, the compiled training step and plan, and the
constants and capsules.

The array examples are those of test_properties_kernels.py: shapes with 0
rows and 0 columns, mixed dtypes, strided and read-only arrays, outputs that
overlap inputs, NaN/±inf/huge entries and scalars in and out of range.  A
call with a fault must raise ValueError/TypeError naming an argument at
fault; a call without one must give what a NumPy transcription of the
formula gives (dense.pxd's, and activations.pxd's header).

Inputs that once crashed the interpreter through train.pyx, update.pyx or
layer_ops.pyx (uninitialised objects, records whose slices the kernels would
leave, int64 sums that wrapped, a plan initialised twice, more threads than
can start) run in a fresh interpreter below and must be refused.
"""

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn_ext
from fastnn_ext import activations as act
from fastnn_ext import augment as augment_kernels
from fastnn_ext import dense, layer_ops, optim, optim_lion, silu, train
from fastnn_ext import update as upd
from test_optimizers import ref_adam, ref_lion, ref_sgd
from test_properties_kernels import DTYPES, SETTINGS, Example, assert_matches, outcome

ROOT = Path(__file__).resolve().parent.parent

ELEMENTWISE = [act.IDENTITY, act.SIGMOID, act.TANH, act.RELU, act.LEAKY_RELU, silu.SILU]
NOT_ACTIVATIONS = [layer_ops.DENSE, 7, None, "relu", np.zeros(3)]
ALPHA = ([0.0, 0.01, 0.3, 1e300], [-0.1, -np.inf, np.inf, np.nan, "0.1", True, 10**400])


def draw_activation(draw):
    """An activation capsule, or (now and then) something that is not one."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from(NOT_ACTIVATIONS)), True
    return draw(st.sampled_from(ELEMENTWISE)), False


def scalar(ex, name, valid, invalid):
    """Example.scalar for values that may be strings, bools or huge ints."""
    value = ex.draw(st.sampled_from(valid) if ex.draw(st.integers(0, 5))
                    else st.sampled_from(invalid))
    if any(value is v for v in invalid) or (isinstance(value, float) and value != value):
        ex.faults.add(name)
    return value


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def activation_of(code, z, alpha, dtype):
    """f(z) by activations.pxd's header, element-wise in the dtype."""
    with np.errstate(all="ignore"):
        z = z.astype(dtype)
        a = dtype(alpha)
        if code is act.IDENTITY:
            return z
        if code is act.SIGMOID:
            return sigmoid(z)
        if code is act.TANH:
            return np.tanh(z)
        if code is act.RELU:
            return np.where(z > 0, z, dtype(0))
        if code is act.LEAKY_RELU:
            return np.where(z > 0, z, a * z)
        return z * sigmoid(z)                       # SiLU


def derivative_times(code, out, grad_out, z, alpha, dtype):
    """grad_out · f'(z) from the saved output a (and z for SiLU), in the dtype."""
    a, g = out.astype(dtype), grad_out.astype(dtype)
    with np.errstate(all="ignore"):
        if code is act.IDENTITY:
            return g
        if code is act.SIGMOID:
            return g * a * (1 - a)
        if code is act.TANH:
            return g * (1 - a * a)
        if code is act.RELU:
            return np.where(a > 0, g, dtype(0))
        if code is act.LEAKY_RELU:
            return np.where(a > 0, g, dtype(alpha) * g)
        s = sigmoid(z.astype(dtype))                # SiLU
        return g * (s * (1 + z.astype(dtype) * (1 - s)))


def product_scale(a, b):
    """The largest finite Σ|a_ik·b_kj|: the scale of a product's rounding."""
    with np.errstate(all="ignore"):
        terms = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    return np.abs(terms[np.isfinite(terms)]).max(initial=0.0)


# ------------------------------------------------------------------- dense

def widths():
    return st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5))


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), widths())
def test_dense_forward(data, dtype, shape):
    m, n_in, n_out = shape
    ex = Example(data.draw, dtype)
    x = ex.array("x", (m, n_in))
    ex.array("w", (n_in, n_out))
    ex.array("b", (n_out,))
    ex.array("out", (m, n_out), output=True)
    ex.alias([("out", "x"), ("out", "w"), ("out", "b")], allowed=())
    if n_in == 0 or n_out == 0:
        ex.faults.add("w")
    code, wrong = draw_activation(data.draw)
    if wrong or code is silu.SILU:           # SiLU's backward would need z
        ex.faults.add("activation")
    alpha = scalar(ex, "alpha", *ALPHA)
    a = ex.arrays
    x, w, b = a["x"].copy(), a["w"].copy(), a["b"].copy()
    outcome(ex, lambda: dense.forward(a["x"], a["w"], a["b"], a["out"], code, alpha))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        z = (x.astype(np.float64) @ w.astype(np.float64)).astype(dtype) + b
    assert_matches(a["out"], activation_of(code, z, alpha, dtype), dtype,
                   scale=product_scale(x, w) + np.abs(b[np.isfinite(b)]).max(initial=0))


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), widths(), st.booleans(), st.booleans())
def test_dense_backward(data, dtype, shape, with_grad_x, accumulate):
    m, n_in, n_out = shape
    ex = Example(data.draw, dtype)
    ex.array("x", (m, n_in))
    ex.array("w", (n_in, n_out))
    ex.array("grad_z", (m, n_out))
    ex.array("grad_w", (n_in, n_out), output=True)
    ex.array("grad_b", (n_out,), output=True)
    pairs = [("grad_w", "x"), ("grad_w", "w"), ("grad_w", "grad_z"), ("grad_b", "grad_z"),
             ("grad_b", "grad_w")]
    if with_grad_x:
        ex.array("grad_x", (m, n_in), output=True)
        pairs += [("grad_x", "x"), ("grad_x", "grad_z"), ("grad_x", "w"),
                  ("grad_x", "grad_w")]
    ex.alias(pairs, allowed=())
    if n_in == 0 or n_out == 0:
        ex.faults.add("w")
    flag = data.draw(st.sampled_from([accumulate] * 5 + [np.bool_(accumulate), 2, "yes",
                                                          None]))
    if not (flag is accumulate or isinstance(flag, np.bool_)):
        ex.faults.add("accumulate")
    a = ex.arrays
    x, w, gz = (a[k].astype(np.float64) for k in ("x", "w", "grad_z"))
    gw0, gb0 = a["grad_w"].astype(np.float64), a["grad_b"].astype(np.float64)
    outcome(ex, lambda: dense.backward(a["x"], a["w"], a["grad_z"], a["grad_w"],
                                       a["grad_b"], a.get("grad_x"), flag))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        grad_w = x.T @ gz + (gw0 if accumulate else 0)
        grad_b = gz.sum(axis=0) + (gb0 if accumulate else 0)
        grad_x = gz @ w.T
    add_w = np.abs(gw0[np.isfinite(gw0)]).max(initial=0) if accumulate else 0
    add_b = np.abs(gb0[np.isfinite(gb0)]).max(initial=0) if accumulate else 0
    assert_matches(a["grad_w"], grad_w, dtype, scale=product_scale(x.T, gz) + add_w)
    assert_matches(a["grad_b"], grad_b, dtype,
                   scale=product_scale(np.ones((1, m)), gz) + add_b)
    if with_grad_x:
        assert_matches(a["grad_x"], grad_x, dtype, scale=product_scale(gz, w.T))


# ------------------------------------------------------------- activations

def shapes():
    return st.tuples(st.integers(0, 5), st.integers(0, 5))


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes(), st.booleans())
def test_activation_forward(data, dtype, shape, with_bias):
    ex = Example(data.draw, dtype)
    ex.array("z", shape)
    ex.array("out", shape, output=True)
    pairs = [("out", "z")]
    if with_bias:
        ex.array("bias", (shape[1],))
        pairs.append(("out", "bias"))
    ex.alias(pairs, allowed=(("out", "z"),))
    code, wrong = draw_activation(data.draw)
    if wrong:
        ex.faults.add("activation")
    alpha = scalar(ex, "alpha", *ALPHA)
    a = ex.arrays
    z = a["z"].copy()
    bias = a.get("bias")
    outcome(ex, lambda: act.forward(a["z"], a["out"], code, alpha, bias))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        zb = z + bias if with_bias else z
    assert_matches(a["out"], activation_of(code, zb, alpha, dtype), dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes(), st.booleans())
def test_activation_backward(data, dtype, shape, with_z):
    ex = Example(data.draw, dtype)
    ex.array("out", shape)
    ex.array("grad_out", shape)
    ex.array("grad_in", shape, output=True)
    pairs = [("grad_in", "grad_out"), ("grad_in", "out")]
    if with_z:
        ex.array("z", shape)
        pairs.append(("grad_in", "z"))
    ex.alias(pairs, allowed=(("grad_in", "grad_out"),))
    code, wrong = draw_activation(data.draw)
    if wrong:
        ex.faults.add("activation")
    elif code is silu.SILU and not with_z:
        ex.faults.add("z")
    alpha = scalar(ex, "alpha", *ALPHA)
    a = ex.arrays
    z = a.get("z")
    if not ex.faults:
        expected = derivative_times(code, a["out"], a["grad_out"], z, alpha, dtype)
    outcome(ex, lambda: act.backward(a["out"], a["grad_out"], a["grad_in"], code, alpha, z))
    if not ex.faults:
        assert_matches(a["grad_in"], expected, dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_softmax(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("z", shape)
    ex.array("out", shape, output=True)
    ex.alias([("out", "z")], allowed=())
    a = ex.arrays
    z = a["z"].astype(dtype)
    outcome(ex, lambda: act.softmax(a["z"], a["out"]))
    if ex.faults or 0 in shape:
        return
    with np.errstate(all="ignore"):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        expected = e / e.sum(axis=1, keepdims=True, dtype=np.float64)
    assert_matches(a["out"], expected, dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_softmax_grad(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("out", shape, low=0.0)
    ex.array("grad_out", shape)
    ex.array("grad_in", shape, output=True)
    ex.alias([("grad_in", "grad_out"), ("grad_in", "out")], allowed=(("grad_in", "grad_out"),))
    a = ex.arrays
    p, g = a["out"].astype(dtype), a["grad_out"].astype(dtype)
    outcome(ex, lambda: act.softmax_grad(a["out"], a["grad_out"], a["grad_in"]))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        # The row sums in double, the element-wise product in the dtype (so
        # float32 overflows where the kernel does).
        p64, g64 = p.astype(np.float64), g.astype(np.float64)
        dot = (g64 * p64).sum(axis=1, keepdims=True).astype(dtype)
        expected = p * (g - dot)
        terms = np.abs(p64) * (np.abs(g64) + np.abs(g64 * p64).sum(axis=1, keepdims=True))
    assert_matches(a["grad_in"], expected, dtype,
                   scale=np.abs(terms[np.isfinite(terms)]).max(initial=0.0))


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_prelu(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("z", shape)
    ex.array("slope", (shape[1],))
    ex.array("out", shape, output=True)
    ex.alias([("out", "z"), ("out", "slope")], allowed=())
    a = ex.arrays
    z, slope = a["z"].astype(dtype), a["slope"].astype(dtype)
    outcome(ex, lambda: act.prelu(a["z"], a["slope"], a["out"]))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        expected = np.where(z > 0, z, slope * z)
    assert_matches(a["out"], expected, dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_prelu_grad(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("z", shape)
    ex.array("slope", (shape[1],))
    ex.array("grad_out", shape)
    ex.array("grad_in", shape, output=True)
    ex.array("grad_slope", (shape[1],), output=True)
    ex.alias([("grad_in", "grad_out"), ("grad_in", "z"), ("grad_slope", "slope"),
              ("grad_slope", "grad_out"), ("grad_slope", "z"), ("grad_slope", "grad_in")],
             allowed=(("grad_in", "grad_out"),))
    a = ex.arrays
    z, slope, g = (a[k].astype(dtype) for k in ("z", "slope", "grad_out"))
    outcome(ex, lambda: act.prelu_grad(a["z"], a["slope"], a["grad_out"], a["grad_in"],
                                       a["grad_slope"]))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        # The kernel's test is z > 0; a NaN z takes the other branch.
        grad_in = np.where(z > 0, g, slope * g)
        grad_slope = np.where(z > 0, 0.0, g.astype(np.float64) * z).sum(axis=0)
        terms = np.abs(np.where(z > 0, 0.0, g.astype(np.float64) * z)).sum(axis=0)
    assert_matches(a["grad_in"], grad_in, dtype)
    assert_matches(a["grad_slope"], grad_slope, dtype,
                   scale=np.abs(terms[np.isfinite(terms)]).max(initial=0.0))


@given(st.one_of(st.sampled_from(ELEMENTWISE + NOT_ACTIVATIONS + [layer_ops.SOFTMAX]),
                 st.integers(), st.text(max_size=3)))
def test_needs_input(activation):
    if any(activation is code for code in ELEMENTWISE):
        assert act.needs_input(activation) is (activation is silu.SILU)
    else:
        with pytest.raises(TypeError, match=r"\bactivation\b"):
            act.needs_input(activation)


# --------------------------------------------------------- optimizer kernels

# (kernel, hyper-parameters, reference, keyword arguments of the reference)
OPTIMIZERS = [
    (optim.SGD, dict(momentum=0.0, dampening=0.0, weight_decay=0.1, nesterov=0),
     ref_sgd, dict(weight_decay=0.1)),
    (optim.SGD, dict(momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=1),
     ref_sgd, dict(momentum=0.9, nesterov=True)),
    (optim.ADAM, dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.2, amsgrad=0,
                      decoupled=0), ref_adam, dict(weight_decay=0.2)),
    (optim.ADAM, dict(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.3, amsgrad=1,
                      decoupled=1), ref_adam,
     dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3, amsgrad=True, decoupled=True)),
    (optim_lion.LION, dict(beta1=0.9, beta2=0.99, weight_decay=0.5), ref_lion,
     dict(weight_decay=0.5)),
]


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), st.integers(0, 9),
       st.sampled_from(range(len(OPTIMIZERS))))
def test_optimizer_step(data, dtype, n, which):
    kernel, values, reference, kwargs = OPTIMIZERS[which]
    hyper = kernel.hyper(**values)
    slots = kernel.n_slots(hyper)
    ex = Example(data.draw, dtype)
    ex.special = False   # the references' NaN handling is NumPy's, not the kernels'
    ex.array("param", (n,), output=True)
    ex.array("grad", (n,))
    ex.array("state", (slots, n), output=True)
    ex.alias([("grad", "param"), ("state", "param"), ("state", "grad")], allowed=())
    n_decay = scalar(ex, "n_decay", [0, n // 2, n], [-1, n + 1, 2**70, 1.5, True, "1"])
    lr = scalar(ex, "lr", [0.0, 0.01, 0.5], [np.nan, np.inf, 10**400, "0.1"])
    step = scalar(ex, "step", [1], [0, -2**70, 2**70, 1.0, None])
    if data.draw(st.integers(0, 9)) == 0:
        other = optim.ADAGRAD if kernel is not optim.ADAGRAD else optim.SGD
        hyper = other.hyper(**{f: 0.1 if other.hyper_dtype[f].kind == "f" else 0
                               for f in other.hyper_dtype.names})
        ex.faults.add("hyper")
    a = ex.arrays
    if a["state"].flags.writeable:
        a["state"][...] = 0   # every slot starts at zero (optim.pxd)
    theta, g = a["param"].astype(np.float64), a["grad"].astype(np.float64)
    outcome(ex, lambda: kernel.step(hyper, a["param"], a["grad"], a["state"], n_decay, lr,
                                    step))
    if ex.faults:
        return
    expected, _ = reference(theta, [g], [lr], n_decay=n_decay, **kwargs)
    assert_matches(a["param"], expected, dtype)


def is_finite_real(value):
    """A real number (not a bool) that a double holds as a finite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:
        return False


@given(st.sampled_from([optim.SGD, optim.ADAGRAD, optim.RMSPROP, optim.ADADELTA, optim.ADAM,
                        optim_lion.LION]), st.data())
def test_optimizer_hyper(kernel, data):
    fields = kernel.hyper_dtype.names
    values = {f: (0.5 if kernel.hyper_dtype[f].kind == "f" else 1) for f in fields}
    field = data.draw(st.sampled_from(fields))
    value = data.draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                st.integers(-2**70, 2**70), st.booleans(), st.none(),
                                st.text(max_size=2), st.just(np.zeros(2))))
    values[field] = value
    real = kernel.hyper_dtype[field].kind == "f"
    if real:
        ok = is_finite_real(value)
    else:
        ok = isinstance(value, bool) or (isinstance(value, int) and -2**63 <= value < 2**63)
    if not ok:
        with pytest.raises((TypeError, ValueError), match=rf"\b{field}\b"):
            kernel.hyper(**values)
        return
    record = kernel.hyper(**values)
    assert record[field] == (float(value) if real else int(value))
    assert kernel.n_slots(record) >= 0


# ------------------------------------------------ training step and plan

def small_model(dtype=np.float64, batch=4, layers=None):
    from fastnn import Sequential
    from fastnn import layers as L
    from fastnn import optimizers as O
    model = Sequential(layers or [L.Dense(4, 3), L.ReLU(), L.Dense(3, 2)], loss="mse",
                       optimizer=O.SGD(0.1), dtype=dtype)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4)).astype(dtype)
    y = rng.standard_normal((8, 2)).astype(dtype)
    model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
    return model, X, y


def plan_parts(model, batch=4):
    from fastnn.plan import PlanBuilder
    records, kernels, activations = PlanBuilder(model, batch).records(model._loss_layers)
    update = upd.UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_)
    return records, kernels, activations, update


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-2**62, 2**62), st.sampled_from([0, -1, 1e308, -0.0]))


def finite_non_negative(value):
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and np.isfinite(value) and value >= 0)


@SETTINGS
@given(st.sampled_from(["l2", "l1", "clip_value", "clip_norm", "noise"]), NUMBERS)
def test_update_step_penalties(name, value):
    model, _, _ = small_model()
    kwargs = {name: (value, 0.5) if name == "noise" else value}
    if finite_non_negative(value):
        upd.UpdateStep(model.params_, model.grads_, model.optimizer, 0, **kwargs)
        return
    with pytest.raises(ValueError, match=rf"\b{'noise eta' if name == 'noise' else name}\b"):
        upd.UpdateStep(model.params_, model.grads_, model.optimizer, 0, **kwargs)


@SETTINGS
@given(st.sampled_from(["params", "grads"]),
       st.sampled_from(["float32", "int64", "2-D", "short", "strided", "read-only", "list"]))
def test_update_step_arrays(name, fault):
    model, _, _ = small_model()
    arrays = {"params": model.params_.copy(), "grads": model.grads_.copy()}
    a = arrays[name]
    arrays[name] = {"float32": lambda: a.astype(np.float32),
                    "int64": lambda: a.astype(np.int64),
                    "2-D": lambda: a.reshape(1, -1),
                    "short": lambda: a[:-1],
                    "strided": lambda: np.repeat(a, 2)[::2],
                    "read-only": lambda: np.frombuffer(a.tobytes(), a.dtype),
                    "list": lambda: list(a)}[fault]()
    # A mismatch may be reported against the array compared with.
    with pytest.raises((TypeError, ValueError), match=r"\b(params|grads)\b"):
        upd.UpdateStep(arrays["params"], arrays["grads"], model.optimizer, 0)


@SETTINGS
@given(NUMBERS)
def test_update_step_update_learning_rate(lr):
    model, _, _ = small_model()
    update = upd.UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_)
    params = model.params_.copy()
    model.grads_[...] = 1.0
    if not finite_non_negative(lr):
        with pytest.raises(ValueError, match=r"\blr\b"):
            update.update(lr, np.random.default_rng(0))
        np.testing.assert_array_equal(model.params_, params)
        return
    assert update.update(lr, np.random.default_rng(0)) == train.STATUS_OK
    # plain SGD without penalties: θ ← θ − lr·g
    np.testing.assert_allclose(model.params_, params - float(lr) * 1.0, rtol=1e-15,
                               atol=1e-300)


def record_fault(draw, records, n_params):
    """A copy of records with one field of one record set to an awkward value."""
    records = records.copy()
    k = draw(st.integers(0, records.shape[0] - 1))
    field = draw(st.sampled_from(["in_size", "out_size", "input", "output", "saved",
                                  "saved_size", "weight", "weight_size", "bias",
                                  "bias_size", "state", "state_size"]))
    records[k][field] = draw(st.sampled_from([-2, -1, 0, 1, 10**6, 2**40, n_params,
                                              n_params + 1]))
    return records


@SETTINGS
@given(st.data())
def test_check_records_refuses_or_keeps_every_region_in_its_buffer(data):
    model, _, _ = small_model()
    records, _, _, _ = plan_parts(model)
    n_params, capacity = model.params_.size, 4
    bad = record_fault(data.draw, records, n_params)
    try:
        work_size = train.EpochPlan.check_records(bad, capacity, n_params, 0)
    except ValueError as error:
        assert "op " in str(error)
        return
    # Accepted: every region the record names lies inside its buffer.
    for r in bad:
        assert 0 <= r["input"] and r["input"] + capacity * r["in_size"] <= work_size
        assert 0 <= r["output"] and r["output"] + capacity * r["out_size"] <= work_size
        for name, limit in (("weight", n_params), ("bias", n_params), ("state", 0)):
            if r[name] != -1 or r[name + "_size"] != 0:
                assert 0 <= r[name] and r[name] + r[name + "_size"] <= limit


@SETTINGS
@given(st.sampled_from(["X", "targets", "order", "learning_rates", "sample_weight",
                        "labels"]),
       st.sampled_from(["float32", "int32", "1-D", "short", "strided", "nan", "negative",
                        "out of range", "none"]))
def test_epoch_plan_run_arguments(name, fault):
    model, X, y = small_model()
    records, kernels, activations, update = plan_parts(model)
    plan = train.EpochPlan(records, kernels, activations, model.buffers_, 4, model.loss,
                           update)
    args = {"X": X.copy(), "targets": y.copy(), "labels": None,
            "order": np.arange(8, dtype=np.int64), "learning_rates": np.full(2, 0.1),
            "sample_weight": np.ones(8)}
    a = args[name] if args[name] is not None else np.zeros(8, np.int64)
    changed = {
        "float32": lambda: a.astype(np.float32),
        "int32": lambda: a.astype(np.int32),
        "1-D": lambda: a.ravel()[:1],
        "short": lambda: a[:1],
        "strided": lambda: np.repeat(a, 2, axis=-1)[..., ::2],
        "nan": lambda: np.full(a.shape, np.nan) if a.dtype.kind == "f" else a - 100,
        "negative": lambda: -np.abs(a) - 1,
        "out of range": lambda: a + 10**6,
        "none": lambda: None,
    }[fault]()
    args[name] = changed
    if name == "labels" and changed is not None:
        args["targets"] = None
    params = model.params_.copy()
    try:
        result = plan.run(args["X"], args["targets"], args["labels"], args["order"],
                          args["learning_rates"], np.random.default_rng(0),
                          sample_weight=args["sample_weight"])
    except (TypeError, ValueError) as error:
        message = str(error)
        assert any(word in message for word in (name, "labels", "targets", "learning",
                                                "X")), message
        np.testing.assert_array_equal(model.params_, params)
        return
    loss_sum, n_correct, n_steps, status = result
    assert 0 <= n_steps <= 2 and status in (train.STATUS_OK, train.STATUS_NONFINITE_LOSS,
                                            train.STATUS_NONFINITE_GRADIENT,
                                            train.STATUS_NONFINITE_UPDATE)


def test_step_threads_never_exceeds_what_it_is_given():
    model, _, _ = small_model()
    records, kernels, activations, update = plan_parts(model)
    plan = train.EpochPlan(records, kernels, activations, model.buffers_, 4, model.loss,
                           update)
    for n in (-5, 0, 1, 2, 64):
        # at least one, and never more than OpenMP's limit
        assert plan.step_threads(n, False) == max(1, min(n, train.max_threads()))
        assert 1 <= plan.step_threads(n, True) <= max(1, n)


# ----------------------------------------------------------- image rotation

def rotation_reference(images, cos, sin):
    """augment.pyx's loop in NumPy: bilinear reads, 0 outside, arithmetic in double."""
    m, height, width = images.shape
    padded = np.zeros((m, height + 4, width + 4))
    padded[:, 2:-2, 2:-2] = images
    y = (np.arange(height) - (height - 1) / 2)[None, :, None]
    x = (np.arange(width) - (width - 1) / 2)[None, None, :]
    c, s = cos[:, None, None], sin[:, None, None]
    sy = c * y + (s * x + (height - 1) / 2)
    sx = (c * x + (width - 1) / 2) - s * y
    top, left = np.floor(sy), np.floor(sx)
    wy, wx = sy - top, sx - left
    r = np.clip(top, -2, height).astype(int) + 2
    k = np.clip(left, -2, width).astype(int) + 2
    i = np.arange(m)[:, None, None]
    with np.errstate(all="ignore"):
        upper = padded[i, r, k] + wx * (padded[i, r, k + 1] - padded[i, r, k])
        lower = padded[i, r + 1, k] + wx * (padded[i, r + 1, k + 1] - padded[i, r + 1, k])
        return (upper + wy * (lower - upper)).astype(images.dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES),
       st.tuples(st.integers(0, 3), st.integers(1, 5), st.integers(1, 5)))
def test_image_rotation(data, dtype, shape):
    ex = Example(data.draw, dtype)
    images = ex.array("images", shape)
    out = ex.array("out", shape, output=True)
    ex.alias([("out", "images")], allowed=())
    angles = {}
    for name in ("cos", "sin"):
        values = ex.rng.uniform(-1.5, 1.5, shape[0])
        fault = data.draw(st.sampled_from([None] * 6 + ["dtype", "length", "nan"]))
        if fault == "dtype":
            values = values.astype(np.float32)
        elif fault == "length":
            values = np.append(values, 0.5)
        elif fault == "nan" and values.size:
            values[0] = data.draw(st.sampled_from([np.nan, np.inf]))
        else:
            fault = None
        if fault is not None:
            ex.faults.add(name)
        angles[name] = values
    out = ex.arrays["out"]
    images = ex.arrays["images"]
    if images.dtype != dtype or not images.flags.c_contiguous:
        ex.faults.add("images")
    result = outcome(ex, lambda: augment_kernels.rotate(images, angles["cos"], angles["sin"],
                                                        out), "out", "images")
    if not ex.faults:
        assert result is None
        assert_matches(out, rotation_reference(images, angles["cos"], angles["sin"]), dtype)


# ------------------------------- inputs that once crashed the interpreter, refused

def crashes(code):
    """Run code in a fresh interpreter from the project root; the exit status."""
    prelude = ("import numpy as np\nimport sys\nsys.path.insert(0, 'tests')\n"
               "from test_properties_wrappers import small_model, plan_parts\n"
               "from fastnn_ext import train, layer_ops\nfrom fastnn_ext import update as upd\n")
    done = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, timeout=120,
                          capture_output=True, text=True)
    return done.returncode


REFUSE = ("\ntry:\n    {call}\nexcept (TypeError, ValueError):\n    pass\n")

CRASHES = {
    # an UpdateStep made without __init__ has a NULL optimizer table
    "UpdateStep.__new__ then update": REFUSE.format(
        call="upd.UpdateStep.__new__(upd.UpdateStep).update(0.1, "
             "np.random.default_rng())"),
    # an EpochPlan made without __init__: `update` is None, read as an UpdateStep
    "EpochPlan.__new__ then run": REFUSE.format(
        call="train.EpochPlan.__new__(train.EpochPlan).run(np.zeros((1, 1)), "
             "np.zeros((1, 1)), None, np.zeros(1, np.int64), [0.1], "
             "np.random.default_rng())"),
    # a dropout op's mask goes to `saved` whatever saved_size says
    "dropout record with saved far outside the workspace": """
model, X, y = small_model()
records, kernels, activations, update = plan_parts(model)
r = records.copy(); kernels = list(kernels); kernels[1] = layer_ops.DROPOUT
r[1]['weight'] = r[1]['bias'] = -1; r[1]['weight_size'] = r[1]['bias_size'] = 0
r[1]['out_size'] = 3; r[1]['rate'] = 0.5; r[1]['saved'] = 10**9; r[1]['saved_size'] = 0
try:
    plan = train.EpochPlan(r, kernels, activations, model.buffers_, 4, model.loss, update)
    plan.run(X, np.zeros((8, 3)), None, np.arange(8), np.full(2, 0.1),
             np.random.default_rng())
except (TypeError, ValueError):
    pass
""",
    # start + size overflows int64 in check_records and passes the bound check
    "weight slice whose end overflows int64": """
model, X, y = small_model()
records, kernels, activations, update = plan_parts(model)
r = records.copy(); r[1]['weight'] = 2**60; r[1]['weight_size'] = 2**63 - 2**60 + 5
try:
    plan = train.EpochPlan(r, kernels, activations, model.buffers_, 4, model.loss, update)
    plan.run(X, y, None, np.arange(8), np.full(2, 0.1), np.random.default_rng())
except (TypeError, ValueError):
    pass
""",
    # __init__ called again and failing half-way leaves tables partly filled
    "EpochPlan.__init__ again, failing on an activation": """
model, X, y = small_model()
records, kernels, activations, update = plan_parts(model)
plan = train.EpochPlan(records, kernels, activations, model.buffers_, 4, model.loss, update)
try:
    plan.__init__(records[:1], kernels[:1], [object()], model.buffers_, 4, model.loss, update)
except TypeError:
    pass
plan.run(X, y, None, np.arange(8), np.full(2, 0.1), np.random.default_rng())
""",
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_train_does_not_crash(case):
    assert crashes(CRASHES[case]) == 0


def test_update_with_too_many_threads_does_not_abort():
    # An update of >= 2**15 parameters starts n_threads OpenMP threads, with
    # no upper bound; under a 3 GB address-space limit 4000 threads cannot
    # all start and libgomp ends the process ("Thread creation failed").
    code = """
import resource
from fastnn import optimizers as O
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
n = 1 << 16
params, grads = np.zeros(n), np.ones(n)
opt = O.Adam(0.1); opt.bind(n, np.float64, n)
update = upd.UpdateStep(params, grads, opt, n)
try:
    update.update(0.1, np.random.default_rng(), 4000)
except (TypeError, ValueError):
    pass
"""
    assert crashes(code) == 0


def dense_record_changed(**fields):
    """A plan's records with the second (dense) op's fields set to these."""
    model, X, y = small_model()
    records, kernels, activations, update = plan_parts(model)
    records = records.copy()
    for name, value in fields.items():
        records[1][name] = value
    return model, records, kernels, activations, update


@pytest.mark.parametrize("fields", [
    dict(weight=-1, weight_size=0),            # params + (−1): before the buffer
    dict(weight_size=1),                       # W needs in_size·out_size entries
], ids=["no weight slice", "weight slice of 1"])
def test_epoch_plan_refuses_a_dense_op_without_its_weights(fields):
    model, records, kernels, activations, update = dense_record_changed(**fields)
    if "weight_size" in fields and fields["weight_size"] == 1:
        records[1]["weight"] = model.params_.size - 1
    with pytest.raises(ValueError, match=r"\bop 1\b"):
        train.EpochPlan(records, kernels, activations, model.buffers_, 4, model.loss, update)


def test_the_crash_harness_reports_a_clean_exit():
    # The harness itself: a refused call exits 0.
    assert crashes(REFUSE.format(call="upd.UpdateStep(None, None, None, 0)")) == 0


WRONG_ERRORS = [
    # (what, call) — each raises something other than a named ValueError/TypeError
    ("n_weights=1.5", lambda m, p: upd.UpdateStep(m.params_, m.grads_, m.optimizer, 1.5),
     "n_weights"),
    ("noise of one value", lambda m, p: upd.UpdateStep(m.params_, m.grads_, m.optimizer, 0,
                                                         noise=(1.0,)), "noise"),
    ("check_records of no records",
     lambda m, p: train.EpochPlan.check_records(np.zeros(0, train.OP_RECORD), 4, 10, 0),
     "records"),
    ("loss=None", lambda m, p: train.EpochPlan(*p[:3], m.buffers_, 4, None, p[3]), "loss"),
    ("n_threads='2'", lambda m, p: p[3].update(0.1, np.random.default_rng(), "2"),
     "n_threads"),
    ("lr=10**400", lambda m, p: p[3].update(10**400, np.random.default_rng()), "lr"),
    ("learning_rates of strings",
     lambda m, p: train.EpochPlan(*p[:3], m.buffers_, 4, m.loss, p[3]).run(
         np.zeros((8, 4)), np.zeros((8, 2)), None, np.arange(8), ["a", "b"],
         np.random.default_rng()), "learning_rates"),
    ("batchnorm_saved_size(-5, 3)", lambda m, p: layer_ops.batchnorm_saved_size(-5, 3),
     "width"),
    ("batchnorm_saved_size(2**62, 2**62)",
     lambda m, p: layer_ops.batchnorm_saved_size(2**62, 2**62), "width"),
]


@pytest.mark.parametrize("case", WRONG_ERRORS, ids=lambda c: c[0])
def test_train_names_the_argument(case):
    _, call, name = case
    model, _, _ = small_model()
    with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
        call(model, plan_parts(model))


def test_update_step_refuses_grads_that_are_params():
    model, _, _ = small_model()
    with pytest.raises(ValueError, match=r"\bgrads\b"):
        upd.UpdateStep(model.params_, model.params_, model.optimizer, 0)


# ------------------------------------------------------------------ the sweep

#: every public callable of every fastnn_ext module, and the test that sweeps it
SWEPT = {
    "augment": {"rotate"},
    "activations": {"forward", "backward", "softmax", "softmax_grad", "prelu",
                    "prelu_grad", "needs_input"},
    "batchnorm": {"forward_train", "forward_eval", "backward", "backward_eval"},
    "dense": {"forward", "backward", "small_gemm_available"},
    # product: test_small_gemm.py's property test; the others: test_calibration.py
    "gemm_choice": {"set_choice", "set_threads", "get_choice", "chosen", "vector_bits",
                    "product", "time_product"},
    "dropout": {"forward", "backward"},
    "gradients": {"weight_penalty", "clip_by_global_norm", "clip_by_value",
                  "gaussian_noise"},
    "infer": {"InferencePlan", "vectorized", "vector_bits"},  # swept in test_inference.py
    "layer_ops": {"batchnorm_saved_size"},
    "losses": {"loss_grad", "correct"},
    "optim": {"OptimizerKernel"},
    "optim_lion": set(),
    "silu": set(),
    "train": {"EpochPlan", "max_threads"},
    "update": {"UpdateStep", "max_threads"},
}


def public_names(module):
    return {n for n in dir(module) if not n.startswith("_")
            and not isinstance(getattr(module, n), type(np))}


def test_every_public_callable_is_swept():
    modules = sorted(m.name for m in pkgutil.iter_modules(fastnn_ext.__path__)
                     if not m.name.startswith("_"))  # _cyutility: Cython's shared runtime
    assert sorted(SWEPT) == modules
    for name in modules:
        module = importlib.import_module(f"fastnn_ext.{name}")
        callables = {n for n in public_names(module) if callable(getattr(module, n))
                     and not isinstance(getattr(module, n), optim.OptimizerKernel)}
        assert callables == SWEPT[name], name


def test_the_rest_are_constants_or_capsules():
    capsule = type(act.RELU)
    for name in sorted(SWEPT):
        module = importlib.import_module(f"fastnn_ext.{name}")
        for attr in sorted(public_names(module) - SWEPT[name]):
            value = getattr(module, attr)
            names = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
            assert names or isinstance(value, (capsule, int, np.dtype, optim.OptimizerKernel)), \
                f"{name}.{attr} is a {type(value).__name__}"


def test_argumentless_functions():
    assert dense.small_gemm_available() in (True, False)
    assert isinstance(train.max_threads(), int) and train.max_threads() >= 1
    with pytest.raises(TypeError):
        dense.small_gemm_available(1)


@given(st.one_of(st.integers(-10, 10), st.integers(2**62, 2**62 + 3)),
       st.integers(0, 1000))
def test_batchnorm_saved_size_is_the_layout(width, rows):
    # x̂ for `rows` rows, then the batch mean and 1/σ: (rows + 2)·width.
    if 1 <= width < 2**31 and 1 <= rows < 2**31:
        assert layer_ops.batchnorm_saved_size(width, rows) == (rows + 2) * width
    else:
        with pytest.raises(ValueError, match=r"\b(width|rows)\b"):
            layer_ops.batchnorm_saved_size(width, rows)


def test_more_threads_than_openmp_allows_start_no_more():
    model, _, _ = small_model()
    update = plan_parts(model)[3]
    model.grads_[:] = 1
    assert update.update(0.1, np.random.default_rng(), 2**40) == train.STATUS_OK


@given(st.one_of(st.text(max_size=3), st.none(), st.just(object()), st.integers()),
       st.sampled_from(["f8", [("a", "f8")], "i8"]))
def test_optimizer_kernel_constructor(kernels, hyper_dtype):
    with pytest.raises(TypeError, match=r"\bkernels\b"):
        optim.OptimizerKernel("x", kernels, hyper_dtype)
