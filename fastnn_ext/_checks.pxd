# Shape checks for the Python-visible kernel wrappers.  Dtype and contiguity
# are enforced by the typed memoryviews themselves (`floating[:, ::1]` rejects
# a float64 array where float32 is bound, and any non-C-contiguous array),
# so these only compare sizes, before any kernel runs.


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
