"""Optimizers against independent transcriptions of their documented rules.

Each reference below is PyTorch's documented algorithm for the optimizer of
the same name, written out step by step with NumPy whole-array operations.
They run side by side with fastnn on seeded random gradients whose scale
changes from step to step, with weight decay restricted to the first N_DECAY
parameters.  Scalar cases check the first three steps against values worked
out by hand.
"""

import math

import numpy as np
import pytest

from fastnn import optimizers as O
from fastnn.schedules import ExponentialDecay, ReduceLROnPlateau, StepDecay
from fastnn_ext import optim

N = 96
N_DECAY = 60
STEPS = 25


def gradients(dtype, n=N, steps=STEPS, seed=0):
    """Random gradients whose scale jumps between 1e-2 and 1e1, large first.

    Shrinking scales make v decrease, so AMSGrad's maximum differs from v.
    """
    rng = np.random.default_rng(seed)
    scales = 10.0 ** np.concatenate([rng.uniform(0, 1, 5), rng.uniform(-2, 1, steps - 5)])
    return [(rng.standard_normal(n) * s).astype(dtype) for s in scales]


def initial_params(dtype, n=N, seed=1):
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


def decay_vector(weight_decay, dtype, n=N, n_decay=N_DECAY):
    lam = np.zeros(n, dtype=dtype)
    lam[:n_decay] = weight_decay
    return lam


# --- references: PyTorch's documented algorithms ------------------------------

def ref_sgd(theta, grads, lrs, momentum=0.0, dampening=0.0, nesterov=False,
            weight_decay=0.0, n_decay=N_DECAY):
    theta = theta.copy()
    lam = decay_vector(weight_decay, theta.dtype, theta.size, n_decay)
    b = None
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        if weight_decay != 0:
            g = g + lam * theta
        if momentum != 0:
            if t > 1:
                b = momentum * b + (1 - dampening) * g
            else:
                b = g
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        theta = theta - lr * g
    return theta, ([b] if momentum != 0 else [])


def ref_adagrad(theta, grads, lrs, lr_decay=0.0, weight_decay=0.0,
                initial_accumulator_value=0.0, eps=1e-10, n_decay=N_DECAY):
    theta = theta.copy()
    lam = decay_vector(weight_decay, theta.dtype, theta.size, n_decay)
    state_sum = np.full_like(theta, initial_accumulator_value)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        clr = lr / (1 + (t - 1) * lr_decay)
        if weight_decay != 0:
            g = g + lam * theta
        state_sum = state_sum + g * g
        theta = theta - clr * g / (np.sqrt(state_sum) + eps)
    return theta, [state_sum]


def ref_rmsprop(theta, grads, lrs, alpha=0.99, eps=1e-8, weight_decay=0.0,
                momentum=0.0, centered=False, n_decay=N_DECAY):
    theta = theta.copy()
    lam = decay_vector(weight_decay, theta.dtype, theta.size, n_decay)
    v = np.zeros_like(theta)
    g_ave = np.zeros_like(theta)
    b = np.zeros_like(theta)
    for g, lr in zip(grads, lrs):
        if weight_decay != 0:
            g = g + lam * theta
        v = alpha * v + (1 - alpha) * g * g
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v_tilde - g_ave * g_ave
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
    slots = [v]
    if centered:
        slots.append(g_ave)
    if momentum > 0:
        slots.append(b)
    return theta, slots


def ref_adadelta(theta, grads, lrs, rho=0.9, eps=1e-6, weight_decay=0.0,
                 n_decay=N_DECAY):
    theta = theta.copy()
    lam = decay_vector(weight_decay, theta.dtype, theta.size, n_decay)
    v = np.zeros_like(theta)
    u = np.zeros_like(theta)
    for g, lr in zip(grads, lrs):
        if weight_decay != 0:
            g = g + lam * theta
        v = rho * v + (1 - rho) * g * g
        dx = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * dx * dx
        theta = theta - lr * dx
    return theta, [v, u]


def ref_adam(theta, grads, lrs, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False, decoupled=False, n_decay=N_DECAY):
    beta1, beta2 = betas
    theta = theta.copy()
    lam = decay_vector(weight_decay, theta.dtype, theta.size, n_decay)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    v_max = np.zeros_like(theta)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        if decoupled:
            theta = theta - lr * lam * theta
        elif weight_decay != 0:
            g = g + lam * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - beta2 ** t)
        else:
            v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta, ([m, v, v_max] if amsgrad else [m, v])


def ref_adamw(theta, grads, lrs, weight_decay=1e-2, **kwargs):
    return ref_adam(theta, grads, lrs, weight_decay=weight_decay, decoupled=True, **kwargs)


def ref_lion(theta, grads, lrs, betas=(0.9, 0.99), weight_decay=0.0, n_decay=N_DECAY):
    """Chen et al. 2023, Algorithm 2 (decoupled weight decay)."""
    beta1, beta2 = betas
    theta = theta.copy()
    lam = decay_vector(weight_decay, theta.dtype, theta.size, n_decay)
    m = np.zeros_like(theta)
    for g, lr in zip(grads, lrs):
        update = np.sign(beta1 * m + (1 - beta1) * g)
        theta = theta - lr * (update + lam * theta)
        m = beta2 * m + (1 - beta2) * g
    return theta, [m]


# (id, fastnn class, reference, keyword arguments, learning rate)
CONFIGS = [
    ("sgd", O.SGD, ref_sgd, {}, 0.05),
    ("sgd-wd", O.SGD, ref_sgd, {"weight_decay": 0.3}, 0.05),
    ("sgd-momentum", O.SGD, ref_sgd, {"momentum": 0.9}, 0.05),
    ("sgd-dampening-wd", O.SGD, ref_sgd,
     {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.2}, 0.05),
    ("sgd-nesterov", O.SGD, ref_sgd, {"momentum": 0.9, "nesterov": True}, 0.05),
    ("sgd-nesterov-wd", O.SGD, ref_sgd,
     {"momentum": 0.7, "nesterov": True, "weight_decay": 0.1}, 0.05),
    ("adagrad", O.AdaGrad, ref_adagrad, {}, 0.1),
    ("adagrad-all", O.AdaGrad, ref_adagrad,
     {"lr_decay": 0.05, "weight_decay": 0.2, "initial_accumulator_value": 0.3,
      "eps": 1e-6}, 0.1),
    ("rmsprop", O.RMSProp, ref_rmsprop, {}, 0.01),
    ("rmsprop-momentum", O.RMSProp, ref_rmsprop, {"momentum": 0.9, "alpha": 0.9}, 0.01),
    ("rmsprop-centered", O.RMSProp, ref_rmsprop, {"centered": True, "alpha": 0.9}, 0.01),
    ("rmsprop-centered-momentum-wd", O.RMSProp, ref_rmsprop,
     {"centered": True, "momentum": 0.5, "weight_decay": 0.1, "alpha": 0.8,
      "eps": 1e-3}, 0.01),
    ("adadelta", O.AdaDelta, ref_adadelta, {}, 1.0),
    ("adadelta-wd", O.AdaDelta, ref_adadelta,
     {"rho": 0.8, "eps": 1e-4, "weight_decay": 0.5}, 0.5),
    ("adam", O.Adam, ref_adam, {}, 0.01),
    ("adam-wd", O.Adam, ref_adam, {"weight_decay": 0.3, "betas": (0.8, 0.99)}, 0.01),
    ("adam-amsgrad", O.Adam, ref_adam, {"amsgrad": True}, 0.01),
    ("adam-amsgrad-wd", O.Adam, ref_adam,
     {"amsgrad": True, "weight_decay": 0.2, "eps": 1e-4}, 0.01),
    ("adamw", O.AdamW, ref_adamw, {"weight_decay": 0.5}, 0.01),
    ("adamw-amsgrad", O.AdamW, ref_adamw, {"amsgrad": True, "betas": (0.5, 0.9)}, 0.01),
    ("lion", O.Lion, ref_lion, {}, 1e-3),
    ("lion-wd", O.Lion, ref_lion, {"weight_decay": 0.5, "betas": (0.8, 0.95)}, 1e-3),
]
CONFIG_IDS = [c[0] for c in CONFIGS]
#: the optimizers torch.optim has (Lion is not among them)
TORCH_CONFIGS = [c for c in CONFIGS if c[1] is not O.Lion]


def run_fastnn(opt, theta, grads, n_decay=N_DECAY):
    theta = theta.copy()
    opt.bind(theta.size, theta.dtype, n_decay)
    for g in grads:
        opt.step(theta, g)
    return theta, list(opt.state_)


def assert_matches(actual, expected, rtol):
    """Element-wise relative check, with an absolute floor of rtol times the
    array's largest magnitude: an element that a run carries through zero
    (θ = θ0 − Σ updates, a momentum buffer) keeps the rounding error of the
    larger terms that cancelled there."""
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * float(np.max(np.abs(expected))))


@pytest.mark.parametrize("name, cls, ref, kwargs, lr", CONFIGS, ids=CONFIG_IDS)
def test_float64_matches_reference(name, cls, ref, kwargs, lr):
    theta0 = initial_params(np.float64)
    grads = gradients(np.float64)
    expected, expected_state = ref(theta0, grads, [lr] * STEPS, **kwargs)
    actual, state = run_fastnn(cls(lr=lr, **kwargs), theta0, grads)
    assert not np.allclose(expected, theta0, rtol=1e-3)  # the run moved the parameters
    assert_matches(actual, expected, 1e-12)
    assert len(state) == len(expected_state)
    for slot, want in zip(state, expected_state):
        assert_matches(slot, want, 1e-12)


@pytest.mark.parametrize("name, cls, ref, kwargs, lr", CONFIGS, ids=CONFIG_IDS)
def test_float32_matches_float32_reference(name, cls, ref, kwargs, lr):
    # Both sides compute in float32 with the same float32 coefficients; they
    # differ only by rounding order and fused multiply-adds, a few units in
    # the last place (6e-8) per step over 25 steps.
    theta0 = initial_params(np.float32)
    grads = gradients(np.float32)
    expected, expected_state = ref(theta0, grads, [lr] * STEPS, **kwargs)
    assert expected.dtype == np.float32
    actual, state = run_fastnn(cls(lr=lr, **kwargs), theta0, grads)
    assert actual.dtype == np.float32
    assert_matches(actual, expected, 1e-6)
    for slot, want in zip(state, expected_state):
        assert slot.dtype == np.float32
        assert_matches(slot, want, 1e-6)


def test_amsgrad_maximum_is_exercised():
    # Guards the AMSGrad cases above: with these gradients v does fall below
    # its running maximum, so ignoring the maximum would change the result.
    _, (m, v, v_max) = ref_adam(initial_params(np.float64), gradients(np.float64),
                                [0.01] * STEPS, amsgrad=True)
    assert np.all(v_max >= v) and np.mean(v_max > v) > 0.5


@pytest.mark.parametrize("name, cls, ref, kwargs, lr",
                         [c for c in CONFIGS if c[0] in ("sgd-dampening-wd", "adagrad-all",
                                                         "rmsprop-centered-momentum-wd",
                                                         "adadelta-wd", "adam-amsgrad",
                                                         "adamw")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_per_step_schedule_matches_reference(name, cls, ref, kwargs, lr):
    # α_t = lr·e^(−0.1 s), s = 0, 1, ... the 0-based update index.
    lrs = [lr * math.exp(-0.1 * s) for s in range(STEPS)]
    theta0 = initial_params(np.float64)
    grads = gradients(np.float64, seed=7)
    expected, _ = ref(theta0, grads, lrs, **kwargs)
    opt = cls(lr=ExponentialDecay(lr, 0.1, per="step"), **kwargs)
    actual, _ = run_fastnn(opt, theta0, grads)
    assert_matches(actual, expected, 1e-12)


@pytest.mark.parametrize("name, cls, ref, kwargs, lr", CONFIGS, ids=CONFIG_IDS)
def test_decay_all_decays_biases(name, cls, ref, kwargs, lr):
    theta0 = initial_params(np.float64)
    grads = gradients(np.float64, seed=3)
    expected, _ = ref(theta0, grads, [lr] * STEPS, n_decay=N, **kwargs)
    opt = cls(lr=lr, decay_all=True, **kwargs)
    actual, _ = run_fastnn(opt, theta0, grads, n_decay=N_DECAY)
    assert opt.n_decay_ == N
    assert_matches(actual, expected, 1e-12)


@pytest.mark.parametrize("cls, kwargs", [
    (O.SGD, {"momentum": 0.9}), (O.AdaGrad, {}), (O.RMSProp, {"centered": True}),
    (O.AdaDelta, {}), (O.Adam, {}), (O.Adam, {"amsgrad": True}),
])
def test_weight_decay_spares_biases(cls, kwargs):
    theta0 = initial_params(np.float64)
    grads = gradients(np.float64)
    plain, _ = run_fastnn(cls(lr=0.01, **kwargs), theta0, grads)
    decayed, _ = run_fastnn(cls(lr=0.01, weight_decay=0.5, **kwargs), theta0, grads)
    np.testing.assert_array_equal(decayed[N_DECAY:], plain[N_DECAY:])
    assert np.all(decayed[:N_DECAY] != plain[:N_DECAY])


def test_adamw_decay_spares_biases_and_moments():
    theta0 = initial_params(np.float64)
    grads = gradients(np.float64)
    plain, plain_state = run_fastnn(O.AdamW(lr=0.01, weight_decay=0.0), theta0, grads)
    decayed, state = run_fastnn(O.AdamW(lr=0.01, weight_decay=0.5), theta0, grads)
    np.testing.assert_array_equal(decayed[N_DECAY:], plain[N_DECAY:])
    assert np.all(decayed[:N_DECAY] != plain[:N_DECAY])
    # Decoupled: the gradient moments never see the decay.
    for slot, plain_slot in zip(state, plain_state):
        np.testing.assert_array_equal(slot, plain_slot)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, cls, ref, kwargs, lr", CONFIGS, ids=CONFIG_IDS)
def test_gradient_is_not_written(name, cls, ref, kwargs, lr, dtype):
    theta = initial_params(dtype)
    grad = gradients(dtype)[0]
    before = grad.copy()
    opt = cls(lr=lr, **kwargs).bind(N, dtype, N_DECAY)
    for _ in range(3):
        opt.step(theta, grad)
    np.testing.assert_array_equal(grad, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, cls, ref, kwargs, lr", CONFIGS, ids=CONFIG_IDS)
def test_decaying_moments_skip_the_subnormal_range(name, cls, ref, kwargs, lr, dtype):
    # Moments just above the smallest normal number, at rest (zero weights and
    # gradients): one decay takes them below it, where they must become zero,
    # not subnormal numbers (several times slower to compute with on x86).
    tiny = np.finfo(dtype).tiny
    opt = cls(lr=lr, **kwargs).bind(N, dtype, N_DECAY)
    if opt.state_.size == 0:
        pytest.skip("no moments")
    opt.state_[...] = tiny * 1.0001
    theta, zero = np.zeros(N, dtype), np.zeros(N, dtype)
    opt.step(theta, zero)
    opt.step(theta, zero)
    state = np.abs(opt.state_)
    assert not np.any((state > 0) & (state < tiny))
    # a gradient whose square is subnormal: a flushed g² average next to an
    # average of g that is not must not make centered RMSProp's √(v − a²) NaN
    opt.step(theta, np.full(N, np.sqrt(tiny) / 10, dtype))
    assert np.all(np.isfinite(opt.state_)) and np.all(np.isfinite(theta))
    # NaN still reaches the moments (and so the finiteness checks)
    opt.step(theta, np.full(N, np.nan, dtype))
    assert np.isnan(opt.state_).any()


# --- three scalar steps worked out by hand -----------------------------------

def scalar_run(opt, grads, p0=1.0, n_decay=1):
    p = np.array([p0])
    opt.bind(1, np.float64, n_decay)
    out = []
    for g in grads:
        opt.step(p, np.array([g]))
        out.append(p[0])
    return out


def test_scalar_sgd():
    assert scalar_run(O.SGD(lr=0.1), [1.0, 2.0, -1.0]) == pytest.approx(
        [1 - 0.1, 0.9 - 0.2, 0.7 + 0.1], rel=1e-12)


def test_scalar_sgd_momentum_dampening_weight_decay():
    # d = g + 0.5 p;  b = d (t = 1), else 0.9 b + (1 − 0.1) d;  p −= 0.1 b
    # t=1: d = 1 + 0.5         = 1.5       b = 1.5
    #      p = 1 − 0.15        = 0.85
    # t=2: d = 2 + 0.425       = 2.425     b = 1.35 + 2.1825 = 3.5325
    #      p = 0.85 − 0.35325  = 0.49675
    # t=3: d = −1 + 0.248375   = −0.751625 b = 3.17925 − 0.6764625 = 2.5027875
    #      p = 0.49675 − 0.25027875 = 0.24647125
    opt = O.SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.5)
    assert scalar_run(opt, [1.0, 2.0, -1.0]) == pytest.approx(
        [0.85, 0.49675, 0.24647125], rel=1e-12)


def test_scalar_sgd_nesterov():
    # b = g (t = 1), else 0.9 b + g;  p −= 0.1 (g + 0.9 b)
    # t=1: b = 1                 p = 1 − 0.1·(1 + 0.9)        = 0.81
    # t=2: b = 0.9 + 2 = 2.9     p = 0.81 − 0.1·(2 + 2.61)    = 0.349
    # t=3: b = 2.61 − 1 = 1.61   p = 0.349 − 0.1·(−1 + 1.449) = 0.3041
    opt = O.SGD(lr=0.1, momentum=0.9, nesterov=True)
    assert scalar_run(opt, [1.0, 2.0, -1.0]) == pytest.approx(
        [0.81, 0.349, 0.3041], rel=1e-12)


def test_scalar_adagrad():
    # lr 0.1, lr_decay 0.5: clr = 0.1, 0.1/1.5, 0.1/2;  sum starts at 1
    # t=1: sum = 1 + 9 = 10          p = 1 − 0.1·3/(√10 + ε)
    # t=2: sum = 10 + 16 = 26        p −= (0.1/1.5)·4/(√26 + ε)
    # t=3: sum = 26 + 144 = 170      p −= (0.1/2)·(−12)/(√170 + ε)
    eps = 1e-10
    p1 = 1 - 0.1 * 3 / (math.sqrt(10) + eps)
    p2 = p1 - (0.1 / 1.5) * 4 / (math.sqrt(26) + eps)
    p3 = p2 - (0.1 / 2) * -12 / (math.sqrt(170) + eps)
    opt = O.AdaGrad(lr=0.1, lr_decay=0.5, initial_accumulator_value=1.0, eps=eps)
    assert scalar_run(opt, [3.0, 4.0, -12.0]) == pytest.approx([p1, p2, p3], rel=1e-12)


def test_scalar_rmsprop_centered_momentum():
    # α = 0.5, μ = 0.5, lr = 0.1, ε = 1e-8
    # t=1 g=2:  v = 0.5·4 = 2          a = 0.5·2 = 1        ṽ = 2 − 1 = 1
    #           b = 2/(1 + ε)                               p = 1 − 0.1 b
    # t=2 g=−2: v = 1 + 2 = 3          a = 0.5 − 1 = −0.5   ṽ = 3 − 0.25 = 2.75
    #           b = 0.5 b − 2/(√2.75 + ε)
    # t=3 g=4:  v = 1.5 + 8 = 9.5      a = −0.25 + 2 = 1.75 ṽ = 9.5 − 3.0625 = 6.4375
    #           b = 0.5 b + 4/(√6.4375 + ε)
    eps = 1e-8
    b1 = 2 / (1 + eps)
    b2 = 0.5 * b1 - 2 / (math.sqrt(2.75) + eps)
    b3 = 0.5 * b2 + 4 / (math.sqrt(6.4375) + eps)
    p1 = 1 - 0.1 * b1
    p2 = p1 - 0.1 * b2
    p3 = p2 - 0.1 * b3
    opt = O.RMSProp(lr=0.1, alpha=0.5, eps=eps, momentum=0.5, centered=True)
    assert scalar_run(opt, [2.0, -2.0, 4.0]) == pytest.approx([p1, p2, p3], rel=1e-12)


def test_scalar_rmsprop():
    # α = 0.5: v = 2, 1 + 8 = 9, 4.5 + 0.5 = 5;  p −= 0.1 g/(√v + ε)
    eps = 1e-8
    p1 = 1 - 0.1 * 2 / (math.sqrt(2) + eps)
    p2 = p1 - 0.1 * 4 / (math.sqrt(9) + eps)
    p3 = p2 - 0.1 * -1 / (math.sqrt(5) + eps)
    opt = O.RMSProp(lr=0.1, alpha=0.5, eps=eps)
    assert scalar_run(opt, [2.0, 4.0, -1.0]) == pytest.approx([p1, p2, p3], rel=1e-12)


def test_scalar_adadelta():
    # ρ = 0.5, ε = 0.01, lr = 1
    # t=1 g=2: v = 2        Δ = √0.01/√2.01 · 2         u = 0.5 Δ²
    # t=2 g=1: v = 1.5      Δ = √(u + 0.01)/√1.51 · 1   u = 0.5 u + 0.5 Δ²
    # t=3 g=−2: v = 2.75    Δ = √(u + 0.01)/√2.76 · −2
    d1 = math.sqrt(0.01) / math.sqrt(2.01) * 2
    u1 = 0.5 * d1 * d1
    d2 = math.sqrt(u1 + 0.01) / math.sqrt(1.51) * 1
    u2 = 0.5 * u1 + 0.5 * d2 * d2
    d3 = math.sqrt(u2 + 0.01) / math.sqrt(2.76) * -2
    opt = O.AdaDelta(lr=1.0, rho=0.5, eps=0.01)
    assert scalar_run(opt, [2.0, 1.0, -2.0]) == pytest.approx(
        [1 - d1, 1 - d1 - d2, 1 - d1 - d2 - d3], rel=1e-12)


def test_scalar_adam_weight_decay():
    # β = (0.5, 0.75), lr = 0.1, λ = 1 (coupled), ε = 1e-8
    # t=1: d = 1 + 1 = 2          m = 1         v = 0.25·4 = 1
    #      m̂ = 1/0.5 = 2          v̂ = 1/0.25 = 4      p = 1 − 0.1·2/(2 + ε)
    # t=2: d = −1 + p1            m = 0.5 + 0.5 d      v = 0.75 + 0.25 d²
    #      m̂ = m/0.75             v̂ = v/0.4375
    # t=3: d = 3 + p2 ...          bias corrections 1 − 0.125, 1 − 0.421875
    eps = 1e-8
    p1 = 1 - 0.1 * 2 / (2 + eps)
    d2 = -1 + p1
    m2, v2 = 0.5 + 0.5 * d2, 0.75 + 0.25 * d2 * d2
    p2 = p1 - 0.1 * (m2 / 0.75) / (math.sqrt(v2 / 0.4375) + eps)
    d3 = 3 + p2
    m3, v3 = 0.5 * m2 + 0.5 * d3, 0.75 * v2 + 0.25 * d3 * d3
    p3 = p2 - 0.1 * (m3 / 0.875) / (math.sqrt(v3 / 0.578125) + eps)
    opt = O.Adam(lr=0.1, betas=(0.5, 0.75), eps=eps, weight_decay=1.0)
    assert scalar_run(opt, [1.0, -1.0, 3.0]) == pytest.approx([p1, p2, p3], rel=1e-12)


def test_scalar_adam_amsgrad():
    # β = (0.5, 0.5), lr = 0.1: v = 0.5·16 = 8, 4 + 0.5 = 4.5, 2.25 + 2 = 4.25
    # v_max = 8, 8, 8;  m = 2, 1 + 0.5 = 1.5, 0.75 + 1 = 1.75
    # bias corrections 1 − 0.5^t = 0.5, 0.75, 0.875
    eps = 1e-8
    p1 = 1 - 0.1 * (2 / 0.5) / (math.sqrt(8 / 0.5) + eps)
    p2 = p1 - 0.1 * (1.5 / 0.75) / (math.sqrt(8 / 0.75) + eps)
    p3 = p2 - 0.1 * (1.75 / 0.875) / (math.sqrt(8 / 0.875) + eps)
    opt = O.Adam(lr=0.1, betas=(0.5, 0.5), eps=eps, amsgrad=True)
    assert scalar_run(opt, [4.0, 1.0, 2.0]) == pytest.approx([p1, p2, p3], rel=1e-12)


def test_scalar_adamw():
    # β = (0.5, 0.5), lr = 0.1, λ = 2: each step first p *= 1 − 0.2
    # g = 2, 2, 2: m = 1, 1.5, 1.75 and v = 2, 3, 3.5 over bias corrections
    # 0.5, 0.75, 0.875 give m̂ = 2 and v̂ = 4 every step, so the Adam part
    # subtracts 0.1·2/(√4 + ε) each time.
    eps = 1e-8
    a = 0.1 * 2 / (math.sqrt(4) + eps)
    p1 = 0.8 * 1 - a
    p2 = 0.8 * p1 - a
    p3 = 0.8 * p2 - a
    opt = O.AdamW(lr=0.1, betas=(0.5, 0.5), eps=eps, weight_decay=2.0)
    assert scalar_run(opt, [2.0, 2.0, 2.0]) == pytest.approx([p1, p2, p3], rel=1e-12)


def test_scalar_bias_is_not_decayed():
    # n_decay = 0: the single parameter is a bias, so λ must have no effect.
    opt = O.SGD(lr=0.1, weight_decay=10.0)
    assert scalar_run(opt, [1.0, 1.0, 1.0], n_decay=0) == pytest.approx(
        [0.9, 0.8, 0.7], rel=1e-12)


# --- life cycle ---------------------------------------------------------------

@pytest.mark.parametrize("opt, n_slots", [
    (O.SGD(), 0), (O.SGD(momentum=0.5), 1), (O.AdaGrad(), 1), (O.RMSProp(), 1),
    (O.RMSProp(centered=True), 2), (O.RMSProp(momentum=0.9), 2),
    (O.RMSProp(centered=True, momentum=0.9), 3), (O.AdaDelta(), 2), (O.Adam(), 2),
    (O.Adam(amsgrad=True), 3), (O.AdamW(), 2), (O.AdamW(amsgrad=True), 3), (O.Lion(), 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bind_allocates_state(opt, n_slots, dtype):
    opt.bind(10, dtype, 4)
    assert opt.n_slots == n_slots
    assert opt.state_.shape == (n_slots, 10) and opt.state_.dtype == dtype
    assert opt.state_.flags.c_contiguous
    assert opt.hyper_.dtype == opt.kernel.hyper_dtype and opt.hyper_.shape == ()
    assert opt.t_ == 0 and opt.n_decay_ == 4
    assert np.all(opt.state_ == 0)


def test_adagrad_state_starts_at_initial_accumulator():
    opt = O.AdaGrad(initial_accumulator_value=0.25).bind(5, np.float32, 5)
    np.testing.assert_array_equal(opt.state_, np.full((1, 5), 0.25, np.float32))


def test_registry_holds_every_optimizer_once():
    classes = [O.SGD, O.AdaGrad, O.RMSProp, O.AdaDelta, O.Adam, O.AdamW, O.Lion]
    assert O.OPTIMIZERS == {cls.name: cls for cls in classes}
    assert all(isinstance(cls.kernel, optim.OptimizerKernel) for cls in classes)
    # AdamW is Adam's kernel with the decay decoupled, not a kernel of its own.
    assert O.AdamW.kernel is O.Adam.kernel
    assert O.AdamW()._hyper()["decoupled"] and not O.Adam()._hyper()["decoupled"]


def test_bind_resets_state_and_counter():
    opt = O.Adam(lr=0.1).bind(4, np.float64, 4)
    p = np.ones(4)
    opt.step(p, np.ones(4))
    assert opt.t_ == 1 and np.any(opt.state_ != 0)
    opt.bind(4, np.float64, 4)
    assert opt.t_ == 0 and np.all(opt.state_ == 0)


def test_step_before_bind_raises():
    with pytest.raises(RuntimeError, match="bind"):
        O.Adam().step(np.ones(3), np.ones(3))


def test_step_rejects_mismatched_arrays():
    opt = O.Adam().bind(4, np.float32, 2)
    with pytest.raises(ValueError, match="params"):
        opt.step(np.ones(5, np.float32), np.ones(5, np.float32))
    with pytest.raises(TypeError, match="bound for float32"):
        opt.step(np.ones(4, np.float64), np.ones(4, np.float64))
    with pytest.raises(TypeError, match="params"):
        opt.step([1.0] * 4, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="grad"):
        opt.step(np.ones(4, np.float32), np.ones(4, np.float64))
    with pytest.raises(ValueError, match="grad"):
        opt.step(np.ones(4, np.float32), np.ones(3, np.float32))
    assert opt.t_ == 0


@pytest.mark.parametrize("name, cls, ref, kwargs, lr", CONFIGS, ids=CONFIG_IDS)
def test_compiled_loop_protocol_matches_step(name, cls, ref, kwargs, lr):
    # The compiled loop takes an epoch's rates from learning_rates(), applies
    # the kernel with step numbers t_+1 ... t_+k, then calls advance(k).
    schedule = lambda: StepDecay(lr, factor=0.5, every=4, per="step")  # noqa: E731
    theta0 = initial_params(np.float64)
    grads = gradients(np.float64)
    stepped = theta0.copy()
    a = cls(lr=schedule(), **kwargs).bind(N, np.float64, N_DECAY)
    for g in grads:
        a.step(stepped, g)
    looped = theta0.copy()
    b = cls(lr=schedule(), **kwargs).bind(N, np.float64, N_DECAY)
    for chunk in (grads[:10], grads[10:]):
        rates = b.learning_rates(0, b.t_ + 1, len(chunk))
        for i, g in enumerate(chunk):
            b.kernel.step(b.hyper_, looped, g, b.state_, b.n_decay_, rates[i],
                          b.t_ + 1 + i)
        b.advance(len(chunk))
    assert a.t_ == b.t_ == STEPS
    np.testing.assert_array_equal(looped, stepped)
    np.testing.assert_array_equal(b.state_, a.state_)


def test_per_epoch_schedule_follows_epochs():
    opt = O.SGD(lr=StepDecay(1.0, factor=0.5, every=1)).bind(1, np.float64, 1)
    p = np.zeros(1)
    opt.step(p, np.ones(1))
    opt.step(p, np.ones(1))
    assert p[0] == -2.0
    opt.on_epoch_end(0, {})
    assert opt.current_lr == 0.5
    opt.step(p, np.ones(1))
    assert p[0] == -2.5
    np.testing.assert_array_equal(opt.learning_rates(3, 4, 2), [0.125, 0.125])


def test_on_epoch_end_drives_plateau_schedule():
    opt = O.Adam(lr=ReduceLROnPlateau(0.1, monitor="loss", patience=1, factor=0.5))
    opt.bind(3, np.float64, 3)
    for epoch, loss in enumerate([1.0, 2.0, 2.0, 2.0]):
        opt.on_epoch_end(epoch, {"loss": loss})
    # Best 1.0 at epoch 0; two bad epochs exceed patience 1 → halved once.
    assert opt.current_lr == pytest.approx(0.05)
    assert opt.epoch_ == 4


def test_advance_and_current_lr():
    opt = O.SGD(lr=ExponentialDecay(0.2, 0.5, per="step")).bind(3, np.float32, 3)
    assert opt.current_lr == pytest.approx(0.2)
    opt.advance(4)
    assert opt.t_ == 4
    assert opt.current_lr == pytest.approx(0.2 * math.exp(-0.5 * 4))
    with pytest.raises(ValueError, match="n_steps"):
        opt.advance(-1)


def test_get_optimizer():
    opt = O.get_optimizer("AdamW", lr=0.5)
    assert isinstance(opt, O.AdamW) and opt.current_lr == 0.5
    assert O.get_optimizer(opt) is opt
    with pytest.raises(ValueError, match="unknown optimizer"):
        O.get_optimizer("adamax")


# --- validation ---------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, name", [
    (O.SGD, {"lr": -0.1}, "lr"),
    (O.SGD, {"lr": float("nan")}, "lr"),
    (O.SGD, {"momentum": -0.5}, "momentum"),
    (O.SGD, {"dampening": 1.5}, "dampening"),
    (O.SGD, {"nesterov": True}, "nesterov"),
    (O.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "nesterov"),
    (O.SGD, {"weight_decay": -1e-4}, "weight_decay"),
    (O.AdaGrad, {"lr_decay": -1.0}, "lr_decay"),
    (O.AdaGrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (O.AdaGrad, {"eps": 0.0}, "eps"),
    (O.RMSProp, {"alpha": 1.0}, "alpha"),
    (O.RMSProp, {"alpha": -0.1}, "alpha"),
    (O.RMSProp, {"eps": -1e-8}, "eps"),
    (O.RMSProp, {"momentum": -0.9}, "momentum"),
    (O.AdaDelta, {"rho": 1.0}, "rho"),
    (O.AdaDelta, {"eps": 0.0}, "eps"),
    (O.AdaDelta, {"lr": -1.0}, "lr"),
    (O.Adam, {"betas": (1.0, 0.999)}, "beta1"),
    (O.Adam, {"betas": (0.9, -0.1)}, "beta2"),
    (O.Adam, {"betas": (0.9,)}, "betas"),
    (O.Adam, {"eps": 0.0}, "eps"),
    (O.Adam, {"weight_decay": -0.1}, "weight_decay"),
    (O.AdamW, {"weight_decay": -0.1}, "weight_decay"),
    (O.AdamW, {"betas": (0.9, 1.5)}, "beta2"),
])
def test_invalid_hyper_parameters(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize("cls, kwargs, name", [
    (O.SGD, {"lr": "fast"}, "lr"),
    (O.SGD, {"momentum": None}, "momentum"),
    (O.Adam, {"amsgrad": "yes"}, "amsgrad"),
    (O.RMSProp, {"centered": 1}, "centered"),
])
def test_wrongly_typed_hyper_parameters(cls, kwargs, name):
    with pytest.raises(TypeError, match=name):
        cls(**kwargs)


def test_invalid_bind_arguments():
    with pytest.raises(ValueError, match="n_decay"):
        O.Adam().bind(5, np.float64, 6)
    with pytest.raises(ValueError, match="n_decay"):
        O.Adam().bind(5, np.float64, -1)
    with pytest.raises(TypeError, match="dtype"):
        O.Adam().bind(5, np.int32, 5)
    with pytest.raises(ValueError, match="n_params"):
        O.Adam().bind(-1, np.float64, 0)


class TestKernelWrapper:
    """OptimizerKernel.step refuses anything the kernel could misread."""

    def setup_method(self):
        self.hyper = optim.ADAM.hyper(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                      amsgrad=0, decoupled=0)
        self.param = np.ones(6, np.float32)
        self.grad = np.ones(6, np.float32)
        self.state = np.zeros((2, 6), np.float32)

    def call(self, **changes):
        args = dict(hyper=self.hyper, param=self.param, grad=self.grad,
                    state=self.state, n_decay=3, lr=0.1, step=1)
        args.update(changes)
        optim.ADAM.step(**args)

    def test_valid_call_updates(self):
        self.call()
        assert np.all(self.param < 1)

    @pytest.mark.parametrize("changes, error, match", [
        ({"hyper": optim.SGD.hyper(momentum=0, dampening=0, weight_decay=0, nesterov=0)},
         TypeError, "hyper"),
        ({"hyper": np.zeros(5)}, TypeError, "hyper"),
        ({"hyper": [0.9, 0.999, 1e-8, 0, 0, 0]}, TypeError, "hyper"),
        ({"grad": np.ones(5, np.float32)}, ValueError, "grad"),
        ({"grad": np.ones(6, np.float64)}, TypeError, "grad"),
        ({"grad": [1.0] * 6}, TypeError, "grad"),
        ({"param": np.ones(6, np.int64)}, TypeError, "param"),
        ({"param": np.ones(12, np.float32)[::2]}, ValueError, "contiguous"),
        ({"param": np.ones((2, 3), np.float32)}, ValueError, "param"),
        ({"state": np.zeros((3, 6), np.float32)}, ValueError, "state"),
        ({"state": np.zeros((2, 5), np.float32)}, ValueError, "state"),
        ({"state": np.zeros((2, 6), np.float64)}, TypeError, "state"),
        ({"n_decay": 7}, ValueError, "n_decay"),
        ({"n_decay": -1}, ValueError, "n_decay"),
        ({"step": 0}, ValueError, "step"),
        ({"lr": float("nan")}, ValueError, "lr"),
    ])
    def test_rejects(self, changes, error, match):
        before = self.param.copy()
        with pytest.raises(error, match=match):
            self.call(**changes)
        np.testing.assert_array_equal(self.param, before)

    def test_hyper_record_needs_every_field(self):
        with pytest.raises(ValueError, match="beta2"):
            optim.ADAM.hyper(beta1=0.9)

    def test_rejects_foreign_layouts(self):
        with pytest.raises(TypeError, match="native"):
            self.call(grad=np.ones(6, ">f4"))
        unaligned = np.frombuffer(bytearray(4 * 6 + 1), np.float32, count=6, offset=1)
        assert not unaligned.flags.aligned
        with pytest.raises(ValueError, match="aligned"):
            self.call(param=unaligned)

    def test_rejects_overlap(self):
        with pytest.raises(ValueError, match="overlap"):
            self.call(grad=self.param)
        buf = np.zeros(18, np.float32)
        self.call(param=buf[:6], state=buf[6:].reshape(2, 6))  # adjacent is fine
        with pytest.raises(ValueError, match="overlap"):
            self.call(param=buf[:6], state=buf[5:17].reshape(2, 6))

    def test_rejects_read_only_param(self):
        self.param.flags.writeable = False
        with pytest.raises(ValueError, match=r"\bparam\b.*read-only"):
            self.call()

    @pytest.mark.parametrize("changes, error, match", [
        ({"n_decay": 2**70}, ValueError, r"\bn_decay\b"),
        ({"n_decay": 1.5}, TypeError, r"\bn_decay\b"),
        ({"n_decay": True}, TypeError, r"\bn_decay\b"),
        ({"step": 2**70}, ValueError, r"\bstep\b"),
        ({"step": -2**70}, ValueError, r"\bstep\b"),
        ({"step": "1"}, TypeError, r"\bstep\b"),
        ({"lr": "0.1"}, TypeError, r"\blr\b"),
        ({"lr": 10**400}, ValueError, r"\blr\b"),
        ({"lr": float("inf")}, ValueError, r"\blr\b"),
    ])
    def test_rejects_scalars_by_name(self, changes, error, match):
        before = self.param.copy()
        with pytest.raises(error, match=match):
            self.call(**changes)
        np.testing.assert_array_equal(self.param, before)

    def test_overlap_message_names_both_arrays(self):
        buf = np.zeros(18, np.float32)
        with pytest.raises(ValueError, match=r"\bstate\b overlaps \bgrad\b"):
            self.call(grad=buf[:6], state=buf[5:17].reshape(2, 6))
        with pytest.raises(ValueError, match=r"\bgrad\b overlaps \bparam\b"):
            self.call(param=buf[:6], grad=buf[3:9])

    @pytest.mark.parametrize("field, value, error", [
        ("beta1", "0.9", TypeError),
        ("beta1", float("nan"), ValueError),
        ("eps", float("inf"), ValueError),
        ("beta2", None, TypeError),
        ("amsgrad", 0.5, TypeError),
        ("decoupled", "1", TypeError),
        ("amsgrad", 2**70, ValueError),
    ])
    def test_hyper_checks_each_value_by_name(self, field, value, error):
        values = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=0,
                      decoupled=0)
        values[field] = value
        with pytest.raises(error, match=rf"\b{field}\b"):
            optim.ADAM.hyper(**values)

    def test_hyper_flags_take_bools(self):
        record = optim.ADAM.hyper(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                  amsgrad=True, decoupled=False)
        assert record["amsgrad"] == 1 and record["decoupled"] == 0
        assert optim.ADAM.n_slots(record) == 3

    def test_n_slots_refuses_anything_but_a_record(self):
        with pytest.raises(TypeError, match="hyper"):
            optim.ADAM.n_slots(np.zeros(6))

    def test_n_slots_matches_layout(self):
        assert optim.ADAM.n_slots(self.hyper) == 2
        assert optim.SGD.n_slots(optim.SGD.hyper(momentum=0, dampening=0, weight_decay=0,
                                                 nesterov=0)) == 0
        assert optim.RMSPROP.n_slots(optim.RMSPROP.hyper(
            alpha=0.9, eps=1e-8, weight_decay=0, momentum=0.5, centered=1)) == 3

    def test_empty_parameters(self):
        self.call(param=np.ones(0, np.float32), grad=np.ones(0, np.float32),
                  state=np.zeros((2, 0), np.float32), n_decay=0)


# --- torch.optim, when available ---------------------------------------------

def torch_optimizer(torch, name, params, lr, kwargs):
    weights, biases = params
    kwargs = dict(kwargs)
    wd = kwargs.pop("weight_decay", 1e-2 if name.startswith("adamw") else 0.0)
    cls = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
           "rmsprop": torch.optim.RMSprop, "adadelta": torch.optim.Adadelta,
           "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name.split("-")[0]]
    groups = [{"params": [weights], "weight_decay": wd},
              {"params": [biases], "weight_decay": 0.0}]
    return cls(groups, lr=lr, foreach=False, **kwargs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, cls, ref, kwargs, lr", TORCH_CONFIGS,
                         ids=[c[0] for c in TORCH_CONFIGS])
def test_matches_torch(name, cls, ref, kwargs, lr, dtype):
    torch = pytest.importorskip("torch")
    np_dtype = np.dtype(dtype)
    theta0 = initial_params(np_dtype)
    grads = gradients(np_dtype, seed=11)
    lrs = [lr * math.exp(-0.1 * s) for s in range(STEPS)]

    weights = torch.tensor(theta0[:N_DECAY].copy(), requires_grad=True)
    biases = torch.tensor(theta0[N_DECAY:].copy(), requires_grad=True)
    opt = torch_optimizer(torch, name, (weights, biases), lr, kwargs)
    for g, rate in zip(grads, lrs):
        for group in opt.param_groups:
            group["lr"] = rate
        weights.grad = torch.tensor(g[:N_DECAY].copy())
        biases.grad = torch.tensor(g[N_DECAY:].copy())
        opt.step()
    expected = np.concatenate([weights.detach().numpy(), biases.detach().numpy()])

    actual, _ = run_fastnn(cls(lr=ExponentialDecay(lr, 0.1, per="step"), **kwargs),
                           theta0, grads)
    # float32: torch evaluates some terms in another order (lerp, addcdiv);
    # rounding differences of a few ulps per step stay below 1e-6 of the scale.
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert_matches(actual, expected, rtol)
