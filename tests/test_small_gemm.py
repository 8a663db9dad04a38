"""The small-batch matrix products (small_gemm_kernels.h) behind the dense kernels.

On AVX2+FMA and AVX-512 CPUs, products with few rows may bypass BLAS; these
tests run with every product forced onto those kernels (and, where said,
onto BLAS), sweep the shapes around the kernels' block boundaries (6 and
12 rows; 8, 16 and 32 columns of float32, half as many of float64; dot
products in blocks of 4×3 or 4×4, masked past the last whole vector)
against NumPy, check that no load reads past the end of an operand that
ends right before an unmapped page, that row strides, the thread count and
the backend leave the results within float tolerance (the thread count and
the strides: bit for bit), and that the compiled and the layer paths agree
bit for bit under either choice.
"""

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import _calibration
from fastnn import layers as L
from fastnn import optimizers as O
from fastnn.model import Sequential
from fastnn_ext import dense, gemm_choice

needs_kernels = pytest.mark.skipif(gemm_choice.vector_bits() == 0,
                                   reason="no AVX2+FMA or AVX-512: BLAS only")
OWN_ALWAYS = {"own_max_rows": dict.fromkeys(gemm_choice.PRODUCTS, 2 ** 30), "own_min_length": 0,
              "split_min_work": dict.fromkeys(gemm_choice.PRODUCTS, float("inf")), "threads": 1}
CHOICES = {"own": OWN_ALWAYS, "blas": _calibration.blas_always()}


def force(choice):
    for dtype in (np.float32, np.float64):
        gemm_choice.set_choice(dtype, **choice)


@pytest.fixture(autouse=True)
def own_kernels_everywhere():
    saved = {dtype: gemm_choice.get_choice(dtype) for dtype in (np.float32, np.float64)}
    force(OWN_ALWAYS)
    yield
    for dtype, choice in saved.items():
        gemm_choice.set_choice(dtype, **choice)


ROWS = [1, 2, 11, 12, 13, 25, 128, 129]
WIDTHS = [1, 3, 8, 15, 16, 17, 31, 32, 33, 65]


@pytest.mark.parametrize("m", ROWS)
@pytest.mark.parametrize("n_out", WIDTHS)
def test_forward_at_block_boundaries(m, n_out, dtype, rng):
    n_in = 19
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in [(m, n_in), (n_in, n_out), (n_out,)])
    out = np.full((m, n_out), np.nan, dtype)
    dense.forward(x, w, b, out)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_close(out, x64 @ w64 + b64, dtype, scale=np.sqrt(n_in))


@pytest.mark.parametrize("m", [1, 10, 12, 13])
@pytest.mark.parametrize("n_in", [1, 12, 13, 30, 784])
@pytest.mark.parametrize("n_out", [1, 10, 17, 30, 256])
@pytest.mark.parametrize("accumulate", [False, True])
def test_weight_gradient_at_block_boundaries(m, n_in, n_out, accumulate, dtype, rng):
    x, w, g = (rng.standard_normal(s).astype(dtype) for s in [(m, n_in), (n_in, n_out), (m, n_out)])
    grad_w = rng.standard_normal((n_in, n_out)).astype(dtype)
    start = grad_w.astype(np.float64)
    grad_b = np.empty(n_out, dtype)
    dense.backward(x, w, g, grad_w, grad_b, None, accumulate=accumulate)
    expected = x.astype(np.float64).T @ g.astype(np.float64) + (start if accumulate else 0)
    assert_close(grad_w, expected, dtype, scale=np.sqrt(m) + 1)


@pytest.mark.parametrize("m", [1, 3, 4, 5, 16, 17, 129])
@pytest.mark.parametrize("n_in", [1, 3, 4, 5, 17])
@pytest.mark.parametrize("n_out", [10, 64, 65, 100, 256, 300])
def test_input_gradient_at_block_boundaries(m, n_in, n_out, dtype, rng):
    # grad_x = grad_z·wᵀ: dot products of rows, in blocks of 4×4, masked past
    # the last whole vector of each row
    x, w, g = (rng.standard_normal(s).astype(dtype) for s in [(m, n_in), (n_in, n_out), (m, n_out)])
    grad_w, grad_b = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
    grad_x = np.full((m, n_in), np.nan, dtype)
    dense.backward(x, w, g, grad_w, grad_b, grad_x)
    assert_close(grad_x, g.astype(np.float64) @ w.astype(np.float64).T, dtype,
                 scale=np.sqrt(n_out))


def test_large_right_operand_with_many_rows(dtype, rng):
    # more than 128 rows and a right operand over 1 MiB: the BLAS side of the switch
    x, w = rng.standard_normal((200, 600)).astype(dtype), rng.standard_normal((600, 500)).astype(dtype)
    out = np.empty((200, 500), dtype)
    dense.forward(x, w, np.zeros(500, dtype), out)
    assert_close(out, x.astype(np.float64) @ w.astype(np.float64), dtype, scale=np.sqrt(600))


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (5, 3), (7, 17), (4, 33), (3, 40)])
def test_no_read_past_the_last_element(guarded, n_in, n_out, dtype, rng):
    m = 5
    x = rng.standard_normal((m, n_in)).astype(dtype)
    w = guarded.ending_at_guard(rng.standard_normal((n_in, n_out)).astype(dtype))
    out = np.empty((m, n_out), dtype)
    dense.forward(x, w, np.zeros(n_out, dtype), out)
    assert_close(out, x.astype(np.float64) @ w.astype(np.float64), dtype, scale=np.sqrt(n_in))

    # the weight gradient reads grad_z the same way
    g = guarded.ending_at_guard(rng.standard_normal((m, n_out)).astype(dtype))
    grad_w, grad_b = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
    dense.backward(x, rng.standard_normal((n_in, n_out)).astype(dtype), g, grad_w, grad_b)
    assert_close(grad_w, x.astype(np.float64).T @ g.astype(np.float64), dtype, scale=np.sqrt(m))


@pytest.mark.parametrize("n_in, n_out", [(3, 64), (5, 70), (2, 300)])
def test_no_read_past_the_last_element_of_transposed_rows(guarded, n_in, n_out, dtype, rng):
    m = 5
    x = rng.standard_normal((m, n_in)).astype(dtype)
    w = guarded.ending_at_guard(rng.standard_normal((n_in, n_out)).astype(dtype))
    g = rng.standard_normal((m, n_out)).astype(dtype)
    grad_w, grad_b, grad_x = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype), np.empty_like(x)
    dense.backward(x, w, g, grad_w, grad_b, grad_x)
    assert_close(grad_x, g.astype(np.float64) @ w.astype(np.float64).T, dtype, scale=np.sqrt(n_out))

    # the guarded region is reused: w's values are gone from here on
    g = guarded.ending_at_guard(g)
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    dense.backward(x, w, g, grad_w, grad_b, grad_x)
    assert_close(grad_x, g.astype(np.float64) @ w.astype(np.float64).T, dtype, scale=np.sqrt(n_out))


def test_availability_is_reported():
    assert isinstance(dense.small_gemm_available(), bool)


def operands(kind, m, n, k, dtype, rng, pad):
    """op(a) (m×k), op(b) (k×n) and c (m×n), each a slice of a wider array (row stride + pad)."""
    def strided(rows, cols):
        wide = rng.standard_normal((rows, cols + pad)).astype(dtype)
        return wide[:, :cols]
    a = strided(k, m) if kind == "tn" else strided(m, k)
    b = strided(n, k) if kind == "nt" else strided(k, n)
    return a, b, strided(m, n)


def reference(kind, a, b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if kind == "tn" else a64) @ (b64.T if kind == "nt" else b64)


SHAPES = [(1, 1, 1), (1, 7, 5), (3, 5, 1), (6, 16, 9), (7, 17, 33), (13, 3, 64), (25, 40, 130),
          (64, 33, 7), (50, 40, 300)]


@needs_kernels
@pytest.mark.parametrize("kind", gemm_choice.PRODUCTS)
@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("backend, threads", [("own", 1), ("own", 2), ("blas", 1)])
def test_each_backend_against_numpy(kind, m, n, k, backend, threads, dtype, rng):
    a, b, c = operands(kind, m, n, k, dtype, rng, pad=3)
    start = c.astype(np.float64)
    gemm_choice.product(kind, a, b, c, alpha=0.5, beta=0.0, backend=backend, threads=threads)
    assert_close(c, 0.5 * reference(kind, a, b), dtype, scale=np.sqrt(k))
    c[...] = start
    gemm_choice.product(kind, a, b, c, alpha=-1.0, beta=0.25, backend=backend, threads=threads)
    assert_close(c, 0.25 * start - reference(kind, a, b), dtype, scale=np.sqrt(k) + 1)


def own_product(kind, a, b, alpha):
    """alpha·op(A)·op(B) on the own kernels, one thread."""
    m = a.shape[1] if kind == "tn" else a.shape[0]
    n = b.shape[0] if kind == "nt" else b.shape[1]
    c = np.empty((m, n), a.dtype)
    gemm_choice.product(kind, a, b, c, alpha=alpha, beta=0.0, backend="own", threads=1)
    return c


@needs_kernels
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_a_deep_product_of_many_rows_has_the_bits_of_a_few_rows_at_a_time(alpha, dtype, rng):
    # Through 60 rows and an inner size of 600 the kernels take B in slices
    # of its rows, C holding the sums between them; through 12 rows they
    # do not.  Either way each element is the same multiply-adds in the
    # same order.  70 columns end in a partial block.
    a, b, _ = operands("nn", 60, 70, 600, dtype, rng, pad=0)
    c = own_product("nn", a, b, alpha)
    assert_close(c, alpha * reference("nn", a, b), dtype, scale=np.sqrt(600))
    pieces = [own_product("nn", a[i:i + 12], b, alpha) for i in range(0, 60, 12)]
    np.testing.assert_array_equal(c, np.vstack(pieces))


# X·W with an A beyond 512 KiB and 48 rows or more (24 with AVX2) goes
# through slice_order(): C in parts of a group of rows by some columns, the
# inner dimension in slices of 128 or 256 rows outside the blocks.  These
# shapes end in partial blocks of rows and columns and a partial slice;
# 48 rows are the fewest; 1100 float32 rows (over 85 blocks of 12) make two
# groups of rows, as do 600 float64 ones; 600 rows by 500 columns make parts
# of fewer columns than C has.
WIDE_SHAPES = [("nn", 100, 70, 1400), ("nn", 48, 33, 3000), ("nn", 1100, 40, 300),
               ("nn", 530, 17, 700), ("nn", 600, 500, 257)]


def own_rows(kind, a, b, alpha, start, stop):
    """Rows [start, stop) of alpha·op(A)·op(B), computed from those rows of op(A) alone."""
    return own_product(kind, a[:, start:stop] if kind == "tn" else a[start:stop], b, alpha)


@needs_kernels
@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("kind, m, n, k", WIDE_SHAPES)
def test_operands_beyond_l2_have_the_bits_of_a_few_rows_at_a_time(kind, m, n, k, alpha, dtype,
                                                                   rng):
    # Twelve rows at a time take the in-place orders; each element is the
    # same multiply-adds in the same order either way.
    a, b, _ = operands(kind, m, n, k, dtype, rng, pad=0)
    c = own_product(kind, a, b, alpha)
    assert_close(c, alpha * reference(kind, a, b), dtype, scale=np.sqrt(k))
    pieces = [own_rows(kind, a, b, alpha, i, min(i + 12, m)) for i in range(0, m, 12)]
    np.testing.assert_array_equal(c, np.vstack(pieces))


@needs_kernels
@pytest.mark.parametrize("kind, m, n, k", WIDE_SHAPES[:3] + WIDE_SHAPES[4:])
def test_operands_beyond_l2_change_no_bit_with_strides_or_threads(kind, m, n, k, dtype, rng):
    a, b, _ = operands(kind, m, n, k, dtype, rng, pad=0)
    c = own_product(kind, a, b, 1.0)
    for pad, threads in [(5, 1), (0, 2), (3, 3)]:
        a2, b2, c2 = (operands(kind, m, n, k, dtype, rng, pad=pad))
        a2[...], b2[...], c2[...] = a, b, np.nan
        gemm_choice.product(kind, a2, b2, c2, threads=threads)
        np.testing.assert_array_equal(c2, c)


@needs_kernels
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_many_rows_by_a_transposed_b_have_the_bits_of_the_plain_product(alpha, dtype, rng):
    # From 96 rows (48 with AVX2) dZ·Wᵀ copies W's rows into panels and sums
    # each element in order, as dZ·(Wᵀ as a matrix of its own) does.
    a, b, _ = operands("nt", 100, 70, 300, dtype, rng, pad=0)
    c = own_product("nt", a, b, alpha)
    assert_close(c, alpha * reference("nt", a, b), dtype, scale=np.sqrt(300))
    np.testing.assert_array_equal(c, own_product("nn", a, np.ascontiguousarray(b.T), alpha))


@needs_kernels
@pytest.mark.parametrize("kind", gemm_choice.PRODUCTS)
@pytest.mark.parametrize("m, n, k", [(13, 70, 29), (100, 9, 50), (30, 300, 17)])
def test_strides_and_threads_change_no_bit(kind, m, n, k, dtype, rng):
    a, b, c = operands(kind, m, n, k, dtype, rng, pad=0)
    gemm_choice.product(kind, a, b, c, threads=1)
    for pad, threads in [(5, 1), (0, 2), (11, 2), (0, 3)]:
        wide = [np.zeros((x.shape[0], x.shape[1] + pad), dtype) for x in (a, b, c)]
        for w, x in zip(wide, (a, b, c)):
            w[:, :x.shape[1]] = x
        a2, b2, c2 = (w[:, :x.shape[1]] for w, x in zip(wide, (a, b, c)))
        c2[...] = np.nan
        gemm_choice.product(kind, a2, b2, c2, threads=threads)
        np.testing.assert_array_equal(c2, c)


@needs_kernels
@pytest.mark.parametrize("m", [1, 10, 64])
def test_forced_choices_agree(m, dtype, rng):
    x, w, g = (rng.standard_normal(s).astype(dtype) for s in [(m, 70), (70, 40), (m, 40)])
    results = {}
    for name, choice in CHOICES.items():
        force(choice)
        out, grad_w, grad_b = np.empty((m, 40), dtype), np.empty_like(w), np.empty(40, dtype)
        grad_x = np.empty_like(x)
        dense.forward(x, w, np.zeros(40, dtype), out)
        dense.backward(x, w, g, grad_w, grad_b, grad_x)
        results[name] = (out, grad_w, grad_x)
    for own, blas, scale in zip(results["own"], results["blas"], [70, m, 40]):
        assert_close(own, blas, dtype, scale=np.sqrt(scale))


@needs_kernels
@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_compiled_and_layer_paths_stay_bit_identical(choice, monkeypatch, dtype):
    monkeypatch.setattr(_calibration, "gemm_choice",
                        lambda d: gemm_choice.set_choice(d, **CHOICES[choice]))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 30)).astype(dtype), rng.integers(0, 5, 60)
    runs = []
    for compiled in (True, False):
        model = Sequential([L.Dense(30, 20), L.ReLU(), L.Dense(20, 5), L.Softmax()],
                           optimizer=O.Adam(lr=1e-2), seed=3, dtype=dtype)
        model.fit(X, y, epochs=2, batch_size=10, compiled=compiled)
        runs.append(model.params_)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_product_refuses_bad_arguments(rng):
    a, b, c = (np.zeros(s, np.float32) for s in [(3, 4), (4, 5), (3, 5)])
    with pytest.raises(ValueError, match="kind"):
        gemm_choice.product("tt", a, b, c)
    with pytest.raises(ValueError, match="backend"):
        gemm_choice.product("nn", a, b, c, backend="gpu")
    with pytest.raises(ValueError, match="c has shape"):
        gemm_choice.product("nn", a, b, np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="b has dtype"):
        gemm_choice.product("nn", a, b.astype(np.float64), c)
    with pytest.raises(ValueError, match="a must be aligned"):
        gemm_choice.product("nn", np.zeros((4, 3), np.float32).T, b, c)
    shared = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="share memory"):
        gemm_choice.product("nn", shared[:, :4], b, shared)
    with pytest.raises(ValueError, match="alpha"):
        gemm_choice.product("nn", a, b, c, alpha=float("nan"))


FAULTS = [None, None, None, "kind", "backend", "threads", "calls", "alpha", "b dtype",
          "c shape", "c read-only", "a column stride"]
MESSAGES = {"kind": "kind", "backend": "backend", "threads": "threads", "calls": "calls",
            "alpha": "alpha", "b dtype": "b has dtype", "c shape": "c has shape",
            "c read-only": "c must be writeable", "a column stride": "a must be aligned"}


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(gemm_choice.PRODUCTS), m=st.integers(1, 30), n=st.integers(1, 40),
       k=st.integers(1, 40), pad=st.integers(0, 3), double=st.booleans(),
       backend=st.sampled_from(["own", "blas"]), threads=st.integers(1, 3),
       beta=st.sampled_from([0.0, 1.0, -0.5]), fault=st.sampled_from(FAULTS),
       seed=st.integers(0, 2 ** 16))
def test_product_property(kind, m, n, k, pad, double, backend, threads, beta, fault, seed):
    """A faulty call names its argument; any other matches NumPy (or refuses 'own' without
    the kernels)."""
    dtype = np.float64 if double else np.float32
    a, b, c = operands(kind, m, n, k, dtype, np.random.default_rng(seed), pad)
    start = c.astype(np.float64)
    args = dict(alpha=1.5, beta=beta, backend=backend, threads=threads, calls=1)
    if fault == "kind":
        kind_arg = "tt"
    else:
        kind_arg = kind
    if fault == "backend":
        args["backend"] = "gpu"
    if fault == "threads":
        args["threads"] = 0
    if fault == "calls":
        args["calls"] = True
    if fault == "alpha":
        args["alpha"] = float("inf")
    if fault == "b dtype":
        b = b.astype(np.float32 if double else np.float64)
    if fault == "c shape":
        c = np.zeros((m + 1, n), dtype)
    if fault == "c read-only":
        c.flags.writeable = False
    if fault == "a column stride":
        a = np.repeat(a, 2, axis=1)[:, ::2]
    if fault is None and backend == "own" and gemm_choice.vector_bits() == 0:
        with pytest.raises(ValueError, match="backend 'own'"):
            gemm_choice.product(kind_arg, a, b, c, **args)
        return
    if fault is not None:
        with pytest.raises((ValueError, TypeError), match=MESSAGES[fault]):
            gemm_choice.product(kind_arg, a, b, c, **args)
        return
    gemm_choice.product(kind_arg, a, b, c, **args)
    assert_close(c, 1.5 * reference(kind, a, b) + beta * start, dtype, scale=np.sqrt(k) + 2)
