"""Python-visible optimizer step (a thin, checked wrapper over optim.pxd).

Kind codes: SGD, ADAGRAD, RMSPROP, ADADELTA, ADAM, ADAMW (also in ``KINDS``);
``N_HYPER[kind]`` is the length of the kind's hyper-parameter array and
``n_slots(kind, hyper)`` the number of state rows it needs.  optim.pxd
documents both layouts.
"""

import operator

import numpy as np

cimport numpy as cnp

cnp.import_array()

SGD = OPT_SGD
ADAGRAD = OPT_ADAGRAD
RMSPROP = OPT_RMSPROP
ADADELTA = OPT_ADADELTA
ADAM = OPT_ADAM
ADAMW = OPT_ADAMW

KINDS = {
    "sgd": OPT_SGD,
    "adagrad": OPT_ADAGRAD,
    "rmsprop": OPT_RMSPROP,
    "adadelta": OPT_ADADELTA,
    "adam": OPT_ADAM,
    "adamw": OPT_ADAMW,
}

N_HYPER = {code: optimizer_n_hyper(code) for code in KINDS.values()}


def _kind_code(kind):
    try:
        return operator.index(kind)
    except TypeError:
        raise TypeError(f"optimizer kind must be an integer code, "
                        f"got {type(kind).__name__}") from None


def _hyper_array(kind, hyper):
    """hyper as a contiguous float64 array of kind's length."""
    want = optimizer_n_hyper(_kind_code(kind))
    if want < 0:
        raise ValueError(f"unknown optimizer kind {kind!r}; "
                         f"expected one of {sorted(KINDS.values())}")
    arr = np.asarray(hyper)
    if arr.dtype != np.float64:
        raise TypeError(f"hyper has dtype {arr.dtype}, expected float64")
    if arr.ndim != 1 or arr.shape[0] != want:
        raise ValueError(f"hyper has shape {arr.shape}, expected ({want},) "
                         f"for optimizer kind {kind}")
    return np.ascontiguousarray(arr)


def n_slots(kind, hyper):
    """Rows of the state block that ``kind`` with ``hyper`` uses."""
    cdef const double[::1] h = _hyper_array(kind, hyper)
    return optimizer_n_slots(kind, &h[0])


cdef cnp.ndarray _array(str name, object arr, int typenum, str want, int ndim):
    """arr itself if it is an aligned, native-order, C-contiguous ndarray of
    the given type and number of dimensions; raises otherwise."""
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray> arr
    if cnp.PyArray_TYPE(a) != typenum:
        raise TypeError(f"{name} has dtype {a.dtype}, expected {want}")
    if cnp.PyArray_ISBYTESWAPPED(a):
        raise TypeError(f"{name} is in non-native byte order")
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name} has {cnp.PyArray_NDIM(a)} dimensions, expected {ndim}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{name} must be C-contiguous and aligned")
    return a


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether two contiguous arrays share any byte."""
    cdef char* a0 = <char*> cnp.PyArray_DATA(a)
    cdef char* b0 = <char*> cnp.PyArray_DATA(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    return na > 0 and nb > 0 and a0 < b0 + nb and b0 < a0 + na


def step(kind, hyper, param, grad, state, Py_ssize_t n_decay, double lr, long step):
    """Apply one optimizer update to ``param`` in place (and to ``state``).

    Parameters
    ----------
    kind : int
        Optimizer code (``KINDS``).
    hyper : ndarray of float64
        The kind's hyper-parameters, in the order documented in optim.pxd.
    param : ndarray, 1-D, float32 or float64, C-contiguous, writable
    grad : ndarray, same dtype and length as ``param``; only read.
    state : ndarray, shape (n_slots(kind, hyper), len(param)), same dtype,
        C-contiguous, writable.
    n_decay : int
        Weight decay applies to ``param[:n_decay]`` only.
    lr : float
        This step's learning rate.
    step : int
        1-based number of this update (bias corrections, AdaGrad's decay,
        SGD's first momentum step).

    Raises
    ------
    TypeError
        A non-array argument, or a dtype other than float64 for ``hyper`` and
        than ``param``'s for ``grad`` and ``state``.
    ValueError
        An unknown kind, a length or shape that does not match, a read-only
        or non-contiguous array, or overlapping arrays.
    """
    cdef int code = _kind_code(kind)
    cdef Py_ssize_t n_hyper = optimizer_n_hyper(code)
    if n_hyper < 0:
        raise ValueError(f"unknown optimizer kind {kind!r}; "
                         f"expected one of {sorted(KINDS.values())}")
    cdef cnp.ndarray h = _array("hyper", hyper, cnp.NPY_DOUBLE, "float64", 1)
    if h.shape[0] != n_hyper:
        raise ValueError(f"hyper has length {h.shape[0]}, expected {n_hyper} "
                         f"for optimizer kind {code}")
    cdef const double* h_ptr = <const double*> cnp.PyArray_DATA(h)

    if not cnp.PyArray_Check(param):
        raise TypeError(f"param must be a numpy array, got {type(param).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray> param)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"param has dtype {param.dtype}, expected float32 or float64")
    want = "float32" if typenum == cnp.NPY_FLOAT else "float64"
    cdef cnp.ndarray p = _array("param", param, typenum, want, 1)
    cdef cnp.ndarray g = _array("grad", grad, typenum, want, 1)
    cdef cnp.ndarray st = _array("state", state, typenum, want, 2)
    cdef Py_ssize_t n = p.shape[0]
    if g.shape[0] != n:
        raise ValueError(f"grad has length {g.shape[0]}, expected {n}")
    cdef Py_ssize_t slots = optimizer_n_slots(code, h_ptr)
    if st.shape[0] != slots or st.shape[1] != n:
        raise ValueError(f"state has shape ({st.shape[0]}, {st.shape[1]}), "
                         f"expected ({slots}, {n})")
    if not 0 <= n_decay <= n:
        raise ValueError(f"n_decay is {n_decay}, expected 0 <= n_decay <= {n}")
    if step < 1:
        raise ValueError(f"step is {step}, expected a 1-based step number >= 1")
    if not cnp.PyArray_ISWRITEABLE(p) or not cnp.PyArray_ISWRITEABLE(st):
        raise ValueError("param and state must be writable")
    # The kernels take __restrict pointers: overlapping buffers would be
    # silently miscomputed.
    if _overlap(p, g) or _overlap(p, st) or _overlap(g, st):
        raise ValueError("param, grad and state must not overlap")
    if n == 0:
        return

    cdef void* p_ptr = cnp.PyArray_DATA(p)
    cdef void* g_ptr = cnp.PyArray_DATA(g)
    cdef void* st_ptr = cnp.PyArray_DATA(st) if slots > 0 else NULL
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            optimizer_step[float](code, h_ptr, <float*> p_ptr, <const float*> g_ptr,
                                  <float*> st_ptr, n, n_decay, lr, step)
        else:
            optimizer_step[double](code, h_ptr, <double*> p_ptr, <const double*> g_ptr,
                                   <double*> st_ptr, n, n_decay, lr, step)
