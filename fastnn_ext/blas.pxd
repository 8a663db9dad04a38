# Row-major BLAS for float32 and float64 from one source.
#
# scipy.linalg.cython_blas exposes column-major Fortran BLAS.  A row-major
# matrix is the transpose of a column-major one, so C = op(A)·op(B) in row-major
# is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ in column-major: swap the operands and the
# dimensions m and n, keep the transpose flags.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "small_gemm_kernels.h" nogil:
    bint small_gemm_available "fastnn_small_gemm_available" ()
    void small_gemm_f32 "fastnn_small_gemm_f32" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
        const float* a, Py_ssize_t a_row, Py_ssize_t a_col,
        const float* b, Py_ssize_t ldb, float beta, float* c, Py_ssize_t ldc)
    void small_gemm_f64 "fastnn_small_gemm_f64" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
        const double* a, Py_ssize_t a_row, Py_ssize_t a_col,
        const double* b, Py_ssize_t ldb, double beta, double* c, Py_ssize_t ldc)
    void small_gemm_nt_f32 "fastnn_small_gemm_nt_f32" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha, const float* a, Py_ssize_t lda,
        const float* b, Py_ssize_t ldb, float beta, float* c, Py_ssize_t ldc)
    void small_gemm_nt_f64 "fastnn_small_gemm_nt_f64" (
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha, const double* a, Py_ssize_t lda,
        const double* b, Py_ssize_t ldb, double beta, double* c, Py_ssize_t ldc)

# When the small-GEMM kernels (small_gemm_kernels.h) beat OpenBLAS on this
# library's shapes, measured.  Without a transpose of B they read B once per
# 12 rows of C: faster whenever C has at most 128 rows, or B stays in the
# 1 MiB L2 cache across the passes.  With Bᵀ they compute dot products of
# rows, whose horizontal sums cost as much as a short row: faster from 64
# elements per row with up to 16 rows of C, or from 256 elements per row
# with up to 128 (at 512 rows, OpenBLAS on two threads is far ahead).
cdef enum:
    SMALL_GEMM_MAX_ROWS = 128
    SMALL_GEMM_MAX_B_BYTES = 1 << 20
    SMALL_DOT_MIN_LENGTH = 64
    SMALL_DOT_MAX_ROWS = 16
    SMALL_DOT_LONG_LENGTH = 256


cdef inline bint use_small_gemm(bint transpose_a, bint transpose_b, int m, int n, int k,
                                size_t item_size) noexcept nogil:
    cdef bint fits
    if m <= 0 or n <= 0 or k <= 0 or (transpose_a and transpose_b):
        return False
    if transpose_b:
        fits = m <= SMALL_GEMM_MAX_ROWS and (
            k >= SMALL_DOT_LONG_LENGTH or (k >= SMALL_DOT_MIN_LENGTH and m <= SMALL_DOT_MAX_ROWS))
    else:
        fits = m <= SMALL_GEMM_MAX_ROWS or <size_t> k * n * item_size <= SMALL_GEMM_MAX_B_BYTES
    return fits and small_gemm_available()


# OpenBLAS runs a product of at most 65536·4 multiply-adds on the calling
# thread; larger ones wake its thread pool (interface/gemm.c).
cdef enum:
    BLAS_ONE_THREAD_MAX_WORK = 65536 * 4


cdef inline bint gemm_may_use_blas_threads(bint transpose_a, bint transpose_b, int m, int n,
                                           int k, size_t item_size) noexcept nogil:
    """Whether gemm() hands this product to BLAS at a size BLAS may thread."""
    return (<double> m * n * k > BLAS_ONE_THREAD_MAX_WORK
            and not use_small_gemm(transpose_a, transpose_b, m, n, k, item_size))


cdef inline void gemm(bint transpose_a, bint transpose_b,
                      int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C(m×n) = alpha·op(A)(m×k)·op(B)(k×n) + beta·C.

    lda, ldb, ldc are row strides in elements.  beta = 0 overwrites C (BLAS
    never reads C then, so it may hold garbage); beta = 1 accumulates.
    """
    cdef char op_a = b'T' if transpose_a else b'N'
    cdef char op_b = b'T' if transpose_b else b'N'
    # Element (i, p) of op(A): a[i·lda + p], or a[p·lda + i] when transposed.
    cdef Py_ssize_t a_row = 1 if transpose_a else lda
    cdef Py_ssize_t a_col = lda if transpose_a else 1
    if use_small_gemm(transpose_a, transpose_b, m, n, k, sizeof(floating)):
        if transpose_b:
            if floating is float:
                small_gemm_nt_f32(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            else:
                small_gemm_nt_f64(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        elif floating is float:
            small_gemm_f32(m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc)
        else:
            small_gemm_f64(m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc)
        return
    if floating is float:
        sgemm(&op_b, &op_a, &n, &m, &k, &alpha, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&op_b, &op_a, &n, &m, &k, &alpha, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)
