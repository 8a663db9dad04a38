/*
 * Matrix products with few rows on one side, for AVX-512 and AVX2+FMA CPUs.
 *
 * A dense layer on a batch of ten rows multiplies a 10×784 matrix by a
 * 784×256 one.  OpenBLAS repacks both operands into its panel format on every
 * call; with ten rows there is too little arithmetic to pay for copying the
 * weight matrix, and these products ran at about a sixth of the machine's speed.
 * The kernels here read both operands in place: they produce MR rows of C at a
 * time as a sum of k rank-1 updates, loading each row of B once per MR rows
 * and multiplying it by MR broadcast elements of A, with the MR×(2 vectors)
 * block of C held in registers throughout: 12 rows in 24 of the 32 AVX-512
 * registers, 6 rows in 12 of the 16 AVX2 ones.
 *
 * Each kernel is compiled twice, for x86-64-v4 (AVX-512) and for AVX2+FMA;
 * fastnn_small_gemm_vector_bits() tells at run time which of the two the CPU
 * runs (512, 256, or 0 for neither: callers then use BLAS).  Element (i, p)
 * of A is read at a[i·a_row + p·a_col], which covers A and Aᵀ; B is row-major
 * and not transposed.  beta = 0 overwrites C without reading it.  Each
 * element of C is the same sequence of fused multiply-adds over p whatever
 * the leading dimensions, the blocking or the thread that computes it, so
 * neither changes any bit of the result.
 *
 * Loads of B are whole vectors.  Where the block of columns is narrower than
 * the vectors, a load reads past the block's last column into the following
 * row; every lane read past the last column is discarded.  Rows whose load
 * would run past the end of B (the last element, (k−1)·ldb + n−1) are copied
 * into a zero-padded buffer first, so no read leaves the matrix.
 *
 * The product with a transposed B (a layer's input gradient dZ·Wᵀ) cannot
 * read B's columns as vectors.  With many rows, small_gemm_nt copies B's
 * rows, a block at a time, transposed into a panel that the same blocks
 * then multiply (packed_nt), the same sums in the same order as the other
 * products.  With few rows, or beta ≠ 0, it computes dot products of rows,
 * DOT_A rows of A by DOT_B rows of B at a time (4×4 with AVX-512; 4×3 with
 * AVX2: 12 sums and 4 rows of A in the 16 registers, B read as the
 * multiply-adds' memory operand — on a Zen 3 EPYC 54 GFLOP/s at 10×128 by
 * 256×128 in float32, against 44 for 2×4 and 40 for 4×2), the last partial
 * vector of each row a masked load.  The dot products' lane sums depend on
 * the vector width: AVX-512 and AVX2 CPUs differ in their last bits.
 *
 * With threads > 1 a product is split (OpenMP) into that many parts along
 * the larger of C's dimensions, in whole blocks, so that each thread reads
 * its own part of the larger operand.
 *
 * Written once for float and double, and within each for both instruction
 * sets: this header includes itself with SG_T and the type's names defined,
 * and that part includes itself again with the instruction set's.
 */
#ifndef FASTNN_SG_TEMPLATE

#ifndef FASTNN_SMALL_GEMM_KERNELS_H
#define FASTNN_SMALL_GEMM_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* setup.py compiles the kernels once, in a small unit it writes (SMALL_GEMM_UNIT),
 * and builds the extension modules with FASTNN_SMALL_GEMM_EXTERN: a module calling them then
 * sees only these declarations and links the compiled kernels instead of
 * compiling them again.  That unit (which defines SG_API) sees them
 * before the definitions, so the compiler checks that the two agree. */
#if defined(FASTNN_SMALL_GEMM_EXTERN) || defined(SG_API)

int fastnn_small_gemm_available(void);
int fastnn_small_gemm_vector_bits(void);
void fastnn_small_gemm_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                           const float *a, ptrdiff_t a_row, ptrdiff_t a_col,
                           const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc,
                           int threads);
void fastnn_small_gemm_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                           const double *a, ptrdiff_t a_row, ptrdiff_t a_col,
                           const double *b, ptrdiff_t ldb, double beta, double *c, ptrdiff_t ldc,
                           int threads);
void fastnn_small_gemm_nt_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                              const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                              float beta, float *c, ptrdiff_t ldc, int threads);
void fastnn_small_gemm_nt_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                              const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
                              double beta, double *c, ptrdiff_t ldc, int threads);

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
#endif

/* The vector width the kernels run at here: 512 (AVX-512 F, VL, DQ, BW),
 * 256 (AVX2 and FMA, exactly what the second version is compiled for), or 0. */
SG_API int fastnn_small_gemm_vector_bits(void)
{
#if defined(FASTNN_SMALL_GEMM)
    static int bits = -1;
    if (bits < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
            bits = 512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            bits = 256;
        else
            bits = 0;
    }
    return bits;
#else
    return 0;
#endif
}

SG_API int fastnn_small_gemm_available(void)
{
    return fastnn_small_gemm_vector_bits() != 0;
}

#if defined(FASTNN_SMALL_GEMM)
#include <immintrin.h>

#define FASTNN_SG_V4 "arch=x86-64-v4"
#define FASTNN_SG_V3 "avx2,fma"

/* The two steps of a dot product that differ by instruction set and type:
 * the first `count` (< one vector) elements at p, reading nothing past them
 * (sg_head, defined per type below from the type's intrinsics), and the sum
 * of a vector's lanes (sg_sum; AVX2's here). */

/* AVX2 masks lanes by the sign of 32- or 64-bit integers: a window into
 * eight 32-bit ones followed by zeros.  A masked-off lane is not read (no
 * fault). */
static const int32_t fastnn_sg_mask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1};

__attribute__((always_inline, target(FASTNN_SG_V3))) static inline float
fastnn_sg_sum_v3_f32(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

__attribute__((always_inline, target(FASTNN_SG_V3))) static inline double
fastnn_sg_sum_v3_f64(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#endif

/* Names: SG_ISA_FN(small_gemm, v3) is fastnn_small_gemm_v3_f32 for float. */
#define SG_PASTE4(a, b, c, d) a##b##_##c##_##d
#define SG_EXPAND4(a, b, c, d) SG_PASTE4(a, b, c, d)
#define SG_ISA_FN(name, isa) SG_EXPAND4(fastnn_, name, isa, SG_TYPE_TAG)

/* Alignment of the parts of a threaded product: whole blocks of either
 * instruction set's kernels (12 or 6 rows; 128 or 64 bytes of a row). */
#define FASTNN_SG_SPLIT_ROWS 12
#define FASTNN_SG_SPLIT_BYTES 128

/* A product with a transposed B goes through packed panels from this many
 * blocks of rows (SG_MR each; 48 rows with AVX2, 96 with AVX-512, whose
 * blocks multiply twice as fast for the same copy): with fewer, the copy
 * into the panels costs more than it saves (see packed_nt). */
#define FASTNN_SG_PACKED_NT_BLOCKS 8

#define FASTNN_SG_TEMPLATE

/* Per type: the element, the names, the AVX-512 and AVX2 vectors, the
 * AVX-512 mask and the intrinsics' suffix (_mm512_maskz_loadu_ps / _pd); the template undefines
 * them at its end. */
#define SG_T float
#define SG_FN(name) fastnn_##name##_f32
#define SG_TYPE_TAG f32
#define SG_ZMM __m512
#define SG_YMM __m256
#define SG_MASK __mmask16
#define SG_SUFFIX ps
#include "small_gemm_kernels.h"

#define SG_T double
#define SG_FN(name) fastnn_##name##_f64
#define SG_TYPE_TAG f64
#define SG_ZMM __m512d
#define SG_YMM __m256d
#define SG_MASK __mmask8
#define SG_SUFFIX pd
#include "small_gemm_kernels.h"

#undef FASTNN_SG_TEMPLATE
#undef SG_PASTE4
#undef SG_EXPAND4
#undef SG_ISA_FN

#endif /* FASTNN_SMALL_GEMM_EXTERN */

#endif /* FASTNN_SMALL_GEMM_KERNELS_H */

#elif !defined(FASTNN_SG_ISA) /* FASTNN_SG_TEMPLATE: the products for one SG_T */

#if defined(FASTNN_SMALL_GEMM)

#define SG_PASTE(a, b) a##b
#define SG_EXPAND_PASTE(a, b) SG_PASTE(a, b)
#define SG_MM512(op) SG_EXPAND_PASTE(_mm512_##op##_, SG_SUFFIX) /* _mm512_loadu_ps */
#define SG_MM256(op) SG_EXPAND_PASTE(_mm256_##op##_, SG_SUFFIX)

__attribute__((always_inline, target(FASTNN_SG_V4))) static inline SG_ZMM
SG_ISA_FN(sg_head, v4)(const SG_T *p, ptrdiff_t count)
{
    return SG_MM512(maskz_loadu)((SG_MASK) ((1u << count) - 1u), p);
}

__attribute__((always_inline, target(FASTNN_SG_V4))) static inline SG_T
SG_ISA_FN(sg_sum, v4)(SG_ZMM v)
{
    return SG_MM512(reduce_add)(v);
}

__attribute__((always_inline, target(FASTNN_SG_V3))) static inline SG_YMM
SG_ISA_FN(sg_head, v3)(const SG_T *p, ptrdiff_t count)
{
    const int32_t *window = fastnn_sg_mask32 + 8 - count * (ptrdiff_t) (sizeof(SG_T) / 4);
    return SG_MM256(maskload)(p, _mm256_loadu_si256((const __m256i *) window));
}

#define FASTNN_SG_ISA
/* Per instruction set: its tag, target, vector size, rows of C per pass over
 * B (2·MR accumulators + 2 rows of B + 1 broadcast fit the registers) and
 * the dot-product block. */
#define SG_ISA v4
#define SG_TARGET FASTNN_SG_V4
#define SG_VECTOR_BYTES 64
#define SG_MR 12
#define SG_DOT_A 4
#define SG_DOT_B 4
#include "small_gemm_kernels.h"

#define SG_ISA v3
#define SG_TARGET FASTNN_SG_V3
#define SG_VECTOR_BYTES 32
#define SG_MR 6
#define SG_DOT_A 4
#define SG_DOT_B 3
#include "small_gemm_kernels.h"
#undef FASTNN_SG_ISA

/* How many parts (1 to threads) an m×n C is split into: along its larger
 * dimension, each part at least one whole block of rows (row_align) or of
 * columns (col_align) of either instruction set's kernels. */
static inline int SG_FN(sg_parts)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t row_align,
                                  ptrdiff_t col_align, int threads)
{
    ptrdiff_t blocks = m >= n ? (m + row_align - 1) / row_align : (n + col_align - 1) / col_align;
    return threads < 1 ? 1 : (blocks < threads ? (int) blocks : threads);
}

/* Part t of `parts`: rows [*i0, *i1) and columns [*j0, *j1) of C, in whole blocks. */
static inline void SG_FN(sg_part)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t row_align,
                                  ptrdiff_t col_align, int parts, int t, ptrdiff_t *i0,
                                  ptrdiff_t *i1, ptrdiff_t *j0, ptrdiff_t *j1)
{
    const int by_rows = m >= n;
    const ptrdiff_t size = by_rows ? m : n, align = by_rows ? row_align : col_align;
    const ptrdiff_t blocks = (size + align - 1) / align;
    ptrdiff_t start = blocks * t / parts * align, end = blocks * (t + 1) / parts * align;
    end = end < size ? end : size;
    *i0 = by_rows ? start : 0;
    *i1 = by_rows ? end : m;
    *j0 = by_rows ? 0 : start;
    *j1 = by_rows ? n : end;
}

#endif /* FASTNN_SMALL_GEMM */

/* C(m×n) = alpha·A(m×k)·B(k×n) + beta·C; see the file comment. */
SG_API void SG_FN(small_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                              const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                              const SG_T *b, ptrdiff_t ldb, SG_T beta,
                              SG_T *c, ptrdiff_t ldc, int threads)
{
#if defined(FASTNN_SMALL_GEMM)
    void (*kernel)(ptrdiff_t, ptrdiff_t, ptrdiff_t, SG_T, const SG_T *, ptrdiff_t, ptrdiff_t,
                   const SG_T *, ptrdiff_t, SG_T, SG_T *, ptrdiff_t) =
        fastnn_small_gemm_vector_bits() == 512 ? SG_ISA_FN(small_gemm, v4)
                                                : SG_ISA_FN(small_gemm, v3);
    const ptrdiff_t col_align = FASTNN_SG_SPLIT_BYTES / (ptrdiff_t) sizeof(SG_T);
    const int parts = SG_FN(sg_parts)(m, n, FASTNN_SG_SPLIT_ROWS, col_align, threads);
    if (parts == 1) {
        kernel(m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(parts)
    for (int t = 0; t < parts; ++t) {
        ptrdiff_t i0, i1, j0, j1;
        SG_FN(sg_part)(m, n, FASTNN_SG_SPLIT_ROWS, col_align, parts, t, &i0, &i1, &j0, &j1);
        kernel(i1 - i0, j1 - j0, k, alpha, a + i0 * a_row, a_row, a_col, b + j0, ldb, beta,
               c + i0 * ldc + j0, ldc);
    }
#else /* never called: fastnn_small_gemm_available() is 0 */
    (void) m; (void) n; (void) k; (void) alpha; (void) a; (void) a_row; (void) a_col;
    (void) b; (void) ldb; (void) beta; (void) c; (void) ldc; (void) threads;
#endif
}

/* C(m×n) = alpha·A(m×k)·Bᵀ + beta·C with A (m×k) and B (n×k) row-major:
 * through packed panels of B where the product has PACKED_NT_BLOCKS blocks
 * of rows or more and beta = 0, else as dot products.  The choice is the
 * whole product's, made before any split, so that the thread count changes
 * no bit. */
SG_API void SG_FN(small_gemm_nt)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                                 const SG_T *a, ptrdiff_t lda,
                                 const SG_T *b, ptrdiff_t ldb, SG_T beta,
                                 SG_T *c, ptrdiff_t ldc, int threads)
{
#if defined(FASTNN_SMALL_GEMM)
    const int wide = fastnn_small_gemm_vector_bits() == 512;
    const int packed = beta == 0 && m >= FASTNN_SG_PACKED_NT_BLOCKS * (wide ? 12 : 6);
    void (*kernel)(ptrdiff_t, ptrdiff_t, ptrdiff_t, SG_T, const SG_T *, ptrdiff_t,
                   const SG_T *, ptrdiff_t, SG_T, SG_T *, ptrdiff_t) =
        packed ? (wide ? SG_ISA_FN(packed_nt, v4) : SG_ISA_FN(packed_nt, v3))
               : (wide ? SG_ISA_FN(small_gemm_nt, v4) : SG_ISA_FN(small_gemm_nt, v3));
    /* parts in whole blocks of either set: the packed kernels' (as small_gemm's),
     * or the dot products' 4 rows of A and 12 (4·3) rows of B */
    const ptrdiff_t row_align = packed ? FASTNN_SG_SPLIT_ROWS : 4;
    const ptrdiff_t col_align = packed ? FASTNN_SG_SPLIT_BYTES / (ptrdiff_t) sizeof(SG_T) : 12;
    const int parts = SG_FN(sg_parts)(m, n, row_align, col_align, threads);
    if (parts == 1) {
        kernel(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(parts)
    for (int t = 0; t < parts; ++t) {
        ptrdiff_t i0, i1, j0, j1;
        SG_FN(sg_part)(m, n, row_align, col_align, parts, t, &i0, &i1, &j0, &j1);
        kernel(i1 - i0, j1 - j0, k, alpha, a + i0 * lda, lda, b + j0 * ldb, ldb, beta,
               c + i0 * ldc + j0, ldc);
    }
#else
    (void) m; (void) n; (void) k; (void) alpha; (void) a; (void) lda;
    (void) b; (void) ldb; (void) beta; (void) c; (void) ldc; (void) threads;
#endif
}

#undef SG_T
#undef SG_FN
#undef SG_TYPE_TAG
#undef SG_ZMM
#undef SG_YMM
#undef SG_MASK
#undef SG_SUFFIX
#undef SG_PASTE
#undef SG_EXPAND_PASTE
#undef SG_MM512
#undef SG_MM256

#else /* FASTNN_SG_ISA: the kernels for one SG_T and one instruction set */

#define SG_LANES ((ptrdiff_t) (SG_VECTOR_BYTES / sizeof(SG_T)))
#define SG_BLOCK (2 * SG_LANES) /* columns of C per block: two vectors */
#define SG_KN(name) SG_ISA_FN(name, SG_ISA)
#define SG_INLINE static inline __attribute__((always_inline, target(SG_TARGET)))

typedef SG_T SG_KN(vec) __attribute__((vector_size(SG_VECTOR_BYTES)));

SG_INLINE SG_KN(vec) SG_KN(load)(const SG_T *p)
{
    SG_KN(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

SG_INLINE void SG_KN(store)(SG_T *p, SG_KN(vec) v)
{
    memcpy(p, &v, sizeof v);
}

/* lo[r], hi[r] += A[r, p]·(b_lo, b_hi) for the MR rows at a_p = &A[0, p]. */
SG_INLINE void SG_KN(rank1)(const int MR, const int TWO, const SG_T *a_p, ptrdiff_t a_row,
                            SG_KN(vec) b_lo, SG_KN(vec) b_hi, SG_KN(vec) *lo, SG_KN(vec) *hi)
{
    for (int r = 0; r < MR; ++r) {
        SG_T a_rp = a_p[r * a_row];
        lo[r] += a_rp * b_lo;
        if (TWO)
            hi[r] += a_rp * b_hi;
    }
}

/* One MR-row block of C, columns [0, width) of the block at b and c, width
 * over one vector if TWO.  Rows p < safe_rows of B are loaded in place, later
 * ones (only if PADDED) through a padded copy (see the file comment).
 * FROM_C continues the sums that C holds (a later slice of the inner
 * dimension; beta is then 0).  MR, TWO, a_row = 1 (A transposed), PADDED and
 * FROM_C are constants where this is inlined: with a branch on any of them
 * left in the loop over p, GCC 12 kept the AVX2 accumulators on the stack
 * and ran at a third of the speed; with the padded loop always compiled in,
 * it kept a copy of them on the stack, zeroed and stored at every block (the
 * weight gradient of ten rows, 784×256, ran 20-25 % slower on an AMD EPYC,
 * family 25, model 1). */
SG_INLINE void SG_KN(block)(const int MR, const int TWO, const int A_ROW_1, const int PADDED,
                            const int FROM_C, ptrdiff_t k,
                            SG_T alpha, const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                            const SG_T *b, ptrdiff_t ldb, ptrdiff_t safe_rows,
                            SG_T beta, SG_T *c, ptrdiff_t ldc, ptrdiff_t width)
{
    SG_KN(vec) lo[SG_MR], hi[SG_MR];
    const SG_KN(vec) zero = {0};
    if (A_ROW_1)
        a_row = 1;
    if (FROM_C && width == SG_BLOCK) {
        for (int r = 0; r < MR; ++r) {
            lo[r] = SG_KN(load)(c + r * ldc);
            hi[r] = SG_KN(load)(c + r * ldc + SG_LANES);
        }
    } else if (FROM_C) {
        SG_T in[SG_MR][SG_BLOCK] = {{0}};
        for (int r = 0; r < MR; ++r)
            memcpy(in[r], c + r * ldc, (size_t) width * sizeof(SG_T));
        for (int r = 0; r < MR; ++r) {
            lo[r] = SG_KN(load)(in[r]);
            hi[r] = SG_KN(load)(in[r] + SG_LANES);
        }
    } else {
        for (int r = 0; r < MR; ++r) {
            lo[r] = zero;
            hi[r] = zero;
        }
    }
    ptrdiff_t p = 0;
    for (; p < safe_rows; ++p)
        SG_KN(rank1)(MR, TWO, a + p * a_col, a_row, SG_KN(load)(b + p * ldb),
                     TWO ? SG_KN(load)(b + p * ldb + SG_LANES) : zero, lo, hi);
    for (; PADDED && p < k; ++p) {
        SG_T padded[SG_BLOCK] = {0};
        memcpy(padded, b + p * ldb, (size_t) width * sizeof(SG_T));
        SG_KN(rank1)(MR, TWO, a + p * a_col, a_row, SG_KN(load)(padded),
                     SG_KN(load)(padded + SG_LANES), lo, hi);
    }
    /* Each case in a loop of its own over the rows, which unrolls with the
     * accumulators in registers (with the tests inside one loop GCC 12 went
     * through the stack).  alpha = 1 and beta = 0, a plain product, skip
     * their multiplications, which change no bit. */
    if (width == SG_BLOCK && alpha == 1 && beta == 0) {
        for (int r = 0; r < MR; ++r) {
            SG_KN(store)(c + r * ldc, lo[r]);
            SG_KN(store)(c + r * ldc + SG_LANES, hi[r]);
        }
    } else if (width == SG_BLOCK) {
        for (int r = 0; r < MR; ++r) {
            SG_T *c_r = c + r * ldc;
            SG_KN(vec) out_lo = alpha * lo[r], out_hi = alpha * hi[r];
            if (beta != 0) {
                out_lo += beta * SG_KN(load)(c_r);
                out_hi += beta * SG_KN(load)(c_r + SG_LANES);
            }
            SG_KN(store)(c_r, out_lo);
            SG_KN(store)(c_r + SG_LANES, out_hi);
        }
    } else {
        SG_T out[SG_MR][SG_BLOCK];
        for (int r = 0; r < MR; ++r) {
            SG_KN(store)(out[r], alpha * lo[r]);
            SG_KN(store)(out[r] + SG_LANES, alpha * hi[r]);
        }
        for (int r = 0; r < MR; ++r)
            for (ptrdiff_t j = 0; j < width; ++j)
                c[r * ldc + j] = beta != 0 ? out[r][j] + beta * c[r * ldc + j] : out[r][j];
    }
}

/* block() with its constants chosen for MR rows (A_ROW_1: a_row is 1). */
SG_INLINE void SG_KN(block_of)(const int MR, const int A_ROW_1, const int FROM_C, ptrdiff_t k,
                               SG_T alpha,
                               const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                               const SG_T *b, ptrdiff_t ldb, ptrdiff_t safe_rows,
                               SG_T beta, SG_T *c, ptrdiff_t ldc, ptrdiff_t width)
{
    const int two = width > SG_LANES;
#define FASTNN_SG_BLOCK(TWO, A_ROW_1)                                                  \
    do {                                                                               \
        if (safe_rows < k)                                                             \
            SG_KN(block)(MR, TWO, A_ROW_1, 1, FROM_C, k, alpha, a, a_row, a_col, b, ldb,  \
                         safe_rows, beta, c, ldc, width);                              \
        else                                                                           \
            SG_KN(block)(MR, TWO, A_ROW_1, 0, FROM_C, k, alpha, a, a_row, a_col, b, ldb,  \
                         k, beta, c, ldc, width);                                      \
    } while (0)
    if (two)
        FASTNN_SG_BLOCK(1, A_ROW_1);
    else
        FASTNN_SG_BLOCK(0, A_ROW_1);
#undef FASTNN_SG_BLOCK
}

/* block_of() for the first `rows` (up to MR) rows of A at a and C at c: a
 * constant row count per call lets the compiler keep the accumulators in
 * registers. */
SG_INLINE void SG_KN(rows_block)(const int A_ROW_1, const int FROM_C, ptrdiff_t rows,
                                 ptrdiff_t k, SG_T alpha, const SG_T *a, ptrdiff_t a_row,
                                 ptrdiff_t a_col, const SG_T *b, ptrdiff_t ldb,
                                 ptrdiff_t safe_rows, SG_T beta, SG_T *c, ptrdiff_t ldc,
                                 ptrdiff_t width)
{
    switch (rows < SG_MR ? rows : SG_MR) {
#define FASTNN_SG_CASE(MR)                                                          \
    case MR:                                                                        \
        SG_KN(block_of)(MR, A_ROW_1, FROM_C, k, alpha, a, a_row, a_col, b, ldb,    \
                        safe_rows, beta, c, ldc, width);                            \
        break;
    FASTNN_SG_CASE(1) FASTNN_SG_CASE(2) FASTNN_SG_CASE(3) FASTNN_SG_CASE(4)
    FASTNN_SG_CASE(5) FASTNN_SG_CASE(6)
#if SG_MR > 6
    FASTNN_SG_CASE(7) FASTNN_SG_CASE(8)
    FASTNN_SG_CASE(9) FASTNN_SG_CASE(10) FASTNN_SG_CASE(11) FASTNN_SG_CASE(12)
#endif
#undef FASTNN_SG_CASE
    }
}

/* The block of C at rows i0 and columns j0 (A_ROW_1: a_row is 1; FROM_C:
 * continuing C's sums, see block()). */
SG_INLINE void SG_KN(block_at)(const int A_ROW_1, const int FROM_C, ptrdiff_t i0, ptrdiff_t j0,
                               ptrdiff_t m,
                               ptrdiff_t n, ptrdiff_t k, SG_T alpha, const SG_T *a,
                               ptrdiff_t a_row, ptrdiff_t a_col, const SG_T *b, ptrdiff_t ldb,
                               SG_T beta, SG_T *c, ptrdiff_t ldc)
{
    const ptrdiff_t width = n - j0 < SG_BLOCK ? n - j0 : SG_BLOCK;
    /* the last column the block's vector loads read; within row n, every
     * row of B is read in place (no division in the blocks of a wide B) */
    const ptrdiff_t reach = j0 + (width > SG_LANES ? SG_BLOCK : SG_LANES) - 1;
    ptrdiff_t safe_rows = k;
    if (reach >= n) {
        const ptrdiff_t last = (k - 1) * ldb + n - 1; /* B's last element */
        safe_rows = reach <= last ? (last - reach) / ldb + 1 : 0;
        if (safe_rows > k)
            safe_rows = k;
    }
    SG_KN(rows_block)(A_ROW_1, FROM_C, m - i0, k, alpha, a + i0 * a_row, a_row, a_col, b + j0,
                      ldb, safe_rows, beta, c + i0 * ldc + j0, ldc, width);
}

/* Rows of B in a slice of the inner dimension: a slice of a block's columns
 * of B fills half of L1 (32 KiB, or more, on the CPUs these kernels target). */
#define SG_DEPTH ((ptrdiff_t) (16384 / (SG_BLOCK * sizeof(SG_T))))

/* Bytes of the slice of an operand that a group of rows keeps in L2 while
 * every block of columns passes over it: half of the 1 MiB L2 of the CPUs
 * these kernels were tuned on, most of the rest for C's part. */
#define SG_L2_SLICE_BYTES ((ptrdiff_t) 524288)
/* Bytes of C's part that slice_order() sums in L2 beside A's slice. */
#define SG_L2_PART_BYTES ((ptrdiff_t) 262144)

/* Rows of C per group in slice_order(): the fewest groups whose slices of
 * A (rows × SG_DEPTH elements) fit SG_L2_SLICE_BYTES, all of nearly the same
 * number of blocks, so that no small last group reads B for a few rows. */
SG_INLINE ptrdiff_t SG_KN(group_rows)(ptrdiff_t m)
{
    const ptrdiff_t blocks = (m + SG_MR - 1) / SG_MR;
    const ptrdiff_t most = SG_L2_SLICE_BYTES / (SG_MR * SG_DEPTH * (ptrdiff_t) sizeof(SG_T));
    const ptrdiff_t groups = (blocks + most - 1) / most;
    return (blocks + groups - 1) / groups * SG_MR;
}

/* Whether X·W goes through slice_order(): with beta = 0 (C holds the sums
 * between slices), four blocks of rows or more, and an A too large for L2,
 * which the in-place order reads again for every block of columns.  Smaller
 * products keep the order they were tuned with.  The weight gradient Xᵀ·dZ
 * (A transposed: a_row is 1) keeps its order too: in slice_order() it ran 0.82–1.47
 * times as fast as in place, varying from run to run with the host's load
 * (784×512 and 2048×512 by 512×2048 on one and two cores of an AMD EPYC,
 * family 26, model 2). */
SG_INLINE int SG_KN(use_slice_order)(ptrdiff_t m, ptrdiff_t k, ptrdiff_t a_row, SG_T beta)
{
    return a_row != 1 && beta == 0 && k > 0 && m >= 4 * SG_MR
           && m * k * (ptrdiff_t) sizeof(SG_T) > SG_L2_SLICE_BYTES;
}

/* One slice of depth rows of B at b_p (and columns of A at a_p) for the
 * rows [g0, g1) and columns [j0, j1) of C: within each block of columns
 * every block of rows, so that B's slice of the block's columns is in L1 and
 * A's slice of the group's rows in L2 while they are read. */
SG_INLINE void SG_KN(slice_pass)(const int FROM_C, ptrdiff_t g0,
                                 ptrdiff_t g1, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t n,
                                 ptrdiff_t depth, SG_T scale, const SG_T *a_p, ptrdiff_t a_row,
                                 ptrdiff_t a_col, const SG_T *b_p, ptrdiff_t ldb, SG_T *c,
                                 ptrdiff_t ldc)
{
    for (; j0 < j1; j0 += SG_BLOCK)
        for (ptrdiff_t i0 = g0; i0 < g1; i0 += SG_MR)
            SG_KN(block_at)(0, FROM_C, i0, j0, g1, n, depth, scale, a_p, a_row, a_col, b_p,
                            ldb, 0, c, ldc);
}

/* C(m×n) = alpha·A(m×k)·B(k×n) with beta = 0 and k > 0 where A is beyond L2
 * (use_slice_order()).  The in-place order reads all of X (4 MiB) again
 * from L3 for every block of columns in X·W (512×2048 by 2048×2048).  Here C
 * is taken in parts of a group of rows (group_rows()) by as many columns as
 * make 256 KiB of C, and within a part the inner dimension in slices of
 * SG_DEPTH, each slice passing over the whole part (slice_pass()): the
 * part's sums, which C holds between slices, and A's slice stay in L2
 * together.  Each element of C is the same multiply-adds over p in the same
 * order as in the other orders, so the same bits.  On one core of an AMD
 * EPYC, family 26, model 2 (a shared, noisy host), float32 GFLOP/s, medians
 * of 11–15 in three runs interleaved with the in-place order (in place →
 * here): X·W 512×2048 by 2048×2048 128–133 → 139–154, by 784×2048 148–159
 * → 165–176.  Slices over all of C, without the parts of columns, gained
 * less (by 784×2048: 164); B's slice copied into a contiguous panel first
 * was slower (by 784×2048: 123 against 155 in the same run). */
__attribute__((target(SG_TARGET), noinline))
static void SG_KN(slice_order)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                               const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                               const SG_T *b, ptrdiff_t ldb, SG_T *c, ptrdiff_t ldc)
{
    const ptrdiff_t rows = SG_KN(group_rows)(m);
    ptrdiff_t cols = SG_L2_PART_BYTES / (ptrdiff_t) sizeof(SG_T) / (rows < m ? rows : m)
                     / SG_BLOCK * SG_BLOCK;
    cols = cols < SG_BLOCK ? SG_BLOCK : cols;
    for (ptrdiff_t j0 = 0; j0 < n; j0 += cols) {
        const ptrdiff_t j1 = n - j0 < cols ? n : j0 + cols;
        for (ptrdiff_t g0 = 0; g0 < m; g0 += rows) {
            const ptrdiff_t g1 = m - g0 < rows ? m : g0 + rows;
            for (ptrdiff_t p0 = 0; p0 < k; p0 += SG_DEPTH) {
                const ptrdiff_t depth = k - p0 < SG_DEPTH ? k - p0 : SG_DEPTH;
                const SG_T scale = p0 + depth == k ? alpha : 1; /* on the finished sums only */
                const SG_T *a_p = a + p0 * a_col, *b_p = b + p0 * ldb;
                if (p0 == 0)
                    SG_KN(slice_pass)(0, g0, g1, j0, j1, n, depth, scale, a_p, a_row, a_col,
                                      b_p, ldb, c, ldc);
                else
                    SG_KN(slice_pass)(1, g0, g1, j0, j1, n, depth, scale, a_p, a_row, a_col,
                                      b_p, ldb, c, ldc);
            }
        }
    }
}

/* C(m×n) = alpha·A(m×k)·B(k×n) + beta·C on one thread.  With A transposed
 * (a weight gradient Xᵀ·dZ) the blocks of C's rows are outer: a block's MR
 * columns of X stay in L1 while it passes along dZ's rows (784×256 from 128
 * rows: 725–778 µs against 814–850 with columns outer, on one core of an AMD
 * EPYC, family 25, model 1).  Otherwise (X·W) the blocks of columns are
 * outer, and where B's block of columns is deeper than SG_DEPTH rows and
 * four blocks of rows or more pass over it, it is taken in slices of that
 * many rows, each in L1 while every block of rows passes over it, C holding
 * the sums between slices: the same multiply-adds in the same order, so the
 * same bits (128×784 by 784×256 on one core of that EPYC: 636–639 µs
 * against 711; with ten rows no faster).  beta·C is added only at the end,
 * so slicing needs beta = 0.  An A beyond L2 goes through slice_order(). */
__attribute__((target(SG_TARGET)))
static void SG_KN(small_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                              const SG_T *a, ptrdiff_t a_row, ptrdiff_t a_col,
                              const SG_T *b, ptrdiff_t ldb, SG_T beta,
                              SG_T *c, ptrdiff_t ldc)
{
    if (SG_KN(use_slice_order)(m, k, a_row, beta)) {
        SG_KN(slice_order)(m, n, k, alpha, a, a_row, a_col, b, ldb, c, ldc);
    } else if (a_row == 1) {
        for (ptrdiff_t i0 = 0; i0 < m; i0 += SG_MR)
            for (ptrdiff_t j0 = 0; j0 < n; j0 += SG_BLOCK)
                SG_KN(block_at)(1, 0, i0, j0, m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c,
                                ldc);
    } else if (k <= SG_DEPTH || m < 4 * SG_MR || beta != 0) {
        for (ptrdiff_t j0 = 0; j0 < n; j0 += SG_BLOCK)
            for (ptrdiff_t i0 = 0; i0 < m; i0 += SG_MR)
                SG_KN(block_at)(0, 0, i0, j0, m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c,
                                ldc);
    } else {
        for (ptrdiff_t j0 = 0; j0 < n; j0 += SG_BLOCK)
            for (ptrdiff_t p0 = 0; p0 < k; p0 += SG_DEPTH) {
                const ptrdiff_t depth = k - p0 < SG_DEPTH ? k - p0 : SG_DEPTH;
                /* alpha multiplies the finished sums only */
                const SG_T scale = p0 + depth == k ? alpha : 1;
                const SG_T *a_p = a + p0 * a_col, *b_p = b + p0 * ldb;
                for (ptrdiff_t i0 = 0; i0 < m; i0 += SG_MR) {
                    if (p0 == 0)
                        SG_KN(block_at)(0, 0, i0, j0, m, n, depth, scale, a_p, a_row, a_col,
                                        b_p, ldb, 0, c, ldc);
                    else
                        SG_KN(block_at)(0, 1, i0, j0, m, n, depth, scale, a_p, a_row, a_col,
                                        b_p, ldb, 0, c, ldc);
                }
            }
    }
}

/* C[i, j] = alpha·Σ_p A[i, p]·B[j, p] + beta·C[i, j] for an MR×NR block:
 * dot products of rows, so both operands are read along their rows.  The
 * last, partial vector of each row is a masked load, which reads nothing
 * past the row's end. */
SG_INLINE void SG_KN(dot_block)(const int MR, const int NR, ptrdiff_t k, SG_T alpha,
                                const SG_T *a, ptrdiff_t lda,
                                const SG_T *b, ptrdiff_t ldb,
                                SG_T beta, SG_T *c, ptrdiff_t ldc)
{
    SG_KN(vec) acc[SG_DOT_A][SG_DOT_B], a_v[SG_DOT_A], b_v[SG_DOT_B];
    for (int r = 0; r < MR; ++r)
        for (int s = 0; s < NR; ++s)
            acc[r][s] = (SG_KN(vec)) {0};
    ptrdiff_t p = 0;
    for (; p + SG_LANES <= k; p += SG_LANES) {
        for (int r = 0; r < MR; ++r)
            a_v[r] = SG_KN(load)(a + r * lda + p);
        for (int s = 0; s < NR; ++s)
            b_v[s] = SG_KN(load)(b + s * ldb + p);
        for (int r = 0; r < MR; ++r)
            for (int s = 0; s < NR; ++s)
                acc[r][s] += a_v[r] * b_v[s];
    }
    if (p < k) {
        for (int r = 0; r < MR; ++r)
            a_v[r] = (SG_KN(vec)) SG_KN(sg_head)(a + r * lda + p, k - p);
        for (int s = 0; s < NR; ++s)
            b_v[s] = (SG_KN(vec)) SG_KN(sg_head)(b + s * ldb + p, k - p);
        for (int r = 0; r < MR; ++r)
            for (int s = 0; s < NR; ++s)
                acc[r][s] += a_v[r] * b_v[s];
    }
    for (int r = 0; r < MR; ++r)
        for (int s = 0; s < NR; ++s) {
            SG_T value = alpha * SG_KN(sg_sum)(acc[r][s]);
            SG_T *c_rs = c + r * ldc + s;
            *c_rs = beta != 0 ? value + beta * *c_rs : value;
        }
}

/* The MR rows of A at a against every row of B. */
SG_INLINE void SG_KN(dot_rows)(const int MR, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                               const SG_T *a, ptrdiff_t lda,
                               const SG_T *b, ptrdiff_t ldb,
                               SG_T beta, SG_T *c, ptrdiff_t ldc)
{
    ptrdiff_t j0 = 0;
    for (; j0 + SG_DOT_B <= n; j0 += SG_DOT_B)
        SG_KN(dot_block)(MR, SG_DOT_B, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc);
    switch (n - j0) {
    case 1: SG_KN(dot_block)(MR, 1, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc); break;
    case 2: SG_KN(dot_block)(MR, 2, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc); break;
    case 3: SG_KN(dot_block)(MR, 3, k, alpha, a, lda, b + j0 * ldb, ldb, beta, c + j0, ldc); break;
    default: break;
    }
}

/* C(m×n) = alpha·A(m×k)·Bᵀ + beta·C on one thread, A (m×k) and B (n×k) row-major. */
__attribute__((target(SG_TARGET)))
static void SG_KN(small_gemm_nt)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                                 const SG_T *a, ptrdiff_t lda,
                                 const SG_T *b, ptrdiff_t ldb, SG_T beta,
                                 SG_T *c, ptrdiff_t ldc)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += SG_DOT_A) {
        const SG_T *a_i = a + i0 * lda;
        SG_T *c_i = c + i0 * ldc;
        switch (m - i0 < SG_DOT_A ? m - i0 : SG_DOT_A) {
        case 1: SG_KN(dot_rows)(1, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
#if SG_DOT_A > 2
        case 2: SG_KN(dot_rows)(2, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
        case 3: SG_KN(dot_rows)(3, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
#endif
        default: SG_KN(dot_rows)(SG_DOT_A, n, k, alpha, a_i, lda, b, ldb, beta, c_i, ldc); break;
        }
    }
}

/* C(m×n) = alpha·A(m×k)·Bᵀ with A (m×k) and B (n×k) row-major and beta = 0,
 * on one thread, as the plain product: SG_BLOCK rows of B at a time, SG_DEPTH
 * of their columns at a time copied transposed into a panel (16 KiB, in L1)
 * that every block of MR rows of A then multiplies as block() multiplies
 * B's rows, C holding the sums between slices.  Each element is the sum
 * over p in order, as in small_gemm(), whatever the vector width.  Worth
 * the copy where many blocks of rows share each panel: on one core of an
 * AMD EPYC, family 25, model 1 (AVX2), medians of 21, C of 128×784 from A
 * 128×256 and B 784×256 took 867 µs against 1105 as dot products; C of
 * 48×256 from B 256×128 61 against 62, of 32×256 57 either way, of 12×256
 * 27 against 18. */
/* C (+)= alpha·A·panel for every block of MR rows of A (m×depth, row-major)
 * and C, the panel depth×SG_BLOCK.  Apart from the copy into the panel:
 * inlined beside it, GCC 12 kept one accumulator on the stack. */
__attribute__((target(SG_TARGET), noinline))
static void SG_KN(panel_product)(int from_c, ptrdiff_t m, ptrdiff_t depth, SG_T alpha,
                                 const SG_T *a, ptrdiff_t lda, const SG_T *panel, SG_T *c,
                                 ptrdiff_t ldc, ptrdiff_t width)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += SG_MR) {
        if (from_c)
            SG_KN(rows_block)(0, 1, m - i0, depth, alpha, a + i0 * lda, lda, 1, panel,
                              SG_BLOCK, depth, 0, c + i0 * ldc, ldc, width);
        else
            SG_KN(rows_block)(0, 0, m - i0, depth, alpha, a + i0 * lda, lda, 1, panel,
                              SG_BLOCK, depth, 0, c + i0 * ldc, ldc, width);
    }
}

__attribute__((target(SG_TARGET)))
static void SG_KN(packed_nt)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, SG_T alpha,
                             const SG_T *a, ptrdiff_t lda, const SG_T *b, ptrdiff_t ldb,
                             SG_T beta, SG_T *c, ptrdiff_t ldc)
{
    (void) beta; /* 0: small_gemm_nt calls this only then */
    SG_T panel[SG_DEPTH * SG_BLOCK] __attribute__((aligned(64)));
    for (ptrdiff_t j0 = 0; j0 < n; j0 += SG_BLOCK) {
        const ptrdiff_t width = n - j0 < SG_BLOCK ? n - j0 : SG_BLOCK;
        for (ptrdiff_t p0 = 0; p0 < k; p0 += SG_DEPTH) {
            const ptrdiff_t depth = k - p0 < SG_DEPTH ? k - p0 : SG_DEPTH;
            const SG_T scale = p0 + depth == k ? alpha : 1; /* on the finished sums only */
            ptrdiff_t j = 0;
            for (; j < width; ++j) {
                const SG_T *b_j = b + (j0 + j) * ldb + p0;
                for (ptrdiff_t q = 0; q < depth; ++q)
                    panel[q * SG_BLOCK + j] = b_j[q];
            }
            for (; j < SG_BLOCK; ++j)
                for (ptrdiff_t q = 0; q < depth; ++q)
                    panel[q * SG_BLOCK + j] = 0;
            SG_KN(panel_product)(p0 > 0, m, depth, scale, a + p0, lda, panel, c + j0, ldc,
                                 width);
        }
    }
}

#undef SG_LANES
#undef SG_BLOCK
#undef SG_DEPTH
#undef SG_L2_SLICE_BYTES
#undef SG_L2_PART_BYTES
#undef SG_KN
#undef SG_INLINE
#undef SG_ISA
#undef SG_TARGET
#undef SG_VECTOR_BYTES
#undef SG_MR
#undef SG_DOT_A
#undef SG_DOT_B

#endif /* FASTNN_SG_TEMPLATE */
