# Row-consistent products for inference (src/row_gemm_kernels.h): every
# element of y = x·w is one chain of fused multiply-adds in the order of k,
# so a row gets the same bits in any batch, and an element the same bits
# whichever range of columns it is computed in.  Operands row-major, read in place.

from cython cimport floating

cdef extern from "row_gemm_kernels.h" nogil:
    void row_gemm_f32 "fastnn_row_gemm_f32" (Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                             const float* x, const float* w, float* y,
                                             Py_ssize_t c0, Py_ssize_t c1)
    void row_gemm_f64 "fastnn_row_gemm_f64" (Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                             const double* x, const double* w, double* y,
                                             Py_ssize_t c0, Py_ssize_t c1)
    Py_ssize_t row_gemm_grain "fastnn_row_gemm_grain" (Py_ssize_t m, size_t item)
    bint row_gemm_vectorized "fastnn_row_gemm_vectorized" ()
    int row_gemm_vector_bits "fastnn_row_gemm_vector_bits" ()


cdef inline void row_gemm_columns(const floating* x, const floating* w, floating* y,
                                  Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, Py_ssize_t c0,
                                  Py_ssize_t c1) noexcept nogil:
    """Columns [c0, c1) of y(m×n) = x(m×k)·w(k×n), each element summed over k in order."""
    if floating is float:
        row_gemm_f32(m, n, k, x, w, y, c0, c1)
    else:
        row_gemm_f64(m, n, k, x, w, y, c0, c1)


cdef inline void row_gemm(const floating* x, const floating* w, floating* y, Py_ssize_t m,
                          Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """y(m×n) = x(m×k)·w(k×n), each element summed over k in order."""
    row_gemm_columns(x, w, y, m, k, n, 0, n)
