"""Learning-rate schedules.

A schedule maps the position in training to a learning rate.  With
``per='epoch'`` the rate depends on the 0-based epoch index ``e`` and is
constant within an epoch; with ``per='step'`` it depends on the 0-based index
``s = step - 1`` of the update, where ``step`` is the 1-based update counter
of the optimizer.  Either way the first update of training uses the initial
rate ``lr``.

Every schedule provides

``rates(epoch, first_step, n_steps)``
    float64 array of the rates of updates ``first_step, ...,
    first_step + n_steps - 1`` (1-based), all taken during ``epoch``.  The
    optimizer asks once per epoch (compiled loop) or once per step.
``on_epoch_end(epoch, logs)``
    called after each epoch with the epoch's metrics; only
    :class:`ReduceLROnPlateau` uses it.
``check_metrics(metric_names)``
    called by ``fit`` before the first epoch with the names of the metrics
    every epoch will report; a schedule that watches one refuses a name
    that is not among them.

An optimizer accepts a plain number as ``lr``; it is wrapped in
:class:`Constant`.
"""

import math
import numbers
from collections.abc import Mapping

import numpy as np

from ._registry import by_class_name
from ._validation import (Integer, Real, check_count, check_metric_available, check_monitor,
                          check_non_negative, check_real, resolve_mode)

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "ReduceLROnPlateau",
    "as_schedule",
    "SCHEDULES",
]

_PER = ("epoch", "step")


def _count(name, value, minimum):
    return check_count(name, value, minimum=minimum)


def _metric_names(metric_names):
    """``metric_names`` as a tuple of strings."""
    if isinstance(metric_names, str):
        raise TypeError("metric_names must be a collection of metric names, got one string")
    try:
        names = tuple(metric_names)
    except TypeError:
        raise TypeError(f"metric_names must be a collection of metric names, got "
                        f"{type(metric_names).__name__}") from None
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"metric_names must hold strings, got {names!r}")
    return names


class Schedule:
    """Base class: a learning rate as a function of the epoch or step index.

    Parameters
    ----------
    lr : float
        Initial learning rate, >= 0.
    per : {'epoch', 'step'}
        Whether the index ``t`` of the formula counts epochs or updates.

    Notes
    -----
    Subclasses implement ``_rate(t)`` for 0-based indices ``t``, a float or
    an array of them.
    """

    def __init__(self, lr, per="epoch"):
        self.lr = check_non_negative("lr", lr)
        if not isinstance(per, str) or per not in _PER:
            raise ValueError(f"per must be 'epoch' or 'step', got {per!r}")
        self.per = per

    def _rate(self, t):
        raise NotImplementedError

    def rates(self, epoch, first_step, n_steps):
        """Rates of the next ``n_steps`` updates, the first being ``first_step``.

        Parameters
        ----------
        epoch : int
            0-based index of the epoch the updates belong to.
        first_step : int
            1-based number of the first update (the optimizer's step count
            plus one).
        n_steps : int
            Number of updates.

        Returns
        -------
        ndarray of float64, shape (n_steps,)
        """
        epoch = _count("epoch", epoch, 0)
        first_step = _count("first_step", first_step, 1)
        n_steps = _count("n_steps", n_steps, 0)
        if self.per == "epoch":
            t = np.full(n_steps, float(epoch))
        else:
            # Not np.arange(start, stop): its step is the difference of the
            # first two values as floats, 0 beyond 2^53, which froze t there.
            t = float(first_step - 1) + np.arange(n_steps, dtype=np.float64)
        return np.ascontiguousarray(self._rate(t), dtype=np.float64)

    def rate(self, epoch, step):
        """Rate of the single update ``step`` (1-based), taken during ``epoch``.

        Equals ``rates(epoch, step, 1)[0]``, without building arrays.
        """
        epoch = _count("epoch", epoch, 0)
        step = _count("step", step, 1)
        return float(self._rate(float(epoch if self.per == "epoch" else step - 1)))

    def on_epoch_end(self, epoch, logs=None):
        """Observe the metrics of a finished epoch (no effect by default)."""

    def check_metrics(self, metric_names):
        """Refuse, before training, to watch a metric training will not report.

        Parameters
        ----------
        metric_names : collection of str
            The keys of every epoch's logs (``model.metric_names_``).

        A schedule that watches no metric accepts any names.
        """
        _metric_names(metric_names)

    def get_config(self):
        """The constructor's arguments, by name: ``type(s)(**s.get_config())``
        builds the same schedule, at its start."""
        return dict(self._params())

    #: the fields training changes (a name → rule table, see ``fastnn._validation``)
    _STATE_RULES = {}

    def get_state(self):
        """What training has changed in the schedule, by name (nothing by default)."""
        return {name: getattr(self, name) for name in self._STATE_RULES}

    def set_state(self, state):
        """Restore a state from :meth:`get_state`, checked.

        Raises
        ------
        ValueError
            If ``state`` names other fields than :meth:`get_state` gives, or
            a value its field does not allow.
        """
        if not isinstance(state, Mapping) or set(state) != set(self._STATE_RULES):
            raise ValueError(f"the state of {type(self).__name__} has the fields "
                             f"{sorted(self._STATE_RULES)}, got {state!r}")
        checked = {name: self._STATE_RULES[name](name, value) for name, value in state.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def _params(self):
        return {"lr": self.lr, "per": self.per}


class Constant(Schedule):
    """A fixed learning rate: ``α_t = lr``.

    Parameters
    ----------
    lr : float
        The learning rate, >= 0.
    per : {'epoch', 'step'}
        Accepted for a uniform interface; it does not change the rate.
    """

    def _rate(self, t):
        return np.full(t.shape, self.lr) if isinstance(t, np.ndarray) else self.lr


class StepDecay(Schedule):
    """Drop the rate by a factor every ``every`` epochs or steps.

    ``α_t = lr · factor^⌊t / every⌋``

    Parameters
    ----------
    lr : float
        Initial learning rate, >= 0.
    factor : float
        Multiplier applied at each drop, in (0, 1].
    every : int
        Epochs (or steps) between drops, >= 1.
    per : {'epoch', 'step'}
        Whether ``t`` counts epochs or updates.
    """

    def __init__(self, lr, factor=0.5, every=10, per="epoch"):
        super().__init__(lr, per)
        self.factor = check_real("factor", factor)
        if not 0 < self.factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {self.factor}")
        self.every = _count("every", every, 1)

    def _rate(self, t):
        return self.lr * self.factor ** np.floor(t / self.every)

    def _params(self):
        return {"lr": self.lr, "factor": self.factor, "every": self.every,
                "per": self.per}


class _RateDecay(Schedule):
    """Base of the schedules whose one parameter besides ``lr`` and ``per`` is
    a decay rate ``k``, >= 0; each subclass supplies ``_rate``."""

    def __init__(self, lr, k, per="epoch"):
        super().__init__(lr, per)
        self.k = check_non_negative("k", k)

    def _params(self):
        return {"lr": self.lr, "k": self.k, "per": self.per}


class ExponentialDecay(_RateDecay):
    """Exponential decay: ``α_t = lr · e^(−k t)``.

    Parameters
    ----------
    lr : float
        Initial learning rate α0, >= 0.
    k : float
        Decay rate, >= 0.
    per : {'epoch', 'step'}
        Whether ``t`` counts epochs or updates.
    """

    def _rate(self, t):
        return self.lr * np.exp(-self.k * t)


class InverseTimeDecay(_RateDecay):
    """Inverse-time decay: ``α_t = lr / (1 + k t)``.

    Parameters
    ----------
    lr : float
        Initial learning rate α0, >= 0.
    k : float
        Decay rate, >= 0.
    per : {'epoch', 'step'}
        Whether ``t`` counts epochs or updates.
    """

    def _rate(self, t):
        return self.lr / (1.0 + self.k * t)


def _best_value(name, value):
    """A number that is not NaN (±∞ stands for "none yet")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name} must be a number or ±inf, got {value!r}")
    return float(value)


class ReduceLROnPlateau(Schedule):
    """Reduce the rate when a monitored metric stops improving.

    After each epoch the metric ``logs[monitor]`` is compared with the best
    value seen so far (PyTorch's ``ReduceLROnPlateau`` rules)::

        improved = a < best·(1 − threshold)   mode='min', threshold_mode='rel'
                   a < best − threshold       mode='min', threshold_mode='abs'
                   a > best·(1 + threshold)   mode='max', threshold_mode='rel'
                   a > best + threshold       mode='max', threshold_mode='abs'
        if improved:  best = a;  bad = 0   else:  bad += 1
        if in cooldown:  cooldown_left −= 1;  bad = 0
        if bad > patience:
            α = max(α · factor, min_lr)   (kept if the change is below 1e-8)
            cooldown_left = cooldown;  bad = 0

    ``best`` starts at +∞ (min) or −∞ (max), so the first epoch always
    improves.  Note that, as in PyTorch, the rate drops after ``patience + 1``
    epochs without improvement (Keras drops after ``patience``).  A NaN
    metric counts as no improvement.

    Parameters
    ----------
    lr : float
        Initial learning rate, >= 0.
    monitor : str
        Key of the metric in the ``logs`` given to :meth:`on_epoch_end`.
    mode : {'auto', 'min', 'max'}
        Whether the metric should decrease (a loss) or increase (accuracy).
        ``'auto'`` takes 'max' for names containing "acc", "auc", "r2",
        "f1", "precision" or "recall" and 'min' for every other metric; the
        attribute holds the resolved mode.
    factor : float
        Multiplier of the rate at each reduction, in (0, 1).
    patience : int
        Epochs without improvement tolerated before a reduction, >= 0.
    threshold : float
        Minimum change that counts as an improvement, >= 0.
    threshold_mode : {'rel', 'abs'}
        Whether ``threshold`` is relative to ``best`` or absolute.
    cooldown : int
        Epochs after a reduction during which bad epochs are not counted.
    min_lr : float
        Lower bound of the rate, >= 0.
    per : {'epoch', 'step'}
        Accepted for a uniform interface: the metric is only known at the end
        of an epoch, so the rate changes between epochs either way.

    Attributes
    ----------
    current_lr : float
        The rate in force.
    best_ : float
        Best metric value seen.
    num_bad_epochs_ : int
        Consecutive epochs without improvement.
    """

    _MIN_CHANGE = 1e-8

    def __init__(self, lr, monitor="val_loss", mode="auto", factor=0.1, patience=10,
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0,
                 per="epoch"):
        super().__init__(lr, per)
        monitor = check_monitor(monitor)
        mode = resolve_mode(mode, monitor)
        if not isinstance(threshold_mode, str) or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        factor = check_real("factor", factor)
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.monitor = monitor
        self.mode = mode
        self.factor = factor
        self.patience = _count("patience", patience, 0)
        self.threshold = check_non_negative("threshold", threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = _count("cooldown", cooldown, 0)
        self.min_lr = check_non_negative("min_lr", min_lr)
        self.reset()

    def reset(self):
        """Forget the metric history and return to the initial rate."""
        self.current_lr = self.lr
        self.best_ = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs_ = 0
        self.cooldown_left_ = 0

    #: the best value is ±∞ until the first epoch, never NaN
    _STATE_RULES = {"current_lr": Real(0), "best_": _best_value,
                    "num_bad_epochs_": Integer(0), "cooldown_left_": Integer(0)}

    def _improved(self, a):
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return a < self.best_ * (1.0 - self.threshold)
            return a < self.best_ - self.threshold
        if self.threshold_mode == "rel":
            return a > self.best_ * (1.0 + self.threshold)
        return a > self.best_ + self.threshold

    def on_epoch_end(self, epoch, logs=None):
        """Update the rate from ``logs[monitor]``.

        Raises
        ------
        KeyError
            If ``logs`` has no ``monitor`` entry (a misspelt or absent metric
            would otherwise silently disable the schedule).
        TypeError
            If ``logs`` is not a mapping or its ``monitor`` entry not a number.
        """
        if logs is not None and not isinstance(logs, Mapping):
            raise TypeError(f"logs must be a mapping of metric names to values, got "
                            f"{type(logs).__name__}")
        if logs is None or self.monitor not in logs:
            available = sorted(logs) if logs else []
            raise KeyError(f"ReduceLROnPlateau monitors {self.monitor!r}, which is "
                           f"not among the epoch's metrics {available}")
        value = logs[self.monitor]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"the monitored metric {self.monitor!r} must be a number, got "
                            f"{type(value).__name__}")
        a = float(value)
        if self._improved(a):
            self.best_ = a
            self.num_bad_epochs_ = 0
        else:
            self.num_bad_epochs_ += 1
        if self.cooldown_left_ > 0:
            self.cooldown_left_ -= 1
            self.num_bad_epochs_ = 0
        if self.num_bad_epochs_ > self.patience:
            new_lr = max(self.current_lr * self.factor, self.min_lr)
            if self.current_lr - new_lr > self._MIN_CHANGE:
                self.current_lr = new_lr
            self.cooldown_left_ = self.cooldown
            self.num_bad_epochs_ = 0

    def check_metrics(self, metric_names):
        """Refuse a ``monitor`` that is not among ``metric_names``.

        Raises
        ------
        ValueError
            Naming the monitored metric and the available ones.
        """
        check_metric_available("ReduceLROnPlateau", self.monitor, _metric_names(metric_names))

    def _rate(self, t):
        if isinstance(t, np.ndarray):
            return np.full(t.shape, self.current_lr)
        return self.current_lr

    def _params(self):
        return {"lr": self.lr, "monitor": self.monitor, "mode": self.mode,
                "factor": self.factor, "patience": self.patience,
                "threshold": self.threshold, "threshold_mode": self.threshold_mode,
                "cooldown": self.cooldown, "min_lr": self.min_lr, "per": self.per}


def as_schedule(lr):
    """``lr`` itself if it is a :class:`Schedule`, else ``Constant(lr)``."""
    if isinstance(lr, Schedule):
        return lr
    return Constant(lr)


#: class name → schedule class, for model files
SCHEDULES = by_class_name(Schedule)
