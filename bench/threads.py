"""Thread-count discipline shared by the benchmarks and the scaling study.

NumPy and SciPy each ship an OpenBLAS with its own thread pool; on a small
machine the two pools contend.  Every measurement therefore runs with a fixed
BLAS thread count and after a short pause, so that one library's spinning
threads do not slow the next one down.
"""

import contextlib
import time

import numpy as np

PAUSE_SECONDS = 1.0


@contextlib.contextmanager
def _limit(n, user_api):
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api=user_api):
        yield


def blas_threads(n):
    """Limit every loaded BLAS (NumPy's and SciPy's) to n threads."""
    return _limit(n, "blas")


def openmp_limit(n):
    """Limit OpenMP (fastnn's own threads) to n threads; None: no limit."""
    return _limit(n, "openmp")


def pause(seconds=PAUSE_SECONDS):
    """Sleep long enough for the previous library's spinning threads to park."""
    time.sleep(seconds)


def time_prediction(benchmark, library, predict, X, reference, threads):
    """Benchmark ``predict(X)`` under ``threads`` BLAS threads (and as many OpenMP
    threads for fastnn only: the limit would also reach PyTorch's runtime and
    override its own setting), after checking its answer against ``reference``."""
    benchmark.extra_info["library"] = library
    with blas_threads(threads), openmp_limit(threads if library == "fastnn" else None):
        # The first call compiles (JAX) and allocates; it also checks the answer.
        np.testing.assert_allclose(predict(X), reference, rtol=1e-4, atol=1e-6)
        pause()
        benchmark(predict, X)
