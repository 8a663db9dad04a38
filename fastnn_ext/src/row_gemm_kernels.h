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
 * x multiplies a row of w's vectors.  Tall tiles (12 rows × 2 vectors with
 * AVX-512, 6 × 2 with AVX2) read w least; a single row uses 8 vectors (16
 * with AVX-512), so that 8 independent chains at least hide the latency of
 * the fused multiply-add.
 * Columns run in panels of 8 vectors: one panel of w stays in L2 while every
 * row tile passes over it.
 *
 * Three bodies compute the same chains: AVX-512 (F, VL, BW and DQ: 16 float
 * or 8 double lanes, 32 registers) where the CPU has it, else AVX2+FMA (8 or
 * 4 lanes, 16 registers), else a portable loop calling fma(), which rounds
 * once, as the instruction does: all three give the same bits.  Set at the
 * first product, FASTNN_NO_ROW_GEMM_AVX512 in the environment leaves the
 * AVX2 body (or the portable loop) and FASTNN_NO_ROW_GEMM_AVX2 the portable
 * loop alone.
 *
 * On one core of an AMD EPYC, family 26, model 2 (Zen 5; 48 KiB L1d and
 * 1 MiB L2 a core), float32, medians of 301 calls in a C loop: 96 rows of
 * 784×256 took 165 µs with AVX-512 (233 GFLOP/s) and 321 µs with AVX2 (120);
 * 10 rows 16.6 µs against 34.5.  One row is bound by reading w, 800 KiB
 * from L2: 6.6 µs against 7.0.
 */
#ifndef FASTNN_ROW_GEMM_KERNELS_H
#define FASTNN_ROW_GEMM_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FASTNN_RG_VECTOR 1
/* Each body's instruction set, by vector width in bits. */
#define FASTNN_RG_ISA_256 "avx2,fma"
#define FASTNN_RG_ISA_512 "avx512f,avx512vl,avx512bw,avx512dq,fma"
#endif

/* The vector width of the body the products run: 512 (AVX-512 F, VL, BW,
 * DQ), 256 (AVX2 and FMA) or 0 (the portable loop).  Decided at the first
 * product, from the CPU and the environment. */
static int fastnn_row_gemm_vector_bits(void)
{
#if defined(FASTNN_RG_VECTOR)
    static int bits = -1;
    if (bits < 0) {
        int chosen = 0;
        __builtin_cpu_init();
        if (getenv("FASTNN_NO_ROW_GEMM_AVX2") == NULL) {
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
                && getenv("FASTNN_NO_ROW_GEMM_AVX512") == NULL)
                chosen = 512;
            else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                chosen = 256;
        }
        bits = chosen;
    }
    return bits;
#else
    return 0;
#endif
}

static inline int fastnn_row_gemm_vectorized(void)
{
    return fastnn_row_gemm_vector_bits() != 0;
}

#define FASTNN_RG_PORTABLE(T, FMA, NAME)                                            \
    static void NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* x,             \
                     const T* w, T* y, ptrdiff_t c0, ptrdiff_t c1)                  \
    {                                                                               \
        for (ptrdiff_t i = 0; i < m; ++i) {                                         \
            T* yr = y + i * n;                                                      \
            for (ptrdiff_t j = c0; j < c1; ++j)                                     \
                yr[j] = 0;                                                          \
            for (ptrdiff_t p = 0; p < k; ++p) {                                     \
                const T xv = x[i * k + p];                                          \
                const T* wr = w + p * n;                                            \
                for (ptrdiff_t j = c0; j < c1; ++j)                                 \
                    yr[j] = FMA(xv, wr[j], yr[j]);                                  \
            }                                                                       \
        }                                                                           \
    }

FASTNN_RG_PORTABLE(float, fmaf, fastnn_row_gemm_portable_f32)
FASTNN_RG_PORTABLE(double, fma, fastnn_row_gemm_portable_f64)

#if defined(FASTNN_RG_VECTOR)

/*
 * The bodies are written once, for a vector width W (256 or 512) and an
 * intrinsic suffix S (ps or pd): _mm##W##_loadu_##S and the like are the
 * same operation at either width.  What differs is the masked last vector:
 * AVX2 masks lanes by the sign of 32- or 64-bit integers (a window into
 * eight −1s followed by zeros), AVX-512 by a mask register of one bit per
 * lane.  Either way a masked-out lane is neither read nor written, so no
 * access leaves the operands.
 */
#define FASTNN_RG_MM(W, OP, S) _mm##W##_##OP##_##S
#define FASTNN_RG_FUNCTION(W)                                                       \
    static inline __attribute__((always_inline, target(FASTNN_RG_ISA_##W)))

static const int32_t fastnn_rg_window[16] = {-1, -1, -1, -1, -1, -1, -1, -1};
#define fastnn_rg_mask_256(T, MASK, tail)                                           \
    _mm256_loadu_si256(                                                             \
        (const __m256i*) (fastnn_rg_window + 8 - (tail) * (int) (sizeof(T) / 4)))
#define fastnn_rg_maskload_256(S, p, mask) _mm256_maskload_##S(p, mask)
#define fastnn_rg_maskstore_256(S, p, mask, v) _mm256_maskstore_##S(p, mask, v)
#define fastnn_rg_mask_512(T, MASK, tail) ((MASK) ((1u << (tail)) - 1u))
#define fastnn_rg_maskload_512(S, p, mask) _mm512_maskz_loadu_##S(mask, p)
#define fastnn_rg_maskstore_512(S, p, mask, v) _mm512_mask_storeu_##S(p, mask, v)

/*
 * One tile: rows [0, MR) of x and y, NV vectors of columns from column 0 of
 * w and y.  `tail` > 0 makes the last vector a masked one of `tail` lanes.
 * MR, NV and whether `tail` is 0 are constants at every call, so the loops
 * unroll and the accumulators live in registers.
 */
#define FASTNN_RG_TILE(W, T, V, S, MASK, MR_MAX, NAME)                              \
    FASTNN_RG_FUNCTION(W) void NAME(int MR, int NV, int tail, int first, ptrdiff_t n, \
                                    ptrdiff_t k, ptrdiff_t ldx, const T* x,         \
                                    const T* w, T* y)                               \
    {                                                                               \
        const int lanes = W / 8 / (int) sizeof(T);                                  \
        const MASK mask = fastnn_rg_mask_##W(T, MASK, tail);                        \
        V acc[MR_MAX][FASTNN_RG_NV_MAX];                                            \
        for (int r = 0; r < MR; ++r)                                                \
            for (int v = 0; v < NV; ++v) {                                          \
                const T* in = y + r * n + v * lanes;                                \
                acc[r][v] = first ? FASTNN_RG_MM(W, setzero, S)()                   \
                            : (tail && v == NV - 1) ? fastnn_rg_maskload_##W(S, in, mask) \
                                                    : FASTNN_RG_MM(W, loadu, S)(in); \
            }                                                                       \
        for (ptrdiff_t p = 0; p < k; ++p) {                                         \
            const T* wr = w + p * n;                                                \
            V wv[FASTNN_RG_NV_MAX];                                                 \
            for (int v = 0; v < NV; ++v)                                            \
                wv[v] = (tail && v == NV - 1)                                       \
                            ? fastnn_rg_maskload_##W(S, wr + v * lanes, mask)       \
                            : FASTNN_RG_MM(W, loadu, S)(wr + v * lanes);            \
            for (int r = 0; r < MR; ++r) {                                          \
                const V xv = FASTNN_RG_MM(W, set1, S)(x[r * ldx + p]);              \
                for (int v = 0; v < NV; ++v)                                        \
                    acc[r][v] = FASTNN_RG_MM(W, fmadd, S)(xv, wv[v], acc[r][v]);    \
            }                                                                       \
        }                                                                           \
        for (int r = 0; r < MR; ++r)                                                \
            for (int v = 0; v < NV; ++v) {                                          \
                T* out = y + r * n + v * lanes;                                     \
                if (tail && v == NV - 1)                                            \
                    fastnn_rg_maskstore_##W(S, out, mask, acc[r][v]);               \
                else                                                                \
                    FASTNN_RG_MM(W, storeu, S)(out, acc[r][v]);                     \
            }                                                                       \
    }

/*
 * Rows [0, MR) over columns [j0, j1): tiles of NV vectors (then of 8, where
 * NV is wider), then the remaining columns one vector at a time, the last
 * one masked.
 */
#define FASTNN_RG_ROWS(W, T, TILE, NAME)                                            \
    FASTNN_RG_FUNCTION(W) void NAME(int MR, int NV, int first, ptrdiff_t n, ptrdiff_t k, \
                                    ptrdiff_t ldx, const T* x, const T* w, T* y,    \
                                    ptrdiff_t j0, ptrdiff_t j1)                     \
    {                                                                               \
        const ptrdiff_t lanes = W / 8 / (ptrdiff_t) sizeof(T);                      \
        ptrdiff_t j = j0;                                                           \
        for (; j + NV * lanes <= j1; j += NV * lanes)                               \
            TILE(MR, NV, 0, first, n, k, ldx, x, w + j, y + j);                     \
        if (NV > 8)                                                                 \
            for (; j + 8 * lanes <= j1; j += 8 * lanes)                             \
                TILE(MR, 8, 0, first, n, k, ldx, x, w + j, y + j);                  \
        for (; j + lanes <= j1; j += lanes)                                         \
            TILE(MR, 1, 0, first, n, k, ldx, x, w + j, y + j);                      \
        if (j < j1)                                                                 \
            TILE(MR, 1, (int) (j1 - j), first, n, k, ldx, x, w + j, y + j);         \
    }

/* The tile of each row count, MR rows × NV vectors (an X-macro list, the
 * tallest first): 8 chains at least where the row count allows.  AVX2 holds
 * at most 12 accumulators in its 16 registers; AVX-512 at most 24 of its 32
 * (with 8 vectors of w for 3 rows), and 12 rows make 12 chains even where
 * the columns are one masked vector (a 10-class output layer).  One row
 * with AVX-512 takes 16 vectors, so that a product with rows of w of up to
 * 256 float32 reads w as one stream: on an AMD EPYC, family 26, model 2,
 * one row of 392×256 float32 from L2 took 2.3 µs instead of 4.3 with
 * 8-vector panels, which read half of each row of w at a time. */
#define FASTNN_RG_SHAPES_256(X, ROWS)                                               \
    X(6, 2, ROWS) X(5, 2, ROWS) X(4, 2, ROWS) X(3, 3, ROWS) X(2, 4, ROWS)            \
    X(1, FASTNN_RG_ROW_NV_256, ROWS)
#define FASTNN_RG_SHAPES_512(X, ROWS)                                               \
    X(12, 2, ROWS) X(11, 2, ROWS) X(10, 2, ROWS) X(9, 2, ROWS) X(8, 2, ROWS)          \
    X(7, 2, ROWS) X(6, 4, ROWS) X(5, 4, ROWS) X(4, 4, ROWS) X(3, 8, ROWS)             \
    X(2, 8, ROWS) X(1, FASTNN_RG_ROW_NV_512, ROWS)
#define FASTNN_RG_MR_MAX_256 6
#define FASTNN_RG_MR_MAX_512 12
#define FASTNN_RG_ROW_NV_256 8
#define FASTNN_RG_ROW_NV_512 16
#define FASTNN_RG_NV_MAX 16
#define FASTNN_RG_CASE(MR, NV, ROWS)                                                \
    case MR: ROWS(MR, NV, first, n, depth, k, xi, wp, yi, j0, j1); break;

/* Steps of FASTNN_RG_DEPTH terms of the sums outside (a tile's rows of x
 * then stay in L1: 12 × 256 float64 are 24 KiB), panels of 8 vectors of
 * columns inside them (a step's panel of w, 64 KiB at 256 bits, 128 KiB at
 * 512, is read from L2 by every row tile; one row, read once, takes panels
 * as wide as its tile), row tiles innermost.  A step
 * continues the chains where the last one stored them in y: the order of
 * every sum is unchanged. */
#define FASTNN_RG_DEPTH 256
#define FASTNN_RG_GEMM(W, T, ROWS, NAME)                                            \
    __attribute__((target(FASTNN_RG_ISA_##W))) static void NAME(                    \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* x, const T* w, T* y,         \
        ptrdiff_t c0, ptrdiff_t c1)                                                 \
    {                                                                               \
        const ptrdiff_t lanes = W / 8 / (ptrdiff_t) sizeof(T);                      \
        const ptrdiff_t panel = (m == 1 ? FASTNN_RG_ROW_NV_##W : 8) * lanes;        \
        const ptrdiff_t tall = FASTNN_RG_MR_MAX_##W;                                \
        for (ptrdiff_t p0 = 0; p0 < k || p0 == 0; p0 += FASTNN_RG_DEPTH) {          \
            const ptrdiff_t depth = k - p0 < FASTNN_RG_DEPTH ? k - p0 : FASTNN_RG_DEPTH; \
            const int first = p0 == 0;                                              \
            const T* wp = w + p0 * n;                                               \
            for (ptrdiff_t j0 = c0; j0 < c1; j0 += panel) {                         \
                const ptrdiff_t j1 = j0 + panel < c1 ? j0 + panel : c1;             \
                for (ptrdiff_t i = 0; i < m; i += tall) {                           \
                    const T* xi = x + i * k + p0;                                   \
                    T* yi = y + i * n;                                              \
                    switch (m - i < tall ? m - i : tall) {                          \
                        FASTNN_RG_SHAPES_##W(FASTNN_RG_CASE, ROWS)                  \
                    }                                                               \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }

/* A body: its tile, its rows and its product, NAME_tile, NAME_rows, NAME. */
#define FASTNN_RG_BODY(W, T, V, S, MASK, NAME)                                      \
    FASTNN_RG_TILE(W, T, V, S, MASK, FASTNN_RG_MR_MAX_##W, NAME##_tile)             \
    FASTNN_RG_ROWS(W, T, NAME##_tile, NAME##_rows)                                  \
    FASTNN_RG_GEMM(W, T, NAME##_rows, NAME)

FASTNN_RG_BODY(512, float, __m512, ps, __mmask16, fastnn_row_gemm_avx512_f32)
FASTNN_RG_BODY(512, double, __m512d, pd, __mmask8, fastnn_row_gemm_avx512_f64)
FASTNN_RG_BODY(256, float, __m256, ps, __m256i, fastnn_row_gemm_avx2_f32)
FASTNN_RG_BODY(256, double, __m256d, pd, __m256i, fastnn_row_gemm_avx2_f64)

#define FASTNN_RG_DISPATCH(SUFFIX)                                                  \
    switch (fastnn_row_gemm_vector_bits()) {                                        \
    case 512: fastnn_row_gemm_avx512_##SUFFIX(m, n, k, x, w, y, c0, c1); return;    \
    case 256: fastnn_row_gemm_avx2_##SUFFIX(m, n, k, x, w, y, c0, c1); return;      \
    }
#else
#define FASTNN_RG_DISPATCH(SUFFIX)
#endif /* FASTNN_RG_VECTOR */

/* Columns [c0, c1) of y = x·w (n columns); the other columns of y are not
 * touched.  Each element gets the bits of the whole product: a product may
 * be split by columns among threads. */
#define FASTNN_RG_API(T, SUFFIX)                                                    \
    static inline void fastnn_row_gemm_##SUFFIX(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, \
                                                const T* x, const T* w, T* y,       \
                                                ptrdiff_t c0, ptrdiff_t c1)         \
    {                                                                               \
        FASTNN_RG_DISPATCH(SUFFIX)                                                  \
        fastnn_row_gemm_portable_##SUFFIX(m, n, k, x, w, y, c0, c1);                \
    }

FASTNN_RG_API(float, f32)
FASTNN_RG_API(double, f64)

/* The columns of the tile that computes m rows (elements of `item` bytes):
 * a column range that starts at a multiple of it keeps every tile of the
 * range as wide as in the whole product (FASTNN_RG_SHAPES_*). */
static inline ptrdiff_t fastnn_row_gemm_grain(ptrdiff_t m, size_t item)
{
    const int bits = fastnn_row_gemm_vector_bits();
    if (bits == 0)
        return 1;
    const ptrdiff_t lanes = bits / 8 / (ptrdiff_t) item;
    /* one row with AVX-512: 8 vectors, the narrower of its tiles */
    if (bits == 512)
        return lanes * (m >= 7 ? 2 : m >= 4 ? 4 : 8);
    return lanes * (m >= 4 ? 2 : m == 3 ? 3 : m == 2 ? 4 : 8);
}

#endif /* FASTNN_ROW_GEMM_KERNELS_H */
