"""Training callbacks.

``Sequential.fit`` calls, in order: ``on_train_begin(model)``, then per epoch
``on_epoch_begin(epoch)``, ``on_progress(done, total)`` as batches complete,
``on_epoch_end(epoch, logs)``, and finally ``on_train_end()``.  ``logs`` holds
the epoch's metrics (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
``lr``).  A callback stops training by setting ``model.stop_training = True``.
The history, the progress bar and early stopping are callbacks themselves.
"""

import sys
import time

import numpy as np


def check_callbacks(callbacks):
    """``callbacks`` as a list of Callback objects; anything else is a TypeError."""
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a list of Callback objects, "
                        f"got {type(callbacks).__name__}") from None
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must hold Callback objects, got {callback!r}")
    return callbacks


class Callback:
    """Base class with no-op hooks."""

    def on_train_begin(self, model):
        self.model = model

    def on_epoch_begin(self, epoch):
        pass

    def on_progress(self, done, total):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self):
        pass


class History(Callback):
    """Records every epoch's logs: ``history[key]`` is a list, one entry per epoch."""

    def __init__(self):
        self.history = {}

    def on_epoch_end(self, epoch, logs):
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def keys(self):
        return self.history.keys()

    def __repr__(self):
        return f"History({self.history!r})"


class ProgressBar(Callback):
    """A one-line progress bar per epoch, then the epoch's metrics.

    The bar is redrawn in place only on a terminal; written to a file or a
    pipe, only the line of metrics per epoch appears.
    """

    def __init__(self, epochs, stream=None, width=30):
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()

    def on_epoch_begin(self, epoch):
        self._start = time.perf_counter()
        self._label = f"epoch {epoch + 1}/{self.epochs}"

    def on_progress(self, done, total):
        if not self.live:
            return
        filled = int(self.width * done / total)
        bar = "=" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        self.stream.write(f"\r{self._label} [{bar}] {done}/{total} {elapsed:5.1f}s")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs):
        elapsed = time.perf_counter() - self._start
        metrics = "  ".join(
            f"{key} {value:.4g}" for key, value in logs.items() if value is not None
        )
        erase = "\r\033[K" if self.live else ""
        self.stream.write(f"{erase}{self._label} {elapsed:5.1f}s  {metrics}\n")
        self.stream.flush()


class EarlyStopping(Callback):
    """Stop when a monitored metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        Key of the epoch logs, e.g. ``"val_loss"`` or ``"val_accuracy"``.
    mode : {"min", "max"}
        Whether smaller or larger values are better.
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    restore_best : bool
        Put back the parameters of the best epoch when training ends.
    """

    def __init__(self, monitor="val_loss", mode="min", patience=5, min_delta=0.0,
                 restore_best=True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be non-negative, got {min_delta!r}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best

    def on_train_begin(self, model):
        super().on_train_begin(model)
        self.best = None
        self.best_epoch = None
        self.best_state = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        if logs.get(self.monitor) is None:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which the epoch logs lack "
                f"(have: {sorted(k for k, v in logs.items() if v is not None)})"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = self.model.get_state()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self):
        if self.restore_best and self.best_state is not None:
            self.model.set_state(self.best_state)
