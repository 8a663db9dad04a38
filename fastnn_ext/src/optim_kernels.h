/*
 * Per-element optimizer updates, the C side of optim.pxd.
 *
 * Each kernel makes one pass over a contiguous run of parameters, reading the
 * gradient and the optimizer moments once and writing the parameters and the
 * moments once, so a step costs one sweep over memory instead of the five to
 * ten sweeps of an array-expression form.  The scalars (bias corrections,
 * decayed learning rates, and complements such as 1 - β) are computed by the
 * caller in double precision and rounded once to the kernel's type: in float,
 * 1 - (float)0.999 differs from (float)(1 - 0.999) by 1.3e-5 relative, an
 * error that would enter every step.
 *
 * A kernel applies one weight-decay coefficient `wd` to its whole run; the
 * caller runs it twice, over the decayed weights and then with wd = 0 over
 * the rest.  "Coupled" decay adds wd·p to the gradient inside the loop,
 * never writing it back: the gradient buffer is read-only.
 *
 * The kernels are multi-versioned (fastnn_simd.h): a square root and a
 * division per element vectorize only with -fno-math-errno, and are worth
 * running at the widest vector width the CPU offers.  Loop variants selected
 * by a flag (Nesterov, AMSGrad, centered...) are separate specializations of
 * one always-inlined body, so no loop carries a branch.
 *
 * The float and double kernels are written once: this header includes itself
 * with OPT_T, OPT_SQRT and OPT_FN() defined for each type, giving
 * fastnn_<name>_f32 and fastnn_<name>_f64.  Pointers are __restrict: the
 * parameters, the gradient and each moment slot must not overlap.
 */
#ifndef FASTNN_OPTIM_TEMPLATE

#ifndef FASTNN_OPTIM_KERNELS_H
#define FASTNN_OPTIM_KERNELS_H

#include <math.h>
#include <stddef.h>

#include "fastnn_simd.h"

#if defined(_MSC_VER)
#define FASTNN_ALWAYS_INLINE static __forceinline
#else
#define FASTNN_ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

#define OPT_CAT2(a, b) a##_##b
#define OPT_CAT(a, b) OPT_CAT2(a, b)

#define FASTNN_OPTIM_TEMPLATE

#define OPT_T float
#define OPT_SQRT sqrtf
#define OPT_FLUSH fastnn_flush_f32
#define OPT_FN(name) OPT_CAT(fastnn_##name, f32)
#include "optim_kernels.h"
#undef OPT_T
#undef OPT_SQRT
#undef OPT_FLUSH
#undef OPT_FN

#define OPT_T double
#define OPT_SQRT sqrt
#define OPT_FLUSH fastnn_flush_f64
#define OPT_FN(name) OPT_CAT(fastnn_##name, f64)
#include "optim_kernels.h"
#undef OPT_T
#undef OPT_SQRT
#undef OPT_FLUSH
#undef OPT_FN

#undef FASTNN_OPTIM_TEMPLATE
#undef OPT_CAT
#undef OPT_CAT2

#endif /* FASTNN_OPTIM_KERNELS_H */

#else /* FASTNN_OPTIM_TEMPLATE: the kernels, for one OPT_T */

/* ---- SGD ------------------------------------------------------------- */

/* p -= lr (g + wd p) */
FASTNN_MULTIVERSION
static void OPT_FN(sgd)(OPT_T *__restrict p, const OPT_T *__restrict g,
                        ptrdiff_t n, OPT_T lr, OPT_T wd)
{
    for (ptrdiff_t i = 0; i < n; ++i)
        p[i] -= lr * (g[i] + wd * p[i]);
}

/*
 * d = g + wd p
 * b = d on the first step, else mu b + keep d   (keep = 1 - dampening)
 * p -= lr (d + mu b)  (Nesterov)  or  lr b
 */
FASTNN_ALWAYS_INLINE void OPT_FN(sgd_momentum_body)(
    OPT_T *__restrict p, const OPT_T *__restrict g, OPT_T *__restrict buf,
    ptrdiff_t n, OPT_T lr, OPT_T wd, OPT_T mu, OPT_T keep,
    const int nesterov, const int first)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        OPT_T d = g[i] + wd * p[i];
        OPT_T b = OPT_FLUSH(first ? d : mu * buf[i] + keep * d);
        buf[i] = b;
        p[i] -= lr * (nesterov ? d + mu * b : b);
    }
}

FASTNN_MULTIVERSION
static void OPT_FN(sgd_momentum)(OPT_T *__restrict p, const OPT_T *__restrict g,
                                 OPT_T *__restrict buf, ptrdiff_t n, OPT_T lr,
                                 OPT_T wd, OPT_T mu, OPT_T keep, int nesterov,
                                 int first)
{
    if (first) {
        if (nesterov)
            OPT_FN(sgd_momentum_body)(p, g, buf, n, lr, wd, mu, keep, 1, 1);
        else
            OPT_FN(sgd_momentum_body)(p, g, buf, n, lr, wd, mu, keep, 0, 1);
    } else {
        if (nesterov)
            OPT_FN(sgd_momentum_body)(p, g, buf, n, lr, wd, mu, keep, 1, 0);
        else
            OPT_FN(sgd_momentum_body)(p, g, buf, n, lr, wd, mu, keep, 0, 0);
    }
}

/* ---- AdaGrad ----------------------------------------------------------- */

/*
 * d = g + wd p;  s += d²;  p -= clr d / (√s + eps)
 * clr is the step's decayed rate lr / (1 + (t - 1) lr_decay).
 */
FASTNN_MULTIVERSION
static void OPT_FN(adagrad)(OPT_T *__restrict p, const OPT_T *__restrict g,
                            OPT_T *__restrict sum, ptrdiff_t n, OPT_T clr,
                            OPT_T wd, OPT_T eps)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        OPT_T d = g[i] + wd * p[i];
        OPT_T s = sum[i] + d * d;
        sum[i] = s;
        p[i] -= clr * (d / (OPT_SQRT(s) + eps));
    }
}

/* ---- RMSProp ----------------------------------------------------------- */

/*
 * d = g + wd p;  v = α v + rest d²   (rest = 1 - α)
 * centered:  a = α a + rest d;  denom = √(v - a²) + eps,  else √v + eps
 * momentum:  b = mu b + d / denom;  p -= lr b,  else p -= lr d / denom
 * avg and buf are only touched by the variants that use them.
 */
FASTNN_ALWAYS_INLINE void OPT_FN(rmsprop_body)(
    OPT_T *__restrict p, const OPT_T *__restrict g, OPT_T *__restrict sq,
    OPT_T *__restrict avg, OPT_T *__restrict buf, ptrdiff_t n, OPT_T lr,
    OPT_T wd, OPT_T alpha, OPT_T rest, OPT_T eps, OPT_T mu,
    const int centered, const int momentum)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        OPT_T d = g[i] + wd * p[i];
        OPT_T v = OPT_FLUSH(alpha * sq[i] + rest * (d * d));
        sq[i] = v;
        if (centered) {
            OPT_T a = OPT_FLUSH(alpha * avg[i] + rest * d);
            avg[i] = a;
            /* a² ≤ v but for rounding; a v flushed to zero stays zero */
            v = v == 0 ? v : v - a * a;
        }
        OPT_T step = d / (OPT_SQRT(v) + eps);
        if (momentum) {
            step = OPT_FLUSH(step + mu * buf[i]);
            buf[i] = step;
        }
        p[i] -= lr * step;
    }
}

/* avg = NULL: not centered; buf = NULL: no momentum. */
FASTNN_MULTIVERSION
static void OPT_FN(rmsprop)(OPT_T *__restrict p, const OPT_T *__restrict g,
                            OPT_T *__restrict sq, OPT_T *__restrict avg,
                            OPT_T *__restrict buf, ptrdiff_t n, OPT_T lr,
                            OPT_T wd, OPT_T alpha, OPT_T rest, OPT_T eps,
                            OPT_T mu)
{
    if (avg != NULL) {
        if (buf != NULL)
            OPT_FN(rmsprop_body)(p, g, sq, avg, buf, n, lr, wd, alpha, rest, eps, mu, 1, 1);
        else
            OPT_FN(rmsprop_body)(p, g, sq, avg, buf, n, lr, wd, alpha, rest, eps, mu, 1, 0);
    } else {
        if (buf != NULL)
            OPT_FN(rmsprop_body)(p, g, sq, avg, buf, n, lr, wd, alpha, rest, eps, mu, 0, 1);
        else
            OPT_FN(rmsprop_body)(p, g, sq, avg, buf, n, lr, wd, alpha, rest, eps, mu, 0, 0);
    }
}

/* ---- AdaDelta ---------------------------------------------------------- */

/*
 * d = g + wd p;  v = ρ v + rest d²   (rest = 1 - ρ)
 * Δ = √((u + eps) / (v + eps)) · d;  u = ρ u + rest Δ²;  p -= lr Δ
 * One square root of the quotient instead of a quotient of two roots: the
 * same value up to rounding, and a third less divider work.
 */
FASTNN_MULTIVERSION
static void OPT_FN(adadelta)(OPT_T *__restrict p, const OPT_T *__restrict g,
                             OPT_T *__restrict sq, OPT_T *__restrict acc,
                             ptrdiff_t n, OPT_T lr, OPT_T wd, OPT_T rho,
                             OPT_T rest, OPT_T eps)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        OPT_T d = g[i] + wd * p[i];
        OPT_T v = OPT_FLUSH(rho * sq[i] + rest * (d * d));
        sq[i] = v;
        OPT_T delta = OPT_SQRT((acc[i] + eps) / (v + eps)) * d;
        acc[i] = OPT_FLUSH(rho * acc[i] + rest * (delta * delta));
        p[i] -= lr * delta;
    }
}

/* ---- Adam / AdamW ------------------------------------------------------ */

/*
 * d = g + wd p  (coupled decay, Adam)
 * m = β1 m + r1 d;  v = β2 v + r2 d²   (r = 1 - β);  AMSGrad: vmax = max(vmax, v)
 * p = shrink p - step_size m / (√v̂ · inv_bc2_sqrt + eps)
 * where step_size = lr / (1 - β1^t), inv_bc2_sqrt = 1 / √(1 - β2^t), v̂ is v
 * or vmax, and shrink = 1 - lr λ carries AdamW's decoupled decay (1 for
 * Adam).  Scaling √v rather than v is PyTorch's order (the bias correction
 * then costs one scalar square root per step); the two differ by rounding.
 */
FASTNN_ALWAYS_INLINE void OPT_FN(adam_body)(
    OPT_T *__restrict p, const OPT_T *__restrict g, OPT_T *__restrict m,
    OPT_T *__restrict v, OPT_T *__restrict vmax, ptrdiff_t n,
    OPT_T step_size, OPT_T inv_bc2_sqrt, OPT_T eps, OPT_T b1, OPT_T r1,
    OPT_T b2, OPT_T r2, OPT_T wd, OPT_T shrink, const int amsgrad)
{
    for (ptrdiff_t i = 0; i < n; ++i) {
        OPT_T d = g[i] + wd * p[i];
        OPT_T mi = OPT_FLUSH(b1 * m[i] + r1 * d);
        OPT_T vi = OPT_FLUSH(b2 * v[i] + r2 * (d * d));
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            /* Ordered so that a NaN in v reaches p, as with torch.maximum,
             * instead of being dropped in favour of the old maximum. */
            vi = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vi;
        }
        OPT_T denom = OPT_SQRT(vi) * inv_bc2_sqrt + eps;
        p[i] = shrink * p[i] - step_size * (mi / denom);
    }
}

/* vmax = NULL: plain Adam. */
FASTNN_MULTIVERSION
static void OPT_FN(adam)(OPT_T *__restrict p, const OPT_T *__restrict g,
                         OPT_T *__restrict m, OPT_T *__restrict v,
                         OPT_T *__restrict vmax, ptrdiff_t n,
                         OPT_T step_size, OPT_T inv_bc2_sqrt, OPT_T eps,
                         OPT_T b1, OPT_T r1, OPT_T b2, OPT_T r2, OPT_T wd,
                         OPT_T shrink)
{
    if (vmax != NULL)
        OPT_FN(adam_body)(p, g, m, v, vmax, n, step_size, inv_bc2_sqrt, eps,
                          b1, r1, b2, r2, wd, shrink, 1);
    else
        OPT_FN(adam_body)(p, g, m, v, vmax, n, step_size, inv_bc2_sqrt, eps,
                          b1, r1, b2, r2, wd, shrink, 0);
}

#endif /* FASTNN_OPTIM_TEMPLATE */
