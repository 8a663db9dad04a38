"""The compiled forms of fastnn's layers: one kernel table per kind of op.

Each table (``OpKernels``, ops.pxd) is exported as a capsule — ``DENSE``,
``ACTIVATION``, ``SOFTMAX``, ``PRELU``, ``DROPOUT``, ``BATCHNORM`` — that the
layer classes of ``fastnn.layers`` name in their op records; a frozen layer
(``trainable = False``) names ``DENSE_FROZEN`` or ``BATCHNORM_FROZEN``, whose
backward passes only the input gradient on and leave the parameters alone.  The kernels do
the same arithmetic, call for call, as the layer-by-layer path, which calls
the same pointer kernels through the checked wrappers of ``dense``,
``activations``, ``dropout`` and ``batchnorm``.  They trust their records: the
plan (train.pyx) checks every offset before the first step.

Each table's inference forward (``infer32``/``infer64``) computes the op in
evaluation mode between two arrays given by pointer, for the inference plan
(infer.pyx): the element-wise ops are the training forward itself, batch
norm is the affine map of its running statistics, dropout is the identity
(no entry), and a dense product is ``row_gemm``, whose rows do not depend on
the batch they are computed in.  A dense table also gives its product and
its bias-and-activation apart (``OpColumns``), so that the plan may share
the product's columns among threads.
"""

from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating

from fastnn_ext.ops cimport OpRecord, OpContext, OpKernels, OpColumns, OpNeeds, OP_CAPSULE

from fastnn_ext.activations cimport (ActivationKernels, activation_forward,
                                     activation_backward, add_bias, softmax_forward,
                                     softmax_backward, prelu_forward, prelu_backward)
from fastnn_ext.batchnorm cimport (batchnorm_forward_train, batchnorm_backward,
                                   batchnorm_forward_eval, batchnorm_backward_eval)
from fastnn_ext.blas cimport gemm
from fastnn_ext.dense cimport (dense_forward, dense_backward, dense_backward_sgd,
                               dense_product_work)
from fastnn_ext.dropout cimport dropout_forward, dropout_backward
from fastnn_ext.row_gemm cimport row_gemm_columns, row_gemm_grain


cdef inline floating* grad_in_of(const OpRecord* op, floating* delta) noexcept nogil:
    """Where ∂L/∂input goes, or NULL when no earlier op needs it."""
    return delta + op.input if op.need_grad_in else NULL


# -- dense: y = f(x·W + b), f fused; f's pre-activation kept in `saved` if
#    its derivative needs it --------------------------------------------------

cdef void dense_op_forward(const OpRecord* op, const ActivationKernels* act,
                           const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* params = <floating*> ctx.params
    cdef floating* bias = params + op.bias if op.bias >= 0 else NULL
    cdef floating* z
    cdef Py_ssize_t m = ctx.rows
    if act.needs_input:
        z = work + op.saved
        gemm(False, False, <int> m, <int> op.out_size, <int> op.in_size, <floating> 1,
             work + op.input, <int> op.in_size, params + op.weight, <int> op.out_size,
             <floating> 0, z, <int> op.out_size)
        add_bias(z, bias, z, m, op.out_size)
        activation_forward(act, z, <floating*> NULL, work + op.output, m, op.out_size,
                           <floating> op.alpha)
    else:
        dense_forward(work + op.input, params + op.weight, bias, work + op.output,
                      m, op.in_size, op.out_size, act, <floating> op.alpha)


cdef void dense_op_product(const OpRecord* op, const OpContext* ctx, const floating* x,
                           floating* y, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    row_gemm_columns(x, <const floating*> ctx.params + op.weight, y, ctx.rows, op.in_size,
                     op.out_size, j0, j1)


cdef void dense_op_finish(const OpRecord* op, const ActivationKernels* act,
                          const OpContext* ctx, floating* y) noexcept nogil:
    # f(z + b) fused, as the layer path's bias and activation compute it
    # element by element, whole rows at a time (a vectorized activation's
    # bits may depend on an element's place in the loop).
    cdef const floating* params = <const floating*> ctx.params
    activation_forward(act, y, params + op.bias if op.bias >= 0 else <floating*> NULL, y,
                       ctx.rows, op.out_size, <floating> op.alpha)


cdef Py_ssize_t dense_op_grain(const OpRecord* op, Py_ssize_t rows,
                               size_t item_size) noexcept nogil:
    return row_gemm_grain(rows, item_size)


cdef void dense_op_infer(const OpRecord* op, const ActivationKernels* act,
                         const OpContext* ctx, const floating* x, floating* y) noexcept nogil:
    # nothing is kept for a backward pass
    dense_op_product(op, ctx, x, y, 0, op.out_size)
    dense_op_finish(op, act, ctx, y)


cdef void dense_op_backward(const OpRecord* op, const ActivationKernels* act,
                            const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* params = <floating*> ctx.params
    cdef floating* grads = <floating*> ctx.grads
    cdef floating* delta = <floating*> ctx.delta
    cdef floating* grad_out = delta + op.output
    cdef floating* grad_bias = grads + op.bias if op.bias >= 0 else NULL
    cdef Py_ssize_t m = ctx.rows
    if not act.is_identity:
        activation_backward(act, work + op.saved if act.needs_input else <floating*> NULL,
                            work + op.output, grad_out, grad_out, m * op.out_size,
                            <floating> op.alpha)
    if ctx.fused_sgd:
        dense_backward_sgd(work + op.input, params + op.weight, grad_out,
                           grad_in_of(op, delta), grad_bias, m, op.in_size, op.out_size,
                           <floating> ctx.lr, <floating> ctx.keep)
    else:
        dense_backward(work + op.input, params + op.weight, grad_out, grad_in_of(op, delta),
                       grads + op.weight, grad_bias, m, op.in_size, op.out_size, False)


cdef void dense_frozen_op_backward(const OpRecord* op, const ActivationKernels* act,
                                   const OpContext* ctx, floating* work) noexcept nogil:
    """A frozen dense layer: only ∂L/∂x = dZ·Wᵀ, the product dense_backward makes."""
    cdef floating* delta = <floating*> ctx.delta
    cdef floating* grad_out = delta + op.output
    cdef Py_ssize_t m = ctx.rows
    if not op.need_grad_in:
        return
    if not act.is_identity:
        activation_backward(act, work + op.saved if act.needs_input else <floating*> NULL,
                            work + op.output, grad_out, grad_out, m * op.out_size,
                            <floating> op.alpha)
    gemm(False, True, <int> m, <int> op.in_size, <int> op.out_size,
         <floating> 1, grad_out, <int> op.out_size, <floating*> ctx.params + op.weight,
         <int> op.out_size, <floating> 0, delta + op.input, <int> op.in_size)


cdef OpNeeds dense_op_needs(const OpRecord* op, const ActivationKernels* act,
                            Py_ssize_t capacity) noexcept nogil:
    return OpNeeds(op.in_size * op.out_size, op.out_size, 0,
                   capacity * op.out_size if act.needs_input else 0, False)


cdef double dense_op_product_work(const OpRecord* op, Py_ssize_t rows, size_t item_size,
                                  double* elsewhere) noexcept nogil:
    return dense_product_work(rows, op.in_size, op.out_size, op.need_grad_in != 0, item_size,
                              elsewhere)


# -- an element-wise activation on its own -------------------------------------

cdef void activation_op_infer(const OpRecord* op, const ActivationKernels* act,
                              const OpContext* ctx, const floating* x, floating* y) noexcept nogil:
    activation_forward(act, x, <floating*> NULL, y, ctx.rows, op.out_size,
                       <floating> op.alpha)


cdef void activation_op_forward(const OpRecord* op, const ActivationKernels* act,
                                const OpContext* ctx, floating* work) noexcept nogil:
    activation_op_infer(op, act, ctx, work + op.input, work + op.output)


cdef void activation_op_backward(const OpRecord* op, const ActivationKernels* act,
                                 const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* delta = <floating*> ctx.delta
    if op.need_grad_in:
        activation_backward(act, work + op.input if act.needs_input else <floating*> NULL,
                            work + op.output, delta + op.output, delta + op.input,
                            ctx.rows * op.out_size, <floating> op.alpha)


cdef OpNeeds nothing_more(const OpRecord* op, const ActivationKernels* act,
                          Py_ssize_t capacity) noexcept nogil:
    """An element-wise op that keeps nothing of its own (activation, softmax)."""
    return OpNeeds(0, 0, 0, 0, True)


# -- softmax --------------------------------------------------------------------

cdef void softmax_op_infer(const OpRecord* op, const ActivationKernels* act,
                           const OpContext* ctx, const floating* x, floating* y) noexcept nogil:
    softmax_forward(x, y, ctx.rows, op.out_size)


cdef void softmax_op_forward(const OpRecord* op, const ActivationKernels* act,
                             const OpContext* ctx, floating* work) noexcept nogil:
    softmax_op_infer(op, act, ctx, work + op.input, work + op.output)


cdef void softmax_op_backward(const OpRecord* op, const ActivationKernels* act,
                              const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* delta = <floating*> ctx.delta
    if op.need_grad_in:
        softmax_backward(work + op.output, delta + op.output, delta + op.input, ctx.rows,
                         op.out_size)


# -- PReLU: a learned slope per unit -----------------------------------------------

cdef void prelu_op_infer(const OpRecord* op, const ActivationKernels* act,
                         const OpContext* ctx, const floating* x, floating* y) noexcept nogil:
    prelu_forward(x, <const floating*> ctx.params + op.weight, y, ctx.rows, op.out_size)


cdef void prelu_op_forward(const OpRecord* op, const ActivationKernels* act,
                           const OpContext* ctx, floating* work) noexcept nogil:
    prelu_op_infer(op, act, ctx, work + op.input, work + op.output)


cdef void prelu_op_backward(const OpRecord* op, const ActivationKernels* act,
                            const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* delta = <floating*> ctx.delta
    # The slope gradient is needed even when the input gradient is not.
    prelu_backward(work + op.input, <floating*> ctx.params + op.weight, delta + op.output,
                   delta + op.input, <floating*> ctx.grads + op.weight, ctx.rows, op.out_size)


cdef OpNeeds prelu_op_needs(const OpRecord* op, const ActivationKernels* act,
                            Py_ssize_t capacity) noexcept nogil:
    return OpNeeds(op.out_size, 0, 0, 0, True)


# -- inverted dropout; the mask is kept in `saved` -------------------------------------

cdef void dropout_op_forward(const OpRecord* op, const ActivationKernels* act,
                             const OpContext* ctx, floating* work) noexcept nogil:
    dropout_forward(ctx.rng, work + op.input, work + op.output, work + op.saved,
                    ctx.rows * op.out_size, op.rate)


cdef OpNeeds dropout_op_needs(const OpRecord* op, const ActivationKernels* act,
                              Py_ssize_t capacity) noexcept nogil:
    return OpNeeds(0, 0, 0, capacity * op.out_size, True)


cdef void dropout_op_backward(const OpRecord* op, const ActivationKernels* act,
                              const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* delta = <floating*> ctx.delta
    if op.need_grad_in:
        dropout_backward(delta + op.output, work + op.saved, delta + op.input,
                         ctx.rows * op.out_size)


# -- batch normalization (training mode); `saved` holds x̂ (capacity rows), then
#    the batch mean and 1/σ (one row each); `state` the running mean, then the
#    running variance --------------------------------------------------------------

def batchnorm_saved_size(width, rows):
    """Elements of `saved` a batch-norm op of this width needs for batches of `rows`."""
    for name, value in (("width", width), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2 ** 31:
            raise ValueError(f"{name} must be an integer in [1, 2^31), got {value!r}")
    return (rows + 2) * width


cdef OpNeeds batchnorm_op_needs(const OpRecord* op, const ActivationKernels* act,
                                Py_ssize_t capacity) noexcept nogil:
    return OpNeeds(op.out_size, op.out_size, 2 * op.out_size, (capacity + 2) * op.out_size,
                   True)


cdef void batchnorm_op_forward(const OpRecord* op, const ActivationKernels* act,
                               const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* params = <floating*> ctx.params
    cdef floating* running = <floating*> ctx.buffers + op.state
    cdef floating* xhat = work + op.saved
    cdef Py_ssize_t n = op.out_size
    batchnorm_forward_train(work + op.input, params + op.weight, params + op.bias,
                            work + op.output, xhat, xhat + ctx.capacity * n,
                            xhat + (ctx.capacity + 1) * n, running, running + n,
                            ctx.rows, n, op.momentum, op.eps)


cdef void batchnorm_op_infer(const OpRecord* op, const ActivationKernels* act,
                             const OpContext* ctx, const floating* x, floating* y) noexcept nogil:
    cdef const floating* params = <const floating*> ctx.params
    cdef const floating* running = <const floating*> ctx.buffers + op.state
    batchnorm_forward_eval(x, params + op.weight, params + op.bias, y, running,
                           running + op.out_size, ctx.rows, op.out_size, op.eps)


cdef void batchnorm_op_backward(const OpRecord* op, const ActivationKernels* act,
                                const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* grads = <floating*> ctx.grads
    cdef floating* delta = <floating*> ctx.delta
    cdef floating* xhat = work + op.saved
    cdef Py_ssize_t n = op.out_size
    batchnorm_backward(delta + op.output, xhat, <floating*> ctx.params + op.weight,
                       xhat + (ctx.capacity + 1) * n, delta + op.input,
                       grads + op.weight, grads + op.bias, ctx.rows, n)


# -- a frozen batch normalization: inference mode while training too (Keras's
#    choice), the affine map of the running statistics, which stay as they are

cdef void batchnorm_frozen_op_forward(const OpRecord* op, const ActivationKernels* act,
                                      const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* params = <floating*> ctx.params
    cdef floating* running = <floating*> ctx.buffers + op.state
    batchnorm_forward_eval(work + op.input, params + op.weight, params + op.bias,
                           work + op.output, running, running + op.out_size, ctx.rows,
                           op.out_size, op.eps)


cdef void batchnorm_frozen_op_backward(const OpRecord* op, const ActivationKernels* act,
                                       const OpContext* ctx, floating* work) noexcept nogil:
    cdef floating* delta = <floating*> ctx.delta
    cdef floating* running = <floating*> ctx.buffers + op.state
    if op.need_grad_in:
        # γ's and β's gradients land in their own (frozen) slots, unused.
        batchnorm_backward_eval(delta + op.output, work + op.input,
                                <floating*> ctx.params + op.weight, running,
                                running + op.out_size, delta + op.input,
                                <floating*> ctx.grads + op.weight,
                                <floating*> ctx.grads + op.bias, ctx.rows, op.out_size,
                                op.eps)


cdef OpNeeds batchnorm_frozen_op_needs(const OpRecord* op, const ActivationKernels* act,
                                       Py_ssize_t capacity) noexcept nogil:
    return OpNeeds(op.out_size, op.out_size, 2 * op.out_size, 0, True)


cdef OpColumns DENSE_COLUMNS = OpColumns(
    dense_op_grain, dense_op_product[float], dense_op_product[double], dense_op_finish[float],
    dense_op_finish[double])

cdef OpKernels DENSE_KERNELS = OpKernels(
    dense_op_forward[float], dense_op_forward[double],
    dense_op_backward[float], dense_op_backward[double], dense_op_product_work, dense_op_needs,
    dense_op_infer[float], dense_op_infer[double], &DENSE_COLUMNS)
cdef OpKernels DENSE_FROZEN_KERNELS = OpKernels(
    dense_op_forward[float], dense_op_forward[double],
    dense_frozen_op_backward[float], dense_frozen_op_backward[double], dense_op_product_work,
    dense_op_needs, dense_op_infer[float], dense_op_infer[double], &DENSE_COLUMNS)
cdef OpKernels ACTIVATION_KERNELS = OpKernels(
    activation_op_forward[float], activation_op_forward[double],
    activation_op_backward[float], activation_op_backward[double], NULL, nothing_more,
    activation_op_infer[float], activation_op_infer[double], NULL)
cdef OpKernels SOFTMAX_KERNELS = OpKernels(
    softmax_op_forward[float], softmax_op_forward[double],
    softmax_op_backward[float], softmax_op_backward[double], NULL, nothing_more,
    softmax_op_infer[float], softmax_op_infer[double], NULL)
cdef OpKernels PRELU_KERNELS = OpKernels(
    prelu_op_forward[float], prelu_op_forward[double],
    prelu_op_backward[float], prelu_op_backward[double], NULL, prelu_op_needs,
    prelu_op_infer[float], prelu_op_infer[double], NULL)
cdef OpKernels DROPOUT_KERNELS = OpKernels(
    dropout_op_forward[float], dropout_op_forward[double],
    dropout_op_backward[float], dropout_op_backward[double], NULL, dropout_op_needs,
    NULL, NULL, NULL)  # the identity at inference
cdef OpKernels BATCHNORM_KERNELS = OpKernels(
    batchnorm_op_forward[float], batchnorm_op_forward[double],
    batchnorm_op_backward[float], batchnorm_op_backward[double], NULL, batchnorm_op_needs,
    batchnorm_op_infer[float], batchnorm_op_infer[double], NULL)
cdef OpKernels BATCHNORM_FROZEN_KERNELS = OpKernels(
    batchnorm_frozen_op_forward[float], batchnorm_frozen_op_forward[double],
    batchnorm_frozen_op_backward[float], batchnorm_frozen_op_backward[double], NULL,
    batchnorm_frozen_op_needs, batchnorm_op_infer[float], batchnorm_op_infer[double], NULL)

DENSE = PyCapsule_New(&DENSE_KERNELS, OP_CAPSULE, NULL)
ACTIVATION = PyCapsule_New(&ACTIVATION_KERNELS, OP_CAPSULE, NULL)
SOFTMAX = PyCapsule_New(&SOFTMAX_KERNELS, OP_CAPSULE, NULL)
PRELU = PyCapsule_New(&PRELU_KERNELS, OP_CAPSULE, NULL)
DROPOUT = PyCapsule_New(&DROPOUT_KERNELS, OP_CAPSULE, NULL)
BATCHNORM = PyCapsule_New(&BATCHNORM_KERNELS, OP_CAPSULE, NULL)
DENSE_FROZEN = PyCapsule_New(&DENSE_FROZEN_KERNELS, OP_CAPSULE, NULL)
BATCHNORM_FROZEN = PyCapsule_New(&BATCHNORM_FROZEN_KERNELS, OP_CAPSULE, NULL)
