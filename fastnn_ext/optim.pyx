"""The built-in optimizers' compiled steps, and the checked Python entry to any optimizer kernel.

``SGD``, ``ADAGRAD``, ``RMSPROP``, ``ADADELTA`` and ``ADAM`` are
``OptimizerKernel`` objects (AdamW is ``ADAM`` with ``decoupled = 1``); each
one's ``hyper_dtype`` names its hyper-parameters, and ``kernel.step(...)``
runs one checked update from Python.  optim.pxd documents the layout.
"""

import numpy as np

from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer, PyCapsule_IsValid
from cpython.pyport cimport PY_SSIZE_T_MIN, PY_SSIZE_T_MAX
from libc.limits cimport LONG_MAX
from libc.math cimport pow, sqrt

from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, expect_kind,
                                 expect_shape, expect_length, check_disjoint, check_finite,
                                 real_arg, index_arg)

cimport numpy as cnp

cnp.import_array()

cdef extern from "optim_kernels.h" nogil:
    void fastnn_sgd_f32(float* p, const float* g, Py_ssize_t n, float lr, float wd)
    void fastnn_sgd_f64(double* p, const double* g, Py_ssize_t n, double lr, double wd)
    void fastnn_sgd_momentum_f32(float* p, const float* g, float* buf, Py_ssize_t n,
                                 float lr, float wd, float mu, float keep,
                                 int nesterov, int first)
    void fastnn_sgd_momentum_f64(double* p, const double* g, double* buf, Py_ssize_t n,
                                 double lr, double wd, double mu, double keep,
                                 int nesterov, int first)
    void fastnn_adagrad_f32(float* p, const float* g, float* sum, Py_ssize_t n,
                            float clr, float wd, float eps)
    void fastnn_adagrad_f64(double* p, const double* g, double* sum, Py_ssize_t n,
                            double clr, double wd, double eps)
    void fastnn_rmsprop_f32(float* p, const float* g, float* sq, float* avg, float* buf,
                            Py_ssize_t n, float lr, float wd, float alpha, float rest,
                            float eps, float mu)
    void fastnn_rmsprop_f64(double* p, const double* g, double* sq, double* avg,
                            double* buf, Py_ssize_t n, double lr, double wd,
                            double alpha, double rest, double eps, double mu)
    void fastnn_adadelta_f32(float* p, const float* g, float* sq, float* acc,
                             Py_ssize_t n, float lr, float wd, float rho, float rest,
                             float eps)
    void fastnn_adadelta_f64(double* p, const double* g, double* sq, double* acc,
                             Py_ssize_t n, double lr, double wd, double rho,
                             double rest, double eps)
    void fastnn_adam_f32(float* p, const float* g, float* m, float* v, float* vmax,
                         Py_ssize_t n, float step_size, float inv_bc2_sqrt, float eps,
                         float b1, float r1, float b2, float r2, float wd,
                         float shrink)
    void fastnn_adam_f64(double* p, const double* g, double* m, double* v, double* vmax,
                         Py_ssize_t n, double step_size, double inv_bc2_sqrt,
                         double eps, double b1, double r1, double b2, double r2,
                         double wd, double shrink)




# Each *_run applies a C loop to one run of parameters with one weight-decay
# coefficient; each *_step runs it over the decayed weights, then over the rest.

# -- SGD (momentum, dampening, Nesterov) ------------------------------------------

ctypedef struct SGDHyper:
    double momentum
    double dampening
    double weight_decay
    int64_t nesterov

SGD_HYPER = np.dtype([("momentum", "f8"), ("dampening", "f8"), ("weight_decay", "f8"),
                      ("nesterov", "i8")])


cdef Py_ssize_t sgd_slots(const void* hyper) noexcept nogil:
    return 1 if (<const SGDHyper*> hyper).momentum != 0 else 0


cdef inline void sgd_run(const SGDHyper* h, floating* p, const floating* g, floating* buf,
                         Py_ssize_t n, double lr, double wd, long step) noexcept nogil:
    if n <= 0:
        return
    if buf == NULL:
        if floating is float:
            fastnn_sgd_f32(p, g, n, <float> lr, <float> wd)
        else:
            fastnn_sgd_f64(p, g, n, lr, wd)
        return
    cdef int nesterov = h.nesterov != 0
    cdef int first = step <= 1
    if floating is float:
        fastnn_sgd_momentum_f32(p, g, buf, n, <float> lr, <float> wd, <float> h.momentum,
                                <float> (1.0 - h.dampening), nesterov, first)
    else:
        fastnn_sgd_momentum_f64(p, g, buf, n, lr, wd, h.momentum, 1.0 - h.dampening,
                                nesterov, first)


cdef void sgd_step(const void* hyper, floating* param, const floating* grad,
                   floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                   double lr, long step) noexcept nogil:
    cdef const SGDHyper* h = <const SGDHyper*> hyper
    cdef floating* buf = state if h.momentum != 0 else NULL
    sgd_run(h, param, grad, buf, n_decay, lr, h.weight_decay, step)
    sgd_run(h, param + n_decay, grad + n_decay, buf + n_decay if buf != NULL else NULL,
            n - n_decay, lr, 0.0, step)


# -- AdaGrad ------------------------------------------------------------------------

ctypedef struct AdaGradHyper:
    double lr_decay
    double weight_decay
    double eps

ADAGRAD_HYPER = np.dtype([("lr_decay", "f8"), ("weight_decay", "f8"), ("eps", "f8")])


cdef Py_ssize_t one_slot(const void* hyper) noexcept nogil:
    return 1


cdef inline void adagrad_run(floating* p, const floating* g, floating* s, Py_ssize_t n,
                             double clr, double wd, double eps) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_adagrad_f32(p, g, s, n, <float> clr, <float> wd, <float> eps)
    else:
        fastnn_adagrad_f64(p, g, s, n, clr, wd, eps)


cdef void adagrad_step(const void* hyper, floating* param, const floating* grad,
                       floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                       double lr, long step) noexcept nogil:
    cdef const AdaGradHyper* h = <const AdaGradHyper*> hyper
    cdef double clr = lr / (1.0 + (step - 1) * h.lr_decay)
    adagrad_run(param, grad, state, n_decay, clr, h.weight_decay, h.eps)
    adagrad_run(param + n_decay, grad + n_decay, state + n_decay, n - n_decay, clr, 0.0,
                h.eps)


# -- RMSProp (centered, momentum) ------------------------------------------------------

ctypedef struct RMSPropHyper:
    double alpha
    double eps
    double weight_decay
    double momentum
    int64_t centered

RMSPROP_HYPER = np.dtype([("alpha", "f8"), ("eps", "f8"), ("weight_decay", "f8"),
                          ("momentum", "f8"), ("centered", "i8")])


cdef Py_ssize_t rmsprop_slots(const void* hyper) noexcept nogil:
    cdef const RMSPropHyper* h = <const RMSPropHyper*> hyper
    return 1 + (1 if h.centered != 0 else 0) + (1 if h.momentum != 0 else 0)


cdef inline void rmsprop_run(const RMSPropHyper* h, floating* p, const floating* g,
                             floating* sq, floating* avg, floating* buf, Py_ssize_t n,
                             double lr, double wd) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_rmsprop_f32(p, g, sq, avg, buf, n, <float> lr, <float> wd, <float> h.alpha,
                           <float> (1.0 - h.alpha), <float> h.eps, <float> h.momentum)
    else:
        fastnn_rmsprop_f64(p, g, sq, avg, buf, n, lr, wd, h.alpha, 1.0 - h.alpha, h.eps,
                           h.momentum)


cdef void rmsprop_step(const void* hyper, floating* param, const floating* grad,
                       floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                       double lr, long step) noexcept nogil:
    cdef const RMSPropHyper* h = <const RMSPropHyper*> hyper
    cdef floating* sq = state
    cdef floating* avg = NULL
    cdef floating* buf = NULL
    cdef floating* next_slot = state + stride
    if h.centered != 0:
        avg = next_slot
        next_slot += stride
    if h.momentum != 0:
        buf = next_slot
    rmsprop_run(h, param, grad, sq, avg, buf, n_decay, lr, h.weight_decay)
    rmsprop_run(h, param + n_decay, grad + n_decay, sq + n_decay,
                avg + n_decay if avg != NULL else NULL,
                buf + n_decay if buf != NULL else NULL, n - n_decay, lr, 0.0)


# -- AdaDelta -----------------------------------------------------------------------------

ctypedef struct AdaDeltaHyper:
    double rho
    double eps
    double weight_decay

ADADELTA_HYPER = np.dtype([("rho", "f8"), ("eps", "f8"), ("weight_decay", "f8")])


cdef Py_ssize_t two_slots(const void* hyper) noexcept nogil:
    return 2


cdef inline void adadelta_run(const AdaDeltaHyper* h, floating* p, const floating* g,
                              floating* sq, floating* acc, Py_ssize_t n, double lr,
                              double wd) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_adadelta_f32(p, g, sq, acc, n, <float> lr, <float> wd, <float> h.rho,
                            <float> (1.0 - h.rho), <float> h.eps)
    else:
        fastnn_adadelta_f64(p, g, sq, acc, n, lr, wd, h.rho, 1.0 - h.rho, h.eps)


cdef void adadelta_step(const void* hyper, floating* param, const floating* grad,
                        floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                        double lr, long step) noexcept nogil:
    cdef const AdaDeltaHyper* h = <const AdaDeltaHyper*> hyper
    adadelta_run(h, param, grad, state, state + stride, n_decay, lr, h.weight_decay)
    adadelta_run(h, param + n_decay, grad + n_decay, state + n_decay,
                 state + stride + n_decay, n - n_decay, lr, 0.0)


# -- Adam, AMSGrad and AdamW (decoupled decay: θ ← (1 − γλ)·θ in the same pass) --------

ctypedef struct AdamHyper:
    double beta1
    double beta2
    double eps
    double weight_decay
    int64_t amsgrad
    int64_t decoupled

ADAM_HYPER = np.dtype([("beta1", "f8"), ("beta2", "f8"), ("eps", "f8"),
                       ("weight_decay", "f8"), ("amsgrad", "i8"), ("decoupled", "i8")])


cdef Py_ssize_t adam_slots(const void* hyper) noexcept nogil:
    return 2 + (1 if (<const AdamHyper*> hyper).amsgrad != 0 else 0)


cdef inline void adam_run(const AdamHyper* h, floating* p, const floating* g, floating* m,
                          floating* v, floating* vmax, Py_ssize_t n, double step_size,
                          double inv_bc2_sqrt, double wd, double shrink) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_adam_f32(p, g, m, v, vmax, n, <float> step_size, <float> inv_bc2_sqrt,
                        <float> h.eps, <float> h.beta1, <float> (1.0 - h.beta1),
                        <float> h.beta2, <float> (1.0 - h.beta2), <float> wd, <float> shrink)
    else:
        fastnn_adam_f64(p, g, m, v, vmax, n, step_size, inv_bc2_sqrt, h.eps, h.beta1,
                        1.0 - h.beta1, h.beta2, 1.0 - h.beta2, wd, shrink)


cdef void adam_step(const void* hyper, floating* param, const floating* grad,
                    floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                    double lr, long step) noexcept nogil:
    cdef const AdamHyper* h = <const AdamHyper*> hyper
    cdef double step_size = lr / (1.0 - pow(h.beta1, <double> step))
    cdef double inv_bc2_sqrt = 1.0 / sqrt(1.0 - pow(h.beta2, <double> step))
    cdef double wd = 0.0
    cdef double shrink = 1.0
    if h.decoupled != 0:
        shrink = 1.0 - lr * h.weight_decay
    else:
        wd = h.weight_decay
    cdef floating* vmax = state + 2 * stride if h.amsgrad != 0 else NULL
    adam_run(h, param, grad, state, state + stride, vmax, n_decay, step_size, inv_bc2_sqrt,
             wd, shrink)
    adam_run(h, param + n_decay, grad + n_decay, state + n_decay, state + stride + n_decay,
             vmax + n_decay if vmax != NULL else NULL, n - n_decay, step_size, inv_bc2_sqrt,
             0.0, 1.0)


cdef OptimizerKernels SGD_KERNELS = OptimizerKernels(
    sizeof(SGDHyper), sgd_slots, sgd_step[float], sgd_step[double])
cdef OptimizerKernels ADAGRAD_KERNELS = OptimizerKernels(
    sizeof(AdaGradHyper), one_slot, adagrad_step[float], adagrad_step[double])
cdef OptimizerKernels RMSPROP_KERNELS = OptimizerKernels(
    sizeof(RMSPropHyper), rmsprop_slots, rmsprop_step[float], rmsprop_step[double])
cdef OptimizerKernels ADADELTA_KERNELS = OptimizerKernels(
    sizeof(AdaDeltaHyper), two_slots, adadelta_step[float], adadelta_step[double])
cdef OptimizerKernels ADAM_KERNELS = OptimizerKernels(
    sizeof(AdamHyper), adam_slots, adam_step[float], adam_step[double])


# -- the checked Python entry ----------------------------------------------------------

cdef class OptimizerKernel:
    """An optimizer's compiled step: its kernel table and hyper-parameter record dtype.

    Parameters
    ----------
    name : str
        The optimizer's name, for messages.
    kernels : capsule
        Its ``OptimizerKernels`` table (capsule name ``fastnn.OptimizerKernels``).
    hyper_dtype : numpy record dtype
        The fields of its hyper-parameter struct, in order: ``f8`` for real
        numbers, ``i8`` for integers (flags).
    """

    def __init__(self, str name, kernels, hyper_dtype):
        if not PyCapsule_IsValid(kernels, OPTIMIZER_CAPSULE):
            raise TypeError("kernels must be an optimizer kernel capsule")
        table = <const OptimizerKernels*> PyCapsule_GetPointer(kernels, OPTIMIZER_CAPSULE)
        hyper_dtype = np.dtype(hyper_dtype)
        if hyper_dtype.itemsize != table.hyper_size:
            raise ValueError(f"{name}: hyper_dtype has {hyper_dtype.itemsize} bytes, the "
                             f"kernel's struct {table.hyper_size}")
        # Set together, after every check, so that a table never pairs with
        # another kind's record dtype.
        self.table = table
        self.name = name
        self.hyper_dtype = hyper_dtype

    def hyper(self, **values):
        """The hyper-parameter record from keyword values, one per field, checked.

        Parameters
        ----------
        **values
            One value per field of ``hyper_dtype``: a finite real number for
            an ``f8`` field, an integer (a bool for a flag) for an ``i8`` one.

        Returns
        -------
        numpy.ndarray
            A 0-d record of ``hyper_dtype``, for :meth:`step` and
            :meth:`n_slots`.

        Raises
        ------
        TypeError
            If a value is not a number of its field's kind.
        ValueError
            If the names are not exactly the fields, or a value is not finite
            or out of the field's range.
        """
        names = set(self.hyper_dtype.names)
        if set(values) != names:
            raise ValueError(f"{self.name} hyper-parameters must be exactly "
                             f"{sorted(names)}, got {sorted(values)}")
        record = np.zeros((), dtype=self.hyper_dtype)
        for field in self.hyper_dtype.names:
            value = values[field]
            if self.hyper_dtype[field].kind == "f":
                number = real_arg(field, value)
                check_finite(field, number)
                record[field] = number
            elif value is True or value is False:
                record[field] = int(value)  # a flag
            else:
                record[field] = index_arg(field, value, PY_SSIZE_T_MIN, PY_SSIZE_T_MAX)
        return record

    cdef const void* hyper_pointer(self, object record) except NULL:
        if (not isinstance(record, np.ndarray) or record.dtype != self.hyper_dtype
                or record.shape != () or not record.flags.c_contiguous):
            raise TypeError(f"hyper must be a {self.name} hyper-parameter record "
                            f"(from {self.name}.hyper(...))")
        return cnp.PyArray_DATA(<cnp.ndarray> record)

    def n_slots(self, hyper):
        """Rows of optimizer state these hyper-parameters use.

        Parameters
        ----------
        hyper : record from :meth:`hyper`

        Returns
        -------
        int

        Raises
        ------
        TypeError
            If hyper is not a record of this optimizer.
        """
        return self.table.n_slots(self.hyper_pointer(hyper))

    def step(self, hyper, param, grad, state, n_decay, lr, step):
        """Apply one update to ``param`` in place (and to ``state``).

        Parameters
        ----------
        hyper : record from :meth:`hyper`
        param : ndarray, 1-D, float32 or float64, C-contiguous, writeable
        grad : ndarray, same dtype and length as ``param``; only read.
        state : ndarray, shape (n_slots(hyper), len(param)), same dtype, writeable.
        n_decay : int
            Weight decay applies to ``param[:n_decay]`` only, 0 <= n_decay <= n.
        lr : float
            This step's learning rate, finite.
        step : int
            1-based number of this update.

        The three arrays must not share memory: the kernels read and write
        them through restrict pointers.

        Raises
        ------
        TypeError
            A non-array argument, a wrong record, mismatched dtypes, or a
            scalar of the wrong kind.
        ValueError
            A length or shape that does not match, a read-only, misaligned or
            non-contiguous array, overlapping arrays, n_decay outside [0, n],
            step < 1 or a non-finite lr.
        """
        cdef const void* h = self.hyper_pointer(hyper)
        cdef FloatArray pa, ga, sa
        float_array("param", param, 1, True, &pa)
        float_array("grad", grad, 1, False, &ga)
        expect_kind("grad", &ga, "param", &pa)
        float_array("state", state, 2, True, &sa)
        expect_kind("state", &sa, "param", &pa)
        cdef Py_ssize_t n = pa.rows
        expect_length("grad", ga.rows, n)
        cdef Py_ssize_t slots = self.table.n_slots(h)
        expect_shape("state", sa.rows, sa.cols, slots, n)
        cdef Py_ssize_t decayed = index_arg("n_decay", n_decay, 0, n)
        cdef long number = index_arg("step", step, 1, LONG_MAX)
        cdef double rate = real_arg("lr", lr)
        check_finite("lr", rate)
        # The kernels take __restrict pointers: overlapping buffers would be
        # silently miscomputed.
        check_disjoint("grad", &ga, "param", &pa, False)
        check_disjoint("state", &sa, "param", &pa, False)
        check_disjoint("state", &sa, "grad", &ga, False)
        if n == 0:
            return
        cdef void* p_ptr = <void*> pa.start
        cdef const void* g_ptr = <const void*> ga.start
        cdef void* st_ptr = <void*> sa.start if slots > 0 else NULL
        with nogil:
            if pa.kind == KIND_FLOAT32:
                optimizer_step[float](self.table, h, <float*> p_ptr, <const float*> g_ptr,
                                      <float*> st_ptr, n, decayed, rate, number)
            else:
                optimizer_step[double](self.table, h, <double*> p_ptr,
                                       <const double*> g_ptr, <double*> st_ptr, n, decayed,
                                       rate, number)

    def __repr__(self):
        return f"OptimizerKernel({self.name!r})"


SGD = OptimizerKernel("SGD", PyCapsule_New(&SGD_KERNELS, OPTIMIZER_CAPSULE, NULL),
                      SGD_HYPER)
ADAGRAD = OptimizerKernel("AdaGrad", PyCapsule_New(&ADAGRAD_KERNELS, OPTIMIZER_CAPSULE, NULL),
                          ADAGRAD_HYPER)
RMSPROP = OptimizerKernel("RMSProp", PyCapsule_New(&RMSPROP_KERNELS, OPTIMIZER_CAPSULE, NULL),
                          RMSPROP_HYPER)
ADADELTA = OptimizerKernel("AdaDelta",
                           PyCapsule_New(&ADADELTA_KERNELS, OPTIMIZER_CAPSULE, NULL),
                           ADADELTA_HYPER)
ADAM = OptimizerKernel("Adam", PyCapsule_New(&ADAM_KERNELS, OPTIMIZER_CAPSULE, NULL),
                       ADAM_HYPER)
