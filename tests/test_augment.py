"""Data augmentation: each transformation against NumPy or SciPy, and seeded training with it."""

import numpy as np
import pytest
import scipy.ndimage

from fastnn import augment as A
from fastnn import layers as L
from fastnn import training
from fastnn.callbacks import Callback
from fastnn.model import Sequential
from fastnn.optimizers import Adam


def images(m=6, shape=(5, 7), dtype=np.float64, seed=0):
    return np.random.default_rng(seed).random((m, *shape)).astype(dtype)


def shifted_reference(image, dy, dx):
    """np.roll, then the rows and columns that wrapped around set to 0."""
    out = np.roll(image, (dy, dx), axis=(0, 1))
    height, width = image.shape
    if dy >= 0:
        out[:min(dy, height)] = 0
    else:
        out[max(height + dy, 0):] = 0
    if dx >= 0:
        out[:, :min(dx, width)] = 0
    else:
        out[:, max(width + dx, 0):] = 0
    return out


def test_a_shift_by_k_moves_pixels_by_k_and_fills_with_zeros(dtype):
    batch = images(dtype=dtype)
    dy = np.array([0, 1, -2, 3, 5, -9])
    dx = np.array([2, -1, 0, -3, 7, 1])
    out = A.shift(batch, dy, dx)
    assert out.dtype == dtype
    for i in range(len(batch)):
        np.testing.assert_array_equal(out[i], shifted_reference(batch[i], dy[i], dx[i]))


def test_a_flip_is_the_reversed_columns_of_the_chosen_images():
    batch = images()
    which = np.array([True, False, True, True, False, False])
    out = A.flip(batch, which)
    np.testing.assert_array_equal(out[which], batch[which][:, :, ::-1])
    np.testing.assert_array_equal(out[~which], batch[~which])


@pytest.mark.parametrize("side", [5, 6], ids=["odd", "even"])
def test_rotations_by_quarter_turns_are_rot90_and_by_zero_the_identity(side, dtype):
    batch = images(m=4, shape=(side, side), dtype=dtype)
    out = A.rotate(batch, [0, 90, 180, -90])
    np.testing.assert_array_equal(out[0], batch[0])
    for i, k in ((1, 1), (2, 2), (3, -1)):
        np.testing.assert_array_equal(out[i], np.rot90(batch[i], k))


def test_a_rotation_by_any_angle_is_scipys_bilinear_rotation_about_the_centre():
    # SciPy's rotate (order 1, zeros beyond the edge, interpolated into)
    # turns counter-clockwise about the same centre, (n - 1)/2.
    batch = images(m=3, shape=(9, 12))
    angles = [17.0, -33.5, 4.0]
    out = A.rotate(batch, angles)
    for image, angle, mine in zip(batch, angles, out):
        reference = scipy.ndimage.rotate(image, angle, reshape=False, order=1,
                                         mode="grid-constant", cval=0.0)
        # Pixels lie in [0, 1); the rounding of cos and sin to 15 decimals
        # moves a coordinate by < 1e-14 here: differences far below 1e-12.
        np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-12)


def test_noise_has_the_requested_standard_deviation():
    n = 200_000
    std = 0.3
    batch = np.full((n // 100, 10, 10), 0.5)
    noise = (A.add_noise(batch, std, np.random.default_rng(7)) - batch).ravel()
    # The sample standard deviation of n normal draws has a spread of about
    # σ/√(2n), the sample mean one of σ/√n: five of them is far in the tail.
    assert abs(noise.std() - std) < 5 * std / np.sqrt(2 * n)
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)


def test_the_random_transforms_draw_one_parameter_set_per_image_from_the_generator():
    batch = images(m=50)
    pipeline = A.Augmentation((5, 7), A.RandomShift(2), A.RandomFlip(0.3),
                              A.RandomRotation(15), A.GaussianNoise(0.1))
    out = pipeline(batch.reshape(50, 35), np.random.default_rng(3))
    rng = np.random.default_rng(3)
    dy, dx = rng.integers(-2, 3, size=(2, 50))
    expected = A.shift(batch, dy, dx)
    expected = A.flip(expected, rng.random(50) < 0.3)
    expected = A.rotate(expected, rng.uniform(-15, 15, size=50))
    expected = A.add_noise(expected, 0.1, rng)
    np.testing.assert_array_equal(out, expected.reshape(50, 35))
    assert {-2, 2} <= set(dy.tolist()) <= set(range(-2, 3))


def test_the_callers_array_is_never_modified(dtype):
    X = images(m=20, shape=(4, 4), dtype=dtype).reshape(20, 16)
    original = X.copy()
    pipeline = A.Augmentation((4, 4), A.RandomShift(1), A.RandomFlip(), A.RandomRotation(30),
                              A.GaussianNoise(0.2))
    out = pipeline(X, np.random.default_rng(0))
    assert out.dtype == dtype and out.flags.c_contiguous and not np.shares_memory(out, X)
    assert not np.shares_memory(A.Augmentation((4, 4))(X, np.random.default_rng(0)), X)
    y = np.arange(20) % 2
    model = Sequential([L.Dense(16, 4), L.ReLU(), L.Dense(4, 2), L.Softmax()], dtype=dtype,
                       seed=0)
    model.fit(X, y, epochs=2, batch_size=4, augment=pipeline)
    np.testing.assert_array_equal(X, original)


class Progress(Callback):
    """Asks for progress, so the compiled epoch runs in several calls."""

    def on_progress(self, step, n_steps):
        pass


def fit(compiled, augment, seed=5, callbacks=()):
    rng = np.random.default_rng(1)
    X, y = rng.random((300, 36)).astype(np.float32), rng.integers(0, 3, 300)
    model = Sequential([L.Dense(36, 12), L.ReLU(), L.Dropout(0.2), L.Dense(12, 3), L.Softmax()],
                       optimizer=Adam(lr=0.01), dtype="float32", seed=seed,
                       gradient_noise=(1e-3, 0.55))
    model.fit(X, y, epochs=2, batch_size=16, compiled=compiled, augment=augment,
              callbacks=callbacks)
    return model


PIPELINE = A.Augmentation((6, 6), A.RandomShift(1), A.RandomFlip(), A.RandomRotation(10),
                          A.GaussianNoise(0.05))


@pytest.mark.parametrize("rows", [4096, 48], ids=["one chunk", "chunks of three batches"])
def test_seeded_training_with_augmentation_is_reproducible_on_both_paths(rows, monkeypatch):
    # Both paths draw each chunk's transformations at the same step, before
    # the dropout masks and gradient noise of its batches: the same weights.
    monkeypatch.setattr(training, "AUGMENT_ROWS", rows)
    runs = [fit(True, PIPELINE), fit(True, PIPELINE, callbacks=[Progress()]),
            fit(False, PIPELINE), fit(True, PIPELINE)]
    for model in runs[1:]:
        np.testing.assert_array_equal(model.params_, runs[0].params_)
        assert model.history_["loss"] == runs[0].history_["loss"]
    assert not np.array_equal(fit(True, None).params_, runs[0].params_)
    assert not np.array_equal(fit(True, PIPELINE, seed=6).params_, runs[0].params_)


@pytest.mark.parametrize("build, error, message", [
    (lambda: A.RandomShift(-1), ValueError, "max_pixels"),
    (lambda: A.RandomShift(1.5), TypeError, "max_pixels"),
    (lambda: A.RandomRotation(181), ValueError, "max_degrees"),
    (lambda: A.RandomFlip(1.5), ValueError, "p must be"),
    (lambda: A.GaussianNoise(-0.1), ValueError, "std"),
    (lambda: A.Augmentation(28), ValueError, "shape must be a pair"),
    (lambda: A.Augmentation((28, 0)), ValueError, "shape width"),
    (lambda: A.Augmentation((28, 28), "shift"), TypeError, "transforms"),
    (lambda: A.shift(images(), [1, 2], [0] * 6), ValueError, "dy must hold one value"),
    (lambda: A.Augmentation((5, 7))(np.zeros((2, 36)), np.random.default_rng()),
     ValueError, "36 features"),
    (lambda: A.Augmentation((5, 7))(np.zeros((2, 35)), 0), TypeError, "rng"),
])
def test_bad_arguments_are_refused(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_fit_refuses_an_augmentation_for_other_images():
    model = Sequential([L.Dense(36, 3), L.Softmax()], seed=0)
    X, y = np.zeros((8, 36)), np.zeros(8, dtype=int)
    with pytest.raises(ValueError, match="augment is for 5×7 images"):
        model.fit(X, y, augment=A.Augmentation((5, 7)))
    with pytest.raises(TypeError, match="augment must be"):
        model.fit(X, y, augment=A.RandomShift(1))


def test_the_rotation_kernel_checks_its_arrays():
    from fastnn_ext import augment as kernels

    batch = images(m=2)
    angles = np.zeros(2)
    with pytest.raises(TypeError, match="images must be"):
        kernels.rotate(batch.astype(np.int64), angles, angles, np.empty_like(batch))
    with pytest.raises(ValueError, match="cos must be"):
        kernels.rotate(batch, np.zeros(3), angles, np.empty_like(batch))
    with pytest.raises(ValueError, match="out must be"):
        kernels.rotate(batch, angles, angles, np.empty_like(batch, dtype=np.float32))
    with pytest.raises(ValueError, match="out overlaps"):
        kernels.rotate(batch, angles, angles, batch)


@pytest.mark.parametrize("rows", [4096, 32], ids=["one chunk", "chunks of two batches"])
def test_both_paths_stop_at_the_same_step_of_an_augmented_epoch(rows, monkeypatch):
    # A few huge rows overflow Adam's second moment: the compiled path
    # replays its call step by step on the chunk it drew, and stops where the
    # layer path stops, with the same weights and generator.
    from fastnn.model import NonFiniteError

    monkeypatch.setattr(training, "AUGMENT_ROWS", rows)
    rng = np.random.default_rng(2)
    X = rng.random((160, 36)).astype(np.float32)
    X[150:] *= 1e25
    y = rng.integers(0, 3, 160)
    runs = []
    for compiled in (True, False):
        model = Sequential([L.Dense(36, 8), L.ReLU(), L.Dense(8, 3), L.Softmax()],
                           optimizer=Adam(lr=1e-3), dtype="float32", seed=0)
        with pytest.raises(NonFiniteError) as error:
            model.fit(X, y, epochs=1, batch_size=16, compiled=compiled, augment=PIPELINE)
        runs.append((str(error.value), model.params_.copy(), model.optimizer.t_,
                     model.rng.bit_generator.state))
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2] > 0
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][3] == runs[1][3]
