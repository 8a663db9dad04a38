"""Python-visible loss kernels (thin, checked wrappers).

Loss codes: MSE, QUADRATIC, SOFTMAX_CROSS_ENTROPY, SIGMOID_CROSS_ENTROPY;
the formulas are in losses.pxd.  Arrays are row-major (m, n) float32 or
float64, all of one dtype; every argument is checked before a kernel runs.
"""

from cython cimport floating
from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, expect_kind,
                                 expect_shape, check_disjoint, check_finite)

MSE = LOSS_MSE
QUADRATIC = LOSS_QUADRATIC
SOFTMAX_CROSS_ENTROPY = LOSS_SOFTMAX_CROSS_ENTROPY
SIGMOID_CROSS_ENTROPY = LOSS_SIGMOID_CROSS_ENTROPY

_CODES = (LOSS_MSE, LOSS_SOFTMAX_CROSS_ENTROPY, LOSS_SIGMOID_CROSS_ENTROPY, LOSS_QUADRATIC)


cdef int _check_pair(object output, object targets, FloatArray* out,
                     FloatArray* tgt) except -1:
    """output is an (m, n) array and targets one of its dtype and shape."""
    float_array("output", output, 2, False, out)
    float_array("targets", targets, 2, False, tgt)
    expect_kind("targets", tgt, "output", out)
    return expect_shape("targets", tgt.rows, tgt.cols, out.rows, out.cols)


def loss_grad(int loss, output, targets, grad=None, double scale=1.0):
    """Loss summed over the rows of a batch, and optionally its gradient.

    Parameters
    ----------
    loss : int
        A loss code (``MSE``, ``QUADRATIC``, ``SOFTMAX_CROSS_ENTROPY``,
        ``SIGMOID_CROSS_ENTROPY``).
    output : ndarray of float32 or float64, shape (m, n), C-contiguous, n >= 1
        The loss input: the network's output for the squared errors, the
        logits for the cross-entropies.
    targets : ndarray, shape (m, n), same dtype
        Target rows (any reals; non-negative for the softmax, whose rows need
        not sum to one).
    grad : ndarray, shape (m, n), same dtype, output, or None
        Overwritten with ``scale * ∂loss/∂output``; must not overlap `output`
        or `targets`.  None skips the gradient.
    scale : float, default 1.0
        Finite factor of the gradient (``1/m`` for the batch mean).

    Returns
    -------
    float
        The loss summed over the m rows (0.0 for m == 0).

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or dtypes differ.
    ValueError
        If the code is unknown, shapes differ, n == 0, an array is not
        C-contiguous and aligned, grad is read-only or overlaps an input, or
        scale is not finite.
    """
    if loss not in _CODES:
        raise ValueError(f"unknown loss code {loss}; choose one of {_CODES}")
    cdef FloatArray out, tgt, grd
    _check_pair(output, targets, &out, &tgt)
    if out.cols == 0:
        raise ValueError("output must have at least one column, got shape "
                         f"({out.rows}, 0)")
    check_finite("scale", scale)
    if grad is not None:
        float_array("grad", grad, 2, True, &grd)
        expect_kind("grad", &grd, "output", &out)
        expect_shape("grad", grd.rows, grd.cols, out.rows, out.cols)
        check_disjoint("grad", &grd, "output", &out, False)
        check_disjoint("grad", &grd, "targets", &tgt, False)
    if out.rows == 0:
        return 0.0
    if out.kind == KIND_FLOAT32:
        return _loss_grad[float](loss, output, targets, grad, scale)
    return _loss_grad[double](loss, output, targets, grad, scale)


cdef double _loss_grad(int loss, const floating[:, ::1] output,
                       const floating[:, ::1] targets, floating[:, ::1] grad,
                       double scale) except? -1:
    """loss_grad after its checks (m, n >= 1; the caller checks)."""
    cdef floating* grad_ptr = NULL if grad is None else &grad[0, 0]
    cdef double total
    with nogil:
        total = loss_and_grad(loss, &output[0, 0], &targets[0, 0], grad_ptr,
                              output.shape[0], output.shape[1], <floating> scale)
    return total


def correct(output, targets, double threshold=0.5):
    """Number of rows whose predicted class matches the target's.

    n > 1: ``argmax(output) == argmax(targets)`` per row; n == 1 (binary):
    ``(output > threshold) == (targets > 0.5)``.

    Parameters
    ----------
    output, targets : ndarray of float32 or float64, shape (m, n), one dtype
        Loss inputs and target rows, C-contiguous.
    threshold : float, default 0.5
        Finite decision threshold on a single output (0 for logits).

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or dtypes differ.
    ValueError
        If shapes differ, an array is not C-contiguous and aligned, or the
        threshold is not finite.
    """
    cdef FloatArray out, tgt
    _check_pair(output, targets, &out, &tgt)
    check_finite("threshold", threshold)
    if out.rows == 0 or out.cols == 0:
        return 0
    if out.kind == KIND_FLOAT32:
        return _correct[float](output, targets, threshold)
    return _correct[double](output, targets, threshold)


cdef Py_ssize_t _correct(const floating[:, ::1] output, const floating[:, ::1] targets,
                         double threshold) except -1:
    """correct after its checks (m, n >= 1; the caller checks)."""
    cdef Py_ssize_t hits
    with nogil:
        hits = count_correct(&output[0, 0], &targets[0, 0], output.shape[0],
                             output.shape[1], <floating> threshold)
    return hits
