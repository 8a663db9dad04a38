# cython: language_level=3
"""Batch normalization for dense layers: Python entry points for the kernels
in batchnorm.pxd.

Arrays are row-major (batch, features) float32 or float64; per-feature
vectors (gamma, beta, statistics) have length ``features`` and the same
dtype.  Every argument is checked before a kernel runs.
"""

cimport numpy as cnp

cnp.import_array()

__all__ = ["forward_train", "forward_eval", "backward"]


cdef int _float_type(object a, str name) except -1:
    """The numpy type number of a float32/float64 ndarray in native byte order."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if ((typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
        raise TypeError(f"{name} must have dtype float32 or float64 in native "
                        f"byte order, got {a.dtype}")
    return typenum


cdef int _check_layout(object a, str name, bint writeable) except -1:
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{name} must be aligned")
    if writeable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writeable")
    return 0


cdef int _check_dtype(object a, str name, int typenum, object like,
                      str like_name) except -1:
    if _float_type(a, name) != typenum:
        raise TypeError(f"{name} has dtype {a.dtype} but {like_name} has "
                        f"dtype {like.dtype}")
    return 0


cdef int _check_matrix(object a, str name, object like, str like_name,
                       bint writeable) except -1:
    """a is an ndarray with the dtype and (m, n) shape of like."""
    _check_dtype(a, name, cnp.PyArray_TYPE(<cnp.ndarray>like), like, like_name)
    if not cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>like):
        raise ValueError(f"{name} has shape {a.shape} but {like_name} has "
                         f"shape {like.shape}")
    return _check_layout(a, name, writeable)


cdef int _check_vector(object a, str name, object like, str like_name,
                       bint writeable) except -1:
    """a is a 1-D ndarray of length n with the dtype of the (m, n) like."""
    _check_dtype(a, name, cnp.PyArray_TYPE(<cnp.ndarray>like), like, like_name)
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>like, 1)
    if cnp.PyArray_NDIM(arr) != 1 or cnp.PyArray_DIM(arr, 0) != n:
        raise ValueError(f"{name} has shape {a.shape}, expected ({n},) to "
                         f"match the {n} features of {like_name}")
    return _check_layout(a, name, writeable)


cdef int _check_batch(object x, str name) except -1:
    """x is a 2-D float32/float64 C-contiguous ndarray."""
    _float_type(x, name)
    if cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        raise ValueError(f"{name} must be 2-D (batch, features), got shape "
                         f"{x.shape}")
    return _check_layout(x, name, False)


cdef bint _overlap(object a, object b):
    cdef char* a0 = cnp.PyArray_BYTES(<cnp.ndarray>a)
    cdef char* b0 = cnp.PyArray_BYTES(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return na > 0 and nb > 0 and a0 < b0 + nb and b0 < a0 + na


cdef int _check_disjoint(list outputs, list inputs, tuple in_place) except -1:
    """Outputs may not share memory with each other or with inputs, except
    an (output, input) name pair in in_place may be one and the same array:
    the kernels read each such element before writing it."""
    cdef Py_ssize_t i, j
    for i in range(len(outputs)):
        out_name, out = outputs[i]
        for j in range(i + 1, len(outputs)):
            other_name, other = outputs[j]
            if _overlap(out, other):
                raise ValueError(f"{out_name} overlaps {other_name} in memory")
        for in_name, inp in inputs:
            if not _overlap(out, inp):
                continue
            if ((out_name, in_name) in in_place
                    and cnp.PyArray_BYTES(<cnp.ndarray>out)
                    == cnp.PyArray_BYTES(<cnp.ndarray>inp)
                    and cnp.PyArray_SAMESHAPE(<cnp.ndarray>out,
                                              <cnp.ndarray>inp)):
                continue
            raise ValueError(f"{out_name} overlaps {in_name} in memory")
    return 0


cdef int _check_hyper(double momentum, double eps) except -1:
    if not (0.0 <= momentum <= 1.0):
        raise ValueError(f"momentum must satisfy 0 <= momentum <= 1, got "
                         f"{momentum!r}")
    if not (0.0 <= eps < float("inf")):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    return 0


cdef inline void* _data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


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
    _check_vector(gamma, "gamma", x, "x", False)
    _check_vector(beta, "beta", x, "x", False)
    _check_matrix(y, "y", x, "x", True)
    _check_matrix(xhat, "xhat", x, "x", True)
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
    cdef void* prm = NULL if running_mean is None else _data(running_mean)
    cdef void* prv = NULL if running_var is None else _data(running_var)
    cdef void* px = _data(x)
    cdef void* pg = _data(gamma)
    cdef void* pb = _data(beta)
    cdef void* py = _data(y)
    cdef void* pxh = _data(xhat)
    cdef void* pmu = _data(mean)
    cdef void* pis = _data(invstd)
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
    _check_vector(gamma, "gamma", x, "x", False)
    _check_vector(beta, "beta", x, "x", False)
    _check_matrix(y, "y", x, "x", True)
    _check_vector(running_mean, "running_mean", x, "x", False)
    _check_vector(running_var, "running_var", x, "x", False)
    _check_disjoint([("y", y)],
                    [("x", x), ("gamma", gamma), ("beta", beta),
                     ("running_mean", running_mean),
                     ("running_var", running_var)],
                    (("y", "x"),))
    cdef void* px = _data(x)
    cdef void* pg = _data(gamma)
    cdef void* pb = _data(beta)
    cdef void* py = _data(y)
    cdef void* prm = _data(running_mean)
    cdef void* prv = _data(running_var)
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
    _check_matrix(xhat, "xhat", dy, "dy", False)
    _check_vector(gamma, "gamma", dy, "dy", False)
    _check_vector(invstd, "invstd", dy, "dy", False)
    _check_matrix(dx, "dx", dy, "dy", True)
    _check_vector(dgamma, "dgamma", dy, "dy", True)
    _check_vector(dbeta, "dbeta", dy, "dy", True)
    _check_disjoint([("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)],
                    [("dy", dy), ("xhat", xhat), ("gamma", gamma),
                     ("invstd", invstd)],
                    (("dx", "dy"), ("dx", "xhat")))
    cdef void* pdy = _data(dy)
    cdef void* pxh = _data(xhat)
    cdef void* pg = _data(gamma)
    cdef void* pis = _data(invstd)
    cdef void* pdx = _data(dx)
    cdef void* pdg = _data(dgamma)
    cdef void* pdb = _data(dbeta)
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
