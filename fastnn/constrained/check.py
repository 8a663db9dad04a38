"""Checking a problem's analytic derivatives against numerical differences."""

import math
import warnings

import numpy as np

from fastnn._validation import check_int, check_names
from fastnn.constrained.differences import central_difference, complex_step
from fastnn.constrained.problem import check_problem
from fastnn.gradcheck import relative_error

# Norm below which an analytic derivative and its differences both count as
# zero: only there to avoid 0/0, since an exactly zero derivative (a linear
# constraint's Hessian) has exactly zero differences too.
_ZERO_NORM = 1e-300


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
        point being ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖)
        over the whole array (element-wise ratios are meaningless at zeros;
        :func:`fastnn.gradcheck.relative_error`, arrays of norm below 1e-300
        counting as zero).
        Central differences reach ~1e-9 on well-scaled smooth problems,
        complex steps ~1e-15.  A derivative that returns NaN reports NaN.

    Raises
    ------
    TypeError
        If problem is not a :class:`Problem`, n_random or seed is not an
        int, or methods is not a sequence of names (a lone string is
        refused).
    ValueError
        If n_random or seed is negative, or methods is empty or holds an
        unknown name.
    """
    differencers = {"central": central_difference, "complex-step": complex_step}
    check_problem(problem)
    n_random = check_int("n_random", n_random, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    methods = check_names("methods", methods, tuple(differencers), "method")
    if not methods:
        raise ValueError("methods must name at least one of 'central', 'complex-step'")
    rng = np.random.default_rng(seed)
    points = [problem.x0] + [_random_point(problem, rng) for _ in range(n_random)]
    report = {}

    def record(item, analytic, numeric, method):
        error = relative_error(analytic, numeric, zero_tolerance=_ZERO_NORM)
        worst = report.setdefault(item, {}).get(method, 0.0)
        # max() alone would drop a NaN: max(0.0, nan) is 0.0
        nan = math.isnan(worst) or math.isnan(error)
        report[item][method] = math.nan if nan else max(worst, error)

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

    Raises
    ------
    TypeError
        If report is not a dict of dicts.
    ValueError
        If report is empty.
    """
    if not isinstance(report, dict) or not all(isinstance(errors, dict)
                                               for errors in report.values()):
        raise TypeError(f"report must be a dict of dicts (from check_derivatives), "
                        f"got {report!r}")
    if not report:
        raise ValueError("report is empty: there is nothing to format")
    methods = sorted({method for errors in report.values() for method in errors})
    width = max(len(item) for item in report)
    lines = ["  ".join(["item".ljust(width)] + [method.rjust(12) for method in methods])]
    for item, errors in report.items():
        lines.append("  ".join([item.ljust(width)] +
                               [f"{errors.get(method, math.nan):12.1e}" for method in methods]))
    return "\n".join(lines)
