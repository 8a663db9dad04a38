# Row-major BLAS for float32 and float64 from one source.
#
# scipy.linalg.cython_blas exposes column-major Fortran BLAS.  A row-major
# matrix is the transpose of a column-major one, so C = op(A)·op(B) in row-major
# is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ in column-major: swap the operands and the
# dimensions m and n, keep the transpose flags.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


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
    if floating is float:
        sgemm(&op_b, &op_a, &n, &m, &k, &alpha, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&op_b, &op_a, &n, &m, &k, &alpha, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)
