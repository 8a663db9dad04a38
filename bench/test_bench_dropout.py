"""Dropout forward pass: draw a mask, scale it and apply it.

A (128, 256) float32 batch, drop rate 0.5.  Every entry produces both the
scaled mask (kept for the backward pass) and the output:

* fastnn  — ``fastnn_ext.dropout.forward`` into preallocated arrays;
* NumPy   — ``rng.random(out=u) < keep``, scaled and applied with in-place
  ufuncs into preallocated arrays;
* PyTorch — ``torch.nn.functional.dropout`` (one thread; allocates its
  output), when installed.

Run ``pytest bench/test_bench_dropout.py --benchmark-only``; the summary at
the end gives each median as a ratio to NumPy's.
"""

import numpy as np
import pytest
from peers import torch_or_none
from threads import blas_threads, pause

from fastnn_ext import dropout

SHAPE = (128, 256)
RATE = 0.5
GROUP = "dropout forward (128, 256) float32, rate 0.5: draw + scale + apply"


@pytest.fixture
def batch():
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.benchmark(group=GROUP)
def test_dropout_fastnn(benchmark, batch):
    rng = np.random.default_rng(1)
    y = np.empty_like(batch)
    mask = np.empty_like(batch)
    pause()
    with blas_threads(1):
        benchmark(dropout.forward, rng, batch, y, mask, RATE)
    kept = mask != 0
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_array_equal(y, batch * mask)


@pytest.mark.benchmark(group=GROUP)
def test_dropout_numpy(benchmark, batch):
    rng = np.random.default_rng(1)
    keep = np.float32(1.0 - RATE)
    scale = np.float32(1.0 / keep)
    uniform = np.empty_like(batch)
    kept = np.empty(SHAPE, dtype=bool)
    y = np.empty_like(batch)
    mask = np.empty_like(batch)

    def numpy_dropout():
        rng.random(dtype=np.float32, out=uniform)
        np.less(uniform, keep, out=kept)
        np.multiply(kept, scale, out=mask)
        np.multiply(batch, mask, out=y)

    pause()
    with blas_threads(1):
        benchmark(numpy_dropout)
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_array_equal(y, batch * mask)


@pytest.mark.benchmark(group=GROUP)
def test_dropout_torch(benchmark, batch):
    torch = torch_or_none()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    torch.manual_seed(1)
    x = torch.from_numpy(batch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pause()
        y = benchmark(torch.nn.functional.dropout, x, p=RATE, training=True)
    finally:
        torch.set_num_threads(threads)
    assert 0.45 < (y != 0).float().mean().item() < 0.55
