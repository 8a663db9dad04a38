"""Which matrix products run on fastnn's own kernels and which on BLAS, decided here.

A dense layer's three products — forward X·W, weight gradient Xᵀ·dZ, input
gradient dZ·Wᵀ — run either on the small-GEMM kernels of
``fastnn_ext/src/small_gemm_kernels.h``, which read the operands in place, or
on OpenBLAS, which first repacks them: with a few rows the repacking costs
more than the arithmetic, with many it pays.  Where the crossover lies, and
whether splitting a product over two threads pays, depends on the CPU, its
caches and the BLAS build.  So the first fit in a given dtype times both on
a few shape classes (``ROWS`` × the three products × two layer sizes, and
``LARGE_ROWS`` on one wide layer, each timed in two passes; about 4 s on
a 2-core AMD EPYC, family 26, model 2) and derives, per product, the largest
batch for the own kernels, for small and for larger weight matrices, and
the smallest product worth splitting; the answer goes to the cache of ``fastnn._threads`` (same file,
keyed by the machine alone) and into the integers that the compiled code
reads (``fastnn_ext.gemm_choice``).

Once cached, the same machine makes the same choice, so seeded runs stay
bit-identical there (processes that find no cache measure one at a time,
under a lock beside it, so the first measurement is every process's; a
forked child measures in a fresh interpreter, since OpenMP's threads do not
survive fork()); another CPU, other library versions or a new
calibration may choose differently, and the last bits of a run then differ.

``FASTNN_CALIBRATION=redo`` measures again (once per process) and overwrites
the cache; ``FASTNN_CALIBRATION=off`` measures nothing and sends every product
to BLAS, as before any calibration.
"""

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; processes starting at once may each measure
    fcntl = None

import numpy as np

from fastnn._files import atomic_write
from fastnn_ext import gemm_choice as _choice

#: batch sizes (rows) the crossover is looked for at
ROWS = (1, 4, 10, 32, 64, 128, 256, 512, 1024)
#: layer sizes (n_in, n_out) each product is timed at, summed
LAYERS = ((784, 256), (256, 128))
#: a larger layer, timed alone at LARGE_ROWS: its crossover holds for weight
#: matrices between LAYERS' and its own size
LARGE_LAYER = (2048, 2048)
LARGE_ROWS = (64, 128, 512)
#: W's row lengths (n_out) the input gradient's dot products are timed at, with
#: a batch of LENGTH_ROWS (or fewer, see ``decide``)
LENGTHS = (8, 16, 32, 64, 128)
LENGTH_ROWS = 10
#: more threads are kept only when they make a product (or an update) this much faster
REQUIRED_GAIN = 1.25
#: seconds each timing sample aims at; the best of SAMPLES is kept
SAMPLE_SECONDS = 1e-3
SAMPLES = 5
#: threads a split is timed with: the CPUs of the machine (part of the cache key)
SPLIT_THREADS = max(1, os.cpu_count() or 1)
#: how long BLAS's threads stay awake after a product (see ``measure``)
BLAS_SPIN_SECONDS = 0.1

#: the version of ``decide``'s rule: a cache entry made by another rule is not used
RULE = 8

_applied = {}


def shape(product, rows, n_in, n_out):
    """(m, n, k) of ``product`` for a batch of ``rows`` through an n_in → n_out layer."""
    return {"nn": (rows, n_out, n_in), "tn": (n_in, n_out, rows),
            "nt": (rows, n_in, n_out)}[product]


def blas_always():
    """The choice that sends every product to BLAS (no calibration)."""
    return {"own_max_rows": dict.fromkeys(_choice.PRODUCTS, 0), "own_min_length": 0,
            "split_min_work": dict.fromkeys(_choice.PRODUCTS, math.inf), "threads": 1,
            "own_max_weights": 0, "own_large_max_rows": dict.fromkeys(_choice.PRODUCTS, 0),
            "own_large_max_weights": 0, "own_large_min_rows": dict.fromkeys(_choice.PRODUCTS, 0)}


def best_cut(classes, gain, patience=2):
    """The class c for which Σ log gain(c') over c' up to c (in the given order) is largest.

    ``gain(c)`` > 1 where the candidate beats the alternative at class c.  The
    log-sum weighs each class alike whatever its size, and tolerates a
    near-tie at one class among clear wins.  The scan stops after
    ``patience`` losses in a row (the classes past a crossover are not
    timed); an exact tie, where both sides are the same computation, is no
    loss.  Returns 0 where no cut gains.
    """
    best, best_sum, running, losses = 0, 0.0, 0.0, 0
    for value in classes:
        ratio = gain(value)
        running += math.log(ratio)
        if running > best_sum:
            best, best_sum = value, running
        losses = losses + 1 if ratio < 1 else 0
        if losses >= patience:
            break
    return best


def decide(timings, threads):
    """The choice implied by a table of measured times (pure logic, no clock).

    Parameters
    ----------
    timings : callable (product, backend, threads, rows, n_in, n_out) -> seconds
        The time of one product of that batch and layer size on "own" (split
        over that many threads) or "blas" (its pool limited to as many).
    threads : int
        The thread count a split would use (1: none is considered).

    Returns
    -------
    dict
        ``set_choice``'s arguments.  Per product, the own kernels run batches
        of up to ``own_max_rows`` rows: the larger of two ``best_cut``s of
        ``ROWS``, each time summed over ``LAYERS`` — the product's own, by
        t_BLAS / t_own on one thread, and that of all three products
        together, by Σ min(t_BLAS, t_own on one thread) / Σ t_own as split
        (a step splits only where no product of it goes to BLAS; it splits
        a product from ``split_min_work`` multiply-adds, or from
        ``gemm_choice.BLAS_THREADED_WORK`` where its epoch's probe times
        the split and keeps it).  The input gradient runs
        on them only from W's row length ``own_min_length``: the cut of
        ``LENGTHS``, longest first, at a batch of LENGTH_ROWS or, if fewer,
        own_max_rows (none: BLAS always).  An own-kernel product is split from
        ``split_min_work`` multiply-adds: the cut of the classes, largest
        first, by t_1thread / (REQUIRED_GAIN · t_threads) (none: inf, never).
        A weight matrix larger than LAYERS' but not than LARGE_LAYER's runs
        on the own kernels from ``own_large_min_rows`` to
        ``own_large_max_rows`` rows, a range of LARGE_ROWS timed on
        LARGE_LAYER alone, by the smaller of t_BLAS / t_own on one thread and
        on ``threads`` (own split, BLAS's pool as large), so that the own
        kernels take only what they win however a step threads: the cut of
        LARGE_ROWS from the largest down, which ends below the smallest
        class (0) where it reaches it — the input gradient's dot products,
        below the packed panels' rows, can lose where the panels win — or,
        where the largest class loses, the cut from the smallest up.
    """
    def work(product, rows, layer):
        return math.prod(shape(product, rows, *layer))

    # Where a split pays, first: a product on the own kernels runs split
    # there, and is compared with BLAS as it will run.
    split = dict.fromkeys(_choice.PRODUCTS, math.inf)
    for product in _choice.PRODUCTS if threads > 1 else ():
        classes = {work(product, rows, layer): (rows, layer) for rows in ROWS for layer in LAYERS}
        cut = best_cut(sorted(classes, reverse=True), lambda size: timings(
            product, "own", 1, classes[size][0], *classes[size][1]) / (REQUIRED_GAIN * timings(
                product, "own", threads, classes[size][0], *classes[size][1])))
        split[product] = cut or math.inf

    def splits(product, rows, layer):
        # as a step will run it: split where the cut says, and where an
        # epoch's probe splits it (every product BLAS would thread) — the
        # probe keeps the split only if the whole step gains
        return work(product, rows, layer) >= min(split[product], _choice.BLAS_THREADED_WORK)

    def own(product, rows, split_on=True):
        return sum(timings(product, "own", threads if split_on and splits(product, rows, layer)
                           else 1, rows, *layer) for layer in LAYERS)

    def blas(product, rows):
        return sum(timings(product, "blas", 1, rows, *layer) for layer in LAYERS)

    # A step splits nothing once one of its products may wake BLAS's threads
    # (EpochPlan.step_threads), so the split counts only at batch sizes where
    # all three products run on the own kernels.
    alone = {product: best_cut(ROWS, lambda rows: blas(product, rows)
                               / own(product, rows, split_on=False))
             for product in _choice.PRODUCTS}
    together = 0 if threads <= 1 else best_cut(ROWS, lambda rows: sum(
        min(blas(p, rows), own(p, rows, split_on=False)) for p in _choice.PRODUCTS)
        / sum(own(p, rows) for p in _choice.PRODUCTS))
    max_rows = {product: max(alone[product], together) for product in _choice.PRODUCTS}
    min_length = 0
    if max_rows["nt"] > 0:
        rows = min(LENGTH_ROWS, max_rows["nt"])
        min_length = best_cut(reversed(LENGTHS), lambda length: timings(
            "nt", "blas", 1, rows, LAYERS[0][0], length) / timings(
            "nt", "own", 1, rows, LAYERS[0][0], length))
        if min_length == 0:
            max_rows["nt"] = 0

    def large_times(backend, n):
        return {(product, rows): timings(product, backend, n, rows, *LARGE_LAYER)
                for product in _choice.PRODUCTS for rows in LARGE_ROWS}

    # BLAS on several threads last: the own kernels timed after it wait until
    # its threads stop spinning, once
    own_times = {n: large_times("own", n) for n in sorted({1, threads})}
    blas_times = {n: large_times("blas", n) for n in sorted({1, threads})}
    large, large_from = {}, {}
    for product in _choice.PRODUCTS:
        def gain(rows):
            return min(blas_times[n][product, rows] / own_times[n][product, rows]
                       for n in own_times)
        down = best_cut(reversed(LARGE_ROWS), gain)
        if down:
            large[product] = LARGE_ROWS[-1]
            large_from[product] = 0 if down == LARGE_ROWS[0] else down
        else:
            large[product], large_from[product] = best_cut(LARGE_ROWS, gain), 0
    # the crossovers hold for the layer sizes timed, not beyond
    return {"own_max_rows": max_rows, "own_min_length": min_length, "split_min_work": split,
            "threads": threads, "own_max_weights": max(n_in * n_out for n_in, n_out in LAYERS),
            "own_large_max_rows": large, "own_large_max_weights": math.prod(LARGE_LAYER),
            "own_large_min_rows": large_from}


def measure(dtype):
    """A timing function for ``decide`` that measures on this machine, each class once.

    A class is timed when ``decide`` first asks for it, so the batches past
    a crossover and the products too small to split are never timed.  A
    timing is the best of SAMPLES runs of about SAMPLE_SECONDS, or one call
    where one call takes longer.  ``timing.retime()`` times every class
    asked for so far once more, in the opposite order, and keeps the
    faster: a burst of other work on the machine that slowed one class then
    rarely slows it twice.
    """
    from fastnn import _threads  # which imports this module

    table = {}
    threaded_blas_at = [-math.inf]   # when BLAS last ran on several threads

    def sample(key):
        product, backend, n_threads, rows, n_in, n_out = key
        if backend == "own":
            # OpenBLAS's threads spin for 2^28 cycles (THREAD_TIMEOUT, about
            # 0.1 s) after a product before they sleep; ours would be timed
            # fighting them.
            time.sleep(max(0.0, threaded_blas_at[0] + BLAS_SPIN_SECONDS - time.perf_counter()))
        m, n, k = shape(product, rows, n_in, n_out)
        with _threads.blas_threads_limited(n_threads if backend == "blas" else None):
            once = _choice.time_product(product, m, n, k, dtype, backend, n_threads)
            calls = int(SAMPLE_SECONDS / max(once, 1e-7))
            seconds = once if calls < 2 else min(
                _choice.time_product(product, m, n, k, dtype, backend, n_threads, calls)
                for _ in range(SAMPLES)) / calls
        if backend == "blas" and n_threads > 1:
            threaded_blas_at[0] = time.perf_counter()
        return seconds

    def timing(product, backend, n_threads, rows, n_in, n_out):
        key = (product, backend, n_threads, rows, n_in, n_out)
        if key not in table:
            table[key] = sample(key)
        return table[key]

    def retime():
        for key in reversed(list(table)):
            table[key] = min(table[key], sample(key))

    timing.retime = retime
    return timing


def calibrate(dtype):
    """The choice for ``dtype`` from this machine's timings, each class timed twice."""
    timings = measure(dtype)
    decide(timings, SPLIT_THREADS)
    timings.retime()
    return decide(timings, SPLIT_THREADS)


def _calibrated(dtype):
    """calibrate(dtype), in a fresh interpreter where this process is a forked child.

    GNU OpenMP's threads do not survive fork(): a child whose parent had
    started them, timing a split product itself, would wait for them
    forever.  Where no fresh interpreter can run, the child times the
    products on one thread and splits nothing.
    """
    from fastnn import _threads  # which imports this module

    if not _threads.in_forked_child():
        return calibrate(dtype)
    code = ("import json, sys; from fastnn import _calibration; "
            "print(json.dumps(_calibration.calibrate(sys.argv[1])))")
    try:
        done = subprocess.run([sys.executable, "-c", code, np.dtype(dtype).name],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return decide(measure(dtype), 1)


#: where Linux describes the CPU
CPUINFO = "/proc/cpuinfo"


def cpu_identity():
    """The first processor's model name, family, model and stepping (``platform`` elsewhere).

    The name alone does not tell CPUs apart: virtual machines often call
    every AMD processor "AMD EPYC", a Zen 3 and a Zen 5 alike.
    """
    fields = {"model name": platform.processor(), "cpu family": "?", "model": "?",
              "stepping": "?"}
    try:
        with open(CPUINFO) as info:
            for line in info:
                if not line.strip():
                    break  # the first processor's block ends
                name, _, value = line.partition(":")
                if name.strip() in fields:
                    fields[name.strip()] = value.strip()
    except OSError:
        pass
    return (f"{fields['model name']}, family {fields['cpu family']} model {fields['model']} "
            f"stepping {fields['stepping']}")


def machine():
    """The cache key of this machine: CPU, CPU count, BLAS kernels, library versions.

    The BLAS part names the kernels each loaded BLAS runs (OpenBLAS picks
    them by CPU, or by OPENBLAS_CORETYPE): the crossover against BLAS moves
    with them.
    """
    import scipy

    from fastnn import __version__
    from fastnn import _threads  # which imports this module

    return (f"{cpu_identity()}|{os.cpu_count()}|{'; '.join(_threads.blas_kernels())}"
            f"|numpy {np.__version__}|scipy {scipy.__version__}|fastnn {__version__}")


def cache_path():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "fastnn", "threads.json")


def load_cache():
    """The cached measurements, a dict (empty if there is no readable cache)."""
    try:
        with open(cache_path()) as f:
            cache = json.load(f)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def store(key, value):
    """Add one decision to the cache file (written whole, atomically)."""
    cache = load_cache()
    cache[key] = value
    try:
        os.makedirs(os.path.dirname(cache_path()), exist_ok=True)
        with atomic_write(cache_path(), "w") as f:
            json.dump(cache, f, indent=0, sort_keys=True)
    except OSError:
        pass  # an unwritable cache only means measuring again next time


@contextlib.contextmanager
def _cache_lock():
    """Hold the cache's lock (an advisory lock on a file beside it) for the block.

    Without it, processes that start at once on a machine without a cache
    (the workers of a cross-validation, say) would each measure, keep
    answers that a noisy machine makes differ, so that their seeded runs
    differ, and the last to write would erase the others' entries.
    """
    path = cache_path() + ".lock"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # an unwritable cache directory: nothing is shared anyway
        yield
        return
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def cached_or_measured(key, usable, measure, reuse=True):
    """The cached entry for ``key`` where ``usable(entry)``, else ``measure()``, stored.

    One process at a time looks and measures, so the first measurement made
    on a machine is the one every process uses.  ``reuse=False`` measures
    anew and replaces the entry.
    """
    with _cache_lock():
        if reuse:
            entry = load_cache().get(key)
            if entry is not None and usable(entry):
                return entry
        value = measure()
        store(key, value)
        return value


def _key(dtype):
    return (f"{machine()}|gemm {_choice.vector_bits()}|rule {RULE}|{np.dtype(dtype).name}")


def gemm_choice(dtype):
    """The choice for ``dtype`` on this machine: cached, or measured now; set and returned.

    The key is the machine alone — not the thread limit of the moment, nor
    BLAS's: whatever a fit's settings, the same machine makes the same
    choice, so its seeded runs give the same bits.  A split is timed on
    SPLIT_THREADS threads; a fit splits over as many as it may use.
    """
    dtype = np.dtype(dtype)
    mode = os.environ.get("FASTNN_CALIBRATION", "")
    if mode == "off" or _choice.vector_bits() == 0:
        chosen = blas_always()
    else:
        key = _key(dtype)
        # once per process even with redo: a fit never changes its choice midway
        chosen = _applied.get(key)
        if chosen is None:
            chosen = cached_or_measured(key, lambda entry: _settable(dtype, entry),
                                        lambda: _calibrated(dtype),
                                        reuse=mode != "redo")
        _applied[key] = chosen
    # nothing is split outside a fit: fastnn._threads.step_threads allows it
    # where no BLAS thread of the step may run meanwhile
    _choice.set_choice(dtype, **{**chosen, "threads": 1})
    return chosen


def _settable(dtype, entry):
    """Whether a cached entry is a choice this version can set (it is then set)."""
    try:
        _choice.set_choice(dtype, **entry)
    except (TypeError, ValueError):
        return False
    return True


def cached_choices():
    """Set the cached choice of each dtype that has one, measuring nothing."""
    if os.environ.get("FASTNN_CALIBRATION", "") in ("off", "redo") or _choice.vector_bits() == 0:
        return
    cache = load_cache()
    for dtype in (np.float32, np.float64):
        if isinstance(cache.get(_key(dtype)), dict):
            gemm_choice(dtype)
