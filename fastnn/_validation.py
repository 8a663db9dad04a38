"""Input checks at the Python boundary, done once per call before any kernel."""

import collections.abc
import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype):
    """numpy float32 or float64 from a name or dtype-like; anything else is an error."""
    try:
        resolved = np.dtype(dtype)
    except Exception:  # numpy's parser raises TypeError, ValueError, even SyntaxError
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {resolved}")
    return resolved.type


# ------------------------------------------------------------------- rules
# A rule checks one value and returns it converted (an int, a float, a
# bool); a value of the wrong kind is a TypeError, one out of range a
# ValueError, both worded "<name> must be <what the rule accepts>, got
# <value>".  Classes and functions declare their arguments with rules, as a
# table (``CONSTRAINTS``, read by ``check_params``) or one at a time
# (``check``); the check_* functions below are the common cases.


class Rule:
    """What a value must be; ``rule(name, value)`` returns it checked."""

    def describe(self):
        raise NotImplementedError

    def fail(self, name, value, kind=ValueError):
        shown = type(value).__name__ if kind is TypeError and not isinstance(
            value, (numbers.Number, str, type(None))) else repr(value)
        raise kind(f"{name} must be {self.describe()}, got {shown}")


class Integer(Rule):
    """An int (not a bool) in [minimum, maximum]; either bound may be None."""

    def __init__(self, minimum=None, maximum=None):
        self.minimum, self.maximum = minimum, maximum

    def describe(self):
        if self.minimum == 1 and self.maximum is None:
            return "a positive integer"
        bounds = [f">= {self.minimum}"] if self.minimum is not None else []
        bounds += [f"<= {self.maximum}"] if self.maximum is not None else []
        return " ".join(["an integer"] + [" and ".join(bounds)] if bounds else ["an integer"])

    def __call__(self, name, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            self.fail(name, value, TypeError)
        if ((self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)):
            self.fail(name, value)
        return int(value)


class Real(Rule):
    """A finite real number (not a bool), optionally bounded; open bounds exclude the end."""

    def __init__(self, minimum=None, maximum=None, open_min=False, open_max=False):
        self.minimum, self.maximum = minimum, maximum
        self.open_min, self.open_max = open_min, open_max

    def describe(self):
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.open_min else '>='} {self.minimum}")
        if self.maximum is not None:
            bounds.append(f"{'<' if self.open_max else '<='} {self.maximum}")
        return "a finite number" + (" " + " and ".join(bounds) if bounds else "")

    def __call__(self, name, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            self.fail(name, value, TypeError)
        value = float(value)
        low, high = self.minimum, self.maximum
        if (not np.isfinite(value)
                or (low is not None and (value < low or (self.open_min and value == low)))
                or (high is not None and (value > high or (self.open_max and value == high)))):
            self.fail(name, value)
        return value


class Flag(Rule):
    """True or False (NumPy's booleans too); a truthy 1 or "no" is not read as True."""

    def describe(self):
        return "True or False"

    def __call__(self, name, value):
        if not isinstance(value, (bool, np.bool_)):
            self.fail(name, value, TypeError)
        return bool(value)


class OneOf(Rule):
    """One of a few given values (strings, usually)."""

    def __init__(self, *choices):
        self.choices = choices

    def describe(self):
        return "one of " + ", ".join(repr(choice) for choice in self.choices)

    def __call__(self, name, value):
        if not any(type(value) is type(choice) and value == choice for choice in self.choices):
            self.fail(name, value)
        return value


class Optional(Rule):
    """None, or what ``rule`` accepts."""

    def __init__(self, rule):
        self.rule = rule

    def describe(self):
        return f"None or {self.rule.describe()}"

    def __call__(self, name, value):
        return None if value is None else self.rule(name, value)


def check(name, value, rule):
    """``value`` checked by ``rule`` (see Rule)."""
    return rule(name, value)


def check_params(constraints, values):
    """Every entry of ``values`` checked by the rule ``constraints`` gives its name."""
    return {name: constraints[name](name, value) for name, value in values.items()}


def check_positive_int(name, value):
    return Integer(1)(name, value)


def check_int(name, value, minimum=0, maximum=None):
    """``value`` as an int in [minimum, maximum]; bool and integral floats are refused."""
    return Integer(minimum, maximum)(name, value)


def check_flag(name, value):
    """``value`` as a bool; a truthy non-bool (1, "no") is refused, not read as True."""
    return Flag()(name, value)


def check_callable(name, value):
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r}")
    return value


def check_names(name, values, choices, what):
    """``values`` as a tuple of strings, each one of ``choices``.

    A lone string is refused rather than read as a sequence of one-letter
    names.  ``what`` is the singular noun the messages use ("mode").
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, collections.abc.Iterable):
        raise TypeError(f"{name} must be a sequence of {what} names, got {values!r}")
    values = tuple(values)
    unknown = [value for value in values if not isinstance(value, str) or value not in choices]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown} in {name}; choose from "
                         f"{', '.join(choices)}")
    return values


def check_finite_number(name, value, minimum=None, maximum=None, open_min=False):
    """A real number, optionally bounded; NaN and ±inf are refused."""
    return Real(minimum, maximum, open_min)(name, value)


def check_gradient_noise(noise):
    """``gradient_noise``: None, η, or (η, γ), as (η, γ) with γ = 0.55 by default."""
    if noise is None:
        return None
    if np.isscalar(noise):
        eta, gamma = noise, 0.55
    else:
        try:
            eta, gamma = noise
        except (TypeError, ValueError):
            raise ValueError(f"gradient_noise must be η or a pair (η, γ), got {noise!r}") from None
    return (Real(0, open_min=True)("gradient_noise η", eta),
            Real(0)("gradient_noise γ", gamma))


def check_real(name, value):
    """``value`` as a finite float."""
    return Real()(name, value)


def check_non_negative(name, value):
    """``value`` as a finite float >= 0."""
    return Real(0)(name, value)


def _numeric_array(name, values):
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def check_real_array(name, values, allow_inf=False):
    """``values`` as a new float64 array; NaN (and ±inf unless allowed) are refused."""
    try:
        array = _numeric_array(name, values)
    except ValueError as error:  # ragged nesting
        raise ValueError(f"{name} must be a rectangular array of numbers ({error})") from None
    array = np.array(array, dtype=np.float64)
    if np.isnan(array).any() or not (allow_inf or all_finite(array)):
        raise ValueError(f"{name} must be {'free of NaN' if allow_inf else 'finite'}, "
                         f"got {array}")
    return array


def check_vector(name, values):
    """``values`` as a new finite float64 vector of at least one entry."""
    vector = check_real_array(name, values)
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {vector.shape}")
    return vector


def check_features(X, dtype, n_features):
    """X as a C-contiguous (n_samples, n_features) array of ``dtype``.

    Integer and other float inputs are converted (a copy); non-contiguous
    arrays are copied.  Empty input, a wrong width (unless ``n_features`` is
    None: any) and NaN/Inf are errors.
    """
    X = _numeric_array("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is empty: it has no samples")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the network expects {n_features}")
    return as_finite("X", X, dtype)


def all_finite(array):
    """True if no element is NaN or ±inf.

    A sum is finite exactly when no term is NaN or infinite, unless finite
    terms overflow it; only then is the element-wise test (twice as slow,
    and it allocates a boolean copy) needed.
    """
    return bool(np.isfinite(array.sum())) or bool(np.isfinite(array).all())


def as_finite(name, array, dtype):
    """``array`` as a C-contiguous array of ``dtype`` with no NaN or ±∞.

    A finite value too large for ``dtype`` (1e300 in float32) is named as
    such rather than as the ∞ the conversion would make of it.
    """
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(array, dtype=dtype)
    if not all_finite(converted):
        if array.dtype.kind in "biu" or all_finite(array):
            raise ValueError(f"{name} holds values beyond {np.dtype(dtype).name}'s range "
                             f"(largest magnitude {np.abs(array).max():g})")
        raise ValueError(f"{name} contains NaN or infinite values")
    return converted


def check_targets(y, n_samples, n_outputs, dtype, regression=False):
    """Split y into (labels, targets): exactly one of them is None.

    1-D y holds integer class labels in [0, n_outputs) (in {0, 1} for a single
    output) — except for a single-output network with a squared-error loss
    (``regression``), where it holds the output's values; 2-D y holds one
    target row of n_outputs values per sample.
    """
    y = _numeric_array("y", y)
    if y.shape[:1] != (n_samples,):
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0] if y.ndim else 0}")
    if y.ndim == 1 and regression and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim == 1:
        if not all_finite(y):
            raise ValueError("y contains NaN or infinite values")
        labels = y.astype(np.int64)
        if y.dtype.kind == "f" and not np.array_equal(labels, y):
            raise ValueError("1-D y must hold integer class labels; got non-integral values")
        n_classes = 2 if n_outputs == 1 else n_outputs
        bad = (labels < 0) | (labels >= n_classes)
        if bad.any():
            raise ValueError(
                f"labels must lie in [0, {n_classes - 1}] for a network with "
                f"{n_outputs} output(s); found {labels[bad][0]}"
            )
        return np.ascontiguousarray(labels), None
    if y.ndim == 2:
        if y.shape[1] != n_outputs:
            raise ValueError(f"y has {y.shape[1]} columns, the network has {n_outputs} outputs")
        return None, as_finite("y", y, dtype)
    raise ValueError(f"y must be 1-D labels or 2-D targets, got shape {y.shape}")


def one_hot(labels, n_outputs, dtype):
    """Target rows for integer labels (a single column of labels for one output)."""
    if n_outputs == 1:
        return labels.astype(dtype).reshape(-1, 1)
    targets = np.zeros((labels.shape[0], n_outputs), dtype=dtype)
    targets[np.arange(labels.shape[0]), labels] = 1
    return targets


# ------------------------------------------------------------ counts, flags, metrics
# Rules for callbacks, schedules, data loading and the command line.

#: the same rule under the names the callbacks, schedules and command line use
check_count = check_int
check_bool = check_flag


def check_stream(name, stream):
    """A writable text stream: something with ``write`` and ``flush``."""
    if not (callable(getattr(stream, "write", None)) and callable(getattr(stream, "flush", None))):
        raise TypeError(f"{name} must be a writable stream, got {type(stream).__name__}")
    return stream


#: parts of metric names for which larger is better (Keras's rule for mode="auto",
#: which looks for "acc", widened to the usual scores); every other metric is a loss
LARGER_IS_BETTER = ("acc", "auc", "r2", "f1", "precision", "recall")


def check_monitor(monitor):
    """The name of a monitored metric: a non-empty string."""
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a metric name (a string), got {type(monitor).__name__}")
    if not monitor:
        raise ValueError("monitor must be a non-empty metric name, got ''")
    return monitor


def resolve_mode(mode, monitor):
    """'min' or 'max' for ``mode``; 'auto' decides by the name of ``monitor``."""
    mode = OneOf("auto", "min", "max")("mode", mode)
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(part in name for part in LARGER_IS_BETTER) else "min"


def check_metric_available(owner, monitor, metric_names):
    """Refuse to watch a metric that the epoch logs will not hold."""
    if monitor not in metric_names:
        raise ValueError(f"{owner} monitors {monitor!r}, which training does not report; "
                         f"the metrics are {sorted(metric_names)}")
