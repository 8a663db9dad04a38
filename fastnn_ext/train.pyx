"""Whole epochs of training steps in one compiled call.

Everything that follows backpropagation — weight penalties, clipping,
gradient noise, the optimizer update, the step counter — is written once,
``apply_update`` (update.pxd); the layer-by-layer path of ``fastnn.model``
calls it through ``fastnn_ext.update.UpdateStep`` after its Python backward
pass, and ``EpochPlan.run`` after the compiled backward pass of every
mini-batch.

``EpochPlan`` walks the op records of a network (ops.pxd) over a workspace
sized for one batch — gather, forward, loss, backward, ``apply_update`` —
with the GIL released, so Python's overhead is paid once per call.  Both
classes check everything they are given when built and when called; the
pointer kernels below them check nothing.
"""

import numbers

import numpy as np

from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_IsValid, PyCapsule_GetPointer
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from numpy.random cimport bitgen_t

from fastnn_ext.activations cimport ActivationKernels, activation_kernels
from fastnn_ext.losses cimport loss_and_grad, count_correct
from fastnn_ext.ops cimport OpRecord, OpContext, OpKernels, OpNeeds, OP_CAPSULE
from fastnn_ext.update cimport (UpdateStep, UpdateState, OK, NONFINITE_LOSS, NONFINITE_UPDATE,
                                apply_update, update_finite, bit_generator_of, checked_array,
                                non_negative, thread_count)

# The update's status codes and thread count, also importable from here.
from fastnn_ext.update import (max_threads, STATUS_OK, STATUS_NONFINITE_LOSS,
                               STATUS_NONFINITE_GRADIENT, STATUS_NONFINITE_UPDATE)

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

cdef extern from "monotonic_clock.h" nogil:
    double seconds "fastnn_seconds" ()

cdef extern from *:
    """
    static inline void fastnn_prefetch_row(const void* start, size_t bytes) {
    #if defined(__GNUC__)
        const char* p = (const char*) start;
        for (size_t offset = 0; offset < bytes; offset += 64)
            __builtin_prefetch(p + offset, 0, 1);
    #endif
    }
    #if defined(__unix__) || defined(__APPLE__)
    #include <unistd.h>
    #endif
    /* A core's L2 cache in bytes, 0 where the system does not tell. */
    static size_t fastnn_l2_bytes(void) {
    #if defined(_SC_LEVEL2_CACHE_SIZE)
        long size = sysconf(_SC_LEVEL2_CACHE_SIZE);
        return size > 0 ? (size_t) size : 0;
    #else
        return 0;
    #endif
    }
    """
    void prefetch_row "fastnn_prefetch_row" (const void* start, size_t bytes) nogil
    size_t l2_bytes "fastnn_l2_bytes" () nogil


# A compiled epoch looks for a waiting signal (Ctrl-C) this often: taking the
# GIL for the check costs about a microsecond.
cdef double SIGNAL_CHECK_SECONDS = 0.05


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
                       floating* batch, floating* targets, Py_ssize_t n_out,
                       int n_threads) noexcept nogil:
    """Copy the batch's rows of X and its targets (one-hot rows for labels),
    on n_threads threads; where next_rows is not NULL, start loading those.

    The rows are scattered over an array much larger than the caches, so
    the copy waits on memory, and two cores have more rows in flight than
    one (128 rows of 784 float32 on a 2-core AMD EPYC, family 25, model 1:
    62 µs per batch against 98 in a training epoch).
    """
    cdef Py_ssize_t i
    if n_threads > 1:
        for i in prange(m, num_threads=n_threads, schedule="static"):
            gather_row(X, T, labels, rows, next_rows, i, batch, targets, n_out)
    else:
        for i in range(m):
            gather_row(X, T, labels, rows, next_rows, i, batch, targets, n_out)


cdef inline void gather_row(const floating[:, ::1] X, const floating[:, ::1] T,
                            const int64_t* labels, const int64_t* rows,
                            const int64_t* next_rows, Py_ssize_t i,
                            floating* batch, floating* targets, Py_ssize_t n_out) noexcept nogil:
    """Row i of gather_batch."""
    cdef Py_ssize_t r = rows[i], n_features = X.shape[1]
    if next_rows != NULL:
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
    # The next batch's rows are loaded ahead only where they are still in L2
    # when its step reads them: where that batch and the parameters fit in
    # L2 together.  Loaded ahead, C1's batch of 10 took 8.7 µs to gather
    # instead of 11.1; a batch of 32 rows of 784 beside the 917 KiB of C2's
    # parameters 30 instead of 23, 128 rows 134 instead of 98, evicted before
    # use and fetched twice (2-core AMD EPYC, family 25, model 1; 512 KiB L2).
    cdef bint load_ahead = ((w.capacity * X.shape[1] + s.n_params) * sizeof(floating)
                            <= l2_bytes())
    with nogil:
        while start < n:
            m = min(w.capacity, n - start)
            # as many rows of the next batch as it has (all but at the end)
            gather_batch(X, T, labels, &order[start],
                         &order[start + m] if load_ahead and start + 2 * m <= n else NULL,
                         m, work, targets, w.n_outputs, n_threads)
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
            # The ops before the first with trainable parameters need no backward.
            backward_ops(plan.ops + plan.first_backward, plan.tables + plan.first_backward,
                         plan.activations + plan.first_backward,
                         plan.n_ops - plan.first_backward, &ctx, work)
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


cdef check_needs(records, op_kernels, activations, Py_ssize_t capacity):
    """Refuse a record whose slices are not what its op's kernels read and write."""
    cdef const OpKernels* table
    cdef const ActivationKernels* act
    cdef const OpRecord* first = <const OpRecord*> <size_t> records.ctypes.data
    cdef const OpRecord* record
    cdef OpNeeds needs
    for k in range(records.shape[0]):
        table = <const OpKernels*> PyCapsule_GetPointer(op_kernels[k], OP_CAPSULE)
        act = activation_kernels(activations[k])
        record = &first[k]
        needs = table.needs(record, act, capacity)
        for name, want in (("weight_size", needs.weight_size), ("bias_size", needs.bias_size),
                           ("state_size", needs.state_size), ("saved_size", needs.saved_size)):
            if records[k][name] != want:
                raise ValueError(f"op {k}: {name} is {records[k][name]}, its kernels use {want}")
        if needs.same_width and record.in_size != record.out_size:
            raise ValueError(f"op {k}: an element-wise op needs out_size = in_size, got "
                             f"{records[k]['in_size']} and {records[k]['out_size']}")


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
    first_backward : int
        The first op the backward pass runs (the first with trainable
        parameters): the ops before it only run forward.

    Every offset and size is checked against the buffers here, so the
    kernels, which check nothing, never leave them.
    """

    cdef const OpRecord* ops
    cdef const OpKernels** tables
    cdef const ActivationKernels** activations
    cdef Py_ssize_t n_ops
    cdef readonly Py_ssize_t first_backward
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
                 UpdateStep update not None, fused_sgd=None, first_backward=0):
        if self.tables != NULL:
            raise TypeError("an EpochPlan is initialised once; make a new one")
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
        if not (hasattr(loss, "code") and hasattr(loss, "threshold")):
            raise TypeError(f"loss must be a fastnn loss, got {loss!r}")
        capacity = int(batch_size)
        if capacity >= 2 ** 31:
            raise ValueError(f"batch_size must be below 2^31, got {batch_size}")
        if isinstance(first_backward, bool) or not isinstance(first_backward, numbers.Integral) \
                or not 0 <= first_backward < n_ops:
            raise ValueError(f"first_backward must be an op index in [0, {n_ops}), "
                             f"got {first_backward!r}")
        # The ops read frozen parameters too: their slices lie in the whole buffer.
        work_size = self.check_records(records, capacity, update.n_total, buffers.shape[0])
        for capsule in op_kernels:
            if not PyCapsule_IsValid(capsule, OP_CAPSULE):
                raise TypeError("op_kernels must be op kernel capsules such as "
                                "fastnn_ext.layer_ops.DENSE")
        for capsule in activations:
            activation_kernels(capsule)  # a TypeError for anything but an activation table
        check_needs(records, op_kernels, activations, capacity)
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
        self.first_backward = first_backward
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
        if not isinstance(records, np.ndarray) or records.dtype != OP_RECORD \
                or records.ndim != 1 or records.shape[0] == 0:
            raise ValueError("records must be a non-empty 1-D array of OP_RECORD")
        # Python integers from here: sums of int64 fields could wrap.
        records = [{name: (int(r[name]) if OP_RECORD[name].kind == "i" else float(r[name]))
                    for name in OP_RECORD.names} for r in records]
        batch_end = capacity * records[0]["in_size"]
        work_size = batch_end
        for k in range(len(records)):
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
        if work_size >= 2 ** 62:
            raise ValueError(f"the records need a workspace of {work_size} elements")
        return work_size

    @property
    def batch_size(self):
        return self.w.capacity

    def product_work(self):
        """(on_blas, elsewhere): the multiply-adds of a step's matrix products that BLAS
        runs at sizes where it starts its own threads, and all the others.

        A smaller batch never makes a product go to BLAS, so the full batch
        size counts.
        """
        if self.update is None:
            raise ValueError("this EpochPlan was not initialised")
        cdef size_t item = 8 if self.update.double_precision else 4
        cdef double on_blas = 0, elsewhere = 0
        for k in range(self.n_ops):
            if self.tables[k].product_work != NULL:
                on_blas += self.tables[k].product_work(&self.ops[k], self.w.capacity, item,
                                                       &elsewhere)
        return on_blas, elsewhere

    def step_threads(self, n_threads, bint blas_threaded):
        """Threads each update of this plan may use.

        BLAS's own threads spin for a while after each product; threads of ours
        started meanwhile would fight them for the cores (measured: ten times
        slower with two of each on two cores).  ``blas_threaded`` says whether
        BLAS may use more than one thread at all: then a step with a product
        that BLAS would thread gets one.
        """
        n_threads = thread_count(n_threads)
        if blas_threaded and self.product_work()[0] > 0:
            return 1
        return max(1, n_threads)

    def run(self, X, targets, labels, order, learning_rates, generator, n_threads=1,
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
        if self.update is None:
            raise ValueError("this EpochPlan was not initialised")
        cdef int threads = thread_count(n_threads)
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
        try:
            rates = np.ascontiguousarray(learning_rates, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("learning_rates must be a 1-D array of numbers") from None
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
                totals = run_steps[double](self, X, T, label_ptr, order, rates, rng, threads,
                                           weight_ptr)
            else:
                totals = run_steps[float](self, X, T, label_ptr, order, rates, rng, threads,
                                          weight_ptr)
        return totals.loss_sum, totals.n_correct, totals.n_steps, totals.status
