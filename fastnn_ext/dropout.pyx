# cython: language_level=3
"""Inverted dropout: Python entry points for the kernels in dropout.pxd.

``rate`` is the probability of DROPPING a unit (``keep = 1 - rate``).  Kept
units are scaled by ``1 / keep`` so that ``E[y] = x``.
"""

cimport numpy as cnp
import numpy as np
from numpy.random cimport bitgen_t

from fastnn_ext._ndarray_checks cimport (check_layout, check_like, check_overlap,
                                         data, float_type)

cnp.import_array()

__all__ = ["forward", "backward"]


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
    cdef int typenum = float_type(x, "x")
    check_layout(x, "x", False)
    check_like(y, "y", x, "x", True)
    check_like(mask, "mask", x, "x", True)
    check_overlap(y, "y", x, "x", True)
    check_overlap(mask, "mask", x, "x", False)
    check_overlap(mask, "mask", y, "y", False)
    cdef object bit_generator = _bit_generator_of(rng)
    cdef bitgen_t* bitgen = bitgen_pointer(bit_generator)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef void* px = data(x)
    cdef void* py = data(y)
    cdef void* pm = data(mask)
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
    cdef int typenum = float_type(dy, "dy")
    check_layout(dy, "dy", False)
    check_like(mask, "mask", dy, "dy", False)
    check_like(dx, "dx", dy, "dy", True)
    check_overlap(dx, "dx", dy, "dy", True)
    check_overlap(dx, "dx", mask, "mask", True)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>dy)
    cdef void* pdy = data(dy)
    cdef void* pm = data(mask)
    cdef void* pdx = data(dx)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            dropout_backward(<const float*>pdy, <const float*>pm, <float*>pdx, n)
        else:
            dropout_backward(<const double*>pdy, <const double*>pm,
                             <double*>pdx, n)
