"""The optional libraries fastnn is compared with: PyTorch and JAX.

Neither is a dependency.  Each is left out when it is not installed, or when
``FASTNN_BENCH_NO_TORCH`` / ``FASTNN_BENCH_NO_JAX`` is set.
"""

import os


def torch_or_none():
    """The ``torch`` module, or None when it is absent or switched off."""
    if os.environ.get("FASTNN_BENCH_NO_TORCH"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def jax_or_none():
    """The ``jax`` module, or None when it is absent or switched off.

    XLA's CPU backend sizes its thread pool once, at the first computation,
    to every core; the benchmarks cannot change it per workload afterwards.
    """
    if os.environ.get("FASTNN_BENCH_NO_JAX"):
        return None
    try:
        import jax
    except ImportError:
        return None
    return jax
