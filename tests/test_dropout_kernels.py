"""Inverted-dropout kernels (fastnn_ext.dropout): statistics, exactness,
reproducibility and argument checking.

``rate`` is the probability of DROPPING a unit; ``keep = 1 - rate``.
Statistical checks use 5-sigma bounds with fixed seeds, so they are
deterministic and would fail for a bias of a few sigma.
"""

import numpy as np
import pytest

from fastnn_ext import dropout

DTYPES = [np.float32, np.float64]


def run_forward(x, rate, rng):
    y = np.full_like(x, np.nan)
    mask = np.full_like(x, np.nan)
    dropout.forward(rng, x, y, mask, rate)
    return y, mask


def scale_of(rate, dtype):
    return dtype(1.0 / (1.0 - rate))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.001, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.9, 0.999])
def test_kept_fraction_within_binomial_bounds(dtype, rate):
    n = 1 << 21
    x = np.ones(n, dtype=dtype)
    _, mask = run_forward(x, rate, np.random.default_rng(1000 + int(rate * 1000)))
    keep = 1.0 - rate
    kept = np.count_nonzero(mask)
    sigma = np.sqrt(n * keep * (1.0 - keep))
    assert abs(kept - n * keep) < 5 * sigma, (kept, n * keep, sigma)


@pytest.mark.parametrize("keep", [100.5 / 256, 0.5 / 256, 255.5 / 256])
def test_keep_probability_finer_than_one_byte(keep):
    # keep lies halfway between multiples of 1/256, so a comparison on 8
    # random bits alone would miss it by 1/512 (about 8 sigma here), as it
    # would for a keep below 1/256 or above 255/256.
    n = 1 << 22
    x = np.ones(n, dtype=np.float32)
    _, mask = run_forward(x, 1.0 - keep, np.random.default_rng(7))
    kept = np.count_nonzero(mask)
    sigma = np.sqrt(n * keep * (1.0 - keep))
    assert abs(kept - n * keep) < 5 * sigma, (kept / n, keep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_neighbouring_units_are_independent(dtype):
    # Units share random words; P(both of a pair kept) must still be keep**2.
    n = 1 << 21
    rate = 0.4
    keep = 1.0 - rate
    _, mask = run_forward(np.ones(n, dtype=dtype), rate, np.random.default_rng(3))
    kept = mask != 0
    for lag in (1, 2, 7, 8, 9):
        both = np.count_nonzero(kept[:-lag] & kept[lag:])
        pairs = n - lag
        p = keep * keep
        sigma = np.sqrt(pairs * p * (1 - p) * 3)  # pairs overlap: generous
        assert abs(both - pairs * p) < 5 * sigma, (lag, both / pairs, p)


@pytest.mark.parametrize("dtype", DTYPES)
def test_expectation_preserved(dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(1 << 20).astype(dtype)
    rate = 0.3
    keep = 1.0 - rate
    y, _ = run_forward(x, rate, np.random.default_rng(12))
    x64 = x.astype(np.float64)
    # y_i - x_i has mean 0 and variance x_i**2 * (1 - keep) / keep.
    sigma = np.sqrt(np.sum(x64**2) * (1.0 - keep) / keep)
    assert abs(np.sum(y.astype(np.float64) - x64)) < 5 * sigma


def test_expectation_preserved_per_unit_over_many_draws():
    x = np.linspace(-2.0, 3.0, 48).reshape(4, 12)
    rate = 0.6
    keep = 1.0 - rate
    rng = np.random.default_rng(13)
    draws = 20000
    total = np.zeros_like(x)
    for _ in range(draws):
        y, _ = run_forward(x, rate, rng)
        total += y
    sigma = np.abs(x) * np.sqrt((1.0 - keep) / keep / draws)
    assert np.all(np.abs(total / draws - x) <= 5 * sigma + 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (128, 256), (5, 1031)])
def test_kept_units_scaled_exactly_and_dropped_units_zero(dtype, shape):
    rng = np.random.default_rng(21)
    x = rng.standard_normal(shape).astype(dtype)
    rate = 0.35
    scale = scale_of(rate, dtype)
    y, mask = run_forward(x, rate, np.random.default_rng(22))
    kept = mask != 0
    assert np.all((mask == 0) | (mask == scale))
    np.testing.assert_array_equal(y[kept], x[kept] * scale)
    np.testing.assert_array_equal(y[~kept], 0)
    # x * scale is x / keep to within the rounding of both.
    np.testing.assert_allclose(y[kept], x[kept] / (1.0 - rate),
                               rtol=2 * np.finfo(dtype).eps)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 1023, 1024, 1025, 3000])
def test_every_size_draws_both_outcomes(n):
    rng = np.random.default_rng(n)
    seen = np.zeros(n, dtype=int)
    for _ in range(40):
        _, mask = run_forward(np.ones(n, dtype=np.float32), 0.5, rng)
        seen += mask != 0
    # After 40 fair draws every unit has been kept and dropped at least once
    # (a miss has probability 2 * 2**-40 per unit).
    assert np.all(seen > 0) and np.all(seen < 40)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_uses_forward_mask(dtype):
    rng = np.random.default_rng(31)
    x = rng.standard_normal((64, 33)).astype(dtype)
    dy = rng.standard_normal((64, 33)).astype(dtype)
    _, mask = run_forward(x, 0.45, np.random.default_rng(32))
    dx = np.full_like(dy, np.nan)
    dropout.backward(dy, mask, dx)
    np.testing.assert_array_equal(dx, dy * mask)
    np.testing.assert_array_equal(dx[mask == 0], 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_in_place(dtype):
    rng = np.random.default_rng(33)
    dy = rng.standard_normal((16, 10)).astype(dtype)
    _, mask = run_forward(np.ones_like(dy), 0.5, np.random.default_rng(34))
    expected = dy * mask
    dropout.backward(dy, mask, dy)
    np.testing.assert_array_equal(dy, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_mask_different_seed_different_mask(dtype):
    x = np.ones((32, 64), dtype=dtype)
    _, a = run_forward(x, 0.5, np.random.default_rng(5))
    _, b = run_forward(x, 0.5, np.random.default_rng(5))
    _, c = run_forward(x, 0.5, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_successive_calls_draw_fresh_masks_and_advance_the_generator():
    rng = np.random.default_rng(8)
    x = np.ones(4096, dtype=np.float32)
    state = rng.bit_generator.state
    _, first = run_forward(x, 0.5, rng)
    assert rng.bit_generator.state != state
    _, second = run_forward(x, 0.5, rng)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rate_zero_is_identity_without_draws(dtype):
    rng = np.random.default_rng(9)
    x = np.random.default_rng(10).standard_normal((17, 5)).astype(dtype)
    state = rng.bit_generator.state
    y, mask = run_forward(x, 0.0, rng)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(mask, 1)
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_in_place(dtype):
    x = np.random.default_rng(40).standard_normal((50, 20)).astype(dtype)
    original = x.copy()
    mask = np.empty_like(x)
    dropout.forward(np.random.default_rng(41), x, x, mask, 0.5)
    y, mask_again = run_forward(original, 0.5, np.random.default_rng(41))
    np.testing.assert_array_equal(mask, mask_again)
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(x, original * mask)


def test_accepts_a_bare_bit_generator():
    x = np.ones(100, dtype=np.float64)
    _, a = run_forward(x, 0.5, np.random.PCG64(3))
    _, b = run_forward(x, 0.5, np.random.Generator(np.random.PCG64(3)))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [-0.1, -1e-300, 1.0, 1.5, np.nan, np.inf])
def test_invalid_rate_raises_before_writing(rate):
    x = np.ones((4, 4), dtype=np.float32)
    y = np.full_like(x, 7.0)
    mask = np.full_like(x, 7.0)
    with pytest.raises(ValueError, match="rate"):
        dropout.forward(np.random.default_rng(0), x, y, mask, rate)
    assert np.all(y == 7.0) and np.all(mask == 7.0)


def bad_forward_arguments():
    f32 = np.ones((4, 6), dtype=np.float32)
    e32 = np.empty((4, 6), dtype=np.float32)
    readonly = np.empty((4, 6), dtype=np.float32)
    readonly.flags.writeable = False
    shared = np.empty(48, dtype=np.float32)
    return [
        ("x float64, y float32", TypeError, "dtype",
         (np.ones((4, 6)), e32, e32.copy())),
        ("integer x", TypeError, "float32 or float64",
         (np.ones((4, 6), dtype=np.int32), e32, e32.copy())),
        ("byte-swapped x", TypeError, "byte order",
         (f32.astype(">f4"), e32, e32.copy())),
        ("list x", TypeError, "ndarray", (f32.tolist(), e32, e32.copy())),
        ("mask shape", ValueError, "shape", (f32, e32, np.empty((6, 4), np.float32))),
        ("y shape", ValueError, "shape", (f32, np.empty(24, np.float32), e32)),
        ("strided x", ValueError, "contiguous",
         (np.ones((4, 12), np.float32)[:, ::2], e32, e32.copy())),
        ("read-only y", ValueError, "writeable", (f32, readonly, e32)),
        ("mask is x", ValueError, "overlaps", (f32, e32, f32)),
        ("mask is y", ValueError, "overlaps", (f32, e32, e32)),
        ("mask overlaps y", ValueError, "overlaps",
         (f32, shared[:24].reshape(4, 6), shared[12:36].reshape(4, 6))),
    ]


@pytest.mark.parametrize("case", bad_forward_arguments(), ids=lambda c: c[0])
def test_bad_forward_arguments_raise(case):
    _, error, match, (x, y, mask) = case
    with pytest.raises(error, match=match):
        dropout.forward(np.random.default_rng(0), x, y, mask, 0.5)


def test_partial_overlap_of_y_and_x_raises():
    buffer = np.zeros(40, dtype=np.float64)
    with pytest.raises(ValueError, match="overlaps"):
        dropout.forward(np.random.default_rng(0), buffer[:20], buffer[10:30],
                        np.empty(20), 0.5)


def test_rng_must_be_a_generator():
    x = np.ones(8, dtype=np.float32)
    with pytest.raises(TypeError, match="Generator"):
        dropout.forward(np.random.RandomState(0), x, np.empty_like(x),
                        np.empty_like(x), 0.5)
    with pytest.raises(TypeError, match="Generator"):
        dropout.forward(0, x, np.empty_like(x), np.empty_like(x), 0.5)


def test_bad_backward_arguments_raise():
    dy = np.ones((3, 5), dtype=np.float32)
    mask = np.ones((3, 5), dtype=np.float32)
    with pytest.raises(TypeError, match="dtype"):
        dropout.backward(dy, mask.astype(np.float64), np.empty_like(dy))
    with pytest.raises(ValueError, match="shape"):
        dropout.backward(dy, mask, np.empty((5, 3), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        dropout.backward(dy, np.ones((5, 3), np.float32).T, np.empty_like(dy))
    buffer = np.zeros(30, dtype=np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        dropout.backward(buffer[:15], mask.ravel(), buffer[5:20])


def test_empty_arrays():
    x = np.empty((0, 8), dtype=np.float32)
    y, mask = run_forward(x, 0.5, np.random.default_rng(0))
    assert y.shape == mask.shape == (0, 8)
    dropout.backward(x, mask, np.empty_like(x))
