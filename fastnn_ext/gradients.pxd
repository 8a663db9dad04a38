# Transformations of the flat gradient buffer between backward and the
# optimizer step: weight penalties, clipping, noise.

from cython cimport floating
from libc.math cimport sqrt, log, cos, sin, M_PI
from numpy.random cimport bitgen_t


cdef inline void add_weight_penalty(const floating* w, floating* g, Py_ssize_t n,
                                    floating l2, floating l1) noexcept nogil:
    """g += l2·w + l1·sign(w): the gradient of l2/2·‖w‖² + l1·‖w‖₁ (sign(0) = 0)."""
    cdef Py_ssize_t i
    cdef floating v
    if l1 == 0:
        for i in range(n):
            g[i] = g[i] + l2 * w[i]
        return
    for i in range(n):
        v = w[i]
        g[i] = g[i] + l2 * v + l1 * ((v > 0) - (v < 0))


cdef inline double squared_norm(const floating* g, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(n):
        total += <double> g[i] * g[i]
    return total


cdef inline void scale_inplace(floating* g, Py_ssize_t n, floating factor) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        g[i] = g[i] * factor


cdef inline void clip_values(floating* g, Py_ssize_t n, floating limit) noexcept nogil:
    """Clamp every element into [-limit, limit]."""
    cdef Py_ssize_t i
    for i in range(n):
        if g[i] > limit:
            g[i] = limit
        elif g[i] < -limit:
            g[i] = -limit


cdef inline void add_gaussian_noise(bitgen_t* rng, floating* g, Py_ssize_t n,
                                    double sigma) noexcept nogil:
    """g += N(0, sigma²) per element, Box–Muller on the model's bit generator."""
    cdef Py_ssize_t i = 0
    cdef double radius, angle
    while i < n:
        # 1 − U lies in (0, 1], so the logarithm is finite.
        radius = sigma * sqrt(-2.0 * log(1.0 - rng.next_double(rng.state)))
        angle = 2.0 * M_PI * rng.next_double(rng.state)
        g[i] = g[i] + <floating> (radius * cos(angle))
        if i + 1 < n:
            g[i + 1] = g[i + 1] + <floating> (radius * sin(angle))
        i += 2
