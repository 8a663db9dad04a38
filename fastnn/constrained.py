"""Constrained minimisation with trust-constr: analytic versus finite-difference derivatives.

The exercise solves Hock–Schittkowski problem 71 (HS071)

    minimize    x1·x4·(x1 + x2 + x3) + x3
    subject to  x1·x2·x3·x4 ≥ 25
                x1² + x2² + x3² + x4² = 40
                1 ≤ xi ≤ 5 for every i
    start       x0 = (1, 5, 5, 1)

with ``scipy.optimize.minimize(method='trust-constr')``, once per way of
supplying derivatives, and compares accuracy, cost in real function calls and
time.  Its optimum (from the KKT equations at high precision) is
f* = 17.0140172891563 at x* = (1, 4.74299963726, 3.82114998418, 1.37940829317),
with x1 ≥ 1, the product constraint and the sum of squares active.

Derivative modes (``MODES``); "first derivatives" means the objective
gradient and the constraint Jacobians, "Hessians" the objective Hessian and
the constraint Hessians contracted with multipliers, ``hess(x, v)``:

================  ===================================  =================================
mode              first derivatives                    Hessians
================  ===================================  =================================
analytic          analytic                             analytic
fd-hess-2point    analytic                             forward differences of the
                                                       analytic first derivatives
                                                       (scipy '2-point')
fd-hess-3point    analytic                             central differences of them
                                                       (scipy '3-point')
fd-hess-cs        analytic                             complex-step differences of them
                                                       (scipy 'cs')
bfgs              analytic                             BFGS updates
sr1               analytic                             SR1 updates
fd-bfgs           forward differences of f and c       BFGS updates
                  (scipy '2-point')
fd-sr1            forward differences of f and c       SR1 updates
                  (scipy '2-point')
fd-all            central differences of f and c       forward differences of those
                  (``central_difference``, passed to   central differences
                  scipy as a callable)                 (scipy '2-point')
================  ===================================  =================================

``fd-all`` is the literal "everything by finite differences": scipy refuses
``jac='2-point'`` together with ``hess='2-point'``, so the first derivatives
are handed to it as a callable that itself differences the objective and the
constraint functions; scipy then differences that callable for the Hessians.
No analytic derivative is called in that mode.

Call counts are honest: every user callable (objective, gradient, Hessian, and
each constraint's function, Jacobian and Hessian) is wrapped in a counter, so
the calls made inside finite-difference schemes, which scipy's ``nfev`` omits
or reports as Jacobian evaluations of zero, are counted where they happen.

Accuracy.  trust-constr's interior-point method adds a barrier term μ·Σ ln(s)
for the inequalities and lowers μ (by a factor of 5) after each barrier
subproblem; it stops as soon as the optimality ‖∇L‖∞ and the constraint
violation are below ``gtol``.  With scipy's defaults (gtol = 1e-8) that
happens on HS071 while μ is still 6.4e-6, and f is 1.6e-5 above f*
(|f − f*|/f* ≈ 1e-6).  fastnn passes ``gtol = 1e-16`` and
``barrier_tol = 1e-10`` (``FASTNN_OPTIONS``): the optimality test then never
passes, and the run ends on the other test, trust radius < ``xtol`` with
μ < 1e-10, which bounds the barrier's bias on f to ~1e-10.  Because scipy
also compares the final constraint violation with ``gtol`` (status 4), a
violation at rounding level (one ulp of 40 is 7e-15) would count as a
failure; fastnn judges feasibility with its own ``feasibility_tol``
(default: the larger of gtol and 1e-10) instead.  The tighter stop costs
two to four times scipy's iterations.

The quasi-Newton trap.  With an analytic gradient, BFGS Hessians and
``Bounds(keep_feasible=True)``, trust-constr started from x0, which lies on the
bounds, stalls at f ≈ 17.445: its first BFGS update of the sum-of-squares
constraint's Hessian is of order 1e13 (the true Hessian is 2·v·I), BFGS only
corrects curvature along the steps it takes, and those steps are now ~1e-14
long.  The iterate stops moving, the objective gradient stops changing (BFGS may
skip updates with a ``delta_grad == 0`` warning, which healthy runs raise
too), and trust-constr would spend all of ``maxiter`` there.
fastnn (1) keeps bounds soft by default (``keep_feasible=False``, scipy's
default too), which avoids the trap; (2) records every warning scipy raises
in ``Result.warnings``; and (3) watches the iterates: when for
``stall_window`` (40) iterations the barrier parameter stays put, the trust
radius does not shrink, the optimality does not halve and x moves less than
1e-6 relative, it stops the run, records the stall and restarts from the
stalled point with fresh quasi-Newton approximations (up to ``restarts``
times).  ``Result.stalls`` and ``Result.restarts`` report what happened; a
stall that survives the restarts makes ``Result.success`` False.  In all
other runs measured on HS071 (every mode, both option sets, from x0 and from
random starts) the stall test never fired: their longest stretches without
progress move x by 1e-5 relative or more.
"""

import argparse
import csv
import math
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np
from scipy.optimize import BFGS, SR1, Bounds, NonlinearConstraint, minimize

from fastnn._files import atomic_write

__all__ = [
    "MODES", "TOLERANCES", "FASTNN_OPTIONS", "Constraint", "Problem", "Result",
    "LocalMinimum", "MultistartReport", "HS071", "hs071", "solve", "compare",
    "table_rows", "format_table", "format_counts", "write_csv", "check_derivatives",
    "format_derivative_check", "central_difference", "complex_step",
    "multistart", "main",
]

_EPS = np.finfo(float).eps

# (first-derivative source, Hessian source) of every mode; the module
# docstring's table explains each.
_MODE_SOURCES = {
    "analytic": ("analytic", "analytic"),
    "fd-hess-2point": ("analytic", "2-point"),
    "fd-hess-3point": ("analytic", "3-point"),
    "fd-hess-cs": ("analytic", "cs"),
    "bfgs": ("analytic", "bfgs"),
    "sr1": ("analytic", "sr1"),
    "fd-bfgs": ("2-point", "bfgs"),
    "fd-sr1": ("2-point", "sr1"),
    "fd-all": ("central", "2-point"),
}

#: Names of the derivative modes accepted by :func:`solve`, in table order.
MODES = tuple(_MODE_SOURCES)

#: Relative objective error |f − f*|/|f*| every mode reaches on HS071 from x0
#: with fastnn's options; the tests hold each mode to it.
#:
#: * 1e-10 where first derivatives are exact and Hessians exact or differences
#:   of exact first derivatives: the steps converge quadratically, so what
#:   remains is the barrier bias, about (active inequalities)·μ ≤ 2·1e-10
#:   absolute at the final μ < barrier_tol, i.e. ~1e-11 relative.
#: * 1e-9 for quasi-Newton Hessians and for differenced first derivatives:
#:   steps converge superlinearly at best, or on noisy derivatives, and the
#:   run ends when the trust radius falls below xtol = 1e-8.  With forward
#:   differences (error ~√ε ≈ 1e-8) x ends up to ~2e-8 from x* and ~2e-9
#:   inside the active inequalities, which their multipliers (≈1.09 for
#:   x1 ≥ 1, ≈0.55 for the product) turn into a first-order objective error
#:   of ~4e-9 absolute, 2.5e-10 relative; 1e-9 leaves a factor of 4.
TOLERANCES = {
    "analytic": 1e-10,
    "fd-hess-2point": 1e-10,
    "fd-hess-3point": 1e-10,
    "fd-hess-cs": 1e-10,
    "bfgs": 1e-9,
    "sr1": 1e-9,
    "fd-bfgs": 1e-9,
    "fd-sr1": 1e-9,
    "fd-all": 1e-9,
}

#: trust-constr options fastnn passes unless told otherwise.  trust-constr
#: stops when the optimality (‖∇L‖∞) drops below gtol, which on HS071 happens
#: while the barrier parameter μ is still 6.4e-6, leaving f 1.6e-5 above f*.
#: gtol = 1e-16 is below the rounding level of ‖∇L‖∞, so that test never
#: passes and the run ends on the other one: trust radius < xtol and
#: μ < barrier_tol = 1e-10, which bounds the barrier bias to ~1e-10.
FASTNN_OPTIONS = {"gtol": 1e-16, "barrier_tol": 1e-10}

_OPTION_SETS = {"fastnn": FASTNN_OPTIONS, "scipy": {}}

_TRUST_CONSTR_OPTIONS = frozenset({
    "xtol", "gtol", "barrier_tol", "sparse_jacobian", "maxiter", "verbose",
    "finite_diff_rel_step", "initial_constr_penalty", "initial_tr_radius",
    "initial_barrier_parameter", "initial_barrier_tolerance",
    "factorization_method", "disp", "workers",
})


# --------------------------------------------------------------------------
# problem description
# --------------------------------------------------------------------------

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
    """

    fun: Callable
    jac: Callable
    hess: Callable
    lb: object = -np.inf
    ub: object = np.inf
    name: str = ""


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
        has the wrong length.
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
        x0 = _frozen(np.array(self.x0, dtype=float))
        if x0.ndim != 1 or x0.size == 0:
            raise ValueError(f"x0 must be a non-empty 1-D array, got shape {x0.shape}")
        object.__setattr__(self, "x0", x0)
        object.__setattr__(self, "constraints", _named(self.constraints))
        if self.bounds is not None:
            object.__setattr__(self, "bounds", _box(self.bounds, x0.size))
        if self.x_star is not None:
            x_star = _frozen(np.array(self.x_star, dtype=float))
            if x_star.shape != x0.shape:
                raise ValueError(f"x_star has shape {x_star.shape}, x0 has {x0.shape}")
            object.__setattr__(self, "x_star", x_star)
        if self.f_star is not None:
            object.__setattr__(self, "f_star", float(self.f_star))

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


def _named(constraints):
    """The constraints, unnamed ones named by position; names must be unique."""
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
        side = np.array(side, dtype=float)
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


# --------------------------------------------------------------------------
# finite differences
# --------------------------------------------------------------------------

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
    """
    x = np.asarray(x, dtype=float)
    rel_step = _EPS ** (1 / 3) if rel_step is None else rel_step
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

    Free of subtractive cancellation, so exact to rounding for any tiny h,
    but ``fun`` must be analytic and written to accept complex input.

    Parameters
    ----------
    fun : callable
        ``fun(x)`` returning a float or an array of shape (m,).
    x : array_like, shape (n,)
        Point of evaluation.
    step : float
        Imaginary step h.

    Returns
    -------
    ndarray
        Shape (n,) for a scalar function, (m, n) otherwise.  Costs n calls.
    """
    x = np.asarray(x, dtype=float)
    columns = []
    for k in range(x.size):
        shifted = x.astype(complex)
        shifted[k] += 1j * step
        columns.append(np.imag(np.asarray(fun(shifted))) / step)
    return np.stack(columns, axis=-1)


# --------------------------------------------------------------------------
# call counting
# --------------------------------------------------------------------------

class _Counted:
    """A user callable that counts its calls and checks the shape it returns.

    Shapes are checked on the calls the solver makes anyway, not with extra
    calls up front, so the counts are exactly what the solver needed.
    """

    def __init__(self, function, label, expect):
        self.function = function
        self.label = label
        self.expect = expect  # shape -> None if fine, else the expected shape as text
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        value = self.function(*args)
        wanted = self.expect(np.shape(value))
        if wanted is not None:
            raise ValueError(f"{self.label} returned shape {np.shape(value)}, expected {wanted}")
        return value


def _expect(*shapes):
    def expect(shape):
        return None if shape in shapes else " or ".join(map(str, shapes))
    return expect


class _CountedConstraint:
    """Counted, shape-checked fun, jac and hess of one constraint."""

    def __init__(self, constraint, n):
        self.name, self.lb, self.ub, self.n = constraint.name, constraint.lb, constraint.ub, n
        self.m = None  # number of components, fixed by the first value
        label = f"constraint {constraint.name!r}:"
        self.fun = _Counted(constraint.fun, f"{label} fun", self._expect_value)
        self.jac = _Counted(constraint.jac, f"{label} jac", self._expect_jacobian)
        self.hess = _Counted(constraint.hess, f"{label} hess(x, v)", _expect((n, n)))

    def _expect_value(self, shape):
        if len(shape) > 1:
            return "(m,)"
        size = shape[0] if shape else 1
        if self.m is None:
            for label, side in (("lb", self.lb), ("ub", self.ub)):
                if np.ndim(side) > 1 or np.size(side) not in (1, size):
                    raise ValueError(f"constraint {self.name!r}: {label} has shape "
                                     f"{np.shape(side)}, the constraint has {size} components")
            self.m = size
        return None if size == self.m else f"({self.m},)"

    def _expect_jacobian(self, shape):
        if self.m is None:
            return None if len(shape) == 2 and shape[1] == self.n else f"(m, {self.n})"
        allowed = [(self.m, self.n)] + ([(self.n,)] if self.m == 1 else [])
        return _expect(*allowed)(shape)


class _CountedProblem:
    """Counting, shape-checking wrappers around every user callable of a problem."""

    def __init__(self, problem):
        n = problem.n
        self.fun = _Counted(problem.fun, "fun", _expect((), (1,)))
        self.grad = _Counted(problem.grad, "grad", _expect((n,)))
        self.hess = _Counted(problem.hess, "hess", _expect((n, n)))
        self.constraints = [_CountedConstraint(c, n) for c in problem.constraints]

    def totals(self):
        """Calls of the objective's callables and of all constraints' together."""
        return {
            "fun": self.fun.calls, "grad": self.grad.calls, "hess": self.hess.calls,
            "constr": sum(c.fun.calls for c in self.constraints),
            "constr_jac": sum(c.jac.calls for c in self.constraints),
            "constr_hess": sum(c.hess.calls for c in self.constraints),
        }

    def per_constraint(self):
        """Calls per constraint name."""
        return {c.name: {"fun": c.fun.calls, "jac": c.jac.calls, "hess": c.hess.calls}
                for c in self.constraints}


# --------------------------------------------------------------------------
# solving
# --------------------------------------------------------------------------

@dataclass
class Result:
    """Outcome of :func:`solve`.

    Attributes
    ----------
    mode : str
        Derivative mode used.
    x : ndarray
        Final point.
    f : float
        Objective at x.
    multipliers : list of ndarray
        Lagrange multipliers of the problem's constraints, in order, with
        scipy's sign convention (∇f + Σ Jᵀv = 0 at a KKT point; negative when
        a lower bound is active).
    bound_multipliers : ndarray or None
        Multipliers of the box bounds, same convention.
    violation : float
        Largest constraint or bound violation at x, measured against the
        problem's bounds (from the constraint values trust-constr computed
        at x, so no extra calls).
    optimality : float
        Infinity norm of the Lagrangian gradient as trust-constr measured it
        (with the mode's derivatives).
    iterations : int
        trust-constr iterations, summed over restarts.
    calls : dict
        Real calls of the user's callables: ``fun``, ``grad``, ``hess``, and
        ``constr``, ``constr_jac``, ``constr_hess`` summed over constraints.
    constraint_calls : dict
        The same per constraint name.
    scipy_counts : dict
        What scipy itself reported (``nfev``, ``njev``, ``nhev``,
        ``constr_nfev``, ``constr_njev``, ``constr_nhev``) for the last run,
        for comparison with ``calls``.
    time : float
        Wall time of the whole solve in seconds.
    success : bool
        Converged (``gtol`` or ``xtol`` test met) to a point within
        ``feasibility_tol``, with no unresolved stall.
    status : int
        trust-constr's termination status of the last run (3: stopped by the
        stall monitor).
    message : str
        Its termination message.
    barrier_parameter : float or None
        Final barrier parameter (problems with inequalities).
    stalls : list of (int, float)
        (iteration, f) where a stall was detected.
    restarts : int
        Number of restarts after stalls.
    warnings : list of str
        Messages of all warnings raised during the solve (recorded rather
        than printed).
    options : dict
        trust-constr options used.
    defaults : str
        Option set the options started from, ``'fastnn'`` or ``'scipy'``.
    keep_feasible : bool
        Whether bounds were kept strictly feasible.
    """

    mode: str
    x: np.ndarray
    f: float
    multipliers: list
    bound_multipliers: Optional[np.ndarray]
    violation: float
    optimality: float
    iterations: int
    calls: dict
    constraint_calls: dict
    scipy_counts: dict
    time: float
    success: bool
    status: int
    message: str
    barrier_parameter: Optional[float]
    stalls: list = field(default_factory=list)
    restarts: int = 0
    warnings: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    defaults: str = "fastnn"
    keep_feasible: bool = False

    @property
    def stalled(self):
        """Whether a stall was detected (and, if ``success``, recovered)."""
        return bool(self.stalls)


class _StallMonitor:
    """trust-constr callback that stops a run whose iterates no longer move.

    A stall is ``window`` iterations in which x moved less than 1e-6
    relative, the optimality did not halve, the barrier parameter did not
    change and the trust radius did not shrink.  Normal convergence changes
    one of these: the barrier parameter shrinks after each subproblem, and
    rejected steps shrink the trust radius until ``xtol`` ends the run.  In
    the BFGS trap the steps are accepted but tiny, at a constant radius and
    barrier parameter.
    """

    def __init__(self, window):
        self.window = window
        self.history = deque(maxlen=window + 1)
        self.stall = None

    def __call__(self, intermediate_result):
        state = intermediate_result
        self.history.append((np.copy(state.x), state.optimality,
                             state.get("barrier_parameter"), state.tr_radius))
        if len(self.history) <= self.window:
            return False
        (x_old, opt_old, mu_old, tr_old) = self.history[0]
        (x_new, opt_new, mu_new, tr_new) = self.history[-1]
        moved = np.linalg.norm(x_new - x_old) > 1e-6 * max(1.0, np.linalg.norm(x_new))
        if not moved and opt_new > 0.5 * opt_old and mu_new == mu_old and tr_new >= tr_old:
            self.stall = (int(state.nit), float(state.fun))
            raise StopIteration
        return False


def _check_mode(mode):
    if mode not in _MODE_SOURCES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


def _check_options(options):
    unknown = set(options) - _TRUST_CONSTR_OPTIONS
    if unknown:
        raise ValueError(f"unknown trust-constr option(s) {sorted(unknown)}; "
                         f"known: {sorted(_TRUST_CONSTR_OPTIONS)}")


def _derivatives(first, second, fun, derivative, hessian):
    """trust-constr ``jac``/``hess`` arguments for one function of a mode."""
    if first == "analytic":
        jac = derivative
    elif first == "central":
        def jac(x):
            return central_difference(fun, x)
    else:
        jac = first
    if second == "analytic":
        hess = hessian
    elif second == "bfgs":
        hess = BFGS()
    elif second == "sr1":
        hess = SR1()
    else:
        hess = second
    return jac, hess


def _scipy_arguments(problem, mode, counted, keep_feasible):
    first, second = _MODE_SOURCES[mode]
    jac, hess = _derivatives(first, second, counted.fun, counted.grad, counted.hess)
    constraints = []
    for spec, wrapped in zip(problem.constraints, counted.constraints):
        c_jac, c_hess = _derivatives(first, second, wrapped.fun, wrapped.jac, wrapped.hess)
        constraints.append(NonlinearConstraint(wrapped.fun, spec.lb, spec.ub, jac=c_jac,
                                               hess=c_hess))
    bounds = None
    if problem.bounds is not None:
        bounds = Bounds(*problem.bounds, keep_feasible=keep_feasible)
    return jac, hess, constraints, bounds


def solve(problem, mode="analytic", *, x0=None, defaults="fastnn", keep_feasible=False,
          restarts=2, stall_window=40, feasibility_tol=None, **options):
    """Minimise a problem with trust-constr in one derivative mode.

    Parameters
    ----------
    problem : Problem
        What to minimise.
    mode : str
        Where derivatives come from, one of ``MODES``:

        - ``'analytic'``: analytic gradient, Hessian, constraint Jacobians and
          constraint Hessians.
        - ``'fd-hess-2point'``, ``'fd-hess-3point'``, ``'fd-hess-cs'``: analytic
          gradient and Jacobians; Hessians by scipy's forward, central or
          complex-step differences of them.
        - ``'bfgs'``, ``'sr1'``: analytic gradient and Jacobians; quasi-Newton
          Hessians.
        - ``'fd-bfgs'``, ``'fd-sr1'``: gradient and Jacobians by scipy's
          forward differences of f and c; quasi-Newton Hessians.
        - ``'fd-all'``: gradient and Jacobians by :func:`central_difference`
          of f and c (a callable, since scipy refuses ``'2-point'`` for both
          levels); Hessians by scipy's forward differences of that callable.
    x0 : array_like, optional
        Starting point; the problem's by default.
    defaults : {'fastnn', 'scipy'}
        Base options: ``FASTNN_OPTIONS`` or scipy's own defaults.
    keep_feasible : bool
        Keep iterates strictly inside the bounds.  With ``'bfgs'`` this can
        stall (see the module docstring); fastnn then restarts.
    restarts : int
        Restarts allowed after a detected stall, each from the stalled point
        with fresh quasi-Newton approximations.
    stall_window : int
        Iterations without progress that count as a stall.
    feasibility_tol : float, optional
        Largest violation a successful run may end with; by default the
        larger of ``gtol`` and 1e-10.  trust-constr's own feasibility test
        uses ``gtol`` alone, which with fastnn's options is below the
        rounding error of the constraint values.
    **options
        trust-constr options overriding the base ones (``gtol``, ``xtol``,
        ``barrier_tol``, ``initial_barrier_parameter``, ``maxiter``, ...).

    Returns
    -------
    Result
        ``success`` is True when trust-constr met its ``gtol`` or ``xtol``
        test at a point violating no constraint by more than
        ``feasibility_tol``, and no stall remained unresolved.

    Raises
    ------
    ValueError
        Unknown mode, defaults or option; x0 of the wrong length; a callable
        returning an array of the wrong shape (checked on every call).
    """
    _check_mode(mode)
    if defaults not in _OPTION_SETS:
        raise ValueError(f"defaults must be 'fastnn' or 'scipy', got {defaults!r}")
    _check_options(options)
    options = {**_OPTION_SETS[defaults], **options}
    if feasibility_tol is None:
        feasibility_tol = max(options.get("gtol", 1e-8), 1e-10)
    x_start = problem.x0 if x0 is None else np.array(x0, dtype=float)
    if x_start.shape != (problem.n,):
        raise ValueError(f"x0 has shape {x_start.shape}, the problem has {problem.n} variables")

    counted = _CountedProblem(problem)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = _run(problem, mode, counted, x_start, options, keep_feasible, restarts,
                   stall_window)
    elapsed = time.perf_counter() - start
    return _result(problem, mode, run, counted, elapsed, [str(w.message) for w in caught],
                   options, defaults, keep_feasible, feasibility_tol)


@dataclass
class _Run:
    raw: object          # scipy's OptimizeResult of the last attempt
    iterations: int      # summed over attempts
    stalls: list         # (iteration, f) of each detected stall
    unresolved: bool     # the last attempt stalled too


def _run(problem, mode, counted, x_start, options, keep_feasible, restarts, stall_window):
    """trust-constr, restarted from the stalled point after each detected stall."""
    stalls, iterations = [], 0
    for attempt in range(restarts + 1):
        if attempt and keep_feasible and problem.bounds is not None:
            # a stalled point may sit a rounding error outside the box, which
            # keep_feasible would reject as a start
            x_start = np.clip(x_start, *problem.bounds)
        # fresh quasi-Newton approximations on every attempt: the stale ones
        # are what stalled
        jac, hess, constraints, bounds = _scipy_arguments(problem, mode, counted, keep_feasible)
        monitor = _StallMonitor(stall_window)
        raw = minimize(counted.fun, x_start, method="trust-constr", jac=jac, hess=hess,
                       constraints=constraints, bounds=bounds, callback=monitor,
                       options=options)
        if monitor.stall is not None:
            stalls.append((iterations + monitor.stall[0], monitor.stall[1]))
        iterations += raw.nit
        if monitor.stall is None:
            return _Run(raw, iterations, stalls, unresolved=False)
        x_start = raw.x
    return _Run(raw, iterations, stalls, unresolved=True)


def _result(problem, mode, run, counted, elapsed, messages, options, defaults, keep_feasible,
            feasibility_tol):
    raw, n_constraints = run.raw, len(problem.constraints)
    # from the values trust-constr computed at x: calling the user's functions
    # again here would add calls the solver did not make
    violation = problem.violation(raw.x, values=raw.constr[:n_constraints])
    # status 4 is "converged, but violation > gtol": judged here by feasibility_tol
    converged = raw.status in (1, 2, 4) and violation <= feasibility_tol
    message = raw.message
    if run.unresolved:
        message = f"stalled at f = {run.stalls[-1][1]:.10g} after {len(run.stalls)} attempt(s)"
    elif raw.status == 4 and converged:
        message = (f"converged; violation {violation:.1e} is within feasibility_tol "
                   f"(trust-constr's status 4 compares it with gtol)")
    return Result(
        mode=mode, x=np.asarray(raw.x, dtype=float), f=float(raw.fun),
        multipliers=[np.asarray(v, dtype=float) for v in raw.v[:n_constraints]],
        bound_multipliers=(np.asarray(raw.v[n_constraints], dtype=float)
                           if problem.bounds is not None else None),
        violation=violation, optimality=float(raw.optimality),
        iterations=run.iterations, calls=counted.totals(),
        constraint_calls=counted.per_constraint(),
        scipy_counts={"nfev": raw.nfev, "njev": raw.njev, "nhev": raw.nhev,
                      "constr_nfev": list(raw.constr_nfev[:n_constraints]),
                      "constr_njev": list(raw.constr_njev[:n_constraints]),
                      "constr_nhev": list(raw.constr_nhev[:n_constraints])},
        time=elapsed, success=converged and not run.unresolved, status=int(raw.status),
        message=message, barrier_parameter=raw.get("barrier_parameter"),
        stalls=run.stalls, restarts=len(run.stalls) - int(run.unresolved), warnings=messages,
        options=dict(options), defaults=defaults, keep_feasible=keep_feasible,
    )


# --------------------------------------------------------------------------
# comparison table
# --------------------------------------------------------------------------

def compare(problem=HS071, modes=MODES, defaults=("fastnn", "scipy"), trap=True):
    """Solve a problem in several modes and option sets.

    Parameters
    ----------
    problem : Problem
        Problem to solve.
    modes : sequence of str
        Modes to run, each in every option set.
    defaults : sequence of {'fastnn', 'scipy'}
        Option sets to run (see :func:`solve`).
    trap : bool
        Also run ``'bfgs'`` with ``keep_feasible=True``, the configuration
        that stalls on HS071, to show how fastnn handles it.

    Returns
    -------
    list of Result
    """
    for mode in modes:
        _check_mode(mode)
    results = [solve(problem, mode, defaults=option_set)
               for option_set in defaults for mode in modes]
    if trap:
        results.append(solve(problem, "bfgs", keep_feasible=True))
    return results


def table_rows(problem, results):
    """One dict per result: the comparison table as data.

    Parameters
    ----------
    problem : Problem
        The problem solved; its ``x_star``/``f_star`` give the error columns
        (NaN when unknown).
    results : sequence of Result

    Returns
    -------
    list of dict
        Keys ``mode``, ``options``, ``f``, ``rel_error`` (|f − f*|/|f*|),
        ``x_error`` (‖x − x*‖), ``violation``, ``iterations``, ``fun_calls``,
        ``grad_calls``, ``hess_calls``, ``constr_calls``, ``constr_jac_calls``,
        ``constr_hess_calls``, ``scipy_nfev``, ``time_ms``, ``note``.
    """
    rows = []
    for result in results:
        options = result.defaults + ("+kf" if result.keep_feasible else "")
        rows.append({
            "mode": result.mode,
            "options": options,
            "f": result.f,
            "rel_error": _relative_error(result.f, problem.f_star),
            "x_error": (float(np.linalg.norm(result.x - problem.x_star))
                        if problem.x_star is not None else math.nan),
            "violation": result.violation,
            "iterations": result.iterations,
            "fun_calls": result.calls["fun"],
            "grad_calls": result.calls["grad"],
            "hess_calls": result.calls["hess"],
            "constr_calls": result.calls["constr"],
            "constr_jac_calls": result.calls["constr_jac"],
            "constr_hess_calls": result.calls["constr_hess"],
            "scipy_nfev": result.scipy_counts["nfev"],
            "time_ms": 1e3 * result.time,
            "note": _note(result),
        })
    return rows


def _relative_error(f, f_star):
    if f_star is None:
        return math.nan
    return abs(f - f_star) / (abs(f_star) if f_star != 0 else 1.0)


def _note(result):
    parts = []
    for iteration, f in result.stalls:
        parts.append(f"stall at it {iteration}, f={f:.5g}")
    if result.restarts:
        parts.append(f"{result.restarts} restart(s)")
    if any("delta_grad == 0" in message for message in result.warnings):
        parts.append("delta_grad==0 warning")
    if not result.success:
        parts.append(f"FAILED: {result.message}")
    return "; ".join(parts)


_COLUMNS = [  # (key, header, format); text columns are left-aligned
    ("mode", "mode", "{}"),
    ("options", "options", "{}"),
    ("f", "f", "{:.13f}"),
    ("rel_error", "|f-f*|/f*", "{:.1e}"),
    ("x_error", "‖x-x*‖", "{:.1e}"),
    ("violation", "viol", "{:.0e}"),
    ("iterations", "iter", "{}"),
    ("fun_calls", "f", "{}"),
    ("grad_calls", "∇f", "{}"),
    ("hess_calls", "∇²f", "{}"),
    ("constr_calls", "c", "{}"),
    ("constr_jac_calls", "∇c", "{}"),
    ("constr_hess_calls", "∇²c", "{}"),
    ("time_ms", "ms", "{:.0f}"),
    ("note", "note", "{}"),
]
_TEXT_COLUMNS = {"mode", "options", "note"}


def format_table(rows):
    """The comparison table as aligned text.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`table_rows`.

    Returns
    -------
    str
        Header, rule and one line per row; text columns left-aligned,
        numbers right-aligned.  The call columns count real calls of the
        user's objective (f), gradient (∇f), Hessian (∇²f) and constraint
        functions, Jacobians and Hessians, summed over constraints.
    """
    return _aligned(rows, _COLUMNS)


def _aligned(rows, columns):
    cells = [[fmt.format(row[key]) for key, _, fmt in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max(len(text) for text in column) for column in zip(headers, *cells)]

    def line(texts):
        return "  ".join(text.ljust(width) if key in _TEXT_COLUMNS else text.rjust(width)
                         for text, width, (key, _, _) in zip(texts, widths, columns)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule] + [line(texts) for texts in cells])


_COUNT_COLUMNS = [
    ("mode", "mode", "{}"),
    ("fun", "f calls", "{}"),
    ("nfev", "scipy nfev", "{}"),
    ("grad", "∇f calls", "{}"),
    ("njev", "scipy njev", "{}"),
    ("constr", "c calls", "{}"),
    ("constr_nfev", "scipy constr_nfev", "{}"),
    ("constr_jac", "∇c calls", "{}"),
    ("constr_njev", "scipy constr_njev", "{}"),
]


def format_counts(results):
    """Real call counts next to the counts scipy reports, as aligned text.

    Parameters
    ----------
    results : sequence of Result

    Returns
    -------
    str
        One line per result; constraint counts are summed over constraints.
        scipy's counts cover only the last attempt of a restarted run.
    """
    rows = []
    for result in results:
        counts = result.scipy_counts
        rows.append({**result.calls, "mode": result.mode, "nfev": counts["nfev"],
                     "njev": counts["njev"], "constr_nfev": sum(counts["constr_nfev"]),
                     "constr_njev": sum(counts["constr_njev"])})
    return _aligned(rows, _COUNT_COLUMNS)


def write_csv(rows, path):
    """Write table rows to a CSV file with a header line.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`table_rows`.
    path : str or path-like
        File to write (replaced atomically: an interrupted write leaves the
        previous file in place).
    """
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------
# derivative check
# --------------------------------------------------------------------------

def check_derivatives(problem, n_random=5, seed=0, methods=("central", "complex-step")):
    """Compare a problem's analytic derivatives with numerical differences.

    At x0 and at ``n_random`` points drawn uniformly from the box (or from
    x0 + N(0, 1) without bounds), every analytic derivative is compared with
    central differences (:func:`central_difference`) and complex-step
    differences (:func:`complex_step`) of the function below it:

    - ``gradient``: ``grad`` against differences of ``fun``;
    - ``hessian``: ``hess`` against differences of ``grad``;
    - ``<name>.jacobian``: a constraint's ``jac`` against differences of its
      ``fun``;
    - ``<name>.hessian``: its ``hess(x, v)``, with random multipliers v,
      against differences of ``jac(x)ᵀv``.

    Parameters
    ----------
    problem : Problem
    n_random : int
        Random points besides x0.
    seed : int
        Seed of the numpy Generator drawing points and multipliers.
    methods : sequence of {'central', 'complex-step'}
        Differences to use; complex-step needs complex-safe callables.

    Returns
    -------
    dict
        ``{item: {method: worst relative error}}``, the relative error at a
        point being ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖, 1e-300)
        over the whole array (element-wise ratios are meaningless at zeros).
        Central differences reach ~1e-9 on well-scaled smooth problems,
        complex steps ~1e-15.
    """
    differencers = {"central": central_difference, "complex-step": complex_step}
    unknown = set(methods) - set(differencers)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; use 'central', 'complex-step'")
    rng = np.random.default_rng(seed)
    points = [problem.x0] + [_random_point(problem, rng) for _ in range(n_random)]
    report = {}

    def record(item, analytic, numeric, method):
        error = _array_error(analytic, numeric)
        worst = report.setdefault(item, {}).get(method, 0.0)
        report[item][method] = max(worst, error)

    for x in points:
        for method in methods:
            differ = _explained(differencers[method], method)
            record("gradient", problem.grad(x), differ(problem.fun, x), method)
            record("hessian", problem.hess(x), differ(problem.grad, x), method)
            for constraint in problem.constraints:
                m = np.atleast_1d(constraint.fun(x)).size
                v = rng.standard_normal(m)
                record(f"{constraint.name}.jacobian", constraint.jac(x),
                       np.reshape(differ(constraint.fun, x), (m, x.size)), method)
                contracted = _contracted_jacobian(constraint.jac, v)
                record(f"{constraint.name}.hessian", constraint.hess(x, v),
                       differ(contracted, x), method)
    return report


def _explained(differ, method):
    """differ, with a hint when a callable cannot take complex input."""
    if method != "complex-step":
        return differ

    def complex_safe(fun, x):
        try:
            with warnings.catch_warnings():
                # dropping the imaginary part would silently zero the derivative
                warnings.simplefilter("error", np.exceptions.ComplexWarning)
                return differ(fun, x)
        except (TypeError, ValueError, np.exceptions.ComplexWarning) as error:
            raise ValueError(f"complex-step differencing failed ({error}); the problem's "
                             f"callables must accept complex arrays, or pass "
                             f"methods=('central',)") from error
    return complex_safe


def _contracted_jacobian(jac, v):
    def product(x):
        return np.asarray(jac(x)).T @ v
    return product


def _random_point(problem, rng):
    if problem.bounds is not None and np.all(np.isfinite(problem.bounds)):
        return rng.uniform(*problem.bounds)
    return problem.x0 + rng.standard_normal(problem.n)


def _array_error(analytic, numeric):
    analytic = np.asarray(analytic, dtype=float)
    numeric = np.asarray(numeric, dtype=float)
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-300)
    return float(np.linalg.norm(analytic - numeric) / scale)


def format_derivative_check(report):
    """The report of :func:`check_derivatives` as aligned text.

    Parameters
    ----------
    report : dict
        ``{item: {method: error}}`` from :func:`check_derivatives`.

    Returns
    -------
    str
        A header and one line per item, one column per method.
    """
    methods = sorted({method for errors in report.values() for method in errors})
    width = max(len(item) for item in report)
    lines = ["  ".join(["item".ljust(width)] + [method.rjust(12) for method in methods])]
    for item, errors in report.items():
        lines.append("  ".join([item.ljust(width)] +
                               [f"{errors.get(method, math.nan):12.1e}" for method in methods]))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# multi-start
# --------------------------------------------------------------------------

@dataclass
class LocalMinimum:
    """A distinct local minimum found by :func:`multistart`.

    Attributes
    ----------
    f : float
        Best objective value among the runs that reached it.
    x : ndarray
        The corresponding point.
    hits : int
        Number of starts that converged to it.
    """

    f: float
    x: np.ndarray
    hits: int


@dataclass
class MultistartReport:
    """Outcome of :func:`multistart`.

    Attributes
    ----------
    starts : ndarray, shape (n_starts, n)
        Starting points.
    results : list of Result
        One per start.
    minima : list of LocalMinimum
        Distinct local minima reached by converged feasible runs, by
        increasing f.
    failures : int
        Runs that did not converge to a feasible point.
    """

    starts: np.ndarray
    results: list
    minima: list
    failures: int


def multistart(problem, n_starts, mode="analytic", seed=0, feasibility=1e-6,
               distinct=1e-4, **options):
    """Solve from random starting points in the box and collect local minima.

    Parameters
    ----------
    problem : Problem
        Must have finite bounds.
    n_starts : int
        Number of starting points, drawn uniformly in the box by
        ``numpy.random.default_rng(seed)``.
    mode : str
        Derivative mode (see :func:`solve`).
    seed : int
        Seed of the generator.
    feasibility : float
        Largest violation for a run to count as converged.
    distinct : float
        Two minima are the same when their points are closer than
        ``distinct · max(1, ‖x‖)``.
    **options
        Passed to :func:`solve`.

    Returns
    -------
    MultistartReport
    """
    if problem.bounds is None or not np.all(np.isfinite(problem.bounds)):
        raise ValueError("multistart needs finite bounds to draw starting points from")
    if n_starts < 1:
        raise ValueError(f"n_starts must be positive, got {n_starts}")
    rng = np.random.default_rng(seed)
    starts = rng.uniform(*problem.bounds, size=(n_starts, problem.n))
    results = [solve(problem, mode, x0=start, **options) for start in starts]
    minima, failures = [], 0
    for result in results:
        if not result.success or result.violation > feasibility:
            failures += 1
            continue
        _merge(minima, result, distinct)
    minima.sort(key=lambda minimum: minimum.f)
    return MultistartReport(starts=starts, results=results, minima=minima, failures=failures)


def _merge(minima, result, distinct):
    for minimum in minima:
        if np.linalg.norm(result.x - minimum.x) <= distinct * max(1.0, np.linalg.norm(result.x)):
            minimum.hits += 1
            if result.f < minimum.f:
                minimum.f, minimum.x = result.f, result.x
            return
    minima.append(LocalMinimum(f=result.f, x=result.x, hits=1))


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

def _modes_argument(text):
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    for mode in modes:
        if mode not in _MODE_SOURCES:
            raise argparse.ArgumentTypeError(
                f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return modes


_SOURCE_NAMES = {
    "analytic": "analytic", "2-point": "forward differences", "3-point": "central differences",
    "cs": "complex-step differences", "central": "central differences", "bfgs": "BFGS",
    "sr1": "SR1",
}


def _modes_epilog():
    width = max(map(len, MODES))
    lines = ["modes (first derivatives / Hessians):"]
    for mode, (first, second) in _MODE_SOURCES.items():
        lines.append(f"  {mode.ljust(width)}  {_SOURCE_NAMES[first]} / {_SOURCE_NAMES[second]}")
    return "\n".join(lines)


def build_parser():
    """Argument parser of ``fastnn constrained``."""
    parser = argparse.ArgumentParser(
        prog="fastnn constrained",
        description="HS071 with trust-constr: analytic versus finite-difference derivatives.",
        epilog=_modes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", type=_modes_argument, default=list(MODES), metavar="LIST",
                        help="comma-separated modes (default: all, listed below)")
    parser.add_argument("--defaults", choices=("both", "fastnn", "scipy"), default="both",
                        help="option sets to run: fastnn's tuned options, scipy's "
                             "defaults, or both (default: both)")
    parser.add_argument("--csv", metavar="PATH", help="also write the table to this CSV file")
    parser.add_argument("--multistart", type=int, default=0, metavar="N",
                        help="also solve from N random starts in the box (default: 0)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the derivative check and multi-start (default: 0)")
    return parser


def main(argv=None):
    """Run the exercise: derivative check, comparison table, optional multi-start.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit status: 0, or 1 if a run with fastnn's options failed.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.multistart < 0:
        parser.error("--multistart must be non-negative")
    _print_problem(HS071, args.seed)
    results = _print_comparison(HS071, args)
    if args.multistart:
        _print_multistart(HS071, args.multistart, args.seed)
    failed = [result for result in results if not result.success and result.defaults == "fastnn"]
    return 1 if failed else 0


def _print_problem(problem, seed):
    print(f"{problem.name}: minimize x1·x4·(x1+x2+x3) + x3  s.t.  x1·x2·x3·x4 ≥ 25, "
          f"Σxi² = 40, 1 ≤ xi ≤ 5;  x0 = {_vector(problem.x0)}")
    print(f"known optimum f* = {problem.f_star!r} at x* = {_vector(problem.x_star)}\n")
    print("derivative check (worst relative error at x0 and 5 random points):")
    print(format_derivative_check(check_derivatives(problem, seed=seed)))
    print()


def _print_comparison(problem, args):
    option_sets = ("fastnn", "scipy") if args.defaults == "both" else (args.defaults,)
    results = compare(problem, args.modes, option_sets, trap=True)
    rows = table_rows(problem, results)
    print("trust-constr from x0; options: fastnn = " + _describe(FASTNN_OPTIONS) +
          ", scipy = scipy's defaults, +kf = Bounds(keep_feasible=True);")
    print("call columns count real calls of the user's callables "
          "(finite-difference calls included)")
    print(format_table(rows))
    print("\nreal calls against scipy's own counts (first option set):")
    print(format_counts([result for result in results
                         if result.defaults == option_sets[0] and not result.keep_feasible]))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"\ntable written to {args.csv}")
    return results


def _print_multistart(problem, n_starts, seed):
    report = multistart(problem, n_starts, seed=seed)
    print(f"\nmulti-start: {n_starts} random starts in the box (seed {seed}), "
          f"{report.failures} did not converge; distinct local minima:")
    for minimum in report.minima:
        print(f"  f = {minimum.f:.6f}  x = {np.array2string(minimum.x, precision=5)}  "
              f"reached {minimum.hits}×")


def _vector(x):
    return "(" + ", ".join(f"{value:.12g}" for value in x) + ")"


def _describe(options):
    return ", ".join(f"{key}={value:g}" for key, value in options.items())


if __name__ == "__main__":
    sys.exit(main())
