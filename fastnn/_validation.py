"""Input checks at the Python boundary, done once per call before any kernel."""

import collections.abc
import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype):
    """numpy float32 or float64 from a name or dtype-like; anything else is an error."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {resolved}")
    return resolved.type


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_int(name, value, minimum):
    """``value`` as an int >= ``minimum``; bool and integral floats are refused.

    A wrong type is a TypeError, a value below the minimum a ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_flag(name, value):
    """``value`` as a bool; a truthy non-bool (1, "no") is refused, not read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


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
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (open_min and value == minimum)):
        bound = ">" if open_min else ">="
        raise ValueError(f"{name} must be {bound} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(name, value):
    """``value`` as a finite float; a non-number's TypeError names its type.

    The hyper-parameter form of :func:`check_finite_number`, for optimizers
    and schedules, whose messages show the type of a wrong argument (a
    string or None) rather than its repr.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return check_finite_number(name, value)


def check_non_negative(name, value):
    """``value`` as a finite float >= 0 (messages as :func:`check_real`)."""
    return check_finite_number(name, check_real(name, value), minimum=0)


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
    arrays are copied.  Empty input, a wrong width and NaN/Inf are errors.
    """
    X = _numeric_array("X", X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is empty: it has no samples")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the network expects {n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if not all_finite(X):
        raise ValueError("X contains NaN or infinite values")
    return X


def all_finite(array):
    """True if no element is NaN or ±inf.

    A sum is finite exactly when no term is NaN or infinite, unless finite
    terms overflow it; only then is the element-wise test (twice as slow,
    and it allocates a boolean copy) needed.
    """
    return bool(np.isfinite(array.sum())) or bool(np.isfinite(array).all())


def check_targets(y, n_samples, n_outputs, dtype):
    """Split y into (labels, targets): exactly one of them is None.

    1-D y holds integer class labels in [0, n_outputs) (in {0, 1} for a single
    output); 2-D y holds one target row of n_outputs values per sample.
    """
    y = _numeric_array("y", y)
    if y.shape[:1] != (n_samples,):
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0] if y.ndim else 0}")
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
        targets = np.ascontiguousarray(y, dtype=dtype)
        if not all_finite(targets):
            raise ValueError("y contains NaN or infinite values")
        return None, targets
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

def check_count(name, value, minimum=0, maximum=None):
    """``value`` as an int in [minimum, maximum]; a non-integer is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_bool(name, value):
    """``value`` if it is True or False (numpy booleans included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


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
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(part in name for part in LARGER_IS_BETTER) else "min"


def check_metric_available(owner, monitor, metric_names):
    """Refuse to watch a metric that the epoch logs will not hold."""
    if monitor not in metric_names:
        raise ValueError(f"{owner} monitors {monitor!r}, which training does not report; "
                         f"the metrics are {sorted(metric_names)}")
