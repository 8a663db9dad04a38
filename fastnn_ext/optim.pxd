# Fused optimizer steps on one flat parameter buffer.
#
# optimizer_step() is the seam between an optimizer's Python object and a
# compiled training loop: the loop cimports it and calls it once per
# mini-batch, without the GIL.  The update rules follow the documented
# algorithms of the PyTorch optimizers of the same names; fastnn/optimizers.py
# states them in full.
#
# Layout
#   param, grad   contiguous, length n.  The first n_decay entries are the
#                 weights that weight decay applies to; the rest (biases and
#                 other parameters) are never decayed.
#   state         contiguous (n_slots, n) block of per-parameter moments, in
#                 the slot order listed below.  A kind with no slots never
#                 reads the pointer, which may then be NULL.
#   hyper         float64 hyper-parameters, in the order listed below; flags
#                 are stored as 0.0 / 1.0.
#   lr            this step's learning rate (the schedule is applied by the
#                 caller); step the 1-based number of this update.
#
#   kind          hyper                                     state slots
#   OPT_SGD       momentum, dampening, nesterov, wd         buf (if momentum != 0)
#   OPT_ADAGRAD   lr_decay, wd, eps                         sum
#   OPT_RMSPROP   alpha, eps, wd, momentum, centered        square_avg,
#                                                           grad_avg (if centered),
#                                                           buf (if momentum != 0)
#   OPT_ADADELTA  rho, eps, wd                              square_avg, acc_delta
#   OPT_ADAM      beta1, beta2, eps, wd, amsgrad            exp_avg, exp_avg_sq,
#   OPT_ADAMW     (wd is decoupled)                         max_exp_avg_sq (if amsgrad)
#
# SGD's momentum buffer is set to the first gradient when step == 1, as in
# PyTorch, whatever the buffer holds; every other slot must start at zero
# (AdaGrad's sum at its initial accumulator value).

from cython cimport floating
from libc.math cimport pow, sqrt

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


cdef enum OptimizerKind:
    OPT_SGD = 0
    OPT_ADAGRAD = 1
    OPT_RMSPROP = 2
    OPT_ADADELTA = 3
    OPT_ADAM = 4
    OPT_ADAMW = 5


# Number of float64 hyper-parameters of each kind.
cdef enum:
    SGD_N_HYPER = 4
    ADAGRAD_N_HYPER = 3
    RMSPROP_N_HYPER = 5
    ADADELTA_N_HYPER = 3
    ADAM_N_HYPER = 5


cdef inline Py_ssize_t optimizer_n_hyper(int kind) noexcept nogil:
    """Length of kind's hyper array, -1 for an unknown kind."""
    if kind == OPT_SGD:
        return SGD_N_HYPER
    if kind == OPT_ADAGRAD:
        return ADAGRAD_N_HYPER
    if kind == OPT_RMSPROP:
        return RMSPROP_N_HYPER
    if kind == OPT_ADADELTA:
        return ADADELTA_N_HYPER
    if kind == OPT_ADAM or kind == OPT_ADAMW:
        return ADAM_N_HYPER
    return -1


cdef inline Py_ssize_t optimizer_n_slots(int kind, const double* hyper) noexcept nogil:
    """Rows of the state block that kind with these hyper-parameters uses."""
    if kind == OPT_SGD:
        return 1 if hyper[0] != 0 else 0
    if kind == OPT_ADAGRAD:
        return 1
    if kind == OPT_RMSPROP:
        return 1 + (1 if hyper[4] != 0 else 0) + (1 if hyper[3] != 0 else 0)
    if kind == OPT_ADADELTA:
        return 2
    if kind == OPT_ADAM or kind == OPT_ADAMW:
        return 2 + (1 if hyper[4] != 0 else 0)
    return -1


# Each *_run applies a kernel to one run of parameters with one weight-decay
# coefficient; *_step runs it over the decayed weights, then over the rest.

cdef inline void sgd_run(const double* hyper, floating* p, const floating* g,
                         floating* buf, Py_ssize_t n, double lr, double wd,
                         long step) noexcept nogil:
    if n <= 0:
        return
    if buf == NULL:
        if floating is float:
            fastnn_sgd_f32(p, g, n, <float> lr, <float> wd)
        else:
            fastnn_sgd_f64(p, g, n, lr, wd)
        return
    cdef int nesterov = hyper[2] != 0
    cdef int first = step <= 1
    if floating is float:
        fastnn_sgd_momentum_f32(p, g, buf, n, <float> lr, <float> wd, <float> hyper[0],
                                <float> (1.0 - hyper[1]), nesterov, first)
    else:
        fastnn_sgd_momentum_f64(p, g, buf, n, lr, wd, hyper[0], 1.0 - hyper[1],
                                nesterov, first)


cdef inline void sgd_step(const double* hyper, floating* param, const floating* grad,
                          floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                          double lr, long step) noexcept nogil:
    cdef floating* buf = state if hyper[0] != 0 else NULL
    sgd_run(hyper, param, grad, buf, n_decay, lr, hyper[3], step)
    sgd_run(hyper, param + n_decay, grad + n_decay,
            buf + n_decay if buf != NULL else NULL, n - n_decay, lr, 0.0, step)


cdef inline void adagrad_run(floating* p, const floating* g, floating* s,
                             Py_ssize_t n, double clr, double wd,
                             double eps) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_adagrad_f32(p, g, s, n, <float> clr, <float> wd, <float> eps)
    else:
        fastnn_adagrad_f64(p, g, s, n, clr, wd, eps)


cdef inline void adagrad_step(const double* hyper, floating* param, const floating* grad,
                              floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                              double lr, long step) noexcept nogil:
    cdef double clr = lr / (1.0 + (step - 1) * hyper[0])
    adagrad_run(param, grad, state, n_decay, clr, hyper[1], hyper[2])
    adagrad_run(param + n_decay, grad + n_decay, state + n_decay, n - n_decay,
                clr, 0.0, hyper[2])


cdef inline void rmsprop_run(const double* hyper, floating* p, const floating* g,
                             floating* sq, floating* avg, floating* buf,
                             Py_ssize_t n, double lr, double wd) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_rmsprop_f32(p, g, sq, avg, buf, n, <float> lr, <float> wd,
                           <float> hyper[0], <float> (1.0 - hyper[0]),
                           <float> hyper[1], <float> hyper[3])
    else:
        fastnn_rmsprop_f64(p, g, sq, avg, buf, n, lr, wd, hyper[0], 1.0 - hyper[0],
                           hyper[1], hyper[3])


cdef inline void rmsprop_step(const double* hyper, floating* param, const floating* grad,
                              floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                              double lr, long step) noexcept nogil:
    cdef floating* sq = state
    cdef floating* avg = NULL
    cdef floating* buf = NULL
    cdef floating* next_slot = state + stride
    if hyper[4] != 0:
        avg = next_slot
        next_slot += stride
    if hyper[3] != 0:
        buf = next_slot
    rmsprop_run(hyper, param, grad, sq, avg, buf, n_decay, lr, hyper[2])
    rmsprop_run(hyper, param + n_decay, grad + n_decay, sq + n_decay,
                avg + n_decay if avg != NULL else NULL,
                buf + n_decay if buf != NULL else NULL, n - n_decay, lr, 0.0)


cdef inline void adadelta_run(const double* hyper, floating* p, const floating* g,
                              floating* sq, floating* acc, Py_ssize_t n,
                              double lr, double wd) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_adadelta_f32(p, g, sq, acc, n, <float> lr, <float> wd,
                            <float> hyper[0], <float> (1.0 - hyper[0]), <float> hyper[1])
    else:
        fastnn_adadelta_f64(p, g, sq, acc, n, lr, wd, hyper[0], 1.0 - hyper[0], hyper[1])


cdef inline void adadelta_step(const double* hyper, floating* param, const floating* grad,
                               floating* state, Py_ssize_t n, Py_ssize_t n_decay, Py_ssize_t stride,
                               double lr, long step) noexcept nogil:
    adadelta_run(hyper, param, grad, state, state + stride, n_decay, lr, hyper[2])
    adadelta_run(hyper, param + n_decay, grad + n_decay, state + n_decay,
                 state + stride + n_decay, n - n_decay, lr, 0.0)


cdef inline void adam_run(const double* hyper, floating* p, const floating* g,
                          floating* m, floating* v, floating* vmax, Py_ssize_t n,
                          double step_size, double inv_bc2_sqrt, double wd,
                          double shrink) noexcept nogil:
    if n <= 0:
        return
    if floating is float:
        fastnn_adam_f32(p, g, m, v, vmax, n, <float> step_size, <float> inv_bc2_sqrt,
                        <float> hyper[2], <float> hyper[0], <float> (1.0 - hyper[0]),
                        <float> hyper[1], <float> (1.0 - hyper[1]), <float> wd,
                        <float> shrink)
    else:
        fastnn_adam_f64(p, g, m, v, vmax, n, step_size, inv_bc2_sqrt, hyper[2],
                        hyper[0], 1.0 - hyper[0], hyper[1], 1.0 - hyper[1], wd, shrink)


cdef inline void adam_step(bint decoupled, const double* hyper, floating* param,
                           const floating* grad, floating* state, Py_ssize_t n,
                           Py_ssize_t n_decay, Py_ssize_t stride, double lr,
                           long step) noexcept nogil:
    cdef double step_size = lr / (1.0 - pow(hyper[0], <double> step))
    cdef double inv_bc2_sqrt = 1.0 / sqrt(1.0 - pow(hyper[1], <double> step))
    cdef double wd = 0.0
    cdef double shrink = 1.0
    if decoupled:
        shrink = 1.0 - lr * hyper[3]
    else:
        wd = hyper[3]
    cdef floating* vmax = state + 2 * stride if hyper[4] != 0 else NULL
    adam_run(hyper, param, grad, state, state + stride, vmax, n_decay,
             step_size, inv_bc2_sqrt, wd, shrink)
    adam_run(hyper, param + n_decay, grad + n_decay, state + n_decay,
             state + stride + n_decay, vmax + n_decay if vmax != NULL else NULL,
             n - n_decay, step_size, inv_bc2_sqrt, 0.0, 1.0)


cdef inline void optimizer_step_slice(int kind, const double* hyper, floating* param,
                                      const floating* grad, floating* state,
                                      Py_ssize_t n, Py_ssize_t n_decay, double lr, long step,
                                      Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """The update of entries [start, stop) of an n-entry buffer, as optimizer_step.

    Slices of one step are independent of each other: a step run slice by
    slice, in any order or at once, gives the same parameters bit for bit.
    """
    if stop <= start:
        return
    cdef Py_ssize_t count = stop - start
    cdef Py_ssize_t decayed = min(max(n_decay - start, 0), count)
    cdef floating* state_at = state + start if state != NULL else NULL
    param += start
    grad += start
    if kind == OPT_SGD:
        sgd_step(hyper, param, grad, state_at, count, decayed, n, lr, step)
    elif kind == OPT_ADAGRAD:
        adagrad_step(hyper, param, grad, state_at, count, decayed, n, lr, step)
    elif kind == OPT_RMSPROP:
        rmsprop_step(hyper, param, grad, state_at, count, decayed, n, lr, step)
    elif kind == OPT_ADADELTA:
        adadelta_step(hyper, param, grad, state_at, count, decayed, n, lr, step)
    elif kind == OPT_ADAM:
        adam_step(False, hyper, param, grad, state_at, count, decayed, n, lr, step)
    elif kind == OPT_ADAMW:
        adam_step(True, hyper, param, grad, state_at, count, decayed, n, lr, step)


cdef inline void optimizer_step(int kind, const double* hyper, floating* param,
                                const floating* grad, floating* state,
                                Py_ssize_t n, Py_ssize_t n_decay,
                                double lr, long step) noexcept nogil:
    """One update of param[0:n] from grad[0:n]; see the layout table above.

    Requires 0 <= n_decay <= n, step >= 1, a hyper array of the kind's length
    and state of the kind's slot count: the compiled caller checks these once,
    before its loop (optim.step checks them on every call).  An unknown kind
    leaves everything untouched.
    """
    optimizer_step_slice(kind, hyper, param, grad, state, n, n_decay, lr, step, 0, n)
