"""One optimizer step on the parameters of a [784, 256, 128, 10] network.

235,146 float32 parameters (234,752 weights, 394 biases).  Compared:

* fastnn: the fused one-pass kernel, through ``Optimizer.step``;
* numpy: the same update as in-place ufuncs with ``out=`` and preallocated
  temporaries (no allocation per step), on the same flat buffer;
* torch (if importable): ``torch.optim`` with ``foreach=True`` on the six
  layer tensors, and ``fused=True`` for Adam and AdamW.

Before timing, each competitor takes one step from the same state as fastnn
and must land on the same parameters, so every form does the full update.
All libraries run on one thread (fastnn's kernel and NumPy's ufuncs are
single-threaded; BLAS pools are limited to one thread and torch is pinned
with ``torch.set_num_threads(1)``), and each benchmark starts after the
shared one-second pause, so one library's busy threads do not slow the next.
Set FASTNN_BENCH_NO_TORCH=1 to leave torch out.

Run:  python -m pytest bench/test_bench_optimizers.py --benchmark-only -p no:cacheprovider
"""

import numpy as np
import pytest
from peers import torch_or_none
from threads import blas_threads, pause

from fastnn import optimizers as O

torch = torch_or_none()  # only a point of comparison, never a dependency

LAYERS = [784, 256, 128, 10]
SHAPES = []
for fan_in, fan_out in zip(LAYERS[:-1], LAYERS[1:]):
    SHAPES.append((fan_out, fan_in))
WEIGHT_SIZES = [a * b for a, b in SHAPES]
BIAS_SIZES = [a for a, _ in SHAPES]
N_DECAY = sum(WEIGHT_SIZES)
N_PARAMS = N_DECAY + sum(BIAS_SIZES)
assert N_PARAMS == 235_146

LR = 1e-3
DTYPE = np.float32


# --- NumPy multi-expression forms ------------------------------------------------

class NumpySGD:
    """buf = μ buf + g;  p −= lr buf"""

    def __init__(self, momentum=0.9):
        self.mu = momentum
        self.buf = np.zeros(N_PARAMS, DTYPE)
        self.tmp = np.empty(N_PARAMS, DTYPE)
        self.t = 0

    def step(self, p, g):
        self.t += 1
        if self.t == 1:
            self.buf[...] = g
        else:
            self.buf *= self.mu
            self.buf += g
        np.multiply(self.buf, LR, out=self.tmp)
        p -= self.tmp


class NumpyAdaGrad:
    """s += g²;  p −= lr g / (√s + ε)"""

    def __init__(self, eps=1e-10):
        self.eps = eps
        self.s = np.zeros(N_PARAMS, DTYPE)
        self.tmp = np.empty(N_PARAMS, DTYPE)

    def step(self, p, g):
        tmp = self.tmp
        np.multiply(g, g, out=tmp)
        self.s += tmp
        np.sqrt(self.s, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= LR
        p -= tmp


class NumpyRMSProp:
    """v = α v + (1 − α) g²;  p −= lr g / (√v + ε)"""

    def __init__(self, alpha=0.99, eps=1e-8):
        self.alpha, self.eps = alpha, eps
        self.v = np.zeros(N_PARAMS, DTYPE)
        self.tmp = np.empty(N_PARAMS, DTYPE)

    def step(self, p, g):
        tmp = self.tmp
        self.v *= self.alpha
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.alpha
        self.v += tmp
        np.sqrt(self.v, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= LR
        p -= tmp


class NumpyAdaDelta:
    """v = ρ v + (1 − ρ) g²;  Δ = √(u + ε)/√(v + ε) g;  u = ρ u + (1 − ρ) Δ²;  p −= lr Δ"""

    def __init__(self, rho=0.9, eps=1e-6):
        self.rho, self.eps = rho, eps
        self.v = np.zeros(N_PARAMS, DTYPE)
        self.u = np.zeros(N_PARAMS, DTYPE)
        self.delta = np.empty(N_PARAMS, DTYPE)
        self.tmp = np.empty(N_PARAMS, DTYPE)

    def step(self, p, g):
        delta, tmp = self.delta, self.tmp
        self.v *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.rho
        self.v += tmp
        np.add(self.u, self.eps, out=delta)
        np.sqrt(delta, out=delta)
        np.add(self.v, self.eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        delta /= tmp
        delta *= g
        self.u *= self.rho
        np.multiply(delta, delta, out=tmp)
        tmp *= 1 - self.rho
        self.u += tmp
        delta *= LR
        p -= delta


class NumpyAdam:
    """m = β1 m + (1 − β1) g;  v = β2 v + (1 − β2) g²;
    p −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε), after p[:n_decay] *= 1 − lr λ (AdamW)"""

    def __init__(self, betas=(0.9, 0.999), eps=1e-8, decoupled_decay=0.0):
        self.b1, self.b2 = betas
        self.eps = eps
        self.decay = decoupled_decay
        self.m = np.zeros(N_PARAMS, DTYPE)
        self.v = np.zeros(N_PARAMS, DTYPE)
        self.tmp = np.empty(N_PARAMS, DTYPE)
        self.t = 0

    def step(self, p, g):
        self.t += 1
        tmp = self.tmp
        if self.decay:
            p[:N_DECAY] *= 1 - LR * self.decay
        self.m *= self.b1
        np.multiply(g, 1 - self.b1, out=tmp)
        self.m += tmp
        self.v *= self.b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.b2
        self.v += tmp
        step_size = LR / (1 - self.b1 ** self.t)
        np.sqrt(self.v, out=tmp)
        tmp *= 1 / np.sqrt(1 - self.b2 ** self.t)
        tmp += self.eps
        np.divide(self.m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp


# optimizer -> (fastnn factory, numpy factory, torch factory(params, **impl))
CASES = {
    "sgd-momentum": (
        lambda: O.SGD(lr=LR, momentum=0.9),
        lambda: NumpySGD(momentum=0.9),
        lambda params, **impl: torch.optim.SGD(params, lr=LR, momentum=0.9, **impl),
    ),
    "adagrad": (
        lambda: O.AdaGrad(lr=LR),
        NumpyAdaGrad,
        lambda params, **impl: torch.optim.Adagrad(params, lr=LR, **impl),
    ),
    "rmsprop": (
        lambda: O.RMSProp(lr=LR),
        NumpyRMSProp,
        lambda params, **impl: torch.optim.RMSprop(params, lr=LR, **impl),
    ),
    "adadelta": (
        lambda: O.AdaDelta(lr=LR),
        NumpyAdaDelta,
        lambda params, **impl: torch.optim.Adadelta(params, lr=LR, **impl),
    ),
    "adam": (
        lambda: O.Adam(lr=LR),
        NumpyAdam,
        lambda params, **impl: torch.optim.Adam(params, lr=LR, **impl),
    ),
    "adamw": (
        lambda: O.AdamW(lr=LR, weight_decay=1e-2),
        lambda: NumpyAdam(decoupled_decay=1e-2),
        lambda params, **impl: torch.optim.AdamW(
            [{"params": params[:3], "weight_decay": 1e-2},
             {"params": params[3:], "weight_decay": 0.0}], lr=LR, **impl),
    ),
}
FUSED = {"adam", "adamw"}

RUNS = []
for _name in CASES:
    RUNS += [(_name, "fastnn"), (_name, "numpy"), (_name, "torch-foreach")]
    if _name in FUSED:
        RUNS.append((_name, "torch-fused"))


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = (rng.standard_normal(N_PARAMS) * 0.05).astype(DTYPE)
    grads = (rng.standard_normal(N_PARAMS) * 0.01).astype(DTYPE)
    return params, grads


def to_layers(flat):
    """Weights first, then biases, as the flat layout orders them."""
    out, start = [], 0
    for size, shape in zip(WEIGHT_SIZES + BIAS_SIZES, SHAPES + [(b,) for b in BIAS_SIZES]):
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


def fastnn_step(name, params, grads):
    opt = CASES[name][0]().bind(N_PARAMS, DTYPE, N_DECAY)
    return lambda: opt.step(params, grads), lambda: params


def numpy_step(name, params, grads):
    opt = CASES[name][1]()
    return lambda: opt.step(params, grads), lambda: params


def torch_step(name, params, grads, impl):
    tensors = [torch.tensor(a, requires_grad=True) for a in to_layers(params)]
    for tensor, g in zip(tensors, to_layers(grads)):
        tensor.grad = torch.tensor(g)
    opt = CASES[name][2](tensors, **impl)

    def flat():
        return np.concatenate([t.detach().numpy().ravel() for t in tensors])
    return opt.step, flat


def make_step(name, library, params, grads):
    if library == "fastnn":
        return fastnn_step(name, params, grads)
    if library == "numpy":
        return numpy_step(name, params, grads)
    if torch is None:
        pytest.skip("torch is not installed")
    torch.set_num_threads(1)
    impl = {"fused": True} if library == "torch-fused" else {"foreach": True}
    return torch_step(name, params, grads, impl)


@pytest.mark.parametrize("name, library", RUNS, ids=[f"{n}-{lib}" for n, lib in RUNS])
def test_step(benchmark, name, library):
    # One step from the same fresh state must give fastnn's parameters: the
    # step moves them by ~1e-5 against a tolerance of 1e-6 of their scale.
    start, grads = problem()
    reference = start.copy()
    fastnn_step(name, reference, grads)[0]()
    params = start.copy()
    run, result = make_step(name, library, params, grads)
    run()
    assert not np.array_equal(result(), start)
    np.testing.assert_allclose(result(), reference, rtol=1e-6,
                               atol=1e-6 * float(np.max(np.abs(reference))))

    benchmark.group = name
    benchmark.extra_info["n_params"] = N_PARAMS
    pause()
    with blas_threads(1):
        benchmark.pedantic(run, rounds=300, iterations=5, warmup_rounds=20)
