# Fused optimizer steps on one flat parameter buffer.
#
# An optimizer's compiled form is a kernel table (OptimizerKernels) and a
# record of its named hyper-parameters (one C struct per kind, mirrored by a
# NumPy record dtype of the same fields).  Both are held by an
# OptimizerKernel object, which the optimizer's Python class names
# (fastnn/optimizers.py) and the compiled training loop calls without the
# GIL.  A new optimizer is its C loop, its table and struct in a module of
# its own (optim_nadam.pyx is one), and its Python class: nothing here
# changes.  The update rules follow the documented algorithms of the PyTorch
# optimizers of the same names; fastnn/optimizers.py states them in full.
#
# Layout
#   param, grad   contiguous, length n.  The first n_decay entries are the
#                 weights that weight decay applies to; the rest (biases and
#                 other parameters) are never decayed.
#   state         n_slots(hyper) rows of per-parameter moments, each row
#                 `stride` entries apart (the whole buffer's length: a step
#                 may run on a slice of it).  A kind with no slots never reads
#                 the pointer, which may then be NULL.
#   lr            this step's learning rate (the schedule is applied by the
#                 caller); step the 1-based number of this update.
#
# SGD's momentum buffer is set to the first gradient when step == 1, as in
# PyTorch, whatever the buffer holds; every other slot must start at zero
# (AdaGrad's sum at its initial accumulator value).

from cython cimport floating
from libc.stdint cimport int64_t

ctypedef Py_ssize_t (*OptimizerSlots)(const void* hyper) noexcept nogil
ctypedef void (*OptimizerStep32)(const void* hyper, float* param, const float* grad,
                                 float* state, Py_ssize_t n, Py_ssize_t n_decay,
                                 Py_ssize_t stride, double lr, long step) noexcept nogil
ctypedef void (*OptimizerStep64)(const void* hyper, double* param, const double* grad,
                                 double* state, Py_ssize_t n, Py_ssize_t n_decay,
                                 Py_ssize_t stride, double lr, long step) noexcept nogil

ctypedef struct OptimizerKernels:
    Py_ssize_t hyper_size      # sizeof the kind's hyper-parameter struct
    OptimizerSlots n_slots     # rows of state these hyper-parameters use
    OptimizerStep32 step32
    OptimizerStep64 step64

cdef extern from *:
    """
    #define FASTNN_OPTIMIZER_CAPSULE "fastnn.OptimizerKernels"
    """
    const char* OPTIMIZER_CAPSULE "FASTNN_OPTIMIZER_CAPSULE"


cdef class OptimizerKernel:
    """An optimizer's kernel table and the record dtype of its hyper-parameters."""
    cdef const OptimizerKernels* table
    cdef readonly str name
    cdef readonly object hyper_dtype
    cdef const void* hyper_pointer(self, object record) except NULL


cdef inline void optimizer_step_slice(const OptimizerKernels* kernels, const void* hyper,
                                      floating* param, const floating* grad,
                                      floating* state, Py_ssize_t n, Py_ssize_t n_decay,
                                      double lr, long step, Py_ssize_t start,
                                      Py_ssize_t stop) noexcept nogil:
    """The update of entries [start, stop) of an n-entry buffer, as optimizer_step.

    Slices of one step are independent of each other: a step run slice by
    slice, in any order or at once, gives the same parameters bit for bit.
    """
    if stop <= start:
        return
    cdef Py_ssize_t count = stop - start
    cdef Py_ssize_t decayed = min(max(n_decay - start, 0), count)
    cdef floating* state_at = state + start if state != NULL else NULL
    if floating is float:
        kernels.step32(hyper, param + start, grad + start, state_at, count, decayed, n,
                       lr, step)
    else:
        kernels.step64(hyper, param + start, grad + start, state_at, count, decayed, n,
                       lr, step)


cdef inline void optimizer_step(const OptimizerKernels* kernels, const void* hyper,
                                floating* param, const floating* grad, floating* state,
                                Py_ssize_t n, Py_ssize_t n_decay, double lr,
                                long step) noexcept nogil:
    """One update of param[0:n] from grad[0:n]; see the layout above.

    Requires 0 <= n_decay <= n, step >= 1, a hyper record of the kernel's
    kind and state of its slot count: the callers check these once
    (OptimizerKernel.step on every call, the training plan when it is built).
    """
    optimizer_step_slice(kernels, hyper, param, grad, state, n, n_decay, lr, step, 0, n)
