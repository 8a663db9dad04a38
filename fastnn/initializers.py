"""Weight initializers.

Every initializer draws from the model's seeded ``numpy.random.Generator`` so
that the same seed gives bit-identical weights.  ``fan_in`` and ``fan_out`` are
the input and output widths of a dense layer with weights of shape
``(fan_in, fan_out)``.

=================  ==========================================================
name               distribution
=================  ==========================================================
``normal``         N(0, 1) — the "large" initialization of Nielsen, ch. 3
``scaled_normal``  N(0, 1/fan_in) — Nielsen's ``network2`` default
``glorot_uniform`` U(−a, a), a = √(6 / (fan_in + fan_out))  (Xavier)
``glorot_normal``  N(0, 2 / (fan_in + fan_out))
``he_normal``      N(0, 2 / fan_in)  (Kaiming, for ReLU)
``he_uniform``     U(−a, a), a = √(6 / fan_in)
``zeros``          0
=================  ==========================================================
"""

import numpy as np


def normal(rng, shape, fan_in, fan_out):
    return rng.standard_normal(shape)


def scaled_normal(rng, shape, fan_in, fan_out):
    return rng.standard_normal(shape) / np.sqrt(fan_in)


def glorot_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def glorot_normal(rng, shape, fan_in, fan_out):
    return rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))


def he_normal(rng, shape, fan_in, fan_out):
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


def he_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape)


def zeros(rng, shape, fan_in, fan_out):
    return np.zeros(shape)


INITIALIZERS = {
    "normal": normal,
    "scaled_normal": scaled_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "zeros": zeros,
}


def get(init):
    """Return the initializer named ``init`` (or ``init`` itself if callable).

    A callable takes ``(rng, shape, fan_in, fan_out)`` and returns an array.
    """
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown initializer {init!r}; choose one of {sorted(INITIALIZERS)}"
        ) from None


def name_of(name, init):
    """The registered name of the initializer function ``init``.

    ``name`` is the argument it was given as, for the message when ``init``
    is a function of the user's own, which has no name a file could record.
    """
    for key, function in INITIALIZERS.items():
        if function is init:
            return key
    raise ValueError(f"{name} is the custom function {init!r}; a model file records "
                     f"initializers by name, one of {sorted(INITIALIZERS)} (save_weights "
                     "keeps the weights of any network)")
