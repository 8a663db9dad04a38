"""Compiled kernels against plain NumPy transcriptions of their formulas.

The loss kernels are tested in test_losses.py.
"""

import warnings

import numpy as np
import pytest
from conftest import assert_close

from fastnn_ext import activations as act
from fastnn_ext import dense, gradients, layer_ops, silu

SHAPES = [(1, 1, 1), (1, 784, 30), (10, 784, 30), (7, 13, 1), (33, 5, 17), (128, 64, 10)]


def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # an independent, overflow-free form


def activation_reference(code, z, alpha=0.1):
    return {
        act.IDENTITY: lambda: z,
        act.SIGMOID: lambda: sigmoid(z),
        act.TANH: lambda: np.tanh(z),
        act.RELU: lambda: np.maximum(z, 0),
        act.LEAKY_RELU: lambda: np.where(z > 0, z, alpha * z),
    }[code]()


def derivative_reference(code, z, alpha=0.1):
    return {
        act.IDENTITY: lambda: np.ones_like(z),
        act.SIGMOID: lambda: sigmoid(z) * (1 - sigmoid(z)),
        act.TANH: lambda: 1 - np.tanh(z) ** 2,
        act.RELU: lambda: (z > 0).astype(float),
        act.LEAKY_RELU: lambda: np.where(z > 0, 1.0, alpha),
    }[code]()


ACTIVATIONS = [act.IDENTITY, act.SIGMOID, act.TANH, act.RELU, act.LEAKY_RELU]


@pytest.mark.parametrize("m, n_in, n_out", SHAPES)
@pytest.mark.parametrize("code", ACTIVATIONS)
def test_dense_forward_matches_numpy(m, n_in, n_out, code, dtype, rng):
    x, w, b = (rng.standard_normal(s) for s in [(m, n_in), (n_in, n_out), (n_out,)])
    out = np.empty((m, n_out), dtype)
    dense.forward(x.astype(dtype), w.astype(dtype), b.astype(dtype), out, code, 0.1)
    xd, wd, bd = (a.astype(dtype).astype(np.float64) for a in (x, w, b))
    assert_close(out, activation_reference(code, xd @ wd + bd), dtype, scale=np.sqrt(n_in))


@pytest.mark.parametrize("m, n_in, n_out", SHAPES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_dense_backward_matches_numpy(m, n_in, n_out, accumulate, dtype, rng):
    x, w, g = (rng.standard_normal(s).astype(dtype) for s in [(m, n_in), (n_in, n_out), (m, n_out)])
    grad_w = rng.standard_normal((n_in, n_out)).astype(dtype)
    grad_b = rng.standard_normal(n_out).astype(dtype)
    start_w, start_b = grad_w.astype(np.float64), grad_b.astype(np.float64)
    grad_x = np.empty_like(x)
    dense.backward(x, w, g, grad_w, grad_b, grad_x, accumulate=accumulate)
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, g))
    keep = 1.0 if accumulate else 0.0
    assert_close(grad_w, keep * start_w + x64.T @ g64, dtype, scale=np.sqrt(m) + 1)
    assert_close(grad_b, keep * start_b + g64.sum(axis=0), dtype, scale=np.sqrt(m) + 1)
    assert_close(grad_x, g64 @ w64.T, dtype, scale=np.sqrt(n_out))


def test_dense_backward_can_skip_input_gradient(rng):
    x, w, g = (rng.standard_normal(s) for s in [(4, 3), (3, 2), (4, 2)])
    grad_w, grad_b = np.empty((3, 2)), np.empty(2)
    dense.backward(x, w, g, grad_w, grad_b, None)
    assert_close(grad_w, x.T @ g, np.float64)


@pytest.mark.parametrize("code", ACTIVATIONS)
def test_activation_forward_and_derivative(code, dtype, rng):
    z = (3 * rng.standard_normal((9, 11))).astype(dtype)
    bias = rng.standard_normal(11).astype(dtype)
    out = np.empty_like(z)
    act.forward(z, out, code, 0.1, bias)
    zb = z.astype(np.float64) + bias.astype(np.float64)
    assert_close(out, activation_reference(code, zb), dtype)
    upstream = rng.standard_normal(z.shape).astype(dtype)
    grad = np.empty_like(z)
    act.backward(out, upstream, grad, code, 0.1)
    assert_close(grad, upstream * derivative_reference(code, zb), dtype)


def test_activation_in_place(rng):
    z = rng.standard_normal((5, 4))
    expected = np.tanh(z)
    act.forward(z, z, act.TANH)
    assert_close(z, expected, np.float64)


def test_sigmoid_saturates_without_overflow(dtype):
    z = np.array([[1000.0, -1000.0, 88.0, -104.0, 0.0]], dtype)
    out = np.empty_like(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        act.forward(z, out, act.SIGMOID)
    assert out[0, 0] == 1.0 and out[0, 1] == 0.0 and out[0, 4] == 0.5
    assert np.isfinite(out).all()


def test_softmax_is_stable_and_correct(dtype, rng):
    z = np.vstack([rng.standard_normal(6), rng.standard_normal(6) + 1e4,
                   [1e4, -1e4, 0, 0, 0, 0]]).astype(dtype)
    out = np.empty_like(z)
    act.softmax(z, out)
    shifted = z.astype(np.float64) - z.astype(np.float64).max(axis=1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    assert np.isfinite(out).all()
    assert_close(out, expected, dtype)
    upstream = rng.standard_normal(z.shape).astype(dtype)
    grad = np.empty_like(z)
    act.softmax_grad(out, upstream, grad)
    jacobian_product = np.einsum("ij,ijk->ik", upstream.astype(np.float64),
                                 np.stack([np.diag(p) - np.outer(p, p) for p in expected]))
    assert_close(grad, jacobian_product, dtype)


def test_prelu_forward_and_gradients(dtype, rng):
    z = rng.standard_normal((8, 5)).astype(dtype)
    slope = np.array([0.25, -0.5, 0.0, 1.5, 0.1], dtype)
    out = np.empty_like(z)
    act.prelu(z, slope, out)
    z64, s64 = z.astype(np.float64), slope.astype(np.float64)
    assert_close(out, np.where(z64 > 0, z64, s64 * z64), dtype)
    upstream = rng.standard_normal(z.shape).astype(dtype)
    grad_in, grad_slope = np.empty_like(z), np.full(5, np.nan, dtype)
    act.prelu_grad(z, slope, upstream, grad_in, grad_slope)
    assert_close(grad_in, upstream * np.where(z64 > 0, 1.0, s64), dtype)
    assert_close(grad_slope, (upstream * np.where(z64 > 0, 0.0, z64)).sum(axis=0), dtype)


def test_weight_penalty_and_clipping(dtype, rng):
    w = rng.standard_normal(50).astype(dtype)
    w[3] = 0
    g = rng.standard_normal(50).astype(dtype)
    expected = g.astype(np.float64) + 0.3 * w + 0.2 * np.sign(w)
    gradients.weight_penalty(w, g, 0.3, 0.2)
    assert_close(g, expected, dtype)
    norm_before = np.linalg.norm(g.astype(np.float64))
    returned = gradients.clip_by_global_norm(g, 0.5)
    assert returned == pytest.approx(norm_before, rel=1e-6)
    assert np.linalg.norm(g.astype(np.float64)) == pytest.approx(0.5, rel=1e-5)
    gradients.clip_by_value(g, 0.01)
    assert np.abs(g).max() <= np.float32(0.01) + 1e-9


def test_gaussian_noise_statistics_and_seed():
    first, second = np.zeros(200_000), np.zeros(200_000)
    gradients.gaussian_noise(np.random.default_rng(3), first, 0.5)
    gradients.gaussian_noise(np.random.default_rng(3), second, 0.5)
    np.testing.assert_array_equal(first, second)
    # mean within 5 standard errors, variance within 5 standard errors
    assert abs(first.mean()) < 5 * 0.5 / np.sqrt(first.size)
    assert abs(first.var() - 0.25) < 5 * 0.25 * np.sqrt(2 / first.size)


@pytest.mark.parametrize("call, message", [
    (lambda: dense.forward(np.ones((2, 3)), np.ones((4, 2)), np.ones(2), np.empty((2, 2))), "w has shape"),
    (lambda: dense.forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(3), np.empty((2, 2))), "b has shape"),
    (lambda: dense.forward(np.ones((2, 3), np.float32), np.ones((3, 2)), np.ones(2), np.empty((2, 2))), "dtype"),
    (lambda: dense.forward(np.ones((3, 2)).T, np.ones((3, 2)), np.ones(2), np.empty((2, 2))), "contiguous"),
    (lambda: dense.forward(np.ones((2, 0)), np.ones((0, 3)), np.ones(3), np.empty((2, 3))), "non-zero widths"),
    (lambda: dense.backward(np.ones((2, 3)), np.ones((3, 0)), np.ones((2, 0)), np.empty((3, 0)), np.empty(0)), "non-zero widths"),
    (lambda: dense.forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(2), np.broadcast_to(np.empty((1, 2)), (2, 2))), "contiguous|read-only"),
    (lambda: act.forward(np.ones((2, 2)), np.empty((2, 2)), 99), "activation must be an activation kernel"),
    (lambda: gradients.clip_by_global_norm(np.ones(3), -1.0), "max_norm"),
])
def test_bad_kernel_input_is_refused(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_gradient_transformations_match_numpy(n, dtype, rng):
    w = rng.standard_normal(n).astype(dtype)
    g = (10 * rng.standard_normal(n)).astype(dtype)
    expected = g.astype(np.float64) + 0.3 * w + 0.2 * np.sign(w)
    gradients.weight_penalty(w, g, 0.3, 0.2)
    assert_close(g, expected, dtype)
    before = g.astype(np.float64)
    norm = np.linalg.norm(before)
    assert gradients.clip_by_global_norm(g, 1.5) == pytest.approx(norm, rel=1e-6)
    assert_close(g, before * min(1.0, 1.5 / norm) if n else before, dtype)
    before = g.astype(np.float64)
    gradients.clip_by_value(g, 0.1)
    assert_close(g, np.clip(before, -0.1, 0.1), dtype)


def test_weight_penalty_on_a_view_of_one_buffer(rng):
    # Weights and gradients side by side in one buffer: disjoint views are fine.
    buffer = rng.standard_normal(20)
    w, g = buffer[:10], buffer[10:]
    expected = g + 0.5 * w
    gradients.weight_penalty(w, g, 0.5)
    assert_close(g, expected, np.float64)


def ones(n, dtype=np.float64):
    return np.ones(n, dtype)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


SHARED = np.zeros(30)
BAD_GRADIENT_CALLS = [
    ("g overlaps w", ValueError, "g overlaps w",
     lambda: gradients.weight_penalty(SHARED[:10], SHARED[5:15], 0.1)),
    ("g is w", ValueError, "g overlaps w",
     lambda: gradients.weight_penalty(SHARED[:10], SHARED[:10], 0.1)),
    ("g length", ValueError, "g has length", lambda: gradients.weight_penalty(ones(3), ones(4), 0.1)),
    ("mixed dtypes", TypeError, "g",
     lambda: gradients.weight_penalty(ones(3), ones(3, np.float32), 0.1)),
    ("integer w", TypeError, "w", lambda: gradients.weight_penalty(np.ones(3, int), ones(3), 0.1)),
    ("strided g", ValueError, "g.*contiguous",
     lambda: gradients.weight_penalty(ones(3), ones(6)[::2], 0.1)),
    ("2-D g", ValueError, "g", lambda: gradients.weight_penalty(ones(3), np.ones((3, 1)), 0.1)),
    ("read-only g", ValueError, "g.*writeable",
     lambda: gradients.weight_penalty(ones(3), read_only(ones(3)), 0.1)),
    ("NaN l2", ValueError, "l2", lambda: gradients.weight_penalty(ones(3), ones(3), np.nan)),
    ("negative l1", ValueError, "l1", lambda: gradients.weight_penalty(ones(3), ones(3), 0.1, -1.0)),
    ("infinite max_norm", ValueError, "max_norm",
     lambda: gradients.clip_by_global_norm(ones(3), np.inf)),
    ("zero max_norm", ValueError, "max_norm", lambda: gradients.clip_by_global_norm(ones(3), 0.0)),
    ("read-only clip", ValueError, "g.*writeable",
     lambda: gradients.clip_by_global_norm(read_only(ones(3)), 1.0)),
    ("NaN limit", ValueError, "limit", lambda: gradients.clip_by_value(ones(3), np.nan)),
    ("strided clip", ValueError, "g.*contiguous", lambda: gradients.clip_by_value(ones(6)[::2], 1.0)),
    ("infinite sigma", ValueError, "sigma",
     lambda: gradients.gaussian_noise(np.random.default_rng(0), ones(3), np.inf)),
    ("not a generator", TypeError, "generator",
     lambda: gradients.gaussian_noise(np.random.RandomState(0), ones(3), 0.1)),
    ("read-only noise", ValueError, "g.*writeable",
     lambda: gradients.gaussian_noise(np.random.default_rng(0), read_only(ones(3)), 0.1)),
]


@pytest.mark.parametrize("case", BAD_GRADIENT_CALLS, ids=lambda c: c[0])
def test_bad_gradient_arguments_raise(case):
    _, error, match, call = case
    before = SHARED.copy()
    with pytest.raises(error, match=match):
        call()
    np.testing.assert_array_equal(SHARED, before)


# -- dense and activation wrappers: every argument checked, by name ---------------

def f32(a):
    return np.asarray(a, np.float32)


def strided(shape, dtype=np.float64):
    """A non-contiguous array of `shape` (every other column of a wider one)."""
    return np.ones(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2]


# One buffer that aliasing cases slice: each case must leave it as it was.
BUFFER = np.arange(64, dtype=np.float64) / 64
X23, W32, B2 = BUFFER[:6].reshape(2, 3), BUFFER[6:12].reshape(3, 2), BUFFER[12:14]
Z23 = BUFFER[:6].reshape(2, 3)
SLOPE3 = BUFFER[6:9]

BAD_DENSE_AND_ACTIVATION_CALLS = [
    # dense.forward
    ("forward: x of another dtype", TypeError, r"\bw\b.*float64.*\bx\b.*float32",
     lambda: dense.forward(f32(X23), W32, B2, np.empty((2, 2)))),
    ("forward: b of another dtype", TypeError, r"\bb\b.*dtype",
     lambda: dense.forward(X23, W32, f32(B2), np.empty((2, 2)))),
    ("forward: out of another dtype", TypeError, r"\bout\b.*dtype",
     lambda: dense.forward(X23, W32, B2, np.empty((2, 2), np.float32))),
    ("forward: integer x", TypeError, r"\bx\b.*dtype",
     lambda: dense.forward(np.ones((2, 3), int), W32, B2, np.empty((2, 2)))),
    ("forward: x a list", TypeError, r"\bx\b.*list",
     lambda: dense.forward([[1.0, 2.0, 3.0]], W32, B2, np.empty((1, 2)))),
    ("forward: 1-D x", ValueError, r"\bx\b.*2-D",
     lambda: dense.forward(np.ones(3), W32, B2, np.empty((1, 2)))),
    ("forward: 2-D b", ValueError, r"\bb\b.*1-D",
     lambda: dense.forward(X23, W32, np.ones((1, 2)), np.empty((2, 2)))),
    ("forward: strided w", ValueError, r"\bw\b.*contiguous",
     lambda: dense.forward(X23, strided((3, 2)), B2, np.empty((2, 2)))),
    ("forward: read-only out", ValueError, r"\bout\b.*read-only",
     lambda: dense.forward(X23, W32, B2, read_only(np.empty((2, 2))))),
    ("forward: out is x", ValueError, r"\bout\b overlaps \bx\b",
     lambda: dense.forward(BUFFER[:4].reshape(2, 2), BUFFER[16:20].reshape(2, 2), B2,
                           BUFFER[:4].reshape(2, 2))),
    ("forward: out overlaps w", ValueError, r"\bout\b overlaps \bw\b",
     lambda: dense.forward(X23, W32, B2, BUFFER[8:12].reshape(2, 2))),
    ("forward: out overlaps b", ValueError, r"\bout\b overlaps \bb\b",
     lambda: dense.forward(X23, W32, B2, BUFFER[13:17].reshape(2, 2))),
    ("forward: NaN alpha", ValueError, r"\balpha\b",
     lambda: dense.forward(X23, W32, B2, np.empty((2, 2)), act.LEAKY_RELU, np.nan)),
    ("forward: negative alpha", ValueError, r"\balpha\b",
     lambda: dense.forward(X23, W32, B2, np.empty((2, 2)), act.LEAKY_RELU, -0.5)),
    ("forward: an op capsule for the activation", TypeError, r"\bactivation\b",
     lambda: dense.forward(X23, W32, B2, np.empty((2, 2)), layer_ops.DENSE)),
    # dense.backward
    ("backward: grad_z of another dtype", TypeError, r"\bgrad_z\b.*dtype",
     lambda: dense.backward(X23, W32, f32(np.ones((2, 2))), np.empty((3, 2)), np.empty(2))),
    ("backward: grad_x of another dtype", TypeError, r"\bgrad_x\b.*dtype",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), np.empty((3, 2)), np.empty(2),
                            np.empty((2, 3), np.float32))),
    ("backward: grad_x of another shape", ValueError, r"\bgrad_x\b.*shape",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), np.empty((3, 2)), np.empty(2),
                            np.empty((3, 3)))),
    ("backward: read-only grad_b", ValueError, r"\bgrad_b\b.*read-only",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), np.empty((3, 2)),
                            read_only(np.empty(2)))),
    ("backward: grad_w is w", ValueError, r"\bgrad_w\b overlaps \bw\b",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), W32, np.empty(2))),
    ("backward: grad_w overlaps x", ValueError, r"\bgrad_w\b overlaps \bx\b",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), BUFFER[:6].reshape(3, 2),
                            np.empty(2))),
    ("backward: grad_b overlaps grad_z", ValueError, r"\bgrad_b\b overlaps \bgrad_z\b",
     lambda: dense.backward(X23, W32, BUFFER[20:24].reshape(2, 2), np.empty((3, 2)),
                            BUFFER[22:24])),
    ("backward: grad_x is x", ValueError, r"\bgrad_x\b overlaps \bx\b",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), np.empty((3, 2)), np.empty(2), X23)),
    ("backward: grad_x overlaps grad_z", ValueError, r"\bgrad_x\b overlaps \bgrad_z\b",
     lambda: dense.backward(X23, W32, BUFFER[20:24].reshape(2, 2), np.empty((3, 2)),
                            np.empty(2), BUFFER[18:24].reshape(2, 3))),
    ("backward: grad_x overlaps grad_w", ValueError, r"\bgrad_x\b overlaps \bgrad_w\b",
     lambda: (lambda out: dense.backward(X23, W32, np.ones((2, 2)), out[:6].reshape(3, 2),
                                         np.empty(2), out[4:10].reshape(2, 3)))(
         np.zeros(10))),
    ("backward: grad_b overlaps grad_w", ValueError, r"\bgrad_b\b overlaps \bgrad_w\b",
     lambda: (lambda out: dense.backward(X23, W32, np.ones((2, 2)), out[:6].reshape(3, 2),
                                         out[5:7]))(np.zeros(10))),
    ("backward: accumulate an array", TypeError, r"\baccumulate\b",
     lambda: dense.backward(X23, W32, np.ones((2, 2)), np.empty((3, 2)), np.empty(2), None,
                            np.ones(3))),
    # activations.forward
    ("activation forward: out overlaps z", ValueError, r"\bout\b overlaps \bz\b",
     lambda: act.forward(BUFFER[:6].reshape(2, 3), BUFFER[1:7].reshape(2, 3), act.RELU)),
    ("activation forward: out overlaps bias", ValueError, r"\bout\b overlaps \bbias\b",
     lambda: act.forward(Z23, BUFFER[8:14].reshape(2, 3), act.RELU, 0.0, BUFFER[12:15])),
    ("activation forward: bias of another dtype", TypeError, r"\bbias\b.*dtype",
     lambda: act.forward(Z23, np.empty((2, 3)), act.RELU, 0.0, np.ones(3, np.float32))),
    ("activation forward: out of another dtype", TypeError, r"\bout\b.*dtype",
     lambda: act.forward(Z23, np.empty((2, 3), np.float32), act.TANH)),
    ("activation forward: strided z", ValueError, r"\bz\b.*contiguous",
     lambda: act.forward(strided((2, 3)), np.empty((2, 3)), act.TANH)),
    ("activation forward: read-only out", ValueError, r"\bout\b.*read-only",
     lambda: act.forward(Z23, read_only(np.empty((2, 3))), act.TANH)),
    ("activation forward: NaN alpha", ValueError, r"\balpha\b",
     lambda: act.forward(Z23, np.empty((2, 3)), act.LEAKY_RELU, np.nan)),
    ("activation forward: an array for the activation", TypeError, r"\bactivation\b",
     lambda: act.forward(Z23, np.empty((2, 3)), np.ones(3))),
    # activations.backward
    ("activation backward: grad_in overlaps grad_out", ValueError,
     r"\bgrad_in\b overlaps \bgrad_out\b",
     lambda: act.backward(np.ones((2, 3)), BUFFER[:6].reshape(2, 3),
                          BUFFER[3:9].reshape(2, 3), act.SIGMOID)),
    ("activation backward: grad_in is out", ValueError, r"\bgrad_in\b overlaps \bout\b",
     lambda: act.backward(Z23, np.ones((2, 3)), Z23, act.SIGMOID)),
    ("activation backward: grad_in is z", ValueError, r"\bgrad_in\b overlaps \bz\b",
     lambda: act.backward(np.ones((2, 3)), np.ones((2, 3)), Z23, silu.SILU, 0.0, Z23)),
    ("activation backward: z of another dtype", TypeError, r"\bz\b.*dtype",
     lambda: act.backward(np.ones((2, 3)), np.ones((2, 3)), np.empty((2, 3)), silu.SILU,
                          0.0, np.ones((2, 3), np.float32))),
    ("activation backward: z missing", ValueError, r"\bz\b.*needs z",
     lambda: act.backward(np.ones((2, 3)), np.ones((2, 3)), np.empty((2, 3)), silu.SILU)),
    ("activation backward: grad_out of another dtype", TypeError, r"\bgrad_out\b.*dtype",
     lambda: act.backward(np.ones((2, 3)), np.ones((2, 3), np.float32), np.empty((2, 3)),
                          act.TANH)),
    ("activation backward: infinite alpha", ValueError, r"\balpha\b",
     lambda: act.backward(np.ones((2, 3)), np.ones((2, 3)), np.empty((2, 3)),
                          act.LEAKY_RELU, np.inf)),
    # softmax and softmax_grad
    ("softmax: out is z", ValueError, r"\bout\b overlaps \bz\b",
     lambda: act.softmax(Z23, Z23)),
    ("softmax: out of another dtype", TypeError, r"\bout\b.*dtype",
     lambda: act.softmax(Z23, np.empty((2, 3), np.float32))),
    ("softmax: 1-D z", ValueError, r"\bz\b.*2-D",
     lambda: act.softmax(np.ones(3), np.empty((1, 3)))),
    ("softmax_grad: grad_in is out", ValueError, r"\bgrad_in\b overlaps \bout\b",
     lambda: act.softmax_grad(Z23, np.ones((2, 3)), Z23)),
    ("softmax_grad: grad_in overlaps grad_out", ValueError,
     r"\bgrad_in\b overlaps \bgrad_out\b",
     lambda: act.softmax_grad(np.ones((2, 3)), BUFFER[:6].reshape(2, 3),
                              BUFFER[2:8].reshape(2, 3))),
    ("softmax_grad: grad_out of another dtype", TypeError, r"\bgrad_out\b.*dtype",
     lambda: act.softmax_grad(np.ones((2, 3)), np.ones((2, 3), np.float32),
                              np.empty((2, 3)))),
    # prelu and prelu_grad
    ("prelu: out is z", ValueError, r"\bout\b overlaps \bz\b",
     lambda: act.prelu(Z23, np.ones(3), Z23)),
    ("prelu: out overlaps slope", ValueError, r"\bout\b overlaps \bslope\b",
     lambda: act.prelu(np.ones((2, 3)), SLOPE3, BUFFER[4:10].reshape(2, 3))),
    ("prelu: slope of another dtype", TypeError, r"\bslope\b.*dtype",
     lambda: act.prelu(Z23, np.ones(3, np.float32), np.empty((2, 3)))),
    ("prelu: read-only out", ValueError, r"\bout\b.*read-only",
     lambda: act.prelu(Z23, np.ones(3), read_only(np.empty((2, 3))))),
    ("prelu_grad: grad_slope is slope", ValueError, r"\bgrad_slope\b overlaps \bslope\b",
     lambda: act.prelu_grad(np.ones((2, 3)), SLOPE3, np.ones((2, 3)), np.empty((2, 3)),
                            SLOPE3)),
    ("prelu_grad: grad_in is z", ValueError, r"\bgrad_in\b overlaps \bz\b",
     lambda: act.prelu_grad(Z23, np.ones(3), np.ones((2, 3)), Z23, np.empty(3))),
    ("prelu_grad: grad_slope overlaps grad_in", ValueError,
     r"\bgrad_slope\b overlaps \bgrad_in\b",
     lambda: (lambda out: act.prelu_grad(np.ones((2, 3)), np.ones(3), np.ones((2, 3)),
                                         out[:6].reshape(2, 3), out[5:8]))(np.zeros(9))),
    ("prelu_grad: grad_slope overlaps grad_out", ValueError,
     r"\bgrad_slope\b overlaps \bgrad_out\b",
     lambda: act.prelu_grad(np.ones((2, 3)), np.ones(3), BUFFER[:6].reshape(2, 3),
                            np.empty((2, 3)), BUFFER[3:6])),
    ("prelu_grad: grad_slope of another dtype", TypeError, r"\bgrad_slope\b.*dtype",
     lambda: act.prelu_grad(Z23, np.ones(3), np.ones((2, 3)), np.empty((2, 3)),
                            np.empty(3, np.float32))),
    ("prelu_grad: strided grad_out", ValueError, r"\bgrad_out\b.*contiguous",
     lambda: act.prelu_grad(Z23, np.ones(3), strided((2, 3)), np.empty((2, 3)),
                            np.empty(3))),
]


@pytest.mark.parametrize("case", BAD_DENSE_AND_ACTIVATION_CALLS, ids=lambda c: c[0])
def test_bad_dense_and_activation_arguments_raise(case):
    _, error, match, call = case
    before = BUFFER.copy()
    with pytest.raises(error, match=match):
        call()
    np.testing.assert_array_equal(BUFFER, before)


def test_dense_forward_with_out_as_x_is_refused_not_miscomputed(rng):
    # out = x would be overwritten by the product while the product still
    # reads it: the call must refuse, not return something else than x @ w + b.
    x = rng.standard_normal((4, 4))
    w, b = rng.standard_normal((4, 4)), rng.standard_normal(4)
    x0 = x.copy()
    with pytest.raises(ValueError, match=r"\bout\b overlaps \bx\b"):
        dense.forward(x, w, b, x)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("code", ACTIVATIONS + [silu.SILU])
def test_documented_in_place_activation_calls(code, dtype, rng):
    # forward with out = z, backward with grad_in = grad_out: the kernels
    # read each element before writing it.
    z = (3 * rng.standard_normal((6, 5))).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    zb = z.astype(np.float64) + bias.astype(np.float64)
    saved_z = (z + bias).astype(dtype)
    out = z.copy()
    act.forward(out, out, code, 0.1, bias)
    expected = zb * sigmoid(zb) if code is silu.SILU else activation_reference(code, zb)
    assert_close(out, expected, dtype)
    g = rng.standard_normal(z.shape).astype(dtype)
    if code is silu.SILU:
        s = sigmoid(zb)
        want = g * s * (1 + zb * (1 - s))
    else:
        want = g * derivative_reference(code, zb)
    act.backward(out, g, g, code, 0.1, saved_z)
    assert_close(g, want, dtype)


def test_documented_in_place_softmax_and_prelu_gradients(dtype, rng):
    p = np.empty((4, 6), dtype)
    act.softmax(rng.standard_normal((4, 6)).astype(dtype), p)
    g = rng.standard_normal((4, 6)).astype(dtype)
    g64, p64 = g.astype(np.float64), p.astype(np.float64)
    act.softmax_grad(p, g, g)
    assert_close(g, p64 * (g64 - (g64 * p64).sum(axis=1, keepdims=True)), dtype)
    z = rng.standard_normal((4, 6)).astype(dtype)
    slope = rng.standard_normal(6).astype(dtype)
    g = rng.standard_normal((4, 6)).astype(dtype)
    g64, z64 = g.astype(np.float64), z.astype(np.float64)
    grad_slope = np.empty(6, dtype)
    act.prelu_grad(z, slope, g, g, grad_slope)
    assert_close(g, g64 * np.where(z64 > 0, 1.0, slope.astype(np.float64)), dtype)
    assert_close(grad_slope, (g64 * np.where(z64 > 0, 0.0, z64)).sum(axis=0), dtype)


@pytest.mark.parametrize("accumulate", [False, True])
def test_dense_backward_of_no_rows_sums_nothing(accumulate, dtype):
    # x.T @ grad_z and grad_z.sum(0) over zero rows are zero matrices.
    grad_w, grad_b = np.full((3, 2), 7.0, dtype), np.full(2, 7.0, dtype)
    grad_x = np.empty((0, 3), dtype)
    dense.backward(np.empty((0, 3), dtype), np.ones((3, 2), dtype), np.empty((0, 2), dtype),
                   grad_w, grad_b, grad_x, accumulate)
    np.testing.assert_array_equal(grad_w, np.full((3, 2), 7.0 if accumulate else 0.0))
    np.testing.assert_array_equal(grad_b, np.full(2, 7.0 if accumulate else 0.0))


def test_layers_call_the_wrappers_positionally(dtype, rng):
    # fastnn.layers passes (x, W, b, out) and (x, W, grad_out, grad_W, grad_b,
    # grad_in) by position, and views of one flat buffer for the parameters.
    from fastnn import layers as L
    layer = L.Dense(5, 3)
    flat = rng.standard_normal(5 * 3 + 3).astype(dtype)
    grads = np.zeros_like(flat)
    layer.params = {"W": flat[:15].reshape(5, 3), "b": flat[15:]}
    layer.grads = {"W": grads[:15].reshape(5, 3), "b": grads[15:]}
    x = rng.standard_normal((4, 5)).astype(dtype)
    y = layer.forward(x)
    x64, w64 = x.astype(np.float64), flat[:15].reshape(5, 3).astype(np.float64)
    assert_close(y, x64 @ w64 + flat[15:], dtype, scale=np.sqrt(5))
    g = rng.standard_normal((4, 3)).astype(dtype)
    grad_in = layer.backward(g)
    assert_close(grads[:15].reshape(5, 3), x64.T @ g, dtype, scale=np.sqrt(4) + 1)
    assert_close(grads[15:], g.astype(np.float64).sum(axis=0), dtype, scale=np.sqrt(4) + 1)
    assert_close(grad_in, g.astype(np.float64) @ w64.T, dtype, scale=np.sqrt(3))


def test_prelu_slope_gradient_of_no_rows_is_zero(dtype):
    # grad_slope is overwritten with a sum over the rows: over none, zeros.
    grad_slope = np.full(4, np.nan, dtype)
    act.prelu_grad(np.empty((0, 4), dtype), np.ones(4, dtype), np.empty((0, 4), dtype),
                   np.empty((0, 4), dtype), grad_slope)
    np.testing.assert_array_equal(grad_slope, np.zeros(4))
