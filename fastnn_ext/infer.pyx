"""A network's forward pass in evaluation mode, in one compiled call.

``InferencePlan`` walks the op records of a network (ops.pxd) — the ones its
layers give the training plan — calling each table's inference forward in
order: dropout is skipped, batch norm uses its running statistics, the
output layer runs as the records say.  Rows go in chunks of ``CHUNK_ROWS``
through two workspaces that the ops alternate between, from the caller's X
to the caller's output array, with the GIL released; the chunks are shared
among OpenMP's threads when there are several, and a single chunk may share
the columns of its products among them.  No op calls BLAS (dense
products are ``row_gemm``), so no BLAS thread pool runs beside them.

Every row is computed by the same arithmetic whatever the chunk it falls in:
a row predicted alone gets the bits it gets inside any batch.

The plan checks its records when built and X, the output and the thread
count when run; X's finiteness is checked chunk by chunk before the chunk
is computed.  The pointer kernels below check nothing.
"""

import numbers

import numpy as np

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_IsValid, PyCapsule_GetPointer
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport malloc, free
from libc.string cimport memset

from fastnn_ext.activations cimport ActivationKernels, activation_kernels
from fastnn_ext.ops cimport OpRecord, OpContext, OpKernels, OpColumns, OpNeeds, OP_CAPSULE
from fastnn_ext.row_gemm cimport row_gemm_vector_bits, row_gemm_vectorized
from fastnn_ext.update cimport all_finite, checked_array, thread_count

from fastnn_ext import train as _train

cnp.import_array()

cdef extern from "monotonic_clock.h" nogil:
    double seconds "fastnn_seconds" ()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    /* An orphaned barrier: it binds to the team of the calling thread. */
    static void fastnn_team_barrier(void) {
        _Pragma("omp barrier")
    }
    static int fastnn_team_size(void) { return omp_get_num_threads(); }
    #else
    static void fastnn_team_barrier(void) {}
    static int fastnn_team_size(void) { return 1; }
    #endif
    """
    void team_barrier "fastnn_team_barrier" () nogil
    int team_size "fastnn_team_size" () nogil

# Rows per chunk: a chunk's activations (two workspaces of the widest op,
# 192 KiB for 256 float32 units) stay in L2 from one op to the next, beside
# the panel of weights a product is reading; at 96 rows row_gemm ran a
# 784×256 float32 product at 68–82 GFLOPS on one core of an AMD EPYC
# (family 25, model 1), 50–56 at 4096 rows.
cdef enum:
    CHUNK = 96

#: rows per compiled chunk
CHUNK_ROWS = CHUNK

# One chunk may be shared by the columns of its products (infer_ops)
# or run on one thread.  Which is faster depends on the CPU, the network, the
# rows and how busy the other cores are: starting a team and its barriers
# took 1.4–3.5 µs on a 2-core AMD EPYC (KVM, family 26, model 2), where one
# row of a 784×256 product takes about 6.  So each class of row counts (1,
# 2–3, 4–7, … rows) times its first TRIAL_CALLS calls each way, inside the
# user's own calls, and keeps the sharing only if it was SHARED_GAIN times
# faster; it times both ways again after every RETRIAL_CALLS calls, so that
# a choice made while the other core was busy does not stay.
cdef enum:
    TRIAL_CALLS = 8
    RETRIAL_CALLS = 4096
    ROW_CLASSES = 7      # bit lengths of 1 … CHUNK rows
cdef double SHARED_GAIN = 1.1

#: calls of a class of row counts timed each way before it keeps one
TRIAL_CALLS_EACH_WAY = TRIAL_CALLS
#: calls of a class between the end of one trial and the start of the next
CALLS_BETWEEN_TRIALS = RETRIAL_CALLS


cdef inline int row_class(Py_ssize_t rows) noexcept nogil:
    """The bit length of rows less one: 0 for 1 row, 1 for 2–3, … 6 for 64–96."""
    cdef int c = 0
    while rows > 1:
        rows >>= 1
        c += 1
    return c


ctypedef struct Network:
    const OpRecord** ops          # the ops that compute something, in order
    const OpKernels** tables
    const ActivationKernels** activations
    Py_ssize_t n_ops
    void* params
    void* buffers
    Py_ssize_t n_features
    Py_ssize_t n_outputs
    Py_ssize_t width             # the widest intermediate output (workspace row)


cdef inline Py_ssize_t share_start(Py_ssize_t total, int part, int parts) noexcept nogil:
    """Where part `part` of `parts` near-equal shares of total starts (the first
    parts take the remainder)."""
    return (part * total + parts - 1) // parts


cdef Py_ssize_t column_units(const Network* net, Py_ssize_t k, Py_ssize_t rows, size_t item,
                             Py_ssize_t* grain) noexcept nogil:
    """The grains of columns op k's product is shared in, 0 when its columns are not split."""
    cdef const OpColumns* columns = net.tables[k].columns
    if columns == NULL:
        return 0
    grain[0] = max(1, columns.grain(net.ops[k], rows, item))
    cdef Py_ssize_t units = (net.ops[k].out_size + grain[0] - 1) // grain[0]
    return units if units >= 2 else 0


cdef void infer_ops(const Network* net, const floating* x, floating* out, Py_ssize_t rows,
                    floating* work, int part, int parts) noexcept nogil:
    """The network's ops on `rows` rows of x into out, as part `part` of a team of
    `parts` threads (0 of 1: alone): the columns of each product that
    column_units splits are shared, the rest runs on part 0.

    `work` holds two workspaces of rows × width; op k writes into the one it
    does not read, the last op into out.  Part t computes the same columns at
    every call, so each core keeps its share of the weights in its own cache;
    a barrier separates the shares of one product from what reads them, and
    from what they read.
    """
    cdef OpContext ctx = OpContext(net.params, NULL, net.buffers, NULL, NULL, rows, rows,
                                   NULL, False, 0, 1)
    cdef const floating* src = x
    cdef floating* dst
    cdef Py_ssize_t k, units, grain = 1, j0, j1
    cdef bint shared
    for k in range(net.n_ops):
        dst = out if k == net.n_ops - 1 else work + (k % 2) * rows * net.width
        units = column_units(net, k, rows, sizeof(floating), &grain) if parts > 1 else 0
        shared = units != 0
        if shared:
            if k > 0:
                team_barrier()  # every share sees all of src, which part 0 wrote
            j0 = share_start(units, part, parts) * grain
            j1 = min(share_start(units, part + 1, parts) * grain, net.ops[k].out_size)
            if j0 < j1:
                if floating is float:
                    net.tables[k].columns.product32(net.ops[k], &ctx, src, dst, j0, j1)
                else:
                    net.tables[k].columns.product64(net.ops[k], &ctx, src, dst, j0, j1)
            team_barrier()  # part 0 sees every share
        if part != 0:
            pass
        elif floating is float:
            if shared:
                net.tables[k].columns.finish32(net.ops[k], net.activations[k], &ctx, dst)
            else:
                net.tables[k].infer32(net.ops[k], net.activations[k], &ctx, src, dst)
        else:
            if shared:
                net.tables[k].columns.finish64(net.ops[k], net.activations[k], &ctx, dst)
            else:
                net.tables[k].infer64(net.ops[k], net.activations[k], &ctx, src, dst)
        src = dst


cdef bint infer_chunk(const Network* net, const floating* x, floating* out, Py_ssize_t rows,
                      floating* work) noexcept nogil:
    """The network on `rows` rows of x into out on this thread alone; False (out
    untouched) if x is not finite."""
    if not all_finite(x, rows * net.n_features):
        return False
    infer_ops(net, x, out, rows, work, 0, 1)
    return True


cdef Py_ssize_t infer_rows(const Network* net, const floating* x, floating* out,
                           Py_ssize_t n, floating* work, int threads) noexcept nogil:
    """All n rows, chunk by chunk; the number of chunks that were not finite.

    With several threads, chunks are shared among them; a single chunk is
    computed by all of them (infer_ops).
    """
    cdef Py_ssize_t chunk = CHUNK, n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c, start, rows, bad = 0
    cdef Py_ssize_t per_thread = 2 * chunk * net.width
    if threads > 1 and n_chunks == 1:
        if not all_finite(x, n * net.n_features):
            return 1
        with parallel(num_threads=threads):
            infer_ops(net, x, out, n, work, threadid(), team_size())
        return 0
    if threads <= 1:
        for c in range(n_chunks):
            start = c * chunk
            rows = min(chunk, n - start)
            if not infer_chunk(net, x + start * net.n_features, out + start * net.n_outputs,
                               rows, work):
                return 1
        return 0
    # Dynamic: on a shared machine one core may be slower; rows do not care
    # which thread computes them.
    for c in prange(n_chunks, num_threads=threads, schedule="dynamic"):
        start = c * chunk
        rows = min(chunk, n - start)
        if not infer_chunk(net, x + start * net.n_features, out + start * net.n_outputs,
                           rows, work + threadid() * per_thread):
            bad += 1
    return bad


cdef class InferencePlan:
    """A network's op records, ready to predict in one compiled call.

    Parameters
    ----------
    records : ndarray of fastnn_ext.train.OP_RECORD
        One record per op, input to output (``fastnn.plan.PlanBuilder``).
    op_kernels : sequence of capsules
        Each op's ``OpKernels`` table; a table without an inference forward
        is the identity at inference (dropout) and is skipped.
    activations : sequence of capsules
        Each op's activation table.
    params, buffers : ndarray
        The model's flat parameters and non-trainable buffers (read only;
        the plan reads their current values at every call).

    Attributes
    ----------
    n_features, n_outputs : int
        Width of X and of the output.
    """

    cdef Network net
    cdef readonly object params_array, buffers_array, dtype
    cdef object records, keep
    cdef size_t item_size
    # per row class: calls since its last trial began (the first 2 ×
    # TRIAL_CALLS are timed), the best seconds per row on one thread and
    # shared, and the choice once a trial has ended
    cdef int trial_calls[ROW_CLASSES]
    cdef double best_per_row[ROW_CLASSES][2]
    cdef bint decided[ROW_CLASSES]
    cdef bint chunk_shared[ROW_CLASSES]

    def __cinit__(self):
        self.net.ops = NULL
        self.net.tables = NULL
        self.net.activations = NULL
        memset(self.trial_calls, 0, sizeof(self.trial_calls))
        memset(self.decided, 0, sizeof(self.decided))
        memset(self.chunk_shared, 0, sizeof(self.chunk_shared))

    def __dealloc__(self):
        free(self.net.ops)
        free(self.net.tables)
        free(self.net.activations)

    def __init__(self, records, op_kernels, activations, params, buffers):
        if self.net.ops != NULL:
            raise TypeError("an InferencePlan is initialised once; make a new one")
        if not isinstance(records, np.ndarray) or records.dtype != _train.OP_RECORD \
                or records.ndim != 1:
            raise TypeError("records must be a 1-D array of fastnn_ext.train.OP_RECORD")
        records = np.ascontiguousarray(records)
        n_ops = records.shape[0]
        op_kernels, activations = list(op_kernels), list(activations)
        if len(op_kernels) != n_ops or len(activations) != n_ops:
            raise ValueError(f"{n_ops} records need {n_ops} op kernels and activations, got "
                             f"{len(op_kernels)} and {len(activations)}")
        if not isinstance(params, np.ndarray) or params.ndim != 1 \
                or params.dtype not in (np.float32, np.float64):
            raise TypeError("params must be a 1-D float32 or float64 array")
        if not isinstance(buffers, np.ndarray) or buffers.ndim != 1:
            raise TypeError("buffers must be a 1-D numpy array")
        checked_array("params", params, params.dtype, params.shape)
        checked_array("buffers", buffers, params.dtype, buffers.shape)
        # Offsets, chaining and slices as the training plan checks them; the
        # workspace offsets are not used here.
        _train.EpochPlan.check_records(records, 1, params.shape[0], buffers.shape[0])
        for capsule in op_kernels:
            if not PyCapsule_IsValid(capsule, OP_CAPSULE):
                raise TypeError("op_kernels must be op kernel capsules such as "
                                "fastnn_ext.layer_ops.DENSE")
        for capsule in activations:
            activation_kernels(capsule)
        self.keep = (op_kernels, activations)
        self.records = records
        self.net.ops = <const OpRecord**> malloc(n_ops * sizeof(void*))
        self.net.tables = <const OpKernels**> malloc(n_ops * sizeof(void*))
        self.net.activations = <const ActivationKernels**> malloc(n_ops * sizeof(void*))
        if self.net.ops == NULL or self.net.tables == NULL or self.net.activations == NULL:
            raise MemoryError()
        cdef const OpRecord* first = <const OpRecord*> <size_t> records.ctypes.data
        cdef const OpKernels* table
        cdef const ActivationKernels* act
        cdef OpNeeds needs
        cdef Py_ssize_t active = 0, width = 1
        for k in range(n_ops):
            table = <const OpKernels*> PyCapsule_GetPointer(op_kernels[k], OP_CAPSULE)
            act = activation_kernels(activations[k])
            needs = table.needs(&first[k], act, 1)
            for name, want in (("weight_size", needs.weight_size),
                               ("bias_size", needs.bias_size),
                               ("state_size", needs.state_size)):
                if records[k][name] != want:
                    raise ValueError(f"op {k}: {name} is {records[k][name]}, its kernels "
                                     f"use {want}")
            if (table.infer32 == NULL) != (table.infer64 == NULL):
                raise TypeError(f"op {k}: its table has an inference forward for one "
                                "precision only")
            if table.columns != NULL and (
                    table.columns.grain == NULL or table.columns.product32 == NULL
                    or table.columns.product64 == NULL or table.columns.finish32 == NULL
                    or table.columns.finish64 == NULL):
                raise TypeError(f"op {k}: its table's column split lacks a kernel")
            if table.infer32 == NULL:
                if first[k].in_size != first[k].out_size:
                    raise ValueError(f"op {k} is skipped at inference but changes the width")
                continue
            self.net.ops[active] = &first[k]
            self.net.tables[active] = table
            self.net.activations[active] = act
            width = max(width, first[k].out_size)
            active += 1
        if active == 0:
            raise ValueError("a network that only passes its input through has nothing "
                             "to compute")
        self.net.n_ops = active
        self.net.width = width
        self.net.n_features = first[0].in_size
        self.net.n_outputs = first[n_ops - 1].out_size
        self.net.params = <void*> <size_t> params.ctypes.data
        self.net.buffers = <void*> <size_t> buffers.ctypes.data
        self.params_array, self.buffers_array, self.dtype = params, buffers, params.dtype
        self.item_size = params.dtype.itemsize

    @property
    def n_features(self):
        return self.net.n_features

    @property
    def n_outputs(self):
        return self.net.n_outputs

    def run(self, X, out, n_threads=1):
        """Write the network's outputs for the rows of X into out.

        X is a C-contiguous (n, n_features) array and out a C-contiguous
        (n, n_outputs) array, both of the parameters' dtype; ``n_threads``
        (capped at OpenMP's limit) share the chunks, or the columns of the
        products where X is a single chunk.  Returns False when X holds NaN
        or ±∞ (out is then partly written), True otherwise.
        """
        if self.net.ops == NULL:
            raise ValueError("this InferencePlan was not initialised")
        dtype = self.dtype
        if not (isinstance(X, np.ndarray) and X.dtype == dtype
                and cnp.PyArray_NDIM(<cnp.ndarray> X) == 2
                and cnp.PyArray_DIMS(<cnp.ndarray> X)[1] == self.net.n_features
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> X)):
            raise ValueError(f"X must be a C-contiguous {dtype} array of "
                             f"{self.net.n_features} columns")
        cdef Py_ssize_t n = cnp.PyArray_DIMS(<cnp.ndarray> X)[0]
        if not (isinstance(out, np.ndarray) and out.dtype == dtype
                and cnp.PyArray_NDIM(<cnp.ndarray> out) == 2
                and cnp.PyArray_DIMS(<cnp.ndarray> out)[0] == n
                and cnp.PyArray_DIMS(<cnp.ndarray> out)[1] == self.net.n_outputs
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> out)
                and cnp.PyArray_ISWRITEABLE(<cnp.ndarray> out)):
            raise ValueError(f"out must be a writeable C-contiguous {dtype} array of shape "
                             f"({n}, {self.net.n_outputs})")
        cdef size_t xp = <size_t> cnp.PyArray_DATA(<cnp.ndarray> X)
        cdef size_t op = <size_t> cnp.PyArray_DATA(<cnp.ndarray> out)
        cdef size_t x_bytes = n * self.net.n_features * cnp.PyArray_ITEMSIZE(<cnp.ndarray> X)
        cdef size_t out_bytes = n * self.net.n_outputs * cnp.PyArray_ITEMSIZE(<cnp.ndarray> X)
        if n and xp < op + out_bytes and op < xp + x_bytes:
            raise ValueError("out must not overlap X")
        # One thread needs no look at OpenMP's limit (a call of one row).
        cdef int threads = 1 if n_threads is 1 else thread_count(n_threads)
        return self.compute(<const void*> xp, <void*> op, n, threads)

    def predict(self, X, n_threads=1):
        """The network's outputs for X in a new array, or None for an X to convert first.

        X is a C-contiguous array of the parameters' dtype: (n, n_features)
        rows, n ≥ 1, give (n, n_outputs) outputs, one sample (n_features,)
        gives (n_outputs,).  None for any other X, and for an X holding NaN
        or ±∞: the caller converts and checks it (``fastnn.inference``).

        Up to ``n_threads`` threads (capped at OpenMP's limit): rows
        beyond one chunk are shared chunk by chunk; one chunk
        is shared by the columns of its products, or runs on one thread,
        whichever measured faster for its class of row counts
        (``shares_chunk``).  The outputs have the same bits either way.
        """
        if not (isinstance(X, np.ndarray)
                and <object> cnp.PyArray_DESCR(<cnp.ndarray> X) is self.dtype
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> X)):
            return None
        cdef int ndim = cnp.PyArray_NDIM(<cnp.ndarray> X)
        cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(<cnp.ndarray> X)
        if not (1 <= ndim <= 2 and dims[ndim - 1] == self.net.n_features
                and (ndim == 1 or dims[0] >= 1)):
            return None
        cdef Py_ssize_t n = 1 if ndim == 1 else dims[0]
        cdef cnp.npy_intp out_dims[2]
        out_dims[0] = n
        out_dims[1] = self.net.n_outputs
        out = cnp.PyArray_EMPTY(ndim, out_dims + (2 - ndim), cnp.PyArray_TYPE(<cnp.ndarray> X),
                                0)
        cdef const void* x = cnp.PyArray_DATA(<cnp.ndarray> X)
        cdef void* y = cnp.PyArray_DATA(<cnp.ndarray> out)
        cdef int threads = 1 if n_threads is 1 else thread_count(n_threads)
        cdef bint finite
        if n > CHUNK or threads == 1:
            finite = self.compute(x, y, n, threads)
        else:
            finite = self.compute_chunk(x, y, n, threads)
        return out if finite else None

    def shares_chunk(self, n_rows):
        """Whether a call of ``n_rows`` rows (one chunk) shares the columns of
        its products among threads: True or False once measured, None before."""
        if isinstance(n_rows, bool) or not isinstance(n_rows, numbers.Integral):
            raise TypeError(f"n_rows must be an integer, got {n_rows!r}")
        if not 1 <= n_rows <= CHUNK:
            raise ValueError(f"n_rows must be in [1, {CHUNK}], got {n_rows!r}")
        cdef int c = row_class(n_rows)
        return bool(self.chunk_shared[c]) if self.decided[c] else None

    cdef bint compute_chunk(self, const void* x, void* y, Py_ssize_t n,
                            int max_threads) except -1:
        """One chunk on one thread or shared by max_threads, as its row class chose;
        while the class is timing, its first calls run on one thread, the next shared."""
        cdef int c = row_class(n)
        cdef int calls = self.trial_calls[c]
        if calls >= 2 * TRIAL_CALLS:
            self.trial_calls[c] = 0 if calls >= 2 * TRIAL_CALLS + RETRIAL_CALLS else calls + 1
            return self.compute(x, y, n, max_threads if self.chunk_shared[c] else 1)
        cdef bint shared = calls >= TRIAL_CALLS
        cdef double start = seconds()
        cdef bint finite = self.compute(x, y, n, max_threads if shared else 1)
        cdef double per_row = (seconds() - start) / n
        if finite:
            if calls % TRIAL_CALLS == 0 or per_row < self.best_per_row[c][shared]:
                self.best_per_row[c][shared] = per_row
            self.trial_calls[c] = calls + 1
            if calls + 1 == 2 * TRIAL_CALLS:
                self.chunk_shared[c] = (SHARED_GAIN * self.best_per_row[c][1]
                                        < self.best_per_row[c][0])
                self.decided[c] = True
        return finite

    cdef bint compute(self, const void* x, void* y, Py_ssize_t n, int threads) except -1:
        """The outputs of n rows at x into y with up to `threads` threads; False
        when x is not finite (y then partly written)."""
        if n == 0:
            return True
        cdef Py_ssize_t n_chunks = (n + CHUNK - 1) // CHUNK
        # a single chunk is shared by columns, in one workspace
        cdef Py_ssize_t workspaces = 1 if n_chunks == 1 else min(threads, n_chunks)
        threads = <int> max(1, threads if n_chunks == 1 else workspaces)
        cdef size_t item = self.item_size
        cdef void* work = malloc(workspaces * 2 * min(n, CHUNK) * self.net.width * item)
        if work == NULL:
            raise MemoryError()
        cdef Py_ssize_t bad
        with nogil:
            if item == 8:
                bad = infer_rows(&self.net, <const double*> x, <double*> y, n,
                                 <double*> work, threads)
            else:
                bad = infer_rows(&self.net, <const float*> x, <float*> y, n,
                                 <float*> work, threads)
            free(work)
        return bad == 0


def vectorized():
    """Whether the dense products run a vector body, AVX-512 or AVX2+FMA (else portable C)."""
    return bool(row_gemm_vectorized())


def vector_bits():
    """The dense products' vector width: 512 (AVX-512), 256 (AVX2+FMA), 0 (portable C)."""
    return row_gemm_vector_bits()
