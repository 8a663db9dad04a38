"""``fastnn constrained``: the exercise's command line."""

import argparse

import numpy as np

from fastnn.constrained.check import check_derivatives, format_derivative_check
from fastnn.constrained.modes import _MODE_SOURCES, FASTNN_OPTIONS, MODES
from fastnn.constrained.problem import HS071
from fastnn.constrained.random_starts import multistart
from fastnn.constrained.report import compare, format_counts, format_table, table_rows, write_csv


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
        prog="fastnn constrained", allow_abbrev=False,
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
    if args.seed < 0:
        parser.error("--seed must be non-negative")
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

