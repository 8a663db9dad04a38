# Losses fused with their gradient.  Each kernel takes the network's last
# buffer and a (m×n) target matrix (integer labels are expanded to one-hot
# rows by the caller), returns the loss summed over the m samples, and, when
# grad is not NULL, writes grad = scale·∂loss/∂input (scale = 1/batch for the
# mean over a mini-batch).  The formulas hold for any target rows: the
# softmax's targets need not sum to one, the others need not lie in [0, 1].
#
#   mean squared error       input a:  1/n Σ_k (a_k − t_k)²          grad 2(a − t)/n
#   quadratic cost           input a:  ½ Σ_k (a_k − t_k)²            grad a − t
#   softmax cross-entropy    input z:  Σ_k t_k (logsumexp(z) − z_k)   grad (Σ_k t_k)·softmax(z) − t
#   sigmoid cross-entropy    input z:  Σ_k −t_k log σ(z_k) − (1 − t_k) log(1 − σ(z_k))
#                                      = Σ_k max(z_k, 0) − z_k t_k + log(1 + e^{−|z_k|})
#                                                                      grad σ(z) − t
# The batch mean of the mean squared error is mean((a − t)²) over all m·n
# elements (PyTorch's MSELoss, Keras' mean_squared_error); that of the
# quadratic cost is Nielsen's C = 1/(2m) Σ_x ‖a(x) − y(x)‖².
# The cross-entropies work on logits so that log never sees a probability
# that underflowed to zero: every term stays finite for finite z.

from cython cimport floating
from libc.math cimport log, logf, NAN
from fastnn_ext.activations cimport exp_of, row_max

cdef enum Loss:
    LOSS_MSE = 0
    LOSS_SOFTMAX_CROSS_ENTROPY = 1
    LOSS_SIGMOID_CROSS_ENTROPY = 2
    LOSS_QUADRATIC = 3


cdef inline double mean_squared_error(const floating* a, const floating* t,
                                      floating* grad, Py_ssize_t m, Py_ssize_t n,
                                      floating scale) noexcept nogil:
    """Σ_rows 1/n Σ_k (a_k − t_k)²; grad = scale·2(a − t)/n.  n > 0."""
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating diff
    cdef floating factor = <floating>(2.0 * scale / n)
    for i in range(m * n):
        diff = a[i] - t[i]
        total += <double> diff * diff
        if grad != NULL:
            grad[i] = factor * diff
    return total / n


cdef inline double quadratic_cost(const floating* a, const floating* t,
                                  floating* grad, Py_ssize_t m, Py_ssize_t n,
                                  floating scale) noexcept nogil:
    """Σ_rows ½ Σ_k (a_k − t_k)²; grad = scale·(a − t)."""
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating diff
    for i in range(m * n):
        diff = a[i] - t[i]
        total += <double> diff * diff
        if grad != NULL:
            grad[i] = scale * diff
    return 0.5 * total


cdef inline double softmax_cross_entropy(const floating* z, const floating* t,
                                         floating* grad, Py_ssize_t m, Py_ssize_t n,
                                         floating scale) noexcept nogil:
    """Σ_rows Σ_k t_k (logsumexp(z) − z_k); grad = scale·((Σ_k t_k)·softmax(z) − t).

    The factor Σ_k t_k, the row's target mass, is 1 for probability rows,
    where the gradient takes its familiar form softmax(z) − t; for any other
    rows (label smoothing that does not renormalize, weighted samples)
    softmax(z) − t is not the gradient.
    """
    cdef Py_ssize_t i, j
    cdef double total = 0, mass
    cdef floating largest, sum_exp, log_sum_exp, e, weight
    cdef const floating* z_row
    cdef const floating* t_row
    for i in range(m):
        z_row = z + i * n
        t_row = t + i * n
        largest = row_max(z_row, n)
        sum_exp = 0
        for j in range(n):
            e = exp_of(z_row[j] - largest)
            sum_exp = sum_exp + e
            if grad != NULL:
                grad[i * n + j] = e
        # In a loop of its own: a double sum in the loop above would keep
        # that loop from running on the vector exp.
        mass = 0
        for j in range(n):
            mass += t_row[j]
        if floating is float:
            log_sum_exp = largest + logf(sum_exp)
        else:
            log_sum_exp = largest + log(sum_exp)
        # grad = scale·(softmax·mass − t), the softmax divided out first: for
        # probability rows (mass exactly 1) the gradient is then the same to
        # the last bit as scale·(softmax − t).
        weight = <floating> mass
        for j in range(n):
            if t_row[j] != 0:
                total += <double> t_row[j] * (log_sum_exp - z_row[j])
            if grad != NULL:
                grad[i * n + j] = scale * ((grad[i * n + j] / sum_exp) * weight - t_row[j])
    return total


cdef extern from "elementwise_kernels.h" nogil:
    double fastnn_sigmoid_cross_entropy_f32(const float* z, const float* t, float* grad,
                                            Py_ssize_t n, float scale)
    double fastnn_sigmoid_cross_entropy_f64(const double* z, const double* t, double* grad,
                                            Py_ssize_t n, double scale)


cdef inline double sigmoid_cross_entropy(const floating* z, const floating* t,
                                         floating* grad, Py_ssize_t m, Py_ssize_t n,
                                         floating scale) noexcept nogil:
    # A vectorized C loop (elementwise_kernels.h): one exp(−|z|) serves the
    # softplus term and the sigmoid of the gradient.
    if floating is float:
        return fastnn_sigmoid_cross_entropy_f32(z, t, grad, m * n, scale)
    else:
        return fastnn_sigmoid_cross_entropy_f64(z, t, grad, m * n, scale)


cdef inline double loss_and_grad(int loss, const floating* output, const floating* t,
                                 floating* grad, Py_ssize_t m, Py_ssize_t n,
                                 floating scale) noexcept nogil:
    """The loss selected by a Loss code; an unknown code returns NaN and
    leaves grad alone, so that a caller checking the loss stops there."""
    if loss == LOSS_SOFTMAX_CROSS_ENTROPY:
        return softmax_cross_entropy(output, t, grad, m, n, scale)
    if loss == LOSS_SIGMOID_CROSS_ENTROPY:
        return sigmoid_cross_entropy(output, t, grad, m, n, scale)
    if loss == LOSS_MSE:
        return mean_squared_error(output, t, grad, m, n, scale)
    if loss == LOSS_QUADRATIC:
        return quadratic_cost(output, t, grad, m, n, scale)
    return NAN


cdef inline Py_ssize_t count_correct(const floating* output, const floating* t,
                                     Py_ssize_t m, Py_ssize_t n,
                                     floating threshold) noexcept nogil:
    """Rows whose prediction matches the target.

    n > 1: argmax(output) == argmax(t).  n == 1 (binary): (output > threshold)
    == (t > 0.5); threshold is 0 for logits and 0.5 for probabilities.
    """
    cdef Py_ssize_t i, j, best_out, best_t, correct = 0
    for i in range(m):
        if n == 1:
            correct += (output[i] > threshold) == (t[i] > 0.5)
            continue
        best_out = 0
        best_t = 0
        for j in range(1, n):
            if output[i * n + j] > output[i * n + best_out]:
                best_out = j
            if t[i * n + j] > t[i * n + best_t]:
                best_t = j
        correct += best_out == best_t
    return correct
