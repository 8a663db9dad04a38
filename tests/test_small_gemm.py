"""The small-batch matrix products (small_gemm_kernels.h) behind the dense kernels.

On AVX-512 CPUs, products whose result has few rows bypass BLAS; these tests
sweep the shapes around the kernels' block boundaries (12 rows, 16 and 32
columns of float32, 8 and 16 of float64, 128 rows, a 1 MiB right operand;
4×4 dot products of 64 or more elements for a transposed right operand)
against NumPy, and check that no load reads past the end of an operand that
ends right before an unmapped page.
"""

import ctypes
import mmap

import numpy as np
import pytest
from conftest import assert_close

from fastnn_ext import dense

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


PROT_NONE = 0  # <sys/mman.h>; the mmap module exports only PROT_READ and PROT_WRITE


class GuardedArrays:
    """Arrays that end exactly where an inaccessible page begins."""

    def __init__(self, pages=8):
        self.page = mmap.PAGESIZE
        self.size = pages * self.page
        self.buffer = mmap.mmap(-1, self.size + self.page)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))
        self.libc = ctypes.CDLL(None, use_errno=True)
        self._protect(PROT_NONE)

    def _protect(self, flags):
        result = self.libc.mprotect(ctypes.c_void_p(self.address + self.size),
                                    ctypes.c_size_t(self.page), flags)
        assert result == 0, ctypes.get_errno()

    def ending_at_guard(self, values):
        values = np.ascontiguousarray(values)
        assert values.nbytes <= self.size
        flat = np.frombuffer(self.buffer, dtype=values.dtype, count=values.size,
                             offset=self.size - values.nbytes)
        placed = flat.reshape(values.shape)
        placed[...] = values
        return placed

    def release(self):
        self._protect(mmap.PROT_READ | mmap.PROT_WRITE)


@pytest.fixture
def guarded():
    arrays = GuardedArrays()
    yield arrays
    arrays.release()


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
