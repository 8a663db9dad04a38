"""The choice between fastnn's own small-GEMM kernels and BLAS, and its tools.

``choice`` (gemm_choice.pxd) says, per dtype and product of a dense layer,
up to which batch size the own kernels run, and from which size they split
over threads; every product of ``dense`` and of the compiled epoch reads it.
``fastnn._calibration`` fills it from measurements (``time_product``) made
on the running machine.  Until then — and with ``FASTNN_CALIBRATION=off`` —
every product goes to BLAS.

``product`` runs one product on a chosen backend, for tests and benchmarks.
"""

import numbers
import time

import numpy as np

from cython cimport floating
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY

from fastnn_ext.gemm_choice cimport N_PRODUCTS
from fastnn_ext.blas cimport (own_gemm, blas_gemm, small_gemm_available,
                              small_gemm_vector_bits, use_small_gemm, small_gemm_threads,
                              BLAS_ONE_THREAD_MAX_WORK)

__all__ = ["PRODUCTS", "BLAS_THREADED_WORK", "set_choice", "set_threads", "get_choice",
           "chosen", "vector_bits", "product", "time_product"]

#: the products of a dense layer, in the order of the choice's tables:
#: forward X·W, weight gradient Xᵀ·dZ, input gradient dZ·Wᵀ
PRODUCTS = ("nn", "tn", "nt")
_TRANSPOSES = {"nn": (False, False), "tn": (True, False), "nt": (False, True)}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: OpenBLAS wakes its threads for a product of more multiply-adds m·n·k than
#: this; an epoch's probe times the own kernels split from this size on
BLAS_THREADED_WORK = BLAS_ONE_THREAD_MAX_WORK

# Until calibrated: BLAS for every product, nothing split.
for _t in range(2):
    choice.own_min_length[_t] = 0
    choice.own_max_weights[_t] = 0
    choice.own_large_max_weights[_t] = 0
    for _kind in range(N_PRODUCTS):
        choice.own_max_rows[_t][_kind] = 0
        choice.own_large_max_rows[_t][_kind] = 0
        choice.own_large_min_rows[_t][_kind] = 0
        choice.split_min_work[_t][_kind] = INFINITY
choice.split_floor = INFINITY
choice.threads = 1


def vector_bits():
    """Vector width of the own kernels on this CPU: 512, 256, or 0 (none: BLAS only)."""
    return small_gemm_vector_bits()


def _dtype_index(dtype):
    try:
        index = _DTYPES.index(np.dtype(dtype))
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    return index


def _count(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


#: own_max_weights when no limit is given
UNLIMITED = 2 ** 62


def set_choice(dtype, own_max_rows, own_min_length, split_min_work, threads,
               own_max_weights=UNLIMITED, own_large_max_rows=None, own_large_max_weights=0,
               own_large_min_rows=None):
    """Set the choice for one dtype (the thread count for both).

    Parameters
    ----------
    dtype : float32 or float64
    own_max_rows : dict {"nn", "tn", "nt": int >= 0}
        The own kernels run a product whose batch has at most this many rows
        (0: never); BLAS runs the others.
    own_min_length : int >= 0
        The input gradient dZ·Wᵀ runs on the own kernels only where W's rows
        have at least this many elements.
    split_min_work : dict {"nn", "tn", "nt": float > 0}
        Own-kernel products of at least this many multiply-adds m·n·k are
        split over ``threads`` threads.
    threads : int >= 1
        The split's thread count; 1 splits nothing.  The thread count never
        changes a result, only its speed.
    own_max_weights : int >= 0
        ``own_max_rows`` holds for products whose weight matrix W has at most
        this many elements ...
    own_large_max_rows : dict {"nn", "tn", "nt": int >= 0}, optional
        ... and this one (default: 0, BLAS) for a larger W, of at most
        ``own_large_max_weights`` elements; BLAS runs those of a larger one ...
    own_large_min_rows : dict {"nn", "tn", "nt": int >= 0}, optional
        ... and batches of fewer rows than this (default: 0, none).
    """
    cdef int t = _dtype_index(dtype)
    no_rows = dict.fromkeys(PRODUCTS, 0)
    row_tables = (("own_max_rows", own_max_rows),
                  ("own_large_max_rows", no_rows if own_large_max_rows is None
                   else own_large_max_rows),
                  ("own_large_min_rows", no_rows if own_large_min_rows is None
                   else own_large_min_rows))
    for name, table in row_tables + (("split_min_work", split_min_work),):
        if not isinstance(table, dict) or set(table) != set(PRODUCTS):
            raise ValueError(f"{name} must be a dict with the keys {PRODUCTS}, got {table!r}")
    rows, large_rows, large_min_rows = (
        [_count(f"{name}[{p!r}]", table[p], 0, INT_MAX) for p in PRODUCTS]
        for name, table in row_tables)
    works = []
    for p in PRODUCTS:
        value = split_min_work[p]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(f"split_min_work[{p!r}] must be a number > 0, got {value!r}")
        works.append(float(value))
    length = _count("own_min_length", own_min_length, 0, INT_MAX)
    count = _count("threads", threads, 1, 1024)
    weights = _count("own_max_weights", own_max_weights, 0, UNLIMITED)
    large_weights = _count("own_large_max_weights", own_large_max_weights, 0, UNLIMITED)
    for kind in range(len(PRODUCTS)):
        choice.own_max_rows[t][kind] = rows[kind]
        choice.own_large_max_rows[t][kind] = large_rows[kind]
        choice.own_large_min_rows[t][kind] = large_min_rows[kind]
        choice.split_min_work[t][kind] = works[kind]
    choice.own_min_length[t] = length
    choice.own_max_weights[t] = weights
    choice.own_large_max_weights[t] = large_weights
    choice.threads = count


def set_threads(threads, double split_floor=INFINITY):
    """Set the split's thread count (1: no product is split), for both dtypes.

    ``split_floor``: also split every own-kernel product of at least this
    many multiply-adds, where the calibrated ``split_min_work`` would not
    (the default, infinity, splits only where it does).
    """
    # typed, not isinstance(…, numbers.Real): an epoch calls this per slice,
    # and an abstract-class check may run Python code
    if not split_floor > 0:
        raise ValueError(f"split_floor must be a number > 0, got {split_floor!r}")
    choice.threads = _count("threads", threads, 1, 1024)
    choice.split_floor = split_floor


def get_choice(dtype):
    """The current choice for ``dtype``, as ``set_choice`` takes it (a dict)."""
    cdef int t = _dtype_index(dtype)
    return {"own_max_rows": {p: choice.own_max_rows[t][k] for k, p in enumerate(PRODUCTS)},
            "own_min_length": choice.own_min_length[t],
            "split_min_work": {p: choice.split_min_work[t][k] for k, p in enumerate(PRODUCTS)},
            "threads": choice.threads, "own_max_weights": choice.own_max_weights[t],
            "own_large_max_rows": {p: choice.own_large_max_rows[t][k]
                                   for k, p in enumerate(PRODUCTS)},
            "own_large_max_weights": choice.own_large_max_weights[t],
            "own_large_min_rows": {p: choice.own_large_min_rows[t][k]
                                   for k, p in enumerate(PRODUCTS)}}


def chosen(kind, m, n, k, dtype):
    """(backend, threads) that a dense layer's product C(m×n), inner size k, runs on now."""
    if kind not in _TRANSPOSES:
        raise ValueError(f"kind must be one of {PRODUCTS}, got {kind!r}")
    m, n, k = (_count(name, v, 1, INT_MAX) for name, v in (("m", m), ("n", n), ("k", k)))
    cdef size_t item = _DTYPES[_dtype_index(dtype)].itemsize
    transpose_a, transpose_b = _TRANSPOSES[kind]
    if not use_small_gemm(transpose_a, transpose_b, m, n, k, item):
        return "blas", 1
    return "own", small_gemm_threads(PRODUCTS.index(kind), m, n, k, item)


def _operand(name, a, dtype, rows, cols, writeable=False):
    """a as a 2-D array of dtype and shape (rows, cols) with unit column stride."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}, expected {dtype}")
    if a.ndim != 2 or a.shape != (rows, cols):
        raise ValueError(f"{name} has shape {a.shape}, expected {(rows, cols)}")
    if (a.strides[1] != a.itemsize or a.strides[0] % a.itemsize
            or a.strides[0] < a.itemsize * max(cols, 1) or not a.flags.aligned):
        raise ValueError(f"{name} must be aligned, with contiguous rows in increasing order")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} must be writeable")


def product(kind, a, b, c, alpha=1.0, beta=0.0, backend="own", threads=1, calls=1):
    """c = alpha·op(a)·op(b) + beta·c on a chosen backend (``calls`` times, for timing).

    Parameters
    ----------
    kind : {"nn", "tn", "nt"}
        op(a)·op(b) = a·b, aᵀ·b or a·bᵀ.
    a, b : ndarray of float32 or float64, 2-D
        Rows contiguous, any row stride (a slice of a wider array).
    c : ndarray, 2-D, same dtype, output
        (m, n) where op(a) is (m, k) and op(b) is (k, n); must not overlap a or b.
    alpha, beta : float
        beta = 0 overwrites c without reading it.
    backend : {"own", "blas"}
        fastnn's own kernels (only where ``vector_bits()`` is not 0) or BLAS.
    threads : int >= 1
        Threads of the own kernels' split.
    calls : int >= 1
        How many times the product runs, one after another without the GIL.
    """
    if kind not in _TRANSPOSES:
        raise ValueError(f"kind must be one of {PRODUCTS}, got {kind!r}")
    if backend not in ("own", "blas"):
        raise ValueError(f"backend must be 'own' or 'blas', got {backend!r}")
    if backend == "own" and not small_gemm_available():
        raise ValueError("backend 'own' needs a CPU with AVX2 and FMA or AVX-512")
    cdef int n_threads = _count("threads", threads, 1, 1024)
    cdef Py_ssize_t n_calls = _count("calls", calls, 1, 1 << 30)
    if not isinstance(a, np.ndarray) or a.ndim != 2:
        raise TypeError(f"a must be a 2-D numpy.ndarray, got {type(a).__name__}")
    if not isinstance(b, np.ndarray) or b.ndim != 2:
        raise TypeError(f"b must be a 2-D numpy.ndarray, got {type(b).__name__}")
    transpose_a, transpose_b = _TRANSPOSES[kind]
    m, k = (a.shape[1], a.shape[0]) if transpose_a else a.shape
    n = b.shape[0] if transpose_b else b.shape[1]
    if min(m, n, k) < 1 or max(m, n, k, a.strides[0], b.strides[0]) > INT_MAX:
        raise ValueError(f"sizes m, n, k = {m}, {n}, {k} must be in [1, {INT_MAX}]")
    dtype = _DTYPES[_dtype_index(a.dtype)]
    _operand("a", a, dtype, *a.shape)
    _operand("b", b, dtype, *((n, k) if transpose_b else (k, n)))
    _operand("c", c, dtype, m, n, writeable=True)
    if np.shares_memory(c, a) or np.shares_memory(c, b):
        raise ValueError("c must not share memory with a or b")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if dtype == _DTYPES[0]:
        _product[float](a, b, c, transpose_a, transpose_b, m, n, k, alpha, beta,
                        backend == "own", n_threads, n_calls)
    else:
        _product[double](a, b, c, transpose_a, transpose_b, m, n, k, alpha, beta,
                         backend == "own", n_threads, n_calls)


cdef int _product(const floating[:, :] a, const floating[:, :] b, floating[:, :] c,
                  bint transpose_a, bint transpose_b, int m, int n, int k, double alpha,
                  double beta, bint own, int threads, Py_ssize_t calls) except -1:
    """`calls` times c = alpha·op(a)·op(b) + beta·c (checked by the caller)."""
    cdef int lda = a.strides[0] // sizeof(floating)
    cdef int ldb = b.strides[0] // sizeof(floating)
    cdef int ldc = c.strides[0] // sizeof(floating)
    cdef Py_ssize_t call
    with nogil:
        for call in range(calls):
            if own:
                own_gemm(transpose_a, transpose_b, m, n, k, <floating> alpha, &a[0, 0], lda,
                         &b[0, 0], ldb, <floating> beta, &c[0, 0], ldc, threads)
            else:
                blas_gemm(transpose_a, transpose_b, m, n, k, <floating> alpha, &a[0, 0], lda,
                          &b[0, 0], ldb, <floating> beta, &c[0, 0], ldc)
    return 0


def time_product(kind, m, n, k, dtype, backend, threads=1, calls=1):
    """Seconds taken by ``calls`` products of the shape C(m×n) = op(A)·op(B), inner size k.

    The operands are scratch arrays of ones, allocated before the clock starts;
    the products run without the GIL, one after another, with beta = 0.
    """
    if kind not in _TRANSPOSES:
        raise ValueError(f"kind must be one of {PRODUCTS}, got {kind!r}")
    transpose_a, transpose_b = _TRANSPOSES[kind]
    m, n, k = (_count(name, v, 1, 1 << 20) for name, v in (("m", m), ("n", n), ("k", k)))
    dtype = _DTYPES[_dtype_index(dtype)]
    a = np.ones((k, m) if transpose_a else (m, k), dtype)
    b = np.ones((n, k) if transpose_b else (k, n), dtype)
    c = np.empty((m, n), dtype)
    product(kind, a, b, c, backend=backend, threads=threads)  # checks, warms the caches
    start = time.perf_counter()
    product(kind, a, b, c, backend=backend, threads=threads, calls=calls)
    return time.perf_counter() - start
