"""The compiled inference plan (fastnn.inference, fastnn_ext.infer).

References: NumPy's matrix product on integer-valued operands (exact in
either summation order, so the plan's products must match it to the bit);
the layer-by-layer Python path, which runs the same element-wise, softmax
and batch-norm kernels on BLAS products; the rows of one batch against the
same rows predicted alone; each body of the products (AVX-512, AVX2+FMA, the
portable loop) against the others, bit for bit, and with operands that end
right before an unmapped page.
"""

import gc
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from fastnn import inference
from fastnn import layers as L
from fastnn.model import Sequential
from fastnn_ext import infer as _infer

from conftest import in_parent_and_forked_child

CHUNK = _infer.CHUNK_ROWS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def layer_path(model, X, layers=None):
    """The network's outputs through the layers' Python forward (BLAS products)."""
    X = np.ascontiguousarray(X, dtype=model.dtype)
    return model._forward(X, model.layers if layers is None else layers, False)


def integer_weights(model, rng):
    """Small integers in every dense layer: products are exact in any summation order."""
    for layer in model.layers:
        if isinstance(layer, L.Dense):
            layer.set_weights({"W": rng.integers(-3, 4, layer.params["W"].shape),
                               "b": rng.integers(-3, 4, layer.params["b"].shape)})


def integer_data(rng, n, width, dtype):
    return rng.integers(-4, 5, (n, width)).astype(dtype)


# -- the product kernel --------------------------------------------------------------

@pytest.mark.parametrize("n_in", [37, 600])
@pytest.mark.parametrize("n_out", [1, 3, 7, 8, 9, 16, 17, 33, 64, 65, 130])
@pytest.mark.parametrize("rows", [*range(1, 14), 25, 97])
def test_dense_outputs_equal_an_exact_product(n_in, n_out, rows, dtype):
    # Integers: every partial sum is exact, so any correct product gives
    # these bits; the shapes cover every tile (1–12 rows with AVX-512, 1–6
    # with AVX2; 1–8 vectors), the masked last vector of both precisions and
    # sums of several steps of 256 terms (600 = 256 + 256 + 88).
    rng = np.random.default_rng(n_out * 100 + rows)
    model = Sequential([L.Dense(n_in, n_out)], loss="mse", dtype=dtype)
    integer_weights(model, rng)
    X = integer_data(rng, rows, n_in, dtype)
    expected = (X.astype(np.float64) @ model.layers[0].params["W"].astype(np.float64)
                + model.layers[0].params["b"])
    np.testing.assert_array_equal(model.predict_proba(X), expected.astype(dtype))


def test_dense_outputs_are_within_the_error_bound_of_a_sum_of_k_terms(dtype):
    # A chain of k fused multiply-adds and one bias addition: each rounds
    # once, so |ŷ − y| ≤ γ_{k+1}·(Σ|x·w| + |b|), γ_j = j·u/(1 − j·u).
    rng = np.random.default_rng(3)
    n_in, n_out = 784, 70
    model = Sequential([L.Dense(n_in, n_out)], loss="mse", dtype=dtype, seed=1)
    X = rng.standard_normal((20, n_in)).astype(dtype)
    W = model.layers[0].params["W"].astype(np.longdouble)
    b = model.layers[0].params["b"].astype(np.longdouble)
    exact = X.astype(np.longdouble) @ W + b
    magnitude = np.abs(X.astype(np.longdouble)) @ np.abs(W) + np.abs(b)
    u = np.finfo(dtype).eps / 2
    gamma = (n_in + 1) * u / (1 - (n_in + 1) * u)
    error = np.abs(model.predict_proba(X).astype(np.longdouble) - exact)
    assert (error <= gamma * magnitude).all()
    # and the bound is not vacuous: a wrong product would exceed it
    assert (gamma * magnitude < 0.01 * np.abs(exact).max()).all()


#: each body of the products (row_gemm_kernels.h): the environment that leaves
#: it, the vector width it reports and the CPU flags it needs
BODIES = {"avx512": ({}, 512, {"avx512f", "avx512vl", "avx512bw", "avx512dq"}),
          "avx2": ({"FASTNN_NO_ROW_GEMM_AVX512": "1"}, 256, {"avx2", "fma"}),
          "portable": ({"FASTNN_NO_ROW_GEMM_AVX2": "1"}, 0, set())}


def cpu_flags():
    """The CPU's flags as Linux names them, or None where /proc/cpuinfo does not say."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def run_with_body(body, script, path, *args):
    """The arrays that script (argv: path, *args) saves to path, run where the
    products run `body`; skips a body the CPU lacks."""
    extra, bits, needs = BODIES[body]
    flags = cpu_flags()
    if flags is not None and not needs <= flags:
        pytest.skip(f"this CPU has no {body} body")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("FASTNN_NO_ROW_GEMM_")}
    env.update(extra, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", script, str(path), *args], env=env, check=True)
    results = np.load(path)
    if flags is None and int(results["bits"]) != bits:
        pytest.skip(f"this CPU has no {body} body")
    assert int(results["bits"]) == bits
    return results


BODY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from threadpoolctl import threadpool_limits
    from fastnn import inference
    from fastnn import layers as L
    from fastnn.model import Sequential
    from fastnn_ext import infer

    def outputs(model, X):
        # one thread, and two sharing the columns (one chunk) or the chunks:
        # the same bits
        plan = inference.plan_of(model, model.layers)
        one, two = (np.full((X.shape[0], plan.n_outputs), np.nan, X.dtype) for _ in "12")
        assert plan.run(X, one, 1) and plan.run(X, two, 2)
        np.testing.assert_array_equal(two, one)
        return one

    out = {"bits": np.array(infer.vector_bits())}
    with threadpool_limits(limits=2, user_api="openmp"):
        for dtype in ("float32", "float64"):
            model = Sequential([L.Dense(300, 37), L.SiLU(), L.Dense(37, 5), L.Softmax()],
                               dtype=dtype, seed=4)
            X = np.random.default_rng(9).standard_normal((23, 300)).astype(dtype)
            out[f"{dtype} network"] = outputs(model, X)
            for k in (1, 37, 600):
                for n in (1, 7, 9, 15, 16, 17, 33, 100, 129, 257, 400):
                    model = Sequential([L.Dense(k, n)], loss="mse", dtype=dtype, seed=k + n)
                    X = np.random.default_rng(k * n).standard_normal((97, k)).astype(dtype)
                    for m in [*range(1, 14), 24, 25, 97]:
                        out[f"{dtype} {k}x{n}, {m} rows"] = outputs(model, X[:m])
    np.savez(sys.argv[1], **out)
""")


@pytest.fixture(scope="module")
def portable_outputs(tmp_path_factory):
    return run_with_body("portable", BODY_SCRIPT, tmp_path_factory.mktemp("portable") / "out.npz")


@pytest.mark.parametrize("body", ["avx512", "avx2"])
def test_the_portable_loop_gives_the_bits_of_each_vector_body(body, portable_outputs, tmp_path):
    # fma() rounds once, as the instruction does: the same chains, the same
    # bits, whatever the vector width, the tile and the thread that computes
    # a column.  The shapes: every tile (1–12 rows with AVX-512, 1–6 with
    # AVX2, and more rows than one tile or one chunk), masked last vectors of
    # either width (n not a multiple of 16 or 8), more columns than a panel
    # or the widest tile (400 = 256 + 128 + 16), sums of several steps (600
    # terms), column ranges that end inside a row.
    outputs = run_with_body(body, BODY_SCRIPT, tmp_path / "out.npz")
    assert sorted(outputs.files) == sorted(portable_outputs.files)
    for key in portable_outputs.files:
        if key != "bits":
            np.testing.assert_array_equal(outputs[key], portable_outputs[key], err_msg=key)


GUARD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from conftest import GuardedArrays
    from fastnn import layers as L
    from fastnn.model import Sequential
    from fastnn.plan import PlanBuilder
    from fastnn_ext import infer

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(5)
    x_end, w_end, out_end = (GuardedArrays(pages=160) for _ in range(3))
    threadpool_limits(limits=2, user_api="openmp")
    for dtype in ("float32", "float64"):
        for k, n in [(1, 1), (5, 3), (37, 15), (19, 17), (300, 9), (600, 33), (260, 130),
                     (40, 400)]:
            model = Sequential([L.Dense(k, n)], loss="mse", dtype=dtype)
            records, kernels, activations = PlanBuilder(model, 1).records(model.layers)
            records = records.copy()
            records["bias"], records["weight"] = 0, n   # [b, W]: W ends the parameters
            W, b = rng.integers(-3, 4, (k, n)), rng.integers(-3, 4, n)
            params = w_end.ending_at_guard(np.concatenate([b, W.ravel()]).astype(dtype))
            plan = infer.InferencePlan(records, kernels, activations, params, model.buffers_)
            for m in (1, 2, 3, 5, 7, 12, 13, 25):
                X = rng.integers(-4, 5, (m, k))
                for threads in (1, 2):  # two: each shares the columns of the product
                    out = out_end.ending_at_guard(np.full((m, n), np.nan, dtype))
                    assert plan.run(x_end.ending_at_guard(X.astype(dtype)), out, threads)
                    np.testing.assert_array_equal(out, (X @ W + b).astype(dtype))
    np.savez(sys.argv[1], bits=infer.vector_bits())
""")


@pytest.mark.parametrize("body", sorted(BODIES))
def test_no_product_reads_or_writes_past_its_operands(body, tmp_path):
    # x, W and the output each end right before an inaccessible page: a lane
    # of a masked last vector that touched it would kill the child.  Integer
    # operands: the exact product is the only right answer.
    run_with_body(body, GUARD_SCRIPT, tmp_path / "out.npz", os.path.join(ROOT, "tests"))


# -- every layer kind against the layer path -------------------------------------------

KINDS = {
    "identity": lambda: L.Identity(), "sigmoid": lambda: L.Sigmoid(),
    "tanh": lambda: L.Tanh(), "relu": lambda: L.ReLU(),
    "leaky_relu": lambda: L.LeakyReLU(0.1), "silu": lambda: L.SiLU(),
    "prelu": lambda: L.PReLU(0.3), "dropout": lambda: L.Dropout(0.4),
    "batchnorm": lambda: L.BatchNorm(),
}
OUTPUTS = {"softmax": ("softmax_cross_entropy", L.Softmax),
           "sigmoid": ("sigmoid_cross_entropy", L.Sigmoid), "mse": ("mse", None)}


def network(kind, output, dtype, seed=0):
    loss, output_layer = OUTPUTS[output]
    layers = [L.Dense(6, 8), L.ReLU(), L.Dropout(0.3), L.Dense(8, 5), KINDS[kind]()]
    if output_layer is not None:
        layers.append(output_layer())
    return Sequential(layers, loss=loss, dtype=dtype, seed=seed)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("rows", [1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_the_plan_equals_the_layer_path_to_the_bit(kind, output, rows, dtype):
    # Integer weights and data make both paths' products exact; everything
    # after them runs the same kernels, so the outputs agree bit for bit
    # (the dense layer fuses its activation, dropout is skipped, batch norm
    # uses its running statistics).
    rng = np.random.default_rng(7)
    model = network(kind, output, dtype)
    if kind == "batchnorm":
        X_fit = rng.standard_normal((64, 6))
        y_fit = (rng.integers(0, 5, 64) if output == "softmax"
                 else rng.integers(0, 2, (64, 5)).astype(float))
        model.fit(X_fit, y_fit, epochs=2, batch_size=16)
        bn = model.layers[4]
        assert not np.allclose(bn.buffers["running_var"], 1.0)  # trained statistics
    if kind == "prelu":
        model.layers[4].set_weights({"slope": rng.uniform(-0.5, 0.5, 5)})
    integer_weights(model, rng)
    X = integer_data(rng, rows, 6, dtype)
    np.testing.assert_array_equal(model.predict_proba(X), layer_path(model, X))


@pytest.mark.parametrize("kind", ["batchnorm", "silu", "prelu", "tanh"])
def test_trained_networks_agree_with_the_layer_path_to_rounding(kind, dtype):
    # Real-valued weights: the products sum in another order than BLAS's, so
    # the outputs differ by rounding only — products of 8 and 6 terms, each
    # within γ_9·Σ|x·w| of exact; 64 units of roundoff on probabilities ≤ 1
    # bounds both layers and what follows them.
    rng = np.random.default_rng(11)
    model = network(kind, "softmax", dtype, seed=3)
    X = rng.standard_normal((300, 6))
    model.fit(X, rng.integers(0, 5, 300), epochs=2, batch_size=32)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(model.predict_proba(X), layer_path(model, X), rtol=0,
                               atol=64 * eps)


def test_a_network_without_a_compiled_form_predicts_layer_by_layer():
    class Doubling(L.Layer):
        def forward(self, x, training=False):
            return 2 * x

    model = Sequential([L.Dense(4, 3), Doubling()], loss="mse", dtype="float64", seed=0)
    assert inference.plan_of(model, model.layers) is None
    X = np.random.default_rng(0).standard_normal((5, 4))
    W, b = model.layers[0].params["W"], model.layers[0].params["b"]
    np.testing.assert_allclose(model.predict_proba(X), 2 * (X @ W + b), rtol=1e-12)


# -- rows do not depend on their batch --------------------------------------------------

@pytest.mark.parametrize("kind", ["relu", "silu", "batchnorm", "prelu"])
def test_a_row_predicted_alone_equals_it_in_any_batch(kind, dtype):
    rng = np.random.default_rng(5)
    model = Sequential([L.Dense(50, 70), KINDS[kind](), L.Dense(70, 9), L.Softmax()],
                       dtype=dtype, seed=2)
    X = rng.standard_normal((3 * CHUNK + 7, 50)).astype(dtype)
    model.fit(X, rng.integers(0, 9, X.shape[0]), epochs=1, batch_size=32)
    together = model.predict_proba(X)
    for i in (0, 1, 5, 6, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, X.shape[0] - 1):
        np.testing.assert_array_equal(model.predict_proba(X[i]), together[i])
        np.testing.assert_array_equal(model.predict_proba(X[i:i + 7]), together[i:i + 7])
    np.testing.assert_array_equal(model.predict_proba(X[3:3 + CHUNK + 2]),
                                  together[3:3 + CHUNK + 2])


def test_the_thread_count_changes_no_bit(dtype):
    rng = np.random.default_rng(2)
    model = Sequential([L.Dense(30, 40), L.Tanh(), L.Dense(40, 4), L.Softmax()],
                       dtype=dtype, seed=0)
    plan = inference.plan_of(model, model.layers)
    X = rng.standard_normal((10 * CHUNK + 3, 30)).astype(dtype)
    one, two = np.empty((X.shape[0], 4), dtype), np.empty((X.shape[0], 4), dtype)
    assert plan.run(X, one, 1) and plan.run(X, two, 2)
    np.testing.assert_array_equal(one, two)


# -- one chunk shared by the columns of its products ----------------------------------------

def shared_network(dtype):
    """Products several grains wide at every row count, a SiLU whose
    vectorized exp runs over whole rows, and an output layer too narrow to
    share."""
    return Sequential([L.Dense(200, 300), L.SiLU(), L.Dense(300, 130), L.ReLU(),
                       L.Dense(130, 7), L.Softmax()], dtype=dtype, seed=1)


def test_sharing_a_chunk_by_columns_changes_no_bit(dtype):
    model = shared_network(dtype)
    plan = inference.plan_of(model, model.layers)
    X = np.random.default_rng(3).standard_normal((CHUNK, 200)).astype(dtype)
    with threadpool_limits(limits=2, user_api="openmp"):
        for m in [*range(1, 14), 31, 64, CHUNK]:
            one, shared = (np.full((m, 7), np.nan, dtype) for _ in range(2))
            assert plan.run(X[:m], one, 1) and plan.run(X[:m], shared, 2)
            np.testing.assert_array_equal(shared, one, err_msg=f"{m} rows")


def test_each_row_class_times_both_ways_then_keeps_one():
    model = shared_network("float32")
    plan = inference.plan_of(model, model.layers)
    X = np.random.default_rng(4).standard_normal((5, 200)).astype(np.float32)
    trials = _infer.TRIAL_CALLS_EACH_WAY
    with threadpool_limits(limits=1, user_api="openmp"):
        model.predict_proba(X[0])
    assert plan.shares_chunk(1) is None  # one thread allowed: nothing to compare
    with threadpool_limits(limits=2, user_api="openmp"):
        first = model.predict_proba(X[0])
        for _ in range(2 * trials - 2):
            np.testing.assert_array_equal(model.predict_proba(X[0]), first)
        assert plan.shares_chunk(1) is None
        np.testing.assert_array_equal(model.predict_proba(X[0]), first)
        choice = plan.shares_chunk(1)
        assert choice in (True, False)
        for _ in range(3):
            np.testing.assert_array_equal(model.predict_proba(X[0]), first)
        assert plan.shares_chunk(1) is choice
        # 4 and 5 rows are another class, still to time
        assert plan.shares_chunk(4) is None and plan.shares_chunk(5) is None
        np.testing.assert_array_equal(model.predict_proba(X)[0], first)
        # the class times both ways again later, keeping a choice meanwhile
        for _ in range(_infer.CALLS_BETWEEN_TRIALS + trials):
            assert (model.predict_proba(X[0]) == first).all()
        assert plan.shares_chunk(1) in (True, False)
    with pytest.raises(ValueError, match="n_rows"):
        plan.shares_chunk(CHUNK + 1)
    with pytest.raises(TypeError, match="n_rows"):
        plan.shares_chunk(1.0)


def test_predict_takes_only_arrays_in_the_plans_own_form():
    # None sends the caller to check_features, which converts or raises
    model = small_model()
    plan = inference.plan_of(model, model.layers)
    X = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    expected = layer_path(model, X)
    np.testing.assert_allclose(plan.predict(X), expected, rtol=1e-6)
    np.testing.assert_allclose(plan.predict(X[1]), expected[1], rtol=1e-6)
    assert plan.predict(X[1]).shape == (3,)
    swapped = X.astype(X.dtype.newbyteorder())
    for other in (X.astype(np.float64), np.asfortranarray(X), X[:, :4], X[None], X[:0],
                  X.tolist(), np.where(X > 1, np.inf, X), swapped, X[::2]):
        assert plan.predict(other, 2) is None
    with pytest.raises(TypeError, match="n_threads"):
        plan.predict(X, 1.5)


def test_the_plans_leave_with_their_model():
    model = small_model()
    model.predict_proba(np.ones(5, np.float32))
    key = id(model)
    assert key in inference._PLANS
    del model
    gc.collect()
    assert key not in inference._PLANS


def _threaded_prediction(seed):
    model = Sequential([L.Dense(30, 40), L.Tanh(), L.Dense(40, 4), L.Softmax()],
                       dtype="float32", seed=seed)
    X = np.random.default_rng(seed).standard_normal((10 * CHUNK + 3, 30)).astype(np.float32)
    # one row: timed on one thread, then shared by columns (where threads may run)
    rows = [model.predict_proba(X[0]) for _ in range(2 * _infer.TRIAL_CALLS_EACH_WAY + 1)]
    return np.vstack([model.predict_proba(X), *rows])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_predicts_after_threaded_prediction():
    # many rows, and one row's products, are shared among OpenMP's threads:
    # a forked child uses one
    in_parent, in_child = in_parent_and_forked_child(_threaded_prediction, 0)
    np.testing.assert_array_equal(in_parent, in_child)


# -- input forms and errors ------------------------------------------------------------------

def small_model(dtype="float32"):
    return Sequential([L.Dense(5, 4), L.ReLU(), L.Dense(4, 3), L.Softmax()], dtype=dtype,
                      seed=0)


def test_one_sample_gives_one_row():
    model = small_model()
    X = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    proba = model.predict_proba(X[1])
    assert proba.shape == (3,)
    np.testing.assert_array_equal(proba, layer_path(model, X)[1])


@pytest.mark.parametrize("convert", [
    lambda X: X.astype(np.float64), lambda X: X.tolist(),
    lambda X: np.asfortranarray(X), lambda X: np.repeat(X, 2, axis=1)[:, ::2],
])
def test_other_array_forms_give_the_same_outputs(convert):
    model = small_model()
    X = np.random.default_rng(1).standard_normal((CHUNK + 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_proba(convert(X)), model.predict_proba(X))


@pytest.mark.parametrize("row", [0, CHUNK + 3, 2 * CHUNK + 9])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_with_the_message_of_check_features(bad, row, dtype):
    model = small_model(dtype)
    X = np.ones((3 * CHUNK, 5), dtype=dtype)
    X[row, 2] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        model.predict_proba(X)
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        model.predict_proba(X[row])
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        model.evaluate(X, np.zeros(X.shape[0], dtype=np.int64))


@pytest.mark.parametrize("X, error, message", [
    (np.ones((2, 4), np.float32), ValueError, "X has 4 features, the network expects 5"),
    (np.ones(4, np.float32), ValueError, "X has 4 features, the network expects 5"),
    (np.ones((0, 5), np.float32), ValueError, "X is empty"),
    (np.ones((2, 5, 1), np.float32), ValueError, "X must be 2-dimensional"),
    (np.array([["a"] * 5]), TypeError, "X must hold real numbers"),
    (np.full((1, 5), 1e300), ValueError, "beyond float32's range"),
])
def test_bad_input_raises_the_errors_of_check_features(X, error, message):
    with pytest.raises(error, match=message):
        small_model().predict_proba(X)


# -- the plan's life --------------------------------------------------------------------------

def test_the_plan_reads_the_current_weights_and_survives_a_new_optimizer():
    from fastnn.optimizers import Adam

    model = small_model("float64")
    X = np.random.default_rng(4).standard_normal((7, 5))
    before = model.predict_proba(X)
    plan = inference.plan_of(model, model.layers)
    model.optimizer = Adam()
    model.fit(X, np.arange(7) % 3, epochs=3, batch_size=4)
    after = model.predict_proba(X)
    assert inference.plan_of(model, model.layers) is plan
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, layer_path(model, X), rtol=0, atol=1e-14)


def test_an_estimator_that_predicted_still_pickles():
    # The plans are kept beside the model (weakly), not in it.
    pytest.importorskip("sklearn")
    from fastnn.sklearn import FastNNClassifier

    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    clf = FastNNClassifier(hidden_layer_sizes=(7,), max_iter=2, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    other = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(other.predict_proba(X), expected)
    assert inference.plan_of(other.model_, other.model_.layers).params_array \
        is other.model_.params_


@pytest.mark.parametrize("output", ["softmax", "mse"])
def test_evaluate_runs_the_plan_without_the_output_layer(output):
    rng = np.random.default_rng(8)
    model = network("relu", output, "float64")
    integer_weights(model, rng)
    X = integer_data(rng, 2 * CHUNK + 1, 6, np.float64)
    if output == "softmax":
        y = rng.integers(0, 5, X.shape[0])
        logits = layer_path(model, X, model._loss_layers)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        expected = {"loss": -log_p[np.arange(len(y)), y].mean(),
                    "accuracy": (logits.argmax(axis=1) == y).mean()}
    else:
        y = rng.standard_normal((X.shape[0], 5))
        outputs = layer_path(model, X)
        expected = {"loss": ((outputs - y) ** 2).mean(), "mae": np.abs(outputs - y).mean()}
    scores = model.evaluate(X, y)
    for name, value in expected.items():
        np.testing.assert_allclose(scores[name], value, rtol=1e-12)


def test_run_refuses_arrays_it_cannot_take():
    model = small_model()
    plan = inference.plan_of(model, model.layers)
    X = np.ones((3, 5), np.float32)
    for bad_x in (X.astype(np.float64), np.asfortranarray(np.ones((3, 6), np.float32))[:, :5],
                  np.ones((3, 4), np.float32), np.ones(5, np.float32)):
        with pytest.raises(ValueError, match="X must be"):
            plan.run(bad_x, np.empty((bad_x.shape[0], 3), np.float32))
    for bad_out in (np.empty((3, 4), np.float32), np.empty((2, 3), np.float32),
                    np.empty((3, 3), np.float64), np.empty((3, 6), np.float32)[:, ::2]):
        with pytest.raises(ValueError, match="out must be"):
            plan.run(X, bad_out)
    shared = np.ones((3, 5), np.float32)
    with pytest.raises(ValueError, match="out must not overlap X"):
        plan.run(shared, shared.reshape(-1)[:9].reshape(3, 3))
    with pytest.raises(TypeError, match="n_threads"):
        plan.run(X, np.empty((3, 3), np.float32), 1.5)


# -- the compiled entry point: every argument fault refused, nothing crashes -----------------

@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["X", "out", "n_threads"]),
       st.sampled_from(["float64", "int32", "1-D", "3-D", "short", "wide", "strided",
                        "read-only", "none", "list", "nan", "huge", "zero", "negative",
                        "bool", "string"]))
def test_run_refuses_every_fault_or_gives_the_layer_path(name, fault):
    model = small_model()
    plan = inference.plan_of(model, model.layers)
    X = np.random.default_rng(0).standard_normal((2 * CHUNK + 3, 5)).astype(np.float32)
    args = {"X": X, "out": np.empty((X.shape[0], 3), np.float32), "n_threads": 2}
    a = args[name]
    array = a if isinstance(a, np.ndarray) else np.full(3, a)
    changed = {
        "float64": lambda: array.astype(np.float64), "int32": lambda: array.astype(np.int32),
        "1-D": lambda: array.ravel(), "3-D": lambda: array[None],
        "short": lambda: array[:1], "wide": lambda: np.repeat(array, 2, axis=-1),
        "strided": lambda: np.repeat(array, 2, axis=0)[::2],
        "read-only": lambda: np.frombuffer(array.tobytes(), array.dtype).reshape(array.shape),
        "none": lambda: None, "list": lambda: array.tolist(),
        "nan": lambda: np.where(array == array.flat[-1], np.nan, array),
        "huge": lambda: 10**400, "zero": lambda: 0, "negative": lambda: -3,
        "bool": lambda: True, "string": lambda: "2",
    }[fault]()
    args[name] = changed
    try:
        finite = plan.run(args["X"], args["out"], args["n_threads"])
    except (TypeError, ValueError) as error:
        # X of fewer rows than out: out's shape is the one refused
        assert name in str(error) or (fault == "short" and "out" in str(error)), str(error)
        return
    if name == "X" and fault == "nan":
        assert finite is False
        return
    assert finite is True
    np.testing.assert_allclose(args["out"], layer_path(model, args["X"]), rtol=1e-5,
                               atol=1e-6)


def fresh_interpreter(code):
    """Exit status of code run in a new interpreter from the project root."""
    prelude = textwrap.dedent("""
        import numpy as np
        from fastnn import layers as L
        from fastnn.model import Sequential
        from fastnn.plan import PlanBuilder
        from fastnn_ext import infer, layer_ops
        model = Sequential([L.Dense(5, 4), L.Dropout(0.5), L.Dense(4, 3), L.Softmax()],
                           seed=0)
        records, kernels, activations = PlanBuilder(model, 1).records(model.layers)
        X = np.ones((3, 5), np.float32)
        def refused(call):
            try:
                call()
            except (TypeError, ValueError):
                return
            raise SystemExit(3)
    """)
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT,
                          timeout=120, capture_output=True, text=True)
    return done.returncode, done.stderr


CRASHES = {
    "run without __init__": """
        refused(lambda: infer.InferencePlan.__new__(infer.InferencePlan).run(
            X, np.empty((3, 3), np.float32)))
    """,
    "__init__ twice": """
        plan = infer.InferencePlan(records, kernels, activations, model.params_,
                                   model.buffers_)
        refused(lambda: plan.__init__(records, kernels, activations, model.params_,
                                      model.buffers_))
        assert plan.run(X, np.empty((3, 3), np.float32))
    """,
    "a weight slice past the parameters": """
        r = records.copy(); r[0]["weight"] = model.params_.size - 3
        refused(lambda: infer.InferencePlan(r, kernels, activations, model.params_,
                                            model.buffers_))
    """,
    "a dense op with too few weights": """
        r = records.copy(); r[0]["weight_size"] = 4
        refused(lambda: infer.InferencePlan(r, kernels, activations, model.params_,
                                            model.buffers_))
    """,
    "a skipped op that changes the width": """
        r = records.copy(); r[1]["out_size"] = 2; r[2]["in_size"] = 2
        refused(lambda: infer.InferencePlan(r, kernels, activations, model.params_,
                                            model.buffers_))
    """,
    "only a skipped op": """
        refused(lambda: infer.InferencePlan(records[1:2], kernels[1:2], activations[1:2],
                                            model.params_, model.buffers_))
    """,
    "parameters of the other dtype": """
        refused(lambda: infer.InferencePlan(records, kernels, activations,
                                            model.params_.astype(np.float64),
                                            model.buffers_))
    """,
    "something else than op kernels": """
        refused(lambda: infer.InferencePlan(records, [layer_ops.DENSE, 7, None, "x"],
                                            activations, model.params_, model.buffers_))
    """,
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_the_inference_plan_refuses_what_would_crash(case):
    status, stderr = fresh_interpreter(CRASHES[case])
    assert status == 0, stderr


def test_vectorized_says_which_body_runs():
    assert _infer.vector_bits() in (0, 256, 512)
    assert _infer.vectorized() is (_infer.vector_bits() != 0)
    for function in (_infer.vectorized, _infer.vector_bits):
        with pytest.raises(TypeError):
            function(1)
