import atexit
import ctypes
import mmap
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import settings

# Continuous integration explores the same examples every run: a red run there
# is reproducible, not the luck of a draw.  Locally, hypothesis draws afresh.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# float32 kernels are compared with float64 NumPy references to this relative tolerance
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def restored_choice():
    """The kernel choice of both dtypes (fastnn_ext.gemm_choice) as it was before the test."""
    from fastnn_ext import gemm_choice

    saved = {dtype: gemm_choice.get_choice(dtype) for dtype in (np.float32, np.float64)}
    yield
    for dtype, choice in saved.items():
        gemm_choice.set_choice(dtype, **choice)


def in_parent_and_forked_child(function, *args):
    """function(*args) here with two OpenMP threads allowed, then in a forked child.

    GNU OpenMP's threads do not survive fork(): a child that used them as
    its parent did would wait for them forever (a minute here, then the
    test fails).
    """
    import multiprocessing

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="openmp"):
        in_parent = function(*args)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            return in_parent, pool.apply_async(function, args).get(timeout=60)


def assert_close(actual, expected, dtype, scale=None):
    """Relative agreement at the precision of dtype, relative to the array's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    if scale is None:
        scale = max(np.abs(expected).max(initial=0.0), 1.0)
    error = np.abs(actual - expected).max(initial=0.0) / scale
    assert error <= TOLERANCE[dtype], f"relative error {error:.3g}"


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


# The run's calibration measurements go to a cache of its own, set before
# fastnn is first imported: importing it applies the cached kernel choice, and
# a choice read from the user's cache in this process but measured afresh in
# a subprocess of a test would make their seeded runs differ.
_CACHE = tempfile.mkdtemp(prefix="fastnn-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
