"""Problem descriptions: :class:`Constraint`, :class:`Problem` and HS071."""

import collections.abc
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from fastnn._validation import (check_callable, check_finite_number, check_real_array,
                                check_vector)


@dataclass(frozen=True)
class Constraint:
    """A constraint ``lb ≤ fun(x) ≤ ub`` with its derivatives.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> array (m,)``.
    jac : callable
        ``jac(x) -> array (m, n)``, the Jacobian of ``fun``.
    hess : callable
        ``hess(x, v) -> array (n, n)``: ``Σ_i v_i ∇²fun_i(x)``, the form
        ``scipy.optimize.NonlinearConstraint`` expects.
    lb, ub : float or array_like
        Lower and upper bounds, broadcast to (m,); equal for an equality,
        ``±np.inf`` for a one-sided inequality.
    name : str
        Label used in reports; :class:`Problem` names unnamed constraints
        ``c0``, ``c1``, ... by position.

    Raises
    ------
    TypeError
        If fun, jac or hess is not callable, lb or ub are not numbers, or
        name is not a str.
    ValueError
        If lb or ub contain NaN.
    """

    fun: Callable
    jac: Callable
    hess: Callable
    lb: object = -np.inf
    ub: object = np.inf
    name: str = ""

    def __post_init__(self):
        for label in ("fun", "jac", "hess"):
            check_callable(f"constraint {label}", getattr(self, label))
        for label in ("lb", "ub"):
            check_real_array(f"constraint {label}", getattr(self, label), allow_inf=True)
        _check_name("constraint name", self.name)


@dataclass(frozen=True)
class Problem:
    """A smooth constrained minimisation problem with analytic derivatives.

    Parameters
    ----------
    fun : callable
        Objective ``fun(x) -> float``.
    grad : callable
        Its gradient, ``grad(x) -> array (n,)``.
    hess : callable
        Its Hessian, ``hess(x) -> array (n, n)``.
    x0 : array_like, shape (n,)
        Starting point.
    constraints : sequence of Constraint
        General constraints.
    bounds : (lower, upper) or None
        Box bounds, each a float or an array of shape (n,); None for no box.
    name : str
        Label used in reports.
    x_star : array_like, optional
        Known minimiser, for error reports.
    f_star : float, optional
        Known minimum value, for error reports.

    Notes
    -----
    All callables should accept complex arrays (avoid ``abs``, ``float()``
    and in-place float buffers) if the complex-step mode or complex-step
    derivative checks are to be used.

    Raises
    ------
    ValueError
        If x0 is not a non-empty vector, the bounds are not a pair, do not
        broadcast to x0's shape or cross, constraint names repeat, or x_star
        has the wrong length; if x0, x_star or f_star is not finite or a
        bound is NaN.
    TypeError
        If fun, grad or hess is not callable, name is not a str,
        constraints is not a sequence, or x0, x_star, f_star or the bounds
        are not numbers.
    """

    fun: Callable
    grad: Callable
    hess: Callable
    x0: object
    constraints: tuple = ()
    bounds: Optional[tuple] = None
    name: str = "problem"
    x_star: Optional[object] = None
    f_star: Optional[float] = None

    def __post_init__(self):
        for label in ("fun", "grad", "hess"):
            check_callable(label, getattr(self, label))
        _check_name("name", self.name)
        x0 = _frozen(check_vector("x0", self.x0))
        object.__setattr__(self, "x0", x0)
        object.__setattr__(self, "constraints", _named(self.constraints))
        if self.bounds is not None:
            object.__setattr__(self, "bounds", _box(self.bounds, x0.size))
        if self.x_star is not None:
            x_star = _frozen(check_real_array("x_star", self.x_star))
            if x_star.shape != x0.shape:
                raise ValueError(f"x_star has shape {x_star.shape}, x0 has {x0.shape}")
            object.__setattr__(self, "x_star", x_star)
        if self.f_star is not None:
            object.__setattr__(self, "f_star", check_finite_number("f_star", self.f_star))

    @property
    def n(self):
        """Number of variables."""
        return self.x0.size

    def violation(self, x, values=None):
        """Largest violation of any constraint or bound at x (0 if feasible).

        Parameters
        ----------
        x : array_like, shape (n,)
        values : sequence of arrays, optional
            The constraint functions' values at x, if already known.
        """
        x = np.asarray(x, dtype=float)
        if values is None:
            values = [constraint.fun(x) for constraint in self.constraints]
        worst = 0.0
        for constraint, value in zip(self.constraints, values):
            worst = max(worst, _excess(np.atleast_1d(value), constraint.lb, constraint.ub))
        if self.bounds is not None:
            worst = max(worst, _excess(x, *self.bounds))
        return worst


def check_problem(problem):
    """``problem`` itself if it is a :class:`Problem`; a TypeError otherwise."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {problem!r}")
    return problem


def _check_name(label, name):
    if not isinstance(name, str):
        raise TypeError(f"{label} must be a str, got {name!r}")


def _named(constraints):
    """The constraints, unnamed ones named by position; names must be unique."""
    if isinstance(constraints, (str, Constraint)) or not isinstance(constraints,
                                                                   collections.abc.Iterable):
        raise TypeError(f"constraints must be a sequence of Constraint, got {constraints!r}")
    named = []
    for index, constraint in enumerate(constraints):
        if not isinstance(constraint, Constraint):
            raise ValueError(f"constraints must be Constraint instances, got {constraint!r}")
        named.append(constraint if constraint.name else replace(constraint, name=f"c{index}"))
    names = [constraint.name for constraint in named]
    if len(set(names)) != len(names):
        raise ValueError(f"constraint names must be unique, got {names}")
    return tuple(named)


def _frozen(array):
    array.flags.writeable = False
    return array


def _box(bounds, n):
    """(lower, upper) as read-only float arrays of shape (n,)."""
    try:
        lower, upper = bounds
    except (TypeError, ValueError):
        raise ValueError("bounds must be a pair (lower, upper)") from None
    arrays = []
    for label, side in (("lower", lower), ("upper", upper)):
        side = check_real_array(f"{label} bounds", side, allow_inf=True)
        if side.ndim > 1 or (side.ndim == 1 and side.size != n):
            raise ValueError(f"{label} bounds have shape {side.shape}, expected ({n},) "
                             f"or a scalar")
        arrays.append(_frozen(np.broadcast_to(side, (n,)).copy()))
    if np.any(arrays[0] > arrays[1]):
        raise ValueError("lower bounds exceed upper bounds")
    return tuple(arrays)


def _excess(value, lb, ub):
    below = np.asarray(lb, dtype=float) - value
    above = value - np.asarray(ub, dtype=float)
    return float(np.max(np.maximum(np.maximum(below, above), 0.0), initial=0.0))


# --------------------------------------------------------------------------
# HS071
# --------------------------------------------------------------------------

def _hs071_fun(x):
    return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]


def _hs071_grad(x):
    x1, x2, x3, x4 = x
    return np.array([x4 * (2 * x1 + x2 + x3), x1 * x4, x1 * x4 + 1, x1 * (x1 + x2 + x3)])


def _hs071_hess(x):
    x1, x2, x3, x4 = x
    return np.array([[2 * x4, x4, x4, 2 * x1 + x2 + x3],
                     [x4, 0, 0, x1],
                     [x4, 0, 0, x1],
                     [2 * x1 + x2 + x3, x1, x1, 0]])


def _product(x):
    return np.array([x[0] * x[1] * x[2] * x[3]])


def _product_jac(x):
    x1, x2, x3, x4 = x
    return np.array([[x2 * x3 * x4, x1 * x3 * x4, x1 * x2 * x4, x1 * x2 * x3]])


def _product_hess(x, v):
    x1, x2, x3, x4 = x
    return v[0] * np.array([[0, x3 * x4, x2 * x4, x2 * x3],
                            [x3 * x4, 0, x1 * x4, x1 * x3],
                            [x2 * x4, x1 * x4, 0, x1 * x2],
                            [x2 * x3, x1 * x3, x1 * x2, 0]])


def _squares(x):
    return np.array([np.sum(np.asarray(x) ** 2)])


def _squares_jac(x):
    return 2 * np.asarray(x)[np.newaxis, :]


def _squares_hess(x, v):
    return 2 * v[0] * np.eye(np.size(x))


def hs071():
    """Hock–Schittkowski problem 71 as a :class:`Problem`.

    Returns
    -------
    Problem
        Objective x1·x4·(x1 + x2 + x3) + x3, constraints x1·x2·x3·x4 ≥ 25
        ("product") and Σ xi² = 40 ("squares"), bounds 1 ≤ xi ≤ 5, start
        (1, 5, 5, 1), and the optimum f* = 17.0140172891563 at
        x* = (1, 4.74299963726, 3.82114998418, 1.37940829317).
    """
    return Problem(
        fun=_hs071_fun, grad=_hs071_grad, hess=_hs071_hess,
        x0=[1.0, 5.0, 5.0, 1.0],
        constraints=(
            Constraint(_product, _product_jac, _product_hess, lb=25.0, ub=np.inf,
                       name="product"),
            Constraint(_squares, _squares_jac, _squares_hess, lb=40.0, ub=40.0,
                       name="squares"),
        ),
        bounds=(1.0, 5.0),
        name="HS071",
        x_star=[1.0, 4.74299963726, 3.82114998418, 1.37940829317],
        f_star=17.0140172891563,
    )


#: Hock–Schittkowski problem 71, ready to solve.
HS071 = hs071()
