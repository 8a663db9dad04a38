# cython: language_level=3
"""Argument checks for the wrappers that take raw ndarrays (dropout,
batchnorm) rather than typed memoryviews, so dtype, byte order, layout and
aliasing must be checked by hand before a kernel gets the data pointers.

The importing module must call ``cnp.import_array()``.
"""

cimport numpy as cnp


cdef inline int float_type(object a, str name) except -1:
    """The numpy type number of a float32/float64 ndarray in native byte order."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if ((typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64)
            or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
        raise TypeError(f"{name} must have dtype float32 or float64 in native "
                        f"byte order, got {a.dtype}")
    return typenum


cdef inline int check_layout(object a, str name, bint writeable) except -1:
    """a (an ndarray) is C-contiguous, aligned and, if asked, writeable."""
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{name} must be aligned")
    if writeable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writeable")
    return 0


cdef inline int check_dtype(object a, str name, object like,
                            str like_name) except -1:
    """a is a float32/float64 ndarray of the dtype of the ndarray like."""
    if float_type(a, name) != cnp.PyArray_TYPE(<cnp.ndarray>like):
        raise TypeError(f"{name} has dtype {a.dtype} but {like_name} has "
                        f"dtype {like.dtype}")
    return 0


cdef inline int check_like(object a, str name, object like, str like_name,
                           bint writeable) except -1:
    """a is an ndarray with the dtype and shape of like, and a usable layout."""
    check_dtype(a, name, like, like_name)
    if not cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>like):
        raise ValueError(f"{name} has shape {a.shape} but {like_name} has "
                         f"shape {like.shape}")
    return check_layout(a, name, writeable)


cdef inline bint overlaps(object a, object b):
    """Whether two contiguous ndarrays share any byte."""
    cdef char* a0 = cnp.PyArray_BYTES(<cnp.ndarray>a)
    cdef char* b0 = cnp.PyArray_BYTES(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return na > 0 and nb > 0 and a0 < b0 + nb and b0 < a0 + na


cdef inline int check_overlap(object out, str out_name, object other,
                              str other_name, bint same_ok) except -1:
    """Reject an output sharing memory with another array, unless same_ok and
    it is that very array: the kernel then reads each element before writing
    it there.  Callers have already matched dtype and shape, so the same start
    and size mean the same elements."""
    if not overlaps(out, other):
        return 0
    if (same_ok
            and cnp.PyArray_BYTES(<cnp.ndarray>out)
            == cnp.PyArray_BYTES(<cnp.ndarray>other)
            and cnp.PyArray_NBYTES(<cnp.ndarray>out)
            == cnp.PyArray_NBYTES(<cnp.ndarray>other)):
        return 0
    raise ValueError(f"{out_name} overlaps {other_name} in memory")


cdef inline void* data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)
