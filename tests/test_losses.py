"""Loss kernels (fastnn_ext.losses) and loss classes (fastnn.losses) against
NumPy transcriptions of their formulas, central finite differences and, when
installed, PyTorch.

``loss_grad`` returns the loss summed over the rows of a batch and writes
``scale · ∂(that sum)/∂output``; the model divides the sum by the batch size
and passes ``scale = 1/m``.
"""

import warnings

import numpy as np
import pytest
from conftest import assert_close

import fastnn
from fastnn import layers as L
from fastnn import losses as fl
from fastnn_ext import losses

SHAPES = [(1, 1), (1, 10), (6, 3), (64, 10)]


# ---------------------------------------------------------------- references

def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # an independent, overflow-free form


def softmax_ce_reference(z, t):
    """Σ_rows Σ_k t_k (logsumexp(z) − z_k) and its gradient (Σ_k t_k)·softmax(z) − t."""
    z = z.astype(np.float64)
    t = t.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    lse = top + np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    p = np.exp(z - lse)
    return float((t * (lse - z)).sum()), t.sum(axis=1, keepdims=True) * p - t


def sigmoid_ce_reference(z, t):
    z = z.astype(np.float64)
    t = t.astype(np.float64)
    loss = np.logaddexp(0, -z) * t + np.logaddexp(0, z) * (1 - t)
    return float(loss.sum()), sigmoid(z) - t


def mse_reference(a, t):
    """Σ_rows mean_k (a_k − t_k)²: the batch mean of it is mean((a − t)²)."""
    diff = a.astype(np.float64) - t.astype(np.float64)
    n = a.shape[1]
    return float((diff ** 2).sum()) / n, 2 * diff / n


def quadratic_reference(a, t):
    """Σ_rows ½‖a − t‖² (Nielsen's quadratic cost before the batch mean)."""
    diff = a.astype(np.float64) - t.astype(np.float64)
    return 0.5 * float((diff ** 2).sum()), diff


REFERENCES = [
    (losses.SOFTMAX_CROSS_ENTROPY, softmax_ce_reference),
    (losses.SIGMOID_CROSS_ENTROPY, sigmoid_ce_reference),
    (losses.MSE, mse_reference),
    (losses.QUADRATIC, quadratic_reference),
]


def loss_of(code, z, t):
    return losses.loss_grad(code, z, t)


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


def targets_for(code, rng, shape):
    """Targets off the usual simplex: unnormalized non-negative rows for the
    softmax, arbitrary reals elsewhere (the formulas hold for any target)."""
    if code == losses.SOFTMAX_CROSS_ENTROPY:
        return rng.uniform(0.0, 2.0, shape)
    return 3 * rng.standard_normal(shape)


# --------------------------------------------------------- value, gradient

@pytest.mark.parametrize("code, reference", REFERENCES)
@pytest.mark.parametrize("m, n", SHAPES)
def test_losses_match_numpy(code, reference, m, n, dtype, rng):
    z = (2 * rng.standard_normal((m, n))).astype(dtype)
    if code == losses.SOFTMAX_CROSS_ENTROPY:
        t = rng.dirichlet(np.ones(n), size=m)  # probability targets
    else:
        t = rng.uniform(0, 1, (m, n))
    t = t.astype(dtype)
    grad = np.empty_like(z)
    total = losses.loss_grad(code, z, t, grad, 1.0 / m)
    expected_loss, expected_grad = reference(z, t)
    tolerance = 10 * (1e-6 if dtype == np.float32 else 1e-14) * m * n
    assert abs(total - expected_loss) <= tolerance * max(1, abs(expected_loss))
    assert_close(grad, expected_grad / m, dtype)


@pytest.mark.parametrize("code, reference", REFERENCES)
@pytest.mark.parametrize("m, n", [(1, 1), (3, 4), (5, 7)])
def test_gradient_matches_central_differences(code, reference, m, n, rng):
    z = 2 * rng.standard_normal((m, n))
    t = targets_for(code, rng, (m, n))
    grad = np.empty_like(z)
    losses.loss_grad(code, z, t, grad, 1.0)
    numeric = central_difference(lambda: loss_of(code, z, t), z, 1e-3)
    scale = max(np.abs(numeric).max(), 1.0)
    assert np.abs(grad - numeric).max() / scale < 1e-8
    # The transcription is right too, so the value test above means something.
    np.testing.assert_allclose(reference(z, t)[1], numeric, atol=1e-8 * scale)


def test_softmax_gradient_scales_with_the_target_mass(rng):
    """Rows of t summing to s ≠ 1: the gradient is s·softmax(z) − t, not
    softmax(z) − t (which is right only for s = 1)."""
    z = rng.standard_normal((4, 5))
    t = rng.uniform(0, 1, (4, 5))
    t *= np.array([[0.0], [0.5], [1.0], [3.0]]) / t.sum(axis=1, keepdims=True)
    grad = np.empty_like(z)
    losses.loss_grad(losses.SOFTMAX_CROSS_ENTROPY, z, t, grad, 0.25)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    mass = t.sum(axis=1, keepdims=True)
    assert_close(grad, 0.25 * (mass * p - t), np.float64)
    # A row without target mass contributes neither loss nor gradient.
    np.testing.assert_allclose(grad[0], 0.0, atol=1e-15)


def test_cross_entropies_finite_for_extreme_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype)
    t = np.array([[0, 1, 0], [1, 0, 0]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = np.empty_like(z)
        softmax_loss = losses.loss_grad(losses.SOFTMAX_CROSS_ENTROPY, z, t, grad)
        assert softmax_loss == pytest.approx(4e4, rel=1e-6)  # log p of the target = −2e4 each
        assert np.isfinite(grad).all()
        bce = losses.loss_grad(losses.SIGMOID_CROSS_ENTROPY, z, t, grad)
        # −log(1 − σ(1e4)) = −log σ(−1e4) = 1e4 four times, log 2 for z = 0, softplus(3)
        assert bce == pytest.approx(4e4 + np.log(2.0) + np.logaddexp(0, 3.0), rel=1e-9)
        assert np.isfinite(grad).all()


def test_count_correct(dtype):
    out = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]], dtype)
    t = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype)
    assert losses.correct(out, t) == 2
    binary = np.array([[0.9], [0.2], [0.6]], dtype)
    assert losses.correct(binary, np.array([[1], [1], [0]], dtype), 0.5) == 1


def test_empty_batch_sums_to_zero(dtype):
    for code, _ in REFERENCES:
        z = np.empty((0, 3), dtype)
        assert losses.loss_grad(code, z, z.copy(), np.empty_like(z), 1.0) == 0.0
    assert losses.correct(np.empty((0, 3), dtype), np.empty((0, 3), dtype)) == 0


# ------------------------------------------------- mean squared error: API

def test_mse_is_the_mean_over_all_elements(dtype, rng):
    """mean((a − y)²) over batch and outputs, as PyTorch and Keras define it."""
    a = rng.standard_normal((8, 3)).astype(dtype)
    y = rng.standard_normal((8, 3)).astype(dtype)
    grad = np.empty_like(a)
    mean = losses.loss_grad(fl.get("mse").code, a, y, grad, 1 / 8) / 8
    diff = a.astype(np.float64) - y
    assert mean == pytest.approx(np.mean(diff ** 2), rel=1e-6)
    assert_close(grad, 2 * diff / diff.size, dtype)


def test_quadratic_is_nielsens_cost(dtype, rng):
    """½‖a − y‖² per sample, averaged over the batch only."""
    a = rng.standard_normal((8, 3)).astype(dtype)
    y = rng.standard_normal((8, 3)).astype(dtype)
    grad = np.empty_like(a)
    mean = losses.loss_grad(fl.get("quadratic").code, a, y, grad, 1 / 8) / 8
    diff = a.astype(np.float64) - y
    assert mean == pytest.approx(0.5 * (diff ** 2).sum() / 8, rel=1e-6)
    assert_close(grad, diff / 8, dtype)


def test_model_reports_mean_squared_error(rng):
    X = rng.standard_normal((20, 4))
    Y = rng.standard_normal((20, 3))
    model = fastnn.Sequential([L.Dense(4, 3), L.Identity()], loss="mse", dtype="float64",
                              seed=0)
    predicted = model.predict_proba(X)
    assert model.evaluate(X, Y)["loss"] == pytest.approx(np.mean((predicted - Y) ** 2),
                                                         rel=1e-12)


def test_mse_agrees_with_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((16, 5)).astype(dtype)
    y = rng.standard_normal((16, 5)).astype(dtype)
    grad = np.empty_like(a)
    mean = losses.loss_grad(losses.MSE, a, y, grad, 1 / 16) / 16
    ta = torch.tensor(a.astype(np.float64), requires_grad=True)
    expected = torch.nn.functional.mse_loss(ta, torch.tensor(y.astype(np.float64)))
    expected.backward()
    assert mean == pytest.approx(expected.item(), rel=1e-6)
    assert_close(grad, ta.grad.numpy(), dtype)


# ----------------------------------------------------------- the registry

def test_every_loss_class_is_registered_under_its_name():
    classes = [fl.MeanSquaredError, fl.QuadraticCost, fl.SoftmaxCrossEntropy,
               fl.SigmoidCrossEntropy]
    keys = [key for cls in classes for key in (cls.name, *cls.aliases)]
    assert sorted(keys) == sorted(fl.LOSSES)
    for cls in classes:
        for key in (cls.name, *cls.aliases):
            loss = fl.get(key)
            assert type(loss) is cls and loss.name == cls.name
            assert fl.get(loss) is loss


def test_loss_attributes_the_model_reads():
    assert fl.get("mse").code == losses.MSE
    assert fl.get("quadratic").code == losses.QUADRATIC
    assert len({cls.code for cls in fl.LOSSES.values()}) == len(set(fl.LOSSES.values()))
    assert fl.get("softmax_cross_entropy").output_layer == "Softmax"
    assert fl.get("sigmoid_cross_entropy").output_layer == "Sigmoid"
    assert fl.get("sigmoid_cross_entropy").threshold == 0.0
    assert fl.get("mse").output_layer is None and fl.get("mse").threshold == 0.5


@pytest.mark.parametrize("name", ["nope", "MSE", None, 3])
def test_unknown_loss_names_the_choices(name):
    with pytest.raises(ValueError, match="quadratic"):
        fl.get(name)


# ----------------------------------------------------------- bad arguments

def f64(*shape):
    return np.ones(shape)


def f32(*shape):
    return np.ones(shape, np.float32)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


SHARED = np.zeros(40)
BAD_LOSS_ARGUMENTS = [
    ("unknown code", ValueError, "loss", (7, f64(2, 2), f64(2, 2), None, 1.0)),
    ("targets shape", ValueError, "targets has shape", (0, f64(2, 2), f64(3, 2), None, 1.0)),
    ("grad shape", ValueError, "grad has shape", (0, f64(2, 2), f64(2, 2), f64(2, 3), 1.0)),
    ("1-D output", ValueError, "output", (0, f64(4), f64(4), None, 1.0)),
    ("mixed dtypes", TypeError, "targets", (0, f32(2, 2), f64(2, 2), None, 1.0)),
    ("grad dtype", TypeError, "grad", (0, f64(2, 2), f64(2, 2), f32(2, 2), 1.0)),
    ("integer output", TypeError, "output", (0, np.ones((2, 2), int), f64(2, 2), None, 1.0)),
    ("list output", TypeError, "output", (0, [[1.0]], f64(1, 1), None, 1.0)),
    ("strided output", ValueError, "output.*contiguous",
     (0, f64(2, 4)[:, ::2], f64(2, 2), None, 1.0)),
    ("strided grad", ValueError, "grad.*contiguous",
     (0, f64(2, 2), f64(2, 2), f64(2, 4)[:, ::2], 1.0)),
    ("read-only grad", ValueError, "grad.*writeable",
     (0, f64(2, 2), f64(2, 2), read_only(f64(2, 2)), 1.0)),
    ("no columns", ValueError, "output", (0, f64(2, 0), f64(2, 0), None, 1.0)),
    ("NaN scale", ValueError, "scale", (0, f64(2, 2), f64(2, 2), f64(2, 2), np.nan)),
    ("infinite scale", ValueError, "scale", (0, f64(2, 2), f64(2, 2), f64(2, 2), np.inf)),
    ("grad is output", ValueError, "grad overlaps output",
     (1, SHARED[:4].reshape(2, 2), f64(2, 2), SHARED[:4].reshape(2, 2), 1.0)),
    ("grad overlaps output", ValueError, "grad overlaps output",
     (1, SHARED[:4].reshape(2, 2), f64(2, 2), SHARED[2:6].reshape(2, 2), 1.0)),
    ("grad overlaps targets", ValueError, "grad overlaps targets",
     (0, f64(2, 2), SHARED[10:14].reshape(2, 2), SHARED[13:17].reshape(2, 2), 1.0)),
]


@pytest.mark.parametrize("case", BAD_LOSS_ARGUMENTS, ids=lambda c: c[0])
def test_bad_loss_arguments_raise_before_writing(case):
    _, error, match, (code, output, targets, grad, scale) = case
    before = None if grad is None or not grad.flags.writeable else grad.copy()
    with pytest.raises(error, match=match):
        losses.loss_grad(code, output, targets, grad, scale)
    if before is not None:
        np.testing.assert_array_equal(grad, before)


@pytest.mark.parametrize("args, error, match", [
    ((f64(2, 2), f64(3, 2)), ValueError, "targets has shape"),
    ((f32(2, 2), f64(2, 2)), TypeError, "targets"),
    ((f64(2, 4)[:, ::2], f64(2, 2)), ValueError, "output.*contiguous"),
    ((f64(2, 2), f64(2, 2), np.nan), ValueError, "threshold"),
])
def test_bad_correct_arguments_raise(args, error, match):
    with pytest.raises(error, match=match):
        losses.correct(*args)
