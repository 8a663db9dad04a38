# cython: language_level=3
"""Inverted-dropout kernels on contiguous buffers.

``rate`` is the probability of DROPPING a unit; a unit is kept with
probability ``keep = 1 - rate``.  Kept units are scaled by ``1 / keep`` so
that the expectation of the output equals the input:

    mask[i] = 1 / keep   with probability keep,   else 0
    y[i]    = x[i] * mask[i]
    dx[i]   = dy[i] * mask[i]

The kernels run without the GIL and allocate nothing.  The caller must hold
the bit generator's lock while a forward kernel draws from it.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport ldexp
from libc.stdint cimport uint8_t, uint64_t
from numpy.random cimport bitgen_t


cdef extern from "dropout_kernels.h" nogil:
    enum: FASTNN_DROPOUT_BLOCK
    void fastnn_dropout_draw_bytes(bitgen_t* rng, uint8_t* bits, Py_ssize_t n)
    void fastnn_dropout_settle_ties(bitgen_t* rng, uint8_t* bits, Py_ssize_t n,
                                    uint8_t cut, uint64_t low)
    void fastnn_dropout_apply_f32(const uint8_t* bits, uint8_t limit, float scale,
                                  const float* x, float* y, float* mask,
                                  Py_ssize_t n)
    void fastnn_dropout_apply_f64(const uint8_t* bits, uint8_t limit, double scale,
                                  const double* x, double* y, double* mask,
                                  Py_ssize_t n)


cdef inline bitgen_t* bitgen_pointer(object bit_generator) except NULL:
    """The C state of a numpy BitGenerator (raises ValueError if it has none).

    The pointer is valid while bit_generator is alive; draw from it only while
    holding bit_generator.lock.
    """
    return <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")


cdef inline void dropout_fill(const floating* x, floating* y, floating* mask,
                              Py_ssize_t n, floating value) noexcept nogil:
    """mask = value, y = x * value: the degenerate rates that need no draws."""
    cdef Py_ssize_t i
    for i in range(n):
        mask[i] = value
        y[i] = x[i] * value


cdef inline void dropout_forward(bitgen_t* rng, const floating* x, floating* y,
                                 floating* mask, Py_ssize_t n,
                                 double rate) noexcept nogil:
    """Draw a dropout mask for n units and apply it: y = x * mask.

    rate is the probability of DROPPING a unit (0 <= rate < 1).  mask[i] is
    1 / (1 - rate) for a kept unit and 0 for a dropped one.  y may be x itself;
    mask must overlap neither.  rate == 0 makes no draws.  Out-of-range rates
    never fault: rate <= 0 or NaN acts as 0 and rate >= 1 drops every unit
    (the Python wrapper rejects them).  The caller holds the generator's lock.
    """
    cdef double keep = 1.0 - rate
    cdef uint8_t bits[FASTNN_DROPOUT_BLOCK]
    cdef uint64_t threshold, low
    cdef uint8_t cut, limit
    cdef floating scale
    cdef Py_ssize_t start, count
    if not keep < 1.0:
        # Also catches a NaN rate: leave the input unchanged rather than
        # convert NaN to an integer threshold.
        dropout_fill(x, y, mask, n, <floating>1.0)
        return
    if not keep > 0.0:
        dropout_fill(x, y, mask, n, <floating>0.0)
        return
    scale = <floating>(1.0 / keep)
    # Scaling by 2**64 is exact and keep < 1 keeps the product below 2**64;
    # the conversion truncates only a fraction (for keep < 2**-12), so
    # P(keep) = threshold / 2**64 is within 2**-64 of keep.
    threshold = <uint64_t>ldexp(keep, 64)
    cut = <uint8_t>(threshold >> 56)
    low = threshold & ((<uint64_t>1 << 56) - 1)
    limit = cut if cut > 0 else 1
    start = 0
    while start < n:
        count = min(<Py_ssize_t>FASTNN_DROPOUT_BLOCK, n - start)
        fastnn_dropout_draw_bytes(rng, bits, count)
        fastnn_dropout_settle_ties(rng, bits, count, cut, low)
        if floating is float:
            fastnn_dropout_apply_f32(bits, limit, scale, x + start, y + start,
                                     mask + start, count)
        else:
            fastnn_dropout_apply_f64(bits, limit, scale, x + start, y + start,
                                     mask + start, count)
        start += count


cdef inline void dropout_backward(const floating* dy, const floating* mask,
                                  floating* dx, Py_ssize_t n) noexcept nogil:
    """dx = dy * mask, with the mask saved by dropout_forward; dx may be dy."""
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] = dy[i] * mask[i]
