"""Initializers: each distribution's moments and support, and seeding."""

import numpy as np
import pytest

from fastnn import initializers

FAN_IN, FAN_OUT = 400, 300
# (name, expected variance, uniform half-width or None)
CASES = [
    ("normal", 1.0, None),
    ("scaled_normal", 1.0 / FAN_IN, None),
    ("glorot_uniform", 2.0 / (FAN_IN + FAN_OUT), np.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    ("glorot_normal", 2.0 / (FAN_IN + FAN_OUT), None),
    ("he_normal", 2.0 / FAN_IN, None),
    ("he_uniform", 2.0 / FAN_IN, np.sqrt(6.0 / FAN_IN)),
]


@pytest.mark.parametrize("name, variance, half_width", CASES)
def test_moments_and_support(name, variance, half_width):
    w = initializers.get(name)(np.random.default_rng(0), (FAN_IN, FAN_OUT), FAN_IN, FAN_OUT)
    n = w.size
    assert w.shape == (FAN_IN, FAN_OUT)
    assert abs(w.mean()) < 5 * np.sqrt(variance / n)
    # the sample variance's standard error is at most √(2/n)·σ² for these distributions
    assert abs(w.var() - variance) < 5 * np.sqrt(2.0 / n) * variance
    if half_width is not None:
        assert np.abs(w).max() <= half_width
        assert np.abs(w).max() > 0.99 * half_width


def test_zeros_and_custom_callable():
    assert not initializers.get("zeros")(None, (3, 2), 3, 2).any()
    custom = initializers.get(lambda rng, shape, fan_in, fan_out: np.full(shape, 0.5))
    assert (custom(None, (2,), 1, 1) == 0.5).all()


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown initializer 'gaussian'"):
        initializers.get("gaussian")
