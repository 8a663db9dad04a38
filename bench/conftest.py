"""Shared set-up for the benchmarks.

Every benchmark runs with a fixed BLAS thread count and after a short pause
(``threads.py``), because NumPy's and SciPy's OpenBLAS copies keep separate
thread pools that contend on a small machine.  Ratios between libraries are
only meaningful within one run: compare medians from the same ``pytest
bench`` invocation.  The header and the summary name the CPU and the library
versions (``machine.py``) the run was measured with.
"""

import numpy as np
import pytest
from machine import describe

#: the first word of every benchmarked library's label
LIBRARY_NAMES = {"fastnn", "numpy", "blas", "torch", "jax"}


def pytest_report_header(config):
    return ["machine (the benchmarks' numbers hold for it alone):"] + [f"  {line}" for line in describe()]


def _load():
    from fastnn.data import DataNotFoundError, load_mnist

    try:
        return load_mnist()
    except DataNotFoundError:
        return None


@pytest.fixture(scope="session")
def _fashion_mnist_splits():
    return _load()


@pytest.fixture(scope="session")
def fashion_mnist(_fashion_mnist_splits):
    """Fashion-MNIST training images (60000×784 float32) and labels.

    Falls back to synthetic data of the same size and type when the data set
    is not installed, so the timings stay comparable.
    """
    if _fashion_mnist_splits is not None:
        return _fashion_mnist_splits[0]
    rng = np.random.default_rng(0)
    return rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000)


@pytest.fixture(scope="session")
def fashion_mnist_test(_fashion_mnist_splits):
    """The 10,000 test images and labels, or None without the data set.

    Random stand-in data has no accuracy to check: the benchmarks then only
    time.
    """
    return None if _fashion_mnist_splits is None else _fashion_mnist_splits[1]


@pytest.fixture
def rounds(request):
    """Timed rounds for a benchmark: its own count, at most ``--benchmark-min-rounds``.

    The slow benchmarks fix their rounds (``benchmark.pedantic``); this lets
    ``--benchmark-min-rounds 1`` shorten a run to one timed call each.
    """
    most = request.config.getoption("benchmark_min_rounds", 5)
    return lambda own: max(1, min(own, most))


def _library(bench):
    """The library a benchmark measures: its ``library`` extra info, else its name."""
    if "library" in bench.extra_info:
        return bench.extra_info["library"]
    name = bench.name
    if "[" not in name:
        return name.rsplit("_", 1)[-1]  # test_dropout_numpy
    # The library is the last parameter: "adam-torch-fused", "128x784x256-blas".
    parts = name[name.index("[") + 1:-1].split("-")
    start = next((i for i, part in enumerate(parts) if part in LIBRARY_NAMES), len(parts) - 1)
    return "-".join(parts[start:])


def _shown(seconds):
    if seconds >= 1:
        return f"{seconds:8.3f} s "
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.3f} ms"
    return f"{seconds * 1e6:8.1f} µs"


def pytest_terminal_summary(terminalreporter, config):
    """Print every benchmark's median, its ratio to the group's reference and to fastnn.

    The reference is the NumPy entry of a group, or the direct BLAS call for
    the kernel benchmarks.  Entries that record their optimizer ``steps``
    also show the time per step.
    """
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group, []).append(bench)
    terminalreporter.section("speed relative to the reference of each group (same run)")
    for line in describe():
        terminalreporter.write_line(line)
    for group, members in groups.items():
        reference = next((b for b in members if _library(b) in ("numpy", "blas")), None)
        fastnn = next((b for b in members if _library(b) == "fastnn"), None)
        terminalreporter.write_line(group)
        for bench in sorted(members, key=lambda b: b.stats.median):
            median = bench.stats.median
            line = f"    {_library(bench):16s} median {_shown(median)}"
            if bench.extra_info.get("steps"):
                line += f"  per step {_shown(median / bench.extra_info['steps'])}"
            if reference is not None:
                line += f"  {reference.stats.median / median:6.2f}x {_library(reference)}'s speed"
            if fastnn is not None and bench is not fastnn:
                line += f"  {median / fastnn.stats.median:6.2f}x fastnn's time"
            terminalreporter.write_line(line)
