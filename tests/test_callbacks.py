"""Callbacks: history, early stopping with restore, the progress bar, custom hooks."""

import io

import numpy as np
import pytest
from test_model import blobs, make_model

from fastnn.callbacks import Callback, EarlyStopping, ProgressBar, check_callbacks
from fastnn.optimizers import SGD


class RecordParams(Callback):
    def on_train_begin(self, model):
        super().on_train_begin(model)
        self.events, self.params = [], []

    def on_epoch_begin(self, epoch):
        self.events.append(("begin", epoch))

    def on_epoch_end(self, epoch, logs):
        self.events.append(("end", epoch))
        self.params.append(self.model.params_.copy())

    def on_train_end(self):
        self.events.append(("train_end",))


def test_hooks_run_in_order_and_history_has_one_entry_per_epoch():
    X, y = blobs(n=60)
    recorder = RecordParams()
    history = make_model("relu_softmax").fit(X, y, epochs=3, batch_size=16, callbacks=[recorder])
    assert recorder.events == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1),
                               ("begin", 2), ("end", 2), ("train_end",)]
    assert all(len(history[key]) == 3 for key in ("loss", "accuracy", "lr"))


@pytest.mark.parametrize("compiled", [True, False])
def test_early_stopping_restores_the_best_epoch(compiled):
    X, y = blobs(n=300, spread=2.0, seed=4)  # noisy: validation loss turns up
    model = make_model("relu_softmax", optimizer=SGD(lr=0.5, momentum=0.9))
    recorder = RecordParams()
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    history = model.fit(X[:100], y[:100], epochs=200, batch_size=8, compiled=compiled,
                        validation_data=(X[100:], y[100:]), callbacks=[recorder, stopper])
    epochs_run = len(history["val_loss"])
    assert epochs_run < 200
    best = int(np.argmin(history["val_loss"]))
    assert epochs_run == best + 2 + 1  # stopped after `patience` epochs without improvement
    np.testing.assert_array_equal(model.params_, recorder.params[best])
    assert stopper.best == pytest.approx(min(history["val_loss"]))


def test_early_stopping_on_a_maximized_metric_and_missing_key():
    X, y = blobs(n=80)
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=0, restore_best=False)
    model = make_model("relu_softmax", optimizer=SGD(lr=1e-9))  # nothing improves
    history = model.fit(X, y, epochs=10, validation_data=(X, y), callbacks=[stopper])
    assert len(history["loss"]) == 2
    with pytest.raises(ValueError, match="val_loss"):
        make_model("relu_softmax").fit(X, y, epochs=1, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_progress_bar_prints_each_epochs_metrics():
    X, y = blobs(n=50)
    stream = io.StringIO()
    make_model("relu_softmax").fit(X, y, epochs=2, batch_size=10, validation_data=(X, y),
                                   callbacks=[ProgressBar(2, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert all("val_accuracy" in line and "\r" not in line for line in lines)


# --- which way is better: mode="auto" -----------------------------------------

@pytest.mark.parametrize("monitor, mode", [
    ("loss", "min"), ("val_loss", "min"), ("mae", "min"), ("val_mse", "min"),
    ("accuracy", "max"), ("val_accuracy", "max"), ("val_acc", "max"), ("auc", "max"),
    ("val_r2", "max"), ("f1", "max"), ("val_precision", "max"), ("recall", "max"),
])
def test_auto_mode_follows_the_metric_name(monitor, mode):
    assert EarlyStopping(monitor=monitor).mode == mode
    assert EarlyStopping(monitor=monitor, mode="auto").mode == mode
    other = "max" if mode == "min" else "min"
    assert EarlyStopping(monitor=monitor, mode=other).mode == other


def test_early_stopping_on_validation_accuracy_keeps_the_best_epoch():
    X, y = blobs(n=300, spread=2.0, seed=4)  # noisy: validation accuracy goes up and down
    model = make_model("relu_softmax", optimizer=SGD(lr=0.5, momentum=0.9))
    recorder = RecordParams()
    stopper = EarlyStopping(monitor="val_accuracy", patience=3)
    history = model.fit(X[:100], y[:100], epochs=200, batch_size=8,
                        validation_data=(X[100:], y[100:]), callbacks=[recorder, stopper])
    accuracy = history["val_accuracy"]
    best = int(np.argmax(accuracy))  # the first epoch reaching the maximum
    assert min(accuracy) < max(accuracy)
    assert stopper.best == max(accuracy) and stopper.best_epoch == best
    assert len(accuracy) == best + 3 + 1
    np.testing.assert_array_equal(model.params_, recorder.params[best])


# --- a metric that the logs will not hold -------------------------------------

class Probe(Callback):
    def on_train_begin(self, model):
        self.names = getattr(model, "metric_names_", None)


def fit_announces_metric_names():
    X, y = blobs(n=20)
    probe = Probe()
    make_model("relu_softmax").fit(X, y, epochs=1, callbacks=[probe])
    return probe.names is not None


def test_a_missing_metric_is_refused_when_training_begins():
    model = make_model("relu_softmax")
    model.metric_names_ = ("loss", "accuracy", "lr")
    stopper = EarlyStopping(monitor="val_loss")
    with pytest.raises(ValueError, match=r"'val_loss'.*\['accuracy', 'loss', 'lr'\]"):
        stopper.on_train_begin(model)
    EarlyStopping(monitor="accuracy").on_train_begin(model)  # present: accepted


def test_a_missing_metric_stops_fit_before_the_weights_change():
    if not fit_announces_metric_names():
        pytest.skip("Sequential.fit does not set metric_names_")
    X, y = blobs(n=40)
    model = make_model("relu_softmax")
    before = model.params_.copy()
    with pytest.raises(ValueError, match="val_loss"):
        model.fit(X, y, epochs=3, callbacks=[EarlyStopping(monitor="val_loss")])
    np.testing.assert_array_equal(model.params_, before)


# --- the callbacks argument ---------------------------------------------------

def test_check_callbacks_accepts_callbacks_and_refuses_anything_else():
    stopper, history = EarlyStopping(), Callback()
    assert check_callbacks([stopper, history]) == [stopper, history]
    assert check_callbacks((stopper,)) == [stopper]
    assert check_callbacks(()) == [] and check_callbacks(None) == []
    with pytest.raises(TypeError, match=r"callbacks\[1\].*object"):
        check_callbacks([stopper, object()])
    with pytest.raises(TypeError, match=r"callbacks\[0\].*class EarlyStopping"):
        check_callbacks([EarlyStopping])
    with pytest.raises(TypeError, match="callbacks must be a list.*int"):
        check_callbacks(3)
    with pytest.raises(TypeError, match="callbacks must be a list.*a single EarlyStopping"):
        check_callbacks(stopper)
    with pytest.raises(TypeError, match=r"callbacks\[0\].*str"):
        check_callbacks("abc")


def test_fit_refuses_a_non_callback_before_training():
    if not fit_announces_metric_names():
        pytest.skip("Sequential.fit does not check its callbacks")
    X, y = blobs(n=20)
    model = make_model("relu_softmax")
    before = model.params_.copy()
    with pytest.raises(TypeError, match="callbacks"):
        model.fit(X, y, epochs=1, callbacks=[object()])
    np.testing.assert_array_equal(model.params_, before)


@pytest.mark.parametrize("make, error, name", [
    (lambda: EarlyStopping(monitor=""), ValueError, "monitor"),
    (lambda: EarlyStopping(monitor=3), TypeError, "monitor"),
    (lambda: EarlyStopping(mode="up"), ValueError, "mode"),
    (lambda: EarlyStopping(patience=-1), ValueError, "patience"),
    (lambda: EarlyStopping(patience=1.5), TypeError, "patience"),
    (lambda: EarlyStopping(patience=True), TypeError, "patience"),
    (lambda: EarlyStopping(min_delta="0.1"), TypeError, "min_delta"),
    (lambda: EarlyStopping(min_delta=float("nan")), ValueError, "min_delta"),
    (lambda: EarlyStopping(min_delta=-0.1), ValueError, "min_delta"),
    (lambda: EarlyStopping(restore_best="yes"), TypeError, "restore_best"),
    (lambda: ProgressBar(0), ValueError, "epochs"),
    (lambda: ProgressBar(2.5), TypeError, "epochs"),
    (lambda: ProgressBar(2, width=0), ValueError, "width"),
    (lambda: ProgressBar(2, width=10**9), ValueError, "width"),
    (lambda: ProgressBar(2, stream="out"), TypeError, "stream"),
    (lambda: ProgressBar(2, bar_stream=3), TypeError, "bar_stream"),
])
def test_bad_callback_settings_are_refused(make, error, name):
    with pytest.raises(error, match=name):
        make()


# --- where the output goes ----------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_metrics_go_to_stdout_and_the_bar_to_stderr(capsys):
    X, y = blobs(n=50)
    make_model("relu_softmax").fit(X, y, epochs=2, batch_size=10, callbacks=[ProgressBar(2)])
    output = capsys.readouterr()
    assert [line.split()[:2] for line in output.out.splitlines()] == [["epoch", "1/2"],
                                                                      ["epoch", "2/2"]]
    assert output.err == ""  # not a terminal: no bar to draw


def test_a_live_bar_is_drawn_and_erased_on_its_own_stream():
    X, y = blobs(n=50)
    results, terminal = io.StringIO(), Terminal()
    make_model("relu_softmax").fit(X, y, epochs=2, batch_size=10,
                                   callbacks=[ProgressBar(2, stream=results, bar_stream=terminal)])
    assert [line.split()[:2] for line in results.getvalue().splitlines()] == [["epoch", "1/2"],
                                                                              ["epoch", "2/2"]]
    assert "\r" not in results.getvalue() and "[" not in results.getvalue()
    drawn = terminal.getvalue()
    assert "epoch 1/2 [" in drawn and "epoch 2/2 [" in drawn
    # the bar carries the running estimate only; the epoch's metrics go to results
    assert "loss~" in drawn and "accuracy" not in drawn and "loss " not in drawn
    assert drawn.endswith("\r\033[K")  # the last bar is erased before its metrics appear


# --- ModelCheckpoint and CSVLogger -------------------------------------------

class Snapshots(Callback):
    """The parameters after every epoch (for checking what was saved)."""

    def on_train_begin(self, model):
        super().on_train_begin(model)
        self.params = []

    def on_epoch_end(self, epoch, logs):
        self.params.append(self.model.params_.copy())


def test_checkpoint_every_n_epochs(tmp_path):
    from fastnn.callbacks import ModelCheckpoint

    X, y = blobs(n=60)
    model = make_model("relu_softmax")
    snapshots = Snapshots()
    checkpoint = ModelCheckpoint(tmp_path / "m-{epoch}.npz", every=2)
    model.fit(X, y, epochs=5, batch_size=10, callbacks=[snapshots, checkpoint])
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["m-2.npz", "m-4.npz"]
    reloaded = make_model("relu_softmax")
    reloaded.load_weights(tmp_path / "m-4.npz")
    np.testing.assert_array_equal(reloaded.params_, snapshots.params[3])


def test_checkpoint_keeps_the_best_epoch(tmp_path):
    from fastnn.callbacks import ModelCheckpoint

    X, y = blobs(n=80)
    model = make_model("relu_softmax")
    snapshots = Snapshots()
    checkpoint = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy")
    history = model.fit(X[:60], y[:60], epochs=6, batch_size=10,
                        validation_data=(X[60:], y[60:]), callbacks=[snapshots, checkpoint])
    scores = history["val_accuracy"]
    best = max(range(len(scores)), key=lambda e: (scores[e], -e))  # the first of the best
    reloaded = make_model("relu_softmax")
    reloaded.load_weights(tmp_path / "best.npz")
    np.testing.assert_array_equal(reloaded.params_, snapshots.params[best])
    with pytest.raises(ValueError, match="val_loss"):
        make_model("relu_softmax").fit(X, y, callbacks=[ModelCheckpoint(tmp_path / "x.npz",
                                                                        monitor="val_loss")])


def test_a_whole_model_checkpoint_resumes_the_fit_exactly(tmp_path):
    from fastnn import load_model
    from fastnn.callbacks import ModelCheckpoint
    from fastnn.optimizers import Adam
    from fastnn.schedules import StepDecay

    X, y = blobs(n=60)

    def model():
        return make_model("dropout", optimizer=Adam(lr=StepDecay(0.01, factor=0.5, every=1)),
                          gradient_noise=0.01)

    straight = model()
    history = straight.fit(X, y, epochs=5, batch_size=10,
                           callbacks=[ModelCheckpoint(tmp_path / "m-{epoch}.npz", every=2)])
    resumed = load_model(tmp_path / "m-2.npz")
    assert resumed.history_.history == {key: values[:2] for key, values in history.history.items()}
    rest = resumed.fit(X, y, epochs=3, batch_size=10)
    np.testing.assert_array_equal(resumed.params_, straight.params_)
    np.testing.assert_array_equal(resumed.optimizer.state_, straight.optimizer.state_)
    assert resumed.rng.bit_generator.state == straight.rng.bit_generator.state
    assert rest.history == {key: values[2:] for key, values in history.history.items()}
    assert load_model(tmp_path / "m-4.npz").optimizer.t_ == 4 * 6


def test_a_weights_only_checkpoint_and_an_unsavable_model(tmp_path):
    from fastnn import layers as L
    from fastnn import load_model
    from fastnn.callbacks import ModelCheckpoint
    from fastnn.model import Sequential

    X, y = blobs(n=60)
    make_model("relu_softmax").fit(X, y, epochs=1, callbacks=[
        ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True)])
    with pytest.raises(ValueError, match="carries only weights"):
        load_model(tmp_path / "w.npz")
    custom = Sequential([L.Dense(6, 3, init=lambda rng, shape, fan_in, fan_out: np.ones(shape)),
                         L.Softmax()])
    before = custom.params_.copy()
    with pytest.raises(ValueError, match="custom function"):
        custom.fit(X, y, epochs=1, callbacks=[ModelCheckpoint(tmp_path / "c.npz")])
    np.testing.assert_array_equal(custom.params_, before)  # refused before any epoch
    with pytest.raises(TypeError, match="save_weights_only"):
        ModelCheckpoint(tmp_path / "c.npz", save_weights_only="yes")


def test_csv_logger_writes_every_finished_epoch(tmp_path):
    from fastnn.callbacks import CSVLogger
    from fastnn.plotting import history_from_csv

    X, y = blobs(n=60)
    path = tmp_path / "log.csv"
    history = make_model("relu_softmax").fit(X, y, epochs=3, batch_size=10,
                                             callbacks=[CSVLogger(path)])
    assert history_from_csv(path) == {"epoch": [1, 2, 3], **history.history}
