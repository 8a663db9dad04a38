"""Python-visible gradient transformations (thin, checked wrappers).

Vectors are 1-D C-contiguous float32 or float64 arrays; every argument is
checked before a kernel runs.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport INFINITY, isfinite
from numpy.random cimport bitgen_t
from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, expect_kind,
                                 expect_length, check_disjoint, check_range,
                                 bit_generator_of)


def weight_penalty(w, g, double l2, double l1=0.0):
    """Add the gradient of a weight penalty, in place::

        g += l2 * w + l1 * sign(w)        (sign(0) = 0)

    the gradient of ``l2/2 * ‖w‖² + l1 * ‖w‖₁``.

    Parameters
    ----------
    w : ndarray of float32 or float64, shape (n,), C-contiguous
        Weights.
    g : ndarray, shape (n,), same dtype, updated in place
        Gradient; must not overlap `w`.
    l2, l1 : float
        Finite, non-negative penalty coefficients.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or the dtypes differ.
    ValueError
        If the lengths differ, an array is not 1-D, C-contiguous and aligned,
        g is read-only or overlaps w, or a coefficient is negative or not
        finite.
    """
    cdef FloatArray wa, ga
    float_array("w", w, 1, False, &wa)
    float_array("g", g, 1, True, &ga)
    expect_kind("g", &ga, "w", &wa)
    expect_length("g", ga.rows, wa.rows)
    check_disjoint("g", &ga, "w", &wa, False)
    check_range("l2", l2, 0.0, INFINITY, False, True)
    check_range("l1", l1, 0.0, INFINITY, False, True)
    if wa.rows == 0:
        return
    if wa.kind == KIND_FLOAT32:
        _weight_penalty[float](w, g, l2, l1)
    else:
        _weight_penalty[double](w, g, l2, l1)


cdef int _weight_penalty(const floating[::1] w, floating[::1] g, double l2,
                         double l1) except -1:
    """weight_penalty after its checks (n >= 1; the caller checks)."""
    with nogil:
        add_weight_penalty(&w[0], &g[0], w.shape[0], <floating> l2, <floating> l1)
    return 0


def clip_by_global_norm(g, double max_norm):
    """Scale g in place so that its 2-norm is at most `max_norm`::

        g *= min(1, max_norm / ‖g‖₂)

    Parameters
    ----------
    g : ndarray of float32 or float64, shape (n,), C-contiguous, updated in place
    max_norm : float
        Finite and > 0.

    Returns
    -------
    float
        ‖g‖₂ before clipping, summed in double.  If it is not finite (g
        holds a NaN or an infinity, or the sum overflows) g is left alone:
        scaling by max_norm/inf = 0 would turn the infinities into NaN and
        every finite element into 0.

    Raises
    ------
    TypeError
        If g is not a float32/float64 array.
    ValueError
        If g is not 1-D, C-contiguous, aligned and writeable, or max_norm is
        not finite and positive.
    """
    cdef FloatArray ga
    float_array("g", g, 1, True, &ga)
    check_range("max_norm", max_norm, 0.0, INFINITY, True, True)
    if ga.rows == 0:
        return 0.0
    if ga.kind == KIND_FLOAT32:
        return _clip_by_global_norm[float](g, max_norm)
    return _clip_by_global_norm[double](g, max_norm)


cdef double _clip_by_global_norm(floating[::1] g, double max_norm) except? -1:
    """clip_by_global_norm after its checks (n >= 1; the caller checks)."""
    cdef double norm
    with nogil:
        norm = sqrt(squared_norm(&g[0], g.shape[0]))
        if norm > max_norm and isfinite(norm):
            scale_inplace(&g[0], g.shape[0], <floating> (max_norm / norm))
    return norm


def clip_by_value(g, double limit):
    """Clamp every element of g into [-limit, limit], in place.

    Parameters
    ----------
    g : ndarray of float32 or float64, shape (n,), C-contiguous, updated in place
    limit : float
        Finite and > 0.

    Raises
    ------
    TypeError
        If g is not a float32/float64 array.
    ValueError
        If g is not 1-D, C-contiguous, aligned and writeable, or limit is not
        finite and positive.
    """
    cdef FloatArray ga
    float_array("g", g, 1, True, &ga)
    check_range("limit", limit, 0.0, INFINITY, True, True)
    if ga.rows == 0:
        return
    if ga.kind == KIND_FLOAT32:
        _clip_by_value[float](g, limit)
    else:
        _clip_by_value[double](g, limit)


cdef int _clip_by_value(floating[::1] g, double limit) except -1:
    """clip_by_value after its checks (n >= 1; the caller checks)."""
    with nogil:
        clip_values(&g[0], g.shape[0], <floating> limit)
    return 0


def gaussian_noise(generator, g, double sigma):
    """Add independent N(0, sigma²) noise to every element of g, in place.

    Parameters
    ----------
    generator : numpy.random.Generator
        Source of the normal draws (Box–Muller on its bit generator, whose
        lock is held while drawing).
    g : ndarray of float32 or float64, shape (n,), C-contiguous, updated in place
    sigma : float
        Standard deviation, finite and >= 0.

    Raises
    ------
    TypeError
        If generator is not a numpy Generator or g is not a float32/float64
        array.
    ValueError
        If g is not 1-D, C-contiguous, aligned and writeable, or sigma is
        negative or not finite.
    """
    cdef FloatArray ga
    bit_generator = bit_generator_of("generator", generator)
    float_array("g", g, 1, True, &ga)
    check_range("sigma", sigma, 0.0, INFINITY, False, True)
    if ga.rows == 0:
        return
    if ga.kind == KIND_FLOAT32:
        _gaussian_noise[float](bit_generator, g, sigma)
    else:
        _gaussian_noise[double](bit_generator, g, sigma)


cdef int _gaussian_noise(object bit_generator, floating[::1] g, double sigma) except -1:
    """gaussian_noise after its checks (n >= 1; the caller checks)."""
    cdef bitgen_t* rng = <bitgen_t*> PyCapsule_GetPointer(bit_generator.capsule,
                                                         "BitGenerator")
    with bit_generator.lock, nogil:
        add_gaussian_noise(rng, &g[0], g.shape[0], sigma)
    return 0
