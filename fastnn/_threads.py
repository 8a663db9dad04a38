"""How many threads a training step may start, decided by measurement on this machine.

fastnn's own threads (OpenMP, in the optimizer step and in the split of its
own matrix kernels, fastnn._calibration) must never run while BLAS's threads do: both pools spinning against each other on two cores made
an epoch ten times slower.  Where they may run, whether they pay depends on
the CPU, the step's size and how busy the machine is — on a 2-core AMD EPYC
(Zen 3) shared with other work, a two-thread Adam step over 79,510
parameters made a Fashion-MNIST epoch 6.5 times slower than one thread.  So
the first fit of a given optimizer and size times the update both ways on
scratch buffers and keeps the faster; the choice is cached per CPU, BLAS kernels and
library versions (``fastnn._calibration.machine``) in the user's cache directory.  The thread count never
changes the numbers (each thread updates its own slice), only the speed.

``FASTNN_CALIBRATION=redo`` measures again and overwrites the cache;
``FASTNN_CALIBRATION=off`` measures nothing and uses one thread.
"""

import contextlib
import math
import os
import time

import numpy as np

from fastnn import _calibration
from fastnn_ext import gemm_choice as _gemm_choice
from fastnn_ext import update as _update

# GNU OpenMP cannot start threads in a child of fork() once the parent has
# used them: the child would wait forever for workers that do not exist.  A
# forked child (multiprocessing's default on Linux) therefore trains and
# predicts on its own thread.
_forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True
    use_split_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: more threads are kept only when they make the update at least this much faster
REQUIRED_GAIN = _calibration.REQUIRED_GAIN
_decisions = {}


def in_forked_child():
    """Whether this process is a child of fork() (its OpenMP threads are unusable)."""
    return _forked_child


def openmp_threads():
    """Threads fastnn's own OpenMP code may start in this process: OpenMP's
    limit (fastnn_ext.update.max_threads), one in a forked child."""
    return 1 if in_forked_child() else _update.max_threads()


_controller = None


def _threadpools():
    """threadpoolctl's controller of the loaded libraries (found once per process)."""
    global _controller
    if _controller is None:  # finding the libraries takes milliseconds; once
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def blas_pools():
    """threadpoolctl's controllers of the loaded BLAS libraries."""
    return [pool for pool in _threadpools().lib_controllers if pool.user_api == "blas"]


def blas_threaded():
    """Whether a loaded BLAS may use more than one thread (its current limit)."""
    return any(pool.num_threads > 1 for pool in blas_pools())


def blas_kernels():
    """The kernel sets the loaded BLAS libraries run, e.g. ["openblas Haswell"].

    OpenBLAS picks its kernels by CPU, or by OPENBLAS_CORETYPE, at load
    time: the crossover against BLAS moves with them.  Versions are left out
    (NumPy's and SciPy's versions fix their OpenBLAS), so that another
    package loading its own copy of a library does not change the answer.
    """
    return sorted({f"{pool.internal_api} {pool.architecture}" for pool in blas_pools()
                   if getattr(pool, "architecture", None)})


def blas_limited(model, plan):
    """Whether an epoch of ``model``'s ``plan`` runs BLAS on one thread, so that the
    step's own threads may run (``blas_threads_limited``).

    Where a step gives BLAS a product large enough for BLAS to thread it,
    only one side may use the cores: BLAS for its products, ours waiting, or
    ours for the own kernels' split and the update, BLAS on one thread —
    which is how the calibration timed it (``fastnn._calibration.decide``).
    Either side's products run about twice as fast on two cores, so the cores
    go to the side with more of the step's multiply-adds.
    """
    _calibration.gemm_choice(model.dtype)  # which products go to BLAS
    on_blas, elsewhere = plan.product_work()
    return 0 < on_blas < elsewhere and openmp_threads() > 1 and blas_threaded()


@contextlib.contextmanager
def blas_threads_limited(threads):
    """BLAS's pools limited to ``threads`` threads for the block (None: as they are)."""
    if threads is None:
        yield
        return
    with _threadpools().limit(limits=threads, user_api="blas"):
        yield


def step_threads(model, plan=None):
    """Threads each update of ``model``'s fit may use now.

    First sets which products go to fastnn's own kernels (``fastnn._calibration``:
    cached, or measured now, before the first step).  Then the most the
    policy allows — one where BLAS may run threads during the step (the plan
    knows which products go to BLAS; without a plan, the layer path, any
    threaded BLAS) — both for the own kernels' split and for the update,
    and for the update, above one, only what measured faster on this machine.
    """
    _calibration.gemm_choice(model.dtype)
    allowed, threaded = openmp_threads(), blas_threaded()
    if plan is not None:
        # an epoch that limits BLAS to one thread runs the step's threads
        allowed = plan.step_threads(allowed, threaded and not blas_limited(model, plan))
    elif threaded:
        allowed = 1
    use_split_threads(allowed)
    if allowed <= 1:
        return 1
    return calibrated_threads(model.optimizer, model.n_trainable_, model.n_weights_,
                              model.dtype, allowed)


def split_threads():
    """Threads the own matrix kernels may split a product over now."""
    return _gemm_choice.get_choice(np.float32)["threads"]


def use_split_threads(threads, floor=math.inf):
    """Let the own matrix kernels split products over ``threads`` threads: those the
    calibration splits, and any of at least ``floor`` multiply-adds."""
    _gemm_choice.set_threads(max(1, threads), floor)


def calibrated_threads(optimizer, n_params, n_decay, dtype, allowed):
    """1 or ``allowed``: whichever updated ``n_params`` parameters faster here."""
    mode = os.environ.get("FASTNN_CALIBRATION", "")
    if mode == "off":
        return 1
    hyper = optimizer.hyper_.tobytes().hex()
    # the size in steps of ~10 %, so that nearby sizes share one measurement
    size = int(round(np.log(max(n_params, 1)) / np.log(1.1)))
    key = f"{_calibration.machine()}|{optimizer.kernel.name}|{hyper}|{np.dtype(dtype).name}|{size}|{allowed}"
    if mode != "redo" and key in _decisions:
        return _decisions[key]
    threads = _calibration.cached_or_measured(
        key, lambda entry: entry in (1, allowed),
        lambda: _measure(optimizer, n_params, n_decay, dtype, allowed), reuse=mode != "redo")
    _decisions[key] = threads
    return threads


def _measure(optimizer, n_params, n_decay, dtype, allowed, repeats=7, steps=10):
    """Time the update on scratch buffers with 1 and with ``allowed`` threads."""
    scratch = type(optimizer)(**optimizer._params())
    scratch.bind(n_params, dtype, n_decay)
    params = np.zeros(n_params, dtype=dtype)
    grads = np.full(n_params, 1e-3, dtype=dtype)
    update = _update.UpdateStep(params, grads, scratch, n_decay)
    rng = np.random.default_rng(0)

    def best(threads):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                update.update(1e-6, rng, threads)
            times.append(time.perf_counter() - start)
        return min(times)

    best(allowed)  # start the thread pool and warm the caches
    single, multi = best(1), best(allowed)
    return allowed if multi * REQUIRED_GAIN < single else 1


# A model's products follow the cached choice from the start, also those of a
# prediction before any fit in this process.
_calibration.cached_choices()
