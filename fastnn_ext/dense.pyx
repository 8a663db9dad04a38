"""Python-visible dense-layer kernels (thin, checked wrappers)."""

from cython cimport floating
from fastnn_ext._checks cimport expect_shape, expect_length
from fastnn_ext.activations cimport ActivationKernels, activation_kernels
from fastnn_ext.activations import IDENTITY
from fastnn_ext.blas cimport small_gemm_available as small_gemm_available_c


cdef int check_widths(Py_ssize_t n_in, Py_ssize_t n_out) except -1:
    # BLAS rejects leading dimensions of 0; a layer of width 0 is a mistake anyway.
    if n_in == 0 or n_out == 0:
        raise ValueError(f"a dense layer needs non-zero widths, got {n_in} inputs "
                         f"and {n_out} outputs")
    return 0


def forward(const floating[:, ::1] x, const floating[:, ::1] w,
            const floating[::1] b, floating[:, ::1] out,
            activation=IDENTITY, double alpha=0.0):
    """out = f(x @ w + b) for an activation capsule of ``fastnn_ext.activations``.

    An activation whose backward needs the pre-activation (``needs_input``)
    is refused: its input would not be kept.
    """
    cdef const ActivationKernels* act = activation_kernels(activation)
    if act.needs_input:
        raise ValueError("dense.forward cannot fuse an activation whose backward needs "
                         "its input; apply it separately")
    cdef Py_ssize_t m = x.shape[0], n_in = x.shape[1], n_out = w.shape[1]
    expect_shape("w", w.shape[0], w.shape[1], n_in, n_out)
    check_widths(n_in, n_out)
    expect_length("b", b.shape[0], n_out)
    expect_shape("out", out.shape[0], out.shape[1], m, n_out)
    if m == 0:
        return
    with nogil:
        dense_forward(&x[0, 0], &w[0, 0], &b[0], &out[0, 0], m, n_in, n_out,
                      act, <floating> alpha)


def backward(const floating[:, ::1] x, const floating[:, ::1] w,
             const floating[:, ::1] grad_z, floating[:, ::1] grad_w,
             floating[::1] grad_b, floating[:, ::1] grad_x=None,
             bint accumulate=False):
    """grad_w (+)= x.T @ grad_z, grad_b (+)= grad_z.sum(0), grad_x = grad_z @ w.T.

    grad_x=None skips the input gradient.
    """
    cdef Py_ssize_t m = x.shape[0], n_in = x.shape[1], n_out = w.shape[1]
    expect_shape("w", w.shape[0], w.shape[1], n_in, n_out)
    check_widths(n_in, n_out)
    expect_shape("grad_z", grad_z.shape[0], grad_z.shape[1], m, n_out)
    expect_shape("grad_w", grad_w.shape[0], grad_w.shape[1], n_in, n_out)
    expect_length("grad_b", grad_b.shape[0], n_out)
    cdef floating* grad_x_ptr = NULL
    if grad_x is not None:
        expect_shape("grad_x", grad_x.shape[0], grad_x.shape[1], m, n_in)
        grad_x_ptr = &grad_x[0, 0]
    if m == 0:
        raise ValueError("backward needs at least one row")
    with nogil:
        dense_backward(&x[0, 0], &w[0, 0], &grad_z[0, 0], grad_x_ptr,
                       &grad_w[0, 0], &grad_b[0], m, n_in, n_out, accumulate)


def small_gemm_available():
    """Whether products with few rows run on the AVX-512 kernels (else BLAS)."""
    return bool(small_gemm_available_c())
