"""Callbacks on any input: a TypeError or ValueError naming the argument, or the
behaviour a plain Python transcription of the rule predicts."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties_strategies import ANYTHING, is_count, is_real

from fastnn.callbacks import Callback, EarlyStopping, History, ProgressBar, check_callbacks

SETTINGS = settings(max_examples=200, deadline=None)


def named_error(call, *names):
    """Run ``call``; an error must be a TypeError/ValueError naming one of ``names``."""
    try:
        return call()
    except (TypeError, ValueError) as error:
        assert any(name in str(error) for name in names), error
        return error


@SETTINGS
@given(monitor=st.one_of(ANYTHING, st.text(max_size=12)),
       mode=st.one_of(ANYTHING, st.sampled_from(["auto", "min", "max"])),
       patience=st.one_of(ANYTHING, st.integers(0, 5)),
       min_delta=st.one_of(ANYTHING, st.floats(0, 1)),
       restore_best=st.one_of(ANYTHING, st.booleans()))
def test_early_stopping_construction(monitor, mode, patience, min_delta, restore_best):
    result = named_error(lambda: EarlyStopping(monitor, mode, patience, min_delta, restore_best),
                         "monitor", "mode", "patience", "min_delta", "restore_best")
    valid = (isinstance(monitor, str) and monitor != ""
             and isinstance(mode, str) and mode in ("auto", "min", "max")
             and is_count(patience) and is_real(min_delta, 0.0)
             and isinstance(restore_best, bool))
    assert isinstance(result, EarlyStopping) == valid


@SETTINGS
@given(epochs=st.one_of(ANYTHING, st.integers(1, 100)),
       width=st.one_of(ANYTHING, st.integers(1, 80)),
       stream=st.one_of(st.none(), st.just(io.StringIO()), ANYTHING))
def test_progress_bar_construction(epochs, width, stream):
    result = named_error(lambda: ProgressBar(epochs, stream=stream, width=width),
                         "epochs", "width", "stream")
    valid = (is_count(epochs, 1) and is_count(width, 1) and width <= 1000
             and (stream is None or isinstance(stream, io.StringIO)))
    assert isinstance(result, ProgressBar) == valid


@SETTINGS
@given(items=st.lists(st.one_of(st.just(Callback()), st.just(History()), ANYTHING), max_size=4))
def test_check_callbacks_on_any_list(items):
    result = named_error(lambda: check_callbacks(items), "callbacks")
    if all(isinstance(item, Callback) for item in items):
        assert result == items
    else:
        bad = next(i for i, item in enumerate(items) if not isinstance(item, Callback))
        assert isinstance(result, TypeError) and f"callbacks[{bad}]" in str(result)


@SETTINGS
@given(value=ANYTHING)
def test_check_callbacks_on_anything(value):
    result = named_error(lambda: check_callbacks(value), "callbacks")
    assert isinstance(result, (list, TypeError))


class Stub:
    """Just what EarlyStopping touches on a model."""

    def __init__(self):
        self.stop_training = False
        self.epoch = None

    def get_state(self):
        return self.epoch

    def set_state(self, state):
        self.epoch = state


def reference_early_stopping(values, larger_is_better, patience, min_delta):
    """The stopping rule written out: (best epoch, epochs run)."""
    best, best_epoch, wait = None, None, 0
    for epoch, value in enumerate(values):
        if (best is None or (value > best + min_delta if larger_is_better
                             else value < best - min_delta)):
            best, best_epoch, wait = value, epoch, 0
            continue
        wait += 1
        if wait >= patience:
            return best_epoch, epoch + 1
    return best_epoch, len(values)


@SETTINGS
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=30),
       monitor=st.sampled_from(["val_loss", "loss", "val_accuracy", "accuracy", "mae"]),
       patience=st.integers(0, 5), min_delta=st.sampled_from([0.0, 0.01, 0.2]))
def test_early_stopping_follows_the_rule(values, monitor, patience, min_delta):
    stopper = EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta)
    model = Stub()
    stopper.on_train_begin(model)
    run = 0
    for epoch, value in enumerate(values):
        model.epoch = epoch
        stopper.on_epoch_end(epoch, {monitor: value})
        run += 1
        if model.stop_training:
            break
    stopper.on_train_end()
    best_epoch, expected_run = reference_early_stopping(
        values, "acc" in monitor, patience, min_delta)
    assert run == expected_run and stopper.best_epoch == best_epoch
    assert model.epoch == best_epoch  # restored


class Terminal(io.StringIO):
    def isatty(self):
        return True


@SETTINGS
@given(done=st.integers(-10**6, 10**6), total=st.integers(-10**6, 10**6),
       width=st.integers(1, 1000))
def test_the_bar_draws_any_progress_within_its_width(done, total, width):
    terminal = Terminal()
    bar = ProgressBar(3, stream=io.StringIO(), width=width, bar_stream=terminal)
    bar.on_epoch_begin(0)
    bar.on_progress(done, total)
    drawn = terminal.getvalue()
    inside = drawn[drawn.index("[") + 1:drawn.index("]")]
    assert len(inside) == width and set(inside) <= {"=", "."}
    fraction = min(max(done / total, 0), 1) if total > 0 else 1
    assert inside.count("=") == int(width * fraction)


def test_a_missing_metric_is_named_with_the_available_ones():
    model = Stub()
    model.metric_names_ = ("loss", "mae")
    with pytest.raises(ValueError, match=r"'val_mae'.*\['loss', 'mae'\]"):
        EarlyStopping(monitor="val_mae").on_train_begin(model)
