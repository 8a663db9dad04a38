"""A network's forward pass in evaluation mode, in one compiled call.

``InferencePlan`` walks the op records of a network (ops.pxd) — the ones its
layers give the training plan — calling each table's inference forward in
order: dropout is skipped, batch norm uses its running statistics, the
output layer runs as the records say.  Rows go in chunks of ``CHUNK_ROWS``
through two workspaces that the ops alternate between, from the caller's X
to the caller's output array, with the GIL released; the chunks are shared
among OpenMP's threads when there are several.  No op calls BLAS (dense
products are ``row_gemm``), so no BLAS thread pool runs beside them.

Every row is computed by the same arithmetic whatever the chunk it falls in:
a row predicted alone gets the bits it gets inside any batch.

The plan checks its records when built and X, the output and the thread
count when run; X's finiteness is checked chunk by chunk before the chunk
is computed.  The pointer kernels below check nothing.
"""

import numpy as np

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_IsValid, PyCapsule_GetPointer
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport malloc, free

from fastnn_ext.activations cimport ActivationKernels, activation_kernels
from fastnn_ext.ops cimport OpRecord, OpContext, OpKernels, OpNeeds, OP_CAPSULE
from fastnn_ext.row_gemm cimport row_gemm_vector_bits, row_gemm_vectorized
from fastnn_ext.update cimport all_finite, checked_array, thread_count

from fastnn_ext import train as _train

cnp.import_array()

# Rows per chunk: a chunk's activations (two workspaces of the widest op,
# 192 KiB for 256 float32 units) stay in L2 from one op to the next, beside
# the panel of weights a product is reading; at 96 rows row_gemm ran a
# 784×256 float32 product at 68–82 GFLOPS on one core of an AMD EPYC
# (family 25, model 1), 50–56 at 4096 rows.
cdef enum:
    CHUNK = 96

#: rows per compiled chunk
CHUNK_ROWS = CHUNK


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


cdef bint infer_chunk(const Network* net, const floating* x, floating* out, Py_ssize_t rows,
                      floating* work) noexcept nogil:
    """The network on `rows` rows of x into out; False (out untouched) if x is not finite.

    `work` holds two workspaces of rows × width; op k writes into the one it
    does not read, the last op into out.
    """
    if not all_finite(x, rows * net.n_features):
        return False
    cdef OpContext ctx = OpContext(net.params, NULL, net.buffers, NULL, NULL, rows, rows,
                                   NULL, False, 0, 1)
    cdef const floating* src = x
    cdef floating* dst
    cdef Py_ssize_t k
    for k in range(net.n_ops):
        if k == net.n_ops - 1:
            dst = out
        else:
            dst = work + (k % 2) * rows * net.width
        if floating is float:
            net.tables[k].infer32(net.ops[k], net.activations[k], &ctx, src, dst)
        else:
            net.tables[k].infer64(net.ops[k], net.activations[k], &ctx, src, dst)
        src = dst
    return True


cdef Py_ssize_t infer_rows(const Network* net, const floating* x, floating* out,
                           Py_ssize_t n, floating* work, int threads) noexcept nogil:
    """All n rows, chunk by chunk; the number of chunks that were not finite."""
    cdef Py_ssize_t chunk = CHUNK, n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c, start, rows, bad = 0
    cdef Py_ssize_t per_thread = 2 * chunk * net.width
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

    def __cinit__(self):
        self.net.ops = NULL
        self.net.tables = NULL
        self.net.activations = NULL

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
        (capped at OpenMP's limit) share the chunks.  Returns False when X
        holds NaN or ±∞ (out is then partly written), True otherwise.
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
        cdef Py_ssize_t n_chunks = (n + CHUNK - 1) // CHUNK
        threads = <int> max(1, min(threads, n_chunks))
        if n == 0:
            return True
        cdef size_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray> X)
        cdef void* work = malloc(threads * 2 * min(n, CHUNK) * self.net.width * item)
        if work == NULL:
            raise MemoryError()
        cdef Py_ssize_t bad
        with nogil:
            if item == 8:
                bad = infer_rows(&self.net, <const double*> xp, <double*> op, n,
                                 <double*> work, threads)
            else:
                bad = infer_rows(&self.net, <const float*> xp, <float*> op, n,
                                 <float*> work, threads)
            free(work)
        return bad == 0


def vectorized():
    """Whether the dense products run a vector body, AVX-512 or AVX2+FMA (else portable C)."""
    return bool(row_gemm_vectorized())


def vector_bits():
    """The dense products' vector width: 512 (AVX-512), 256 (AVX2+FMA), 0 (portable C)."""
    return row_gemm_vector_bits()
