"""Python-visible dense-layer kernels (thin, checked wrappers).

Arrays are row-major float32 or float64, all of one dtype: a batch x of
shape (m, n_in), weights w of shape (n_in, n_out), a bias b of length
n_out.  Every argument is checked before a kernel runs; the formulas are in
dense.pxd.
"""

from cython cimport floating
from libc.limits cimport INT_MAX

from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, expect_kind,
                                 expect_shape, column_vector, span, check_outputs_disjoint,
                                 flag_arg)
from fastnn_ext.activations cimport ActivationKernels, activation_kernels, activation_alpha
from fastnn_ext.activations import IDENTITY
from fastnn_ext.blas cimport small_gemm_available as small_gemm_available_c

__all__ = ["forward", "backward", "small_gemm_available"]


cdef int _check_weights(object x, object w, FloatArray* xa, FloatArray* wa) except -1:
    """x is an (m, n_in) batch and w an (n_in, n_out) matrix of its dtype."""
    float_array("x", x, 2, False, xa)
    float_array("w", w, 2, False, wa)
    expect_kind("w", wa, "x", xa)
    expect_shape("w", wa.rows, wa.cols, xa.cols, wa.cols)
    # BLAS rejects leading dimensions of 0; a layer of width 0 is a mistake anyway.
    if wa.rows == 0 or wa.cols == 0:
        raise ValueError(f"w has shape ({wa.rows}, {wa.cols}): a dense layer needs "
                         f"non-zero widths")
    # BLAS takes its sizes as C ints.
    if xa.rows > INT_MAX or wa.rows > INT_MAX or wa.cols > INT_MAX:
        raise ValueError(f"x and w have shapes ({xa.rows}, {xa.cols}) and ({wa.rows}, "
                         f"{wa.cols}); BLAS takes sizes up to {INT_MAX}")
    return 0


cdef int _check_matrix(str name, object a, bint writeable, FloatArray* info,
                       FloatArray* x, Py_ssize_t rows, Py_ssize_t cols) except -1:
    """a is a (rows, cols) array of x's dtype."""
    float_array(name, a, 2, writeable, info)
    expect_kind(name, info, "x", x)
    return expect_shape(name, info.rows, info.cols, rows, cols)


def forward(x, w, b, out, activation=IDENTITY, alpha=0.0):
    """Dense layer forward pass with a fused element-wise activation f::

        out = f(x @ w + b)

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (m, n_in), C-contiguous
        The batch, m >= 0 rows.
    w : ndarray, shape (n_in, n_out), same dtype, n_in, n_out >= 1
        Weights.
    b : ndarray, shape (n_out,), same dtype
        Bias.
    out : ndarray, shape (m, n_out), same dtype, output
        Overwritten; must not share memory with `x`, `w` or `b` (the product
        reads its inputs while it writes).
    activation : activation capsule, default ``activations.IDENTITY``
        An element-wise activation table (``activations.RELU``,
        ``silu.SILU``...).  One whose backward needs the pre-activation
        (``needs_input``) is refused: its input would not be kept.
    alpha : float, default 0.0
        The activation's parameter (LeakyReLU's slope), finite and >= 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array, dtypes differ, or
        activation is not an activation capsule.
    ValueError
        If shapes do not match, a width is 0, an array is not C-contiguous
        and aligned, out is read-only or overlaps an input, alpha is out of
        range, or the activation needs its input.
    """
    cdef const ActivationKernels* act = activation_kernels(activation)
    if act.needs_input:
        raise ValueError("activation needs its input for backward: dense.forward cannot "
                         "fuse it; apply it separately")
    cdef double a = activation_alpha(alpha)
    cdef FloatArray xa, wa, ba, oa
    _check_weights(x, w, &xa, &wa)
    column_vector("b", b, False, &ba, "w", &wa)
    _check_matrix("out", out, True, &oa, &xa, xa.rows, wa.cols)
    check_outputs_disjoint([span("out", &oa)], [span("x", &xa), span("w", &wa), span("b", &ba)])
    if xa.rows == 0:
        return
    if xa.kind == KIND_FLOAT32:
        _forward[float](x, w, b, out, act, a)
    else:
        _forward[double](x, w, b, out, act, a)


cdef int _forward(const floating[:, ::1] x, const floating[:, ::1] w,
                  const floating[::1] b, floating[:, ::1] out,
                  const ActivationKernels* act, double alpha) except -1:
    """forward after its checks (m, n_in, n_out >= 1; the caller checks)."""
    with nogil:
        dense_forward(&x[0, 0], &w[0, 0], &b[0], &out[0, 0], x.shape[0], x.shape[1],
                      w.shape[1], act, <floating> alpha)
    return 0


def backward(x, w, grad_z, grad_w, grad_b, grad_x=None, accumulate=False):
    """Dense layer backward pass, from dZ = ∂L/∂(x @ w + b)::

        grad_w (+)= x.T @ grad_z
        grad_b (+)= grad_z.sum(axis=0)
        grad_x  = grad_z @ w.T

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (m, n_in), C-contiguous
        The forward pass's input, m >= 0 rows.
    w : ndarray, shape (n_in, n_out), same dtype, n_in, n_out >= 1
        Weights.
    grad_z : ndarray, shape (m, n_out), same dtype
        Gradient with respect to the pre-activation x @ w + b.
    grad_w : ndarray, shape (n_in, n_out), same dtype, output
    grad_b : ndarray, shape (n_out,), same dtype, output
        Overwritten, or added to with `accumulate`.  Over m = 0 rows the
        sums are zero.
    grad_x : ndarray, shape (m, n_in), same dtype, output, or None
        Overwritten; None skips the input gradient.
    accumulate : bool, default False
        Add to grad_w and grad_b instead of overwriting them.

    The outputs must not share memory with the inputs or with each other:
    each product reads its inputs while it writes.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array, dtypes differ, or
        accumulate is not a bool.
    ValueError
        If shapes do not match, a width is 0, an array is not C-contiguous
        and aligned, an output is read-only or overlaps another array.
    """
    cdef FloatArray xa, wa, gza, gwa, gba, gxa
    _check_weights(x, w, &xa, &wa)
    _check_matrix("grad_z", grad_z, False, &gza, &xa, xa.rows, wa.cols)
    _check_matrix("grad_w", grad_w, True, &gwa, &xa, wa.rows, wa.cols)
    column_vector("grad_b", grad_b, True, &gba, "w", &wa)
    cdef bint add = flag_arg("accumulate", accumulate)
    outputs = [span("grad_b", &gba), span("grad_w", &gwa)]
    if grad_x is not None:
        _check_matrix("grad_x", grad_x, True, &gxa, &xa, xa.rows, xa.cols)
        outputs.insert(0, span("grad_x", &gxa))
    check_outputs_disjoint(outputs, [span("x", &xa), span("w", &wa), span("grad_z", &gza)])
    if xa.kind == KIND_FLOAT32:
        _backward[float](x, w, grad_z, grad_w, grad_b, grad_x, add)
    else:
        _backward[double](x, w, grad_z, grad_w, grad_b, grad_x, add)


cdef int _backward(const floating[:, ::1] x, const floating[:, ::1] w,
                   const floating[:, ::1] grad_z, floating[:, ::1] grad_w,
                   floating[::1] grad_b, floating[:, ::1] grad_x,
                   bint accumulate) except -1:
    """backward after its checks (n_in, n_out >= 1; the caller checks)."""
    if x.shape[0] == 0:
        # No rows: the sums are empty and there is no grad_x to write.
        if not accumulate:
            grad_w[:, :] = 0
            grad_b[:] = 0
        return 0
    cdef floating* grad_x_ptr = NULL if grad_x is None else &grad_x[0, 0]
    with nogil:
        dense_backward(&x[0, 0], &w[0, 0], &grad_z[0, 0], grad_x_ptr, &grad_w[0, 0],
                       &grad_b[0], x.shape[0], x.shape[1], w.shape[1], accumulate)
    return 0


def small_gemm_available():
    """Whether products with few rows can run on fastnn's own kernels (AVX-512 or AVX2+FMA).

    Which products do is ``fastnn_ext.gemm_choice``'s (measured per machine).

    Returns
    -------
    bool
        True when this build has the kernels and the processor runs them.
    """
    return bool(small_gemm_available_c())
