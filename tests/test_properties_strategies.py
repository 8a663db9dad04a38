"""Hypothesis strategies and rules shared by the property tests (this module holds no tests)."""

import numpy as np
from hypothesis import strategies as st

#: numbers that break naive checks: NaN, ±inf, huge, tiny, negative, zero
AWKWARD_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10**30, max_value=10**30),
    st.sampled_from([0, -1, 0.0, -0.0, 1e-320, 1e308, 2**31, 2**63, float("nan")]),
    st.just(np.float64("nan")), st.just(np.int64(-3)), st.just(np.float32(0.5)),
)

#: anything at all: wrong types as well as awkward numbers
ANYTHING = st.one_of(
    AWKWARD_NUMBERS, st.none(), st.booleans(), st.text(max_size=5), st.binary(max_size=5),
    st.lists(st.integers(), max_size=3), st.just(1j), st.just(object()),
    st.just(np.zeros((2, 2))),
)


def is_count(value, minimum=0):
    """An integer (not a bool) >= minimum: what a count argument accepts."""
    return (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            and value >= minimum)


def is_real(value, minimum=None, open_min=False):
    """A finite real number (not a bool), optionally bounded below."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        return False
    value = float(value)
    if not np.isfinite(value):
        return False
    if minimum is None:
        return True
    return value > minimum if open_min else value >= minimum
