"""The step's thread count: chosen by measurement on this machine, cached, never changing
the numbers."""

import json
import types

import numpy as np
import pytest

from fastnn import _threads
from fastnn import layers as L
from fastnn import optimizers as O
from fastnn.model import Sequential


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(_threads, "_decisions", {})
    # a kernel choice measured into this cache must not outlive the test
    monkeypatch.setattr(_threads._calibration, "_applied", {})
    return tmp_path / "fastnn" / "threads.json"


def bound_adam(n=40_000):
    optimizer = O.Adam(lr=1e-3)
    optimizer.bind(n, np.float32, n // 2)
    return optimizer


def test_the_faster_count_is_measured_once_and_cached(fresh_cache, monkeypatch):
    calls = []

    def measure(optimizer, n_params, n_decay, dtype, allowed):
        calls.append(n_params)
        return allowed

    monkeypatch.setattr(_threads, "_measure", measure)
    optimizer = bound_adam()
    assert _threads.calibrated_threads(optimizer, 40_000, 20_000, np.float32, 2) == 2
    assert _threads.calibrated_threads(optimizer, 40_500, 20_000, np.float32, 2) == 2
    assert calls == [40_000]                      # a size within 10 % shares the decision
    assert list(json.loads(fresh_cache.read_text()).values()) == [2]
    monkeypatch.setattr(_threads, "_decisions", {})  # a new process reads the file
    assert _threads.calibrated_threads(optimizer, 40_000, 20_000, np.float32, 2) == 2
    assert calls == [40_000]
    monkeypatch.setenv("FASTNN_CALIBRATION", "redo")
    _threads.calibrated_threads(optimizer, 40_000, 20_000, np.float32, 2)
    assert calls == [40_000, 40_000]
    monkeypatch.setenv("FASTNN_CALIBRATION", "off")
    assert _threads.calibrated_threads(optimizer, 40_000, 20_000, np.float32, 2) == 1


def test_the_measurement_compares_one_thread_with_more(fresh_cache, monkeypatch):
    from fastnn_ext import update

    seen = set()
    original = update.UpdateStep.update

    class Recording(update.UpdateStep):
        def update(self, lr, generator, n_threads=1):
            seen.add(n_threads)
            return original(self, lr, generator, n_threads)

    monkeypatch.setattr(_threads._update, "UpdateStep", Recording)
    threads = _threads._measure(bound_adam(), 40_000, 20_000, np.float32, 2)
    assert threads in (1, 2) and seen == {1, 2}


def test_the_thread_count_does_not_change_the_weights(fresh_cache, monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 60)), rng.integers(0, 4, 200)
    runs = []
    for threads in (1, 2):
        monkeypatch.setattr(_threads, "calibrated_threads", lambda *args, t=threads: t)
        model = Sequential([L.Dense(60, 600), L.ReLU(), L.Dense(600, 4), L.Softmax()],
                           optimizer=O.Adam(lr=1e-3), seed=0)
        assert model.n_params > 2 ** 15   # large enough to be split
        model.fit(X, y, epochs=2, batch_size=10)
        runs.append(model.params_)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_a_broken_cache_file_is_measured_again(fresh_cache, monkeypatch):
    fresh_cache.parent.mkdir(parents=True)
    fresh_cache.write_text("not json")
    monkeypatch.setattr(_threads, "_measure", lambda *args: 1)
    assert _threads.calibrated_threads(bound_adam(), 40_000, 20_000, np.float32, 2) == 1
    assert list(json.loads(fresh_cache.read_text()).values()) == [1]


def _clocked_epochs(monkeypatch, calibrated, seconds_per_step):
    """Fits from here on may use two threads, the update's calibration answers
    ``calibrated``, and the epoch's clock makes a compiled call of the steps
    [first, last) on ``threads`` update threads take (last − first) ·
    seconds_per_step(first, threads) seconds.  Returns the list every call
    appends its (first step, last step, split threads, update threads) to."""
    from fastnn import training

    monkeypatch.setattr(_threads, "openmp_threads", lambda: 2)
    monkeypatch.setattr(_threads, "blas_threaded", lambda: False)
    monkeypatch.setattr(_threads, "calibrated_threads", lambda *args: calibrated)
    clock, calls = [0.0], []
    run = training._run

    def timed_run(model, plan, data, rates, first, last, threads):
        calls.append((first, last, _threads.split_threads(), threads))
        clock[0] += (last - first) * seconds_per_step(first, threads)
        return run(model, plan, data, rates, first, last, threads)

    monkeypatch.setattr(training, "_run", timed_run)
    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    return calls


def _probed_fit(monkeypatch, calibrated, faster):
    """A fit on a clock on which steps whose update runs on ``faster`` threads
    take 1 s and the others 3 s (see _clocked_epochs).  Returns the model and
    each call's (first step, split threads, update threads)."""
    calls = _clocked_epochs(monkeypatch, calibrated,
                            lambda first, threads: 1.0 if threads == faster else 3.0)
    model = _probe_model()
    model.fit(*_probe_data(), epochs=1, batch_size=1)
    return model, [(first, split, threads) for first, last, split, threads in calls]


def _probe_model():
    return Sequential([L.Dense(8, 16), L.ReLU(), L.Dense(16, 3), L.Softmax()],
                      optimizer=O.Adam(lr=1e-2), seed=0)


def _probe_data():
    from fastnn import training

    rng = np.random.default_rng(0)
    n = 6 * training.PROBE_STEPS + 10
    return rng.standard_normal((n, 8)), rng.integers(0, 3, n)


@pytest.mark.parametrize("faster", [1, 2])
def test_an_epoch_keeps_the_faster_of_one_thread_and_all(monkeypatch, faster):
    # After its probe the epoch runs on the faster setting, and the weights
    # are those of a run on one thread throughout.
    from fastnn import training

    probed, calls = _probed_fit(monkeypatch, 2, faster)
    probe = training.PROBE_STEPS
    assert [c[2] for c in calls if c[0] < 3 * probe] == [2, 1, 2]
    assert {c[1:] for c in calls if c[0] >= 3 * probe} == {(faster, faster)}

    monkeypatch.setattr(_threads, "openmp_threads", lambda: 1)
    single = _probe_model()
    single.fit(*_probe_data(), epochs=1, batch_size=1)
    np.testing.assert_array_equal(probed.params_, single.params_)


def test_the_probe_times_the_update_on_all_threads_whatever_the_calibration(monkeypatch):
    # The calibration kept one thread for the update (a noisy measurement on
    # scratch buffers, cached), but on this clock two update threads are
    # faster: the epoch's probe times them and keeps them.
    from fastnn import training

    _, calls = _probed_fit(monkeypatch, 1, 2)
    assert {c[1:] for c in calls if c[0] >= 3 * training.PROBE_STEPS} == {(2, 2)}


def test_the_probe_times_splits_the_calibration_kept_off(monkeypatch, restored_choice):
    # The calibration (a noisy measurement, cached) splits no product; the
    # epoch's probe still times the own kernels split from the size at which
    # BLAS would start its threads, keeps the split where the clock favours
    # it, and the weights stay those of a run on one thread.
    from fastnn import _calibration, training
    from fastnn_ext import gemm_choice

    never_split = {"own_max_rows": dict.fromkeys(gemm_choice.PRODUCTS, 32),
                   "own_min_length": 0, "threads": 1, "own_max_weights": 300 * 256,
                   "split_min_work": dict.fromkeys(gemm_choice.PRODUCTS, np.inf)}

    def fixed_choice(dtype):
        gemm_choice.set_choice(dtype, **never_split)
        return never_split

    monkeypatch.setattr(_calibration, "gemm_choice", fixed_choice)
    rng = np.random.default_rng(0)
    n = 10 * (6 * training.PROBE_STEPS + 1)
    X, y = rng.standard_normal((n, 300)), rng.integers(0, 3, n)
    big = gemm_choice.BLAS_THREADED_WORK
    assert 10 * 256 * 300 >= big and 10 * 256 * 3 < big

    def model():
        return Sequential([L.Dense(300, 256), L.ReLU(), L.Dense(256, 3), L.Softmax()],
                          optimizer=O.Adam(lr=1e-3), seed=0, dtype="float64")

    calls = []

    def seconds_per_step(first, threads):
        splits = gemm_choice.chosen("nn", 10, 256, 300, np.float64)
        calls.append((first, splits, gemm_choice.chosen("nn", 10, 3, 256, np.float64)))
        return 1.0 if splits == ("own", 2) else 3.0

    run = training._run
    _clocked_epochs(monkeypatch, 2, seconds_per_step)
    probed = model()
    probed.fit(X, y, epochs=1, batch_size=10)
    probe = training.PROBE_STEPS
    assert [c[1] for c in calls if c[0] < 3 * probe] == [("own", 2), ("own", 1), ("own", 2)]
    assert {c[1] for c in calls if c[0] >= 3 * probe} == {("own", 2)}
    assert {c[2] for c in calls} == {("own", 1)}   # too small to split: never is

    monkeypatch.setattr(_threads, "openmp_threads", lambda: 1)
    monkeypatch.setattr(training, "_run", run)
    single = model()
    single.fit(X, y, epochs=1, batch_size=10)
    np.testing.assert_array_equal(probed.params_, single.params_)


def test_the_probe_is_repeated_and_follows_a_change_of_load(monkeypatch):
    # Other work takes a core from step `busy` on: two threads, faster
    # before, are then three times slower.  The epoch times both again every
    # REPROBE_STEPS and moves to one thread in the first window after the
    # change; the weights stay those of a run on one thread.
    from fastnn import training

    probe, every = training.PROBE_STEPS, training.REPROBE_STEPS
    busy = every + every // 2

    def seconds_per_step(first, threads):
        faster = 2 if first < busy else 1
        return 1.0 if threads == faster else 3.0

    run = training._run
    calls = _clocked_epochs(monkeypatch, 2, seconds_per_step)
    n = 3 * every + 6 * probe
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n, 8)), rng.integers(0, 3, n)
    probed = _probe_model()
    probed.fit(X, y, epochs=1, batch_size=1)

    def threads_of(step):
        return next(t for first, last, _, t in calls if first <= step < last)

    # the first window: warm-up on two, then one, then two, then the faster (two)
    assert [threads_of(s) for s in (0, probe, 2 * probe, 3 * probe)] == [2, 1, 2, 2]
    # each later window times one thread, then two, then keeps the faster
    for window, kept in ((every, 2), (2 * every, 1), (3 * every, 1)):
        assert [threads_of(window), threads_of(window + probe)] == [1, 2]
        assert {t for first, last, _, t in calls if window + 2 * probe <= first
                and last <= min(window + every, n)} == {kept}
    assert sum(last - first for first, last, _, _ in calls) == n

    monkeypatch.setattr(_threads, "openmp_threads", lambda: 1)
    monkeypatch.setattr(training, "_run", run)
    single = _probe_model()
    single.fit(X, y, epochs=1, batch_size=1)
    np.testing.assert_array_equal(probed.params_, single.params_)
