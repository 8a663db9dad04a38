# The update that follows every backward pass, written once.
#
# apply_update is everything after backpropagation: weight penalties,
# clipping, gradient noise, the optimizer's kernel (on several threads when
# the step is large), and the step counter.  UpdateStep (update.pyx) is its
# checked Python face, which the layer-by-layer path calls; the compiled
# epoch (train.pyx) calls apply_update itself after each backward pass.

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, isfinite
from libc.stdint cimport uint32_t, uint64_t
from numpy.random cimport bitgen_t

from fastnn_ext.gradients cimport (add_weight_penalty, squared_norm, scale_inplace,
                                   clip_values, add_gaussian_noise)
from fastnn_ext.optim cimport OptimizerKernels, optimizer_step_slice

# Why a step or a call stopped.
cdef enum Status:
    OK = 0
    NONFINITE_LOSS = 1
    NONFINITE_GRADIENT = 2
    NONFINITE_UPDATE = 3     # the parameters or the optimizer's state


# An optimizer step is split across threads from this many parameters; below,
# starting the threads costs about what they save.  Above, the gain is more
# than the arithmetic: Adam on 235,146 parameters streams four arrays of
# 0.9 MB, more than one core's L2 cache holds, and each thread's slice stays
# in its own core's cache.  Slices start on 64-byte boundaries so that no two
# threads write to one cache line.
cdef enum:
    PARALLEL_STEP_MIN_PARAMS = 1 << 15
    SLICE_ALIGN_BYTES = 64

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
    Py_ssize_t n_params      # the leading parameters updated (the trainable ones)
    Py_ssize_t n_decay       # weight decay applies to params[:n_decay]
    Penalties penalties
    const OptimizerKernels* optimizer
    const void* hyper
    long steps               # updates applied so far: the next one is number steps + 1


cdef inline void parallel_optimizer_step(const UpdateState* s, floating* params, floating* grads,
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


cdef inline int apply_update(UpdateState* s, double lr, bitgen_t* rng, Py_ssize_t first,
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


cdef inline bint all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    """No element is NaN or ±∞: no exponent field is all ones.

    (bits & exponent) + one unit of the exponent carries into the sign bit
    exactly when the exponent is all ones.  Integer operations only, so the
    loop vectorizes (a floating-point sum would be one serial chain of adds,
    which compilers may not reorder).
    """
    cdef Py_ssize_t i
    cdef uint32_t seen32 = 0
    cdef uint64_t seen64 = 0
    cdef const uint32_t* bits32 = <const uint32_t*> x
    cdef const uint64_t* bits64 = <const uint64_t*> x
    if floating is float:
        for i in range(size):
            seen32 |= (bits32[i] & 0x7f800000u) + 0x00800000u
        return (seen32 >> 31) == 0
    else:
        for i in range(size):
            seen64 |= (bits64[i] & 0x7ff0000000000000u) + 0x0010000000000000u
        return (seen64 >> 63) == 0


cdef inline bint update_finite(const UpdateState* s, floating* params) noexcept nogil:
    """The parameters and every optimizer moment are finite."""
    cdef Py_ssize_t slots = s.optimizer.n_slots(s.hyper)
    return (all_finite(params, s.n_params)
            and (slots == 0 or all_finite(<floating*> s.state, slots * s.n_params)))



cdef bitgen_t* bit_generator_of(object generator) except NULL
cdef object checked_array(str name, object array, object dtype, tuple shape)
cdef double non_negative(str name, object value) except -1
cdef int thread_count(object n_threads) except -1


cdef class UpdateStep:
    cdef UpdateState s
    cdef object params_array, grads_array, state_array, hyper_record, kernel
    cdef readonly bint double_precision
    cdef readonly Py_ssize_t n_total   # length of params and grads (n_params: updated)
