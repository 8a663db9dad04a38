"""Dense-layer and activation kernels against calling BLAS and NumPy directly.

``fastnn_ext.dense.forward`` computes X·W + b, ``backward`` computes
dW = Xᵀ·dZ, db = Σ dZ and dX = dZ·Wᵀ, each product on the kernel that the
calibration chose for a float32 fit on this machine, on one thread.  The baseline makes the same BLAS calls
through ``scipy.linalg.blas`` on the same row-major buffers (transposed views,
so nothing is copied): sgemm for the products and sgemv for the bias sum.
Target: within 10% of the baseline.  The ReLU backward (the gradient where
the layer's output is positive, zero elsewhere) runs against NumPy's
``np.multiply(grad, out > 0)`` at the C2 and C3 hidden-layer shapes, on an
output that is positive at about every other element, as a trained ReLU
layer's is.
"""

import numpy as np
import pytest
import scipy.linalg.blas as blas
from threads import blas_threads, pause

from fastnn_ext import activations, dense

SHAPES = [(128, 784, 256), (10, 784, 30)]
RELU_SHAPES = [(128, 256), (512, 2048)]


@pytest.fixture(scope="module", autouse=True)
def calibrated():
    """The kernel choice a float32 fit would use here (cached per machine, measured
    first if there is none), on one thread: without it every product is BLAS's."""
    from fastnn import _calibration

    return _calibration.gemm_choice(np.float32)


def operands(m, n_in, n_out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, n_in), dtype=np.float32)
    w = rng.standard_normal((n_in, n_out), dtype=np.float32)
    b = rng.standard_normal(n_out, dtype=np.float32)
    grad_z = rng.standard_normal((m, n_out), dtype=np.float32)
    return x, w, b, grad_z


def blas_forward(x, w, b, out):
    # Row-major out = x·w is column-major outᵀ = wᵀ·xᵀ; b is added by a rank-1
    # update with a ones vector, the BLAS way of broadcasting a row.
    blas.sgemm(1.0, w.T, x.T, beta=0.0, c=out.T, overwrite_c=1)
    blas.sger(1.0, b, np.ones(out.shape[0], np.float32), a=out.T, overwrite_a=1)


def blas_backward(x, w, grad_z, grad_w, grad_b, grad_x, ones):
    blas.sgemm(1.0, grad_z.T, x.T, beta=0.0, c=grad_w.T, trans_b=1, overwrite_c=1)
    blas.sgemv(1.0, grad_z.T, ones, beta=0.0, y=grad_b, overwrite_y=1)
    blas.sgemm(1.0, w.T, grad_z.T, beta=0.0, c=grad_x.T, trans_a=1, overwrite_c=1)


def warm_up_both(ours, theirs, calls=300):
    """Run both sides before timing either, so neither inherits a colder state.

    Without this the first of the two measured in a process comes out up to
    40% slower at the small shape, whichever it is.
    """
    for _ in range(calls):
        ours()
        theirs()


def check_forward_agrees(x, w, b):
    ours, theirs = np.empty((x.shape[0], w.shape[1]), np.float32), np.empty((x.shape[0], w.shape[1]), np.float32)
    dense.forward(x, w, b, ours)
    blas_forward(x, w, b, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("library", ["fastnn", "blas"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dense_forward(benchmark, shape, library):
    m, n_in, n_out = shape
    x, w, b, _ = operands(*shape)
    check_forward_agrees(x, w, b)
    out = np.empty((m, n_out), np.float32)
    benchmark.group = f"dense forward ({m}x{n_in})·({n_in}x{n_out})"
    ours, theirs = (lambda: dense.forward(x, w, b, out)), (lambda: blas_forward(x, w, b, out))
    run = ours if library == "fastnn" else theirs
    pause()
    with blas_threads(1):
        warm_up_both(ours, theirs)
        benchmark.pedantic(run, rounds=2000 if m == 10 else 300, iterations=1, warmup_rounds=20)


@pytest.mark.parametrize("library", ["fastnn", "blas"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dense_backward(benchmark, shape, library):
    m, n_in, n_out = shape
    x, w, _, grad_z = operands(*shape)
    grad_w, grad_b, grad_x = np.empty_like(w), np.empty(n_out, np.float32), np.empty_like(x)
    ones = np.ones(m, np.float32)
    blas_backward(x, w, grad_z, grad_w, grad_b, grad_x, ones)
    expected = grad_w.copy(), grad_b.copy(), grad_x.copy()
    dense.backward(x, w, grad_z, grad_w, grad_b, grad_x)
    for ours, theirs in zip((grad_w, grad_b, grad_x), expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    benchmark.group = f"dense backward ({m}x{n_in})·({n_in}x{n_out})"
    ours = lambda: dense.backward(x, w, grad_z, grad_w, grad_b, grad_x)  # noqa: E731
    theirs = lambda: blas_backward(x, w, grad_z, grad_w, grad_b, grad_x, ones)  # noqa: E731
    run = ours if library == "fastnn" else theirs
    pause()
    with blas_threads(1):
        warm_up_both(ours, theirs)
        benchmark.pedantic(run, rounds=2000 if m == 10 else 300, iterations=1, warmup_rounds=20)


@pytest.mark.parametrize("library", ["fastnn", "numpy"])
@pytest.mark.parametrize("shape", RELU_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_relu_backward(benchmark, shape, library):
    rng = np.random.default_rng(0)
    out = np.maximum(rng.standard_normal(shape, dtype=np.float32), 0)
    grad = rng.standard_normal(shape, dtype=np.float32)
    grad_in = np.empty_like(grad)
    activations.backward(out, grad, grad_in, activations.RELU)
    np.testing.assert_array_equal(grad_in, np.where(out > 0, grad, 0))
    benchmark.group = f"ReLU backward {shape[0]}x{shape[1]}"
    ours = lambda: activations.backward(out, grad, grad_in, activations.RELU)  # noqa: E731
    theirs = lambda: np.multiply(grad, out > 0, out=grad_in)  # noqa: E731
    pause()
    warm_up_both(ours, theirs, calls=20)
    benchmark.pedantic(ours if library == "fastnn" else theirs, rounds=300, iterations=1,
                       warmup_rounds=5)
