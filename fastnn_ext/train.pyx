"""One training step in one place, and whole epochs of them in one compiled call.

``UpdateStep`` is everything that follows backpropagation — weight
penalties, clipping, gradient noise, the optimizer update, the step counter
and the finiteness checks — written once (``apply_update``).  The
layer-by-layer path of ``fastnn.model`` calls it after its Python backward
pass (``UpdateStep.update``); ``EpochPlan.run`` calls the same function after
the compiled backward pass of every mini-batch.

``EpochPlan`` walks the op records of a network (ops.pxd) over a workspace
sized for one batch — gather, forward, loss, backward, ``apply_update`` —
with the GIL released, so Python's overhead is paid once per call.  Both
classes check everything they are given when built and when called; the
pointer kernels below them check nothing.
"""

import numbers

import numpy as np

from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from numpy.random cimport bitgen_t

from fastnn_ext.activations cimport ActivationKernels, activation_kernels
from fastnn_ext.gradients cimport (add_weight_penalty, squared_norm, scale_inplace,
                                   clip_values, add_gaussian_noise)
from fastnn_ext.losses cimport loss_and_grad, count_correct
from fastnn_ext.ops cimport OpRecord, OpContext, OpKernels, OP_CAPSULE
from fastnn_ext.optim cimport OptimizerKernel, OptimizerKernels, optimizer_step_slice

#: The NumPy mirror of ops.pxd's OpRecord, field for field.
OP_RECORD = np.dtype([
    ("in_size", "i8"), ("out_size", "i8"), ("input", "i8"), ("output", "i8"),
    ("saved", "i8"), ("saved_size", "i8"), ("weight", "i8"), ("weight_size", "i8"),
    ("bias", "i8"), ("bias_size", "i8"), ("state", "i8"), ("state_size", "i8"),
    ("need_grad_in", "i8"), ("alpha", "f8"), ("rate", "f8"), ("momentum", "f8"),
    ("eps", "f8"),
])
if OP_RECORD.itemsize != sizeof(OpRecord):
    raise ImportError("fastnn_ext.train.OP_RECORD does not match ops.pxd's OpRecord")

# Why a call stopped.
cdef enum Status:
    OK = 0
    NONFINITE_LOSS = 1
    NONFINITE_GRADIENT = 2
    NONFINITE_UPDATE = 3     # the parameters or the optimizer's state

STATUS_OK = OK
STATUS_NONFINITE_LOSS = NONFINITE_LOSS
STATUS_NONFINITE_GRADIENT = NONFINITE_GRADIENT
STATUS_NONFINITE_UPDATE = NONFINITE_UPDATE

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fastnn_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fastnn_max_threads(void) { return 1; }
    #endif
    #include <time.h>
    static double fastnn_seconds(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
    }
    static inline void fastnn_prefetch_row(const void* start, size_t bytes) {
    #if defined(__GNUC__)
        const char* p = (const char*) start;
        for (size_t offset = 0; offset < bytes; offset += 64)
            __builtin_prefetch(p + offset, 0, 1);
    #endif
    }
    """
    int fastnn_max_threads() nogil
    double seconds "fastnn_seconds" () nogil
    void prefetch_row "fastnn_prefetch_row" (const void* start, size_t bytes) nogil


def max_threads():
    """Threads an optimizer step may use: OpenMP's current limit (1 without OpenMP).

    ``OMP_NUM_THREADS`` or ``threadpoolctl.threadpool_limits`` change it.
    """
    return fastnn_max_threads()


# An optimizer step is split across threads from this many parameters; below,
# starting the threads costs about what they save.  Above, the gain is more
# than the arithmetic: Adam on 235,146 parameters streams four arrays of
# 0.9 MB, more than one core's L2 cache holds, and each thread's slice stays
# in its own core's cache.  Slices start on 64-byte boundaries so that no two
# threads write to one cache line.
cdef enum:
    PARALLEL_STEP_MIN_PARAMS = 1 << 15
    SLICE_ALIGN_BYTES = 64

# A compiled epoch looks for a waiting signal (Ctrl-C) this often: taking the
# GIL for the check costs about a microsecond.
cdef double SIGNAL_CHECK_SECONDS = 0.05


# ---------------------------------------------------------------- the update

ctypedef struct Penalties:
    Py_ssize_t n_weights     # the leading parameters that are weights
    double l2                # λ₂/n: adds l2·w to ∂C/∂w
    double l1                # λ₁/n: adds l1·sign(w)
    double clip_value        # clamp every element into [−clip_value, clip_value] (0: off)
    double clip_norm         # rescale to at most this global 2-norm (0: off)
    double noise_eta         # annealed Gaussian noise σ_t² = η/(1 + t)^γ (η = 0: off)
    double noise_gamma


ctypedef struct UpdateState:
    void* params
    void* grads
    void* state              # the optimizer's moments, n_slots rows of n_params
    Py_ssize_t n_params
    Py_ssize_t n_decay       # weight decay applies to params[:n_decay]
    Penalties penalties
    const OptimizerKernels* optimizer
    const void* hyper
    long steps               # updates applied so far: the next one is number steps + 1


cdef void parallel_optimizer_step(const UpdateState* s, floating* params, floating* grads,
                                  floating* state, double lr, Py_ssize_t first,
                                  int n_threads) noexcept nogil:
    """The optimizer update of params[first:], on up to n_threads threads."""
    cdef Py_ssize_t n = s.n_params, align = SLICE_ALIGN_BYTES // sizeof(floating)
    cdef Py_ssize_t chunk, t
    cdef long step = s.steps + 1
    if n_threads <= 1 or n - first < PARALLEL_STEP_MIN_PARAMS:
        optimizer_step_slice(s.optimizer, s.hyper, params, grads, state, n, s.n_decay, lr,
                             step, first, n)
        return
    chunk = (n - first + n_threads - 1) // n_threads
    chunk = (chunk + align - 1) // align * align
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        optimizer_step_slice(s.optimizer, s.hyper, params, grads, state, n, s.n_decay, lr,
                             step, first + t * chunk, min(n, first + (t + 1) * chunk))


cdef int apply_update(UpdateState* s, double lr, bitgen_t* rng, Py_ssize_t first,
                      int n_threads, floating* params) noexcept nogil:
    """Everything after backward: penalties, clipping, noise, update, step count.

    ``first > 0``: a fused SGD backward pass has already updated
    ``params[:first]`` (the weights, with any L2 term folded in); only the
    rest goes through the optimizer.  Returns a Status; on NONFINITE_GRADIENT
    nothing has been updated.
    """
    cdef floating* grads = <floating*> s.grads
    cdef floating* state = <floating*> s.state
    cdef const Penalties* p = &s.penalties
    cdef Py_ssize_t n = s.n_params
    cdef double norm, sigma
    if first == 0:
        if p.l2 != 0 or p.l1 != 0:
            add_weight_penalty(params, grads, p.n_weights, <floating> p.l2, <floating> p.l1)
        if p.clip_value > 0:
            clip_values(grads, n, <floating> p.clip_value)
        if p.clip_norm > 0:
            norm = sqrt(squared_norm(grads, n))
            if not isfinite(norm):
                return NONFINITE_GRADIENT
            if norm > p.clip_norm:
                scale_inplace(grads, n, <floating> (p.clip_norm / norm))
        if p.noise_eta > 0:
            # t = s.steps counts the updates before this one, from 0.
            sigma = sqrt(p.noise_eta / pow(1.0 + s.steps, p.noise_gamma))
            add_gaussian_noise(rng, grads, n, sigma)
    parallel_optimizer_step(s, params, grads, state, lr, first, n_threads)
    s.steps += 1
    return OK


cdef bint all_finite(const floating* values, Py_ssize_t n) noexcept nogil:
    """No NaN or ±∞ among values[0:n]: one pass, stopping at the first."""
    cdef Py_ssize_t i
    cdef floating total = 0
    # A sum is finite exactly when no term is NaN or ∞, unless finite terms
    # overflow it; only then is the element-wise test needed.
    for i in range(n):
        total += values[i] * 0
    if total == 0:
        return True
    for i in range(n):
        if not isfinite(values[i]):
            return False
    return True


cdef bint update_finite(const UpdateState* s, floating* params) noexcept nogil:
    """The parameters and every optimizer moment are finite."""
    cdef Py_ssize_t slots = s.optimizer.n_slots(s.hyper)
    return (all_finite(params, s.n_params)
            and (slots == 0 or all_finite(<floating*> s.state, slots * s.n_params)))


cdef bitgen_t* bit_generator_of(object generator) except NULL:
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, "
                        f"got {type(generator).__name__}")
    return <bitgen_t*> PyCapsule_GetPointer(generator.bit_generator.capsule, "BitGenerator")


cdef object checked_array(str name, object array, object dtype, tuple shape):
    """array itself if it is a writable C-contiguous ndarray of dtype and shape."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"{name} has dtype {array.dtype}, expected {np.dtype(dtype)}")
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    if not array.flags.c_contiguous or not array.flags.writeable or not array.flags.aligned:
        raise ValueError(f"{name} must be writable, aligned and C-contiguous")
    return array


cdef double non_negative(str name, object value) except -1:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            value >= 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


cdef class UpdateStep:
    """The update that follows every backward pass, for one model and one fit.

    Parameters
    ----------
    params, grads : 1-D float32 or float64 arrays of one length
        The model's flat parameter and gradient buffers (weights first).
    optimizer : fastnn.optimizers.Optimizer
        Bound to these parameters: its ``kernel``, ``hyper_``, ``state_``,
        ``n_decay_`` and ``t_`` (the step counter this object continues).
    n_weights : int
        The leading parameters that are weights (penalties apply to them).
    l2, l1 : float
        Penalty coefficients per sample, λ₂/n and λ₁/n.
    clip_value, clip_norm : float
        0 turns each off.
    noise : (eta, gamma)
        Annealed gradient noise; eta = 0 turns it off.

    The arrays are held, not copied: they must not be reallocated while this
    object is in use.
    """

    cdef UpdateState s
    cdef object params_array, grads_array, state_array, hyper_record, kernel
    cdef readonly bint double_precision

    def __init__(self, params, grads, optimizer, n_weights, l2=0.0, l1=0.0, clip_value=0.0,
                 clip_norm=0.0, noise=(0.0, 0.0)):
        if not isinstance(params, np.ndarray) or params.dtype not in (np.float32, np.float64):
            raise TypeError("params must be a float32 or float64 numpy array")
        n = params.shape[0] if params.ndim == 1 else -1
        checked_array("params", params, params.dtype, (n,))
        checked_array("grads", grads, params.dtype, (n,))
        kernel = getattr(optimizer, "kernel", None)
        if not isinstance(kernel, OptimizerKernel):
            raise TypeError(f"optimizer must be a fastnn optimizer, got {optimizer!r}")
        cdef OptimizerKernel k = <OptimizerKernel> kernel
        hyper = optimizer.hyper_
        cdef const void* hyper_ptr = k.hyper_pointer(hyper)
        slots = k.table.n_slots(hyper_ptr)
        state = checked_array("optimizer state", optimizer.state_, params.dtype, (slots, n))
        n_decay = optimizer.n_decay_
        if not 0 <= n_decay <= n:
            raise ValueError(f"the optimizer decays {n_decay} parameters of {n}")
        if isinstance(n_weights, bool) or not 0 <= n_weights <= n:
            raise ValueError(f"n_weights must be in [0, {n}], got {n_weights!r}")
        eta, gamma = noise
        self.s.penalties = Penalties(
            n_weights, non_negative("l2", l2), non_negative("l1", l1),
            non_negative("clip_value", clip_value), non_negative("clip_norm", clip_norm),
            non_negative("noise eta", eta), non_negative("noise gamma", gamma))
        self.params_array, self.grads_array, self.state_array = params, grads, state
        self.hyper_record, self.kernel = hyper, kernel
        self.double_precision = params.dtype == np.float64
        self.s.params = <void*> <size_t> params.ctypes.data
        self.s.grads = <void*> <size_t> grads.ctypes.data
        self.s.state = <void*> <size_t> state.ctypes.data if slots > 0 else NULL
        self.s.n_params = n
        self.s.n_decay = n_decay
        self.s.optimizer = k.table
        self.s.hyper = hyper_ptr
        self.steps = optimizer.t_

    @property
    def steps(self):
        """Updates applied so far (the optimizer's ``t_``)."""
        return self.s.steps

    @steps.setter
    def steps(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"steps must be an integer >= 0, got {value!r}")
        self.s.steps = value

    def update(self, double lr, generator, int n_threads=1):
        """One update from the gradient now in ``grads``; returns a status code.

        The layer-by-layer path's step: ``STATUS_OK``, or
        ``STATUS_NONFINITE_GRADIENT`` (nothing changed) or
        ``STATUS_NONFINITE_UPDATE`` (the parameters or the optimizer's state
        stopped being finite: the caller restores them).
        """
        if not isfinite(lr) or lr < 0:
            raise ValueError(f"lr must be a finite number >= 0, got {lr}")
        cdef bitgen_t* rng = bit_generator_of(generator)
        cdef int status
        with generator.bit_generator.lock, nogil:
            if self.double_precision:
                status = apply_update(&self.s, lr, rng, 0, n_threads, <double*> self.s.params)
                if status == OK and not update_finite(&self.s, <double*> self.s.params):
                    status = NONFINITE_UPDATE
            else:
                status = apply_update(&self.s, lr, rng, 0, n_threads, <float*> self.s.params)
                if status == OK and not update_finite(&self.s, <float*> self.s.params):
                    status = NONFINITE_UPDATE
        return status


# ------------------------------------------------------------ the epoch loop

ctypedef struct Workspace:
    void* buffers            # non-trainable state (batch-norm running statistics)
    void* work
    void* delta
    void* targets            # one batch of target rows
    double* weights          # one batch of sample weights (when given)
    Py_ssize_t capacity      # rows per batch
    Py_ssize_t n_features
    Py_ssize_t n_outputs
    Py_ssize_t out_offset    # where the last op's output (the loss input) starts
    int loss
    double accuracy_threshold


cdef void forward_ops(const OpRecord* ops, const OpKernels** tables,
                      const ActivationKernels** activations, Py_ssize_t n_ops,
                      const OpContext* ctx, floating* work) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n_ops):
        if floating is float:
            tables[k].forward32(&ops[k], activations[k], ctx, work)
        else:
            tables[k].forward64(&ops[k], activations[k], ctx, work)


cdef void backward_ops(const OpRecord* ops, const OpKernels** tables,
                       const ActivationKernels** activations, Py_ssize_t n_ops,
                       const OpContext* ctx, floating* work) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n_ops - 1, -1, -1):
        if floating is float:
            tables[k].backward32(&ops[k], activations[k], ctx, work)
        else:
            tables[k].backward64(&ops[k], activations[k], ctx, work)


cdef void gather_batch(const floating[:, ::1] X, const floating[:, ::1] T,
                       const int64_t* labels, const int64_t* rows,
                       const int64_t* next_rows, Py_ssize_t m,
                       floating* batch, floating* targets, Py_ssize_t n_out) noexcept nogil:
    """Copy the batch's rows of X and its targets (one-hot rows for labels)."""
    cdef Py_ssize_t i, r, n_features = X.shape[1]
    for i in range(m):
        r = rows[i]
        if next_rows != NULL:
            # The rows are scattered over a large array: start loading the
            # next batch's rows now, so their memory latency hides behind
            # this batch's compute.
            prefetch_row(&X[next_rows[i], 0], n_features * sizeof(floating))
        memcpy(batch + i * n_features, &X[r, 0], n_features * sizeof(floating))
        if labels == NULL:
            memcpy(targets + i * n_out, &T[r, 0], n_out * sizeof(floating))
        elif n_out == 1:
            targets[i] = <floating> labels[r]
        else:
            memset(targets + i * n_out, 0, n_out * sizeof(floating))
            targets[i * n_out + labels[r]] = 1


cdef double weighted_loss_and_grad(int loss, const floating* output, const floating* targets,
                                   floating* grad, const double* weights, Py_ssize_t m,
                                   Py_ssize_t n) noexcept nogil:
    """Σ_i wᵢ·Lᵢ, with row i's gradient scaled by wᵢ/m: the loss kernel row by row.

    Each row is the kernel's own computation of that row, so the layer path
    (``Sequential._forward_backward``) gets the same numbers calling it from
    Python one row at a time.
    """
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(m):
        total += weights[i] * loss_and_grad(loss, output + i * n, targets + i * n,
                                            grad + i * n, 1, n, <floating> (weights[i] / m))
    return total


ctypedef struct Totals:
    double loss_sum
    Py_ssize_t n_correct
    Py_ssize_t n_steps
    int status


cdef Totals run_steps(EpochPlan plan, const floating[:, ::1] X, const floating[:, ::1] T,
                      const int64_t* labels, const int64_t[::1] order,
                      const double[::1] rates, bitgen_t* rng, int n_threads,
                      const double* sample_weights):
    """The steps over `order`, batch by batch; called with the GIL held."""
    cdef Workspace* w = &plan.w
    cdef UpdateState* s = &plan.update.s
    cdef floating* work = <floating*> w.work
    cdef floating* delta = <floating*> w.delta
    cdef floating* targets = <floating*> w.targets
    cdef floating* params = <floating*> s.params
    cdef Py_ssize_t n = order.shape[0], start = 0, m, i
    cdef Totals totals = Totals(0, 0, 0, OK)
    cdef double batch_loss, lr, last_check = seconds()
    cdef OpContext ctx = OpContext(s.params, s.grads, w.buffers, w.work, w.delta, 0,
                                   w.capacity, rng, plan.fused_sgd, 0, 1)
    cdef Py_ssize_t first_updated = s.penalties.n_weights if plan.fused_sgd else 0
    with nogil:
        while start < n:
            m = min(w.capacity, n - start)
            # Prefetch as many rows of the next batch as it has (all but at the end).
            gather_batch(X, T, labels, &order[start],
                         &order[start + m] if start + 2 * m <= n else NULL,
                         m, work, targets, w.n_outputs)
            ctx.rows = m
            forward_ops(plan.ops, plan.tables, plan.activations, plan.n_ops, &ctx, work)
            if sample_weights == NULL:
                batch_loss = loss_and_grad(w.loss, work + w.out_offset, targets,
                                           delta + w.out_offset, m, w.n_outputs,
                                           <floating> (1.0 / m))
            else:
                for i in range(m):
                    w.weights[i] = sample_weights[order[start + i]]
                batch_loss = weighted_loss_and_grad(w.loss, work + w.out_offset, targets,
                                                    delta + w.out_offset, w.weights, m,
                                                    w.n_outputs)
            if not isfinite(batch_loss):
                totals.status = NONFINITE_LOSS
                break
            totals.loss_sum += batch_loss
            totals.n_correct += count_correct(work + w.out_offset, targets, m, w.n_outputs,
                                              <floating> w.accuracy_threshold)
            lr = rates[totals.n_steps]
            if plan.fused_sgd:
                ctx.lr = lr
                ctx.keep = 1 - lr * (s.penalties.l2 + plan.fused_weight_decay)
            backward_ops(plan.ops, plan.tables, plan.activations, plan.n_ops, &ctx, work)
            totals.status = apply_update(s, lr, rng, first_updated, n_threads, params)
            if totals.status != OK:
                break
            totals.n_steps += 1
            start += m
            if seconds() - last_check > SIGNAL_CHECK_SECONDS:
                # Between two complete steps: a KeyboardInterrupt raised here
                # leaves the model consistent (the caller reads `steps`).
                last_check = seconds()
                with gil:
                    PyErr_CheckSignals()
        if totals.status == OK and not update_finite(s, params):
            totals.status = NONFINITE_UPDATE
    return totals


cdef int64_t record_end(const OpRecord* op, int64_t offset, int64_t size) noexcept:
    return offset + size if offset >= 0 else 0


cdef class EpochPlan:
    """A network's op records, workspace and update, ready for compiled epochs.

    Parameters
    ----------
    records : ndarray of OP_RECORD
        One record per op, input to output.
    op_kernels : sequence of capsules
        Each op's ``OpKernels`` table (``fastnn_ext.layer_ops.DENSE``...).
    activations : sequence of capsules
        Each op's activation table (``fastnn_ext.activations.IDENTITY`` where
        the op has none).
    buffers : ndarray
        The model's non-trainable buffers (batch-norm statistics).
    batch_size : int
        Rows of the largest batch.
    loss : fastnn loss
        Its ``code`` and ``threshold``.
    update : UpdateStep
        The update after each backward pass.
    fused_sgd : float or None
        Plain SGD folded into the weight-gradient products: the weight decay
        to fold with the L2 coefficient; None when the update is not plain SGD.

    Every offset and size is checked against the buffers here, so the
    kernels, which check nothing, never leave them.
    """

    cdef const OpRecord* ops
    cdef const OpKernels** tables
    cdef const ActivationKernels** activations
    cdef Py_ssize_t n_ops
    cdef Workspace w
    cdef readonly UpdateStep update
    cdef bint fused_sgd
    cdef double fused_weight_decay
    cdef object records, buffers_array, work_array, delta_array, targets_array, keep
    cdef object weights_array

    def __cinit__(self):
        self.tables = NULL
        self.activations = NULL

    def __dealloc__(self):
        free(self.tables)
        free(self.activations)

    def __init__(self, records, op_kernels, activations, buffers, batch_size, loss,
                 UpdateStep update not None, fused_sgd=None):
        if not isinstance(records, np.ndarray) or records.dtype != OP_RECORD or records.ndim != 1:
            raise TypeError("records must be a 1-D array of fastnn_ext.train.OP_RECORD")
        records = np.ascontiguousarray(records)
        n_ops = records.shape[0]
        if n_ops == 0:
            raise ValueError("a plan needs at least one op")
        op_kernels, activations = list(op_kernels), list(activations)
        if len(op_kernels) != n_ops or len(activations) != n_ops:
            raise ValueError(f"{n_ops} records need {n_ops} op kernels and activations, got "
                             f"{len(op_kernels)} and {len(activations)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        dtype = update.params_array.dtype
        if not isinstance(buffers, np.ndarray) or buffers.ndim != 1:
            raise TypeError("buffers must be a 1-D numpy array")
        checked_array("buffers", buffers, dtype, buffers.shape)
        capacity = int(batch_size)
        work_size = self.check_records(records, capacity, update.s.n_params, buffers.shape[0])
        for capsule in op_kernels:
            if not PyCapsule_IsValid(capsule, OP_CAPSULE):
                raise TypeError("op_kernels must be op kernel capsules such as "
                                "fastnn_ext.layer_ops.DENSE")
        self.keep = (op_kernels, activations)
        self.tables = <const OpKernels**> malloc(n_ops * sizeof(void*))
        self.activations = <const ActivationKernels**> malloc(n_ops * sizeof(void*))
        if self.tables == NULL or self.activations == NULL:
            raise MemoryError()
        for k in range(n_ops):
            self.tables[k] = <const OpKernels*> PyCapsule_GetPointer(op_kernels[k], OP_CAPSULE)
            self.activations[k] = activation_kernels(activations[k])
        self.records = records
        self.ops = <const OpRecord*> <size_t> records.ctypes.data
        self.n_ops = n_ops
        self.work_array = np.zeros(work_size, dtype=dtype)
        self.delta_array = np.zeros(work_size, dtype=dtype)
        last = records[n_ops - 1]
        self.targets_array = np.zeros(capacity * last["out_size"], dtype=dtype)
        self.weights_array = np.zeros(capacity, dtype=np.float64)
        self.buffers_array = buffers
        self.w = Workspace(<void*> <size_t> buffers.ctypes.data,
                           <void*> <size_t> self.work_array.ctypes.data,
                           <void*> <size_t> self.delta_array.ctypes.data,
                           <void*> <size_t> self.targets_array.ctypes.data,
                           <double*> <size_t> self.weights_array.ctypes.data,
                           capacity, records[0]["in_size"], last["out_size"],
                           last["output"],
                           loss.code, loss.threshold)
        self.update = update
        self.fused_sgd = fused_sgd is not None
        self.fused_weight_decay = 0.0 if fused_sgd is None else non_negative(
            "fused_sgd", fused_sgd)

    @staticmethod
    def check_records(records, Py_ssize_t capacity, Py_ssize_t n_params,
                      Py_ssize_t n_buffers):
        """The workspace length the records need; raises if any record is inconsistent.

        Every op reads the output of the op before it (the first, the batch at
        offset 0); its output and saved regions lie after the batch and do not
        overlap its input; its parameter and state slices lie inside their
        buffers.
        """
        batch_end = capacity * records[0]["in_size"]
        work_size = batch_end
        for k in range(records.shape[0]):
            r = records[k]
            if r["in_size"] <= 0 or r["out_size"] <= 0:
                raise ValueError(f"op {k}: sizes must be positive, got {r['in_size']} "
                                 f"and {r['out_size']}")
            expected_input = 0 if k == 0 else records[k - 1]["output"]
            if r["input"] != expected_input or (k > 0 and r["in_size"] !=
                                                records[k - 1]["out_size"]):
                raise ValueError(f"op {k} does not read the output of the op before it")
            regions = [("output", r["output"], capacity * r["out_size"])]
            if r["saved_size"] > 0:
                regions.append(("saved", r["saved"], r["saved_size"]))
            for name, start, size in regions:
                if start < batch_end or (start < r["input"] + capacity * r["in_size"]
                                         and r["input"] < start + size):
                    raise ValueError(f"op {k}: its {name} region overlaps its input")
                work_size = max(work_size, start + size)
            for name, limit in (("weight", n_params), ("bias", n_params),
                                ("state", n_buffers)):
                start, size = r[name], r[name + "_size"]
                if start == -1 and size == 0:
                    continue
                if start < 0 or size <= 0 or start + size > limit:
                    raise ValueError(f"op {k}: its {name} slice [{start}, {start + size}) "
                                     f"is outside its buffer of {limit}")
        return work_size

    @property
    def batch_size(self):
        return self.w.capacity

    def step_threads(self, int n_threads, bint blas_threaded):
        """Threads each update of this plan may use.

        BLAS's own threads spin for a while after each product; threads of ours
        started meanwhile would fight them for the cores (measured: ten times
        slower with two of each on two cores).  ``blas_threaded`` says whether
        BLAS may use more than one thread at all.  A smaller batch never makes
        a product go to BLAS, so the full batch size decides.
        """
        cdef size_t item = 8 if self.update.double_precision else 4
        if blas_threaded:
            for k in range(self.n_ops):
                if self.tables[k].wakes_blas != NULL and self.tables[k].wakes_blas(
                        &self.ops[k], self.w.capacity, item):
                    return 1
        return max(1, n_threads)

    def run(self, X, targets, labels, order, learning_rates, generator, int n_threads=1,
            sample_weight=None):
        """Train on the rows ``order``, a batch at a time.

        Either ``labels`` (int64 class indices, one per row of X) or
        ``targets`` (one row of the last op's width per row of X) is given,
        the other None.  ``learning_rates[s]`` is the rate of the s-th step.
        ``sample_weight`` (float64, one per row of X, finite, >= 0) scales
        each row's loss and gradient: a batch's loss is Σ wᵢ·Lᵢ / rows.
        Returns ``(loss_sum, n_correct, n_steps, status)``: ``n_steps``
        updates were applied; ``status`` says why the call stopped early
        (the caller undoes a step that made anything non-finite).
        """
        dtype = self.update.params_array.dtype
        if not isinstance(X, np.ndarray) or X.dtype != dtype or X.ndim != 2 \
                or X.shape[1] != self.w.n_features or not X.flags.c_contiguous:
            raise ValueError(f"X must be a C-contiguous {np.dtype(dtype)} array of "
                             f"{self.w.n_features} columns")
        n_rows = X.shape[0]
        if labels is None:
            if not isinstance(targets, np.ndarray) or targets.dtype != dtype \
                    or targets.shape != (n_rows, self.w.n_outputs) \
                    or not targets.flags.c_contiguous:
                raise ValueError(f"targets must be a C-contiguous {np.dtype(dtype)} array "
                                 f"of shape ({n_rows}, {self.w.n_outputs})")
        else:
            if targets is not None:
                raise ValueError("give labels or targets, not both")
            n_classes = 2 if self.w.n_outputs == 1 else self.w.n_outputs
            if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 \
                    or labels.shape != (n_rows,) or not labels.flags.c_contiguous:
                raise ValueError(f"labels must be a contiguous int64 array of {n_rows} entries")
            if n_rows and (labels.min() < 0 or labels.max() >= n_classes):
                raise ValueError(f"labels must lie in [0, {n_classes - 1}]")
        if not isinstance(order, np.ndarray) or order.dtype != np.int64 or order.ndim != 1:
            raise ValueError("order must be a 1-D int64 array of row indices")
        order = np.ascontiguousarray(order)
        if order.shape[0] and (order.min() < 0 or order.max() >= n_rows):
            raise ValueError(f"order holds row indices outside [0, {n_rows})")
        rates = np.ascontiguousarray(learning_rates, dtype=np.float64)
        n_steps = -(-order.shape[0] // self.w.capacity)
        if rates.ndim != 1 or rates.shape[0] < n_steps:
            raise ValueError(f"learning_rates needs {n_steps} entries, got {rates.shape}")
        if not np.isfinite(rates).all() or (rates < 0).any():
            raise ValueError("learning rates must be finite and >= 0")
        cdef const double[::1] weight_view
        cdef const double* weight_ptr = NULL
        if sample_weight is not None:
            if not isinstance(sample_weight, np.ndarray) or sample_weight.dtype != np.float64 \
                    or sample_weight.shape != (n_rows,) or not sample_weight.flags.c_contiguous:
                raise ValueError(f"sample_weight must be a contiguous float64 array of "
                                 f"{n_rows} entries")
            if not (np.isfinite(sample_weight).all() and (sample_weight >= 0).all()):
                raise ValueError("sample_weight must be finite and >= 0")
            weight_view = sample_weight
            if n_rows:
                weight_ptr = &weight_view[0]
        cdef bitgen_t* rng = bit_generator_of(generator)
        cdef Totals totals
        if order.shape[0] == 0:
            return 0.0, 0, 0, OK
        label_array = labels if labels is not None else np.zeros(0, dtype=np.int64)
        cdef const int64_t[::1] label_view = label_array
        cdef const int64_t* label_ptr = &label_view[0] if labels is not None else NULL
        T = targets if targets is not None else np.zeros((0, self.w.n_outputs), dtype=dtype)
        with generator.bit_generator.lock:
            if self.update.double_precision:
                totals = run_steps[double](self, X, T, label_ptr, order, rates, rng, n_threads,
                                           weight_ptr)
            else:
                totals = run_steps[float](self, X, T, label_ptr, order, rates, rng, n_threads,
                                          weight_ptr)
        return totals.loss_sum, totals.n_correct, totals.n_steps, totals.status
