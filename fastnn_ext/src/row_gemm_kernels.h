/*
 * Row-consistent matrix products for inference: y(m×n) = x(m×k)·w(k×n),
 * row-major, row strides k, n and n.
 *
 * Every element of y is one chain of fused multiply-adds over p = 0 … k−1,
 *
 *     y[i][j] = fma(x[i][k−1], w[k−1][j], … fma(x[i][0], w[0][j], 0) …),
 *
 * whatever m and whichever tile computes it, so a row's result does not
 * depend on the rows computed with it: a sample predicted alone gets the
 * bits it gets inside any batch.  BLAS gives no such promise (gemv, to which
 * one-row products were once sent, gave a row 2e-7 away from the same row
 * of a batched gemm in float32), and OpenBLAS's one-row gemm repacks all of
 * w on every call: 199 µs for one row of 784×256 on an AMD EPYC, family 25
 * model 1, where the arithmetic is 200k multiply-adds.
 *
 * The operands are read in place.  A tile of MR rows and NV vectors of
 * columns holds its MR·NV accumulators in registers; a broadcast element of
 * x multiplies a row of w's vectors.  Tall tiles (6 rows × 2 vectors) read
 * w least; a single row uses 8 vectors, so that 8 independent chains hide
 * the latency of the fused multiply-add.  Columns run in panels of 8
 * vectors: one panel of w stays in L2 while every row tile passes over it.
 * One row is bound by reading w: 784×256 float32 (800 KiB, more than Zen 3's
 * 512 KiB L2) took 12.5 µs from L3 (64 GB/s) on an AMD EPYC, family 25
 * model 1, streamed row by row or tile by tile alike.
 *
 * The AVX2+FMA body runs where the CPU has both; elsewhere, or with the
 * environment variable FASTNN_NO_ROW_GEMM_AVX2 set at the first product,
 * a portable loop calls fma() for the same chain: fma rounds once, as the
 * instruction does, so both give the same bits.
 */
#ifndef FASTNN_ROW_GEMM_KERNELS_H
#define FASTNN_ROW_GEMM_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FASTNN_RG_AVX2 1
#define FASTNN_RG_TARGET static inline __attribute__((always_inline, target("avx2,fma")))
#endif

static int fastnn_row_gemm_vectorized(void)
{
#if defined(FASTNN_RG_AVX2)
    static int available = -1;
    if (available < 0) {
        __builtin_cpu_init();
        available = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                    && getenv("FASTNN_NO_ROW_GEMM_AVX2") == NULL;
    }
    return available;
#else
    return 0;
#endif
}

#define FASTNN_RG_PORTABLE(T, FMA, NAME)                                            \
    static void NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* x,             \
                     const T* w, T* y)                                              \
    {                                                                               \
        for (ptrdiff_t i = 0; i < m; ++i) {                                         \
            T* yr = y + i * n;                                                      \
            for (ptrdiff_t j = 0; j < n; ++j)                                       \
                yr[j] = 0;                                                          \
            for (ptrdiff_t p = 0; p < k; ++p) {                                     \
                const T xv = x[i * k + p];                                          \
                const T* wr = w + p * n;                                            \
                for (ptrdiff_t j = 0; j < n; ++j)                                   \
                    yr[j] = FMA(xv, wr[j], yr[j]);                                  \
            }                                                                       \
        }                                                                           \
    }

FASTNN_RG_PORTABLE(float, fmaf, fastnn_row_gemm_portable_f32)
FASTNN_RG_PORTABLE(double, fma, fastnn_row_gemm_portable_f64)

#if defined(FASTNN_RG_AVX2)

/*
 * One tile: rows [0, MR) of x and y, NV vectors of columns from column 0 of
 * w and y.  `tail` > 0 makes the last vector a masked one of `tail` lanes
 * (loads of masked-out lanes do not touch memory).  MR, NV and whether
 * `tail` is 0 are constants at every call, so the loops unroll and the
 * accumulators live in registers.
 */
#define FASTNN_RG_TILE(T, V, LANES, SFX, ITYPE, NAME)                               \
    FASTNN_RG_TARGET void NAME(int MR, int NV, int tail, int first, ptrdiff_t n,     \
                               ptrdiff_t k, ptrdiff_t ldx, const T* x, const T* w,  \
                               T* y)                                                \
    {                                                                               \
        V acc[6][8];                                                                \
        ITYPE mask = _mm256_setzero_si256();                                        \
        if (tail) {                                                                 \
            const ITYPE lane = SFX##_lanes();                                       \
            mask = SFX##_cmpgt(SFX##_set1(tail), lane);                             \
        }                                                                           \
        for (int r = 0; r < MR; ++r)                                                \
            for (int v = 0; v < NV; ++v) {                                          \
                const T* in = y + r * n + v * LANES;                                \
                acc[r][v] = first ? SFX##_zero()                                    \
                            : (tail && v == NV - 1) ? SFX##_maskload(in, mask)      \
                                                    : SFX##_loadu(in);              \
            }                                                                       \
        for (ptrdiff_t p = 0; p < k; ++p) {                                         \
            const T* wr = w + p * n;                                                \
            V wv[8];                                                                \
            for (int v = 0; v < NV; ++v)                                            \
                wv[v] = (tail && v == NV - 1) ? SFX##_maskload(wr + v * LANES, mask) \
                                              : SFX##_loadu(wr + v * LANES);        \
            for (int r = 0; r < MR; ++r) {                                          \
                const V xv = SFX##_broadcast(x + r * ldx + p);                      \
                for (int v = 0; v < NV; ++v)                                        \
                    acc[r][v] = SFX##_fmadd(xv, wv[v], acc[r][v]);                  \
            }                                                                       \
        }                                                                           \
        for (int r = 0; r < MR; ++r)                                                \
            for (int v = 0; v < NV; ++v) {                                          \
                T* out = y + r * n + v * LANES;                                     \
                if (tail && v == NV - 1)                                            \
                    SFX##_maskstore(out, mask, acc[r][v]);                          \
                else                                                                \
                    SFX##_storeu(out, acc[r][v]);                                   \
            }                                                                       \
    }

#define rg32_lanes() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define rg32_cmpgt(a, b) _mm256_cmpgt_epi32(a, b)
#define rg32_set1(t) _mm256_set1_epi32(t)
#define rg32_zero() _mm256_setzero_ps()
#define rg32_maskload(p, mask) _mm256_maskload_ps(p, mask)
#define rg32_maskstore(p, mask, v) _mm256_maskstore_ps(p, mask, v)
#define rg32_loadu(p) _mm256_loadu_ps(p)
#define rg32_storeu(p, v) _mm256_storeu_ps(p, v)
#define rg32_broadcast(p) _mm256_broadcast_ss(p)
#define rg32_fmadd(a, b, c) _mm256_fmadd_ps(a, b, c)

#define rg64_lanes() _mm256_setr_epi64x(0, 1, 2, 3)
#define rg64_cmpgt(a, b) _mm256_cmpgt_epi64(a, b)
#define rg64_set1(t) _mm256_set1_epi64x(t)
#define rg64_zero() _mm256_setzero_pd()
#define rg64_maskload(p, mask) _mm256_maskload_pd(p, mask)
#define rg64_maskstore(p, mask, v) _mm256_maskstore_pd(p, mask, v)
#define rg64_loadu(p) _mm256_loadu_pd(p)
#define rg64_storeu(p, v) _mm256_storeu_pd(p, v)
#define rg64_broadcast(p) _mm256_broadcast_sd(p)
#define rg64_fmadd(a, b, c) _mm256_fmadd_pd(a, b, c)

FASTNN_RG_TILE(float, __m256, 8, rg32, __m256i, fastnn_rg_tile_f32)
FASTNN_RG_TILE(double, __m256d, 4, rg64, __m256i, fastnn_rg_tile_f64)

/*
 * Rows [0, MR) over all n columns: panels of NV vectors, then the remaining
 * columns one vector at a time, the last one masked.
 */
#define FASTNN_RG_ROWS(T, LANES, TILE, NAME)                                        \
    FASTNN_RG_TARGET void NAME(int MR, int NV, int first, ptrdiff_t n, ptrdiff_t k,  \
                               ptrdiff_t ldx, const T* x, const T* w, T* y,         \
                               ptrdiff_t j0, ptrdiff_t j1)                          \
    {                                                                               \
        ptrdiff_t j = j0;                                                           \
        for (; j + NV * LANES <= j1; j += NV * LANES)                               \
            TILE(MR, NV, 0, first, n, k, ldx, x, w + j, y + j);                     \
        for (; j + LANES <= j1; j += LANES)                                         \
            TILE(MR, 1, 0, first, n, k, ldx, x, w + j, y + j);                      \
        if (j < j1)                                                                 \
            TILE(MR, 1, (int) (j1 - j), first, n, k, ldx, x, w + j, y + j);         \
    }

FASTNN_RG_ROWS(float, 8, fastnn_rg_tile_f32, fastnn_rg_rows_f32)
FASTNN_RG_ROWS(double, 4, fastnn_rg_tile_f64, fastnn_rg_rows_f64)

/* Tiles per row count: MR rows × NV vectors, at most 12 accumulators and
 * 8 chains at least where the row count allows. */
#define FASTNN_RG_CASES(ROWS, ...)                                                  \
    switch (rows) {                                                                 \
    case 6: ROWS(6, 2, __VA_ARGS__); break;                                         \
    case 5: ROWS(5, 2, __VA_ARGS__); break;                                         \
    case 4: ROWS(4, 2, __VA_ARGS__); break;                                         \
    case 3: ROWS(3, 3, __VA_ARGS__); break;                                         \
    case 2: ROWS(2, 4, __VA_ARGS__); break;                                         \
    default: ROWS(1, 8, __VA_ARGS__); break;                                        \
    }

/* Steps of FASTNN_RG_DEPTH terms of the sums outside (a tile's rows of x
 * then stay in L1: 6 × 256 float64 are 12 KiB), panels of 8 vectors of
 * columns inside them (a step's panel of w, 64 KiB, is read from L2 by every
 * row tile), row tiles innermost.  A step continues the chains where the
 * last one stored them in y: the order of every sum is unchanged. */
#define FASTNN_RG_DEPTH 256
#define FASTNN_RG_GEMM(T, LANES, ROWS, NAME)                                        \
    __attribute__((target("avx2,fma"))) static void NAME(                           \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* x, const T* w, T* y)         \
    {                                                                               \
        const ptrdiff_t panel = 8 * LANES;                                          \
        for (ptrdiff_t p0 = 0; p0 < k || p0 == 0; p0 += FASTNN_RG_DEPTH) {          \
            const ptrdiff_t depth = k - p0 < FASTNN_RG_DEPTH ? k - p0 : FASTNN_RG_DEPTH; \
            const int first = p0 == 0;                                              \
            for (ptrdiff_t j0 = 0; j0 < n; j0 += panel) {                           \
                const ptrdiff_t j1 = j0 + panel < n ? j0 + panel : n;               \
                for (ptrdiff_t i = 0; i < m; i += 6) {                              \
                    const int rows = (int) (m - i < 6 ? m - i : 6);                 \
                    FASTNN_RG_CASES(ROWS, first, n, depth, k, x + i * k + p0,       \
                                    w + p0 * n, y + i * n, j0, j1)                  \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }

FASTNN_RG_GEMM(float, 8, fastnn_rg_rows_f32, fastnn_row_gemm_avx2_f32)
FASTNN_RG_GEMM(double, 4, fastnn_rg_rows_f64, fastnn_row_gemm_avx2_f64)

#endif /* FASTNN_RG_AVX2 */

#if defined(FASTNN_RG_AVX2)
#define FASTNN_RG_DISPATCH(T, SUFFIX)                                               \
    if (fastnn_row_gemm_vectorized()) {                                             \
        fastnn_row_gemm_avx2_##SUFFIX(m, n, k, x, w, y);                            \
        return;                                                                     \
    }
#else
#define FASTNN_RG_DISPATCH(T, SUFFIX)
#endif

#define FASTNN_RG_API(T, SUFFIX)                                                    \
    static inline void fastnn_row_gemm_##SUFFIX(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, \
                                                const T* x, const T* w, T* y)       \
    {                                                                               \
        FASTNN_RG_DISPATCH(T, SUFFIX)                                               \
        fastnn_row_gemm_portable_##SUFFIX(m, n, k, x, w, y);                        \
    }

FASTNN_RG_API(float, f32)
FASTNN_RG_API(double, f64)

#endif /* FASTNN_ROW_GEMM_KERNELS_H */
