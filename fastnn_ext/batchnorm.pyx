# cython: language_level=3
"""Batch normalization for dense layers: Python entry points for the kernels
in batchnorm.pxd.

Arrays are row-major (batch, features) float32 or float64; per-feature
vectors (gamma, beta, statistics) have length ``features`` and the same
dtype.  Every argument is checked before a kernel runs.
"""

from cython cimport floating
from libc.math cimport INFINITY

from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, like_array,
                                 column_vector, span, check_outputs_disjoint, check_range)

__all__ = ["forward_train", "forward_eval", "backward", "backward_eval"]


cdef int _check_eps(double eps) except -1:
    return check_range("eps", eps, 0.0, INFINITY, True, True)


def forward_train(x, gamma, beta, y, xhat, mean, invstd, running_mean,
                  running_var, double momentum=0.1, double eps=1e-5):
    """Batch normalization forward pass in training mode.

    For each feature j over the m rows of the batch::

        mean[j]   = sum_i x[i, j] / m
        var[j]    = sum_i (x[i, j] - mean[j])**2 / m          (biased)
        invstd[j] = 1 / sqrt(var[j] + eps)
        xhat      = (x - mean) * invstd
        y         = gamma * xhat + beta
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var
                       + momentum * var * m / (m - 1)         (unbiased)

    as in PyTorch's ``BatchNorm1d``.  Statistics are accumulated in double
    (two-pass, so a large mean does not swamp a small spread).

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (m, n), C-contiguous, m >= 2
        The batch: m rows (samples), n features.
    gamma, beta : ndarray, shape (n,)
        Learned scale and shift.
    y : ndarray, shape (m, n), output
        Normalized, scaled and shifted batch.  May be `x` itself.
    xhat : ndarray, shape (m, n), output
        Normalized batch, saved for `backward`.  May be `x` itself (then `y`
        may not).
    mean, invstd : ndarray, shape (n,), output
        Batch mean and ``1 / sqrt(var + eps)``, saved for `backward`.
    running_mean, running_var : ndarray, shape (n,), updated in place, or None
        Running statistics for `forward_eval`; None for both leaves them out.
    momentum : float, default 0.1
        Weight of the batch statistics in the running update, in [0, 1].
    eps : float, default 1e-5
        Added to the variance inside the square root, finite and > 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or dtypes differ.
    ValueError
        If m < 2, shapes do not match, an array is not C-contiguous, aligned
        and (for outputs) writeable, outputs overlap other arrays, only one
        running statistic is given, or momentum or eps is out of range.
    """
    cdef FloatArray xa, ga, ba, ya, xha, mua, isa, rma, rva
    float_array("x", x, 2, False, &xa)
    if xa.rows < 2:
        raise ValueError(f"x must have at least 2 rows for training-mode batch "
                         f"normalization, got {xa.rows}")
    check_range("momentum", momentum, 0.0, 1.0, False, False)
    _check_eps(eps)
    column_vector("gamma", gamma, False, &ga, "x", &xa)
    column_vector("beta", beta, False, &ba, "x", &xa)
    like_array("y", y, 2, True, &ya, "x", &xa)
    like_array("xhat", xhat, 2, True, &xha, "x", &xa)
    column_vector("mean", mean, True, &mua, "x", &xa)
    column_vector("invstd", invstd, True, &isa, "x", &xa)
    outputs = [span("y", &ya), span("xhat", &xha), span("mean", &mua),
               span("invstd", &isa)]
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays "
                         "or both be None")
    if running_mean is not None:
        column_vector("running_mean", running_mean, True, &rma, "x", &xa)
        column_vector("running_var", running_var, True, &rva, "x", &xa)
        outputs += [span("running_mean", &rma), span("running_var", &rva)]
    check_outputs_disjoint(outputs, [span("x", &xa), span("gamma", &ga), span("beta", &ba)],
                           (("y", "x"), ("xhat", "x")))
    if xa.cols == 0:
        return
    if xa.kind == KIND_FLOAT32:
        _forward_train[float](x, gamma, beta, y, xhat, mean, invstd, running_mean,
                              running_var, momentum, eps)
    else:
        _forward_train[double](x, gamma, beta, y, xhat, mean, invstd, running_mean,
                               running_var, momentum, eps)


cdef int _forward_train(const floating[:, ::1] x, const floating[::1] gamma,
                        const floating[::1] beta, floating[:, ::1] y,
                        floating[:, ::1] xhat, floating[::1] mean,
                        floating[::1] invstd, floating[::1] running_mean,
                        floating[::1] running_var, double momentum,
                        double eps) except -1:
    """forward_train after its checks (m >= 2, n >= 1; the caller checks)."""
    cdef floating* prm = NULL if running_mean is None else &running_mean[0]
    cdef floating* prv = NULL if running_var is None else &running_var[0]
    with nogil:
        batchnorm_forward_train(&x[0, 0], &gamma[0], &beta[0], &y[0, 0],
                                &xhat[0, 0], &mean[0], &invstd[0], prm, prv,
                                x.shape[0], x.shape[1], momentum, eps)
    return 0


def forward_eval(x, gamma, beta, y, running_mean, running_var,
                 double eps=1e-5):
    """Batch normalization forward pass in inference mode::

        y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (m, n), C-contiguous
        The batch (any m >= 0).
    gamma, beta : ndarray, shape (n,)
        Learned scale and shift.
    y : ndarray, shape (m, n), output
        May be `x` itself.
    running_mean, running_var : ndarray, shape (n,)
        Statistics accumulated by `forward_train`.
    eps : float, default 1e-5
        Added to the variance inside the square root, finite and > 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or dtypes differ.
    ValueError
        If shapes do not match, an array is not C-contiguous, aligned and
        (for y) writeable, y overlaps another array, or eps is out of range.
    """
    cdef FloatArray xa, ga, ba, ya, rma, rva
    float_array("x", x, 2, False, &xa)
    _check_eps(eps)
    column_vector("gamma", gamma, False, &ga, "x", &xa)
    column_vector("beta", beta, False, &ba, "x", &xa)
    like_array("y", y, 2, True, &ya, "x", &xa)
    column_vector("running_mean", running_mean, False, &rma, "x", &xa)
    column_vector("running_var", running_var, False, &rva, "x", &xa)
    check_outputs_disjoint([span("y", &ya)],
                           [span("x", &xa), span("gamma", &ga), span("beta", &ba),
                            span("running_mean", &rma), span("running_var", &rva)],
                           (("y", "x"),))
    if xa.rows == 0 or xa.cols == 0:
        return
    if xa.kind == KIND_FLOAT32:
        _forward_eval[float](x, gamma, beta, y, running_mean, running_var, eps)
    else:
        _forward_eval[double](x, gamma, beta, y, running_mean, running_var, eps)


cdef int _forward_eval(const floating[:, ::1] x, const floating[::1] gamma,
                       const floating[::1] beta, floating[:, ::1] y,
                       const floating[::1] running_mean,
                       const floating[::1] running_var, double eps) except -1:
    """forward_eval after its checks (m, n >= 1; the caller checks)."""
    with nogil:
        batchnorm_forward_eval(&x[0, 0], &gamma[0], &beta[0], &y[0, 0],
                               &running_mean[0], &running_var[0], x.shape[0],
                               x.shape[1], eps)
    return 0


def backward(dy, xhat, gamma, invstd, dx, dgamma, dbeta):
    """Batch normalization backward pass (training mode).

    With ``k = gamma * invstd`` per feature and sums over the m rows::

        dbeta  = sum_i dy
        dgamma = sum_i dy * xhat
        dx     = (k / m) * (m * dy - dbeta - xhat * dgamma)

    Parameters
    ----------
    dy : ndarray of float32 or float64, shape (m, n), C-contiguous
        Gradient with respect to the forward output ``y``.
    xhat : ndarray, shape (m, n)
        Normalized batch saved by `forward_train`.
    gamma, invstd : ndarray, shape (n,)
        Scale, and ``1 / sqrt(var + eps)`` saved by `forward_train`.
    dx : ndarray, shape (m, n), output
        Gradient with respect to ``x``; overwritten.  May be `dy` or `xhat`
        itself.
    dgamma, dbeta : ndarray, shape (n,), output
        Gradients with respect to ``gamma`` and ``beta``; overwritten (not
        accumulated).

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or dtypes differ.
    ValueError
        If shapes do not match, an array is not C-contiguous, aligned and
        (for outputs) writeable, or outputs overlap other arrays.
    """
    cdef FloatArray dya, xha, ga, isa, dxa, dga, dba
    float_array("dy", dy, 2, False, &dya)
    like_array("xhat", xhat, 2, False, &xha, "dy", &dya)
    column_vector("gamma", gamma, False, &ga, "dy", &dya)
    column_vector("invstd", invstd, False, &isa, "dy", &dya)
    like_array("dx", dx, 2, True, &dxa, "dy", &dya)
    column_vector("dgamma", dgamma, True, &dga, "dy", &dya)
    column_vector("dbeta", dbeta, True, &dba, "dy", &dya)
    check_outputs_disjoint([span("dx", &dxa), span("dgamma", &dga), span("dbeta", &dba)],
                           [span("dy", &dya), span("xhat", &xha), span("gamma", &ga),
                            span("invstd", &isa)],
                           (("dx", "dy"), ("dx", "xhat")))
    if dya.cols == 0:
        return
    if dya.kind == KIND_FLOAT32:
        _backward[float](dy, xhat, gamma, invstd, dx, dgamma, dbeta)
    else:
        _backward[double](dy, xhat, gamma, invstd, dx, dgamma, dbeta)


cdef int _backward(const floating[:, ::1] dy, const floating[:, ::1] xhat,
                   const floating[::1] gamma, const floating[::1] invstd,
                   floating[:, ::1] dx, floating[::1] dgamma,
                   floating[::1] dbeta) except -1:
    """backward after its checks (n >= 1; the caller checks)."""
    if dy.shape[0] == 0:
        # No rows: the sums are empty and there is no dx to write.
        dgamma[:] = 0
        dbeta[:] = 0
        return 0
    with nogil:
        batchnorm_backward(&dy[0, 0], &xhat[0, 0], &gamma[0], &invstd[0],
                           &dx[0, 0], &dgamma[0], &dbeta[0], dy.shape[0],
                           dy.shape[1])
    return 0


def backward_eval(grad_out, x, gamma, running_mean, running_var, double eps,
                  grad_in, grad_gamma, grad_beta):
    """Batch normalization backward pass in inference mode.

    In inference mode the forward pass (`forward_eval`) is the per-feature
    affine map ``y = gamma * (x - running_mean) * invstd + beta`` with
    ``invstd = 1 / sqrt(running_var + eps)``, whose statistics are constants.
    Its gradients, with sums over the m rows::

        grad_in    = grad_out * gamma * invstd
        grad_gamma = sum_i grad_out * (x - running_mean) * invstd
        grad_beta  = sum_i grad_out

    (The training-mode `backward` differentiates through the batch
    statistics as well and does not apply here.)

    Parameters
    ----------
    grad_out : ndarray of float32 or float64, shape (m, n), C-contiguous
        Gradient with respect to the forward output ``y``.
    x : ndarray, shape (m, n)
        The forward pass's input.
    gamma, running_mean, running_var : ndarray, shape (n,)
        Scale and the statistics `forward_eval` used.
    eps : float
        The forward pass's eps, finite and > 0.
    grad_in : ndarray, shape (m, n), output
        Gradient with respect to ``x``; overwritten.  May be `grad_out` or
        `x` itself.
    grad_gamma, grad_beta : ndarray, shape (n,), output
        Gradients with respect to ``gamma`` and ``beta``; overwritten (not
        accumulated).

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or dtypes differ.
    ValueError
        If shapes do not match, an array is not C-contiguous, aligned and
        (for outputs) writeable, outputs overlap other arrays, or eps is out
        of range.
    """
    cdef FloatArray dya, xa, ga, rma, rva, dxa, dga, dba
    float_array("grad_out", grad_out, 2, False, &dya)
    like_array("x", x, 2, False, &xa, "grad_out", &dya)
    column_vector("gamma", gamma, False, &ga, "grad_out", &dya)
    column_vector("running_mean", running_mean, False, &rma, "grad_out", &dya)
    column_vector("running_var", running_var, False, &rva, "grad_out", &dya)
    _check_eps(eps)
    like_array("grad_in", grad_in, 2, True, &dxa, "grad_out", &dya)
    column_vector("grad_gamma", grad_gamma, True, &dga, "grad_out", &dya)
    column_vector("grad_beta", grad_beta, True, &dba, "grad_out", &dya)
    check_outputs_disjoint(
        [span("grad_in", &dxa), span("grad_gamma", &dga), span("grad_beta", &dba)],
        [span("grad_out", &dya), span("x", &xa), span("gamma", &ga),
         span("running_mean", &rma), span("running_var", &rva)],
        (("grad_in", "grad_out"), ("grad_in", "x")))
    if dya.cols == 0:
        return
    if dya.kind == KIND_FLOAT32:
        _backward_eval[float](grad_out, x, gamma, running_mean, running_var, eps,
                              grad_in, grad_gamma, grad_beta)
    else:
        _backward_eval[double](grad_out, x, gamma, running_mean, running_var, eps,
                               grad_in, grad_gamma, grad_beta)


cdef int _backward_eval(const floating[:, ::1] dy, const floating[:, ::1] x,
                        const floating[::1] gamma, const floating[::1] running_mean,
                        const floating[::1] running_var, double eps,
                        floating[:, ::1] dx, floating[::1] dgamma,
                        floating[::1] dbeta) except -1:
    """backward_eval after its checks (n >= 1; the caller checks)."""
    if dy.shape[0] == 0:
        dgamma[:] = 0
        dbeta[:] = 0
        return 0
    with nogil:
        batchnorm_backward_eval(&dy[0, 0], &x[0, 0], &gamma[0], &running_mean[0],
                                &running_var[0], &dx[0, 0], &dgamma[0], &dbeta[0],
                                dy.shape[0], dy.shape[1], eps)
    return 0
