"""Training callbacks.

``Sequential.fit`` calls, in order: ``on_train_begin(model)``, then per epoch
``on_epoch_begin(epoch)``, ``on_progress(done, total)`` as batches complete,
``on_epoch_end(epoch, logs)``, and finally ``on_train_end()``.  ``logs`` holds
the epoch's metrics (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
``lr``; ``model.metric_names_`` lists them before training begins).  A
callback stops training by setting ``model.stop_training = True``.  The
history, the progress bar and early stopping are callbacks themselves.
"""

import os
import sys
import time

from fastnn._validation import (check_bool, check_count, check_metric_available,
                                check_monitor, check_non_negative, check_stream,
                                resolve_mode)

#: widest progress bar drawn, in characters (wider ones would wrap on any terminal)
MAX_BAR_WIDTH = 1000


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


def check_callbacks(callbacks):
    """The ``callbacks`` argument of ``fit`` as a list of :class:`Callback` instances.

    Parameters
    ----------
    callbacks : iterable of Callback or None
        None stands for no callbacks.

    Returns
    -------
    list of Callback

    Raises
    ------
    TypeError
        If ``callbacks`` is not an iterable (a single callback included: it
        has to be wrapped in a list), or one of its elements is not a
        Callback instance; the message names the element.
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        raise TypeError(f"callbacks must be a list of Callback instances, got a single "
                        f"{type(callbacks).__name__}: write callbacks=[...]")
    try:
        items = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a list of Callback instances, got "
                        f"{type(callbacks).__name__}") from None
    for index, item in enumerate(items):
        if isinstance(item, type) and issubclass(item, Callback):
            raise TypeError(f"callbacks[{index}] is the class {item.__name__}, not an "
                            f"instance: write {item.__name__}(...)")
        if not isinstance(item, Callback):
            raise TypeError(f"callbacks[{index}] must be a fastnn Callback, got "
                            f"{type(item).__name__}")
    return items


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

    The metrics are results: one line per epoch on ``stream`` (standard
    output), so that ``fastnn train | tee log`` keeps them.  The bar is live
    feedback: it is drawn on ``bar_stream`` (standard error), and only when
    that is a terminal, redrawn in place and erased before the epoch's line
    of metrics appears.

    Parameters
    ----------
    epochs : int
        Number of epochs, >= 1 (shown as ``epoch e/epochs``).
    stream : text stream, optional
        Where the metrics go (default: ``sys.stdout``).
    width : int
        Characters of the bar, in [1, 1000].
    bar_stream : text stream, optional
        Where the bar is drawn (default: ``sys.stderr``).
    """

    def __init__(self, epochs, stream=None, width=30, bar_stream=None):
        self.epochs = check_count("epochs", epochs, minimum=1)
        self.stream = check_stream("stream", sys.stdout if stream is None else stream)
        self.bar_stream = check_stream("bar_stream",
                                       sys.stderr if bar_stream is None else bar_stream)
        self.width = check_count("width", width, minimum=1, maximum=MAX_BAR_WIDTH)
        isatty = getattr(self.bar_stream, "isatty", None)
        self.live = bool(callable(isatty) and isatty())
        self._drawn = False
        self._start = time.perf_counter()
        self._label = f"epoch 1/{self.epochs}"

    def on_epoch_begin(self, epoch):
        self._start = time.perf_counter()
        self._label = f"epoch {epoch + 1}/{self.epochs}"

    def on_progress(self, done, total):
        if not self.live:
            return
        fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        filled = int(self.width * fraction)
        bar = "=" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        running = getattr(getattr(self, "model", None), "running_loss_", None)
        shown = f" loss~{running:.4g}" if running is not None else ""
        self.bar_stream.write(f"\r{self._label} [{bar}] {done}/{total} {elapsed:5.1f}s{shown}")
        self.bar_stream.flush()
        self._drawn = True

    def clear(self):
        """Erase the bar if one is drawn (before other output, or when interrupted)."""
        if self._drawn:
            self.bar_stream.write("\r\033[K")
            self.bar_stream.flush()
            self._drawn = False

    def on_epoch_end(self, epoch, logs):
        elapsed = time.perf_counter() - self._start
        metrics = "  ".join(
            f"{key} {value:.4g}" for key, value in logs.items() if value is not None
        )
        self.clear()
        self.stream.write(f"{self._label} {elapsed:5.1f}s  {metrics}\n")
        self.stream.flush()

    def on_train_end(self):
        self.clear()


class EarlyStopping(Callback):
    """Stop when a monitored metric has not improved for ``patience`` epochs.

    An epoch improves on the best one so far when its value ``a`` satisfies
    ``a < best − min_delta`` (mode 'min') or ``a > best + min_delta`` (mode
    'max'); the first epoch always does.

    Parameters
    ----------
    monitor : str
        Key of the epoch logs, e.g. ``"val_loss"`` or ``"val_accuracy"``.
    mode : {"auto", "min", "max"}
        Whether smaller or larger values are better.  ``"auto"`` takes
        larger for names containing "acc", "auc", "r2", "f1", "precision"
        or "recall" (accuracies and scores) and smaller for every other
        metric (losses and errors).  The attribute holds the resolved mode.
    patience : int
        Epochs without improvement before stopping, >= 0.
    min_delta : float
        Smallest change that counts as an improvement, >= 0.
    restore_best : bool
        Put back the parameters of the best epoch when training ends.

    Raises
    ------
    ValueError
        From ``on_train_begin``, before any epoch, if the model's
        ``metric_names_`` do not include ``monitor``.
    """

    def __init__(self, monitor="val_loss", mode="auto", patience=5, min_delta=0.0,
                 restore_best=True):
        self.monitor = check_monitor(monitor)
        self.mode = resolve_mode(mode, self.monitor)
        self.patience = check_count("patience", patience, minimum=0)
        self.min_delta = check_non_negative("min_delta", min_delta)
        self.restore_best = check_bool("restore_best", restore_best)

    def on_train_begin(self, model):
        names = getattr(model, "metric_names_", None)
        if names is not None:
            check_metric_available("EarlyStopping", self.monitor, names)
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


class ModelCheckpoint(Callback):
    """Save the model during training: every ``every`` epochs, or when ``monitor`` improves.

    Each save is a whole-model file (``Sequential.save``: ``fastnn.load_model``
    resumes training from it exactly, with the history of this fit up to the
    saved epoch), or with ``save_weights_only`` a weights file
    (``Sequential.save_weights``).  Either is written beside the target and
    renamed over it when complete, so an interrupted run leaves the previous
    checkpoint whole.

    Parameters
    ----------
    path : str or path
        The file; ``{epoch}`` in it is replaced by the 1-based epoch.
    monitor : str or None
        With a metric (``"val_loss"``), save only when it improves on the best
        so far (``mode`` as in :class:`EarlyStopping`); None saves every
        ``every`` epochs.
    mode : {'auto', 'min', 'max'}
    every : int
        Epochs between saves when ``monitor`` is None.
    save_weights_only : bool
        Save the parameters and batch-norm statistics only.

    Raises
    ------
    ValueError
        From ``on_train_begin``, before any epoch, if a whole-model file
        cannot describe the model (a layer or initializer of the user's own).
    """

    def __init__(self, path, monitor=None, mode="auto", every=1, save_weights_only=False):
        self.path = os.fspath(path)
        self.monitor = None if monitor is None else check_monitor(monitor)
        self.mode = None if monitor is None else resolve_mode(mode, self.monitor)
        self.every = check_count("every", every, 1)
        self.save_weights_only = check_bool("save_weights_only", save_weights_only)
        self.saved = []

    def on_train_begin(self, model):
        from fastnn import model_file

        if self.monitor is not None:
            names = getattr(model, "metric_names_", None)
            if names is not None:
                check_metric_available("ModelCheckpoint", self.monitor, names)
        if not self.save_weights_only:
            model_file.describe(model)  # refuses, now, what it could not save later
        super().on_train_begin(model)
        self.best = None
        self.history = History()

    def on_epoch_end(self, epoch, logs):
        from fastnn import model_file

        # The fit's own history records this epoch only after the callbacks.
        self.history.on_epoch_end(epoch, logs)
        if self.monitor is None:
            if (epoch + 1) % self.every:
                return
        else:
            value = logs[self.monitor]
            if self.best is not None and (value >= self.best if self.mode == "min"
                                          else value <= self.best):
                return
            self.best = value
        path = self.path.replace("{epoch}", str(epoch + 1))
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            model_file.save(self.model, path, history=self.history)
        self.saved.append(path)


class CSVLogger(Callback):
    """Write the history to a CSV file after every epoch (``fastnn.plotting`` format).

    The file is rewritten whole and atomically each epoch, so it always holds
    every finished epoch and never a half-written line.
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_train_begin(self, model):
        super().on_train_begin(model)
        self.history = {}

    def on_epoch_end(self, epoch, logs):
        from fastnn.plotting import history_to_csv

        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        history_to_csv(self.history, self.path)
