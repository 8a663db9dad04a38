# The compiled form of a layer: an op record and a kernel table.
#
# A layer with a compiled form describes itself (fastnn/layers.py) as one or
# more op records — named offsets into the model's flat buffers and its
# scalar settings — and names its kernel table, exported by the module that
# implements it as a capsule named OP_CAPSULE.  The training loop
# (train.pyx) walks the records, calling each table's forward in order and
# its backward in reverse; the inference plan (infer.pyx) calls each table's
# inference forward in order.  Neither knows a layer by name.  A new kind of layer is
# its kernels, its table and its layer class.
#
# Sizes are elements per sample (a row of a buffer), so a layer whose input
# or output is not a plain vector (an image, a sequence) fits as well: its
# kernels interpret the row.

from libc.stdint cimport int64_t
from numpy.random cimport bitgen_t
from fastnn_ext.activations cimport ActivationKernels

# The layout of OpRecord is mirrored by fastnn_ext.train.OP_RECORD (a NumPy
# record dtype); train.pyx checks that both have the same size.
ctypedef struct OpRecord:
    int64_t in_size        # input elements per sample
    int64_t out_size       # output elements per sample
    int64_t input          # workspace offset of the input (0: the gathered batch)
    int64_t output         # workspace offset of the output
    int64_t saved          # workspace offset of what backward needs beyond input
                           # and output (dropout mask, batch-norm x̂, pre-activation)
    int64_t saved_size     #   and its length in elements (0: none)
    int64_t weight         # params/grads offset: W, PReLU slopes, batch-norm γ (-1: none)
    int64_t weight_size
    int64_t bias           # params/grads offset: b, batch-norm β (-1: none)
    int64_t bias_size
    int64_t state          # offset in the non-trainable buffers (-1: none)
    int64_t state_size
    int64_t need_grad_in   # 1 when an earlier op has parameters
    double alpha           # the activation's parameter (LeakyReLU's slope)
    double rate            # dropout: probability of dropping a unit
    double momentum        # batch norm: weight of a batch in the running statistics
    double eps             # batch norm: added to the variance

# What one step of the loop hands to every op.  The buffers are in the
# model's dtype; a kernel's precision is the one of its `work` argument.
ctypedef struct OpContext:
    void* params
    void* grads
    void* buffers
    void* work             # activations of every op, `capacity` rows each
    void* delta            # their gradients, same layout as work
    Py_ssize_t rows        # rows of this batch (≤ capacity)
    Py_ssize_t capacity
    bitgen_t* rng
    bint fused_sgd         # dense weights: w ← keep·w − lr·∂L/∂w instead of ∂L/∂w
    double lr
    double keep

ctypedef void (*OpForward32)(const OpRecord* op, const ActivationKernels* act,
                             const OpContext* ctx, float* work) noexcept nogil
ctypedef void (*OpForward64)(const OpRecord* op, const ActivationKernels* act,
                             const OpContext* ctx, double* work) noexcept nogil
# backward: delta at op.output holds ∂L/∂output; write ∂L/∂input at op.input
# when op.need_grad_in, and the parameters' gradients into grads.
ctypedef OpForward32 OpBackward32
ctypedef OpForward64 OpBackward64
# inference: y = the op's output for input x, `ctx.rows` rows, the network in
# evaluation mode (dropout the identity, batch norm with its running
# statistics); reads ctx.params and ctx.buffers only.  x and y are rows of
# op.in_size and op.out_size elements and do not overlap.  NULL: the op is
# the identity at inference, and the plan skips it.
ctypedef void (*OpInfer32)(const OpRecord* op, const ActivationKernels* act,
                           const OpContext* ctx, const float* x, float* y) noexcept nogil
ctypedef void (*OpInfer64)(const OpRecord* op, const ActivationKernels* act,
                           const OpContext* ctx, const double* x, double* y) noexcept nogil
# inference split by columns, for an op that is a product followed by
# element-wise work (a dense layer): `product` writes columns [j0, j1) of
# the product x·W into y (ctx.rows rows of op.out_size elements, the other
# columns untouched); `finish` then completes ctx.rows rows of y in place
# (bias and activation).  A product over every column, then `finish`, is the
# op's inference forward, to the bit; threads may share the columns of the
# product and the rows of the finish.  `grain(op, rows, item_size)`: a
# column range that starts at a multiple of it runs as fast, per column, as
# the whole product.
ctypedef void (*OpProduct32)(const OpRecord* op, const OpContext* ctx, const float* x,
                             float* y, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
ctypedef void (*OpProduct64)(const OpRecord* op, const OpContext* ctx, const double* x,
                             double* y, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
ctypedef void (*OpFinish32)(const OpRecord* op, const ActivationKernels* act,
                            const OpContext* ctx, float* y) noexcept nogil
ctypedef void (*OpFinish64)(const OpRecord* op, const ActivationKernels* act,
                            const OpContext* ctx, double* y) noexcept nogil
ctypedef Py_ssize_t (*OpColumnGrain)(const OpRecord* op, Py_ssize_t rows,
                                     size_t item_size) noexcept nogil

ctypedef struct OpColumns:
    OpColumnGrain grain
    OpProduct32 product32
    OpProduct64 product64
    OpFinish32 finish32
    OpFinish64 finish64

# The multiply-adds of the matrix products of a step over `rows` rows: those
# BLAS runs at a size where it starts its own threads are returned, the
# others added to *elsewhere (NULL: the op runs no matrix product).
ctypedef double (*OpProductWork)(const OpRecord* op, Py_ssize_t rows, size_t item_size,
                                 double* elsewhere) noexcept nogil

# What an op's kernels read and write beyond its input and output, for a
# record and batches of `capacity` rows: the plan refuses a record whose
# slices differ, so no kernel ever leaves its buffers.
ctypedef struct OpNeeds:
    int64_t weight_size
    int64_t bias_size
    int64_t state_size
    int64_t saved_size
    bint same_width        # out_size must equal in_size
ctypedef OpNeeds (*OpSizes)(const OpRecord* op, const ActivationKernels* act,
                            Py_ssize_t capacity) noexcept nogil

ctypedef struct OpKernels:
    OpForward32 forward32
    OpForward64 forward64
    OpBackward32 backward32
    OpBackward64 backward64
    OpProductWork product_work
    OpSizes needs
    OpInfer32 infer32
    OpInfer64 infer64
    const OpColumns* columns   # NULL: the op's inference is not split by columns

cdef extern from *:
    """
    #define FASTNN_OP_CAPSULE "fastnn.OpKernels"
    """
    const char* OP_CAPSULE "FASTNN_OP_CAPSULE"
