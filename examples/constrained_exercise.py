"""The trust-constr exercise: analytic versus finite-difference derivatives.

Solves Hock–Schittkowski problem 71

    minimize    x1·x4·(x1 + x2 + x3) + x3
    subject to  x1·x2·x3·x4 ≥ 25,  x1² + x2² + x3² + x4² = 40,  1 ≤ xi ≤ 5
    start       x0 = (1, 5, 5, 1)

with scipy's trust-constr, first with analytic Jacobian and Hessian, then
with finite-difference ones, and compares them with every other derivative
mode in one table.  Then describes a problem of its own the same way and
checks it against its closed-form answer.

Run:  python examples/constrained_exercise.py [--csv table.csv]
"""

import argparse

import numpy as np

from fastnn.constrained import (
    HS071, Constraint, Problem, check_derivatives, compare, format_counts,
    format_derivative_check, format_table, multistart, solve, table_rows, write_csv,
)


def describe(result):
    calls = result.calls
    error = abs(result.f - HS071.f_star) / HS071.f_star
    return (f"  f = {result.f:.13f}   |f - f*|/f* = {error:.1e}"
            f"   x = {np.array2string(result.x, precision=8)}\n"
            f"  multipliers: product {result.multipliers[0][0]:+.6f}, "
            f"squares {result.multipliers[1][0]:+.6f}, "
            f"bounds {np.array2string(result.bound_multipliers, precision=6)}\n"
            f"  {result.iterations} iterations, violation {result.violation:.0e}, "
            f"{1e3 * result.time:.0f} ms; real calls: f {calls['fun']}, ∇f {calls['grad']}, "
            f"∇²f {calls['hess']}, c {calls['constr']}, ∇c {calls['constr_jac']}, "
            f"∇²c {calls['constr_hess']}")


def the_two_ways():
    """(1) analytic Jacobian and Hessian, (2) finite-difference ones."""
    print("analytic derivatives against central and complex-step differences "
          "(worst relative error):")
    print(format_derivative_check(check_derivatives(HS071)))
    print("\n(1) analytic gradient, Hessian, constraint Jacobians and Hessians:")
    print(describe(solve(HS071, "analytic")))
    print("\n(2) everything by finite differences (central-difference first derivatives,\n"
          "    forward differences of those for the Hessians):")
    print(describe(solve(HS071, "fd-all")))


def the_table(csv_path):
    results = compare(HS071)
    rows = table_rows(HS071, results)
    print("\nevery mode, with fastnn's options and with scipy's defaults "
          "(+kf: Bounds(keep_feasible=True)):")
    print(format_table(rows))
    print("\nreal calls against what scipy reports:")
    print(format_counts([r for r in results if r.defaults == "fastnn" and not r.keep_feasible]))
    if csv_path:
        write_csv(rows, csv_path)
        print(f"table written to {csv_path}")


def a_problem_of_your_own():
    """Nearest point to c on the plane a·x = b: x* = c − a(a·c − b)/‖a‖²."""
    c = np.array([3.0, -1.0, 2.0, 0.5, 1.0])
    a = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    b = 4.0
    plane = Constraint(fun=lambda x: np.array([a @ x]), jac=lambda x: a[np.newaxis, :],
                       hess=lambda x, v: np.zeros((5, 5)), lb=b, ub=b, name="plane")
    problem = Problem(fun=lambda x: 0.5 * np.sum((x - c) ** 2), grad=lambda x: x - c,
                      hess=lambda x: np.eye(5), x0=np.zeros(5), constraints=[plane],
                      name="projection")
    exact = c - a * (a @ c - b) / (a @ a)
    print("\na problem of your own: the point nearest to c on the plane a·x = b")
    for mode in ("analytic", "fd-all"):
        result = solve(problem, mode)
        print(f"  {mode:8s}  ‖x − x_exact‖ = {np.linalg.norm(result.x - exact):.1e}, "
              f"{result.calls['fun']} objective calls")


def several_starts():
    report = multistart(HS071, 20, seed=0)
    print(f"\n20 random starts in the box: {len(report.minima)} distinct local minima "
          f"({report.failures} runs did not converge)")
    for minimum in report.minima:
        print(f"  f = {minimum.f:.6f} at x = {np.array2string(minimum.x, precision=5)}, "
              f"reached {minimum.hits}×")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", metavar="PATH", help="write the comparison table to a CSV file")
    args = parser.parse_args()
    the_two_ways()
    the_table(args.csv)
    a_problem_of_your_own()
    several_starts()


if __name__ == "__main__":
    main()
