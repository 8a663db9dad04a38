/*
 * Element-wise loops built on exp and log1p: the sigmoid activation and the
 * sigmoid cross-entropy.
 *
 * A loop calling expf does not vectorize by itself: the compiler needs a
 * vector version of the function.  glibc's libmvec provides them
 * (_ZGVeN16v_expf for AVX-512, _ZGVdN8v_expf for AVX2, ...); declaring the
 * functions `simd` below lets GCC call them, four to sixteen elements at a
 * time, from each multi-versioned body.  setup.py defines FASTNN_LIBMVEC and
 * links libmvec only after checking that a program using them links; without
 * it the same loops run one element at a time.
 *
 * Both loops are branch-free so that they vectorize: with e = exp(−|z|),
 * sigmoid(z) = 1/(1 + e) for z ≥ 0 and e/(1 + e) for z < 0, never
 * overflowing, and log(1 + exp(−|z|)) is the softplus term of the
 * cross-entropy, finite for any finite z.
 *
 * The float and double versions are written once: this header includes
 * itself with EW_T and the function names defined for each type.
 */
#ifndef FASTNN_EW_TEMPLATE

#ifndef FASTNN_ELEMENTWISE_KERNELS_H
#define FASTNN_ELEMENTWISE_KERNELS_H

#include <math.h>
#include <stddef.h>

#include "fastnn_simd.h"

#if defined(FASTNN_LIBMVEC)
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) float log1pf(float);
__attribute__((simd("notinbranch"))) double log1p(double);
#endif

/* Losses are summed in double from blocks of this many per-element terms. */
#define FASTNN_EW_BLOCK 256

#define FASTNN_EW_TEMPLATE

#define EW_T float
#define EW_EXP expf
#define EW_LOG1P log1pf
#define EW_FABS fabsf
#define EW_FN(name) fastnn_##name##_f32
#include "elementwise_kernels.h"
#undef EW_T
#undef EW_EXP
#undef EW_LOG1P
#undef EW_FABS
#undef EW_FN

#define EW_T double
#define EW_EXP exp
#define EW_LOG1P log1p
#define EW_FABS fabs
#define EW_FN(name) fastnn_##name##_f64
#include "elementwise_kernels.h"
#undef EW_T
#undef EW_EXP
#undef EW_LOG1P
#undef EW_FABS
#undef EW_FN

#undef FASTNN_EW_TEMPLATE

#endif /* FASTNN_ELEMENTWISE_KERNELS_H */

#else /* FASTNN_EW_TEMPLATE: the kernels, for one EW_T */

/* out[i, j] = sigmoid(z[i, j] + bias[j]) over an (m, n) block; bias may be
 * NULL; out may be z. */
FASTNN_MULTIVERSION
static void EW_FN(sigmoid_rows)(const EW_T *z, const EW_T *bias, EW_T *out,
                                ptrdiff_t m, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < m; ++i) {
        const EW_T *z_row = z + i * n;
        EW_T *out_row = out + i * n;
        for (ptrdiff_t j = 0; j < n; ++j) {
            EW_T v = z_row[j] + (bias ? bias[j] : (EW_T) 0);
            EW_T e = EW_EXP(-EW_FABS(v));
            out_row[j] = (v >= 0 ? (EW_T) 1 : e) / ((EW_T) 1 + e);
        }
    }
}

/* Σ_i max(z, 0) − z·t + log(1 + e^{−|z|}) over n elements, summed in double;
 * grad (may be NULL) = scale·(sigmoid(z) − t). */
FASTNN_MULTIVERSION
static double EW_FN(sigmoid_cross_entropy)(const EW_T *__restrict z,
                                           const EW_T *__restrict t,
                                           EW_T *__restrict grad,
                                           ptrdiff_t n, EW_T scale)
{
    EW_T terms[FASTNN_EW_BLOCK];
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += FASTNN_EW_BLOCK) {
        ptrdiff_t count = n - start < FASTNN_EW_BLOCK ? n - start : FASTNN_EW_BLOCK;
        const EW_T *zb = z + start, *tb = t + start;
        if (grad) {
            EW_T *gb = grad + start;
            for (ptrdiff_t i = 0; i < count; ++i) {
                EW_T v = zb[i];
                EW_T e = EW_EXP(-EW_FABS(v));
                terms[i] = (v > 0 ? v : (EW_T) 0) - v * tb[i] + EW_LOG1P(e);
                gb[i] = scale * ((v >= 0 ? (EW_T) 1 : e) / ((EW_T) 1 + e) - tb[i]);
            }
        } else {
            for (ptrdiff_t i = 0; i < count; ++i) {
                EW_T v = zb[i];
                terms[i] = (v > 0 ? v : (EW_T) 0) - v * tb[i] + EW_LOG1P(EW_EXP(-EW_FABS(v)));
            }
        }
        for (ptrdiff_t i = 0; i < count; ++i)
            total += terms[i];
    }
    return total;
}

#endif /* FASTNN_EW_TEMPLATE */
