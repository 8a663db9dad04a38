/*
 * Matrix products with few rows on one side, for AVX-512 CPUs.
 *
 * A dense layer on a batch of ten rows multiplies a 10×784 matrix by a
 * 784×256 one.  OpenBLAS repacks both operands into its panel format on every
 * call; with ten rows there is too little arithmetic to pay for copying the
 * weight matrix, and these products ran at about a sixth of the machine's speed.
 * The kernels here read both operands in place: they produce MR rows of C at a
 * time as a sum of k rank-1 updates, loading each row of B once per MR rows
 * and multiplying it by MR broadcast elements of A, with the MR×32 block of C
 * held in registers throughout (2·MR of the 32 AVX-512 registers).
 *
 * The functions are compiled for x86-64-v4 (AVX-512) only;
 * fastnn_small_gemm_available() tells at run time whether the CPU has it, and
 * callers use BLAS when it does not.  Element (i, p) of A is read at
 * a[i·a_row + p·a_col], which covers A and Aᵀ; B is row-major and not
 * transposed.  beta = 0 overwrites C without reading it.
 *
 * Loads of B are whole vectors.  Where the block of columns is narrower than
 * the vectors, a load reads past the block's last column into the following
 * row; every lane read past the last column is discarded.  Rows whose load
 * would run past the end of B (the last element, (k−1)·ldb + n−1) are copied
 * into a zero-padded buffer first, so no read leaves the matrix.
 *
 * The product with a transposed B (a layer's input gradient dZ·Wᵀ) cannot
 * read B's columns as vectors; small_gemm_nt computes it as dot products of
 * rows instead, 4 rows of A by 4 rows of B at a time, the last partial
 * vector of each row a masked load.
 *
 * Written once for float and double: this header includes itself with SG_T
 * and the function names defined for each type.
 */
#ifndef FASTNN_SG_TEMPLATE

#ifndef FASTNN_SMALL_GEMM_KERNELS_H
#define FASTNN_SMALL_GEMM_KERNELS_H

#include <stddef.h>
#include <string.h>

/* setup.py compiles the kernels once, in a small unit it writes (SMALL_GEMM_UNIT),
 * and builds the extension modules with FASTNN_SMALL_GEMM_EXTERN: a module calling them then
 * sees only these declarations and links the compiled kernels instead of
 * compiling them again.  That unit (which defines SG_API) sees them
 * before the definitions, so the compiler checks that the two agree. */
#if defined(FASTNN_SMALL_GEMM_EXTERN) || defined(SG_API)

int fastnn_small_gemm_available(void);
void fastnn_small_gemm_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                           const float *a, ptrdiff_t a_row, ptrdiff_t a_col,
                           const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc);
void fastnn_small_gemm_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                           const double *a, ptrdiff_t a_row, ptrdiff_t a_col,
                           const double *b, ptrdiff_t ldb, double beta, double *c, ptrdiff_t ldc);
void fastnn_small_gemm_nt_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                              const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                              float beta, float *c, ptrdiff_t ldc);
void fastnn_small_gemm_nt_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                              const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
                              double beta, double *c, ptrdiff_t ldc);

#endif

#if !defined(FASTNN_SMALL_GEMM_EXTERN)

/* Linkage of the kernels: static where a module compiles this header itself,
 * external in that unit. */
#ifndef SG_API
#define SG_API static
#endif

/* FASTNN_NO_SMALL_GEMM (setup.py: the environment variable of that name)
 * builds without them: every product then goes to BLAS. */
#if !defined(FASTNN_NO_SMALL_GEMM) && defined(__x86_64__) && defined(__ELF__) && \
    ((defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11) || \
     (defined(__clang__) && __clang_major__ >= 12))
#define FASTNN_SMALL_GEMM 1
#define FASTNN_SG_TARGET __attribute__((target("arch=x86-64-v4")))
#define FASTNN_SG_INLINE static inline __attribute__((always_inline, target("arch=x86-64-v4")))
#endif

/* Rows of C produced per pass over B: 2·12 accumulators + 2 rows of B + 1
 * broadcast fit the 32 vector registers. */
#define FASTNN_SG_MAX_ROWS 12

SG_API int fastnn_small_gemm_available(void)
{
#if defined(FASTNN_SMALL_GEMM)
    static int available = -1;
    if (available < 0) {
        __builtin_cpu_init();
        available = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                    && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
    }
    return available;
#else
    return 0;
#endif
}

#define FASTNN_SG_TEMPLATE

#if defined(FASTNN_SMALL_GEMM)
#include <immintrin.h>
#endif

/* Per type: the element, the names, the vector type and the suffix of its
 * AVX-512 intrinsics (_mm512_loadu_ps / _pd, ...); the template undefines
 * them at its end. */
#define SG_T float
#define SG_FN(name) fastnn_##name##_f32
#define SG_ZMM __m512
#define SG_MASK __mmask16
#define SG_SUFFIX ps
#include "small_gemm_kernels.h"

#define SG_T double
#define SG_FN(name) fastnn_##name##_f64
#define SG_ZMM __m512d
#define SG_MASK __mmask8
#define SG_SUFFIX pd
#include "small_gemm_kernels.h"

#undef FASTNN_SG_TEMPLATE

#endif /* FASTNN_SMALL_GEMM_EXTERN */

#endif /* FASTNN_SMALL_GEMM_KERNELS_H */

#else /* FASTNN_SG_TEMPLATE: the kernels, for one SG_T */

#if defined(FASTNN_SMALL_GEMM)

#define SG_LANES ((ptrdiff_t) (64 / sizeof(SG_T)))
#define SG_PASTE(a, b) a##b
#define SG_EXPAND_PASTE(a, b) SG_PASTE(a, b)
#define SG_MM(op) SG_EXPAND_PASTE(_mm512_##op##_, SG_SUFFIX) /* SG_MM(loadu): _mm512_loadu_ps */
#define SG_BLOCK (2 * SG_LANES) /* columns of C per block: two vectors */

typedef SG_T SG_FN(vec) __attribute__((vector_size(64)));

FASTNN_SG_INLINE SG_FN(vec) SG_FN(load)(const SG_T *p)
{
    SG_FN(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

FASTNN_SG_INLINE void SG_FN(store)(SG_T *p, SG_FN(vec) v)
{
    memcpy(p, &v, sizeof v);
}

/* One MR-row block of C, columns [0, width) of the block at b and c.
 * Rows p < safe_rows of B are loaded in place, later ones through a padded
 * copy (see the file comment). */
FASTNN_SG_INLINE void SG_FN(block)(const int MR, ptrdiff_t k, SG_T alpha,
                                   const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                                   const SG_T *b, ptrdiff_t ldb, ptrdiff_t safe_rows,
                                   SG_T beta, SG_T *c, ptrdiff_t ldc, ptrdiff_t width)
{
    SG_FN(vec) lo[FASTNN_SG_MAX_ROWS], hi[FASTNN_SG_MAX_ROWS];
    const int two = width > SG_LANES;
    for (int r = 0; r < MR; ++r) {
        lo[r] = (SG_FN(vec)) {0};
        hi[r] = (SG_FN(vec)) {0};
    }
    for (ptrdiff_t p = 0; p < k; ++p) {
        SG_FN(vec) b_lo, b_hi = (SG_FN(vec)) {0};
        if (p < safe_rows) {
            b_lo = SG_FN(load)(b + p * ldb);
            if (two)
                b_hi = SG_FN(load)(b + p * ldb + SG_LANES);
        } else {
            SG_T padded[SG_BLOCK] = {0};
            memcpy(padded, b + p * ldb, (size_t) width * sizeof(SG_T));
            b_lo = SG_FN(load)(padded);
            b_hi = SG_FN(load)(padded + SG_LANES);
        }
        const SG_T *a_p = a + p * a_col;
        for (int r = 0; r < MR; ++r) {
            SG_T a_rp = a_p[r * a_row];
            lo[r] += a_rp * b_lo;
            if (two)
                hi[r] += a_rp * b_hi;
        }
    }
    for (int r = 0; r < MR; ++r) {
        SG_T *c_r = c + r * ldc;
        SG_FN(vec) out_lo = alpha * lo[r], out_hi = alpha * hi[r];
        if (width == SG_BLOCK) {
            if (beta != 0) {
                out_lo += beta * SG_FN(load)(c_r);
                out_hi += beta * SG_FN(load)(c_r + SG_LANES);
            }
            SG_FN(store)(c_r, out_lo);
            SG_FN(store)(c_r + SG_LANES, out_hi);
        } else {
            SG_T out[SG_BLOCK];
            SG_FN(store)(out, out_lo);
            SG_FN(store)(out + SG_LANES, out_hi);
            for (ptrdiff_t j = 0; j < width; ++j)
                c_r[j] = beta != 0 ? out[j] + beta * c_r[j] : out[j];
        }
    }
}

/* C(m×n) = alpha·A(m×k)·B(k×n) + beta·C; see the file comment. */
FASTNN_SG_TARGET
SG_API void SG_FN(small_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                              const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                              const SG_T *b, ptrdiff_t ldb, SG_T beta,
                              SG_T *c, ptrdiff_t ldc)
{
    const ptrdiff_t last = (k - 1) * ldb + n - 1; /* B's last element */
    for (ptrdiff_t j0 = 0; j0 < n; j0 += SG_BLOCK) {
        ptrdiff_t width = n - j0 < SG_BLOCK ? n - j0 : SG_BLOCK;
        ptrdiff_t reach = j0 + (width > SG_LANES ? SG_BLOCK : SG_LANES) - 1;
        ptrdiff_t safe_rows = reach <= last ? (last - reach) / ldb + 1 : 0;
        if (safe_rows > k)
            safe_rows = k;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += FASTNN_SG_MAX_ROWS) {
            const SG_T *a_i = a + i0 * a_row;
            SG_T *c_i = c + i0 * ldc + j0;
            /* A constant row count per call lets the compiler keep the
             * accumulators in registers. */
            switch (m - i0 < FASTNN_SG_MAX_ROWS ? m - i0 : FASTNN_SG_MAX_ROWS) {
#define FASTNN_SG_CASE(MR)                                                          \
            case MR:                                                                \
                SG_FN(block)(MR, k, alpha, a_i, a_row, a_col, b + j0, ldb, safe_rows, \
                             beta, c_i, ldc, width);                                \
                break;
            FASTNN_SG_CASE(1) FASTNN_SG_CASE(2) FASTNN_SG_CASE(3) FASTNN_SG_CASE(4)
            FASTNN_SG_CASE(5) FASTNN_SG_CASE(6) FASTNN_SG_CASE(7) FASTNN_SG_CASE(8)
            FASTNN_SG_CASE(9) FASTNN_SG_CASE(10) FASTNN_SG_CASE(11) FASTNN_SG_CASE(12)
#undef FASTNN_SG_CASE
            }
        }
    }
}

/* Rows of A and of B per block of the transposed-B product: 4×4 dot products
 * in 16 accumulators, with 4 + 4 loaded vectors. */
#define FASTNN_SG_DOT_ROWS 4

/* C[i, j] = alpha·Σ_p A[i, p]·B[j, p] + beta·C[i, j] for an MR×NR block:
 * dot products of rows, so both operands are read along their rows.  The
 * last, partial vector of each row is a masked load, which reads nothing
 * past the row's end. */
FASTNN_SG_INLINE void SG_FN(dot_block)(const int MR, const int NR, ptrdiff_t k, SG_T alpha,
                                       const SG_T *a, ptrdiff_t lda,
                                       const SG_T *b, ptrdiff_t ldb,
                                       SG_T beta, SG_T *c, ptrdiff_t ldc)
{
    SG_ZMM acc[FASTNN_SG_DOT_ROWS][FASTNN_SG_DOT_ROWS], a_v[FASTNN_SG_DOT_ROWS],
        b_v[FASTNN_SG_DOT_ROWS];
    for (int r = 0; r < MR; ++r)
        for (int s = 0; s < NR; ++s)
            acc[r][s] = SG_MM(setzero)();
    ptrdiff_t p = 0;
    for (; p + SG_LANES <= k; p += SG_LANES) {
        for (int r = 0; r < MR; ++r)
            a_v[r] = SG_MM(loadu)(a + r * lda + p);
        for (int s = 0; s < NR; ++s)
            b_v[s] = SG_MM(loadu)(b + s * ldb + p);
        for (int r = 0; r < MR; ++r)
            for (int s = 0; s < NR; ++s)
                acc[r][s] = SG_MM(fmadd)(a_v[r], b_v[s], acc[r][s]);
    }
    if (p < k) {
        unsigned int mask = (1u << (k - p)) - 1u;
        for (int r = 0; r < MR; ++r)
            a_v[r] = SG_MM(maskz_loadu)((SG_MASK) mask, a + r * lda + p);
        for (int s = 0; s < NR; ++s)
            b_v[s] = SG_MM(maskz_loadu)((SG_MASK) mask, b + s * ldb + p);
        for (int r = 0; r < MR; ++r)
            for (int s = 0; s < NR; ++s)
                acc[r][s] = SG_MM(fmadd)(a_v[r], b_v[s], acc[r][s]);
    }
    for (int r = 0; r < MR; ++r)
        for (int s = 0; s < NR; ++s) {
            SG_T value = alpha * SG_MM(reduce_add)(acc[r][s]);
            SG_T *c_rs = c + r * ldc + s;
            *c_rs = beta != 0 ? value + beta * *c_rs : value;
        }
}

/* The MR rows of A at a against every row of B. */
FASTNN_SG_INLINE void SG_FN(dot_rows)(const int MR, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                                      const SG_T *a, ptrdiff_t lda,
                                      const SG_T *b, ptrdiff_t ldb,
                                      SG_T beta, SG_T *c, ptrdiff_t ldc)
{
    ptrdiff_t j0 = 0;
    for (; j0 + FASTNN_SG_DOT_ROWS <= n; j0 += FASTNN_SG_DOT_ROWS)
        SG_FN(dot_block)(MR, FASTNN_SG_DOT_ROWS, k, alpha, a, lda, b + j0 * ldb, ldb,
                         beta, c + j0, ldc);
    switch (n - j0) {
    case 1: SG_FN(dot_block)(MR, 1, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc); break;
    case 2: SG_FN(dot_block)(MR, 2, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc); break;
    case 3: SG_FN(dot_block)(MR, 3, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc); break;
    default: break;
    }
}

/* C(m×n) = alpha·A(m×k)·Bᵀ + beta·C with A (m×k) and B (n×k) row-major. */
FASTNN_SG_TARGET
SG_API void SG_FN(small_gemm_nt)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                                 const SG_T *a, ptrdiff_t lda,
                                 const SG_T *b, ptrdiff_t ldb, SG_T beta,
                                 SG_T *c, ptrdiff_t ldc)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += FASTNN_SG_DOT_ROWS) {
        const SG_T *a_i = a + i0 * lda;
        SG_T *c_i = c + i0 * ldc;
        switch (m - i0 < FASTNN_SG_DOT_ROWS ? m - i0 : FASTNN_SG_DOT_ROWS) {
        case 1: SG_FN(dot_rows)(1, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
        case 2: SG_FN(dot_rows)(2, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
        case 3: SG_FN(dot_rows)(3, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
        default: SG_FN(dot_rows)(4, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
        }
    }
}

#undef SG_LANES
#undef SG_BLOCK
#undef SG_PASTE
#undef SG_EXPAND_PASTE
#undef SG_MM

#else /* no AVX-512 build: never called, fastnn_small_gemm_available() is 0 */

SG_API void SG_FN(small_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                              const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                              const SG_T *b, ptrdiff_t ldb, SG_T beta,
                              SG_T *c, ptrdiff_t ldc)
{
    (void) m; (void) n; (void) k; (void) alpha; (void) a; (void) a_row; (void) a_col;
    (void) b; (void) ldb; (void) beta; (void) c; (void) ldc;
}

SG_API void SG_FN(small_gemm_nt)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                                 const SG_T *a, ptrdiff_t lda,
                                 const SG_T *b, ptrdiff_t ldb, SG_T beta,
                                 SG_T *c, ptrdiff_t ldc)
{
    (void) m; (void) n; (void) k; (void) alpha; (void) a; (void) lda;
    (void) b; (void) ldb; (void) beta; (void) c; (void) ldc;
}

#endif /* FASTNN_SMALL_GEMM */

#undef SG_T
#undef SG_FN
#undef SG_ZMM
#undef SG_MASK
#undef SG_SUFFIX

#endif /* FASTNN_SG_TEMPLATE */
