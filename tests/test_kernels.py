"""Compiled kernels against plain NumPy transcriptions of their formulas."""

import warnings

import numpy as np
import pytest
from conftest import assert_close

from fastnn_ext import activations as act
from fastnn_ext import dense, gradients, losses

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


def softmax_ce_reference(z, t):
    z = z.astype(np.float64)
    lse = z.max(axis=1, keepdims=True) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
    p = np.exp(z - lse)
    return float((t * (lse - z)).sum()), p - t


def sigmoid_ce_reference(z, t):
    z = z.astype(np.float64)
    loss = np.logaddexp(0, -z) * t + np.logaddexp(0, z) * (1 - t)
    return float(loss.sum()), sigmoid(z) - t


def mse_reference(a, t):
    diff = a.astype(np.float64) - t
    return 0.5 * float((diff ** 2).sum()), diff


@pytest.mark.parametrize("code, reference", [
    (losses.SOFTMAX_CROSS_ENTROPY, softmax_ce_reference),
    (losses.SIGMOID_CROSS_ENTROPY, sigmoid_ce_reference),
    (losses.MSE, mse_reference),
])
@pytest.mark.parametrize("m, n", [(1, 1), (1, 10), (6, 3), (64, 10)])
def test_losses_match_numpy(code, reference, m, n, dtype, rng):
    z = (2 * rng.standard_normal((m, n))).astype(dtype)
    if code == losses.SOFTMAX_CROSS_ENTROPY:
        t = rng.dirichlet(np.ones(n), size=m)  # probability targets
    else:
        t = rng.uniform(0, 1, (m, n))
    t = t.astype(dtype)
    grad = np.empty_like(z)
    total = losses.loss_grad(code, z, t, grad, 1.0 / m)
    expected_loss, expected_grad = reference(z, t.astype(np.float64))
    assert abs(total - expected_loss) <= 10 * (1e-6 if dtype == np.float32 else 1e-14) * max(1, abs(expected_loss)) * m * n
    assert_close(grad, expected_grad / m, dtype)


def test_cross_entropies_finite_for_extreme_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype)
    t = np.array([[0, 1, 0], [1, 0, 0]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = np.empty_like(z)
        softmax_loss = losses.loss_grad(losses.SOFTMAX_CROSS_ENTROPY, z, t, grad)
        assert softmax_loss == pytest.approx(4e4, rel=1e-6)  # log p of the target = −2e4 each
        assert np.isfinite(grad).all()
        bce = losses.loss_grad(losses.SIGMOID_CROSS_ENTROPY, z, t, grad)
        # −log(1 − σ(1e4)) = −log σ(−1e4) = 1e4 four times, log 2 for z = 0, softplus(3)
        assert bce == pytest.approx(4e4 + np.log(2.0) + np.logaddexp(0, 3.0), rel=1e-9)
        assert np.isfinite(grad).all()


def test_count_correct(dtype):
    out = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]], dtype)
    t = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype)
    assert losses.correct(out, t) == 2
    binary = np.array([[0.9], [0.2], [0.6]], dtype)
    assert losses.correct(binary, np.array([[1], [1], [0]], dtype), 0.5) == 1


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
    (lambda: dense.forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(3), np.empty((2, 2))), "b has length"),
    (lambda: dense.forward(np.ones((2, 3), np.float32), np.ones((3, 2)), np.ones(2), np.empty((2, 2))), "dtype"),
    (lambda: dense.forward(np.ones((3, 2)).T, np.ones((3, 2)), np.ones(2), np.empty((2, 2))), "contiguous"),
    (lambda: dense.forward(np.ones((2, 0)), np.ones((0, 3)), np.ones(3), np.empty((2, 3))), "non-zero widths"),
    (lambda: dense.backward(np.ones((2, 3)), np.ones((3, 0)), np.ones((2, 0)), np.empty((3, 0)), np.empty(0)), "non-zero widths"),
    (lambda: dense.forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(2), np.broadcast_to(np.empty((1, 2)), (2, 2))), "contiguous|read-only"),
    (lambda: act.forward(np.ones((2, 2)), np.empty((2, 2)), 99), "activation must be an activation kernel"),
    (lambda: losses.loss_grad(7, np.ones((2, 2)), np.ones((2, 2))), "unknown loss"),
    (lambda: losses.loss_grad(0, np.ones((2, 2)), np.ones((3, 2))), "targets has shape"),
    (lambda: gradients.clip_by_global_norm(np.ones(3), -1.0), "max_norm"),
])
def test_bad_kernel_input_is_refused(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
