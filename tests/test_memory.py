"""Training allocates per epoch, not per step.

The compiled epoch runs every step of a slice in one call, on a workspace
sized once for the batch: no Python code, so no NumPy array and no Python
object, is made per step.  Two checks: the Python-level calls made by
``fit`` (every allocation from Python is one) do not grow with the number of
steps, and neither does the peak of the memory traced by ``tracemalloc``
beyond what the epoch's order array itself takes.
"""

import gc
import sys
import tracemalloc

import numpy as np
import pytest

from fastnn import layers as L
from fastnn.model import Sequential
from fastnn.optimizers import Adam


def _model(kind):
    layers = [L.Dense(12, 16), L.ReLU()]
    if kind == "batchnorm":
        layers += [L.BatchNorm()]
    if kind == "dropout":
        layers += [L.Dropout(0.2)]
    return Sequential(layers + [L.Dense(16, 3), L.Softmax()], optimizer=Adam(lr=1e-3),
                      seed=0, l2=1e-3, clip_norm=5.0, gradient_noise=0.01)


def _data(n):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 12)).astype(np.float32), rng.integers(0, 3, n)


def _calls_during_fit(model, X, y, batch_size):
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    # A garbage collection during the fit would count the callbacks of other
    # tests' dead objects (a model leaving fastnn.inference's weak plan table
    # is one call): collect before, and not during.
    gc.collect()
    gc.disable()
    sys.setprofile(count)
    try:
        model.fit(X, y, epochs=1, batch_size=batch_size)
    finally:
        sys.setprofile(None)
        gc.enable()
    return calls


@pytest.mark.parametrize("kind", ["plain", "batchnorm", "dropout"])
def test_python_calls_of_a_compiled_epoch_do_not_grow_with_its_steps(kind):
    # both epochs long enough for the epoch's comparison of thread counts
    # (training.PROBE_STEPS), which adds a fixed number of compiled calls,
    # and short enough for one (it is repeated every REPROBE_STEPS steps)
    from fastnn import training

    assert 6 * training.PROBE_STEPS <= 400 and 1000 < training.REPROBE_STEPS + 6 * training.PROBE_STEPS
    X, y = _data(8000)
    model = _model(kind)
    model.fit(X[:64], y[:64], epochs=1, batch_size=8)   # calibration, caches, imports
    few = _calls_during_fit(model, X[:3200], y[:3200], batch_size=8)   # 400 steps
    many = _calls_during_fit(model, X, y, batch_size=8)                # 1000 steps
    assert many == few, (few, many)


def test_peak_memory_of_a_compiled_epoch_does_not_grow_with_its_steps():
    X, y = _data(8000)
    model = _model("plain")
    model.fit(X[:64], y[:64], epochs=1, batch_size=8)

    def peak(n):
        tracemalloc.start()
        try:
            model.fit(X[:n], y[:n], epochs=1, batch_size=8)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, many = peak(80), peak(8000)
    # The order permutation, the one-hot-free label copy and the rates are
    # per-sample or per-step arrays of 8 bytes an entry made once per epoch;
    # nothing else may grow.
    per_epoch_arrays = 8 * (8000 - 80) * 4
    assert many - few <= per_epoch_arrays, (few, many)
