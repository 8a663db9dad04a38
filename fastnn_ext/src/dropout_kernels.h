/*
 * C helpers for the dropout kernels in dropout.pxd.
 *
 * A dropout mask needs one Bernoulli(keep) draw per unit.  Comparing a full
 * 32-bit uniform per unit costs half a 64-bit draw per unit, and the draws
 * (an indirect call into numpy's bit generator each) then dominate the run
 * time.  Instead each unit gets one random byte: a byte below the threshold's
 * top byte keeps the unit, a byte above it drops the unit, and only a byte
 * equal to it (probability 1/256) needs a further 64-bit draw to settle.  The
 * comparison is a lexicographic comparison of a uniform bit string with the
 * 64-bit threshold floor(keep * 2**64), so P(keep) equals that threshold over
 * 2**64 exactly, while eight units share one draw.
 */
#ifndef FASTNN_DROPOUT_KERNELS_H
#define FASTNN_DROPOUT_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "numpy/random/bitgen.h"
#include "fastnn_simd.h"

/* Units per block.  The block's random bytes live on the stack, so a block
 * must stay small; 1024 keeps the per-block overhead negligible. */
#define FASTNN_DROPOUT_BLOCK 1024

/*
 * Fill bits[0:n] with random bytes, eight per 64-bit draw.  The bytes of a
 * draw are taken least significant first on every platform, so one seed
 * gives one mask regardless of byte order.
 */
static inline void fastnn_dropout_draw_bytes(bitgen_t *rng, uint8_t *bits,
                                             ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word = rng->next_uint64(rng->state);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        word = __builtin_bswap64(word);
#endif
        memcpy(bits + i, &word, 8);
    }
    if (i < n) {
        uint64_t word = rng->next_uint64(rng->state);
        for (; i < n; ++i, word >>= 8)
            bits[i] = (uint8_t)word;
    }
}

/*
 * Settle the units whose byte equals `cut` (the threshold's top byte) with
 * one more draw each, compared against the threshold's low 56 bits, and
 * rewrite their byte so that `byte < limit` holds exactly for kept units,
 * where limit = max(cut, 1): a kept unit gets 0, a dropped unit keeps `cut`,
 * or gets 1 when cut is 0.  Ties are found with memchr, which scans far
 * faster than a byte loop.
 */
static inline void fastnn_dropout_settle_ties(bitgen_t *rng, uint8_t *bits,
                                              ptrdiff_t n, uint8_t cut,
                                              uint64_t low)
{
    uint8_t *p = (uint8_t *)memchr(bits, cut, (size_t)n);
    while (p != NULL) {
        uint64_t u = rng->next_uint64(rng->state) >> 8;
        if (u < low)
            *p = 0;
        else if (cut == 0)
            *p = 1;
        ++p;
        p = (uint8_t *)memchr(p, cut, (size_t)(bits + n - p));
    }
}

/*
 * mask = bits < limit ? scale : 0 and y = x * mask.  y may be x itself (each
 * element is read before it is written); mask must not overlap x or y.
 * Multi-versioned: the byte-to-float widening and select run at full
 * AVX-512 width where the CPU has it.
 */
FASTNN_MULTIVERSION
static void fastnn_dropout_apply_f32(const uint8_t *bits, uint8_t limit,
                                     float scale, const float *x, float *y,
                                     float *mask, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        float m = bits[i] < limit ? scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

FASTNN_MULTIVERSION
static void fastnn_dropout_apply_f64(const uint8_t *bits, uint8_t limit,
                                     double scale, const double *x, double *y,
                                     double *mask, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        double m = bits[i] < limit ? scale : 0.0;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

#endif
