"""Shared set-up for the benchmarks.

NumPy and SciPy each ship an OpenBLAS with its own thread pool; on a small
machine the two pools contend.  Every benchmark therefore runs with a fixed
BLAS thread count (threadpoolctl, when installed) and after a short pause, so
that one library's spinning threads do not slow the next one down.  Ratios
between libraries are only meaningful within one run: compare medians from
the same ``pytest bench`` invocation.
"""

import contextlib
import os
import time

import numpy as np
import pytest

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


def pause():
    time.sleep(PAUSE_SECONDS)


@pytest.fixture(scope="session")
def fashion_mnist():
    """Fashion-MNIST training images (60000×784 float32) and labels.

    Falls back to synthetic data of the same size and type when the data set
    is not installed, so the timings stay comparable.
    """
    from fastnn.data import DataNotFoundError, load_mnist

    try:
        (X, y), _ = load_mnist()
    except DataNotFoundError:
        rng = np.random.default_rng(0)
        X = rng.random((60000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 60000)
    return X, y


def torch_or_none():
    if os.environ.get("FASTNN_BENCH_NO_TORCH"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def pytest_terminal_summary(terminalreporter, config):
    """Print every benchmark's median as a ratio to its group's reference.

    The reference is the NumPy entry of a group, or the direct BLAS call for
    the kernel benchmarks.
    """
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group, []).append(bench)
    terminalreporter.section("speed relative to the reference of each group (same run)")
    for group, members in groups.items():
        reference = next((b for b in members if "numpy" in b.name or "blas]" in b.name), None)
        terminalreporter.write_line(group)
        for bench in sorted(members, key=lambda b: b.stats.median):
            median = bench.stats.median
            ratio = f"{reference.stats.median / median:6.2f}x the reference's speed" if reference else ""
            shown = f"{median * 1e3:10.3f} ms" if median >= 1e-3 else f"{median * 1e6:10.1f} µs"
            terminalreporter.write_line(f"    {bench.name:45s} median {shown}  {ratio}")
