/*
 * The Lion update (Chen et al. 2023, "Symbolic Discovery of Optimization
 * Algorithms", Algorithm 2), the C side of optim_lion.pyx:
 *
 *   c = β1 m + (1 − β1) g
 *   p = p − lr (sign(c) + wd p)        (decoupled weight decay)
 *   m = β2 m + (1 − β2) g
 *
 * One pass over p, g and m.  sign(0) = 0, and a NaN in c reaches p (as
 * optax's and the paper's jnp.sign do), so a bad gradient is not hidden.
 * Written once for float and double through LION_T / LION_FN, as
 * optim_kernels.h does; m is stored flushed to zero below the smallest
 * normal number (why: fastnn_simd.h).
 */
#ifndef FASTNN_LION_TEMPLATE

#ifndef FASTNN_LION_KERNEL_H
#define FASTNN_LION_KERNEL_H

#include <stddef.h>

#include "fastnn_simd.h"

#define LION_CAT2(a, b) a##_##b
#define LION_CAT(a, b) LION_CAT2(a, b)
#define FASTNN_LION_TEMPLATE

#define LION_T float
#define LION_FLUSH fastnn_flush_f32
#define LION_FN(name) LION_CAT(fastnn_##name, f32)
#include "lion_kernel.h"
#undef LION_T
#undef LION_FLUSH
#undef LION_FN

#define LION_T double
#define LION_FLUSH fastnn_flush_f64
#define LION_FN(name) LION_CAT(fastnn_##name, f64)
#include "lion_kernel.h"
#undef LION_T
#undef LION_FLUSH
#undef LION_FN

#undef FASTNN_LION_TEMPLATE
#undef LION_CAT
#undef LION_CAT2

#endif /* FASTNN_LION_KERNEL_H */

#else /* FASTNN_LION_TEMPLATE: the kernel, for one LION_T */

FASTNN_MULTIVERSION
static void LION_FN(lion)(LION_T *__restrict p, const LION_T *__restrict g,
                          LION_T *__restrict m, ptrdiff_t n, LION_T lr, LION_T wd,
                          LION_T b1, LION_T r1, LION_T b2, LION_T r2)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        LION_T c = b1 * m[i] + r1 * g[i];
        LION_T s = c > 0 ? (LION_T)1 : (c < 0 ? (LION_T)-1 : c);
        p[i] -= lr * (s + wd * p[i]);
        m[i] = LION_FLUSH(b2 * m[i] + r2 * g[i]);
    }
}

#endif /* FASTNN_LION_TEMPLATE */
