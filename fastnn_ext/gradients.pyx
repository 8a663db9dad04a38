"""Python-visible gradient transformations (thin, checked wrappers)."""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from numpy.random cimport bitgen_t
from fastnn_ext._checks cimport expect_length


def weight_penalty(const floating[::1] w, floating[::1] g, double l2, double l1=0.0):
    """g += l2 * w + l1 * sign(w), in place."""
    expect_length("g", g.shape[0], w.shape[0])
    if w.shape[0] == 0:
        return
    with nogil:
        add_weight_penalty(&w[0], &g[0], w.shape[0], <floating> l2, <floating> l1)


def clip_by_global_norm(floating[::1] g, double max_norm):
    """Scale g so that its 2-norm is at most max_norm; returns the norm before."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    cdef double norm = 0
    if g.shape[0] == 0:
        return norm
    with nogil:
        norm = sqrt(squared_norm(&g[0], g.shape[0]))
        if norm > max_norm:
            scale_inplace(&g[0], g.shape[0], <floating> (max_norm / norm))
    return norm


def clip_by_value(floating[::1] g, double limit):
    """Clamp g into [-limit, limit], in place."""
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if g.shape[0] == 0:
        return
    with nogil:
        clip_values(&g[0], g.shape[0], <floating> limit)


def gaussian_noise(generator, floating[::1] g, double sigma):
    """g += N(0, sigma²) drawn from a numpy Generator's bit generator."""
    if not sigma >= 0:
        raise ValueError(f"sigma must be non-negative, got {sigma}")
    bit_generator = generator.bit_generator
    cdef bitgen_t* rng = <bitgen_t*> PyCapsule_GetPointer(bit_generator.capsule,
                                                         "BitGenerator")
    if g.shape[0] == 0:
        return
    with bit_generator.lock, nogil:
        add_gaussian_noise(rng, &g[0], g.shape[0], sigma)
