"""Batch-normalization kernels (fastnn_ext.batchnorm) against a NumPy
transcription of the formulas, central finite differences, PyTorch (when
installed) and bad arguments.
"""

import numpy as np
import pytest

from fastnn_ext import batchnorm as bn

DTYPES = [np.float32, np.float64]
SHAPES = [(2, 1), (3, 5), (7, 13), (128, 300), (5, 513)]


# ---------------------------------------------------------------- references

def reference_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """PyTorch BatchNorm1d training step, transcribed in float64."""
    x = x.astype(np.float64)
    m = x.shape[0]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    y = gamma.astype(np.float64) * xhat + beta
    new_mean = (1 - momentum) * running_mean.astype(np.float64) + momentum * mean
    new_var = ((1 - momentum) * running_var.astype(np.float64)
               + momentum * var * m / (m - 1))
    return y, xhat, mean, invstd, new_mean, new_var


def reference_eval(x, gamma, beta, running_mean, running_var, eps):
    x = x.astype(np.float64)
    return (gamma.astype(np.float64) * (x - running_mean)
            / np.sqrt(running_var.astype(np.float64) + eps) + beta)


# ------------------------------------------------------------------- helpers

def make_inputs(shape, dtype, seed=0, loc=1.0, spread=3.0):
    rng = np.random.default_rng(seed)
    m, n = shape
    x = (loc + spread * rng.standard_normal((m, n))).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, n).astype(dtype)
    beta = rng.standard_normal(n).astype(dtype)
    running_mean = rng.standard_normal(n).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, n).astype(dtype)
    return x, gamma, beta, running_mean, running_var


def train(x, gamma, beta, running_mean=None, running_var=None, momentum=0.1,
          eps=1e-5):
    m, n = x.shape
    out = dict(y=np.full_like(x, np.nan), xhat=np.full_like(x, np.nan),
               mean=np.full(n, np.nan, x.dtype), invstd=np.full(n, np.nan, x.dtype))
    bn.forward_train(x, gamma, beta, out["y"], out["xhat"], out["mean"],
                     out["invstd"], running_mean, running_var, momentum, eps)
    return out


def backward(dy, xhat, gamma, invstd):
    dx = np.full_like(dy, np.nan)
    dgamma = np.full(dy.shape[1], np.nan, dy.dtype)
    dbeta = np.full(dy.shape[1], np.nan, dy.dtype)
    bn.backward(dy, xhat, gamma, invstd, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


TOLERANCE = {np.float32: 2e-6, np.float64: 1e-13}


def assert_close(actual, expected, dtype, scale=None):
    """Worst error relative to the scale of the expected array."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    if scale is None:
        scale = max(np.abs(expected).max(initial=0.0), np.finfo(np.float64).tiny)
    error = np.abs(actual - expected).max(initial=0.0) / scale
    assert error <= TOLERANCE[dtype], f"relative error {error:.3g}"


# ------------------------------------------------------------------- forward

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_train_matches_formulas(dtype, shape):
    x, gamma, beta, rm, rv = make_inputs(shape, dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    out = train(x, gamma, beta, rm, rv, momentum=0.3, eps=1e-3)
    y, xhat, mean, invstd, new_mean, new_var = reference_train(
        x, gamma, beta, rm0, rv0, 0.3, 1e-3)
    for name, expected in [("y", y), ("xhat", xhat), ("mean", mean),
                           ("invstd", invstd)]:
        assert out[name].dtype == dtype
        assert_close(out[name], expected, dtype)
    assert_close(rm, new_mean, dtype)
    assert_close(rv, new_var, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_running_statistics_over_several_steps(dtype):
    x, gamma, beta, rm, rv = make_inputs((9, 4), dtype, seed=1)
    ref_mean, ref_var = rm.astype(np.float64), rv.astype(np.float64)
    rng = np.random.default_rng(2)
    for step in range(5):
        batch = (x + step + rng.standard_normal(x.shape)).astype(dtype)
        train(batch, gamma, beta, rm, rv, momentum=0.25)
        *_, ref_mean, ref_var = reference_train(batch, gamma, beta, ref_mean,
                                                ref_var, 0.25, 1e-5)
    assert_close(rm, ref_mean, dtype)
    assert_close(rv, ref_var, dtype)


def test_momentum_zero_and_one():
    x, gamma, beta, rm, rv = make_inputs((6, 3), np.float64, seed=3)
    rm0, rv0 = rm.copy(), rv.copy()
    train(x, gamma, beta, rm, rv, momentum=0.0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    train(x, gamma, beta, rm, rv, momentum=1.0)
    assert_close(rm, x.mean(axis=0), np.float64)
    assert_close(rv, x.var(axis=0, ddof=1), np.float64)


def test_running_statistics_may_be_left_out():
    x, gamma, beta, _, _ = make_inputs((6, 3), np.float64, seed=4)
    out = train(x, gamma, beta, None, None)
    y, *_ = reference_train(x, gamma, beta, np.zeros(3), np.ones(3), 0.1, 1e-5)
    assert_close(out["y"], y, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(1, 4), (0, 3)])
def test_forward_eval_matches_formula(dtype, shape):
    x, gamma, beta, rm, rv = make_inputs(shape, dtype, seed=5)
    y = np.full_like(x, np.nan)
    bn.forward_eval(x, gamma, beta, y, rm, rv, 1e-2)
    assert_close(y, reference_eval(x, gamma, beta, rm, rv, 1e-2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_in_place(dtype):
    x, gamma, beta, rm, rv = make_inputs((10, 7), dtype, seed=6)
    expected = train(x.copy(), gamma, beta)
    xhat = np.empty_like(x)
    y = x.copy()
    bn.forward_train(y, gamma, beta, y, xhat, np.empty(7, dtype),
                     np.empty(7, dtype), None, None)
    np.testing.assert_array_equal(y, expected["y"])
    np.testing.assert_array_equal(xhat, expected["xhat"])
    y = x.copy()
    bn.forward_eval(y, gamma, beta, y, rm, rv)
    expected_eval = np.empty_like(x)
    bn.forward_eval(x, gamma, beta, expected_eval, rm, rv)
    np.testing.assert_array_equal(y, expected_eval)


def test_constant_feature_is_centred_to_beta():
    x = np.full((5, 2), 3.25)
    x[:, 1] = np.arange(5.0)
    gamma = np.array([2.0, 1.0])
    beta = np.array([-0.5, 0.0])
    out = train(x, gamma, beta)
    np.testing.assert_array_equal(out["xhat"][:, 0], 0.0)
    np.testing.assert_array_equal(out["y"][:, 0], -0.5)
    assert out["invstd"][0] == pytest.approx(1 / np.sqrt(1e-5))


# ----------------------------------------------------------------- stability

def test_large_mean_small_spread_float32():
    # Mean 1e4, std 1e-2: float32 steps near 1e4 are ~1e-3, so the mean must
    # be neither rounded to float32 before centring nor taken from E[x**2].
    rng = np.random.default_rng(7)
    x = (1e4 + 1e-2 * rng.standard_normal((64, 3))).astype(np.float32)
    gamma = np.ones(3, np.float32)
    beta = np.zeros(3, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    out = train(x, gamma, beta, rm, rv, momentum=1.0)
    y, xhat, mean, invstd, new_mean, new_var = reference_train(
        x, gamma, beta, np.zeros(3), np.ones(3), 1.0, 1e-5)
    assert np.all(invstd > 10)  # the spread survived float32 input
    np.testing.assert_allclose(out["xhat"], xhat, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["invstd"], invstd, rtol=1e-5)
    np.testing.assert_allclose(out["mean"], mean, rtol=1e-7)
    np.testing.assert_allclose(rv, new_var, rtol=1e-5)


def test_large_mean_small_spread_float64():
    rng = np.random.default_rng(8)
    x = 1e8 + 1e-3 * rng.standard_normal((50, 2))
    # eps must be > 0; 1e-300 against a variance of 1e-6 leaves the spread alone.
    out = train(x, np.ones(2), np.zeros(2), eps=1e-300)
    _, xhat, _, invstd, _, _ = reference_train(x, np.ones(2), np.zeros(2),
                                               np.zeros(2), np.ones(2), 0.1, 1e-300)
    np.testing.assert_allclose(out["invstd"], invstd, rtol=1e-8)
    np.testing.assert_allclose(out["xhat"], xhat, rtol=0, atol=1e-8)


# ------------------------------------------------------------------ backward

def loss_and_gradients(x, gamma, beta, weights, eps):
    """L = sum(weights * y) with its analytic gradients from the kernels."""
    out = train(x, gamma, beta, eps=eps)
    dx, dgamma, dbeta = backward(weights, out["xhat"], gamma, out["invstd"])
    return np.sum(weights * out["y"]), dx, dgamma, dbeta


def central_difference(f, a, h):
    """Fourth-order central differences of f with respect to every a[idx]."""
    grad = np.empty_like(a)
    for idx in np.ndindex(a.shape):
        saved = a[idx]
        values = []
        for step in (2 * h, h, -h, -2 * h):
            a[idx] = saved + step
            values.append(f())
        a[idx] = saved
        grad[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)
    return grad


def worst_relative_error(actual, expected):
    # Entries much smaller than the largest are compared at that scale:
    # relative error is meaningless for a gradient that is zero by chance.
    floor = 1e-3 * np.abs(expected).max()
    return np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), floor))


@pytest.mark.parametrize("shape, eps", [((2, 1), 0.5), ((2, 3), 1e-2),
                                        ((7, 13), 1e-5), ((5, 260), 1e-3)])
def test_backward_matches_finite_differences(shape, eps):
    x, gamma, beta, _, _ = make_inputs(shape, np.float64, seed=9)
    weights = np.random.default_rng(10).standard_normal(shape)
    _, dx, dgamma, dbeta = loss_and_gradients(x, gamma, beta, weights, eps)
    f = lambda: loss_and_gradients(x, gamma, beta, weights, eps)[0]
    for name, analytic, wrt in [("x", dx, x), ("gamma", dgamma, gamma),
                                ("beta", dbeta, beta)]:
        numeric = central_difference(f, wrt, 1e-3)
        error = worst_relative_error(analytic, numeric)
        assert error < 1e-7, f"d{name}: worst relative error {error:.3g}"


def test_backward_overwrites_gradients():
    x, gamma, beta, _, _ = make_inputs((6, 4), np.float64, seed=11)
    dy = np.random.default_rng(12).standard_normal((6, 4))
    out = train(x, gamma, beta)
    first = backward(dy, out["xhat"], gamma, out["invstd"])
    dx, dgamma, dbeta = (np.full_like(a, 1e30) for a in first)
    bn.backward(dy, out["xhat"], gamma, out["invstd"], dx, dgamma, dbeta)
    for got, want in zip((dx, dgamma, dbeta), first):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_in_place(dtype):
    x, gamma, beta, _, _ = make_inputs((9, 6), dtype, seed=13)
    dy = np.random.default_rng(14).standard_normal((9, 6)).astype(dtype)
    out = train(x, gamma, beta)
    dx, dgamma, dbeta = backward(dy, out["xhat"], gamma, out["invstd"])
    for target in ("dy", "xhat"):
        arrays = dict(dy=dy.copy(), xhat=out["xhat"].copy())
        dg, db = np.empty_like(dgamma), np.empty_like(dbeta)
        bn.backward(arrays["dy"], arrays["xhat"], gamma, out["invstd"],
                    arrays[target], dg, db)
        np.testing.assert_array_equal(arrays[target], dx)
        np.testing.assert_array_equal(dg, dgamma)
        np.testing.assert_array_equal(db, dbeta)


@pytest.mark.parametrize("shape", [(3, 5), (7, 13), (128, 300), (5, 513)])
def test_float32_agrees_with_float64(shape):
    x, gamma, beta, rm, rv = make_inputs(shape, np.float64, seed=15)
    dy = np.random.default_rng(16).standard_normal(shape)
    results = {}
    for dtype in DTYPES:
        cast = [a.astype(dtype) for a in (x, gamma, beta, rm, rv, dy)]
        out = train(*cast[:5])
        grads = backward(cast[5], out["xhat"], cast[1], out["invstd"])
        results[dtype] = [out["y"], out["xhat"], out["mean"], out["invstd"],
                          cast[3], cast[4], *grads]
    for single, double in zip(results[np.float32], results[np.float64]):
        scale = np.abs(double).max()
        np.testing.assert_allclose(single, double, rtol=0, atol=3e-6 * scale)


# ------------------------------------------------------- backward, eval mode

def backward_eval(dy, x, gamma, running_mean, running_var, eps):
    dx = np.full_like(dy, np.nan)
    dgamma = np.full(dy.shape[1], np.nan, dy.dtype)
    dbeta = np.full(dy.shape[1], np.nan, dy.dtype)
    bn.backward_eval(dy, x, gamma, running_mean, running_var, eps, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


def reference_backward_eval(dy, x, gamma, running_mean, running_var, eps):
    """The affine map's gradients, transcribed in float64."""
    dy, x, gamma, rm, rv = (a.astype(np.float64) for a in
                            (dy, x, gamma, running_mean, running_var))
    invstd = 1.0 / np.sqrt(rv + eps)
    return dy * gamma * invstd, (dy * (x - rm) * invstd).sum(axis=0), dy.sum(axis=0)


@pytest.mark.parametrize("shape, eps", [((1, 1), 0.5), ((2, 3), 1e-2),
                                        ((7, 13), 1e-5), ((5, 260), 1e-3)])
def test_backward_eval_matches_finite_differences(shape, eps):
    x, gamma, beta, rm, rv = make_inputs(shape, np.float64, seed=23)
    weights = np.random.default_rng(24).standard_normal(shape)

    def objective():
        y = np.empty_like(x)
        bn.forward_eval(x, gamma, beta, y, rm, rv, eps)
        return np.sum(weights * y)

    statistics = rm.copy(), rv.copy()
    dx, dgamma, dbeta = backward_eval(weights, x, gamma, rm, rv, eps)
    np.testing.assert_array_equal(rm, statistics[0])
    np.testing.assert_array_equal(rv, statistics[1])
    for name, analytic, wrt in [("x", dx, x), ("gamma", dgamma, gamma),
                                ("beta", dbeta, beta)]:
        numeric = central_difference(objective, wrt, 1e-3)
        error = worst_relative_error(analytic, numeric)
        assert error < 1e-7, f"d{name}: worst relative error {error:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (1, 1), (9, 6), (33, 300)])
def test_backward_eval_matches_formula(dtype, shape):
    x, gamma, _, rm, rv = make_inputs(shape, dtype, seed=25, loc=5.0)
    dy = np.random.default_rng(26).standard_normal(shape).astype(dtype)
    got = backward_eval(dy, x, gamma, rm, rv, 1e-3)
    want = reference_backward_eval(dy, x, gamma, rm, rv, 1e-3)
    for name, g, w in zip(("dx", "dgamma", "dbeta"), got, want):
        scale = max(np.abs(w).max(initial=0.0), 1.0)
        assert np.abs(g - w).max(initial=0.0) / scale <= 4 * TOLERANCE[dtype] * np.sqrt(
            max(shape[0], 1)), name


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_eval_in_place(dtype):
    x, gamma, _, rm, rv = make_inputs((9, 6), dtype, seed=27)
    dy = np.random.default_rng(28).standard_normal((9, 6)).astype(dtype)
    dx, dgamma, dbeta = backward_eval(dy, x, gamma, rm, rv, 1e-5)
    for target in ("dy", "x"):
        arrays = dict(dy=dy.copy(), x=x.copy())
        dg, db = np.empty_like(dgamma), np.empty_like(dbeta)
        bn.backward_eval(arrays["dy"], arrays["x"], gamma, rm, rv, 1e-5,
                         arrays[target], dg, db)
        np.testing.assert_array_equal(arrays[target], dx)
        np.testing.assert_array_equal(dg, dgamma)
        np.testing.assert_array_equal(db, dbeta)


def test_bad_backward_eval_arguments_raise():
    x, gamma, _, rm, rv = make_inputs((4, 3), np.float32, seed=29)
    dy = np.ones_like(x)
    dx, dg, db = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    with pytest.raises(ValueError, match="eps"):
        bn.backward_eval(dy, x, gamma, rm, rv, 0.0, dx, dg, db)
    with pytest.raises(ValueError, match="eps"):
        bn.backward_eval(dy, x, gamma, rm, rv, np.nan, dx, dg, db)
    with pytest.raises(ValueError, match="x has shape"):
        bn.backward_eval(dy, x[:3], gamma, rm, rv, 1e-5, dx, dg, db)
    with pytest.raises(TypeError, match="running_var has dtype"):
        bn.backward_eval(dy, x, gamma, rm, rv.astype(np.float64), 1e-5, dx, dg, db)
    with pytest.raises(ValueError, match="grad_gamma overlaps gamma"):
        bn.backward_eval(dy, x, gamma, rm, rv, 1e-5, dx, gamma, db)
    with pytest.raises(ValueError, match="grad_beta overlaps grad_gamma|grad_gamma overlaps grad_beta"):
        bn.backward_eval(dy, x, gamma, rm, rv, 1e-5, dx, dg, dg)
    buffer = np.empty(24, np.float32)
    with pytest.raises(ValueError, match="grad_in overlaps grad_out"):
        bn.backward_eval(buffer[:12].reshape(4, 3), x, gamma, rm, rv, 1e-5,
                         buffer[3:15].reshape(4, 3), dg, db)
    with pytest.raises(ValueError, match="grad_in.*writeable"):
        bn.backward_eval(dy, x, gamma, rm, rv, 1e-5, read_only(dx), dg, db)


# --------------------------------------------------------------------- torch

@pytest.mark.parametrize("dtype", DTYPES)
def test_agrees_with_torch(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, gamma, beta, rm, rv = make_inputs((16, 300), dtype, seed=17)
    dy = np.random.default_rng(18).standard_normal(x.shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty = F.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.2, eps=1e-4)
    ty.backward(torch.tensor(dy))

    out = train(x, gamma, beta, rm, rv, momentum=0.2, eps=1e-4)
    dx, dgamma, dbeta = backward(dy, out["xhat"], gamma, out["invstd"])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for ours, theirs in [(out["y"], ty), (rm, trm), (rv, trv), (dx, tx.grad),
                         (dgamma, tg.grad), (dbeta, tb.grad)]:
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0,
                                   atol=tol * np.abs(theirs).max())

    y = np.empty_like(x)
    bn.forward_eval(x, gamma, beta, y, rm, rv, 1e-4)
    expected = F.batch_norm(torch.tensor(x), trm, trv, torch.tensor(gamma),
                            torch.tensor(beta), training=False, eps=1e-4).numpy()
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol * np.abs(expected).max())


def test_agrees_with_torch_module():
    torch = pytest.importorskip("torch")
    x, gamma, beta, _, _ = make_inputs((12, 5), np.float64, seed=19)
    layer = torch.nn.BatchNorm1d(5, eps=1e-5, momentum=0.1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(gamma))
        layer.bias.copy_(torch.tensor(beta))
    rm, rv = np.zeros(5), np.ones(5)  # BatchNorm1d's initial statistics
    for step in range(3):
        batch = x + step
        expected = layer(torch.tensor(batch)).detach().numpy()
        out = train(batch, gamma, beta, rm, rv)
        assert_close(out["y"], expected, np.float64)
    assert_close(rm, layer.running_mean.numpy(), np.float64)
    assert_close(rv, layer.running_var.numpy(), np.float64)


# ------------------------------------------------------------ bad arguments

def train_arguments(dtype=np.float32, m=4, n=3):
    x = np.ones((m, n), dtype)
    x[0] = 2
    return dict(x=x, gamma=np.ones(n, dtype), beta=np.zeros(n, dtype),
                y=np.empty((m, n), dtype), xhat=np.empty((m, n), dtype),
                mean=np.empty(n, dtype), invstd=np.empty(n, dtype),
                running_mean=np.zeros(n, dtype), running_var=np.ones(n, dtype))


def call_train(args, momentum=0.1, eps=1e-5):
    bn.forward_train(args["x"], args["gamma"], args["beta"], args["y"],
                     args["xhat"], args["mean"], args["invstd"],
                     args["running_mean"], args["running_var"], momentum, eps)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_TRAIN = [
    ("one row", ValueError, "at least 2 rows", dict(x=np.ones((1, 3), np.float32),
                                                    y=np.empty((1, 3), np.float32),
                                                    xhat=np.empty((1, 3), np.float32))),
    ("1-D x", ValueError, "2-D", dict(x=np.ones(3, np.float32))),
    ("gamma length", ValueError, "gamma has shape", dict(gamma=np.ones(4, np.float32))),
    ("gamma 2-D", ValueError, "gamma has shape", dict(gamma=np.ones((1, 3), np.float32))),
    ("beta dtype", TypeError, "beta has dtype", dict(beta=np.zeros(3))),
    ("integer x", TypeError, "float32 or float64", dict(x=np.ones((4, 3), np.int64))),
    ("list gamma", TypeError, "ndarray", dict(gamma=[1.0, 1.0, 1.0])),
    ("y shape", ValueError, "y has shape", dict(y=np.empty((3, 4), np.float32))),
    ("strided xhat", ValueError, "contiguous",
     dict(xhat=np.empty((4, 6), np.float32)[:, ::2])),
    ("read-only mean", ValueError, "writeable",
     dict(mean=read_only(np.empty(3, np.float32)))),
    ("one running stat", ValueError, "both", dict(running_var=None)),
    ("running_var length", ValueError, "running_var has shape",
     dict(running_var=np.ones(2, np.float32))),
]


@pytest.mark.parametrize("case", BAD_TRAIN, ids=lambda c: c[0])
def test_bad_train_arguments_raise_before_writing(case):
    _, error, match, changes = case
    args = train_arguments()
    args.update(changes)
    watched = {k: v.copy() for k, v in args.items()
               if isinstance(v, np.ndarray) and v.flags.writeable and k != "x"}
    with pytest.raises(error, match=match):
        call_train(args)
    for k, before in watched.items():
        np.testing.assert_array_equal(args[k], before)


@pytest.mark.parametrize("momentum, eps, match", [
    (-0.1, 1e-5, "momentum"), (1.5, 1e-5, "momentum"), (np.nan, 1e-5, "momentum"),
    (0.1, -1e-5, "eps"), (0.1, 0.0, "eps"), (0.1, np.nan, "eps"), (0.1, np.inf, "eps")])
def test_bad_hyperparameters_raise(momentum, eps, match):
    with pytest.raises(ValueError, match=match):
        call_train(train_arguments(), momentum, eps)


def test_overlapping_outputs_raise():
    args = train_arguments()
    args["xhat"] = args["y"]
    with pytest.raises(ValueError, match="overlaps"):
        call_train(args)
    args = train_arguments()
    args["mean"] = args["gamma"]
    with pytest.raises(ValueError, match="mean overlaps gamma"):
        call_train(args)
    args = train_arguments()
    buffer = np.empty(6, np.float32)
    args["invstd"], args["running_var"] = buffer[:3], buffer[2:5]
    with pytest.raises(ValueError, match="overlaps"):
        call_train(args)


def test_bad_eval_arguments_raise():
    a = train_arguments()
    with pytest.raises(ValueError, match="running_mean has shape"):
        bn.forward_eval(a["x"], a["gamma"], a["beta"], a["y"], np.zeros(5, np.float32),
                        a["running_var"])
    with pytest.raises(TypeError, match="y has dtype"):
        bn.forward_eval(a["x"], a["gamma"], a["beta"], np.empty((4, 3)),
                        a["running_mean"], a["running_var"])
    buffer = np.ones(13, np.float32)
    with pytest.raises(ValueError, match="y overlaps gamma"):
        bn.forward_eval(a["x"], buffer[10:13], a["beta"], buffer[:12].reshape(4, 3),
                        a["running_mean"], a["running_var"])


def test_bad_backward_arguments_raise():
    a = train_arguments()
    dy, xhat, gamma, invstd = a["x"], a["xhat"], a["gamma"], a["invstd"]
    dx, dgamma, dbeta = np.empty_like(dy), np.empty(3, np.float32), np.empty(3, np.float32)
    with pytest.raises(ValueError, match="xhat has shape"):
        bn.backward(dy, np.empty((4, 4), np.float32), gamma, invstd, dx, dgamma, dbeta)
    with pytest.raises(TypeError, match="invstd has dtype"):
        bn.backward(dy, xhat, gamma, np.ones(3), dx, dgamma, dbeta)
    with pytest.raises(ValueError, match="dgamma overlaps dbeta"):
        bn.backward(dy, xhat, gamma, invstd, dx, dgamma, dgamma)
    with pytest.raises(ValueError, match="dgamma overlaps gamma"):
        bn.backward(dy, xhat, gamma, invstd, dx, gamma, dbeta)
