# Row-major matrix products for float32 and float64 from one source, on
# fastnn's own small-GEMM kernels or on BLAS as gemm_choice.pxd says.
#
# scipy.linalg.cython_blas exposes column-major Fortran BLAS.  A row-major
# matrix is the transpose of a column-major one, so C = op(A)·op(B) in row-major
# is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ in column-major: swap the operands and the
# dimensions m and n, keep the transpose flags.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm
from fastnn_ext.gemm_choice cimport choice, PRODUCT_NN, PRODUCT_TN, PRODUCT_NT
from fastnn_ext.gradients cimport scale_inplace

cdef extern from "small_gemm_kernels.h" nogil:
    bint small_gemm_available "fastnn_small_gemm_available" ()
    int small_gemm_vector_bits "fastnn_small_gemm_vector_bits" ()
    void small_gemm_f32 "fastnn_small_gemm_f32" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
        const float* a, Py_ssize_t a_row, Py_ssize_t a_col,
        const float* b, Py_ssize_t ldb, float beta, float* c, Py_ssize_t ldc, int threads)
    void small_gemm_f64 "fastnn_small_gemm_f64" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
        const double* a, Py_ssize_t a_row, Py_ssize_t a_col,
        const double* b, Py_ssize_t ldb, double beta, double* c, Py_ssize_t ldc, int threads)
    void small_gemm_nt_f32 "fastnn_small_gemm_nt_f32" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha, const float* a, Py_ssize_t lda,
        const float* b, Py_ssize_t ldb, float beta, float* c, Py_ssize_t ldc, int threads)
    void small_gemm_nt_f64 "fastnn_small_gemm_nt_f64" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha, const double* a, Py_ssize_t lda,
        const double* b, Py_ssize_t ldb, double beta, double* c, Py_ssize_t ldc, int threads)


cdef inline int product_kind(bint transpose_a, bint transpose_b) noexcept nogil:
    """PRODUCT_NT, _TN or _NN for op(A)·op(B), or -1 for Aᵀ·Bᵀ (no layer has it)."""
    if transpose_a and transpose_b:
        return -1
    return PRODUCT_NT if transpose_b else (PRODUCT_TN if transpose_a else PRODUCT_NN)


cdef inline bint use_small_gemm(bint transpose_a, bint transpose_b, int m, int n, int k,
                                size_t item_size) noexcept nogil:
    """Whether gemm() runs this product on the own kernels (see gemm_choice.pxd)."""
    cdef int kind = product_kind(transpose_a, transpose_b)
    cdef int t = item_size == 8
    if m <= 0 or n <= 0 or k <= 0 or kind < 0:
        return False
    cdef int rows = k if kind == PRODUCT_TN else m
    # W is k×n in the forward product, m×n (the gradient's shape) in the
    # weight gradient, n×k in the input gradient
    cdef long long weights = <long long> (m if kind == PRODUCT_TN else k) * n
    if kind == PRODUCT_NT and k < choice.own_min_length[t]:
        return False
    if weights <= choice.own_max_weights[t]:
        if rows > choice.own_max_rows[t][kind]:
            return False
    elif (weights > choice.own_large_max_weights[t] or rows > choice.own_large_max_rows[t][kind]
          or rows < choice.own_large_min_rows[t][kind]):
        return False
    return small_gemm_available()


cdef inline int small_gemm_threads(int kind, int m, int n, int k, size_t item_size) noexcept nogil:
    """Threads the own kernels split this product over."""
    cdef double work = <double> m * n * k
    if choice.threads > 1 and (work >= choice.split_min_work[item_size == 8][kind]
                               or work >= choice.split_floor):
        return choice.threads
    return 1


# OpenBLAS runs a product of at most 65536·4 multiply-adds on the calling
# thread; larger ones wake its thread pool (interface/gemm.c).
cdef enum:
    BLAS_ONE_THREAD_MAX_WORK = 65536 * 4


cdef inline bint gemm_may_use_blas_threads(bint transpose_a, bint transpose_b, int m, int n,
                                           int k, size_t item_size) noexcept nogil:
    """Whether gemm() hands this product to BLAS at a size BLAS may thread."""
    return (<double> m * n * k > BLAS_ONE_THREAD_MAX_WORK
            and not use_small_gemm(transpose_a, transpose_b, m, n, k, item_size))


cdef inline void own_gemm(bint transpose_a, bint transpose_b,
                          int m, int n, int k,
                          floating alpha, const floating* a, int lda,
                          const floating* b, int ldb,
                          floating beta, floating* c, int ldc, int threads) noexcept nogil:
    """gemm() on the own kernels, split over `threads` (not Aᵀ·Bᵀ)."""
    # Element (i, p) of op(A): a[i·lda + p], or a[p·lda + i] when transposed.
    cdef Py_ssize_t a_row = 1 if transpose_a else lda
    cdef Py_ssize_t a_col = lda if transpose_a else 1
    if transpose_b:
        if floating is float:
            small_gemm_nt_f32(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads)
        else:
            small_gemm_nt_f64(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads)
    elif floating is float:
        small_gemm_f32(m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc, threads)
    else:
        small_gemm_f64(m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc, threads)


cdef inline void blas_gemm(bint transpose_a, bint transpose_b,
                           int m, int n, int k,
                           floating alpha, const floating* a, int lda,
                           const floating* b, int ldb,
                           floating beta, floating* c, int ldc) noexcept nogil:
    """gemm() on BLAS."""
    cdef char op_a = b'T' if transpose_a else b'N'
    cdef char op_b = b'T' if transpose_b else b'N'
    cdef Py_ssize_t i
    if beta != 0 and beta != 1:
        # OpenBLAS scales C by beta in a slow pass of its own: sgemm_beta took
        # 21 % of a C1 step (fused SGD + L2: beta = 1 − ηλ/n), this loop 12 %
        # (perf, 2-core AMD EPYC, family 25, model 1).  The same products,
        # then beta = 1, which OpenBLAS adds without a pass.
        if ldc == n:
            scale_inplace(c, <Py_ssize_t> m * n, beta)
        else:
            for i in range(m):
                scale_inplace(c + i * ldc, n, beta)
        beta = 1
    if floating is float:
        sgemm(&op_b, &op_a, &n, &m, &k, &alpha, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&op_b, &op_a, &n, &m, &k, &alpha, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)


cdef inline void gemm(bint transpose_a, bint transpose_b,
                      int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C(m×n) = alpha·op(A)(m×k)·op(B)(k×n) + beta·C.

    lda, ldb, ldc are row strides in elements.  beta = 0 overwrites C (BLAS
    never reads C then, so it may hold garbage); beta = 1 accumulates.
    """
    if use_small_gemm(transpose_a, transpose_b, m, n, k, sizeof(floating)):
        own_gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                 small_gemm_threads(product_kind(transpose_a, transpose_b), m, n, k,
                                    sizeof(floating)))
    else:
        blas_gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
