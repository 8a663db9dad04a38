"""Property tests of every public kernel wrapper of fastnn_ext.losses,
batchnorm, dropout and gradients.

Each example draws shapes (0 rows and 0 columns included), a dtype per
array (mostly one, sometimes mixed), layouts (contiguous, strided,
read-only outputs), outputs that overlap inputs, NaN/±inf/huge entries and
scalar parameters in and out of range.  The example knows which arguments
are at fault: a call with a fault must raise ValueError/TypeError naming one
of them, and a call without one must return what a NumPy transcription of
the formula gives (NaN and ±inf where the transcription has them, finite
values within a tolerance by dtype).
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn_ext import batchnorm, dropout, gradients, losses

DTYPES = [np.float32, np.float64]
# Relative to the largest finite magnitude of the transcription's result.
TOLERANCE = {np.float32: 3e-5, np.float64: 1e-11}
# Huge but such that products of two entries stay finite in the dtype.
HUGE = {np.float32: 1e15, np.float64: 1e100}

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------ the examples

class Example:
    """Arrays for one call, built from draws, and the faults among them."""

    def __init__(self, draw, dtype):
        self.draw = draw
        self.dtype = dtype
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        self.special = draw(st.booleans())
        self.faults = set()
        self.arrays = {}
        self.shape_fault = False

    def values(self, shape, dtype, low=None):
        a = 2 * self.rng.standard_normal(shape)
        if low is not None:
            a = low + np.abs(a)
        if self.special and a.size and self.draw(st.booleans()):
            count = int(self.rng.integers(1, a.size + 1))
            where = self.rng.choice(a.size, count, replace=False)
            huge = HUGE[dtype]
            a.flat[where] = self.rng.choice([np.nan, np.inf, -np.inf, huge, -huge], count)
        return a

    def array(self, name, shape, output=False, low=None, faults=True):
        """An array for argument `name`; with faults, maybe of another dtype,
        strided, of another shape or (for outputs) read-only.  The first
        array's dtype and shape are the call's: they are never changed."""
        dtype, layout = self.dtype, "plain"
        if faults:
            if self.arrays and self.draw(st.integers(0, 9)) == 0:
                dtype = np.float64 if dtype == np.float32 else np.float32
            layout = self.draw(st.sampled_from(["plain"] * 6 + ["strided", "shape"]
                                               + (["readonly"] if output else [])))
        if layout == "shape" and not self.arrays:
            layout = "plain"  # the first array's shape is the call's
        if layout == "shape":
            shape = tuple(s + self.draw(st.integers(1, 2)) for s in shape)
            # A size mismatch may be reported against the array compared with.
            self.shape_fault = True
        a = self.values(shape, dtype, low).astype(dtype)
        if layout == "strided" and a.ndim:
            wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype)
            wide[..., ::2] = a
            a = wide[..., ::2]
        if layout == "readonly":
            a.flags.writeable = False
        if (dtype != self.dtype or layout == "shape" or not a.flags.c_contiguous
                or (output and not a.flags.writeable)):
            self.faults.add(name)
        self.arrays[name] = a
        return a

    def alias(self, pairs, allowed):
        """Maybe replace one output of `pairs` (output, input) by the input
        itself or by a view overlapping it; `allowed` lists the pairs a
        kernel may run in place on the identical array."""
        if not pairs or not self.draw(st.integers(0, 3)) == 0:
            return
        out, inp = self.draw(st.sampled_from(pairs))
        source = self.arrays[inp]
        if out in self.faults or inp in self.faults or source.size == 0:
            return
        target = self.arrays[out]
        if self.draw(st.booleans()) and target.shape == source.shape:
            self.arrays[out] = source
            if (out, inp) not in allowed:
                self.faults.add(out)
            return
        # A view of the same buffer shifted by 1 to size − 1 elements, so
        # that the two overlap without being the same array: always a fault.
        if source.size < 2 or target.size == 0 or target.dtype != source.dtype:
            return
        flat = np.zeros(source.size + target.size, source.dtype)
        flat[:source.size] = source.ravel()
        self.arrays[inp] = flat[:source.size].reshape(source.shape)
        shift = int(self.rng.integers(1, source.size))
        view = flat[shift:shift + target.size].reshape(target.shape)
        if True:
            view[...] = target
            self.arrays[out] = view
            self.faults.add(out)

    def scalar(self, name, valid, invalid):
        value = self.draw(st.sampled_from(valid) if self.draw(st.integers(0, 5))
                          else st.sampled_from(invalid))
        if value in invalid or value != value:
            self.faults.add(name)
        return value


def outcome(example, call, *names_in_message):
    """Run the call; with faults it must raise naming one, else return."""
    if example.faults:
        with pytest.raises((ValueError, TypeError)) as error:
            call()
        message = str(error.value)
        named = example.faults | set(names_in_message)
        if example.shape_fault:
            named |= set(example.arrays)
        assert any(re.search(rf"\b{re.escape(n)}\b", message) for n in named), (
            f"{message!r} names none of {sorted(example.faults)}")
        return None
    return call()


def assert_matches(actual, expected, dtype, scale=None):
    """Same NaN and ±inf entries; finite entries within the dtype's tolerance."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf])
    finite = np.isfinite(expected)
    assert np.isfinite(actual[finite]).all()
    if scale is None or not np.isfinite(scale):
        scale = np.abs(expected[finite]).max(initial=0.0)
    scale = max(scale, 1.0)
    error = np.abs(actual[finite] - expected[finite]).max(initial=0.0) / scale
    assert error <= TOLERANCE[dtype], f"relative error {error:.3g}"


def shapes(min_rows=0):
    return st.tuples(st.integers(min_rows, 5), st.integers(0, 5))


# ------------------------------------------------------------------ losses

def loss_reference(code, z, t, scale, dtype):
    """The formulas of losses.pxd, element-wise in the dtype, sums in double."""
    z = z.astype(dtype)
    t = t.astype(dtype)
    s = dtype(scale)
    n = z.shape[1]
    with np.errstate(all="ignore"):
        if code in (losses.MSE, losses.QUADRATIC):
            diff = z - t
            total = float((diff.astype(np.float64) ** 2).sum())
            if code == losses.MSE:
                return total / n, dtype(2.0 * scale / n) * diff
            return 0.5 * total, s * diff
        if code == losses.SIGMOID_CROSS_ENTROPY:
            e = np.exp(-np.abs(z))
            terms = np.maximum(z, 0) - z * t + np.log1p(e)
            sig = np.where(z >= 0, dtype(1), e) / (1 + e)
            return float(terms.astype(np.float64).sum()), s * (sig - t)
        top = z.max(axis=1, keepdims=True)
        e = np.exp(z - top)
        sum_exp = e.sum(axis=1, keepdims=True, dtype=dtype)
        lse = top + np.log(sum_exp)
        terms = np.where(t != 0, t.astype(np.float64) * (lse - z).astype(np.float64), 0.0)
        mass = t.astype(np.float64).sum(axis=1, keepdims=True)
        weight = (mass / sum_exp).astype(dtype)
        return float(terms.sum()), s * (weight * e - t)


CODES = [losses.MSE, losses.QUADRATIC, losses.SOFTMAX_CROSS_ENTROPY,
         losses.SIGMOID_CROSS_ENTROPY]


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes(), st.sampled_from(CODES),
       st.booleans())
def test_loss_grad(data, dtype, shape, code, with_grad):
    ex = Example(data.draw, dtype)
    low = 0.0 if code == losses.SOFTMAX_CROSS_ENTROPY else None
    output = ex.array("output", shape)
    ex.array("targets", shape, low=low)
    if with_grad:
        ex.array("grad", shape, output=True)
        ex.alias([("grad", "output"), ("grad", "targets")], allowed=())
    if shape[1] == 0 and "output" not in ex.faults:
        ex.faults.add("output")
    scale = ex.scalar("scale", [1.0, 0.25, 1 / 3], [np.nan, np.inf, -np.inf])
    a = ex.arrays
    grad = a.get("grad")
    before = None if grad is None or not grad.flags.writeable else grad.copy()
    total = outcome(ex, lambda: losses.loss_grad(code, a["output"], a["targets"],
                                                 grad, scale))
    if ex.faults:
        if before is not None:
            np.testing.assert_array_equal(grad, before)  # nothing written
        return
    if shape[0] == 0:
        assert total == 0.0
        return
    want_total, want_grad = loss_reference(code, a["output"], a["targets"], scale, dtype)
    magnitude = float(np.abs(np.asarray(want_total)))
    assert_matches(total, want_total, dtype, scale=magnitude * shape[0] * shape[1])
    if with_grad:
        assert_matches(grad, want_grad, dtype)
    del output


def correct_reference(output, targets, threshold):
    m, n = output.shape
    if m == 0 or n == 0:
        return 0
    hits = 0
    for i in range(m):
        if n == 1:
            hits += (output[i, 0] > threshold) == (targets[i, 0] > 0.5)
            continue
        best_out = best_t = 0
        for j in range(1, n):  # the first largest; NaN never wins
            if output[i, j] > output[i, best_out]:
                best_out = j
            if targets[i, j] > targets[i, best_t]:
                best_t = j
        hits += best_out == best_t
    return hits


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_correct(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("output", shape)
    ex.array("targets", shape)
    threshold = ex.scalar("threshold", [0.0, 0.5], [np.nan, np.inf])
    a = ex.arrays
    hits = outcome(ex, lambda: losses.correct(a["output"], a["targets"], threshold))
    if not ex.faults:
        assert hits == correct_reference(a["output"], a["targets"], dtype(threshold))


# --------------------------------------------------------------- batchnorm

EPS = ([1e-5, 1e-2, 1.0], [0.0, -1e-5, np.nan, np.inf])


def bn_statistics(x):
    with np.errstate(all="ignore"):
        x = x.astype(np.float64)
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
    return mean, var


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes(), st.booleans())
def test_forward_train(data, dtype, shape, running):
    m, n = shape
    ex = Example(data.draw, dtype)
    ex.array("x", shape)
    if m < 2 and "x" not in ex.faults:
        ex.faults.add("x")
    for name in ("gamma", "beta"):
        ex.array(name, (n,))
    for name in ("y", "xhat"):
        ex.array(name, shape, output=True)
    for name in ("mean", "invstd"):
        ex.array(name, (n,), output=True)
    if running:
        ex.array("running_mean", (n,), output=True)
        ex.array("running_var", (n,), output=True, low=0.5)
    ex.alias([("y", "x"), ("xhat", "x"), ("y", "xhat"), ("mean", "gamma"),
              ("invstd", "beta")] + ([("running_var", "mean")] if running else []),
             allowed=(("y", "x"), ("xhat", "x")))
    momentum = ex.scalar("momentum", [0.0, 0.1, 1.0], [-0.1, 1.5, np.nan])
    eps = ex.scalar("eps", *EPS)
    a = ex.arrays
    x0 = a["x"].copy()
    rm0 = a.get("running_mean", np.zeros(n)).astype(np.float64)
    rv0 = a.get("running_var", np.zeros(n)).astype(np.float64)
    outcome(ex, lambda: batchnorm.forward_train(
        a["x"], a["gamma"], a["beta"], a["y"], a["xhat"], a["mean"], a["invstd"],
        a.get("running_mean"), a.get("running_var"), momentum, eps))
    if ex.faults:
        return
    mean, var = bn_statistics(x0)
    with np.errstate(all="ignore"):
        invstd = 1 / np.sqrt(var + eps)
        xhat = (x0.astype(np.float64) - mean) * invstd
        y = a["gamma"].astype(np.float64) * xhat + a["beta"]
        new_mean = (1 - momentum) * rm0 + momentum * mean
        new_var = (1 - momentum) * rv0 + momentum * var * m / (m - 1)
    assert_matches(a["xhat"], xhat, dtype)
    assert_matches(a["y"], y, dtype)
    assert_matches(a["mean"], mean, dtype)
    assert_matches(a["invstd"], invstd, dtype)
    if running:
        assert_matches(a["running_mean"], new_mean, dtype)
        assert_matches(a["running_var"], new_var, dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_forward_eval(data, dtype, shape):
    n = shape[1]
    ex = Example(data.draw, dtype)
    ex.array("x", shape)
    for name in ("gamma", "beta", "running_mean"):
        ex.array(name, (n,))
    ex.array("running_var", (n,), low=0.1)
    ex.array("y", shape, output=True)
    ex.alias([("y", "x")], allowed=(("y", "x"),))
    eps = ex.scalar("eps", *EPS)
    a = ex.arrays
    x0 = a["x"].astype(np.float64)
    outcome(ex, lambda: batchnorm.forward_eval(a["x"], a["gamma"], a["beta"], a["y"],
                                               a["running_mean"], a["running_var"], eps))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        k = a["gamma"].astype(np.float64) / np.sqrt(a["running_var"].astype(np.float64) + eps)
        y = (x0 - a["running_mean"]) * k + a["beta"]
    assert_matches(a["y"], y, dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_backward(data, dtype, shape):
    m, n = shape
    ex = Example(data.draw, dtype)
    ex.array("dy", shape)
    ex.array("xhat", shape)
    ex.array("gamma", (n,))
    ex.array("invstd", (n,), low=0.1)
    ex.array("dx", shape, output=True)
    ex.array("dgamma", (n,), output=True)
    ex.array("dbeta", (n,), output=True)
    ex.alias([("dx", "dy"), ("dx", "xhat"), ("dgamma", "gamma"), ("dbeta", "invstd")],
             allowed=(("dx", "dy"), ("dx", "xhat")))
    a = ex.arrays
    dy, xh = a["dy"].astype(np.float64), a["xhat"].astype(np.float64)
    outcome(ex, lambda: batchnorm.backward(a["dy"], a["xhat"], a["gamma"], a["invstd"],
                                           a["dx"], a["dgamma"], a["dbeta"]))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        # Sums and per-feature coefficients in double, the element-wise
        # combination in the dtype (so float32 overflows where the kernel does):
        # dx = k·dy − k·mean(dy) − xhat·k·mean(dy·xhat), k = gamma·invstd.
        k = a["gamma"].astype(np.float64) * a["invstd"]
        dbeta = dy.sum(axis=0)
        dgamma = (dy * xh).sum(axis=0)
        k_dy, k_const, k_xhat = (c.astype(dtype) for c in
                                 (k, -k * dbeta / max(m, 1), -k * dgamma / max(m, 1)))
        dy_, xh_ = dy.astype(dtype), xh.astype(dtype)  # dx may have overwritten one
        dx = k_dy * dy_ + (k_xhat * xh_ + k_const)
        terms = (np.abs(k_dy * dy_) + np.abs(k_xhat * xh_)
                 + np.abs(k_const)).astype(np.float64)
    assert_matches(a["dbeta"], dbeta, dtype)
    assert_matches(a["dgamma"], dgamma, dtype)
    if m:
        # dx is a difference of three terms: compare at their scale.
        assert_matches(a["dx"], dx, dtype,
                       scale=np.abs(terms[np.isfinite(terms)]).max(initial=0.0))


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), shapes())
def test_backward_eval(data, dtype, shape):
    n = shape[1]
    ex = Example(data.draw, dtype)
    ex.array("grad_out", shape)
    ex.array("x", shape)
    ex.array("gamma", (n,))
    ex.array("running_mean", (n,))
    ex.array("running_var", (n,), low=0.1)
    eps = ex.scalar("eps", *EPS)
    ex.array("grad_in", shape, output=True)
    ex.array("grad_gamma", (n,), output=True)
    ex.array("grad_beta", (n,), output=True)
    ex.alias([("grad_in", "grad_out"), ("grad_in", "x"), ("grad_gamma", "gamma"),
              ("grad_beta", "running_var")],
             allowed=(("grad_in", "grad_out"), ("grad_in", "x")))
    a = ex.arrays
    dy, x = a["grad_out"].astype(np.float64), a["x"].astype(np.float64)
    outcome(ex, lambda: batchnorm.backward_eval(
        a["grad_out"], a["x"], a["gamma"], a["running_mean"], a["running_var"], eps,
        a["grad_in"], a["grad_gamma"], a["grad_beta"]))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        invstd = 1 / np.sqrt(a["running_var"].astype(np.float64) + eps)
        dx = dy * a["gamma"] * invstd
        dgamma = (dy * (x - a["running_mean"]) * invstd).sum(axis=0)
    assert_matches(a["grad_in"], dx, dtype)
    assert_matches(a["grad_gamma"], dgamma, dtype)
    assert_matches(a["grad_beta"], dy.sum(axis=0), dtype)


# ----------------------------------------------------------------- dropout

ND_SHAPES = st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), ND_SHAPES)
def test_dropout_forward(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("x", shape)
    ex.array("y", shape, output=True)
    ex.array("mask", shape, output=True)
    ex.alias([("y", "x"), ("mask", "x"), ("mask", "y")], allowed=(("y", "x"),))
    rate = ex.scalar("rate", [0.0, 0.3, 0.9], [-0.1, 1.0, np.nan, np.inf])
    a = ex.arrays
    x0 = a["x"].copy()
    outcome(ex, lambda: dropout.forward(np.random.default_rng(0), a["x"], a["y"],
                                        a["mask"], rate))
    if ex.faults:
        return
    scale = dtype(1 / (1 - rate))
    assert np.all((a["mask"] == 0) | (a["mask"] == scale))
    np.testing.assert_array_equal(a["y"], x0 * a["mask"])
    if rate == 0:
        np.testing.assert_array_equal(a["mask"], 1)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), ND_SHAPES)
def test_dropout_backward(data, dtype, shape):
    ex = Example(data.draw, dtype)
    ex.array("dy", shape)
    ex.array("mask", shape)
    ex.array("dx", shape, output=True)
    ex.alias([("dx", "dy"), ("dx", "mask")], allowed=(("dx", "dy"), ("dx", "mask")))
    a = ex.arrays
    expected = a["dy"] * a["mask"] if not ex.faults else None
    outcome(ex, lambda: dropout.backward(a["dy"], a["mask"], a["dx"]))
    if not ex.faults:
        np.testing.assert_array_equal(a["dx"], expected)


# --------------------------------------------------------------- gradients

@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), st.integers(0, 12))
def test_weight_penalty(data, dtype, n):
    ex = Example(data.draw, dtype)
    ex.array("w", (n,))
    ex.array("g", (n,), output=True)
    ex.alias([("g", "w")], allowed=())
    l2 = ex.scalar("l2", [0.0, 0.1, 2.0], [-0.1, np.nan, np.inf])
    l1 = ex.scalar("l1", [0.0, 0.05], [-1.0, np.nan])
    a = ex.arrays
    w, g = a["w"], a["g"]
    if not ex.faults:
        with np.errstate(all="ignore"):
            sign = (w > 0).astype(dtype) - (w < 0).astype(dtype)
            expected = g + dtype(l2) * w + dtype(l1) * sign
    outcome(ex, lambda: gradients.weight_penalty(w, g, l2, l1))
    if not ex.faults:
        assert_matches(g, expected, dtype)


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), st.integers(0, 12))
def test_clip_by_global_norm(data, dtype, n):
    ex = Example(data.draw, dtype)
    ex.array("g", (n,), output=True)
    max_norm = ex.scalar("max_norm", [0.5, 3.0, 1e3], [0.0, -1.0, np.nan, np.inf])
    g = ex.arrays["g"]
    g0 = g.astype(np.float64)
    norm = outcome(ex, lambda: gradients.clip_by_global_norm(g, max_norm))
    if ex.faults:
        return
    with np.errstate(all="ignore"):
        expected_norm = np.sqrt((g0 ** 2).sum())
    assert_matches(norm, expected_norm, dtype)
    if np.isfinite(expected_norm) and expected_norm > max_norm:
        assert_matches(g, g0 * dtype(max_norm / expected_norm), dtype)
    else:
        np.testing.assert_array_equal(g, g0.astype(dtype))


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), st.integers(0, 12))
def test_clip_by_value(data, dtype, n):
    ex = Example(data.draw, dtype)
    ex.array("g", (n,), output=True)
    limit = ex.scalar("limit", [0.5, 3.0], [0.0, -1.0, np.nan, np.inf])
    g = ex.arrays["g"]
    expected = np.clip(g, -dtype(limit), dtype(limit)) if not ex.faults else None
    outcome(ex, lambda: gradients.clip_by_value(g, limit))
    if not ex.faults:
        np.testing.assert_array_equal(g, expected)


def box_muller(seed, n, sigma):
    """N(0, sigma²) draws as add_gaussian_noise makes them from PCG64."""
    raw = np.random.default_rng(seed).bit_generator.random_raw(2 * ((n + 1) // 2))
    u = (raw >> np.uint64(11)) * 2.0 ** -53
    radius = sigma * np.sqrt(-2 * np.log(1 - u[0::2]))
    angle = 2 * np.pi * u[1::2]
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]).ravel()[:n]


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), st.integers(0, 12))
def test_gaussian_noise(data, dtype, n):
    ex = Example(data.draw, dtype)
    ex.array("g", (n,), output=True)
    sigma = ex.scalar("sigma", [0.0, 0.5, 2.0], [-0.5, np.nan, np.inf])
    g = ex.arrays["g"]
    g0 = g.copy()
    outcome(ex, lambda: gradients.gaussian_noise(np.random.default_rng(3), g, sigma))
    if not ex.faults:
        noise = box_muller(3, n, sigma).astype(dtype)
        with np.errstate(all="ignore"):
            assert_matches(g, g0 + noise, dtype)
