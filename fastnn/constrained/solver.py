"""Solving a :class:`~fastnn.constrained.Problem` with trust-constr in one derivative mode."""

import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.optimize import Bounds, NonlinearConstraint, minimize

from fastnn._validation import check_flag, check_int, check_non_negative, check_vector
from fastnn.constrained.counting import _CountedProblem
from fastnn.constrained.modes import (_MODE_SOURCES, _OPTION_SETS, _check_defaults, _check_mode,
                                      _check_options, _derivatives)
from fastnn.constrained.problem import check_problem


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
        # trimmed by hand: deque(maxlen=window + 1) overflows for windows
        # beyond sys.maxsize, which are valid (they never stall)
        self.history = deque()
        self.stall = None

    def __call__(self, intermediate_result):
        state = intermediate_result
        self.history.append((np.copy(state.x), state.optimality,
                             state.get("barrier_parameter"), state.tr_radius))
        if len(self.history) > self.window + 1:
            self.history.popleft()
        if len(self.history) <= self.window:
            return False
        (x_old, opt_old, mu_old, tr_old) = self.history[0]
        (x_new, opt_new, mu_new, tr_new) = self.history[-1]
        moved = np.linalg.norm(x_new - x_old) > 1e-6 * max(1.0, np.linalg.norm(x_new))
        if not moved and opt_new > 0.5 * opt_old and mu_new == mu_old and tr_new >= tr_old:
            self.stall = (int(state.nit), float(state.fun))
            raise StopIteration
        return False


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
        stall (see the package docstring); fastnn then restarts.
    restarts : int
        Restarts allowed after a detected stall, each from the stalled point
        with fresh quasi-Newton approximations; >= 0.
    stall_window : int
        Iterations without progress that count as a stall; >= 1.
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
        Unknown mode, defaults or option; x0 of the wrong length or not
        finite; restarts < 0, stall_window < 1, a negative or non-finite
        feasibility_tol or option value out of range; a callable returning
        an array of the wrong shape (checked on every call).
    TypeError
        problem not a :class:`Problem`; keep_feasible not a bool; restarts,
        stall_window or an integer option not an int; feasibility_tol, x0
        or a numeric option not numbers.

    All arguments are checked before any of the problem's callables runs.
    """
    check_problem(problem)
    _check_mode(mode)
    _check_defaults(defaults)
    keep_feasible = check_flag("keep_feasible", keep_feasible)
    restarts = check_int("restarts", restarts, minimum=0)
    stall_window = check_int("stall_window", stall_window, minimum=1)
    _check_options(options)
    options = {**_OPTION_SETS[defaults], **options}
    if feasibility_tol is None:
        feasibility_tol = max(options.get("gtol", 1e-8), 1e-10)
    else:
        feasibility_tol = check_non_negative("feasibility_tol", feasibility_tol)
    x_start = problem.x0 if x0 is None else check_vector("x0", x0)
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
