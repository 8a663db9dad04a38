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

from fastnn.constrained.check import check_derivatives, format_derivative_check
from fastnn.constrained.cli import build_parser, main
from fastnn.constrained.differences import central_difference, complex_step
from fastnn.constrained.modes import FASTNN_OPTIONS, MODES, TOLERANCES
from fastnn.constrained.problem import HS071, Constraint, Problem, hs071
from fastnn.constrained.random_starts import LocalMinimum, MultistartReport, multistart
from fastnn.constrained.report import (compare, format_counts, format_table, table_rows,
                                       write_csv)
from fastnn.constrained.solver import Result, solve

__all__ = [
    "MODES", "TOLERANCES", "FASTNN_OPTIONS", "Constraint", "Problem", "Result",
    "LocalMinimum", "MultistartReport", "HS071", "hs071", "solve", "compare",
    "table_rows", "format_table", "format_counts", "write_csv", "check_derivatives",
    "format_derivative_check", "central_difference", "complex_step",
    "multistart", "main",
]
