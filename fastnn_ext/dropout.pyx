# cython: language_level=3
"""Inverted dropout: Python entry points for the kernels in dropout.pxd.

``rate`` is the probability of DROPPING a unit (``keep = 1 - rate``).  Kept
units are scaled by ``1 / keep`` so that ``E[y] = x``.
"""

cimport numpy as cnp
import numpy as np
from numpy.random cimport bitgen_t

cnp.import_array()

__all__ = ["forward", "backward"]


cdef int _float_type(object a, str name) except -1:
    """The numpy type number of a float32/float64 ndarray in native byte order."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if ((typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
        raise TypeError(f"{name} must have dtype float32 or float64 in native "
                        f"byte order, got {a.dtype}")
    return typenum


cdef int _check_array(object a, str name, object like, str like_name,
                      bint writeable) except -1:
    """Check that a matches like in dtype and shape and is C-contiguous."""
    cdef int typenum = _float_type(a, name)
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef cnp.ndarray ref = <cnp.ndarray>like
    if typenum != cnp.PyArray_TYPE(ref):
        raise TypeError(f"{name} has dtype {a.dtype} but {like_name} has "
                        f"dtype {like.dtype}")
    if not cnp.PyArray_SAMESHAPE(arr, ref):
        raise ValueError(f"{name} has shape {a.shape} but {like_name} has "
                         f"shape {like.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{name} must be aligned")
    if writeable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writeable")
    return 0


cdef int _check_overlap(object out, str out_name, object other, str other_name,
                        bint same_ok) except -1:
    """Reject an output sharing memory with another array, unless it is that
    very array and the kernel reads each element before writing it there."""
    cdef cnp.ndarray a = <cnp.ndarray>out
    cdef cnp.ndarray b = <cnp.ndarray>other
    cdef char* a0 = cnp.PyArray_BYTES(a)
    cdef char* b0 = cnp.PyArray_BYTES(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(b)
    if na == 0 or nb == 0 or a0 + na <= b0 or b0 + nb <= a0:
        return 0
    if same_ok and a0 == b0 and na == nb:
        return 0
    raise ValueError(f"{out_name} overlaps {other_name} in memory")


cdef object _bit_generator_of(object rng):
    """The BitGenerator behind a Generator (a bare BitGenerator is accepted)."""
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator
    if isinstance(rng, np.random.BitGenerator):
        return rng
    raise TypeError(f"rng must be a numpy.random.Generator, got "
                    f"{type(rng).__name__}")


def forward(rng, x, y, mask, double rate):
    """Inverted dropout, forward pass: draw a mask and apply it.

    Each unit is dropped independently with probability `rate` and kept with
    probability ``keep = 1 - rate``::

        mask = 1 / keep  (kept unit)   or   0  (dropped unit)
        y    = x * mask

    so ``E[y] = x``.  Kept units of `y` are ``x * s`` with ``s = 1 / keep``
    rounded to the array's dtype.  P(keep) equals `keep` to within 2**-64.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the random bits (its bit generator is advanced; its lock is
        held while drawing).  The same seed gives the same mask.
    x : ndarray of float32 or float64, C-contiguous
        Input activations, typically of shape (batch, features).
    y : ndarray, same shape and dtype as x
        Output, ``x * mask``.  May be `x` itself (in-place dropout).
    mask : ndarray, same shape and dtype as x
        Output, the scaled mask to pass to `backward`.  Must not share memory
        with `x` or `y`.
    rate : float
        Probability of DROPPING a unit, ``0 <= rate < 1``.  ``rate == 0``
        copies `x` to `y`, fills `mask` with ones and draws nothing.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray, dtypes differ or `rng`
        is not a Generator.
    ValueError
        If `rate` is outside [0, 1) or NaN, shapes differ, an array is not
        C-contiguous, aligned and (for outputs) writeable, or outputs overlap
        inputs.
    """
    if not (0.0 <= rate < 1.0):
        raise ValueError(f"rate (probability of dropping a unit) must satisfy "
                         f"0 <= rate < 1, got {rate!r}")
    cdef int typenum = _float_type(x, "x")
    _check_array(x, "x", x, "x", False)
    _check_array(y, "y", x, "x", True)
    _check_array(mask, "mask", x, "x", True)
    _check_overlap(y, "y", x, "x", True)
    _check_overlap(mask, "mask", x, "x", False)
    _check_overlap(mask, "mask", y, "y", False)
    cdef object bit_generator = _bit_generator_of(rng)
    cdef bitgen_t* bitgen = bitgen_pointer(bit_generator)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef void* px = cnp.PyArray_DATA(<cnp.ndarray>x)
    cdef void* py = cnp.PyArray_DATA(<cnp.ndarray>y)
    cdef void* pm = cnp.PyArray_DATA(<cnp.ndarray>mask)
    with bit_generator.lock:
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                dropout_forward(bitgen, <const float*>px, <float*>py,
                                <float*>pm, n, rate)
            else:
                dropout_forward(bitgen, <const double*>px, <double*>py,
                                <double*>pm, n, rate)


def backward(dy, mask, dx):
    """Inverted dropout, backward pass: ``dx = dy * mask``.

    Parameters
    ----------
    dy : ndarray of float32 or float64, C-contiguous
        Gradient with respect to the forward output ``y``.
    mask : ndarray, same shape and dtype as dy
        The mask written by `forward` (``1 / keep`` or 0 per unit).
    dx : ndarray, same shape and dtype as dy
        Output, gradient with respect to the forward input ``x``.  May be `dy`
        or `mask` itself.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or dtypes differ.
    ValueError
        If shapes differ, an array is not C-contiguous, aligned and (for dx)
        writeable, or dx partially overlaps an input.
    """
    cdef int typenum = _float_type(dy, "dy")
    _check_array(dy, "dy", dy, "dy", False)
    _check_array(mask, "mask", dy, "dy", False)
    _check_array(dx, "dx", dy, "dy", True)
    _check_overlap(dx, "dx", dy, "dy", True)
    _check_overlap(dx, "dx", mask, "mask", True)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>dy)
    cdef void* pdy = cnp.PyArray_DATA(<cnp.ndarray>dy)
    cdef void* pm = cnp.PyArray_DATA(<cnp.ndarray>mask)
    cdef void* pdx = cnp.PyArray_DATA(<cnp.ndarray>dx)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            dropout_backward(<const float*>pdy, <const float*>pm, <float*>pdx, n)
        else:
            dropout_backward(<const double*>pdy, <const double*>pm,
                             <double*>pdx, n)
