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

#endif
