# Dense layer kernels on row-major (batch, features) arrays, weights (n_in, n_out):
#   forward   Y = f(X·W + b)
#   backward  dW = Xᵀ·dZ,  db = Σ_rows dZ,  dX = dZ·Wᵀ
# where dZ is the gradient with respect to the pre-activation X·W + b.

from cython cimport floating
from fastnn_ext.blas cimport gemm, gemm_may_use_blas_threads
from fastnn_ext.activations cimport ActivationKernels, activation_forward


cdef inline void dense_forward(const floating* x, const floating* w,
                               const floating* b, floating* y,
                               Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                               const ActivationKernels* act, floating alpha) noexcept nogil:
    """y(m×n_out) = f(x(m×n_in)·w(n_in×n_out) + b); b may be NULL."""
    gemm(False, False, <int> m, <int> n_out, <int> n_in,
         <floating> 1, x, <int> n_in, w, <int> n_out, <floating> 0, y, <int> n_out)
    activation_forward(act, y, b, y, m, n_out, alpha)


cdef inline double _product_work(bint transpose_a, bint transpose_b, int m, int n, int k,
                                  size_t item_size, double* elsewhere) noexcept nogil:
    cdef double work = <double> m * n * k
    if gemm_may_use_blas_threads(transpose_a, transpose_b, m, n, k, item_size):
        return work
    elsewhere[0] += work
    return 0


cdef inline double dense_product_work(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                                      bint grad_x, size_t item_size,
                                      double* elsewhere) noexcept nogil:
    """Multiply-adds of a training step of an m-row batch that BLAS runs at a size
    where it wakes its threads (returned); the others are added to *elsewhere."""
    cdef double on_blas = (
        _product_work(False, False, <int> m, <int> n_out, <int> n_in, item_size, elsewhere)
        + _product_work(True, False, <int> n_in, <int> n_out, <int> m, item_size, elsewhere))
    if grad_x:
        on_blas += _product_work(False, True, <int> m, <int> n_in, <int> n_out, item_size,
                                 elsewhere)
    return on_blas


cdef inline void column_sums(const floating* a, floating* sums, Py_ssize_t m,
                             Py_ssize_t n, bint accumulate) noexcept nogil:
    """sums (+)= Σ_rows a for a row-major (m×n) a."""
    cdef Py_ssize_t i, j
    cdef const floating* row
    if not accumulate:
        for j in range(n):
            sums[j] = 0
    for i in range(m):
        row = a + i * n
        for j in range(n):
            sums[j] = sums[j] + row[j]


cdef inline void dense_backward(const floating* x, const floating* w,
                                const floating* grad_z, floating* grad_x,
                                floating* grad_w, floating* grad_b,
                                Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out,
                                bint accumulate) noexcept nogil:
    """Parameter and input gradients of y = x·w + b given dZ = ∂L/∂(x·w + b).

    accumulate=False overwrites grad_w and grad_b, True adds to them.
    grad_x (overwritten) and grad_b may be NULL to skip them; the first layer
    of a network skips grad_x, which nothing would read.
    """
    gemm(True, False, <int> n_in, <int> n_out, <int> m,
         <floating> 1, x, <int> n_in, grad_z, <int> n_out,
         <floating> (1 if accumulate else 0), grad_w, <int> n_out)
    if grad_b != NULL:
        column_sums(grad_z, grad_b, m, n_out, accumulate)
    if grad_x != NULL:
        gemm(False, True, <int> m, <int> n_in, <int> n_out,
             <floating> 1, grad_z, <int> n_out, w, <int> n_out,
             <floating> 0, grad_x, <int> n_in)


cdef inline void dense_backward_sgd(const floating* x, floating* w,
                                    const floating* grad_z, floating* grad_x,
                                    floating* grad_b, Py_ssize_t m, Py_ssize_t n_in,
                                    Py_ssize_t n_out, floating lr,
                                    floating keep) noexcept nogil:
    """Backward with a plain SGD step fused into the weight-gradient GEMM.

    w ← keep·w − lr·xᵀ·dZ in one BLAS call (keep = 1 − lr·λ for an L2 or
    weight-decay coefficient λ), so the weight gradient is never written out
    and the weights are swept once per step instead of three times.  grad_x
    is computed first, from the weights before the update; grad_b is
    overwritten as in ``dense_backward`` and left to the optimizer.
    """
    column_sums(grad_z, grad_b, m, n_out, False)
    if grad_x != NULL:
        gemm(False, True, <int> m, <int> n_in, <int> n_out,
             <floating> 1, grad_z, <int> n_out, w, <int> n_out,
             <floating> 0, grad_x, <int> n_in)
    gemm(True, False, <int> n_in, <int> n_out, <int> m,
         -lr, x, <int> n_in, grad_z, <int> n_out, keep, w, <int> n_out)
