# cython: language_level=3
"""Checked data pointers of NumPy arrays, for the ``def`` entries of the kernels.

A fused-type memoryview argument (``const floating[:, ::1] x``) costs about 1 us a call
per entry (choosing the specialisation from the arguments' buffers, then acquiring each
one), most of a small layer's kernel call. These helpers make the same checks in C on
the ndarray itself (element type, number of dimensions, C order, writeable where the
kernel writes), and also the shape the kernel will read, which the memoryviews left to
the caller: a wrong shape is an error here, not a read past the end of an array.
"""
cimport numpy as cnp


cdef inline int float_type(cnp.ndarray a) except -1:
    """a's NumPy type number, NPY_FLOAT or NPY_DOUBLE; a TypeError for any other."""
    cdef int kind = cnp.PyArray_TYPE(a)
    if kind != cnp.NPY_FLOAT and kind != cnp.NPY_DOUBLE:
        raise TypeError(f"expected float32 or float64 arrays, got {a.dtype}")
    return kind


cdef inline int _check_type(cnp.ndarray a, int kind, str name) except -1:
    if cnp.PyArray_TYPE(a) != kind:
        raise TypeError(f"expected {name} of dtype {cnp.PyArray_DescrFromType(kind)}, "
                        f"got {a.dtype}")
    return 0


cdef inline void* _checked_data(cnp.ndarray a, bint writes, str name) except? NULL:
    """The data of a after checking that it is C-contiguous, and writeable when writes."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name}: ndarray is not C-contiguous")
    if writes and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}: buffer source array is read-only")
    return cnp.PyArray_DATA(a)


cdef inline void* array_data(cnp.ndarray a, int kind, Py_ssize_t rows, Py_ssize_t cols,
                             bint writes, str name) except? NULL:
    """The data of a after checking that it is a C-contiguous array of type number kind
    and shape (rows, cols), or (rows,) for cols < 0, writeable when writes."""
    cdef int ndim = 1 if cols < 0 else 2
    _check_type(a, kind, name)
    if (cnp.PyArray_NDIM(a) != ndim or cnp.PyArray_DIM(a, 0) != rows
            or (ndim == 2 and cnp.PyArray_DIM(a, 1) != cols)):
        expected = (rows,) if ndim == 1 else <object>(rows, cols)
        raise ValueError(f"expected {name} of shape {expected}, got {(<object>a).shape}")
    return _checked_data(a, writes, name)


cdef inline void* values_data(cnp.ndarray a, int kind, Py_ssize_t size, bint writes,
                              str name) except? NULL:
    """The data of a after checking that it is a C-contiguous array of type number kind
    and this size (any shape: the elementwise kernels read its values in order),
    writeable when writes."""
    _check_type(a, kind, name)
    if cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"expected {name} of {size} values, got {(<object>a).size}")
    return _checked_data(a, writes, name)


cdef inline Py_ssize_t dim(cnp.ndarray a, int axis, int ndim, str name) except -1:
    """a.shape[axis] after checking that a has ndim dimensions."""
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"expected {name} with {ndim} dimensions, got shape {(<object>a).shape}")
    return cnp.PyArray_DIM(a, axis)


cdef inline void* like_data(cnp.ndarray a, cnp.ndarray like, int kind, bint writes,
                            str name) except? NULL:
    """The data of a after checking that it is a C-contiguous array of type number kind
    and of like's shape, writeable when writes."""
    _check_type(a, kind, name)
    if not cnp.PyArray_SAMESHAPE(a, like):
        raise ValueError(f"expected {name} of shape {(<object>like).shape}, "
                         f"got {(<object>a).shape}")
    return _checked_data(a, writes, name)


cdef inline void* vector_data_or_null(cnp.ndarray a, int kind, Py_ssize_t size,
                                      bint writes, str name) except? NULL:
    """array_data of a (size,) vector, or NULL for None (an optional weight, bias or
    statistics array)."""
    if a is None:
        return NULL
    return array_data(a, kind, size, -1, writes, name)
