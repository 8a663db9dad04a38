"""Optimizer landscapes: every fastnn optimizer on small 2-D (and 1-D) surfaces.

Each optimizer runs through its public life cycle — ``bind(n, float64, n)``
then ``step(params, grads)`` per iteration, i.e. the same compiled update
kernels that train networks — on a surface whose gradient is known in closed
form:

=================  ==================================  ===============  ============
surface            f                                   start            goal
=================  ==================================  ===============  ============
``ravine``         ½(x² + 100 y²)                      (−10, 1)         f < 10⁻⁶
``ravine45``       the ravine rotated by 45°           Rᵀ(−10, 1)       f < 10⁻⁶
``saddle``         x² − y²                             (−1, 0)          f < −1
``monkey``         x³ − 3 x y²                         (1, 0)           f < −1
``cubic``          x³ (one dimension)                  1                f < −1
``rosenbrock``     (1 − x)² + 100 (y − x²)²            (−1.2, 1)        f < 10⁻⁴
=================  ==================================  ===============  ============

The saddle and monkey-saddle runs start on the stable manifold (y = 0),
where the gradient has no y-component: gradient descent slides to the
critical point and stays there.  With annealed gradient noise — N(0, σ_t²)
added to the gradient, σ_t² = η/(1 + t)^γ as ``Sequential(gradient_noise=(η,
γ))`` uses — the iterate leaves the manifold and escapes.  On the cubic, x = 0
is an inflection point where the gradient 3x² vanishes.

For every optimizer the study tries each learning rate of a grid and keeps
the one that reaches the goal in the fewest steps (or, if none does, ends
lowest), and reports that number of steps and how many rates of the grid
reach the goal at all.  On the surfaces that are unbounded below the grid
stops at 0.05: a larger step jumps past the critical point in one move,
which says nothing about escaping it.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from fastnn import optimizers as _optimizers

#: the learning rates tried for every optimizer
LR_GRID = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
QUICK_LR_GRID = (1e-2, 0.1, 1.0)
#: the learning rates tried on the surfaces that are unbounded below
ESCAPE_LR_GRID = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)
QUICK_ESCAPE_LR_GRID = (1e-3, 1e-2, 5e-2)
#: default annealed gradient noise (η, γ) of the noisy runs
NOISE = (0.01, 0.55)
#: an iterate this far out counts as diverged
DIVERGED = 1e8


@dataclass(frozen=True)
class Surface:
    """A test function with its gradient, start point and goal.

    Attributes
    ----------
    name, formula : str
    f : callable
        f(θ) for θ of shape (dim,).
    grad : callable
        ∇f(θ), shape (dim,).
    start : tuple
    goal : float
        A run succeeds at the first step with f(θ) < goal.
    max_steps : int
        Step budget of a run.
    box : tuple
        ((x_min, x_max), (y_min, y_max)) for the contour plot (1-D: x range only).
    unbounded : bool
        f has no minimum: the goal is to escape the critical point.
    """

    name: str
    formula: str
    f: object
    grad: object
    start: tuple
    goal: float
    max_steps: int
    box: tuple
    unbounded: bool = False

    @property
    def dim(self):
        return len(self.start)


_C45 = math.sqrt(0.5)
# Rotation by 45°: (u, v) = R θ are the ravine's own axes.
_R45 = np.array([[_C45, _C45], [-_C45, _C45]])
_CURVATURES = np.array([1.0, 100.0])


def _ravine45(theta):
    u = np.tensordot(_R45, theta, axes=1)  # θ of shape (2,) or a stack (2, ...)
    return 0.5 * (_CURVATURES[0] * u[0] ** 2 + _CURVATURES[1] * u[1] ** 2)


def _ravine45_grad(theta):
    return _R45.T @ (_CURVATURES * (_R45 @ theta))


SURFACES = {
    "ravine": Surface(
        "ravine", "f = ½(x² + 100y²)",
        lambda p: 0.5 * (p[0] ** 2 + 100.0 * p[1] ** 2),
        lambda p: np.array([p[0], 100.0 * p[1]]),
        (-10.0, 1.0), 1e-6, 3000, ((-11.0, 3.0), (-1.6, 1.6))),
    "ravine45": Surface(
        "ravine45", "the ravine rotated 45°", _ravine45, _ravine45_grad,
        tuple(_R45.T @ np.array([-10.0, 1.0])), 1e-6, 3000, ((-8.5, 2.5), (-8.5, 2.5))),
    "saddle": Surface(
        "saddle", "f = x² − y²",
        lambda p: p[0] ** 2 - p[1] ** 2,
        lambda p: np.array([2.0 * p[0], -2.0 * p[1]]),
        (-1.0, 0.0), -1.0, 1000, ((-1.5, 1.5), (-1.5, 1.5)), True),
    "monkey": Surface(
        "monkey", "f = x³ − 3xy²",
        lambda p: p[0] ** 3 - 3.0 * p[0] * p[1] ** 2,
        lambda p: np.array([3.0 * p[0] ** 2 - 3.0 * p[1] ** 2, -6.0 * p[0] * p[1]]),
        (1.0, 0.0), -1.0, 1000, ((-1.5, 1.5), (-1.5, 1.5)), True),
    "cubic": Surface(
        "cubic", "f = x³",
        lambda p: p[0] ** 3,
        lambda p: np.array([3.0 * p[0] ** 2]),
        (1.0,), -1.0, 1000, ((-1.3, 1.3),), True),
    "rosenbrock": Surface(
        "rosenbrock", "f = (1 − x)² + 100(y − x²)²",
        lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2,
        lambda p: np.array([-2.0 * (1.0 - p[0]) - 400.0 * p[0] * (p[1] - p[0] ** 2),
                            200.0 * (p[1] - p[0] ** 2)]),
        (-1.2, 1.0), 1e-4, 5000, ((-2.0, 2.0), (-1.0, 3.0))),
}

#: every fastnn optimizer, as a function of the learning rate
OPTIMIZERS = {
    "SGD": lambda lr: _optimizers.SGD(lr=lr),
    "momentum": lambda lr: _optimizers.SGD(lr=lr, momentum=0.9),
    "Nesterov": lambda lr: _optimizers.SGD(lr=lr, momentum=0.9, nesterov=True),
    "AdaGrad": lambda lr: _optimizers.AdaGrad(lr=lr),
    "RMSProp": lambda lr: _optimizers.RMSProp(lr=lr),
    "AdaDelta": lambda lr: _optimizers.AdaDelta(lr=lr),
    "Adam": lambda lr: _optimizers.Adam(lr=lr),
    "AdamW": lambda lr: _optimizers.AdamW(lr=lr, weight_decay=1e-2),
}

#: optimizers that scale each coordinate by its own gradient history
PER_COORDINATE = ("AdaGrad", "RMSProp", "AdaDelta", "Adam", "AdamW")


@dataclass
class Run:
    """One optimizer at one learning rate on one surface.

    Attributes
    ----------
    points : ndarray, shape (n_steps + 1, dim)
        θ_0 (the start) … θ_n.
    values : ndarray, shape (n_steps + 1,)
        f(θ_t).
    steps : int or None
        First t with f(θ_t) < goal, None if the goal was not reached.
    diverged : bool
        The iterate left every bound (or stopped being finite).
    """

    surface: str
    optimizer: str
    lr: float
    noise: object
    points: np.ndarray
    values: np.ndarray
    steps: object
    diverged: bool
    extra: dict = field(default_factory=dict)

    @property
    def final(self):
        return float(self.values[-1])


def _check_noise(noise):
    if noise is None:
        return None
    try:
        eta, gamma = (noise, 0.55) if np.isscalar(noise) else tuple(noise)
        eta, gamma = float(eta), float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be η > 0 or (η > 0, γ ≥ 0), got {noise!r}") from None
    if not (eta > 0 and gamma >= 0 and math.isfinite(eta) and math.isfinite(gamma)):
        raise ValueError(f"noise must be η > 0 or (η > 0, γ ≥ 0), got {noise!r}")
    return float(eta), float(gamma)


def run(surface, optimizer, lr, noise=None, seed=0, max_steps=None):
    """Run one optimizer on one surface until it reaches the goal, diverges or runs out of steps.

    Parameters
    ----------
    surface : str or Surface
    optimizer : str
        A key of ``OPTIMIZERS``.
    lr : float
    noise : float or (float, float), optional
        η or (η, γ): add N(0, σ_t²) to every gradient component,
        σ_t² = η/(1 + t)^γ at step t = 0, 1, … (γ = 0.55 by default).
    seed : int
        Seed of the noise generator.
    max_steps : int, optional
        Step budget (default: the surface's).

    Returns
    -------
    Run
    """
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    noise = _check_noise(noise)
    budget = surface.max_steps if max_steps is None else int(max_steps)
    if budget <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps!r}")
    opt = OPTIMIZERS[optimizer](lr)
    theta = np.array(surface.start, dtype=np.float64)
    # Every coordinate is a "weight", so AdamW's decoupled decay applies to all.
    opt.bind(theta.size, np.float64, theta.size)
    rng = np.random.default_rng(seed)
    points, values = [theta.copy()], [surface.f(theta)]
    steps, diverged = None, False
    for t in range(budget):
        g = surface.grad(theta)
        if noise is not None:
            eta, gamma = noise
            g = g + rng.normal(0.0, math.sqrt(eta / (1.0 + t) ** gamma), size=g.shape)
        opt.step(theta, g)
        value = surface.f(theta)
        points.append(theta.copy())
        values.append(value)
        if not (math.isfinite(value) and np.abs(theta).max() < DIVERGED):
            diverged = True
            break
        if value < surface.goal:
            steps = t + 1
            break
    return Run(surface.name, optimizer, float(lr), noise, np.array(points), np.array(values),
               steps, diverged)


def _better(candidate, best):
    """Fewer steps to the goal wins; among runs that miss it, the lower final value."""
    if best is None:
        return True
    if candidate.steps is not None or best.steps is not None:
        if best.steps is None:
            return True
        return candidate.steps is not None and candidate.steps < best.steps
    if candidate.diverged != best.diverged:
        return best.diverged
    return candidate.final < best.final


def best_run(surface, optimizer, grid=LR_GRID, noise=None, seed=0, max_steps=None):
    """The run with the best learning rate of ``grid`` (see :func:`_better`).

    ``extra["reached"]`` of the returned run counts the rates of the grid
    that reach the goal, ``extra["tried"]`` the rates tried.
    """
    best, reached = None, 0
    for lr in grid:
        candidate = run(surface, optimizer, lr, noise=noise, seed=seed, max_steps=max_steps)
        reached += candidate.steps is not None
        if _better(candidate, best):
            best = candidate
    best.extra.update(reached=reached, tried=len(grid))
    return best


def step_sizes(optimizer, lr, surface="ravine", n_steps=500):
    """Per-coordinate effective learning rates |Δθ_i| / |g_i| along a run.

    For AdaGrad this is γ/(√Σ_{s≤t} g_{s,i}² + ε), which can only shrink; for
    RMSProp γ/(√v_{t,i} + ε) with v a moving average, which recovers when
    the gradients get small.

    Returns
    -------
    gradients, rates : ndarray, shape (n_steps, dim)
        The gradient at every step and the effective rate of that step.
    """
    surface = SURFACES[surface] if isinstance(surface, str) else surface
    opt = OPTIMIZERS[optimizer](lr)
    theta = np.array(surface.start, dtype=np.float64)
    opt.bind(theta.size, np.float64, theta.size)
    gradients, rates = [], []
    for _ in range(n_steps):
        g = surface.grad(theta)
        before = theta.copy()
        opt.step(theta, g)
        gradients.append(g)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates.append(np.abs(theta - before) / np.abs(g))
    return np.array(gradients), np.array(rates)


def format_step_sizes(surface="ravine", n_steps=1000, lr=0.01, at=(1, 10, 100, 1000)):
    """AdaGrad's and RMSProp's effective rates along x at a few steps, as text."""
    lines = [f"effective learning rate |Δx|/|∂f/∂x| on the {surface} (lr = {lr}): AdaGrad's "
             "accumulator only grows, RMSProp's average forgets"]
    lines.append("  " + f"{'step':<10}" + "".join(f"{t:>11d}" for t in at))
    for name in ("AdaGrad", "RMSProp"):
        _, rates = step_sizes(name, lr, surface, n_steps)
        lines.append("  " + f"{name:<10}" + "".join(f"{rates[t - 1, 0]:>11.3g}" for t in at))
    return "\n".join(lines) + "\n"


def study(surfaces=None, optimizers=None, quick=False, noise=NOISE, seed=0):
    """Best runs of every optimizer on every surface, with exact and with noisy gradients.

    Returns
    -------
    dict
        ``{surface: {"exact": {optimizer: Run}, "noisy": {optimizer: Run}}}``.
    """
    surfaces = list(SURFACES) if surfaces is None else list(surfaces)
    optimizers = list(OPTIMIZERS) if optimizers is None else list(optimizers)
    for name in surfaces:
        if name not in SURFACES:
            raise ValueError(f"unknown surface {name!r}; choose from {sorted(SURFACES)}")
    results = {}
    for s, name in enumerate(surfaces):
        if SURFACES[name].unbounded:
            grid = QUICK_ESCAPE_LR_GRID if quick else ESCAPE_LR_GRID
        else:
            grid = QUICK_LR_GRID if quick else LR_GRID
        budget = min(300, SURFACES[name].max_steps) if quick else None
        results[name] = {
            "exact": {o: best_run(name, o, grid, None, seed, budget) for o in optimizers},
            "noisy": {o: best_run(name, o, grid, noise, seed + 1000 * s + k, budget)
                      for k, o in enumerate(optimizers)},
        }
    return results


def _cell(r):
    reached = f"{r.extra.get('reached', '?')}/{r.extra.get('tried', '?')}"
    if r.steps is not None:
        return f"{r.steps:>6d}  {r.lr:<6g} {reached:>5}"
    if r.diverged:
        return f"{'div.':>6}  {'':<6} {reached:>5}"
    return f"{'—':>6}  {r.lr:<6g} {reached:>5}"


NOTES = {
    "ravine": "AdaGrad's and RMSProp's first steps do not depend on the gradient's size — "
              "lr·sign(g) and 10·lr·sign(g) (v₁ = 0.01·g²) — so on this axis-aligned ravine a "
              "lucky lr lands near the minimum at once; the reach column shows how few lrs do",
    "ravine45": "rotated 45°, the ravine's axes are no longer the coordinates: per-coordinate "
                "scaling (AdaGrad, RMSProp, AdaDelta, Adam) can no longer equalize the two "
                "curvatures, and their lead over momentum shrinks or reverses; SGD, momentum "
                "and Nesterov do not care about the rotation (the same steps as above)",
    "saddle": "started on the stable manifold y = 0, exact gradients never leave it; noise "
              "pushes the iterate off and the −y² direction takes over",
    "monkey": "on y = 0 the monkey saddle is the cubic x³, so exact gradients stay on that line "
              "and only the methods that coast through the cubic's flat point get out; noise "
              "leaves the line and one of the three descending valleys takes over",
    "cubic": "x = 0 is an inflection point: the gradient 3x² vanishes and plain descent (and "
             "AdaGrad, whose steps only shrink) creeps toward it without crossing; momentum and "
             "Adam carry their velocity through",
    "rosenbrock": "AdamW's decoupled decay (λ = 0.01) pulls toward the origin, so it settles "
                  "beside the minimum at (1, 1)",
}


def format_table(results):
    """Steps to the goal (and the best learning rate) per surface and optimizer, as text."""
    lines = []
    for name, by_noise in results.items():
        surface = SURFACES[name]
        start = ", ".join(f"{c:.3g}" for c in surface.start)
        lines.append(f"{name}: {surface.formula} from ({start}); steps to f < {surface.goal:g} "
                     f"at the best lr of the grid (—: not reached in {surface.max_steps} steps; "
                     "div.: every lr diverged; reach: lrs of the grid that get there)")
        lines.append(f"  {'optimizer':<10}{'exact':>6}  {'lr':<6} {'reach':>5}   "
                     f"{'noisy':>6}  {'lr':<6} {'reach':>5}")
        for opt in by_noise["exact"]:
            lines.append(f"  {opt:<10}{_cell(by_noise['exact'][opt])}   "
                         f"{_cell(by_noise['noisy'][opt])}")
        if name in NOTES:
            lines.append(f"  ({NOTES[name]})")
        lines.append("")
    return "\n".join(lines)


def plot(results, directory, noisy=True):
    """One PNG per surface: contours and the best trajectory of every optimizer.

    Two panels, exact and noisy gradients; the 1-D cubic shows x_t over the
    steps instead.  Returns the paths written.
    """
    import os

    from fastnn.plotting import pyplot, save_figure

    plt = pyplot()
    paths = []
    kinds = ["exact", "noisy"] if noisy else ["exact"]
    colors = plt.get_cmap("tab10").colors
    for name, by_noise in results.items():
        surface = SURFACES[name]
        figure, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.6), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            runs = by_noise[kind]
            if surface.dim == 1:
                for k, (opt, r) in enumerate(runs.items()):
                    ax.plot(np.arange(len(r.points)), r.points[:, 0], color=colors[k % 10],
                            label=opt, lw=1.2)
                ax.axhline(0.0, color="grey", lw=0.8, ls=":")
                ax.set_xscale("symlog", linthresh=10)
                ax.set_xlim(0, max(len(r.points) for r in runs.values()))
                ax.set_ylim(-1.3, 1.3)
                ax.set_xlabel("step")
                ax.set_ylabel("x")
            else:
                (x0, x1), (y0, y1) = surface.box
                xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
                zs = surface.f(np.stack([xs, ys]))  # every f works on a stack of points
                if name == "rosenbrock" or name.startswith("ravine"):
                    levels = np.geomspace(max(zs.min(), 1e-3), zs.max(), 20)
                    ax.contour(xs, ys, zs, levels=levels, colors="lightgrey", linewidths=0.7)
                else:
                    ax.contour(xs, ys, zs, levels=20, colors="lightgrey", linewidths=0.7)
                for k, (opt, r) in enumerate(runs.items()):
                    ax.plot(r.points[:, 0], r.points[:, 1], color=colors[k % 10], lw=1.1,
                            label=opt, marker="." if len(r.points) < 60 else None, ms=3)
                ax.plot(*surface.start, "k*", ms=9)
                ax.set_xlim(x0, x1)
                ax.set_ylim(y0, y1)
                ax.set_aspect("equal" if name != "ravine" else "auto")
            ax.set_title(f"{surface.formula}, {kind} gradients", fontsize=10)
        axes[0][0].legend(fontsize=7, loc="best")
        figure.tight_layout()
        paths.append(save_figure(figure, os.path.join(directory, f"landscape_{name}.png")))
    return paths
