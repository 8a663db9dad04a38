/*
 * Function multi-versioning for element-wise loops.
 *
 * The extension is built for the baseline x86-64 instruction set so that it
 * runs on any 64-bit x86 CPU.  Loops whose speed depends on vector width
 * (square roots and divisions in optimizer steps, mask generation) are
 * written here as small C functions marked FASTNN_MULTIVERSION: GCC and
 * Clang then emit an AVX-512, an AVX2+FMA and a baseline body and pick one
 * when the module is loaded, from the CPU it runs on.
 */
#ifndef FASTNN_SIMD_H
#define FASTNN_SIMD_H

#if defined(__x86_64__) && defined(__ELF__) && \
    ((defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8) || \
     (defined(__clang__) && __clang_major__ >= 14))
#define FASTNN_MULTIVERSION \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTNN_MULTIVERSION
#endif

/*
 * Optimizer moments that decay geometrically toward zero — those of a weight
 * whose gradient stays 0, like the weights of an image border that is always
 * black — pass through the subnormal range, where x86 arithmetic is several
 * times slower: an Adam step over 235,146 float32 parameters with subnormal
 * first moments took 278 µs instead of 84 µs on a Zen 3 EPYC, and
 * Fashion-MNIST training keeps some moments there all the time.  A decaying
 * moment below the smallest normal number is therefore stored as zero, as
 * XLA's flush-to-zero would store it; the update it would have made is at
 * most lr · 2^-126 / eps.  NaN and infinities pass unchanged.
 */
#include <float.h>
#include <math.h>

static inline float fastnn_flush_f32(float x) { return fabsf(x) < FLT_MIN ? 0.0f : x; }
static inline double fastnn_flush_f64(double x) { return fabs(x) < DBL_MIN ? 0.0 : x; }

#endif
