# cython: language_level=3
"""Batch normalization for dense layers: Python entry points for the kernels
in batchnorm.pxd.

Arrays are row-major (batch, features) float32 or float64; per-feature
vectors (gamma, beta, statistics) have length ``features`` and the same
dtype.  Every argument is checked before a kernel runs.
"""

cimport numpy as cnp

from fastnn_ext._ndarray_checks cimport (check_dtype, check_layout, check_like,
                                         check_overlap, data, float_type)

cnp.import_array()

__all__ = ["forward_train", "forward_eval", "backward"]


cdef int _check_vector(object a, str name, object like, str like_name,
                       bint writeable) except -1:
    """a is a 1-D ndarray of length n with the dtype of the (m, n) like."""
    check_dtype(a, name, like, like_name)
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>like, 1)
    if cnp.PyArray_NDIM(arr) != 1 or cnp.PyArray_DIM(arr, 0) != n:
        raise ValueError(f"{name} has shape {a.shape}, expected ({n},) to "
                         f"match the {n} features of {like_name}")
    return check_layout(a, name, writeable)


cdef int _check_batch(object x, str name) except -1:
    """x is a 2-D float32/float64 C-contiguous ndarray."""
    float_type(x, name)
    if cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        raise ValueError(f"{name} must be 2-D (batch, features), got shape "
                         f"{x.shape}")
    return check_layout(x, name, False)


cdef int _check_affine(object x, object gamma, object beta, object y) except -1:
    """The operands of y = gamma * (normalized x) + beta that both forward
    passes share, checked against the batch x."""
    _check_vector(gamma, "gamma", x, "x", False)
    _check_vector(beta, "beta", x, "x", False)
    return check_like(y, "y", x, "x", True)


cdef int _check_disjoint(list outputs, list inputs, tuple in_place) except -1:
    """Outputs may not share memory with each other or with inputs, except
    an (output, input) name pair in in_place may be one and the same array:
    the kernels read each such element before writing it."""
    cdef Py_ssize_t i, j
    for i in range(len(outputs)):
        out_name, out = outputs[i]
        for j in range(i + 1, len(outputs)):
            other_name, other = outputs[j]
            check_overlap(out, out_name, other, other_name, False)
        for in_name, inp in inputs:
            check_overlap(out, out_name, inp, in_name,
                          (out_name, in_name) in in_place)
    return 0


cdef int _check_hyper(double momentum, double eps) except -1:
    if not (0.0 <= momentum <= 1.0):
        raise ValueError(f"momentum must satisfy 0 <= momentum <= 1, got "
                         f"{momentum!r}")
    if not (0.0 <= eps < float("inf")):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    return 0


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
        Added to the variance inside the square root, finite and >= 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or dtypes differ.
    ValueError
        If m < 2, shapes do not match, an array is not C-contiguous, aligned
        and (for outputs) writeable, outputs overlap other arrays, only one
        running statistic is given, or momentum or eps is out of range.
    """
    _check_batch(x, "x")
    cdef Py_ssize_t m = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    if m < 2:
        raise ValueError(f"training-mode batch normalization needs a batch of "
                         f"at least 2 rows, got {m}")
    _check_hyper(momentum, eps)
    _check_affine(x, gamma, beta, y)
    check_like(xhat, "xhat", x, "x", True)
    _check_vector(mean, "mean", x, "x", True)
    _check_vector(invstd, "invstd", x, "x", True)
    outputs = [("y", y), ("xhat", xhat), ("mean", mean), ("invstd", invstd)]
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays "
                         "or both be None")
    if running_mean is not None:
        _check_vector(running_mean, "running_mean", x, "x", True)
        _check_vector(running_var, "running_var", x, "x", True)
        outputs += [("running_mean", running_mean), ("running_var", running_var)]
    _check_disjoint(outputs, [("x", x), ("gamma", gamma), ("beta", beta)],
                    (("y", "x"), ("xhat", "x")))
    cdef void* prm = NULL if running_mean is None else data(running_mean)
    cdef void* prv = NULL if running_var is None else data(running_var)
    cdef void* px = data(x)
    cdef void* pg = data(gamma)
    cdef void* pb = data(beta)
    cdef void* py = data(y)
    cdef void* pxh = data(xhat)
    cdef void* pmu = data(mean)
    cdef void* pis = data(invstd)
    cdef bint single = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    with nogil:
        if single:
            batchnorm_forward_train(<const float*>px, <const float*>pg,
                                    <const float*>pb, <float*>py, <float*>pxh,
                                    <float*>pmu, <float*>pis, <float*>prm,
                                    <float*>prv, m, n, momentum, eps)
        else:
            batchnorm_forward_train(<const double*>px, <const double*>pg,
                                    <const double*>pb, <double*>py,
                                    <double*>pxh, <double*>pmu, <double*>pis,
                                    <double*>prm, <double*>prv, m, n,
                                    momentum, eps)


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
        Added to the variance inside the square root, finite and >= 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or dtypes differ.
    ValueError
        If shapes do not match, an array is not C-contiguous, aligned and
        (for y) writeable, y overlaps another array, or eps is out of range.
    """
    _check_batch(x, "x")
    cdef Py_ssize_t m = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    _check_hyper(0.0, eps)
    _check_affine(x, gamma, beta, y)
    _check_vector(running_mean, "running_mean", x, "x", False)
    _check_vector(running_var, "running_var", x, "x", False)
    _check_disjoint([("y", y)],
                    [("x", x), ("gamma", gamma), ("beta", beta),
                     ("running_mean", running_mean),
                     ("running_var", running_var)],
                    (("y", "x"),))
    cdef void* px = data(x)
    cdef void* pg = data(gamma)
    cdef void* pb = data(beta)
    cdef void* py = data(y)
    cdef void* prm = data(running_mean)
    cdef void* prv = data(running_var)
    cdef bint single = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    with nogil:
        if single:
            batchnorm_forward_eval(<const float*>px, <const float*>pg,
                                   <const float*>pb, <float*>py,
                                   <const float*>prm, <const float*>prv,
                                   m, n, eps)
        else:
            batchnorm_forward_eval(<const double*>px, <const double*>pg,
                                   <const double*>pb, <double*>py,
                                   <const double*>prm, <const double*>prv,
                                   m, n, eps)


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
    _check_batch(dy, "dy")
    cdef Py_ssize_t m = cnp.PyArray_DIM(<cnp.ndarray>dy, 0)
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>dy, 1)
    check_like(xhat, "xhat", dy, "dy", False)
    _check_vector(gamma, "gamma", dy, "dy", False)
    _check_vector(invstd, "invstd", dy, "dy", False)
    check_like(dx, "dx", dy, "dy", True)
    _check_vector(dgamma, "dgamma", dy, "dy", True)
    _check_vector(dbeta, "dbeta", dy, "dy", True)
    _check_disjoint([("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)],
                    [("dy", dy), ("xhat", xhat), ("gamma", gamma),
                     ("invstd", invstd)],
                    (("dx", "dy"), ("dx", "xhat")))
    cdef void* pdy = data(dy)
    cdef void* pxh = data(xhat)
    cdef void* pg = data(gamma)
    cdef void* pis = data(invstd)
    cdef void* pdx = data(dx)
    cdef void* pdg = data(dgamma)
    cdef void* pdb = data(dbeta)
    cdef bint single = cnp.PyArray_TYPE(<cnp.ndarray>dy) == cnp.NPY_FLOAT32
    with nogil:
        if single:
            batchnorm_backward(<const float*>pdy, <const float*>pxh,
                               <const float*>pg, <const float*>pis,
                               <float*>pdx, <float*>pdg, <float*>pdb, m, n)
        else:
            batchnorm_backward(<const double*>pdy, <const double*>pxh,
                               <const double*>pg, <const double*>pis,
                               <double*>pdx, <double*>pdg, <double*>pdb, m, n)
