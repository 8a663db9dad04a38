"""Tests of fastnn.constrained: trust-constr with analytic and finite-difference derivatives.

References are independent of the code under test: the HS071 optimum from its
KKT equations (checked here from scratch), closed-form answers of small QPs,
finite differences, and counters wrapped around the user's callables.
"""

import csv
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn.constrained import (
    FASTNN_OPTIONS, HS071, MODES, TOLERANCES, Constraint, Problem, central_difference,
    check_derivatives, compare, complex_step, format_table, main, multistart, solve,
    table_rows, write_csv,
)

F_STAR = 17.0140172891563
X_STAR = np.array([1.0, 4.74299963726, 3.82114998418, 1.37940829317])
# other local minima of HS071 in the box, to 3 decimals
OTHER_MINIMA = (27.146, 30.697, 32.944)


def relative_error(f):
    return abs(f - F_STAR) / F_STAR


def kkt_multipliers(x):
    """Least-squares multipliers of HS071's active set at x, and the residual.

    Active: the product (lower bound 25), the sum of squares, x1 ≥ 1.
    Convention ∇f + Σ Jᵀv = 0, as trust-constr reports.
    """
    x1, x2, x3, x4 = x
    gradient = np.array([x4 * (2 * x1 + x2 + x3), x1 * x4, x1 * x4 + 1, x1 * (x1 + x2 + x3)])
    normals = np.column_stack([[x2 * x3 * x4, x1 * x3 * x4, x1 * x2 * x4, x1 * x2 * x3],
                               2 * np.asarray(x), [1.0, 0, 0, 0]])
    v, *_ = np.linalg.lstsq(normals, -gradient, rcond=None)
    return v, np.linalg.norm(gradient + normals @ v)


# --------------------------------------------------------------------------
# the reference optimum itself
# --------------------------------------------------------------------------

def test_reference_optimum_satisfies_kkt_conditions():
    x = X_STAR
    assert np.prod(x) == pytest.approx(25, abs=1e-9)
    assert np.sum(x ** 2) == pytest.approx(40, abs=1e-9)
    assert x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2] == pytest.approx(F_STAR, abs=1e-10)
    v, residual = kkt_multipliers(x)
    assert residual < 1e-9
    # lower bounds active: non-positive multipliers in trust-constr's convention
    assert v[0] < 0 and v[2] < 0
    assert HS071.f_star == F_STAR and np.allclose(HS071.x_star, X_STAR, rtol=0, atol=0)


def test_hs071_functions_match_the_problem_statement():
    points = np.random.default_rng(0).uniform(1, 5, size=(5, 4))
    product, squares = HS071.constraints
    for x in points:
        assert HS071.fun(x) == pytest.approx(x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2])
        assert product.fun(x)[0] == pytest.approx(np.prod(x))
        assert squares.fun(x)[0] == pytest.approx(np.sum(x ** 2))
    assert (product.lb, product.ub, squares.lb, squares.ub) == (25, np.inf, 40, 40)
    np.testing.assert_array_equal(HS071.bounds, [[1] * 4, [5] * 4])
    np.testing.assert_array_equal(HS071.x0, [1, 5, 5, 1])


# --------------------------------------------------------------------------
# every mode from x0
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fastnn_results():
    return {mode: solve(HS071, mode) for mode in MODES}


def test_tolerance_table_covers_modes_and_meets_the_target():
    assert set(TOLERANCES) == set(MODES)
    assert all(tolerance <= 1e-9 for tolerance in TOLERANCES.values())


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_reaches_the_optimum(fastnn_results, mode):
    result = fastnn_results[mode]
    assert result.success, result.message
    assert relative_error(result.f) <= TOLERANCES[mode]
    # 1e-6 separates x* from scipy's default stop (~1e-5 away) and from the
    # other local minima (distance > 1)
    assert np.linalg.norm(result.x - X_STAR) <= 1e-6
    assert result.violation <= 1e-10
    assert not result.stalls


@pytest.mark.parametrize("mode", ["analytic", "fd-hess-cs", "sr1"])
def test_multipliers_satisfy_stationarity(fastnn_results, mode):
    result = fastnn_results[mode]
    v_reference, _ = kkt_multipliers(X_STAR)
    v = [result.multipliers[0][0], result.multipliers[1][0], result.bound_multipliers[0]]
    np.testing.assert_allclose(v, v_reference, rtol=1e-5)
    # inactive bounds carry no multiplier
    np.testing.assert_allclose(result.bound_multipliers[1:], 0, atol=1e-6)


def test_scipy_defaults_stop_short_of_the_optimum():
    result = solve(HS071, "analytic", defaults="scipy")
    assert result.success
    assert 1e-7 < relative_error(result.f) < 1e-5
    assert result.options == {}


def test_explicit_options_override_the_defaults():
    result = solve(HS071, "analytic", gtol=1e-8, barrier_tol=1e-8)
    assert result.options == {**FASTNN_OPTIONS, "gtol": 1e-8, "barrier_tol": 1e-8}
    assert relative_error(result.f) > 1e-7


# --------------------------------------------------------------------------
# derivative check
# --------------------------------------------------------------------------

def test_derivative_check_passes_on_hs071():
    report = check_derivatives(HS071, n_random=5, seed=3)
    expected = {"gradient", "hessian", "product.jacobian", "product.hessian",
                "squares.jacobian", "squares.hessian"}
    assert set(report) == expected
    for item, errors in report.items():
        assert errors["central"] < 1e-8, item
        assert errors["complex-step"] < 1e-13, item


def test_derivative_check_catches_wrong_derivatives():
    def wrong_hessian(x, v):  # the true one is 2·v0·I
        return v[0] * np.eye(4)

    squares = Constraint(lambda x: np.array([np.sum(x ** 2)]), lambda x: 2 * x[None, :],
                         wrong_hessian, lb=40, ub=40, name="squares")
    broken = Problem(fun=HS071.fun, grad=lambda x: HS071.grad(x) * (1 + 1e-4),
                     hess=HS071.hess, x0=HS071.x0, constraints=[squares], bounds=(1, 5))
    report = check_derivatives(broken, n_random=2)
    for method in ("central", "complex-step"):
        assert report["gradient"][method] == pytest.approx(1e-4, rel=1e-2)
        assert report["squares.hessian"][method] == pytest.approx(0.5, rel=1e-6)
        # the Hessian is checked against differences of the (scaled) gradient
        assert report["hessian"][method] == pytest.approx(1e-4, rel=1e-2)
        assert report["squares.jacobian"][method] < 1e-8


def test_complex_step_check_refuses_callables_that_drop_the_imaginary_part():
    real_only = Problem(fun=lambda x: float(x[0]) ** 2, grad=lambda x: 2 * x,
                        hess=lambda x: 2 * np.eye(1), x0=[1.5])
    with pytest.raises(ValueError, match="complex"):
        check_derivatives(real_only)
    report = check_derivatives(real_only, methods=("central",))
    assert report["gradient"]["central"] < 1e-9


def test_derivative_check_of_a_zero_hessian_reports_zero_error():
    # the plane's Hessian is exactly zero, and so are the differences of its
    # constant Jacobian: 0, not 0/0
    report = check_derivatives(projection_problem(), n_random=2)
    assert report["plane.hessian"] == {"central": 0.0, "complex-step": 0.0}
    assert report["hessian"]["central"] < 1e-9


def test_difference_formulas_against_a_closed_form():
    def fun(x):
        return np.exp(x[0]) * np.sin(x[1])

    x = np.array([0.3, 1.1])
    exact = np.array([np.exp(0.3) * np.sin(1.1), np.exp(0.3) * np.cos(1.1)])
    np.testing.assert_allclose(central_difference(fun, x), exact, rtol=1e-9)
    np.testing.assert_allclose(complex_step(fun, x), exact, rtol=1e-15)


# --------------------------------------------------------------------------
# call counting
# --------------------------------------------------------------------------

class Tally:
    """An independent call counter around a callable."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args):
        self.calls += 1
        return self.function(*args)


def tallied_hs071():
    tallies = {name: Tally(getattr(HS071, name)) for name in ("fun", "grad", "hess")}
    constraints = []
    for c in HS071.constraints:
        parts = {part: Tally(getattr(c, part)) for part in ("fun", "jac", "hess")}
        tallies.update({(c.name, part): tally for part, tally in parts.items()})
        constraints.append(Constraint(parts["fun"], parts["jac"], parts["hess"], c.lb, c.ub,
                                      c.name))
    problem = Problem(tallies["fun"], tallies["grad"], tallies["hess"], HS071.x0,
                      constraints, HS071.bounds, name="tallied")
    return problem, tallies


@pytest.mark.parametrize("mode", MODES)
def test_call_counts_match_independent_counters(mode):
    problem, tallies = tallied_hs071()
    result = solve(problem, mode, defaults="scipy")
    assert result.calls["fun"] == tallies["fun"].calls
    assert result.calls["grad"] == tallies["grad"].calls
    assert result.calls["hess"] == tallies["hess"].calls
    for name in ("product", "squares"):
        for part, key in (("fun", "fun"), ("jac", "jac"), ("hess", "hess")):
            assert result.constraint_calls[name][key] == tallies[name, part].calls
    assert result.calls["constr"] == sum(tallies[name, "fun"].calls
                                         for name in ("product", "squares"))


def test_fd_all_counts_every_difference_call():
    # each call of the central-difference gradient costs exactly 2n objective
    # calls; scipy counts those gradient calls (njev) but not the objective
    # calls inside them
    result = solve(HS071, "fd-all", defaults="scipy")
    n, counts = HS071.n, result.scipy_counts
    assert result.calls["grad"] == result.calls["hess"] == 0
    assert result.calls["fun"] == counts["nfev"] + 2 * n * counts["njev"]
    assert result.calls["fun"] > counts["nfev"]
    for name, nfev, njev in zip(("product", "squares"), counts["constr_nfev"],
                                counts["constr_njev"]):
        assert result.constraint_calls[name]["fun"] == nfev + 2 * n * njev


def test_fd_jacobians_are_counted_although_scipy_reports_none():
    result = solve(HS071, "fd-bfgs", defaults="scipy")
    assert result.scipy_counts["constr_njev"] == [0, 0]
    assert result.calls["constr_jac"] == 0
    assert result.calls["constr"] == sum(result.scipy_counts["constr_nfev"])
    assert result.calls["fun"] == result.scipy_counts["nfev"]


def test_difference_formulas_make_the_stated_number_of_calls():
    for n in (1, 3, 6):
        tally = Tally(lambda x: np.sum(x ** 3))
        central_difference(tally, np.ones(n))
        assert tally.calls == 2 * n
        tally.calls = 0
        complex_step(tally, np.ones(n))
        assert tally.calls == n


# --------------------------------------------------------------------------
# a user-defined problem with a closed-form answer
# --------------------------------------------------------------------------

C = np.array([3.0, -1.0, 2.0, 0.5, 1.0])
A = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
B = 4.0


def projection_problem(inequality=False, bounds=None):
    """minimize ½‖x − c‖² subject to a·x = b (or a·x ≥ b)."""
    plane = Constraint(fun=lambda x: np.array([A @ x]), jac=lambda x: A[np.newaxis, :],
                       hess=lambda x, v: np.zeros((5, 5)), lb=B,
                       ub=np.inf if inequality else B, name="plane")
    return Problem(fun=lambda x: 0.5 * np.sum((x - C) ** 2), grad=lambda x: x - C,
                   hess=lambda x: np.eye(5), x0=np.zeros(5), constraints=[plane],
                   bounds=bounds, name="projection")


def projection_answer():
    shift = (A @ C - B) / (A @ A)
    return C - shift * A, shift  # minimiser and multiplier (∇f + v·a = 0)


@pytest.mark.parametrize("mode", MODES)
def test_user_problem_matches_projection_formula(mode):
    x_star, multiplier = projection_answer()
    result = solve(projection_problem(), mode)
    assert result.success, result.message
    np.testing.assert_allclose(result.x, x_star, atol=1e-6)
    assert result.f == pytest.approx(0.5 * np.sum((x_star - C) ** 2), rel=1e-9)
    assert result.multipliers[0][0] == pytest.approx(multiplier, rel=1e-5)
    assert result.bound_multipliers is None


def test_user_problem_with_inequality_and_inactive_bounds():
    x_star, _ = projection_answer()
    assert A @ C < B  # the unconstrained minimiser violates a·x ≥ b
    result = solve(projection_problem(inequality=True, bounds=(-10, 10)), "analytic")
    assert result.success, result.message
    np.testing.assert_allclose(result.x, x_star, atol=1e-8)
    np.testing.assert_allclose(result.bound_multipliers, 0, atol=1e-8)


def test_warnings_raised_during_a_solve_are_recorded():
    base = projection_problem()

    def warning_objective(x):
        warnings.warn("objective evaluated", RuntimeWarning)
        return base.fun(x)

    problem = Problem(fun=warning_objective, grad=base.grad, hess=base.hess, x0=base.x0,
                      constraints=base.constraints, name="warning projection")
    result = solve(problem, "analytic")
    assert result.success, result.message
    # every evaluation is recorded, not only the first one per call site
    assert result.warnings.count("objective evaluated") == result.calls["fun"]


# --------------------------------------------------------------------------
# the BFGS / keep_feasible trap
# --------------------------------------------------------------------------

def test_bfgs_keep_feasible_stall_is_detected_and_recovered():
    result = solve(HS071, "bfgs", keep_feasible=True)
    assert len(result.stalls) == 1
    _, f_stalled = result.stalls[0]
    assert f_stalled == pytest.approx(17.445, abs=1e-3)
    assert result.restarts == 1
    assert result.iterations < 600  # the stall was cut short, not run to maxiter
    assert result.success
    assert relative_error(result.f) <= TOLERANCES["bfgs"]


def test_bfgs_keep_feasible_stall_is_reported_without_restarts():
    result = solve(HS071, "bfgs", keep_feasible=True, restarts=0)
    assert not result.success
    assert result.stalled and result.restarts == 0
    assert result.f == pytest.approx(17.445, abs=1e-3)
    assert "stalled" in result.message
    assert result.iterations < 200  # stopped by the monitor, not by maxiter


# --------------------------------------------------------------------------
# multi-start
# --------------------------------------------------------------------------

def test_multistart_finds_distinct_known_minima():
    report = multistart(HS071, 6, seed=6)
    assert report.starts.shape == (6, 4)
    assert np.all((report.starts >= 1) & (report.starts <= 5))
    assert sum(m.hits for m in report.minima) + report.failures == 6
    assert len(report.minima) >= 2
    assert relative_error(report.minima[0].f) <= TOLERANCES["analytic"]
    for minimum in report.minima[1:]:
        assert min(abs(minimum.f - known) for known in OTHER_MINIMA) < 1e-3
        assert HS071.violation(minimum.x) <= 1e-8
    points = [m.x for m in report.minima]
    assert all(np.linalg.norm(p - q) > 1e-3 for i, p in enumerate(points) for q in points[:i])
    again = multistart(HS071, 6, seed=6)
    np.testing.assert_array_equal(again.starts, report.starts)


# --------------------------------------------------------------------------
# table, CSV and command line
# --------------------------------------------------------------------------

def test_table_rows_csv_and_text(tmp_path):
    results = compare(HS071, modes=("analytic", "fd-bfgs"), defaults=("fastnn", "scipy"),
                      trap=False)
    rows = table_rows(HS071, results)
    assert [(row["mode"], row["options"]) for row in rows] == [
        ("analytic", "fastnn"), ("fd-bfgs", "fastnn"), ("analytic", "scipy"),
        ("fd-bfgs", "scipy")]
    for row, result in zip(rows, results):
        assert row["rel_error"] == pytest.approx(relative_error(result.f))
        assert row["x_error"] == pytest.approx(np.linalg.norm(result.x - X_STAR))
        assert row["fun_calls"] == result.calls["fun"]

    path = tmp_path / "table.csv"
    write_csv(rows, path)
    with open(path, newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert [r["mode"] for r in read] == [row["mode"] for row in rows]
    assert float(read[0]["f"]) == pytest.approx(rows[0]["f"], rel=1e-15)

    lines = format_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    # right-aligned numeric columns end at the same offset on every line
    column = lines[0].index("|f-f*|/f*") + len("|f-f*|/f*")
    assert all(line[column - 1] != " " for line in lines[2:])


def test_main_prints_table_and_writes_csv(tmp_path, capsys):
    path = tmp_path / "out.csv"
    status = main(["--modes", "analytic,fd-all", "--defaults", "fastnn", "--csv", str(path),
                   "--multistart", "3", "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0
    assert "analytic" in out and "fd-all" in out and "multi-start" in out
    assert "stall at it" in out  # the keep_feasible BFGS row
    with open(path, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_main_rejects_unknown_mode(capsys):
    with pytest.raises(SystemExit):
        main(["--modes", "newton"])
    assert "unknown mode" in capsys.readouterr().err


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode"):
        solve(HS071, "exact")


def test_unknown_option_and_defaults():
    with pytest.raises(ValueError, match="unknown trust-constr option"):
        solve(HS071, "analytic", gtoll=1e-9)
    with pytest.raises(ValueError, match="defaults"):
        solve(HS071, "analytic", defaults="tuned")


def test_x0_of_wrong_length():
    with pytest.raises(ValueError, match="x0"):
        solve(HS071, "analytic", x0=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="x0"):
        Problem(HS071.fun, HS071.grad, HS071.hess, x0=[[1.0, 5.0], [5.0, 1.0]])


def test_bounds_shape_mismatch():
    with pytest.raises(ValueError, match="bounds"):
        Problem(HS071.fun, HS071.grad, HS071.hess, HS071.x0, bounds=([1, 1, 1], 5))
    with pytest.raises(ValueError, match="lower bounds exceed"):
        Problem(HS071.fun, HS071.grad, HS071.hess, HS071.x0, bounds=(5, 1))
    with pytest.raises(ValueError, match="pair"):
        Problem(HS071.fun, HS071.grad, HS071.hess, HS071.x0, bounds=np.ones(4))


def test_callable_returning_wrong_shape():
    bad = Problem(HS071.fun, lambda x: HS071.grad(x)[:3], HS071.hess, HS071.x0,
                  HS071.constraints, HS071.bounds)
    with pytest.raises(ValueError, match="grad returned shape"):
        solve(bad, "analytic")
    bad_jac = Constraint(HS071.constraints[0].fun, lambda x: np.ones((2, 4)),
                         HS071.constraints[0].hess, lb=25, name="product")
    bad = Problem(HS071.fun, HS071.grad, HS071.hess, HS071.x0, [bad_jac], HS071.bounds)
    with pytest.raises(ValueError, match="jac returned shape"):
        solve(bad, "analytic")


def test_violation_is_measured_from_the_problem_functions():
    x = np.array([0.5, 5.0, 5.0, 1.0])  # x1 below its bound by 0.5
    expected = max(25 - 0.5 * 5 * 5 * 1, abs(np.sum(x ** 2) - 40), 0.5)
    assert HS071.violation(x) == pytest.approx(expected)
    assert math.isclose(HS071.violation(X_STAR), 0, abs_tol=1e-9)



def quadratic_problem(bounds=None):
    """minimize (x − 2)² in one variable: the minimiser is 2, in a few iterations."""
    return Problem(fun=lambda x: (x[0] - 2) ** 2, grad=lambda x: 2 * (x - 2),
                   hess=lambda x: 2 * np.eye(1), x0=[0.0], bounds=bounds, name="quadratic")


def untouched(problem_and_tallies):
    """True if no user callable of a tallied problem was called."""
    _, tallies = problem_and_tallies
    return all(tally.calls == 0 for tally in tallies.values())


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                          ("2", TypeError), (None, TypeError)])
def test_restarts_must_be_a_non_negative_integer(value, error):
    tallied = tallied_hs071()
    with pytest.raises(error, match="restarts"):
        solve(tallied[0], "bfgs", keep_feasible=True, restarts=value)
    assert untouched(tallied)


@pytest.mark.parametrize("value, error", [(-1, ValueError), (0, ValueError), (2.0, TypeError),
                                          (True, TypeError), ("40", TypeError)])
def test_stall_window_must_be_a_positive_integer(value, error):
    tallied = tallied_hs071()
    with pytest.raises(error, match="stall_window"):
        solve(tallied[0], "analytic", stall_window=value)
    assert untouched(tallied)


def test_a_huge_stall_window_never_stalls():
    result = solve(quadratic_problem(), "analytic", stall_window=2 ** 70)
    assert result.success and not result.stalls
    assert result.x[0] == pytest.approx(2, abs=1e-8)


@pytest.mark.parametrize("arguments, error, name", [
    ({"mode": ["analytic"]}, ValueError, "mode"),
    ({"mode": None}, ValueError, "mode"),
    ({"defaults": ["fastnn"]}, ValueError, "defaults"),
    ({"keep_feasible": "no"}, TypeError, "keep_feasible"),
    ({"keep_feasible": 1}, TypeError, "keep_feasible"),
    ({"feasibility_tol": -1e-6}, ValueError, "feasibility_tol"),
    ({"feasibility_tol": math.nan}, ValueError, "feasibility_tol"),
    ({"feasibility_tol": "1e-6"}, TypeError, "feasibility_tol"),
    ({"x0": "abcd"}, TypeError, "x0"),
    ({"x0": [1.0, math.nan, 5.0, 1.0]}, ValueError, "x0"),
    ({"gtol": "small"}, TypeError, "gtol"),
    ({"gtol": -1.0}, ValueError, "gtol"),
    ({"maxiter": 2.5}, TypeError, "maxiter"),
    ({"maxiter": 0}, ValueError, "maxiter"),
    ({"verbose": 7}, ValueError, "verbose"),
    ({"disp": "yes"}, TypeError, "disp"),
])
def test_solve_checks_its_arguments_before_calling_anything(arguments, error, name):
    tallied = tallied_hs071()
    arguments = {"mode": "analytic", **arguments}
    with pytest.raises(error, match=name):
        solve(tallied[0], **arguments)
    assert untouched(tallied)


def test_solve_needs_a_problem():
    with pytest.raises(TypeError, match="problem"):
        solve("HS071")


@pytest.mark.parametrize("call, error, name", [
    (lambda: central_difference(np.sin, [1.0], rel_step=0.0), ValueError, "rel_step"),
    (lambda: central_difference(np.sin, [1.0], rel_step="1e-6"), TypeError, "rel_step"),
    (lambda: complex_step(np.sin, [1.0], step=0.0), ValueError, "step"),
    (lambda: complex_step(np.sin, [1.0], step=-1e-30), ValueError, "step"),
    (lambda: central_difference(np.sin, 1.0), ValueError, r"\bx\b"),
    (lambda: complex_step(np.sin, [[1.0]]), ValueError, r"\bx\b"),
    (lambda: central_difference(None, [1.0]), TypeError, "fun"),
])
def test_difference_formulas_check_their_arguments(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("arguments, error, name", [
    ({"fun": None}, TypeError, "fun"),
    ({"grad": 3}, TypeError, "grad"),
    ({"x0": [1.0, math.inf]}, ValueError, "x0"),
    ({"x0": "ab"}, TypeError, "x0"),
    ({"f_star": "low"}, TypeError, "f_star"),
    ({"x_star": [1.0, math.nan]}, ValueError, "x_star"),
    ({"bounds": (math.nan, 5.0)}, ValueError, "bounds"),
    ({"name": 71}, TypeError, "name"),
    ({"constraints": Constraint(np.sin, np.cos, np.cos)}, TypeError, "constraints"),
])
def test_problem_checks_its_fields(arguments, error, name):
    fields = {"fun": np.sum, "grad": np.ones_like, "hess": lambda x: np.zeros((2, 2)),
              "x0": [1.0, 2.0], **arguments}
    with pytest.raises(error, match=name):
        Problem(**fields)


@pytest.mark.parametrize("arguments, error, name", [
    ({"fun": None}, TypeError, "fun"),
    ({"hess": "2I"}, TypeError, "hess"),
    ({"lb": "low"}, TypeError, "lb"),
    ({"ub": math.nan}, ValueError, "ub"),
    ({"name": 0}, TypeError, "name"),
])
def test_constraint_checks_its_fields(arguments, error, name):
    fields = {"fun": np.sum, "jac": np.ones_like, "hess": np.zeros_like, **arguments}
    with pytest.raises(error, match=name):
        Constraint(**fields)


@pytest.mark.parametrize("arguments, error, name", [
    ({"modes": "analytic"}, TypeError, "modes"),
    ({"modes": 3}, TypeError, "modes"),
    ({"modes": ("analytic", "newton")}, ValueError, "modes"),
    ({"defaults": "fastnn"}, TypeError, "defaults"),
    ({"defaults": ("fastnn", "tuned")}, ValueError, "defaults"),
    ({"trap": "no"}, TypeError, "trap"),
])
def test_compare_checks_its_arguments_before_solving(arguments, error, name):
    tallied = tallied_hs071()
    with pytest.raises(error, match=name):
        compare(tallied[0], **arguments)
    assert untouched(tallied)


@pytest.mark.parametrize("arguments, error, name", [
    ({"n_starts": 0}, ValueError, "n_starts"),
    ({"n_starts": 2.5}, TypeError, "n_starts"),
    ({"n_starts": "3"}, TypeError, "n_starts"),
    ({"n_starts": True}, TypeError, "n_starts"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"feasibility": -1e-6}, ValueError, "feasibility"),
    ({"feasibility": math.nan}, ValueError, "feasibility"),
    ({"feasibility": None}, TypeError, "feasibility"),
    ({"distinct": -1.0}, ValueError, "distinct"),
    ({"mode": "exact"}, ValueError, "mode"),
])
def test_multistart_checks_its_arguments_before_solving(arguments, error, name):
    tallied = tallied_hs071()
    arguments = {"n_starts": 2, **arguments}
    with pytest.raises(error, match=name):
        multistart(tallied[0], **arguments)
    assert untouched(tallied)


@pytest.mark.parametrize("arguments, error, name", [
    ({"n_random": -1}, ValueError, "n_random"),
    ({"n_random": 2.5}, TypeError, "n_random"),
    ({"n_random": True}, TypeError, "n_random"),
    ({"seed": -3}, ValueError, "seed"),
    ({"seed": "0"}, TypeError, "seed"),
    ({"methods": "central"}, TypeError, "methods"),
    ({"methods": None}, TypeError, "methods"),
    ({"methods": ()}, ValueError, "methods"),
    ({"methods": ("central", "forward")}, ValueError, "methods"),
])
def test_check_derivatives_checks_its_arguments(arguments, error, name):
    tallied = tallied_hs071()
    with pytest.raises(error, match=name):
        check_derivatives(tallied[0], **arguments)
    assert untouched(tallied)


def test_derivative_check_reports_a_nan_derivative():
    # max() would drop the NaN: max(0.0, nan) is 0.0
    broken = Problem(fun=HS071.fun, grad=lambda x: np.full(4, np.nan), hess=HS071.hess,
                     x0=HS071.x0, bounds=(1, 5))
    report = check_derivatives(broken, n_random=2)
    assert all(math.isnan(error) for error in report["gradient"].values())


@pytest.mark.parametrize("rows, path, error, name", [
    ([{"a": 1}], None, TypeError, r"\bpath\b"),
    ([{"a": 1}], 3, TypeError, r"\bpath\b"),
    ([{"a": 1}], "", ValueError, r"\bpath\b"),
    ("a,b", "table.csv", TypeError, "rows"),
    ({"a": 1}, "table.csv", TypeError, "rows"),
    ([1, 2], "table.csv", TypeError, "rows"),
    ([{"a": 1}, {"b": 2}], "table.csv", ValueError, "rows"),
])
def test_write_csv_checks_its_arguments(tmp_path, monkeypatch, rows, path, error, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "table.csv").write_text("previous\n")
    with pytest.raises(error, match=name):
        write_csv(rows, path)
    assert (tmp_path / "table.csv").read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_main_rejects_a_negative_seed(capsys):
    with pytest.raises(SystemExit):
        main(["--seed", "-1", "--modes", "analytic"])
    assert "--seed" in capsys.readouterr().err


# --------------------------------------------------------------------------
# properties of the argument checks: any integer, float, None or string either
# gives a result or a TypeError/ValueError naming the argument
# --------------------------------------------------------------------------

ANY_VALUE = st.one_of(st.integers(), st.floats(), st.none(), st.text(max_size=6))
# the same, but no integer that would ask for more than a few solves or points
FEW = st.one_of(st.integers(max_value=2), st.floats(), st.none(), st.text(max_size=6))


def named_error_or(call, name):
    """call()'s result, or None if it raised a TypeError/ValueError naming ``name``."""
    try:
        return call()
    except (TypeError, ValueError) as error:
        assert name in str(error), f"{type(error).__name__} does not name {name}: {error}"
        return None


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["restarts", "stall_window", "feasibility_tol", "keep_feasible",
                             "mode", "defaults", "x0", "xtol", "maxiter"]),
       value=ANY_VALUE)
def test_solve_argument_property(name, value):
    result = named_error_or(lambda: solve(quadratic_problem(), **{name: value}), name)
    if result is not None and name not in ("xtol", "maxiter"):  # those may stop it early
        assert result.x[0] == pytest.approx(2, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["n_starts", "seed", "feasibility", "distinct"]), value=FEW)
def test_multistart_argument_property(name, value):
    arguments = {"n_starts": 1, name: value}
    report = named_error_or(lambda: multistart(quadratic_problem((-1.0, 5.0)), **arguments),
                            name)
    if report is not None:
        assert report.starts.shape == (arguments["n_starts"], 1)
        assert len(report.results) == arguments["n_starts"]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["n_random", "seed", "methods"]), value=FEW)
def test_check_derivatives_argument_property(name, value):
    report = named_error_or(lambda: check_derivatives(quadratic_problem((-1.0, 5.0)),
                                                      **{name: value}), name)
    if report is not None:
        assert set(report) == {"gradient", "hessian"}
        assert all(error < 1e-8 for errors in report.values() for error in errors.values())


@settings(max_examples=60, deadline=None)
@given(rows=ANY_VALUE, path=st.one_of(st.integers(), st.floats(), st.none()))
def test_write_csv_argument_property(rows, path):
    # rows first: a bad rows is named whatever the path; every path here is of a wrong type.
    # (String paths are not drawn: a directory that does not exist is an OSError.)
    try:
        write_csv(rows, path)
    except (TypeError, ValueError) as error:
        assert "rows" in str(error) or "path" in str(error), str(error)
    else:
        raise AssertionError("write_csv accepted a wrong rows or path")
