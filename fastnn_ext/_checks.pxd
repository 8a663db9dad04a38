# Argument checks for the Python-visible kernel wrappers, run before any
# kernel.  Every message names the argument at fault.
#
# The wrappers hand their arrays to typed memoryviews (`floating[:, ::1]`),
# which enforce dtype, dimension count and C-contiguity themselves but raise
# messages that do not say which argument failed.  `float_array` checks the
# same properties first, through the buffer protocol, and records the
# array's address range for the overlap checks; the memoryview conversion
# that follows then cannot fail.

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBuffer_IsContiguous, PyBUF_RECORDS_RO)
from libc.math cimport isfinite
from libc.stdint cimport uintptr_t


cdef enum:
    # Element types float_array accepts (FloatArray.kind).
    KIND_FLOAT32 = 1
    KIND_FLOAT64 = 2
    # Dimensions a FloatArray records (the kernels' arrays have one or two).
    MAX_DIMS = 8


cdef struct FloatArray:
    int kind                # KIND_FLOAT32 or KIND_FLOAT64
    int ndim
    Py_ssize_t rows         # shape[0]; 1 for a 0-d buffer
    Py_ssize_t cols         # shape[1] of a 2-D array, 1 otherwise
    Py_ssize_t shape[MAX_DIMS]
    Py_ssize_t size         # number of elements
    const char* start       # first byte
    Py_ssize_t nbytes       # bytes spanned (contiguous: size * itemsize)


cdef inline bint _native_float_format(const char* fmt, char code):
    """Whether a struct-module format string is `code` ('f' or 'd') in native
    byte order: "f", "@f", "=f", or "<f" / ">f" when that is the machine's
    order."""
    cdef int one = 1
    cdef char native = b'<' if (<char*>&one)[0] == 1 else b'>'
    if fmt == NULL:
        return False
    if fmt[0] == b'@' or fmt[0] == b'=' or fmt[0] == native:
        fmt += 1
    return fmt[0] == code and fmt[1] == 0


cdef inline int float_array(str name, object a, int ndim, bint writeable,
                            FloatArray* info) except -1:
    """Check that `a` is a float32/float64 buffer (a numpy.ndarray, say) in
    native byte order, C-contiguous, aligned, with `ndim` dimensions (any
    number if ndim < 0) and, if `writeable`, not read-only; fill `info`."""
    cdef Py_buffer view
    cdef int kind, i
    try:
        PyObject_GetBuffer(a, &view, PyBUF_RECORDS_RO)
    except (TypeError, ValueError, BufferError):
        raise TypeError(f"{name} must be a float32 or float64 numpy.ndarray, "
                        f"got {type(a).__name__}") from None
    try:
        if view.itemsize == 4 and _native_float_format(view.format, b'f'):
            kind = KIND_FLOAT32
        elif view.itemsize == 8 and _native_float_format(view.format, b'd'):
            kind = KIND_FLOAT64
        else:
            raise TypeError(f"{name} must have dtype float32 or float64 in "
                            f"native byte order, got "
                            f"{getattr(a, 'dtype', view.format.decode())}")
        if ndim >= 0 and view.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got "
                             f"{view.ndim} dimensions")
        if view.ndim > MAX_DIMS:
            raise ValueError(f"{name} has {view.ndim} dimensions, at most "
                             f"{MAX_DIMS} are supported")
        if not PyBuffer_IsContiguous(&view, b'C'):
            raise ValueError(f"{name} must be C-contiguous")
        if (<uintptr_t>view.buf) % view.itemsize != 0:
            raise ValueError(f"{name} must be aligned")
        if writeable and view.readonly:
            raise ValueError(f"{name} is read-only; it must be writeable")
        info.kind = kind
        info.ndim = view.ndim
        info.rows = view.shape[0] if view.ndim >= 1 else 1
        info.cols = view.shape[1] if view.ndim == 2 else 1
        for i in range(view.ndim):
            info.shape[i] = view.shape[i]
        info.size = view.len // view.itemsize
        info.start = <const char*>view.buf
        info.nbytes = view.len
    finally:
        PyBuffer_Release(&view)
    return 0


cdef inline int expect_kind(str name, FloatArray* a, str like_name,
                            FloatArray* like) except -1:
    """a has the element type of like (no silent conversion between them)."""
    if a.kind != like.kind:
        raise TypeError(f"{name} has dtype {_kind_name(a.kind)} but "
                        f"{like_name} has dtype {_kind_name(like.kind)}")
    return 0


cdef inline int expect_same_shape(str name, FloatArray* a, str like_name,
                                  FloatArray* like) except -1:
    """a has like's shape, whatever the number of dimensions."""
    cdef int i
    cdef bint same = a.ndim == like.ndim
    for i in range(a.ndim if same else 0):
        same = same and a.shape[i] == like.shape[i]
    if not same:
        raise ValueError(f"{name} has shape {shape_tuple(a)} but {like_name} has "
                         f"shape {shape_tuple(like)}")
    return 0


cdef inline tuple shape_tuple(FloatArray* a):
    return tuple([a.shape[i] for i in range(a.ndim)])


cdef inline str _kind_name(int kind):
    return "float32" if kind == KIND_FLOAT32 else "float64"


cdef inline int expect_shape(str name, Py_ssize_t rows, Py_ssize_t cols,
                             Py_ssize_t want_rows, Py_ssize_t want_cols) except -1:
    if rows != want_rows or cols != want_cols:
        raise ValueError(f"{name} has shape ({rows}, {cols}), "
                         f"expected ({want_rows}, {want_cols})")
    return 0


cdef inline int expect_length(str name, Py_ssize_t length, Py_ssize_t want) except -1:
    if length != want:
        raise ValueError(f"{name} has length {length}, expected {want}")
    return 0


cdef inline int check_no_overlap(str name_out, const void* out_ptr,
                                 Py_ssize_t out_bytes, str name_in,
                                 const void* in_ptr, Py_ssize_t in_bytes,
                                 bint same_ok) except -1:
    """Refuse an output whose bytes [out_ptr, out_ptr + out_bytes) share any
    byte with an input's, unless same_ok and it is that very array (same
    start, same size): a kernel documented for exact in-place use reads each
    element before writing it, while a shifted view would read elements it
    has already overwritten.  Both ranges belong to contiguous arrays."""
    cdef const char* a = <const char*>out_ptr
    cdef const char* b = <const char*>in_ptr
    if out_bytes <= 0 or in_bytes <= 0 or a >= b + in_bytes or b >= a + out_bytes:
        return 0
    if same_ok and a == b and out_bytes == in_bytes:
        return 0
    raise ValueError(f"{name_out} overlaps {name_in} in memory")


cdef inline int check_disjoint(str name_out, FloatArray* out, str name_in,
                               FloatArray* inp, bint same_ok) except -1:
    """check_no_overlap for two arrays checked by float_array."""
    return check_no_overlap(name_out, out.start, out.nbytes, name_in,
                            inp.start, inp.nbytes, same_ok)


cdef inline int like_array(str name, object a, int ndim, bint writeable, FloatArray* info,
                           str like_name, FloatArray* like) except -1:
    """a is an array of like's dtype and shape (`ndim` dimensions, any number
    if ndim < 0)."""
    float_array(name, a, ndim, writeable, info)
    expect_kind(name, info, like_name, like)
    return expect_same_shape(name, info, like_name, like)


cdef inline int column_vector(str name, object a, bint writeable, FloatArray* info,
                              str like_name, FloatArray* like) except -1:
    """a is a 1-D array of like's dtype holding one value per column of the
    2-D like (a bias, a slope, a feature's statistic)."""
    float_array(name, a, -1, writeable, info)
    expect_kind(name, info, like_name, like)
    if info.ndim != 1 or info.rows != like.cols:
        raise ValueError(f"{name} has shape {shape_tuple(info)}, expected ({like.cols},): "
                         f"a 1-D array, one value per column of {like_name}")
    return 0


cdef inline tuple span(str name, FloatArray* a):
    """An array's name and byte range, for check_outputs_disjoint."""
    return (name, <Py_ssize_t>a.start, a.nbytes)


cdef inline int check_outputs_disjoint(list outputs, list inputs, tuple in_place=()) except -1:
    """Outputs may not share memory with each other or with inputs, except
    that an (output, input) name pair listed in `in_place` may be one and the
    same array: the kernels read each such element before writing it.
    Entries are `span`s."""
    cdef Py_ssize_t i, j
    for i in range(len(outputs)):
        out_name, out_start, out_bytes = outputs[i]
        for j in range(i + 1, len(outputs)):
            other_name, other_start, other_bytes = outputs[j]
            check_no_overlap(out_name, <const void*><Py_ssize_t>out_start, out_bytes,
                             other_name, <const void*><Py_ssize_t>other_start,
                             other_bytes, False)
        for in_name, in_start, in_bytes in inputs:
            check_no_overlap(out_name, <const void*><Py_ssize_t>out_start, out_bytes,
                             in_name, <const void*><Py_ssize_t>in_start, in_bytes,
                             (out_name, in_name) in in_place)
    return 0


cdef inline int check_finite(str name, double value) except -1:
    if not isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return 0


cdef inline int check_range(str name, double value, double low, double high,
                            bint low_open, bint high_open) except -1:
    """value in the interval from low to high, each end open or closed; NaN
    is refused, and an infinite end admits only finite values when open."""
    cdef bint ok = ((value > low if low_open else value >= low)
                    and (value < high if high_open else value <= high))
    if not ok:
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low!r}, "
                         f"{high!r}{')' if high_open else ']'}, got {value!r}")
    return 0


cdef inline object bit_generator_of(str name, object rng):
    """The BitGenerator behind a numpy Generator (a bare BitGenerator is
    accepted): the object whose C state a kernel may draw from, holding its
    lock."""
    bit_generator = getattr(rng, "bit_generator", rng)
    if not (hasattr(bit_generator, "capsule") and hasattr(bit_generator, "lock")):
        raise TypeError(f"{name} must be a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    return bit_generator


# -------------------------------------------------------------------------
# Scalar arguments taken as plain objects.  A parameter typed `double` or
# `Py_ssize_t` converts on entry, and its errors ("must be real number, not
# str"; an OverflowError for an int beyond the C type) do not name the
# argument.  These convert by name; ints, floats and NumPy scalars pass, a
# bool is not a number (it is a flag).

from cpython.pyport cimport PY_SSIZE_T_MAX

cdef inline double real_arg(str name, object value) except? -1:
    """value as a C double: an int, float or NumPy real scalar, not a bool.
    An int too large for a double is a ValueError."""
    if type(value) is float:
        return <double>value
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got {value!r}") from None


cdef inline Py_ssize_t index_arg(str name, object value, Py_ssize_t low,
                                 Py_ssize_t high) except? -1:
    """value as a C index in [low, high]: an int or NumPy integer, not a bool."""
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if low <= value <= high:
        return value
    if value < low and high == PY_SSIZE_T_MAX:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


cdef inline bint flag_arg(str name, object value) except -1:
    """value as a flag: a bool, a NumPy bool, or the integer 0 or 1."""
    if value is True or value is False:
        return value
    import numbers
    if isinstance(value, numbers.Integral) and (value == 0 or value == 1):
        return value == 1
    if getattr(value, "dtype", None) == bool and getattr(value, "shape", None) == ():
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
