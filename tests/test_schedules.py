"""Learning-rate schedules against their formulas."""

import math

import numpy as np
import pytest

from fastnn.schedules import (Constant, ExponentialDecay, InverseTimeDecay,
                              ReduceLROnPlateau, Schedule, StepDecay, as_schedule)


def test_constant():
    s = Constant(0.3)
    np.testing.assert_array_equal(s.rates(0, 1, 4), [0.3] * 4)
    np.testing.assert_array_equal(Constant(0.3, per="step").rates(7, 100, 2), [0.3, 0.3])


def test_rates_dtype_and_shape():
    r = StepDecay(0.5, factor=0.5, every=2, per="step").rates(0, 1, 5)
    assert r.dtype == np.float64 and r.shape == (5,) and r.flags.c_contiguous
    assert ExponentialDecay(0.5, 0.1).rates(0, 1, 0).shape == (0,)


def test_step_decay_per_epoch():
    s = StepDecay(0.8, factor=0.5, every=3)
    got = [s.rates(e, 1 + 10 * e, 1)[0] for e in range(8)]
    # 0.8·0.5^⌊e/3⌋
    assert got == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2], rel=1e-15)
    # constant within an epoch
    np.testing.assert_array_equal(s.rates(4, 41, 3), [0.4, 0.4, 0.4])


def test_step_decay_per_step():
    s = StepDecay(1.0, factor=0.1, every=2, per="step")
    # steps 1..6 → s = 0..5 → 0.1^⌊s/2⌋, whatever the epoch
    assert list(s.rates(3, 1, 6)) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01], rel=1e-15)
    assert list(s.rates(0, 4, 2)) == pytest.approx([0.1, 0.01], rel=1e-15)


def test_exponential_decay():
    s = ExponentialDecay(0.2, 0.3)
    for e in range(6):
        assert s.rates(e, 1, 1)[0] == pytest.approx(0.2 * math.exp(-0.3 * e), rel=1e-15)
    per_step = ExponentialDecay(0.2, 0.3, per="step").rates(0, 5, 3)
    expected = [0.2 * math.exp(-0.3 * 4), 0.2 * math.exp(-0.3 * 5), 0.2 * math.exp(-0.3 * 6)]
    assert list(per_step) == pytest.approx(expected, rel=1e-15)


def test_inverse_time_decay():
    s = InverseTimeDecay(0.6, 0.5)
    got = [s.rates(e, 1, 1)[0] for e in range(4)]
    assert got == pytest.approx([0.6, 0.6 / 1.5, 0.6 / 2, 0.6 / 2.5], rel=1e-15)
    per_step = InverseTimeDecay(0.6, 0.5, per="step").rates(2, 3, 2)
    assert list(per_step) == pytest.approx([0.6 / 2, 0.6 / 2.5], rel=1e-15)


def test_first_update_uses_initial_rate():
    for s in (StepDecay(0.7, 0.5, 1, per="step"), ExponentialDecay(0.7, 2.0, per="step"),
              InverseTimeDecay(0.7, 2.0, per="step"), ExponentialDecay(0.7, 2.0)):
        assert s.rates(0, 1, 1)[0] == 0.7


@pytest.mark.parametrize("schedule", [
    Constant(0.3), StepDecay(0.8, 0.5, 3), StepDecay(0.8, 0.5, 3, per="step"),
    ExponentialDecay(0.2, 0.3), ExponentialDecay(0.2, 0.3, per="step"),
    InverseTimeDecay(0.6, 0.5, per="step"), ReduceLROnPlateau(0.4),
])
def test_single_rate_equals_rates(schedule):
    for epoch, step in [(0, 1), (2, 7), (5, 31)]:
        assert schedule.rate(epoch, step) == schedule.rates(epoch, step, 3)[0]
    with pytest.raises(ValueError):
        schedule.rate(0, 0)


def test_as_schedule():
    s = ExponentialDecay(0.1, 0.1)
    assert as_schedule(s) is s
    c = as_schedule(0.25)
    assert isinstance(c, Constant) and c.rates(0, 1, 1)[0] == 0.25
    assert isinstance(as_schedule(1), Constant)


def test_on_epoch_end_is_a_no_op_for_fixed_schedules():
    s = ExponentialDecay(0.1, 0.5)
    before = s.rates(2, 1, 1)
    s.on_epoch_end(2, {"val_loss": 1.0})
    np.testing.assert_array_equal(s.rates(2, 1, 1), before)


# --- ReduceLROnPlateau -----------------------------------------------------------

def feed(schedule, values, key="val_loss"):
    """Rates in force after each epoch's metric."""
    out = []
    for epoch, v in enumerate(values):
        schedule.on_epoch_end(epoch, {key: v})
        out.append(schedule.rates(epoch + 1, 1, 1)[0])
    return out


def test_plateau_min_reduces_after_patience_plus_one_bad_epochs():
    s = ReduceLROnPlateau(1.0, patience=2, factor=0.5)
    # best 1.0 at epoch 0; epochs 1, 2 are within patience; the third bad
    # epoch (3) exceeds it and halves the rate; the count then restarts.
    rates = feed(s, [1.0, 1.0, 1.2, 1.1, 1.5, 1.5, 1.5, 1.5])
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_plateau_improvement_resets_count():
    s = ReduceLROnPlateau(1.0, patience=1, factor=0.5)
    rates = feed(s, [5.0, 6.0, 4.0, 6.0, 3.0, 6.0, 6.0])
    assert rates == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    assert s.best_ == 3.0


def test_plateau_max_mode():
    s = ReduceLROnPlateau(0.1, monitor="val_accuracy", mode="max", patience=0, factor=0.1)
    rates = feed(s, [0.5, 0.6, 0.6, 0.7, 0.65], key="val_accuracy")
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001], rel=1e-12)


def test_plateau_relative_threshold():
    # rel: improvement needs a < best·(1 − 0.1)
    s = ReduceLROnPlateau(1.0, patience=0, factor=0.5, threshold=0.1)
    rates = feed(s, [10.0, 9.5, 8.9])
    assert rates == [1.0, 0.5, 0.5]  # 9.5 ≥ 9 is not an improvement; 8.9 < 9 is
    assert s.best_ == 8.9


def test_plateau_absolute_threshold():
    # abs: improvement needs a < best − 0.5
    s = ReduceLROnPlateau(1.0, patience=0, factor=0.5, threshold=0.5, threshold_mode="abs")
    rates = feed(s, [10.0, 9.6, 9.4])
    assert rates == [1.0, 0.5, 0.5]


def test_plateau_min_lr_and_cooldown():
    s = ReduceLROnPlateau(1.0, patience=0, factor=0.1, min_lr=0.005, cooldown=1)
    # epoch 1 bad → 0.1, cooldown swallows epoch 2, epoch 3 bad → 0.01,
    # epoch 4 cooldown, epoch 5 → max(0.001, 0.005) = 0.005, then stuck.
    rates = feed(s, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert rates == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01, 0.005, 0.005, 0.005],
                                  rel=1e-12)


def test_plateau_nan_counts_as_bad():
    s = ReduceLROnPlateau(1.0, patience=0, factor=0.5)
    assert feed(s, [1.0, float("nan")]) == [1.0, 0.5]


def test_plateau_rate_is_constant_within_epoch():
    s = ReduceLROnPlateau(0.3, per="step")
    np.testing.assert_array_equal(s.rates(0, 1, 3), [0.3, 0.3, 0.3])


def test_plateau_missing_metric():
    s = ReduceLROnPlateau(1.0, monitor="val_loss")
    with pytest.raises(KeyError, match="val_loss"):
        s.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(KeyError, match="val_loss"):
        s.on_epoch_end(0, None)


def test_plateau_reset():
    s = ReduceLROnPlateau(1.0, patience=0, factor=0.5)
    feed(s, [1.0, 2.0])
    assert s.current_lr == 0.5
    s.reset()
    assert s.current_lr == 1.0 and s.best_ == math.inf and s.num_bad_epochs_ == 0


# --- validation ----------------------------------------------------------------

@pytest.mark.parametrize("make, name", [
    (lambda: Constant(-0.1), "lr"),
    (lambda: Constant(float("inf")), "lr"),
    (lambda: Constant(0.1, per="batch"), "per"),
    (lambda: StepDecay(0.1, factor=0.0), "factor"),
    (lambda: StepDecay(0.1, factor=1.5), "factor"),
    (lambda: StepDecay(0.1, every=0), "every"),
    (lambda: ExponentialDecay(0.1, -0.5), "k"),
    (lambda: ExponentialDecay(0.1, 0.5, per="minibatch"), "per"),
    (lambda: InverseTimeDecay(0.1, -1.0), "k"),
    (lambda: ReduceLROnPlateau(0.1, mode="lowest"), "mode"),
    (lambda: ReduceLROnPlateau(0.1, factor=1.0), "factor"),
    (lambda: ReduceLROnPlateau(0.1, factor=0.0), "factor"),
    (lambda: ReduceLROnPlateau(0.1, patience=-1), "patience"),
    (lambda: ReduceLROnPlateau(0.1, min_lr=-1.0), "min_lr"),
    (lambda: ReduceLROnPlateau(0.1, threshold=-0.1), "threshold"),
    (lambda: ReduceLROnPlateau(0.1, threshold_mode="relative"), "threshold_mode"),
    (lambda: ReduceLROnPlateau(0.1, cooldown=-2), "cooldown"),
    (lambda: ReduceLROnPlateau(0.1, monitor=""), "monitor"),
])
def test_invalid_settings(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: Constant("0.1"), "lr"),
    (lambda: Constant(True), "lr"),
    (lambda: StepDecay(0.1, every=2.5), "every"),
    (lambda: ReduceLROnPlateau(0.1, patience=1.5), "patience"),
    (lambda: as_schedule(None), "lr"),
])
def test_wrongly_typed_settings(make, name):
    with pytest.raises(TypeError, match=name):
        make()


@pytest.mark.parametrize("args, name", [
    ((-1, 1, 1), "epoch"), ((0, 0, 1), "first_step"), ((0, 1, -1), "n_steps"),
])
def test_invalid_rates_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        ExponentialDecay(0.1, 0.1).rates(*args)


def test_base_schedule_is_abstract():
    with pytest.raises(NotImplementedError):
        Schedule(0.1).rates(0, 1, 1)


@pytest.mark.parametrize("kwargs", [
    {"mode": "min", "patience": 2, "factor": 0.5},
    {"mode": "max", "patience": 1, "factor": 0.3, "threshold": 0.05, "cooldown": 2},
    {"mode": "min", "patience": 0, "factor": 0.7, "threshold": 0.2,
     "threshold_mode": "abs", "min_lr": 0.05},
])
def test_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    metrics = np.random.default_rng(5).uniform(0, 1, 60).cumsum() * 0.05
    metrics = metrics + np.random.default_rng(6).normal(0, 0.1, 60)
    weight = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([weight], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    ours = ReduceLROnPlateau(1.0, monitor="m", **kwargs)
    for epoch, m in enumerate(metrics):
        sched.step(float(m))
        ours.on_epoch_end(epoch, {"m": float(m)})
        assert ours.rates(epoch + 1, 1, 1)[0] == pytest.approx(opt.param_groups[0]["lr"],
                                                               rel=1e-12)
    assert ours.current_lr < 1.0


# --- which way is better, and whether the metric exists -------------------------

def test_plateau_auto_mode_maximizes_accuracies():
    s = ReduceLROnPlateau(0.1, monitor="val_accuracy", patience=0, factor=0.1)
    assert s.mode == "max" and s.best_ == -math.inf
    # rising accuracy is improvement every epoch: the rate stays
    assert feed(s, [0.5, 0.6, 0.7], key="val_accuracy") == [0.1, 0.1, 0.1]
    assert ReduceLROnPlateau(0.1).mode == "min"
    assert ReduceLROnPlateau(0.1, monitor="val_accuracy", mode="min").mode == "min"


def test_check_metrics_refuses_a_metric_training_does_not_report():
    names = ("loss", "accuracy", "lr")
    with pytest.raises(ValueError, match=r"'val_loss'.*\['accuracy', 'loss', 'lr'\]"):
        ReduceLROnPlateau(0.1).check_metrics(names)
    assert ReduceLROnPlateau(0.1, monitor="loss").check_metrics(names) is None
    for schedule in (Constant(0.1), StepDecay(0.1), ExponentialDecay(0.1, 0.1)):
        assert schedule.check_metrics(names) is None  # nothing monitored
    with pytest.raises(TypeError, match="metric_names"):
        ReduceLROnPlateau(0.1).check_metrics(3)


def test_plateau_refuses_a_metric_value_that_is_not_a_number():
    with pytest.raises(TypeError, match="val_loss"):
        ReduceLROnPlateau(0.1).on_epoch_end(0, {"val_loss": "low"})
    with pytest.raises(TypeError, match="logs"):
        ReduceLROnPlateau(0.1).on_epoch_end(0, [("val_loss", 1.0)])


@pytest.mark.parametrize("first_step", [2**53, 10**20, 10**30])
def test_rates_far_into_training_have_one_entry_per_step(first_step):
    s = ExponentialDecay(1.0, 1e-30, per="step")
    rates = s.rates(0, first_step, 4)
    t = (first_step - 1) + np.arange(4, dtype=np.float64)
    np.testing.assert_array_equal(rates, np.exp(-1e-30 * t))


@pytest.mark.parametrize("args, error, name", [
    (("0", 1), TypeError, "epoch"), ((0, 1.5), TypeError, "step"),
    ((-1, 1), ValueError, "epoch"), ((0, 0), ValueError, "step"),
    ((float("nan"), 1), TypeError, "epoch"),
])
def test_invalid_rate_arguments(args, error, name):
    with pytest.raises(error, match=name):
        ExponentialDecay(0.1, 0.1).rate(*args)
