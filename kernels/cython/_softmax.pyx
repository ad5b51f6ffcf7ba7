# cython: language_level=3
# distutils: extra_compile_args = -fno-math-errno
"""The row-wise softmax and log-softmax and their backward passes, over (N, C) C-contiguous
arrays, a row a task. Their own module: its sums of exps vectorize under
-fassociative-math, which _activations.pyx is built without (setup.py: its elementwise
loops must round a value alike in the vector loop and its remainder); without it
log-softmax's running sum stayed scalar (1.6x the time over 1024 rows of 64 floats).
"""
cimport numpy as cnp
from _ndarrays cimport array_data, dim, float_type
from cython.parallel cimport prange

from _common cimport (floating, threads_for, f_exp, f_exp_upto88, f_log, row_max, row_sum,
                      row_dot)


cdef inline void _softmax_row(const floating* x, floating* y, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m = row_max(x, c), inv
    for j in range(c):
        y[j] = f_exp_upto88(x[j] - m)   # x - max <= 0: no upper clamp
    inv = 1 / row_sum(y, c)
    for j in range(c):
        y[j] = y[j] * inv


cdef inline void _softmax_backward_row(const floating* g, const floating* y, floating* out,
                                       Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating d = row_dot(g, y, c)
    for j in range(c):
        out[j] = y[j] * (g[j] - d)


cdef inline void _log_softmax_row(const floating* x, floating* y, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m = row_max(x, c), s = 0, log_s
    for j in range(c):
        y[j] = x[j] - m
    for j in range(c):
        s += f_exp_upto88(y[j])         # y = x - max <= 0
    log_s = f_log(s)
    for j in range(c):
        # x - m stored first, log(s) taken off here: in one expression
        # -fassociative-math may make (x - m) - log(s) into x - (m + log(s)), whose
        # m + log(s) rounds log(s) off where |m| is large
        y[j] = y[j] - log_s


cdef inline void _log_softmax_backward_row(const floating* g, const floating* y, floating* out,
                                           Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating total = row_sum(g, c)
    for j in range(c):
        out[j] = g[j] - f_exp(y[j]) * total


# row-wise ops: codes of rows_forward / rows_backward
cdef enum:
    R_SOFTMAX = 0
    R_LOG_SOFTMAX = 1


cdef inline void _row_forward(int op, const floating* x, floating* y,
                              Py_ssize_t c) noexcept nogil:
    if op == R_SOFTMAX:
        _softmax_row(x, y, c)
    else:
        _log_softmax_row(x, y, c)


cdef inline void _row_backward(int op, const floating* g, const floating* y, floating* out,
                               Py_ssize_t c) noexcept nogil:
    if op == R_SOFTMAX:
        _softmax_backward_row(g, y, out, c)
    else:
        _log_softmax_backward_row(g, y, out, c)


cdef void _rows_forward(int op, const floating* x, floating* y, Py_ssize_t n,
                        Py_ssize_t c) noexcept nogil:
    """rows_forward over n rows of c >= 1 values."""
    cdef Py_ssize_t i
    if threads_for(n * c) == 1:                  # no OpenMP region for one thread
        for i in range(n):
            _row_forward(op, x + i * c, y + i * c, c)
        return
    for i in prange(n, schedule="static", num_threads=threads_for(n * c)):
        _row_forward(op, x + i * c, y + i * c, c)


cdef void _rows_backward(int op, const floating* g, const floating* y, floating* out,
                         Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """rows_backward over n rows of c >= 1 values."""
    cdef Py_ssize_t i
    if threads_for(n * c) == 1:                  # no OpenMP region for one thread
        for i in range(n):
            _row_backward(op, g + i * c, y + i * c, out + i * c, c)
        return
    for i in prange(n, schedule="static", num_threads=threads_for(n * c)):
        _row_backward(op, g + i * c, y + i * c, out + i * c, c)


def rows_forward(int op, cnp.ndarray x not None, cnp.ndarray out not None):
    """Softmax (op 0) or log-softmax (op 1) of each row. x, out: (N, C), one float dtype,
    C-contiguous (the checks of _ndarrays.pxd); out may be x."""
    cdef int kind = float_type(x)
    cdef Py_ssize_t n = dim(x, 0, 2, "x"), c = dim(x, 1, 2, "x")
    cdef void* xp = array_data(x, kind, n, c, False, "x")
    cdef void* yp = array_data(out, kind, n, c, True, "out")
    if n == 0 or c == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _rows_forward(op, <const float*>xp, <float*>yp, n, c)
    else:
        with nogil:
            _rows_forward(op, <const double*>xp, <double*>yp, n, c)


def rows_backward(int op, cnp.ndarray grad_out not None, cnp.ndarray y not None,
                  cnp.ndarray out not None):
    """The backward of rows_forward's op; y its output. grad_out, y, out: (N, C), one
    float dtype, C-contiguous."""
    cdef int kind = float_type(y)
    cdef Py_ssize_t n = dim(y, 0, 2, "y"), c = dim(y, 1, 2, "y")
    cdef void* yp = array_data(y, kind, n, c, False, "y")
    cdef void* gp = array_data(grad_out, kind, n, c, False, "grad_out")
    cdef void* op_ = array_data(out, kind, n, c, True, "out")
    if n == 0 or c == 0:
        return
    if kind == cnp.NPY_FLOAT:
        with nogil:
            _rows_backward(op, <const float*>gp, <const float*>yp, <float*>op_, n, c)
    else:
        with nogil:
            _rows_backward(op, <const double*>gp, <const double*>yp, <double*>op_, n, c)
