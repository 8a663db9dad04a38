"""The update after backpropagation, and the thread count it may use.

``UpdateStep.update`` runs ``apply_update`` (update.pxd) — penalties,
clipping, gradient noise, the optimizer's kernel, the step counter — and
then checks that the parameters and the optimizer's state are finite.  The
layer-by-layer path calls it after its Python backward pass; the compiled
epoch (train.pyx) calls ``apply_update`` directly.
"""

import numbers

import numpy as np

from cpython.pycapsule cimport PyCapsule_GetPointer

from fastnn_ext.optim cimport OptimizerKernel

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
    """
    int fastnn_max_threads() nogil


def max_threads():
    """Threads an optimizer step may use: OpenMP's current limit (1 without OpenMP).

    ``OMP_NUM_THREADS`` or ``threadpoolctl.threadpool_limits`` change it.
    """
    return fastnn_max_threads()


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


cdef int thread_count(object n_threads) except -1:
    """n_threads as a count in [1, OpenMP's limit]: asking for more starts no more."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be an integer, got {n_threads!r}")
    return max(1, min(n_threads, fastnn_max_threads()))


cdef double non_negative(str name, object value) except -1:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number >= 0, got {value!r}")
    try:
        converted = float(value)
    except OverflowError:
        converted = float("inf")
    if not (converted >= 0 and np.isfinite(converted)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return converted


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
    n_trainable : int, optional
        The leading parameters the update covers (default: all).  The rest
        are frozen: their gradients are ignored and nothing of them changes;
        the compiled epoch still reads them, so ``params`` and ``grads`` are
        the model's whole buffers.  The optimizer is bound to
        ``n_trainable`` parameters.
    l2, l1 : float
        Penalty coefficients per sample, λ₂/n and λ₁/n.
    clip_value, clip_norm : float
        0 turns each off.
    noise : (eta, gamma)
        Annealed gradient noise; eta = 0 turns it off.

    The arrays are held, not copied: they must not be reallocated while this
    object is in use.
    """

    def __init__(self, params, grads, optimizer, n_weights, l2=0.0, l1=0.0, clip_value=0.0,
                 clip_norm=0.0, noise=(0.0, 0.0), n_trainable=None):
        if self.s.optimizer != NULL:
            raise TypeError("an UpdateStep is initialised once; make a new one")
        if not isinstance(params, np.ndarray) or params.dtype not in (np.float32, np.float64):
            raise TypeError("params must be a float32 or float64 numpy array")
        n = params.shape[0] if params.ndim == 1 else -1
        checked_array("params", params, params.dtype, (n,))
        checked_array("grads", grads, params.dtype, (n,))
        if np.shares_memory(params, grads):
            raise ValueError("grads overlaps params in memory")
        if n_trainable is None:
            n_trainable = n
        if isinstance(n_trainable, bool) or not isinstance(n_trainable, numbers.Integral):
            raise TypeError(f"n_trainable must be an integer, got {n_trainable!r}")
        if not 0 <= n_trainable <= n:
            raise ValueError(f"n_trainable must be in [0, {n}], got {n_trainable!r}")
        n_total, n = n, n_trainable
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
        if isinstance(n_weights, bool) or not isinstance(n_weights, numbers.Integral):
            raise TypeError(f"n_weights must be an integer, got {n_weights!r}")
        if not 0 <= n_weights <= n:
            raise ValueError(f"n_weights must be in [0, {n}], got {n_weights!r}")
        try:
            eta, gamma = noise
        except (TypeError, ValueError):
            raise ValueError(f"noise must be a pair (eta, gamma), got {noise!r}") from None
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
        self.n_total = n_total
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

    def update(self, lr, generator, n_threads=1):
        """One update from the gradient now in ``grads``; returns a status code.

        The layer-by-layer path's step: ``STATUS_OK``, or
        ``STATUS_NONFINITE_GRADIENT`` (nothing changed) or
        ``STATUS_NONFINITE_UPDATE`` (the parameters or the optimizer's state
        stopped being finite: the caller restores them).
        """
        if self.s.optimizer == NULL:
            raise ValueError("this UpdateStep was not initialised")
        cdef double rate = non_negative("lr", lr)
        cdef int threads = thread_count(n_threads)
        cdef bitgen_t* rng = bit_generator_of(generator)
        cdef int status
        with generator.bit_generator.lock, nogil:
            if self.double_precision:
                status = apply_update(&self.s, rate, rng, 0, threads, <double*> self.s.params)
                if status == OK and not update_finite(&self.s, <double*> self.s.params):
                    status = NONFINITE_UPDATE
            else:
                status = apply_update(&self.s, rate, rng, 0, threads, <float*> self.s.params)
                if status == OK and not update_finite(&self.s, <float*> self.s.params):
                    status = NONFINITE_UPDATE
        return status


