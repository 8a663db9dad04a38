# cython: language_level=3
"""Inverted dropout: Python entry points for the kernels in dropout.pxd.

``rate`` is the probability of DROPPING a unit (``keep = 1 - rate``).  Kept
units are scaled by ``1 / keep`` so that ``E[y] = x``.
"""

from cython cimport floating
from numpy.random cimport bitgen_t

from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, like_array, span,
                                 check_outputs_disjoint, check_range, bit_generator_of)

__all__ = ["forward", "backward"]


cdef object _rows(object a, FloatArray* info):
    """a itself if it is 2-D, else a (1, size) view of it: the kernels see
    every array as consecutive units, and take them as a matrix."""
    if info.ndim == 2:
        return a
    return memoryview(a).cast("B").cast("f" if info.kind == KIND_FLOAT32 else "d",
                                        (1, info.size))


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
    x : ndarray of float32 or float64, C-contiguous, any shape
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
        inputs (other than `y` being `x` itself).
    """
    check_range("rate (probability of dropping a unit)", rate, 0.0, 1.0,
                False, True)
    cdef FloatArray xa, ya, ma
    float_array("x", x, -1, False, &xa)
    like_array("y", y, -1, True, &ya, "x", &xa)
    like_array("mask", mask, -1, True, &ma, "x", &xa)
    check_outputs_disjoint([span("mask", &ma), span("y", &ya)], [span("x", &xa)], (("y", "x"),))
    cdef object bit_generator = bit_generator_of("rng", rng)
    if xa.size == 0:
        return
    if xa.kind == KIND_FLOAT32:
        _forward[float](bit_generator, _rows(x, &xa), _rows(y, &xa),
                        _rows(mask, &xa), rate)
    else:
        _forward[double](bit_generator, _rows(x, &xa), _rows(y, &xa),
                         _rows(mask, &xa), rate)


cdef int _forward(object bit_generator, const floating[:, ::1] x,
                  floating[:, ::1] y, floating[:, ::1] mask,
                  double rate) except -1:
    """forward after its checks (size >= 1; the caller checks)."""
    cdef bitgen_t* bitgen = bitgen_pointer(bit_generator)
    with bit_generator.lock:
        with nogil:
            dropout_forward(bitgen, &x[0, 0], &y[0, 0], &mask[0, 0],
                            x.shape[0] * x.shape[1], rate)
    return 0


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
    cdef FloatArray dya, ma, dxa
    float_array("dy", dy, -1, False, &dya)
    like_array("mask", mask, -1, False, &ma, "dy", &dya)
    like_array("dx", dx, -1, True, &dxa, "dy", &dya)
    check_outputs_disjoint([span("dx", &dxa)], [span("dy", &dya), span("mask", &ma)],
                           (("dx", "dy"), ("dx", "mask")))
    if dya.size == 0:
        return
    if dya.kind == KIND_FLOAT32:
        _backward[float](_rows(dy, &dya), _rows(mask, &dya), _rows(dx, &dya))
    else:
        _backward[double](_rows(dy, &dya), _rows(mask, &dya), _rows(dx, &dya))


cdef int _backward(const floating[:, ::1] dy, const floating[:, ::1] mask,
                   floating[:, ::1] dx) except -1:
    """backward after its checks (size >= 1; the caller checks)."""
    with nogil:
        dropout_backward(&dy[0, 0], &mask[0, 0], &dx[0, 0],
                         dy.shape[0] * dy.shape[1])
    return 0
