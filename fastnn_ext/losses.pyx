"""Python-visible loss kernels (thin, checked wrappers).

Loss codes: MSE, SOFTMAX_CROSS_ENTROPY, SIGMOID_CROSS_ENTROPY.
"""

from cython cimport floating
from fastnn_ext._checks cimport expect_shape

MSE = LOSS_MSE
SOFTMAX_CROSS_ENTROPY = LOSS_SOFTMAX_CROSS_ENTROPY
SIGMOID_CROSS_ENTROPY = LOSS_SIGMOID_CROSS_ENTROPY


def loss_grad(int loss, const floating[:, ::1] output, const floating[:, ::1] targets,
              floating[:, ::1] grad=None, double scale=1.0):
    """Loss summed over rows; grad = scale * d(loss)/d(output) unless grad is None."""
    cdef Py_ssize_t m = output.shape[0], n = output.shape[1]
    if loss < LOSS_MSE or loss > LOSS_SIGMOID_CROSS_ENTROPY:
        raise ValueError(f"unknown loss code {loss}")
    expect_shape("targets", targets.shape[0], targets.shape[1], m, n)
    cdef floating* grad_ptr = NULL
    if grad is not None:
        expect_shape("grad", grad.shape[0], grad.shape[1], m, n)
        grad_ptr = &grad[0, 0]
    if m == 0 or n == 0:
        raise ValueError("the loss needs at least one row and one column")
    cdef double total
    with nogil:
        total = loss_and_grad(loss, &output[0, 0], &targets[0, 0], grad_ptr, m, n,
                              <floating> scale)
    return total


def correct(const floating[:, ::1] output, const floating[:, ::1] targets,
            double threshold=0.5):
    """Number of rows whose predicted class matches the target's."""
    cdef Py_ssize_t m = output.shape[0], n = output.shape[1]
    expect_shape("targets", targets.shape[0], targets.shape[1], m, n)
    if m == 0 or n == 0:
        return 0
    cdef Py_ssize_t hits
    with nogil:
        hits = count_correct(&output[0, 0], &targets[0, 0], m, n, <floating> threshold)
    return hits
