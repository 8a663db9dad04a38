"""Multi-start: solving from random points in the box and collecting local minima."""

from dataclasses import dataclass

import numpy as np

from fastnn._validation import check_int, check_non_negative
from fastnn.constrained.modes import _check_mode
from fastnn.constrained.problem import check_problem
from fastnn.constrained.solver import solve


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

    Raises
    ------
    TypeError
        If problem is not a :class:`Problem`, n_starts or seed is not an
        int, or feasibility or distinct is not a number.
    ValueError
        If the bounds are not finite, n_starts < 1, seed < 0, feasibility or
        distinct is negative or not finite, or the mode is unknown; all
        checked before the first solve.
    """
    check_problem(problem)
    if problem.bounds is None or not np.all(np.isfinite(problem.bounds)):
        raise ValueError("multistart needs finite bounds to draw starting points from")
    n_starts = check_int("n_starts", n_starts, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    feasibility = check_non_negative("feasibility", feasibility)
    distinct = check_non_negative("distinct", distinct)
    _check_mode(mode)
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
