"""The derivative modes of :func:`~fastnn.constrained.solve` and its option sets.

A mode names where the first derivatives (objective gradient, constraint
Jacobians) and the Hessians come from; the table in the docstring of
:mod:`fastnn.constrained` explains each.
"""

from scipy.optimize import BFGS, SR1

from fastnn._validation import check_finite_number, check_flag, check_int, check_non_negative
from fastnn.constrained.differences import central_difference

# (first-derivative source, Hessian source) of every mode; the package
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


# Options whose values are checked here, by kind: scipy takes a bad one
# into the first iteration (a string gtol fails there, after the first
# calls) or silently runs with it (maxiter=-5 runs one iteration, xtol=-1
# all of maxiter).  The others are passed on as given.
_TOLERANCE_OPTIONS = ("xtol", "gtol", "barrier_tol")  # >= 0
_POSITIVE_OPTIONS = ("initial_constr_penalty", "initial_tr_radius",
                     "initial_barrier_parameter", "initial_barrier_tolerance")
_VERBOSE_LEVELS = 3


def _check_mode(mode):
    if not isinstance(mode, str) or mode not in _MODE_SOURCES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


def _check_defaults(defaults):
    if not isinstance(defaults, str) or defaults not in _OPTION_SETS:
        raise ValueError(f"defaults must be 'fastnn' or 'scipy', got {defaults!r}")


def _check_options(options):
    unknown = set(options) - _TRUST_CONSTR_OPTIONS
    if unknown:
        raise ValueError(f"unknown trust-constr option(s) {sorted(unknown)}; "
                         f"known: {sorted(_TRUST_CONSTR_OPTIONS)}")
    for name in _TOLERANCE_OPTIONS:
        if name in options:
            check_non_negative(name, options[name])
    for name in _POSITIVE_OPTIONS:
        if name in options:
            check_finite_number(name, options[name], minimum=0, open_min=True)
    if "maxiter" in options:
        check_int("maxiter", options["maxiter"], minimum=1)
    if "verbose" in options and check_int("verbose", options["verbose"], 0) > _VERBOSE_LEVELS:
        raise ValueError(f"verbose must be 0, 1, 2 or 3, got {options['verbose']!r}")
    if "disp" in options:
        check_flag("disp", options["disp"])


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
