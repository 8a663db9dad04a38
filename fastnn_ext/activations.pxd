# Element-wise activations, fused bias + activation forward and the
# derivative times the upstream gradient for backward, and the row-wise
# softmax and the learned-slope PReLU.
#
# An element-wise activation is a table of four kernels (forward and backward
# in float32 and float64, ``ActivationKernels``) defined in its own module and
# handed to Python as a capsule named ``ACTIVATION_CAPSULE``; a layer holds
# that capsule, and the compiled training loop calls the table through its
# op record.  A new activation is its kernels, its table and its layer
# class: nothing here changes.
#
# Derivatives are taken from the saved outputs a = f(z) wherever the math
# allows, so backward needs no copy of the pre-activation z:
#   sigmoid' = a(1 − a),  tanh' = 1 − a²,  relu' = [a > 0],
#   leaky_relu' = 1 if a > 0 else α  (valid for α ≥ 0: a > 0 ⇔ z > 0).
# An activation whose derivative needs z (SiLU) sets ``needs_input``: the
# forward pass then keeps z, and backward receives it.  PReLU's learned slope
# may be negative, so it keeps z too.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf, log, logf, INFINITY
from fastnn_ext._checks cimport real_arg, check_range

cdef extern from "elementwise_kernels.h" nogil:
    void fastnn_sigmoid_rows_f32(const float* z, const float* bias, float* out,
                                 Py_ssize_t m, Py_ssize_t n)
    void fastnn_sigmoid_rows_f64(const double* z, const double* bias, double* out,
                                 Py_ssize_t m, Py_ssize_t n)

# forward: out[i, j] = f(z[i, j] + bias[j]) for an (m × n) z; bias may be NULL
# and out may be z itself.
ctypedef void (*ActivationForward32)(const float* z, const float* bias, float* out,
                                     Py_ssize_t m, Py_ssize_t n, float alpha) noexcept nogil
ctypedef void (*ActivationForward64)(const double* z, const double* bias, double* out,
                                     Py_ssize_t m, Py_ssize_t n, double alpha) noexcept nogil
# backward: grad_in = grad_out · f'(z) over size elements, from out = f(z) (and
# z itself when needs_input, else NULL); grad_in may be grad_out itself.
ctypedef void (*ActivationBackward32)(const float* z, const float* out, const float* grad_out,
                                      float* grad_in, Py_ssize_t size,
                                      float alpha) noexcept nogil
ctypedef void (*ActivationBackward64)(const double* z, const double* out,
                                      const double* grad_out, double* grad_in,
                                      Py_ssize_t size, double alpha) noexcept nogil

ctypedef struct ActivationKernels:
    ActivationForward32 forward32
    ActivationForward64 forward64
    ActivationBackward32 backward32
    ActivationBackward64 backward64
    bint needs_input    # backward reads the pre-activation z
    bint is_identity    # f(z) = z: backward may be skipped

cdef extern from *:
    """
    #define FASTNN_ACTIVATION_CAPSULE "fastnn.ActivationKernels"
    """
    const char* ACTIVATION_CAPSULE "FASTNN_ACTIVATION_CAPSULE"


cdef inline const ActivationKernels* activation_kernels(object capsule) except NULL:
    """The table behind an activation capsule; anything else is a TypeError."""
    if not PyCapsule_IsValid(capsule, ACTIVATION_CAPSULE):
        raise TypeError(f"activation must be an activation kernel capsule such as "
                        f"fastnn_ext.activations.RELU, got {type(capsule).__name__}")
    return <const ActivationKernels*> PyCapsule_GetPointer(capsule, ACTIVATION_CAPSULE)


cdef inline double activation_alpha(object alpha) except? -1:
    """The activation's parameter: finite and >= 0, since backward reads the
    sign of z from the output a = f(z), and a > 0 ⇔ z > 0 only for α ≥ 0."""
    cdef double value = real_arg("alpha", alpha)
    check_range("alpha", value, 0.0, INFINITY, False, True)
    return value


cdef inline void activation_forward(const ActivationKernels* kernels, const floating* z,
                                    const floating* bias, floating* out, Py_ssize_t m,
                                    Py_ssize_t n, floating alpha) noexcept nogil:
    """out = f(z + bias) through the activation's table."""
    if floating is float:
        kernels.forward32(z, bias, out, m, n, alpha)
    else:
        kernels.forward64(z, bias, out, m, n, alpha)


cdef inline void activation_backward(const ActivationKernels* kernels, const floating* z,
                                     const floating* out, const floating* grad_out,
                                     floating* grad_in, Py_ssize_t size,
                                     floating alpha) noexcept nogil:
    """grad_in = grad_out · f'(z) through the activation's table."""
    if floating is float:
        kernels.backward32(z, out, grad_out, grad_in, size, alpha)
    else:
        kernels.backward64(z, out, grad_out, grad_in, size, alpha)


cdef inline floating exp_of(floating x) noexcept nogil:
    """exp in the precision of x (expf for float32)."""
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating row_max(const floating* row, Py_ssize_t n) noexcept nogil:
    cdef floating largest = row[0]
    cdef Py_ssize_t j
    for j in range(1, n):
        if row[j] > largest:
            largest = row[j]
    return largest


cdef inline void add_bias(const floating* z, const floating* bias, floating* out,
                          Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """out = z + bias row by row (bias may be NULL: a copy); out may be z."""
    cdef Py_ssize_t i, j
    for i in range(m):
        if bias != NULL:
            for j in range(n):
                out[i * n + j] = z[i * n + j] + bias[j]
        elif out != z:
            for j in range(n):
                out[i * n + j] = z[i * n + j]


cdef inline void softmax_forward(const floating* z, floating* out,
                                 Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """Row-wise softmax; the row maximum is subtracted so exp never overflows."""
    cdef Py_ssize_t i, j
    cdef floating largest, total
    cdef const floating* z_row
    cdef floating* out_row
    for i in range(m):
        z_row = z + i * n
        out_row = out + i * n
        largest = row_max(z_row, n)
        total = 0
        for j in range(n):
            out_row[j] = exp_of(z_row[j] - largest)
            total = total + out_row[j]
        for j in range(n):
            out_row[j] = out_row[j] / total


cdef inline void softmax_backward(const floating* out, const floating* grad_out,
                                  floating* grad_in, Py_ssize_t m,
                                  Py_ssize_t n) noexcept nogil:
    """grad_in_j = a_j (g_j − Σ_k g_k a_k) per row; grad_in may alias grad_out."""
    cdef Py_ssize_t i, j
    cdef floating dot
    for i in range(m):
        dot = 0
        for j in range(n):
            dot = dot + grad_out[i * n + j] * out[i * n + j]
        for j in range(n):
            grad_in[i * n + j] = out[i * n + j] * (grad_out[i * n + j] - dot)


cdef inline void prelu_forward(const floating* z, const floating* slope,
                               floating* out, Py_ssize_t m,
                               Py_ssize_t n) noexcept nogil:
    """out = z if z > 0 else slope[j]·z, one learned slope per unit j."""
    cdef Py_ssize_t i, j
    cdef floating v
    for i in range(m):
        for j in range(n):
            v = z[i * n + j]
            out[i * n + j] = v if v > 0 else slope[j] * v


cdef inline void prelu_backward(const floating* z, const floating* slope,
                                const floating* grad_out, floating* grad_in,
                                floating* grad_slope, Py_ssize_t m,
                                Py_ssize_t n) noexcept nogil:
    """grad_in = g·(1 if z > 0 else slope); grad_slope[j] = Σ_i g·z·[z ≤ 0].

    grad_slope is overwritten; grad_in may alias grad_out.
    """
    cdef Py_ssize_t i, j
    cdef floating v, g
    for j in range(n):
        grad_slope[j] = 0
    for i in range(m):
        for j in range(n):
            v = z[i * n + j]
            g = grad_out[i * n + j]
            if v > 0:
                grad_in[i * n + j] = g
            else:
                grad_in[i * n + j] = slope[j] * g
                grad_slope[j] = grad_slope[j] + g * v
