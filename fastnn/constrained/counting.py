"""Call counting: wrappers that count and shape-check every user callable."""

import numpy as np


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
