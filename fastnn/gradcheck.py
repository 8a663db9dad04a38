"""Finite-difference gradient checking.

``check_gradients`` compares the backpropagated gradient of a model's
objective (mean loss over X plus the weight penalty) with central
differences  (C(θ + h·e_i) − C(θ − h·e_i)) / 2h  computed in float64, one
parameter at a time, and reports for every parameter array the relative error

    ‖g_backprop − g_numeric‖ / max(‖g_backprop‖, ‖g_numeric‖)

of the whole array (element-wise ratios are meaningless where a gradient is
zero, as for a dead ReLU unit).  An array whose gradient is zero — both
norms below ``zero_tolerance``, as for the bias of a dense layer followed by
batch normalization — reports the absolute difference ‖g_backprop − g_numeric‖
instead, since its finite differences are pure rounding noise.  Randomness inside the forward pass (dropout)
is frozen: every evaluation restarts the model's generator from one state.
"""

import math

import numpy as np

from fastnn._validation import check_count, check_finite_number
from fastnn.model import Sequential


def _check_arguments(model, step, max_per_array, seed, zero_tolerance):
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastnn Sequential, got {type(model).__name__}")
    if model.dtype != np.float64:
        raise TypeError("gradient checking needs a float64 model (dtype='float64')")
    step = check_finite_number("step", step, minimum=0.0, open_min=True)
    if max_per_array is not None:
        max_per_array = check_count("max_per_array", max_per_array, minimum=1)
    if seed is not None:
        seed = check_count("seed", seed, minimum=0)
    zero_tolerance = check_finite_number("zero_tolerance", zero_tolerance, minimum=0.0)
    return step, max_per_array, seed, zero_tolerance


def check_gradients(model, X, y, step=1e-6, max_per_array=None, seed=0, zero_tolerance=1e-8):
    """Worst relative error of the backprop gradient, per parameter array.

    Parameters
    ----------
    model : Sequential
        A float64 model.
    X, y : arrays
        Inputs and labels/targets; X counts as the whole training set (n in
        the penalty λ/2n·Σw²).
    step : float
        Finite-difference step h, > 0.  It must change every checked
        parameter (θ + h ≠ θ in float64) and keep the objective finite.
    max_per_array : int, optional
        Check at most this many (>= 1) randomly chosen entries of each array
        (all when None).
    seed : int or None
        Seed (>= 0) for choosing those entries.
    zero_tolerance : float
        Gradient norm, >= 0, below which an array counts as having zero
        gradient.

    Returns
    -------
    dict
        ``{"LayerIndex.Name.param": relative_error}``, e.g. ``"0.Dense.W"``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument at fault, before any parameter is moved; a
        ``ValueError`` naming ``step`` if the objective is not finite at
        θ ± h.  The parameters are left as they were in every case.
    """
    step, max_per_array, seed, zero_tolerance = _check_arguments(
        model, step, max_per_array, seed, zero_tolerance)
    generator_state = model.rng.bit_generator.state

    def objective():
        model.rng.bit_generator.state = generator_state
        return model.loss_and_gradients(X, y)

    value, analytic = objective()  # validates X and y before anything moves
    if not math.isfinite(value):
        raise ValueError("the objective is not finite at the model's parameters; "
                         "finite differences need a finite objective")
    picker = np.random.default_rng(seed)
    params = model.params_
    chosen = []
    for index, layer in enumerate(model.layers):
        for name, view in layer.params.items():
            positions = np.arange(view.size)
            if max_per_array is not None and view.size > max_per_array:
                positions = np.sort(picker.choice(view.size, max_per_array, replace=False))
            at = model._offsets[id(layer), name] + positions
            values = params[at].astype(np.float64)
            # A step below the spacing of the floats at θ moves nothing and
            # would report a zero numeric gradient as a backprop error.
            if np.any(values + step == values):
                raise ValueError(f"step={step:g} is too small to change the parameters of "
                                 f"{index}.{type(layer).__name__}.{name} (largest magnitude "
                                 f"{np.abs(values).max():g})")
            chosen.append((f"{index}.{type(layer).__name__}.{name}", at))
    original = params.copy()
    try:
        # A step that overflows the objective is reported as an error below.
        with np.errstate(over="ignore", invalid="ignore"):
            report = {key: _relative_error(params, at, analytic[at], objective, step,
                                           zero_tolerance, key)
                      for key, at in chosen}
    finally:
        # every way out, an interrupt included, leaves θ and the generator as found
        params[...] = original
        model.rng.bit_generator.state = generator_state
    return report


def _relative_error(params, at, backprop, objective, step, zero_tolerance, key):
    """The error of the backprop gradient ``backprop`` of the parameters ``at``."""
    numeric = np.empty(at.size)
    for k, i in enumerate(at):
        saved = params[i]
        params[i] = saved + step
        plus = objective()[0]
        params[i] = saved - step
        minus = objective()[0]
        params[i] = saved
        numeric[k] = (plus - minus) / (2 * step)
    if not np.isfinite(numeric).all():
        raise ValueError(f"step={step:g} is too large: the objective is not finite "
                         f"within one step of the parameters of {key}")
    return relative_error(backprop, numeric, zero_tolerance)


def relative_error(computed, reference, zero_tolerance):
    """Difference of two arrays relative to the larger of their norms.

        ‖computed − reference‖ / max(‖computed‖, ‖reference‖)

    over the whole arrays: element-wise ratios are meaningless where an
    entry is zero.

    Parameters
    ----------
    computed, reference : array_like
        Arrays of one shape.
    zero_tolerance : float
        When both norms are below it (or both arrays are zero) the arrays
        count as zero and the absolute difference ‖computed − reference‖ is
        returned instead: relative to a zero array, rounding noise would
        read as a 100 % error.

    Returns
    -------
    float
    """
    computed = np.asarray(computed, dtype=float)
    reference = np.asarray(reference, dtype=float)
    scale = max(np.linalg.norm(computed), np.linalg.norm(reference))
    error = np.linalg.norm(computed - reference)
    if scale >= zero_tolerance and scale > 0:
        error /= scale
    return float(error)
