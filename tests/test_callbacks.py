"""Callbacks: history, early stopping with restore, the progress bar, custom hooks."""

import io

import numpy as np
import pytest
from test_model import blobs, make_model

from fastnn.callbacks import Callback, EarlyStopping, ProgressBar
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
