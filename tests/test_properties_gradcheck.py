"""check_gradients on wrong arguments: a ValueError or TypeError naming the argument,
the parameters untouched; on right ones, agreement with the backprop gradient."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_model import blobs, make_model

from fastnn.gradcheck import check_gradients

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# anything at all, for arguments that take a number or a count
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3),
    st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2), st.just(np.float64("nan")), st.just(1j),
)


@pytest.fixture(scope="module")
def problem():
    X, y = blobs(n=7)
    model = make_model("sigmoid_bce")
    model.fit(X, y, epochs=1, batch_size=4)
    return model, X, y


def outcome(call, model):
    """The result, or the error, of ``call``; the parameters must come back unchanged."""
    before = model.params_.copy()
    try:
        result = call()
    except (ValueError, TypeError) as error:
        result = error
    np.testing.assert_array_equal(model.params_, before)
    return result


@pytest.mark.parametrize("options, error, name", [
    ({"step": 0}, ValueError, "step"),
    ({"step": 0.0}, ValueError, "step"),
    ({"step": -1e-6}, ValueError, "step"),
    ({"step": float("nan")}, ValueError, "step"),
    ({"step": float("inf")}, ValueError, "step"),
    ({"step": "1e-6"}, TypeError, "step"),
    ({"step": 1e-300}, ValueError, "step.*too small"),
    ({"step": 1e300}, ValueError, "step.*too large"),
    ({"max_per_array": 0}, ValueError, "max_per_array"),
    ({"max_per_array": -3}, ValueError, "max_per_array"),
    ({"max_per_array": 2.0}, TypeError, "max_per_array"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": "x"}, TypeError, "seed"),
    ({"zero_tolerance": -1.0}, ValueError, "zero_tolerance"),
    ({"zero_tolerance": float("nan")}, ValueError, "zero_tolerance"),
])
def test_wrong_settings_name_the_argument(problem, options, error, name):
    model, X, y = problem
    result = outcome(lambda: check_gradients(model, X, y, **options), model)
    assert isinstance(result, error)
    with pytest.raises(error, match=name):
        check_gradients(model, X, y, **options)


def test_wrong_model_and_data_name_the_argument(problem):
    model, X, y = problem
    with pytest.raises(TypeError, match="model"):
        check_gradients(object(), X, y)
    with pytest.raises(TypeError, match="float64"):
        check_gradients(make_model("sigmoid_bce", dtype="float32"), X, y)
    with pytest.raises(ValueError, match="X"):
        check_gradients(model, X[:, :2], y)
    with pytest.raises(ValueError, match="y"):
        check_gradients(model, X, y[:3])


@SETTINGS
@given(step=ANYTHING, max_per_array=ANYTHING, seed=ANYTHING, zero_tolerance=ANYTHING)
def test_any_settings_give_a_named_error_or_a_result(problem, step, max_per_array, seed,
                                                     zero_tolerance):
    model, X, y = problem
    result = outcome(lambda: check_gradients(model, X, y, step=step, max_per_array=max_per_array,
                                             seed=seed, zero_tolerance=zero_tolerance), model)
    if isinstance(result, Exception):
        assert any(name in str(result) for name in
                   ("step", "max_per_array", "seed", "zero_tolerance")), result
    else:
        assert set(result) == {"0.Dense.W", "0.Dense.b", "2.Dense.W", "2.Dense.b"}


@SETTINGS
@given(step=st.floats(1e-6, 1e-4), max_per_array=st.one_of(st.none(), st.integers(1, 20)),
       seed=st.integers(0, 2**32))
def test_valid_settings_agree_with_backprop(problem, step, max_per_array, seed):
    model, X, y = problem
    report = outcome(lambda: check_gradients(model, X, y, step=step,
                                             max_per_array=max_per_array, seed=seed), model)
    # central differences err by O(h²) plus rounding O(ε/h): both far below 1e-5 here
    assert max(report.values()) < 1e-5, report


def test_checking_a_subset_picks_the_given_number_of_entries(problem):
    model, X, y = problem
    calls = []
    original = model.loss_and_gradients

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    model.loss_and_gradients = counting
    try:
        check_gradients(model, X, y, max_per_array=1)
    finally:
        del model.loss_and_gradients
    sizes = [view.size for layer in model.layers for view in layer.params.values()]
    assert len(calls) == 1 + 2 * len(sizes)  # the analytic pass, then ± per entry
    calls.clear()
    model.loss_and_gradients = counting
    try:
        check_gradients(model, X, y)
    finally:
        del model.loss_and_gradients
    assert len(calls) == 1 + 2 * sum(sizes)
