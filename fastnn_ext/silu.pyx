"""SiLU (swish), f(z) = z·σ(z), as an activation kernel table (``SILU``).

Its derivative f'(z) = σ(z)·(1 + z·(1 − σ(z))) cannot be recovered from the
output alone, so the table sets ``needs_input``: the forward pass keeps z.
σ(z) = 1/(1 + e^{−z}) is finite for every finite z (e^{−z} = ∞ gives σ = 0).
"""

from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating

from fastnn_ext.activations cimport ActivationKernels, ACTIVATION_CAPSULE, exp_of


cdef inline floating sigmoid_of(floating z) noexcept nogil:
    return 1 / (1 + exp_of(-z))


cdef void silu_forward(const floating* z, const floating* bias, floating* out,
                       Py_ssize_t m, Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating v
    for i in range(m):
        for j in range(n):
            v = z[i * n + j] + bias[j] if bias != NULL else z[i * n + j]
            out[i * n + j] = v * sigmoid_of(v)


cdef void silu_backward(const floating* z, const floating* out, const floating* grad_out,
                        floating* grad_in, Py_ssize_t size, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating s
    for i in range(size):
        s = sigmoid_of(z[i])
        grad_in[i] = grad_out[i] * (s * (1 + z[i] * (1 - s)))


cdef ActivationKernels SILU_KERNELS = ActivationKernels(
    silu_forward[float], silu_forward[double], silu_backward[float], silu_backward[double],
    True, False)

SILU = PyCapsule_New(&SILU_KERNELS, ACTIVATION_CAPSULE, NULL)
