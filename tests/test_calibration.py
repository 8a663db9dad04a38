"""The choice between fastnn's own matrix kernels and BLAS: derived from measurements
(here a fake table), cached per machine, redone or switched off by FASTNN_CALIBRATION."""

import json
import math

import numpy as np
import pytest

from fastnn import _calibration, _threads
from fastnn import layers as L
from fastnn import optimizers as O
from fastnn.model import Sequential
from fastnn_ext import gemm_choice

needs_kernels = pytest.mark.skipif(gemm_choice.vector_bits() == 0,
                                   reason="no AVX2+FMA or AVX-512: BLAS only")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, restored_choice):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FASTNN_CALIBRATION", raising=False)
    monkeypatch.setattr(_calibration, "_applied", {})
    return tmp_path / "fastnn" / "threads.json"


def fake_timings(own_until, nt_from=0, split_from=math.inf):
    """A machine where the own kernels take 1 s up to `own_until` rows (3 s past it),
    BLAS 2 s; the input gradient's own kernels 3 s below W rows of `nt_from`;
    two threads take half the time from `split_from` multiply-adds."""
    def timing(product, backend, threads, rows, n_in, n_out):
        if backend == "blas":
            return 2.0
        one = 3.0 if rows > own_until[product] or (product == "nt" and n_out < nt_from) \
            else 1.0
        if threads > 1 and math.prod(_calibration.shape(product, rows, n_in, n_out)) \
                >= split_from:
            return one / 2
        return one
    return timing


def test_the_crossovers_are_read_from_the_table():
    timing = fake_timings({"nn": 64, "tn": 0, "nt": 10}, nt_from=32)
    chosen = _calibration.decide(timing, threads=1)
    assert chosen["own_max_rows"] == {"nn": 64, "tn": 0, "nt": 10}
    assert chosen["own_min_length"] == 32
    assert chosen["split_min_work"] == dict.fromkeys(gemm_choice.PRODUCTS, math.inf)
    assert chosen["threads"] == 1


def test_a_near_tie_among_wins_does_not_end_the_own_range():
    # own loses at 1 row by 10 %, wins 2x at every other batch up to 128
    def timing(product, backend, threads, rows, n_in, n_out):
        if backend == "blas":
            return 2.0
        return 2.2 if rows == 1 else (1.0 if rows <= 128 else 4.0)
    assert _calibration.decide(timing, 1)["own_max_rows"] == dict.fromkeys(
        gemm_choice.PRODUCTS, 128)


def test_the_input_gradient_goes_to_blas_where_its_rows_are_always_too_short():
    timing = fake_timings({"nn": 256, "tn": 256, "nt": 256}, nt_from=10 ** 6)
    chosen = _calibration.decide(timing, 1)
    assert chosen["own_max_rows"]["nt"] == 0 and chosen["own_max_rows"]["nn"] == 256


def test_the_split_starts_where_threads_pay_at_every_larger_product():
    own_until = {"nn": 256, "tn": 256, "nt": 256}
    split_from = 32 * 256 * 784     # the forward product of a 784→256 layer at batch 32
    chosen = _calibration.decide(fake_timings(own_until, split_from=split_from), threads=2)
    works = {p: sorted(math.prod(_calibration.shape(p, r, *layer)) for r in _calibration.ROWS
                       for layer in _calibration.LAYERS) for p in gemm_choice.PRODUCTS}
    for product in gemm_choice.PRODUCTS:
        expected = min(w for w in works[product] if w >= split_from)
        assert chosen["split_min_work"][product] == expected
    # never faster with two: no split at all
    never = _calibration.decide(fake_timings(own_until), threads=2)
    assert never["split_min_work"] == dict.fromkeys(gemm_choice.PRODUCTS, math.inf)


def test_a_product_that_wins_only_split_goes_to_the_own_kernels_split():
    # one thread of the own kernels loses to BLAS past 32 rows (3 s against 2),
    # two threads win there (1 s): compared as it will run, the product stays
    # on the own kernels, split
    def timing(product, backend, threads, rows, n_in, n_out):
        if backend == "blas":
            return 2.0
        if threads > 1:
            return 1.0
        return 1.0 if rows <= 32 else 3.0

    single = _calibration.decide(timing, threads=1)
    split = _calibration.decide(timing, threads=2)
    assert single["own_max_rows"] == dict.fromkeys(gemm_choice.PRODUCTS, 32)
    assert split["own_max_rows"] == dict.fromkeys(gemm_choice.PRODUCTS, max(_calibration.ROWS))
    smallest_slow = min(math.prod(_calibration.shape("nn", rows, *layer))
                        for rows in _calibration.ROWS if rows > 32
                        for layer in _calibration.LAYERS)
    assert split["split_min_work"]["nn"] <= smallest_slow


def test_no_product_counts_on_a_split_where_another_goes_to_blas():
    # Past 32 rows the forward and weight-gradient products win split (1 s
    # against BLAS's 2) but the input gradient is far faster in BLAS (1 s
    # against 4 split): sending the first two to the own kernels there would
    # leave them unsplit (3 s), since a step with a threaded BLAS product
    # splits nothing.  All three together lose (6 s against 5), so the own
    # range ends at 32 rows for every product.
    def timing(product, backend, threads, rows, n_in, n_out):
        if rows <= 32:
            return 2.0 if backend == "blas" else 1.0
        if product == "nt":
            return 1.0 if backend == "blas" else (4.0 if threads > 1 else 5.0)
        return 2.0 if backend == "blas" else (1.0 if threads > 1 else 3.0)

    chosen = _calibration.decide(timing, threads=2)
    assert chosen["own_max_rows"] == dict.fromkeys(gemm_choice.PRODUCTS, 32)


def test_the_step_is_compared_as_the_epochs_probe_will_split_it():
    # A burst of other work slowed every split of the largest classes (no
    # gain from two threads past 32 rows), so the calibrated cut splits
    # nothing.  The epoch's probe still splits every product BLAS would
    # thread, and the weight gradient, three times slower than BLAS on one
    # thread, wins split (1 s against 2): the three products of a step
    # compared that way go to the own kernels up to 32 rows.
    def timing(product, backend, threads, rows, n_in, n_out):
        if backend == "blas":
            return 2.0
        if rows > 32:
            return 3.0
        single = 3.0 if product == "tn" else 1.0
        work = math.prod(_calibration.shape(product, rows, n_in, n_out))
        return single / 3 if threads > 1 and work >= gemm_choice.BLAS_THREADED_WORK else single

    chosen = _calibration.decide(timing, threads=2)
    assert chosen["split_min_work"] == dict.fromkeys(gemm_choice.PRODUCTS, math.inf)
    assert chosen["own_max_rows"] == dict.fromkeys(gemm_choice.PRODUCTS, 32)


def test_best_cut_is_zero_when_nothing_gains():
    assert _calibration.best_cut([1, 2, 3], lambda c: 0.5) == 0
    assert _calibration.best_cut([1, 2, 3], lambda c: 2.0) == 3


@needs_kernels
def test_measured_once_cached_redone_and_switched_off(fresh_cache, monkeypatch):
    calls = []
    table = fake_timings({"nn": 32, "tn": 10, "nt": 4}, nt_from=16)

    def calibrate(dtype):
        calls.append(np.dtype(dtype).name)
        return _calibration.decide(table, _calibration.SPLIT_THREADS)

    monkeypatch.setattr(_calibration, "calibrate", calibrate)
    first = _calibration.gemm_choice(np.float32)
    assert calls == ["float32"]
    assert gemm_choice.get_choice(np.float32)["own_max_rows"] == {"nn": 32, "tn": 10, "nt": 4}
    assert _calibration.gemm_choice(np.float32) == first and calls == ["float32"]
    assert list(json.loads(fresh_cache.read_text()).values()) == [first]

    monkeypatch.setattr(_calibration, "_applied", {})   # a new process reads the file
    gemm_choice.set_choice(np.float32, **_calibration.blas_always())
    assert _calibration.gemm_choice(np.float32) == first and calls == ["float32"]
    assert gemm_choice.get_choice(np.float32)["own_max_rows"]["nn"] == 32

    monkeypatch.setattr(_calibration, "_applied", {})
    monkeypatch.setenv("FASTNN_CALIBRATION", "redo")
    _calibration.gemm_choice(np.float32)
    _calibration.gemm_choice(np.float32)            # once per process, even redone
    assert calls == ["float32", "float32"]

    monkeypatch.setenv("FASTNN_CALIBRATION", "off")
    assert _calibration.gemm_choice(np.float32) == _calibration.blas_always()
    assert gemm_choice.get_choice(np.float32)["own_max_rows"] == dict.fromkeys(
        gemm_choice.PRODUCTS, 0)
    assert calls == ["float32", "float32"]


def test_the_cache_key_tells_apart_cpus_of_one_name_and_blas_kernels(tmp_path, monkeypatch):
    # Virtual machines often name every AMD CPU "AMD EPYC": a Zen 3 and a Zen 5
    # must not share a choice, nor OpenBLAS with its Haswell and its SkylakeX
    # kernels (OPENBLAS_CORETYPE), whose speeds differ twice over.
    def key(family, model, blas_kernels):
        cpuinfo = tmp_path / f"cpuinfo-{family}-{model}"
        cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                           f"cpu family\t: {family}\nmodel\t\t: {model}\n"
                           "model name\t: AMD EPYC\nstepping\t: 1\n\n"
                           f"processor\t: 1\ncpu family\t: {family}\nmodel\t\t: {model}\n")
        monkeypatch.setattr(_calibration, "CPUINFO", str(cpuinfo))
        monkeypatch.setattr(_threads, "blas_kernels", lambda: blas_kernels)
        return _calibration.machine()

    zen3 = key(25, 1, ["openblas Haswell"])
    assert zen3 == key(25, 1, ["openblas Haswell"])
    assert "AMD EPYC" in zen3 and "family 25 model 1 stepping 1" in zen3
    assert key(26, 2, ["openblas Haswell"]) != zen3
    assert key(25, 1, ["openblas SkylakeX"]) != zen3


def test_the_cache_key_of_this_machine_names_its_blas_kernels():
    import threadpoolctl

    key = _calibration.machine()
    assert all(f"{pool['internal_api']} {pool['architecture']}" in key
               for pool in threadpoolctl.threadpool_info()
               if pool["user_api"] == "blas" and pool.get("architecture"))


@needs_kernels
def test_an_unreadable_cache_entry_is_measured_again(fresh_cache, monkeypatch):
    monkeypatch.setattr(_calibration, "calibrate", lambda dtype: _calibration.decide(
        fake_timings({"nn": 4, "tn": 4, "nt": 4}), _calibration.SPLIT_THREADS))
    fresh_cache.parent.mkdir(parents=True)
    key = _calibration._key(np.float64)
    fresh_cache.write_text(json.dumps({key: {"own_max_rows": "many"}}))
    chosen = _calibration.gemm_choice(np.float64)
    assert chosen["own_max_rows"] == {"nn": 4, "tn": 4, "nt": 4}
    assert json.loads(fresh_cache.read_text())[key] == chosen


@needs_kernels
def test_a_real_measurement_gives_a_valid_choice(fresh_cache):
    chosen = _calibration.calibrate(np.float32)
    gemm_choice.set_choice(np.float32, **chosen)
    assert set(chosen["own_max_rows"].values()) <= {0, *_calibration.ROWS}


def test_bad_choices_are_refused():
    good = _calibration.blas_always()
    with pytest.raises(ValueError, match="own_max_rows"):
        gemm_choice.set_choice(np.float32, **{**good, "own_max_rows": {"nn": 1}})
    with pytest.raises(ValueError, match="own_max_rows\\['nn'\\]"):
        gemm_choice.set_choice(np.float32, **{**good, "own_max_rows": {
            "nn": -1, "tn": 0, "nt": 0}})
    with pytest.raises(ValueError, match="split_min_work"):
        gemm_choice.set_choice(np.float32, **{**good, "split_min_work": {
            "nn": 0, "tn": 1, "nt": 1}})
    with pytest.raises(ValueError, match="threads"):
        gemm_choice.set_choice(np.float32, **{**good, "threads": 0})
    with pytest.raises(TypeError, match="dtype"):
        gemm_choice.set_choice(np.int32, **good)


def test_a_fit_sets_the_choice_before_its_first_step(fresh_cache, monkeypatch):
    seen = []
    monkeypatch.setattr(_calibration, "gemm_choice",
                        lambda dtype: seen.append(np.dtype(dtype).name))
    model = Sequential([L.Dense(8, 4), L.Softmax()], optimizer=O.SGD(lr=0.1), seed=0)
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((20, 8)), rng.integers(0, 4, 20), epochs=1, batch_size=10)
    assert seen and seen[0] == np.dtype(model.dtype).name


def test_no_split_while_blas_may_run_threads(fresh_cache, monkeypatch):
    # a 600-row batch through a 300→300 layer goes to BLAS (own kernels up to 10 rows)
    forced = {**_calibration.blas_always(), "own_max_rows": dict.fromkeys(
        gemm_choice.PRODUCTS, 10), "threads": 2, "own_max_weights": gemm_choice.UNLIMITED}

    def choose(dtype):
        gemm_choice.set_choice(dtype, **forced)

    monkeypatch.setattr(_calibration, "gemm_choice", choose)
    monkeypatch.setattr(_threads, "blas_threaded", lambda: True)
    monkeypatch.setattr(_threads, "openmp_threads", lambda: 2)
    model = Sequential([L.Dense(300, 300), L.Softmax()], optimizer=O.SGD(lr=0.1), seed=0)
    model.fit(np.zeros((600, 300)), np.zeros(600, dtype=int), epochs=1, batch_size=600)
    assert gemm_choice.get_choice(model.dtype)["threads"] == 1
    # at batch 10 every product is the own kernels': the split may use both threads
    model.fit(np.zeros((10, 300)), np.zeros(10, dtype=int), epochs=1, batch_size=10)
    assert gemm_choice.get_choice(model.dtype)["threads"] == 2


def _short_rows_to_blas(dtype, own_max_weights=gemm_choice.UNLIMITED):
    # every batch of up to 600 rows on the own kernels, but the input gradient
    # of a layer of fewer than 64 outputs on BLAS, and weight matrices larger
    # than own_max_weights
    gemm_choice.set_choice(dtype, **{
        **_calibration.blas_always(), "own_max_rows": dict.fromkeys(gemm_choice.PRODUCTS, 600),
        "own_min_length": 64, "threads": 2, "own_max_weights": own_max_weights})


@needs_kernels
def test_a_plan_counts_each_product_where_it_runs(restored_choice):
    from fastnn.plan import build_plan
    from fastnn_ext.update import UpdateStep

    model = Sequential([L.Dense(300, 300), L.ReLU(), L.Dense(300, 8), L.ReLU(),
                        L.Dense(8, 40), L.Softmax()], optimizer=O.SGD(lr=0.1), seed=0)
    _short_rows_to_blas(model.dtype)
    update = UpdateStep(model.params_, model.grads_, model.optimizer, model.n_weights_)
    plan = build_plan(model, model._loss_layers, 600, update)
    expected = {"blas": 0, "own": 0}
    for index, (n_in, n_out) in enumerate(((300, 300), (300, 8), (8, 40))):
        products = [("nn", 600, n_out, n_in), ("tn", n_in, n_out, 600)]
        if index > 0:   # the first layer computes no input gradient
            products.append(("nt", 600, n_in, n_out))
        for kind, m, n, k in products:
            backend = gemm_choice.chosen(kind, m, n, k, model.dtype)[0]
            wakes = backend == "blas" and m * n * k > gemm_choice.BLAS_THREADED_WORK
            expected["blas" if wakes else "own"] += m * n * k
    assert expected["blas"] == 600 * 300 * 8     # the second layer's input gradient
    assert plan.product_work() == (expected["blas"], expected["own"])


@needs_kernels
@pytest.mark.parametrize("own_max_weights, limited", [(gemm_choice.UNLIMITED, True),
                                                      (300 * 8, False)])
def test_the_cores_go_to_the_side_with_more_of_the_steps_work(fresh_cache, monkeypatch,
                                                             own_max_weights, limited):
    import threadpoolctl

    from fastnn import training

    # [300, 300, 8] at batch 600: BLAS gets the second layer's input gradient,
    # 1.4 million multiply-adds of 112 million, and runs on one thread while
    # the step's threads split the rest; with W of at most 300·8 elements on
    # the own kernels, BLAS gets the first layer too and keeps its threads
    monkeypatch.setattr(_calibration, "gemm_choice",
                        lambda dtype: _short_rows_to_blas(dtype, own_max_weights))
    monkeypatch.setattr(_threads, "openmp_threads", lambda: 2)
    seen = []
    real_run = training._run

    def blas_limit():
        return max(pool["num_threads"] for pool in threadpoolctl.threadpool_info()
                   if pool["user_api"] == "blas")

    def run(*args):
        seen.append((gemm_choice.get_choice(model.dtype)["threads"], blas_limit()))
        return real_run(*args)

    monkeypatch.setattr(training, "_run", run)
    model = Sequential([L.Dense(300, 300), L.ReLU(), L.Dense(300, 8), L.Softmax()],
                       optimizer=O.SGD(lr=0.1), seed=0)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        model.fit(np.zeros((600, 300)), np.zeros(600, dtype=int), epochs=1, batch_size=600)
        assert blas_limit() == 2   # the limit ends with the epoch
    assert seen == ([(2, 1)] if limited else [(1, 2)])


@needs_kernels
def test_chosen_reads_the_choice_as_the_compiled_code_does(fresh_cache):
    gemm_choice.set_choice(np.float64, **_calibration.blas_always())
    gemm_choice.set_choice(np.float32, own_max_rows={"nn": 10, "tn": 32, "nt": 4},
                           own_min_length=64, split_min_work={"nn": 1e6, "tn": 1e9, "nt": 1e9},
                           threads=2)
    assert gemm_choice.chosen("nn", 10, 256, 784, np.float32) == ("own", 2)   # 2.0e6 >= 1e6
    assert gemm_choice.chosen("nn", 10, 10, 128, np.float32) == ("own", 1)
    assert gemm_choice.chosen("nn", 11, 256, 784, np.float32) == ("blas", 1)
    assert gemm_choice.chosen("tn", 784, 256, 32, np.float32) == ("own", 1)  # batch = inner
    assert gemm_choice.chosen("tn", 784, 256, 33, np.float32) == ("blas", 1)
    assert gemm_choice.chosen("nt", 4, 256, 64, np.float32) == ("own", 1)
    assert gemm_choice.chosen("nt", 4, 256, 63, np.float32) == ("blas", 1)   # rows too short
    assert gemm_choice.chosen("nn", 10, 256, 784, np.float64) == ("blas", 1)  # its own table
    with pytest.raises(ValueError, match="kind"):
        gemm_choice.chosen("nnn", 1, 1, 1, np.float32)
    with pytest.raises(ValueError, match="m must"):
        gemm_choice.chosen("nn", 0, 1, 1, np.float32)


@needs_kernels
def test_a_weight_matrix_larger_than_the_calibrated_ones_goes_to_blas(fresh_cache):
    limit = 784 * 256
    gemm_choice.set_choice(np.float32, own_max_rows=dict.fromkeys(gemm_choice.PRODUCTS, 64),
                           own_min_length=0, split_min_work=dict.fromkeys(
                               gemm_choice.PRODUCTS, math.inf), threads=1,
                           own_max_weights=limit)
    # a 784→256 layer at batch 64 stays on the own kernels, a 784→512 one does not
    for n_out, backend in ((256, "own"), (512, "blas")):
        assert gemm_choice.chosen("nn", 64, n_out, 784, np.float32)[0] == backend
        assert gemm_choice.chosen("tn", 784, n_out, 64, np.float32)[0] == backend
        assert gemm_choice.chosen("nt", 64, 784, n_out, np.float32)[0] == backend
    with pytest.raises(ValueError, match="own_max_weights"):
        gemm_choice.set_choice(np.float32, **{**_calibration.blas_always(),
                                              "own_max_weights": -1})


@needs_kernels
def test_a_larger_weight_matrix_follows_the_large_layers_crossover(fresh_cache):
    small, large = 784 * 256, 2048 * 2048
    gemm_choice.set_choice(np.float32, own_max_rows=dict.fromkeys(gemm_choice.PRODUCTS, 256),
                           own_min_length=0, split_min_work=dict.fromkeys(
                               gemm_choice.PRODUCTS, math.inf), threads=1,
                           own_max_weights=small,
                           own_large_max_rows={"nn": 512, "tn": 64, "nt": 0},
                           own_large_max_weights=large)
    # 2048→2048: the forward product up to 512 rows, the weight gradient up to
    # 64, the input gradient never; a 784→256 layer by the small layers' cut
    for rows, backends in ((64, ("own", "own", "blas")), (512, ("own", "blas", "blas")),
                           (1024, ("blas", "blas", "blas"))):
        assert (gemm_choice.chosen("nn", rows, 2048, 2048, np.float32)[0],
                gemm_choice.chosen("tn", 2048, 2048, rows, np.float32)[0],
                gemm_choice.chosen("nt", rows, 2048, 2048, np.float32)[0]) == backends
    assert gemm_choice.chosen("nn", 256, 256, 784, np.float32)[0] == "own"
    assert gemm_choice.chosen("nn", 512, 256, 784, np.float32)[0] == "blas"
    # beyond the large layer's size nothing was timed: BLAS
    assert gemm_choice.chosen("nn", 64, 4096, 2048, np.float32)[0] == "blas"
    assert gemm_choice.get_choice(np.float32)["own_large_max_rows"] == {
        "nn": 512, "tn": 64, "nt": 0}


def test_the_large_layers_cut_needs_a_win_on_one_thread_and_on_all():
    def timing(product, backend, threads, rows, n_in, n_out):
        if (n_in, n_out) != _calibration.LARGE_LAYER:
            return 1.0 if backend == "own" else 2.0
        if backend == "blas":   # BLAS: 3 s on one thread, 1 s on two
            return 3.0 if threads == 1 else 1.0
        # own: 2 s on one thread; split, 0.5 s for the forward product, 2 s for the others
        return 2.0 if threads == 1 or product != "nn" else 0.5
    chosen = _calibration.decide(timing, threads=2)
    assert chosen["own_large_max_rows"] == {"nn": _calibration.LARGE_ROWS[-1], "tn": 0, "nt": 0}
    assert chosen["own_large_max_weights"] == math.prod(_calibration.LARGE_LAYER)
    # on one thread only the one-thread times count
    assert _calibration.decide(timing, threads=1)["own_large_max_rows"] == dict.fromkeys(
        gemm_choice.PRODUCTS, _calibration.LARGE_ROWS[-1])


def test_the_large_layers_range_can_start_above_its_smallest_batch(fresh_cache):
    # the input gradient's dot products (few rows) lose to BLAS where the
    # packed panels (many rows) win: the own kernels take the larger batches
    smallest, *_ = _calibration.LARGE_ROWS

    def timing(product, backend, threads, rows, n_in, n_out):
        if (n_in, n_out) != _calibration.LARGE_LAYER or backend == "blas":
            return 2.0 if backend == "blas" else 1.0
        return 3.0 if product == "nt" and rows == smallest else 1.0
    chosen = _calibration.decide(timing, threads=2)
    assert chosen["own_large_max_rows"] == dict.fromkeys(
        gemm_choice.PRODUCTS, _calibration.LARGE_ROWS[-1])
    assert chosen["own_large_min_rows"] == {"nn": 0, "tn": 0, "nt": _calibration.LARGE_ROWS[1]}
    if gemm_choice.vector_bits():
        gemm_choice.set_choice(np.float32, **chosen)
        for rows, backend in ((smallest, "blas"), (_calibration.LARGE_ROWS[1], "own"),
                              (_calibration.LARGE_ROWS[-1], "own")):
            assert gemm_choice.chosen("nt", rows, 2048, 2048, np.float32)[0] == backend
        assert gemm_choice.chosen("nn", 1, 2048, 2048, np.float32)[0] == "own"


def test_blas_is_timed_on_as_many_threads_as_asked(monkeypatch):
    import threadpoolctl

    seen = []

    def time_product(kind, m, n, k, dtype, backend, threads=1, calls=1):
        seen.append((backend, threads, max(pool["num_threads"] for pool in
                                           threadpoolctl.threadpool_info()
                                           if pool["user_api"] == "blas")))
        return 1e-2
    monkeypatch.setattr(_calibration._choice, "time_product", time_product)
    monkeypatch.setattr(_calibration, "BLAS_SPIN_SECONDS", 0)
    timing = _calibration.measure(np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        timing("nn", "blas", 1, 64, 784, 256)
        timing("nn", "blas", 2, 64, 784, 256)
    assert [limit for backend, threads, limit in seen] == [1, 2]


def test_the_decision_holds_for_the_layer_sizes_it_timed():
    chosen = _calibration.decide(fake_timings({"nn": 64, "tn": 64, "nt": 64}), threads=1)
    assert chosen["own_max_weights"] == max(a * b for a, b in _calibration.LAYERS)


def test_an_exact_tie_does_not_end_the_scan():
    # classes where both sides are the same computation (no split pays) tie
    gains = {1: 1.0, 4: 1.0, 10: 1.0, 32: 2.0, 64: 0.5}
    assert _calibration.best_cut([1, 4, 10, 32, 64], gains.get) == 32


def test_set_threads_and_vector_bits():
    saved = gemm_choice.get_choice(np.float32)["threads"]
    gemm_choice.set_threads(3)
    assert gemm_choice.get_choice(np.float64)["threads"] == 3
    gemm_choice.set_threads(saved)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="threads"):
            gemm_choice.set_threads(bad)
    for bad in (0, -1.0, math.nan):
        with pytest.raises(ValueError, match="split_floor"):
            gemm_choice.set_threads(1, bad)
    with pytest.raises(TypeError):
        gemm_choice.set_threads(1, "many")
    assert gemm_choice.vector_bits() in (0, 256, 512)


@needs_kernels
def test_time_product_returns_seconds_and_checks_its_arguments():
    assert gemm_choice.time_product("nn", 10, 256, 784, np.float32, "own", calls=3) > 0
    with pytest.raises(ValueError, match="backend"):
        gemm_choice.time_product("nn", 1, 1, 1, np.float32, "cuda")
    with pytest.raises(TypeError, match="dtype"):
        gemm_choice.time_product("nn", 1, 1, 1, np.int8, "blas")


RACE = """
import sys, time
import numpy as np
from fastnn import _calibration, _threads
from fastnn import optimizers as O

own_until, go = int(sys.argv[1]), float(sys.argv[2])

def calibrate(dtype):
    time.sleep(0.3)    # both processes are measuring at once
    return _calibration.decide(lambda product, backend, threads, rows, n_in, n_out: (
        2.0 if backend == "blas" else (1.0 if rows <= own_until else 3.0)), 1)

def measure_threads(optimizer, n_params, n_decay, dtype, allowed):
    time.sleep(0.3)
    return 1 if own_until < 32 else allowed

_calibration.calibrate, _threads._measure = calibrate, measure_threads
time.sleep(max(0.0, go - time.time()))
chosen = _calibration.gemm_choice(np.float32)["own_max_rows"]["nn"]
optimizer = O.Adam(lr=1e-3)
optimizer.bind(40_000, np.float32, 20_000)
print(chosen, _threads.calibrated_threads(optimizer, 40_000, 20_000, np.float32, 2))
"""


@needs_kernels
def test_processes_calibrating_at_once_make_one_choice(fresh_cache):
    # Two processes that find no cache and measure differently (a noisy
    # machine) must not each keep their own answer: their seeded runs would
    # differ, and the last writer would erase the other's entry.
    import subprocess
    import sys
    import time

    go = time.time() + 1.0
    workers = [subprocess.Popen([sys.executable, "-c", RACE, str(own_until), str(go)],
                                stdout=subprocess.PIPE, text=True)
               for own_until in (4, 64)]
    answers = [worker.communicate(timeout=120)[0].split() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert answers[0] == answers[1]
    entries = json.loads(fresh_cache.read_text())
    assert entries.pop(_calibration._key(np.float32))["own_max_rows"]["nn"] == int(answers[0][0])
    assert list(entries.values()) == [int(answers[0][1])]


def test_a_second_pass_keeps_the_faster_timing_of_each_class(monkeypatch):
    # a burst of other work slows the first pass's forward products, the
    # second pass's BLAS ones: each class keeps its undisturbed time
    passes = []

    def time_product(product, m, n, k, dtype, backend, threads, calls=1):
        slow = (len(passes) == 0) == (backend == "own")
        return calls * (1.0 if slow else 0.1)

    monkeypatch.setattr(_calibration._choice, "time_product", time_product)
    monkeypatch.setattr(_calibration, "BLAS_SPIN_SECONDS", 0.0)
    timing = _calibration.measure(np.float32)
    first = (timing("nn", "own", 1, 10, 784, 256), timing("nn", "blas", 1, 10, 784, 256))
    passes.append(1)
    timing.retime()
    assert first == (1.0, 0.1)
    assert (timing("nn", "own", 1, 10, 784, 256), timing("nn", "blas", 1, 10, 784, 256)) == (
        0.1, 0.1)


def _choice_in_this_process(dtype):
    _calibration._applied.clear()
    return _calibration.gemm_choice(dtype)


@needs_kernels
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_a_forked_child_calibrates_after_its_parent_started_threads(fresh_cache):
    # GNU OpenMP's threads do not survive fork(): a child timing a split
    # product itself would wait for them forever.
    import multiprocessing

    gemm_choice.time_product("nn", 64, 256, 256, "float32", "own", 2)  # starts them
    with multiprocessing.get_context("fork").Pool(1) as pool:
        chosen = pool.apply_async(_choice_in_this_process, ("float64",)).get(timeout=120)
    assert set(chosen["own_max_rows"].values()) <= {0, *_calibration.ROWS}
    assert chosen["threads"] == _calibration.SPLIT_THREADS  # the split was timed
    # stored where every process of the machine finds it
    assert json.loads(fresh_cache.read_text())[_calibration._key(np.float64)] == chosen
