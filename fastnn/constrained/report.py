"""Comparing modes: :func:`compare`, the comparison table, the counts table and CSV."""

import collections.abc
import csv
import math
import os

import numpy as np

from fastnn._files import atomic_write
from fastnn._validation import check_flag, check_names
from fastnn.constrained.modes import _OPTION_SETS, MODES
from fastnn.constrained.problem import HS071, check_problem
from fastnn.constrained.solver import Result, solve


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

    Raises
    ------
    TypeError
        If problem is not a :class:`Problem`, modes or defaults is not a
        sequence of names (a lone string is refused), or trap is not a bool.
    ValueError
        If modes or defaults hold unknown names; checked before any solve.
    """
    check_problem(problem)
    modes = check_names("modes", modes, MODES, "mode")
    defaults = check_names("defaults", defaults, tuple(_OPTION_SETS), "option set")
    trap = check_flag("trap", trap)
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
    check_problem(problem)
    _check_results(results)
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


def _check_results(results):
    if isinstance(results, (str, Result)) or not isinstance(results, collections.abc.Iterable):
        raise TypeError(f"results must be a sequence of Result, got {results!r}")
    for result in results:
        if not isinstance(result, Result):
            raise TypeError(f"results must hold Result objects (from solve), got {result!r}")


def _check_rows(rows, keys=None):
    """rows must be a sequence of dicts with the same keys (``keys``, if given)."""
    if isinstance(rows, (str, bytes, dict)) or not isinstance(rows, collections.abc.Sequence):
        raise TypeError(f"rows must be a list of dicts (from table_rows), got {rows!r}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"rows must hold dicts, got {row!r} at index {index}")
        expected = set(rows[0]) if keys is None else keys
        missing, extra = expected - set(row), set(row) - expected
        if missing:
            raise ValueError(f"row {index} of rows lacks the keys {sorted(missing)}")
        if keys is None and extra:
            raise ValueError(f"row {index} of rows has keys {sorted(extra)} that row 0 lacks")


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
    _check_rows(rows, keys={key for key, _, _ in _COLUMNS})
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
    _check_results(results)
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

    Raises
    ------
    TypeError
        If rows is not a sequence of dicts or path is not a str, bytes or
        path-like object.
    ValueError
        If the rows' keys differ or path is empty; nothing is written then.
    """
    _check_rows(rows)
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {path!r}")
    if not os.fspath(path):
        raise ValueError("path must name a file, got an empty string")
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
