"""Scaling study: time per training step against batch size and hidden width.

The C2 network — [784, 256, 128, 10] ReLU, softmax cross-entropy, Adam,
float32 — trained by fastnn, the NumPy reference, PyTorch and JAX (those
installed), at batch sizes 1 to 1024, and then as [784, w, w, 10] for hidden
widths w from 64 to 2048 at batch 64.  Beside the measured times stands the
machine's FLOP floor, the time the step's arithmetic alone takes at the peak
rate of the fastest matrix product measured, on all cores and on one: a
large sgemm through SciPy, or fastnn's own kernels on C2's first-layer
forward product, whose operands stay in L2 (on a CPU where SciPy's
OpenBLAS runs other than its best kernels, they are the faster):

    forward  F = 2·m·Σ n_in·n_out     (m rows, one multiply-add per weight and row)
    step     S = 2·F + 2·m·Σ' n_in·n_out  (weight gradients as much again; input
                                      gradients Σ' over every layer but the first)
    floor    S / peak FLOP/s

Each measurement trains a run of steps over the first steps·m images of
Fashion-MNIST (one epoch of that slice), sized to take about a fixed time;
the time per step is the median over the repeats divided by the steps.
Every library runs on all cores: BLAS pools and PyTorch at the core count,
fastnn's OpenMP and XLA at their defaults (every core).  Compilation (JAX)
happens before timing.  The machine's description heads the output.

Run from the repository root:

    python bench/scaling.py [--quick] [--out docs/scaling.png] [--libraries fastnn,numpy]

``--quick`` (fewer sizes, short runs, one repeat) finishes in well under a
minute and only shows that everything runs: its numbers are not measurements.
The figure is written when matplotlib is installed.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file sees its own folder only: add the checkout, so
# that its fastnn (not an installed one) is measured.
ROOT = Path(__file__).resolve().parent.parent
for _folder in (ROOT, ROOT / "bench"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import numpy as np  # noqa: E402
from machine import describe  # noqa: E402
from numpy_reference import NumpyMLP  # noqa: E402
from peers import jax_or_none, torch_or_none  # noqa: E402
from threads import blas_threads, pause  # noqa: E402
from workloads import C2, initial_weights  # noqa: E402

BATCHES = (1, 4, 10, 32, 64, 128, 256, 512, 1024)
WIDTHS = (64, 128, 256, 512, 1024, 2048)
WIDTH_BATCH = 64
LIBRARIES = ("fastnn", "numpy", "torch", "jax")


class Settings:
    """How long and how often to measure.

    Parameters
    ----------
    quick : bool
        A smoke run: fewer sizes, short runs, no warm-up, one repeat.
    """

    def __init__(self, quick):
        self.quick = quick
        self.batches = (1, 10, 128) if quick else BATCHES
        self.widths = (64, 256) if quick else WIDTHS
        self.seconds_per_run = 0.01 if quick else 0.5
        self.min_steps = 2 if quick else 10
        self.warmups = 0 if quick else 1
        self.repeats = 1 if quick else 3
        self.pause = 0.05 if quick else 1.0
        self.gemm_size = 1024 if quick else 4096
        self.gemm_repeats = 2 if quick else 5


def step_flops(widths, batch):
    """Floating-point operations of one training step's matrix products.

    Parameters
    ----------
    widths : sequence of int
        Layer widths, input first.
    batch : int
        Rows m of the batch.

    Returns
    -------
    int
        2·m FLOPs (a multiply-add) per weight for the forward product X·W,
        as many for the weight gradient Xᵀ·dZ, and as many again for the
        input gradient dZ·Wᵀ of every layer but the first, whose input
        gradient nothing reads.
    """
    weights = [a * b for a, b in zip(widths[:-1], widths[1:])]
    return 2 * batch * (2 * sum(weights) + sum(weights[1:]))


def peak_flops(n, threads, repeats):
    """FLOP/s of the faster of SciPy's sgemm on two n×n float32 matrices and
    fastnn's own kernels on (128×784)·(784×256), best of repeats each.

    An n×n·n×n product takes 2n³ operations; a large one runs BLAS at its
    peak, and the small one keeps the own kernels' operands in L2: no
    training step's products run faster than the faster of the two.
    """
    return max(sgemm_flops(n, threads, repeats), own_kernel_flops(threads, repeats))


def own_kernel_flops(threads, repeats, m=128, n=256, k=784):
    """FLOP/s of fastnn's own kernels on (m×k)·(k×n) float32 over ``threads`` (0 without them)."""
    from fastnn_ext import gemm_choice

    if gemm_choice.vector_bits() == 0:
        return 0.0
    calls = 50
    best = min(gemm_choice.time_product("nn", m, n, k, np.float32, "own", threads, calls)
               for _ in range(repeats))
    return 2.0 * m * n * k * calls / best


def sgemm_flops(n, threads, repeats):
    """FLOP/s of SciPy's sgemm on two n×n float32 matrices (best of repeats)."""
    import scipy.linalg.blas as blas

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.random((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.random((n, n), dtype=np.float32))
    c = np.zeros((n, n), np.float32, order="F")
    best = np.inf
    with blas_threads(threads):
        blas.sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=1)  # wakes the thread pool
        for _ in range(repeats):
            start = time.perf_counter()
            blas.sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=1)
            best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


def available(libraries):
    """The requested libraries that can run here, in the given order."""
    present = {"fastnn": True, "numpy": True, "torch": torch_or_none() is not None,
               "jax": jax_or_none() is not None}
    return [name for name in libraries if present[name]]


def runner(library, widths, batch, steps, X, y):
    """A function training `steps` Adam steps of one library, from fastnn's initial weights."""
    model = C2.fastnn_model(widths)
    rows = steps * batch
    X, y = X[:rows], y[:rows]
    if library == "fastnn":
        return lambda: model.fit(X, y, epochs=1, batch_size=batch)
    weights = initial_weights(model)
    options = dict(hidden="relu", output="softmax", optimizer="adam", lr=C2.lr)
    if library == "numpy":
        ref = NumpyMLP(list(widths), **options)
        ref.set_weights(weights)
        rng = np.random.default_rng(0)
        return lambda: ref.train_epoch(X, y, batch, rng)
    if library == "torch":
        torch = torch_or_none()
        from torch_reference import TorchMLP

        ref = TorchMLP(torch, weights, **options)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        return lambda: ref.train_epoch(Xt, yt, batch)
    import jax.numpy as jnp
    from jax_reference import JaxMLP

    ref = JaxMLP(weights, **options)
    Xj, yj = jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32)
    ref.compile(Xj, yj, batch)
    return lambda: ref.train_epoch(Xj, yj, batch)


def steps_for(widths, batch, n_samples, peak, settings):
    """Steps of one timed run: about settings.seconds_per_run at a guessed speed.

    The guess is a quarter of the peak rate, and no step under 500 µs (the
    small batches are overhead, not arithmetic); every library then runs the
    same steps.
    """
    guess = max(step_flops(widths, batch) / (0.25 * peak), 500e-6)
    steps = int(settings.seconds_per_run / guess)
    return max(settings.min_steps, min(steps, n_samples // batch))


def time_per_step(run, steps, settings):
    for _ in range(settings.warmups):
        run()
    times = []
    for _ in range(settings.repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / steps


def sweep(configs, libraries, X, y, peak, settings):
    """{library: [seconds per step for each (widths, batch) in configs]}."""
    threads = os.cpu_count()
    torch = torch_or_none() if "torch" in libraries else None
    if torch is not None:
        torch.set_num_threads(threads)
    results = {name: [] for name in libraries}
    for widths, batch in configs:
        steps = steps_for(widths, batch, X.shape[0], peak, settings)
        for name in libraries:
            run = runner(name, widths, batch, steps, X, y)
            pause(settings.pause)
            with blas_threads(threads):
                results[name].append(time_per_step(run, steps, settings))
        # A long study shows its progress (and what it has if it is stopped).
        print(f"  {list(widths)} batch {batch}, {steps} steps: "
              + ", ".join(f"{name} {_shown(results[name][-1]).strip()}" for name in libraries),
              file=sys.stderr, flush=True)
    return results


def _shown(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:9.2f} ms"
    return f"{seconds * 1e6:9.1f} µs"


def table(title, key_name, keys, configs, results, peaks):
    """The sweep as text: one row per size, a column per library and per floor."""
    names = list(results)
    header = f"{key_name:>7} {'GFLOP':>8} " + " ".join(f"{n:>12}" for n in names)
    header += " " + " ".join(f"{'floor ' + label:>14}" for label in peaks)
    lines = [title, header]
    for i, (key, (widths, batch)) in enumerate(zip(keys, configs)):
        flops = step_flops(widths, batch)
        row = f"{key:>7} {flops / 1e9:8.4f} " + " ".join(f"{_shown(results[n][i]):>12}" for n in names)
        row += " " + " ".join(f"{_shown(flops / peak):>14}" for peak in peaks.values())
        lines.append(row)
    return "\n".join(lines)


def figure(path, sweeps, peaks, machine):
    """Both sweeps on log–log axes, the FLOP floors dashed; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, (title, key_name, keys, configs, results) in zip(axes, sweeps):
        for name, times in results.items():
            ax.plot(keys, np.array(times) * 1e6, marker="o", label=name)
        flops = np.array([step_flops(w, b) for w, b in configs], dtype=float)
        for (label, peak), style in zip(peaks.items(), ("--", ":")):
            ax.plot(keys, flops / peak * 1e6, "k" + style,
                    label=f"FLOP floor, {label} ({peak / 1e9:.0f} GFLOP/s)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(keys, [str(k) for k in keys])
        ax.set_yscale("log")
        ax.set_xlabel(key_name)
        ax.set_ylabel("time per training step (µs)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(machine, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def load_data():
    """Fashion-MNIST's training set, or random data of its size and type without it."""
    from fastnn.data import DataNotFoundError, load_mnist

    try:
        (X, y), _ = load_mnist()
    except DataNotFoundError:
        rng = np.random.default_rng(0)
        X, y = rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000)
    return X, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (fewer sizes, one repeat): not a measurement")
    parser.add_argument("--out", default="docs/scaling.png",
                        help="where to write the figure (needs matplotlib)")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated subset of " + ",".join(LIBRARIES))
    args = parser.parse_args(argv)
    requested = [name.strip() for name in args.libraries.split(",") if name.strip()]
    unknown = sorted(set(requested) - set(LIBRARIES))
    if unknown or not requested:
        parser.error(f"--libraries takes names from {','.join(LIBRARIES)}, got {args.libraries!r}")
    libraries = available(requested)
    settings = Settings(args.quick)

    machine = describe()
    print("\n".join(machine))
    skipped = [name for name in requested if name not in libraries]
    if skipped:
        print(f"not installed, left out: {', '.join(skipped)}")
    cores = os.cpu_count()
    peaks = {f"{cores} cores": peak_flops(settings.gemm_size, cores, settings.gemm_repeats),
             "1 core": peak_flops(settings.gemm_size, 1, settings.gemm_repeats)}
    print(f"peak (SciPy's sgemm {settings.gemm_size}×{settings.gemm_size} or the own kernels): "
          + ", ".join(f"{peak / 1e9:.1f} GFLOP/s on {label}" for label, peak in peaks.items()))
    if settings.quick:
        print("--quick: short runs on few sizes; the times below are not measurements")

    X, y = load_data()
    peak = max(peaks.values())
    batch_configs = [(C2.widths, batch) for batch in settings.batches]
    width_configs = [((784, w, w, 10), WIDTH_BATCH) for w in settings.widths]
    sweeps = [
        (f"{list(C2.widths)} ReLU Adam, float32: time per step against batch size",
         "batch", list(settings.batches), batch_configs,
         sweep(batch_configs, libraries, X, y, peak, settings)),
        (f"[784, w, w, 10] ReLU Adam, float32, batch {WIDTH_BATCH}: time per step against width",
         "width", list(settings.widths), width_configs,
         sweep(width_configs, libraries, X, y, peak, settings)),
    ]
    for title, key_name, keys, configs, results in sweeps:
        print()
        print(table(title, key_name, keys, configs, results, peaks))
    if figure(args.out, sweeps, peaks, machine[0]):
        print(f"\nfigure: {args.out}")
    else:
        print("\nmatplotlib is not installed: no figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
