# Element-wise activations: fused bias + activation forward, and the
# derivative times the upstream gradient for backward.
#
# Derivatives are taken from the saved outputs a = f(z) wherever the math
# allows, so backward needs no copy of the pre-activation z:
#   sigmoid' = a(1 − a),  tanh' = 1 − a²,  relu' = [a > 0],
#   leaky_relu' = 1 if a > 0 else α  (valid for α ≥ 0: a > 0 ⇔ z > 0).
# PReLU's learned slope may be negative, so it keeps z instead.

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf, log, logf

cdef extern from "elementwise_kernels.h" nogil:
    void fastnn_sigmoid_rows_f32(const float* z, const float* bias, float* out,
                                 Py_ssize_t m, Py_ssize_t n)
    void fastnn_sigmoid_rows_f64(const double* z, const double* bias, double* out,
                                 Py_ssize_t m, Py_ssize_t n)

cdef enum Activation:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LEAKY_RELU = 4


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


cdef inline floating activate(floating z, int act, floating alpha) noexcept nogil:
    """f(z) for the activations computed one element at a time (not sigmoid)."""
    if act == ACT_TANH:
        if floating is float:
            return tanhf(z)
        else:
            return tanh(z)
    if act == ACT_RELU:
        return z if z > 0 else 0
    if act == ACT_LEAKY_RELU:
        return z if z > 0 else alpha * z
    return z


cdef inline void bias_activation_forward(const floating* z, const floating* bias,
                                         floating* out, Py_ssize_t m, Py_ssize_t n,
                                         int act, floating alpha) noexcept nogil:
    """out[i, j] = f(z[i, j] + bias[j]); bias may be NULL; out may alias z.

    The sigmoid goes to a vectorized C loop (elementwise_kernels.h).
    """
    cdef Py_ssize_t i, j
    cdef const floating* z_row
    cdef floating* out_row
    if act == ACT_SIGMOID:
        if floating is float:
            fastnn_sigmoid_rows_f32(z, bias, out, m, n)
        else:
            fastnn_sigmoid_rows_f64(z, bias, out, m, n)
        return
    for i in range(m):
        z_row = z + i * n
        out_row = out + i * n
        if bias != NULL:
            if act == ACT_IDENTITY:
                for j in range(n):
                    out_row[j] = z_row[j] + bias[j]
            else:
                for j in range(n):
                    out_row[j] = activate(z_row[j] + bias[j], act, alpha)
        else:
            for j in range(n):
                out_row[j] = activate(z_row[j], act, alpha)


cdef inline void activation_backward(const floating* out, const floating* grad_out,
                                     floating* grad_in, Py_ssize_t size,
                                     int act, floating alpha) noexcept nogil:
    """grad_in = grad_out · f'(z), with f' computed from out = f(z).

    grad_in may alias grad_out.
    """
    cdef Py_ssize_t i
    cdef floating a
    if act == ACT_SIGMOID:
        for i in range(size):
            a = out[i]
            grad_in[i] = grad_out[i] * a * (1 - a)
    elif act == ACT_TANH:
        for i in range(size):
            a = out[i]
            grad_in[i] = grad_out[i] * (1 - a * a)
    elif act == ACT_RELU:
        for i in range(size):
            grad_in[i] = grad_out[i] if out[i] > 0 else 0
    elif act == ACT_LEAKY_RELU:
        for i in range(size):
            grad_in[i] = grad_out[i] if out[i] > 0 else alpha * grad_out[i]
    elif grad_in != grad_out:
        for i in range(size):
            grad_in[i] = grad_out[i]


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
