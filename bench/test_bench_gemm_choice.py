"""The calibrated choice of matrix kernel against the alternatives it rejected.

Each product of the C4/C2 network [784, 256, 128, 10] at batch 10, 64 and
128, and of the C3 network's wide layers [784, 2048, 2048] at batch 512 —
forward X·W ("nn"), weight gradient Xᵀ·dZ ("tn"), input gradient dZ·Wᵀ
("nt"; the first layer has none) — is timed on fastnn's own kernels with
one thread and with two, and on BLAS with its pool limited to one thread
and to two; the label of the one that ``fastnn._calibration`` chose on this
machine (the cached choice, measured first if there is none; for BLAS, at
the thread count the process allows it) ends in ``*chosen``.  A timed round runs the
product ``calls`` times without the GIL (``gemm_choice.product``), enough
for about a millisecond; ``extra_info["us_per_product"]`` is the time of one.

The dense forward and backward kernels under the calibrated choice are
timed against the same BLAS calls made directly (``test_bench_kernels.py``'s
baseline), one call per round.

Run ``pytest bench/test_bench_gemm_choice.py --benchmark-only``.
"""

import numpy as np
import pytest
from test_bench_kernels import blas_backward, blas_forward, operands
from threadpoolctl import threadpool_info
from threads import blas_threads, pause

from fastnn import _calibration
from fastnn_ext import dense, gemm_choice

LAYERS = [(784, 256), (256, 128), (128, 10)]
BATCHES = [10, 64, 128]
WIDE_LAYERS = [(784, 2048), (2048, 2048)]
WIDE_BATCH = 512
VARIANTS = [("own", 1), ("own", 2), ("blas", 1), ("blas", 2)]
needs_kernels = pytest.mark.skipif(gemm_choice.vector_bits() == 0,
                                   reason="no AVX2+FMA or AVX-512: BLAS only")


@pytest.fixture(scope="module", autouse=True)
def calibrated():
    """The choice a float32 fit would use here (cached per machine), split as in a
    fit whose step no BLAS thread shares."""
    choice = _calibration.gemm_choice(np.float32)
    gemm_choice.set_threads(choice["threads"])
    yield choice
    gemm_choice.set_threads(1)


def products():
    for batches, layers in ((BATCHES, LAYERS), ([WIDE_BATCH], WIDE_LAYERS)):
        for batch in batches:
            for index, (n_in, n_out) in enumerate(layers):
                for kind in gemm_choice.PRODUCTS:
                    if kind != "nt" or index > 0:
                        yield (kind, batch, n_in, n_out)


def arrays(kind, m, n, k):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if kind == "tn" else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if kind == "nt" else (k, n), dtype=np.float32)
    return a, b, np.empty((m, n), np.float32)


@needs_kernels
@pytest.mark.parametrize("backend, threads", VARIANTS, ids=lambda v: str(v))
@pytest.mark.parametrize("kind, batch, n_in, n_out", list(products()),
                         ids=lambda v: str(v))
def test_product(benchmark, kind, batch, n_in, n_out, backend, threads):
    m, n, k = _calibration.shape(kind, batch, n_in, n_out)
    a, b, c = arrays(kind, m, n, k)
    calls = max(1, int(2e6 / (m * n * k)))
    choice = gemm_choice.chosen(kind, m, n, k, np.float32)
    blas_limit = max(pool["num_threads"] for pool in threadpool_info()
                     if pool["user_api"] == "blas")
    chosen = choice == (backend, threads) if backend == "own" else (
        choice[0] == "blas" and threads == min(blas_limit, 2))
    benchmark.group = f"{kind} batch {batch}, layer {n_in}->{n_out}: C {m}x{n}, inner {k}"
    benchmark.name = f"{backend}-{threads}{' *chosen' if chosen else ''}"
    benchmark.extra_info.update(calls=calls, chosen=chosen)
    pause(0.2)
    with blas_threads(threads if backend == "blas" else None):
        benchmark.pedantic(gemm_choice.product, args=(kind, a, b, c),
                           kwargs=dict(backend=backend, threads=threads, calls=calls),
                           rounds=10 if m * n * k > 1e8 else 30, iterations=1,
                           warmup_rounds=3)
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
        benchmark.extra_info["us_per_product"] = benchmark.stats.stats.min / calls * 1e6


@pytest.mark.parametrize("library", ["fastnn", "blas"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dense_step(benchmark, layer, batch, library):
    """Forward and backward (with the input gradient) of one layer."""
    x, w, b, grad_z = operands(batch, *layer)
    out, grad_w = np.empty((batch, layer[1]), np.float32), np.empty_like(w)
    grad_b, grad_x, ones = np.empty(layer[1], np.float32), np.empty_like(x), np.ones(
        batch, np.float32)

    def ours():
        dense.forward(x, w, b, out)
        dense.backward(x, w, grad_z, grad_w, grad_b, grad_x)

    def theirs():
        blas_forward(x, w, b, out)
        blas_backward(x, w, grad_z, grad_w, grad_b, grad_x, ones)

    benchmark.group = f"dense forward+backward, batch {batch}, layer {layer[0]}->{layer[1]}"
    pause(0.2)
    benchmark.pedantic(ours if library == "fastnn" else theirs, rounds=300, iterations=1,
                       warmup_rounds=20)
