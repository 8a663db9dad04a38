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

import numpy as np


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
        Finite-difference step h.
    max_per_array : int, optional
        Check at most this many randomly chosen entries of each array
        (all when None).
    seed : int
        Seed for choosing those entries.
    zero_tolerance : float
        Gradient norm below which an array counts as having zero gradient.

    Returns
    -------
    dict
        ``{"LayerIndex.Name.param": relative_error}``, e.g. ``"0.Dense.W"``.
    """
    if model.dtype != np.float64:
        raise TypeError("gradient checking needs a float64 model (dtype='float64')")
    generator_state = model.rng.bit_generator.state

    def objective():
        model.rng.bit_generator.state = generator_state
        return model.loss_and_gradients(X, y)

    _, analytic = objective()
    picker = np.random.default_rng(seed)
    params = model.params_
    report = {}
    for index, layer in enumerate(model.layers):
        for name, view in layer.params.items():
            offset = model._offsets[id(layer), name]
            positions = np.arange(view.size)
            if max_per_array is not None and view.size > max_per_array:
                positions = np.sort(picker.choice(view.size, max_per_array, replace=False))
            numeric = np.empty(positions.size)
            for k, position in enumerate(positions):
                i = offset + position
                saved = params[i]
                params[i] = saved + step
                plus = objective()[0]
                params[i] = saved - step
                minus = objective()[0]
                params[i] = saved
                numeric[k] = (plus - minus) / (2 * step)
            backprop = analytic[offset + positions]
            report[f"{index}.{type(layer).__name__}.{name}"] = relative_error(
                backprop, numeric, zero_tolerance)
    model.rng.bit_generator.state = generator_state
    return report


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
