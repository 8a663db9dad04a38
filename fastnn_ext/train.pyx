"""One compiled call per epoch of mini-batch training.

The Python model describes the network as a small table of operations (one
row of integers and one row of floats per op) over three flat buffers:
``params`` / ``grads`` (every trainable parameter, weights first) and a
workspace of per-op activation and delta buffers, each sized for one batch.
This module walks that table for every mini-batch of an epoch — gather,
forward, loss, backward, gradient transformations, optimizer step — with the
GIL released, so Python's overhead is paid once per epoch.  The arithmetic is
the same kernel-for-kernel as the layer-by-layer path in ``fastnn.layers``, so
both paths produce the same weights.
"""

import numpy as np

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, isfinite
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from numpy.random cimport bitgen_t

from fastnn_ext.activations cimport (ACT_IDENTITY, bias_activation_forward,
                                     activation_backward, softmax_forward,
                                     softmax_backward, prelu_forward, prelu_backward)
from fastnn_ext.dense cimport (dense_forward, dense_backward, dense_backward_sgd,
                               dense_may_use_blas_threads)
from fastnn_ext.losses cimport loss_and_grad, count_correct
from fastnn_ext.gradients cimport (add_weight_penalty, squared_norm, scale_inplace,
                                   clip_values, add_gaussian_noise)
from fastnn_ext.optim cimport optimizer_step, optimizer_step_slice
from fastnn_ext.dropout cimport dropout_forward, dropout_backward
from fastnn_ext.batchnorm cimport batchnorm_forward_train, batchnorm_backward

# Columns of the integer op table.
cdef enum:
    F_KIND = 0        # one of the OP_* codes
    F_ACT = 1         # activation code (dense and activation ops)
    F_N_IN = 2        # input width
    F_N_OUT = 3       # output width
    F_PARAM_A = 4     # offset in params/grads: weights, PReLU slopes, BN gamma
    F_PARAM_B = 5     # offset in params/grads: bias, BN beta (-1: none)
    F_IN = 6          # workspace offset of the input buffer (0: the batch)
    F_OUT = 7         # workspace offset of the output buffer
    F_AUX = 8         # workspace offset of a saved buffer (dropout mask, BN x̂)
    F_STATE = 9       # offset in the non-trainable buffers: BN running mean
    F_STATE_B = 10    # offset in the non-trainable buffers: BN running variance
    F_NEED_GRAD_IN = 11   # 1 if an earlier op has parameters
    N_FIELDS = 12

# Columns of the float op table.
cdef enum:
    S_ALPHA = 0       # LeakyReLU slope, dropout rate (probability of dropping), BN momentum
    S_EPS = 1         # BN epsilon
    N_SCALARS = 2

cdef enum:
    OP_DENSE = 0
    OP_ACTIVATION = 1
    OP_SOFTMAX = 2
    OP_PRELU = 3
    OP_DROPOUT = 4
    OP_BATCHNORM = 5

FIELDS = dict(kind=F_KIND, act=F_ACT, n_in=F_N_IN, n_out=F_N_OUT, param_a=F_PARAM_A,
              param_b=F_PARAM_B, input=F_IN, output=F_OUT, aux=F_AUX, state=F_STATE,
              state_b=F_STATE_B, need_grad_in=F_NEED_GRAD_IN, count=N_FIELDS)
SCALARS = dict(alpha=S_ALPHA, eps=S_EPS, count=N_SCALARS)
OPS = dict(dense=OP_DENSE, activation=OP_ACTIVATION, softmax=OP_SOFTMAX, prelu=OP_PRELU,
           dropout=OP_DROPOUT, batchnorm=OP_BATCHNORM)

# Status codes returned with the epoch's totals.
cdef enum:
    OK = 0
    NONFINITE_LOSS = 1
    NONFINITE_GRADIENT = 2

STATUS_OK = OK
STATUS_NONFINITE_LOSS = NONFINITE_LOSS
STATUS_NONFINITE_GRADIENT = NONFINITE_GRADIENT

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fastnn_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fastnn_max_threads(void) { return 1; }
    #endif
    """
    int fastnn_max_threads() nogil


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


cdef void forward_ops(const int64_t[:, ::1] ops, const double[:, ::1] scalars,
                      floating* params, floating* buffers, floating* work,
                      Py_ssize_t m, Py_ssize_t capacity, bitgen_t* rng) noexcept nogil:
    """Training-mode forward pass of an m-row batch; capacity = rows per buffer."""
    cdef Py_ssize_t k, n_in, n_out
    cdef floating* aux
    cdef floating* src
    cdef floating* dst
    cdef floating* bias
    cdef int64_t kind
    for k in range(ops.shape[0]):
        n_in = ops[k, F_N_IN]
        n_out = ops[k, F_N_OUT]
        src = work + ops[k, F_IN]
        dst = work + ops[k, F_OUT]
        kind = ops[k, F_KIND]
        if kind == OP_DENSE:
            bias = params + ops[k, F_PARAM_B] if ops[k, F_PARAM_B] >= 0 else NULL
            dense_forward(src, params + ops[k, F_PARAM_A], bias, dst, m, n_in, n_out,
                          <int> ops[k, F_ACT], <floating> scalars[k, S_ALPHA])
        elif kind == OP_ACTIVATION:
            bias_activation_forward(src, <floating*> NULL, dst, m, n_out,
                                    <int> ops[k, F_ACT], <floating> scalars[k, S_ALPHA])
        elif kind == OP_SOFTMAX:
            softmax_forward(src, dst, m, n_out)
        elif kind == OP_PRELU:
            prelu_forward(src, params + ops[k, F_PARAM_A], dst, m, n_out)
        elif kind == OP_DROPOUT:
            dropout_forward(rng, src, dst, work + ops[k, F_AUX], m * n_out,
                            scalars[k, S_ALPHA])
        elif kind == OP_BATCHNORM:
            aux = work + ops[k, F_AUX]
            batchnorm_forward_train(src, params + ops[k, F_PARAM_A], params + ops[k, F_PARAM_B],
                                    dst, aux, aux + capacity * n_out,
                                    aux + (capacity + 1) * n_out,
                                    buffers + ops[k, F_STATE], buffers + ops[k, F_STATE_B],
                                    m, n_out, scalars[k, S_ALPHA], scalars[k, S_EPS])


cdef void backward_ops(const int64_t[:, ::1] ops, const double[:, ::1] scalars,
                       floating* params, floating* grads, floating* work,
                       floating* delta, Py_ssize_t m, Py_ssize_t capacity, bint fused_sgd,
                       floating lr, floating keep) noexcept nogil:
    """Backpropagate delta (same layout as work) from the last op's output.

    With fused_sgd, dense weights are updated in place (w ← keep·w − lr·∂L/∂w)
    instead of having their gradient written to grads.
    """
    cdef Py_ssize_t k, n_in, n_out, i_in, i_out
    cdef floating* grad_in
    cdef floating* grad_bias
    cdef int act
    cdef int64_t kind
    for k in range(ops.shape[0] - 1, -1, -1):
        n_in = ops[k, F_N_IN]
        n_out = ops[k, F_N_OUT]
        i_in = ops[k, F_IN]
        i_out = ops[k, F_OUT]
        grad_in = delta + i_in if ops[k, F_NEED_GRAD_IN] else NULL
        kind = ops[k, F_KIND]
        act = <int> ops[k, F_ACT]
        if kind == OP_DENSE:
            if act != ACT_IDENTITY:
                activation_backward(work + i_out, delta + i_out, delta + i_out,
                                    m * n_out, act, <floating> scalars[k, S_ALPHA])
            grad_bias = grads + ops[k, F_PARAM_B] if ops[k, F_PARAM_B] >= 0 else NULL
            if fused_sgd:
                dense_backward_sgd(work + i_in, params + ops[k, F_PARAM_A], delta + i_out,
                                   grad_in, grad_bias, m, n_in, n_out, lr, keep)
            else:
                dense_backward(work + i_in, params + ops[k, F_PARAM_A], delta + i_out,
                               grad_in, grads + ops[k, F_PARAM_A], grad_bias,
                               m, n_in, n_out, False)
        elif kind == OP_PRELU:
            # The slope gradient is needed even when the input gradient is not.
            prelu_backward(work + i_in, params + ops[k, F_PARAM_A], delta + i_out,
                           delta + i_in, grads + ops[k, F_PARAM_A], m, n_out)
        elif kind == OP_BATCHNORM:
            batchnorm_backward(delta + i_out, work + ops[k, F_AUX], params + ops[k, F_PARAM_A],
                               work + ops[k, F_AUX] + (capacity + 1) * n_out, delta + i_in,
                               grads + ops[k, F_PARAM_A], grads + ops[k, F_PARAM_B], m, n_out)
        elif grad_in == NULL:
            continue
        elif kind == OP_ACTIVATION:
            activation_backward(work + i_out, delta + i_out, grad_in, m * n_out, act,
                                <floating> scalars[k, S_ALPHA])
        elif kind == OP_SOFTMAX:
            softmax_backward(work + i_out, delta + i_out, grad_in, m, n_out)
        elif kind == OP_DROPOUT:
            dropout_backward(delta + i_out, work + ops[k, F_AUX], grad_in, m * n_out)


cdef bint steps_may_use_blas_threads(const int64_t[:, ::1] ops, Py_ssize_t m,
                                    size_t item_size) noexcept nogil:
    """Whether a training step of an m-row batch may wake BLAS's threads."""
    cdef Py_ssize_t k
    for k in range(ops.shape[0]):
        if ops[k, F_KIND] == OP_DENSE and dense_may_use_blas_threads(
                m, ops[k, F_N_IN], ops[k, F_N_OUT], ops[k, F_NEED_GRAD_IN] != 0, item_size):
            return True
    return False


cdef int threads_for_steps(const int64_t[:, ::1] ops, Py_ssize_t batch_size,
                           size_t item_size, int n_threads, bint blas_threaded) noexcept nogil:
    """Threads the steps of an epoch may start: n_threads, or 1 where BLAS's may run.

    BLAS's own threads spin for a while after each product; threads of ours
    started meanwhile would fight them for the cores (measured: ten times
    slower with two of each on two cores).  blas_threaded says whether BLAS
    may use more than one thread at all.  A smaller batch never makes a
    product go to BLAS, so the full batch size decides.
    """
    if blas_threaded and steps_may_use_blas_threads(ops, batch_size, item_size):
        return 1
    return n_threads


def step_threads(const int64_t[:, ::1] ops, Py_ssize_t batch_size, dtype, int n_threads,
                 bint blas_threaded):
    """The thread count train_epoch uses for these ops and a float32/float64 dtype."""
    return threads_for_steps(ops, batch_size, np.dtype(dtype).itemsize, n_threads,
                             blas_threaded)


cdef void parallel_optimizer_step(int kind, const double* hyper, floating* param,
                                  const floating* grad, floating* state, Py_ssize_t n,
                                  Py_ssize_t n_decay, double lr, long step,
                                  int n_threads) noexcept nogil:
    """optimizer_step over n_threads slices of the parameters, one per thread."""
    cdef Py_ssize_t align = SLICE_ALIGN_BYTES // sizeof(floating)
    cdef Py_ssize_t chunk, t
    if n_threads <= 1 or n < PARALLEL_STEP_MIN_PARAMS:
        optimizer_step(kind, hyper, param, grad, state, n, n_decay, lr, step)
        return
    chunk = (n + n_threads - 1) // n_threads
    chunk = (chunk + align - 1) // align * align
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        optimizer_step_slice(kind, hyper, param, grad, state, n, n_decay, lr, step,
                             t * chunk, min(n, (t + 1) * chunk))


cdef extern from *:
    """
    static inline void fastnn_prefetch_row(const void* start, size_t bytes) {
    #if defined(__GNUC__)
        const char* p = (const char*) start;
        for (size_t offset = 0; offset < bytes; offset += 64)
            __builtin_prefetch(p + offset, 0, 1);
    #endif
    }
    """
    void prefetch_row "fastnn_prefetch_row" (const void* start, size_t bytes) nogil


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


def train_epoch(const floating[:, ::1] X, const floating[:, ::1] T,
                const int64_t[::1] labels, const int64_t[::1] order,
                Py_ssize_t batch_size,
                const int64_t[:, ::1] ops, const double[:, ::1] scalars,
                int loss, double accuracy_threshold,
                floating[::1] params, floating[::1] grads, floating[::1] buffers,
                floating[::1] work, floating[::1] delta, floating[::1] targets,
                int optimizer, const double[::1] hyper, floating[:, ::1] opt_state,
                Py_ssize_t n_decay, const double[::1] learning_rates, long first_step,
                Py_ssize_t n_weights, double l2, double l1,
                double clip_norm, double clip_value,
                double noise_eta, double noise_gamma, generator,
                bint fused_sgd=False, double weight_decay=0.0, int n_threads=1,
                bint blas_threaded=True):
    """Train one epoch over ``order``; returns (loss_sum, n_correct, n_steps, status).

    Either ``labels`` (int64, one per row of X) or ``T`` (targets, one row per
    row of X) is given; the other is None.  ``work[0 : batch_size·n_features]``
    receives the gathered batch, the last op's output is the loss input.
    ``learning_rates[s]`` is the rate of step ``first_step + s`` (1-based).
    ``fused_sgd`` (plain SGD, no L1, clipping or noise) folds the weight
    update, with the L2 coefficient and the optimizer's ``weight_decay``, into
    the weight-gradient GEMM; the remaining parameters (after the leading
    ``n_weights``) still go through the optimizer kernel.
    The optimizer step runs on up to ``n_threads`` threads (see
    ``max_threads``) unless BLAS may run threads of its own
    (``blas_threaded``) for a product of the step; the result does not
    depend on the number.
    Stops before the update of a step whose loss or gradient is not finite and
    reports it through ``status``; ``n_steps`` counts the updates applied.
    All arrays are validated by the caller, ``fastnn.model.Sequential``.
    """
    cdef Py_ssize_t n = order.shape[0], n_params = params.shape[0]
    cdef Py_ssize_t n_out = ops[ops.shape[0] - 1, F_N_OUT]
    cdef Py_ssize_t out_offset = ops[ops.shape[0] - 1, F_OUT]
    cdef Py_ssize_t start, m, step = 0
    cdef double loss_sum = 0, batch_loss, norm, sigma, lr
    cdef Py_ssize_t n_correct = 0
    cdef int status = OK
    cdef bitgen_t* rng = NULL
    cdef const int64_t* label_ptr = NULL if labels is None else &labels[0]
    cdef floating* buffer_ptr = NULL if buffers.shape[0] == 0 else &buffers[0]
    bit_generator = generator.bit_generator
    rng = <bitgen_t*> PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    n_threads = threads_for_steps(ops, batch_size, sizeof(floating), n_threads,
                                  blas_threaded)
    with bit_generator.lock, nogil:
        start = 0
        while start < n:
            m = min(batch_size, n - start)
            # Prefetch as many rows of the next batch as it has (all but at the end).
            gather_batch(X, T, label_ptr, &order[start],
                         &order[start + m] if start + 2 * m <= n else NULL,
                         m, &work[0], &targets[0], n_out)
            forward_ops(ops, scalars, &params[0], buffer_ptr, &work[0], m, batch_size, rng)
            batch_loss = loss_and_grad(loss, &work[out_offset], &targets[0],
                                       &delta[out_offset], m, n_out, <floating> (1.0 / m))
            if not isfinite(batch_loss):
                status = NONFINITE_LOSS
                break
            loss_sum += batch_loss
            n_correct += count_correct(&work[out_offset], &targets[0], m, n_out,
                                       <floating> accuracy_threshold)
            lr = learning_rates[step]
            if fused_sgd:
                backward_ops(ops, scalars, &params[0], &grads[0], &work[0], &delta[0], m,
                             batch_size, True, <floating> lr,
                             <floating> (1 - lr * (l2 + weight_decay)))
                optimizer_step(optimizer, &hyper[0], &params[n_weights], &grads[n_weights],
                               NULL, n_params - n_weights, max(n_decay - n_weights, 0),
                               lr, first_step + step)
            else:
                backward_ops(ops, scalars, &params[0], &grads[0], &work[0], &delta[0], m,
                             batch_size, False, 0, 1)
                if l2 != 0 or l1 != 0:
                    add_weight_penalty(&params[0], &grads[0], n_weights,
                                       <floating> l2, <floating> l1)
                if clip_value > 0:
                    clip_values(&grads[0], n_params, <floating> clip_value)
                if clip_norm > 0:
                    norm = sqrt(squared_norm(&grads[0], n_params))
                    if not isfinite(norm):
                        status = NONFINITE_GRADIENT
                        break
                    if norm > clip_norm:
                        scale_inplace(&grads[0], n_params, <floating> (clip_norm / norm))
                if noise_eta > 0:
                    # Annealed noise σ_t² = η / (1 + t)^γ, t counting steps from 0.
                    sigma = sqrt(noise_eta / pow(first_step + step, noise_gamma))
                    add_gaussian_noise(rng, &grads[0], n_params, sigma)
                parallel_optimizer_step(optimizer, &hyper[0], &params[0], &grads[0],
                                        &opt_state[0, 0], n_params, n_decay, lr,
                                        first_step + step, n_threads)
            step += 1
            start += m
    return loss_sum, n_correct, step, status
