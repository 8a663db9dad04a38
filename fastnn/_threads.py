"""How many threads a training step may start.

fastnn's own threads (OpenMP, in the optimizer step of the compiled epoch)
must never run while BLAS's threads do: both pools spinning against each
other on two cores made an epoch ten times slower.
"""

import os

from fastnn_ext import train as _train

# GNU OpenMP cannot start threads in a child of fork() once the parent has
# used them: the child would wait forever for workers that do not exist.  A
# forked child (multiprocessing's default on Linux) therefore trains on its
# own thread.
_forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def training_threads():
    """Threads the compiled epoch may start (see fastnn_ext.train.max_threads)."""
    return 1 if _forked_child else _train.max_threads()


_blas_pools = None


def blas_threaded():
    """Whether a loaded BLAS may use more than one thread (its current limit)."""
    global _blas_pools
    if _blas_pools is None:  # finding the libraries takes milliseconds; once
        from threadpoolctl import ThreadpoolController

        _blas_pools = [pool for pool in ThreadpoolController().lib_controllers
                       if pool.user_api == "blas"]
    return any(pool.num_threads > 1 for pool in _blas_pools)


def step_threads(plan):
    """Threads each update of an ``EpochPlan`` may use now."""
    return plan.step_threads(training_threads(), blas_threaded())
