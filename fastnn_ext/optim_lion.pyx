"""The Lion optimizer's compiled step (``LION``, an ``OptimizerKernel``).

Its C loop is ``src/lion_kernel.h``; its Python class is
``fastnn.optimizers.Lion``.  One slot of state: the momentum m.
"""

import numpy as np

from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating

from fastnn_ext.optim cimport OptimizerKernels, OptimizerKernel, OPTIMIZER_CAPSULE

cdef extern from "lion_kernel.h" nogil:
    void fastnn_lion_f32(float* p, const float* g, float* m, Py_ssize_t n, float lr,
                         float wd, float b1, float r1, float b2, float r2)
    void fastnn_lion_f64(double* p, const double* g, double* m, Py_ssize_t n, double lr,
                         double wd, double b1, double r1, double b2, double r2)

ctypedef struct LionHyper:
    double beta1
    double beta2
    double weight_decay


cdef Py_ssize_t lion_slots(const void* hyper) noexcept nogil:
    return 1


cdef inline void lion_run(const LionHyper* h, floating* p, const floating* g, floating* m,
                          Py_ssize_t n, double lr, double wd) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_lion_f32(p, g, m, n, <float> lr, <float> wd, <float> h.beta1,
                        <float> (1.0 - h.beta1), <float> h.beta2, <float> (1.0 - h.beta2))
    else:
        fastnn_lion_f64(p, g, m, n, lr, wd, h.beta1, 1.0 - h.beta1, h.beta2, 1.0 - h.beta2)


cdef void lion_step(const void* hyper, floating* param, const floating* grad,
                    floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                    double lr, long step) noexcept nogil:
    cdef const LionHyper* h = <const LionHyper*> hyper
    lion_run(h, param, grad, state, n_decay, lr, h.weight_decay)
    lion_run(h, param + n_decay, grad + n_decay, state + n_decay, n - n_decay, lr, 0.0)


cdef OptimizerKernels LION_KERNELS = OptimizerKernels(
    sizeof(LionHyper), lion_slots, lion_step[float], lion_step[double])

LION = OptimizerKernel(
    "Lion", PyCapsule_New(&LION_KERNELS, OPTIMIZER_CAPSULE, NULL),
    np.dtype([("beta1", "f8"), ("beta2", "f8"), ("weight_decay", "f8")]))
