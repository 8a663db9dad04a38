"""Schedules on any input: a TypeError or ValueError naming the argument, or the
rates of the schedule's formula computed here in NumPy."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties_strategies import ANYTHING, is_count, is_real

from fastnn.schedules import (Constant, ExponentialDecay, InverseTimeDecay, ReduceLROnPlateau,
                              StepDecay)

SETTINGS = settings(max_examples=200, deadline=None)
RATE = st.one_of(ANYTHING, st.floats(0, 10))
PER = st.one_of(ANYTHING, st.sampled_from(["epoch", "step"]))


def named_error(call, *names):
    try:
        return call()
    except (TypeError, ValueError) as error:
        assert any(name in str(error) for name in names), error
        return error


@SETTINGS
@given(lr=RATE, factor=st.one_of(ANYTHING, st.floats(0, 1)),
       every=st.one_of(ANYTHING, st.integers(1, 5)), k=st.one_of(ANYTHING, st.floats(0, 2)),
       per=PER)
def test_fixed_schedule_construction(lr, factor, every, k, per):
    ok = is_real(lr, 0.0) and isinstance(per, str) and per in ("epoch", "step")
    for make, valid in [
        (lambda: Constant(lr, per=per), ok),
        (lambda: StepDecay(lr, factor, every, per=per),
         ok and is_real(factor) and 0 < factor <= 1 and is_count(every, 1)),
        (lambda: ExponentialDecay(lr, k, per=per), ok and is_real(k, 0.0)),
        (lambda: InverseTimeDecay(lr, k, per=per), ok and is_real(k, 0.0)),
    ]:
        result = named_error(make, "lr", "per", "factor", "every", "k")
        assert isinstance(result, Exception) != valid, (result, valid)


@SETTINGS
@given(lr=RATE, monitor=st.one_of(ANYTHING, st.sampled_from(["val_loss", "val_accuracy"])),
       mode=st.one_of(ANYTHING, st.sampled_from(["auto", "min", "max"])),
       factor=st.one_of(ANYTHING, st.floats(0, 1)), patience=st.one_of(ANYTHING, st.integers(0, 3)),
       threshold=st.one_of(ANYTHING, st.floats(0, 1)),
       threshold_mode=st.one_of(ANYTHING, st.sampled_from(["rel", "abs"])),
       cooldown=st.one_of(ANYTHING, st.integers(0, 3)), min_lr=st.one_of(ANYTHING, st.floats(0, 1)))
def test_plateau_construction(lr, monitor, mode, factor, patience, threshold, threshold_mode,
                              cooldown, min_lr):
    result = named_error(
        lambda: ReduceLROnPlateau(lr, monitor, mode, factor, patience, threshold,
                                  threshold_mode, cooldown, min_lr),
        "lr", "monitor", "mode", "factor", "patience", "threshold", "cooldown", "min_lr")
    valid = (is_real(lr, 0.0) and isinstance(monitor, str) and monitor != ""
             and isinstance(mode, str) and mode in ("auto", "min", "max")
             and is_real(factor) and 0 < factor < 1 and is_count(patience)
             and is_real(threshold, 0.0) and isinstance(threshold_mode, str)
             and threshold_mode in ("rel", "abs") and is_count(cooldown) and is_real(min_lr, 0.0))
    assert isinstance(result, ReduceLROnPlateau) == valid


SCHEDULES = [Constant(0.3), StepDecay(0.8, 0.5, 3), StepDecay(0.8, 0.5, 3, per="step"),
             ExponentialDecay(0.2, 0.3), ExponentialDecay(0.2, 1e-3, per="step"),
             InverseTimeDecay(0.6, 0.5, per="step"), ReduceLROnPlateau(0.4)]


def formula(schedule, t):
    """The documented rate α_t, in NumPy, for 0-based indices t."""
    if isinstance(schedule, StepDecay):
        return schedule.lr * schedule.factor ** np.floor(t / schedule.every)
    if isinstance(schedule, ExponentialDecay):
        return schedule.lr * np.exp(-schedule.k * t)
    if isinstance(schedule, InverseTimeDecay):
        return schedule.lr / (1 + schedule.k * t)
    return np.full(t.shape, schedule.lr)


@SETTINGS
@given(schedule=st.sampled_from(SCHEDULES),
       epoch=st.one_of(ANYTHING, st.integers(0, 10**6)),
       first_step=st.one_of(ANYTHING, st.integers(1, 10**12)),
       n_steps=st.one_of(ANYTHING, st.integers(0, 50)))
def test_rates_on_any_position(schedule, epoch, first_step, n_steps):
    if is_count(n_steps) and n_steps > 10**4:
        n_steps = 10**4  # a huge epoch is a huge array: not this test's subject
    result = named_error(lambda: schedule.rates(epoch, first_step, n_steps),
                         "epoch", "first_step", "n_steps")
    valid = is_count(epoch) and is_count(first_step, 1) and is_count(n_steps)
    assert isinstance(result, np.ndarray) == valid
    if valid:
        t = (np.full(n_steps, float(epoch)) if schedule.per == "epoch"
             else float(first_step - 1) + np.arange(n_steps))
        np.testing.assert_allclose(result, formula(schedule, t), rtol=1e-14, atol=0)
        single = named_error(lambda: schedule.rate(epoch, first_step), "epoch", "step")
        if n_steps:
            assert single == result[0]


@SETTINGS
@given(logs=st.one_of(ANYTHING, st.dictionaries(st.sampled_from(["val_loss", "loss"]), ANYTHING)))
def test_plateau_on_any_logs(logs):
    schedule = ReduceLROnPlateau(1.0, patience=0)
    try:
        schedule.on_epoch_end(0, logs)
    except KeyError as error:  # no val_loss entry
        assert "val_loss" in str(error)
        assert logs is None or (isinstance(logs, dict) and "val_loss" not in logs)
    except TypeError as error:
        assert "logs" in str(error) or "val_loss" in str(error)
    else:
        value = logs["val_loss"]  # any real number, NaN and ±inf included, is a metric
        assert isinstance(value, (int, float, np.integer, np.floating))
        assert not isinstance(value, (bool, np.bool_))
        # best starts at +inf: a first value improves on it unless it is NaN or +inf,
        # which with patience 0 cuts the rate by the factor 0.1 at once
        assert schedule.current_lr == (1.0 if float(value) < float("inf") else 0.1)


@SETTINGS
@given(names=st.one_of(ANYTHING, st.lists(st.sampled_from(["loss", "val_loss", "mae"]))))
def test_check_metrics_on_anything(names):
    schedule = ReduceLROnPlateau(1.0)
    result = named_error(lambda: schedule.check_metrics(names), "metric_names", "val_loss")
    if isinstance(names, list):
        assert (result is None) == ("val_loss" in names)


def test_step_indices_beyond_two_to_the_53_keep_counting():
    # The failing case hypothesis found: t froze at 2^53 for every step.
    from fastnn.schedules import InverseTimeDecay

    schedule = InverseTimeDecay(lr=0.6, k=0.5, per="step")
    first = 2 ** 53 + 1
    rates = schedule.rates(0, first, 92)
    t = float(first - 1) + np.arange(92)
    np.testing.assert_allclose(rates, 0.6 / (1 + 0.5 * t), rtol=1e-14, atol=0)
    assert rates[-1] < rates[0]
