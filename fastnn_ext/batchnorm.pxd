# cython: language_level=3
"""Batch normalization kernels for dense layers, on contiguous buffers.

x is a row-major (m, n) batch: m rows (samples), n features.  Each feature is
normalized over the batch (PyTorch BatchNorm1d semantics):

    mean    = sum_i x[i] / m
    var     = sum_i (x[i] - mean)**2 / m              (biased, normalizes)
    invstd  = 1 / sqrt(var + eps)
    xhat    = (x - mean) * invstd
    y       = gamma * xhat + beta
    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var
                   + momentum * var * m / (m - 1)     (unbiased)

Column sums are accumulated in double whatever the array dtype; element-wise
passes run in the array dtype.  Features are processed in blocks of BN_BLOCK
whose per-feature values live in stack arrays: the kernels allocate nothing,
run without the GIL, and the element-wise loops see only stack arrays besides
the (m, n) buffers, so the compiler can vectorize them without giving up on
aliasing checks.
"""

from cython cimport floating
from libc.math cimport sqrt


cdef enum:
    # Features per block: a few stack arrays of 256 values, while the rows of
    # a block stay long enough to vectorize.
    BN_BLOCK = 256


cdef inline void column_sums(const floating* a, double* sums, Py_ssize_t m,
                             Py_ssize_t n, Py_ssize_t width) noexcept nogil:
    """sums[j] = sum_i a[i*n + j] for j < width, in double.

    Four rows per sweep, so the accumulators are loaded and stored a quarter
    as often.
    """
    cdef Py_ssize_t i = 0, j
    cdef const floating* r
    for j in range(width):
        sums[j] = 0.0
    while i + 4 <= m:
        r = a + i * n
        for j in range(width):
            sums[j] += ((<double>r[j] + <double>r[j + n])
                        + (<double>r[j + 2 * n] + <double>r[j + 3 * n]))
        i += 4
    while i < m:
        r = a + i * n
        for j in range(width):
            sums[j] += r[j]
        i += 1


cdef inline void column_variances(const floating* a, const double* mean,
                                  double* var, double* drift, Py_ssize_t m,
                                  Py_ssize_t n, Py_ssize_t width) noexcept nogil:
    """Biased variances var[j] of the columns about their means.

    Corrected two-pass algorithm: the squared deviations from the already
    computed mean, less the square of the summed deviations (drift), which
    cancels the rounding error of the mean itself.  Stable when the mean is
    large against the spread, where E[x**2] - E[x]**2 is not.
    """
    cdef Py_ssize_t i = 0, j
    cdef const floating* r
    cdef double mu, d0, d1, d2, d3
    for j in range(width):
        var[j] = 0.0
        drift[j] = 0.0
    while i + 4 <= m:
        r = a + i * n
        for j in range(width):
            mu = mean[j]
            d0 = r[j] - mu
            d1 = r[j + n] - mu
            d2 = r[j + 2 * n] - mu
            d3 = r[j + 3 * n] - mu
            drift[j] += (d0 + d1) + (d2 + d3)
            var[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        i += 4
    while i < m:
        r = a + i * n
        for j in range(width):
            d0 = r[j] - mean[j]
            drift[j] += d0
            var[j] += d0 * d0
        i += 1
    for j in range(width):
        var[j] = (var[j] - drift[j] * drift[j] / m) / m
        if var[j] < 0.0:
            var[j] = 0.0


cdef inline void column_sums_products(const floating* a, const floating* b,
                                      double* sum_a, double* sum_ab,
                                      Py_ssize_t m, Py_ssize_t n,
                                      Py_ssize_t width) noexcept nogil:
    """sum_a[j] = sum_i a[i, j] and sum_ab[j] = sum_i a[i, j] * b[i, j], in
    double, in one sweep."""
    cdef Py_ssize_t i = 0, j
    cdef const floating* ra
    cdef const floating* rb
    cdef double a0, a1
    for j in range(width):
        sum_a[j] = 0.0
        sum_ab[j] = 0.0
    while i + 2 <= m:
        ra = a + i * n
        rb = b + i * n
        for j in range(width):
            a0 = ra[j]
            a1 = ra[j + n]
            sum_a[j] += a0 + a1
            sum_ab[j] += a0 * rb[j] + a1 * rb[j + n]
        i += 2
    while i < m:
        ra = a + i * n
        rb = b + i * n
        for j in range(width):
            sum_a[j] += ra[j]
            sum_ab[j] += <double>ra[j] * rb[j]
        i += 1


cdef inline void split_mean(double mean, floating* hi, floating* lo) noexcept nogil:
    """mean = hi + lo, hi rounded to the dtype and lo the remainder.

    (x - hi) - lo then keeps the spread of float32 data whose mean is large:
    x - hi is exact for x near hi, where x - float32(mean) alone would carry
    the mean's rounding error, up to half an ulp of the mean.  Relies on IEEE
    evaluation order (no reassociation, as without -ffast-math).
    """
    hi[0] = <floating>mean
    lo[0] = <floating>(mean - <double>hi[0])


cdef inline void normalize_rows(const floating* x, const floating* hi,
                                const floating* lo, const floating* invstd,
                                const floating* gamma, const floating* beta,
                                floating* xhat, floating* y, Py_ssize_t m,
                                Py_ssize_t n, Py_ssize_t width) noexcept nogil:
    """xhat = ((x - hi) - lo) * invstd and y = gamma * xhat + beta over a
    block of width columns; xhat or y may be x itself."""
    cdef Py_ssize_t i, j
    cdef const floating* xr
    cdef floating* hr
    cdef floating* yr
    cdef floating h
    for i in range(m):
        xr = x + i * n
        hr = xhat + i * n
        yr = y + i * n
        for j in range(width):
            h = ((xr[j] - hi[j]) - lo[j]) * invstd[j]
            hr[j] = h
            yr[j] = gamma[j] * h + beta[j]


cdef inline void batchnorm_forward_train(
        const floating* x, const floating* gamma, const floating* beta,
        floating* y, floating* xhat, floating* mean, floating* invstd,
        floating* running_mean, floating* running_var,
        Py_ssize_t m, Py_ssize_t n, double momentum, double eps) noexcept nogil:
    """Training-mode forward pass over a (m, n) batch, m >= 2.

    Writes y and xhat (m, n), mean and invstd (n,) for the backward pass, and
    updates running_mean and running_var (n,) in place; pass NULL for both to
    leave running statistics alone.  y or xhat may be x itself.
    """
    cdef double mu[BN_BLOCK]
    cdef double var[BN_BLOCK]
    cdef double drift[BN_BLOCK]
    cdef floating hi[BN_BLOCK]
    cdef floating lo[BN_BLOCK]
    cdef floating scale[BN_BLOCK]
    cdef floating g[BN_BLOCK]
    cdef floating b[BN_BLOCK]
    cdef double unbias = <double>m / <double>(m - 1)
    cdef double s
    cdef Py_ssize_t j, j0 = 0, width
    while j0 < n:
        width = min(<Py_ssize_t>BN_BLOCK, n - j0)
        column_sums(x + j0, mu, m, n, width)
        for j in range(width):
            mu[j] /= m
        column_variances(x + j0, mu, var, drift, m, n, width)
        for j in range(width):
            if running_mean != NULL:
                running_mean[j0 + j] = <floating>(
                    (1.0 - momentum) * running_mean[j0 + j] + momentum * mu[j])
                running_var[j0 + j] = <floating>(
                    (1.0 - momentum) * running_var[j0 + j]
                    + momentum * unbias * var[j])
            s = 1.0 / sqrt(var[j] + eps)
            mean[j0 + j] = <floating>mu[j]
            invstd[j0 + j] = <floating>s
            split_mean(mu[j], &hi[j], &lo[j])
            scale[j] = <floating>s
            g[j] = gamma[j0 + j]
            b[j] = beta[j0 + j]
        normalize_rows(x + j0, hi, lo, scale, g, b, xhat + j0, y + j0,
                       m, n, width)
        j0 += width


cdef inline void batchnorm_forward_eval(
        const floating* x, const floating* gamma, const floating* beta,
        floating* y, const floating* running_mean, const floating* running_var,
        Py_ssize_t m, Py_ssize_t n, double eps) noexcept nogil:
    """Inference-mode forward pass with the running statistics:
    y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
    y may be x itself."""
    cdef floating shift[BN_BLOCK]
    cdef floating scale[BN_BLOCK]
    cdef floating b[BN_BLOCK]
    cdef const floating* xr
    cdef floating* yr
    cdef Py_ssize_t i, j, j0 = 0, width
    while j0 < n:
        width = min(<Py_ssize_t>BN_BLOCK, n - j0)
        for j in range(width):
            shift[j] = running_mean[j0 + j]
            scale[j] = <floating>(gamma[j0 + j]
                                  / sqrt(<double>running_var[j0 + j] + eps))
            b[j] = beta[j0 + j]
        for i in range(m):
            xr = x + i * n + j0
            yr = y + i * n + j0
            for j in range(width):
                # Centre before scaling: x - mean is exact for x near the mean.
                yr[j] = (xr[j] - shift[j]) * scale[j] + b[j]
        j0 += width


cdef inline void batchnorm_backward(
        const floating* dy, const floating* xhat, const floating* gamma,
        const floating* invstd, floating* dx, floating* dgamma,
        floating* dbeta, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """Backward pass of batchnorm_forward_train.

        dbeta  = sum_i dy
        dgamma = sum_i dy * xhat
        dx     = (gamma * invstd / m) * (m * dy - dbeta - xhat * dgamma)

    Overwrites dx (m, n), dgamma and dbeta (n,); dx may be dy or xhat itself.
    """
    cdef double sum_dy[BN_BLOCK]
    cdef double sum_dyx[BN_BLOCK]
    cdef floating k_dy[BN_BLOCK]
    cdef floating k_xhat[BN_BLOCK]
    cdef floating k_const[BN_BLOCK]
    cdef const floating* dyr
    cdef const floating* hr
    cdef floating* dxr
    cdef double k
    cdef Py_ssize_t i, j, j0 = 0, width
    while j0 < n:
        width = min(<Py_ssize_t>BN_BLOCK, n - j0)
        column_sums_products(dy + j0, xhat + j0, sum_dy, sum_dyx, m, n, width)
        # dx = k*dy - k*mean(dy) - xhat * k*mean(dy*xhat) with k = gamma*invstd,
        # the three coefficients formed in double.  gamma and invstd are read
        # before dgamma and dbeta are written.
        for j in range(width):
            k = <double>gamma[j0 + j] * <double>invstd[j0 + j]
            k_dy[j] = <floating>k
            k_const[j] = <floating>(-k * sum_dy[j] / m)
            k_xhat[j] = <floating>(-k * sum_dyx[j] / m)
        for j in range(width):
            dbeta[j0 + j] = <floating>sum_dy[j]
            dgamma[j0 + j] = <floating>sum_dyx[j]
        for i in range(m):
            dyr = dy + i * n + j0
            hr = xhat + i * n + j0
            dxr = dx + i * n + j0
            for j in range(width):
                dxr[j] = k_dy[j] * dyr[j] + (k_xhat[j] * hr[j] + k_const[j])
        j0 += width


cdef inline void batchnorm_backward_eval(
        const floating* dy, const floating* x, const floating* gamma,
        const floating* running_mean, const floating* running_var,
        floating* dx, floating* dgamma, floating* dbeta,
        Py_ssize_t m, Py_ssize_t n, double eps) noexcept nogil:
    """Backward pass of batchnorm_forward_eval, the per-feature affine map
    y = gamma * (x - running_mean) * invstd + beta, invstd = 1/sqrt(running_var + eps):

        dx     = dy * gamma * invstd
        dgamma = sum_i dy * (x - running_mean) * invstd
        dbeta  = sum_i dy

    The statistics are constants here, unlike in training mode, where they
    depend on the batch (batchnorm_backward).  Overwrites dx (m, n), dgamma
    and dbeta (n,); dx may be dy or x itself.
    """
    cdef double sum_dy[BN_BLOCK]
    cdef double sum_dyd[BN_BLOCK]
    cdef double mu[BN_BLOCK]
    cdef double invstd[BN_BLOCK]
    cdef floating k[BN_BLOCK]
    cdef const floating* dyr
    cdef const floating* xr
    cdef floating* dxr
    cdef double g
    cdef Py_ssize_t i, j, j0 = 0, width
    while j0 < n:
        width = min(<Py_ssize_t>BN_BLOCK, n - j0)
        for j in range(width):
            mu[j] = running_mean[j0 + j]
            invstd[j] = 1.0 / sqrt(<double>running_var[j0 + j] + eps)
            k[j] = <floating>(<double>gamma[j0 + j] * invstd[j])
            sum_dy[j] = 0.0
            sum_dyd[j] = 0.0
        # The sums read every row of the block's columns before dx is
        # written, so dx may be x; x - running_mean is formed in double.
        for i in range(m):
            dyr = dy + i * n + j0
            xr = x + i * n + j0
            for j in range(width):
                g = dyr[j]
                sum_dy[j] += g
                sum_dyd[j] += g * (<double>xr[j] - mu[j])
        for j in range(width):
            dbeta[j0 + j] = <floating>sum_dy[j]
            dgamma[j0 + j] = <floating>(sum_dyd[j] * invstd[j])
        for i in range(m):
            dyr = dy + i * n + j0
            dxr = dx + i * n + j0
            for j in range(width):
                dxr[j] = k[j] * dyr[j]
        j0 += width
