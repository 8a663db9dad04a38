"""Python-visible activation kernels (thin, checked wrappers).

Activation codes: IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU.
"""

from cython cimport floating
from fastnn_ext._checks cimport expect_shape, expect_length

IDENTITY = ACT_IDENTITY
SIGMOID = ACT_SIGMOID
TANH = ACT_TANH
RELU = ACT_RELU
LEAKY_RELU = ACT_LEAKY_RELU


cdef int check_code(int activation) except -1:
    if activation < ACT_IDENTITY or activation > ACT_LEAKY_RELU:
        raise ValueError(f"unknown activation code {activation}")
    return 0


def forward(const floating[:, ::1] z, floating[:, ::1] out, int activation,
            double alpha=0.0, const floating[::1] bias=None):
    """out = f(z + bias); out may be z itself."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    check_code(activation)
    expect_shape("out", out.shape[0], out.shape[1], m, n)
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        expect_length("bias", bias.shape[0], n)
        bias_ptr = &bias[0]
    if m == 0 or n == 0:
        return
    with nogil:
        bias_activation_forward(&z[0, 0], bias_ptr, &out[0, 0], m, n,
                                activation, <floating> alpha)


def backward(const floating[:, ::1] out, const floating[:, ::1] grad_out,
             floating[:, ::1] grad_in, int activation, double alpha=0.0):
    """grad_in = grad_out * f'(z), computed from the saved output out = f(z)."""
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    check_code(activation)
    expect_shape("grad_out", grad_out.shape[0], grad_out.shape[1], m, n)
    expect_shape("grad_in", grad_in.shape[0], grad_in.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        activation_backward(&out[0, 0], &grad_out[0, 0], &grad_in[0, 0], m * n,
                            activation, <floating> alpha)


def softmax(const floating[:, ::1] z, floating[:, ::1] out):
    """Row-wise softmax, stable for any finite z."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_shape("out", out.shape[0], out.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        softmax_forward(&z[0, 0], &out[0, 0], m, n)


def softmax_grad(const floating[:, ::1] out, const floating[:, ::1] grad_out,
                 floating[:, ::1] grad_in):
    """grad_in = out * (grad_out - sum(grad_out * out, axis=1))."""
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    expect_shape("grad_out", grad_out.shape[0], grad_out.shape[1], m, n)
    expect_shape("grad_in", grad_in.shape[0], grad_in.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        softmax_backward(&out[0, 0], &grad_out[0, 0], &grad_in[0, 0], m, n)


def prelu(const floating[:, ::1] z, const floating[::1] slope, floating[:, ::1] out):
    """out = z where z > 0, slope * z elsewhere (one slope per column)."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_length("slope", slope.shape[0], n)
    expect_shape("out", out.shape[0], out.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        prelu_forward(&z[0, 0], &slope[0], &out[0, 0], m, n)


def prelu_grad(const floating[:, ::1] z, const floating[::1] slope,
               const floating[:, ::1] grad_out, floating[:, ::1] grad_in,
               floating[::1] grad_slope):
    """Input gradient and (overwritten) slope gradient of PReLU."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_length("slope", slope.shape[0], n)
    expect_shape("grad_out", grad_out.shape[0], grad_out.shape[1], m, n)
    expect_shape("grad_in", grad_in.shape[0], grad_in.shape[1], m, n)
    expect_length("grad_slope", grad_slope.shape[0], n)
    if m == 0 or n == 0:
        return
    with nogil:
        prelu_backward(&z[0, 0], &slope[0], &grad_out[0, 0], &grad_in[0, 0],
                       &grad_slope[0], m, n)
