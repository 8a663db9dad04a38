"""Central and complex-step differences of scalar and vector functions.

Both refuse a ``fun`` that is not callable (TypeError), an ``x`` that is not
a non-empty finite vector of numbers and a step that is not a number > 0
(TypeError for a non-number, ValueError otherwise), before any call of
``fun``.
"""

import numpy as np

from fastnn._validation import check_callable, check_finite_number, check_vector

_EPS = np.finfo(float).eps


def central_difference(fun, x, rel_step=None):
    """Central-difference derivative of a scalar or vector function.

    Parameters
    ----------
    fun : callable
        ``fun(x)`` returning a float or an array of shape (m,).
    x : array_like, shape (n,)
        Point of evaluation.
    rel_step : float, optional
        Step relative to max(1, |x_k|); default ε^(1/3) ≈ 6e-6, which balances
        the O(h²) truncation error against the O(ε/h) rounding error.

    Returns
    -------
    ndarray
        Shape (n,) for a scalar function (the gradient), (m, n) otherwise
        (the Jacobian).  Costs 2n calls of ``fun``.

    Raises
    ------
    TypeError, ValueError
        For a bad ``fun``, ``x`` or ``rel_step``, as the module docstring says.
    """
    x, rel_step = _checked(fun, x, "rel_step", _EPS ** (1 / 3) if rel_step is None else rel_step)
    columns = []
    for k in range(x.size):
        forward, backward = x.copy(), x.copy()
        forward[k] += rel_step * max(1.0, abs(x[k]))
        backward[k] -= rel_step * max(1.0, abs(x[k]))
        # the steps actually taken, which rounding makes differ from h
        width = forward[k] - backward[k]
        columns.append((np.asarray(fun(forward)) - np.asarray(fun(backward))) / width)
    return np.stack(columns, axis=-1)


def complex_step(fun, x, step=1e-30):
    """Complex-step derivative ``Im fun(x + i·h·e_k) / h`` of a function.

    Free of subtractive cancellation, so exact to rounding for any tiny h.

    Parameters
    ----------
    fun : callable
        ``fun(x)`` returning a float or an array of shape (m,); it must be
        analytic and written to accept complex input.
    x : array_like, shape (n,)
        Point of evaluation.
    step : float
        Imaginary step h.

    Returns
    -------
    ndarray
        Shape (n,) for a scalar function, (m, n) otherwise.  Costs n calls.

    Raises
    ------
    TypeError, ValueError
        For a bad ``fun``, ``x`` or ``step``, as the module docstring says.
    """
    x, step = _checked(fun, x, "step", step)
    columns = []
    for k in range(x.size):
        shifted = x.astype(complex)
        shifted[k] += 1j * step
        columns.append(np.imag(np.asarray(fun(shifted))) / step)
    return np.stack(columns, axis=-1)


def _checked(fun, x, step_name, step):
    """(x as a float vector, step) once fun, x and the step are known to be valid."""
    check_callable("fun", fun)
    return check_vector("x", x), check_finite_number(step_name, step, minimum=0, open_min=True)
