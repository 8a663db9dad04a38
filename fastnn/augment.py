"""Data augmentation for image inputs: random shifts, flips, rotations and noise.

The rows of ``X`` are flattened H×W images, row-major: pixel (r, c) of a
row is column r·W + c.  An :class:`Augmentation` names the image shape and a
sequence of random transformations; ``fit(..., augment=Augmentation(...))``
applies them to every training batch, drawing from the model's generator
(``model.rng``), so a seeded run stays reproducible bit for bit::

    augment = Augmentation((28, 28), RandomShift(2), RandomRotation(10),
                           GaussianNoise(0.05))
    model.fit(X, y, epochs=10, augment=augment)

Each transformation is a deterministic function of the images and its drawn
parameters (:func:`shift`, :func:`flip`, :func:`rotate`, :func:`add_noise`);
the classes only draw the parameters, one set per image.  Nothing is done in
place: the caller's array is never modified.  Pixels moved in from outside
the image are 0.
"""

import numpy as np

from fastnn._validation import Integer, Real, check_features
from fastnn_ext import augment as _kernels

__all__ = ["Augmentation", "RandomShift", "RandomFlip", "RandomRotation", "GaussianNoise",
           "shift", "flip", "rotate", "add_noise"]

_pixels = Integer(0)
_degrees = Real(0, 180)
_probability = Real(0, 1)
_std = Real(0)


def _per_image(name, values, m):
    values = np.asarray(values)
    if values.shape != (m,):
        raise ValueError(f"{name} must hold one value per image ({m}), got shape {values.shape}")
    return values


def shift(images, dy, dx):
    """Move image i by dy[i] pixels down and dx[i] pixels right, filling with zeros.

    out[i, r, c] = images[i, r − dy[i], c − dx[i]], and 0 where that pixel is
    outside the image.  ``images`` is (m, H, W); ``dy``, ``dx`` are integer
    arrays of m shifts (negative: up, left).
    """
    m, height, width = images.shape
    # A shift by a whole side or more leaves only zeros, as one by the side does.
    dy = np.clip(_per_image("dy", dy, m), -height, height).astype(np.intp)
    dx = np.clip(_per_image("dx", dx, m), -width, width).astype(np.intp)
    p, q = int(np.abs(dy).max(initial=0)), int(np.abs(dx).max(initial=0))
    padded = np.zeros((m, height + 2 * p, width + 2 * q), dtype=images.dtype)
    padded[:, p:p + height, q:q + width] = images
    out = np.empty_like(images)
    # One slice copy per distinct shift (at most (2k + 1)² of them for shifts
    # within ±k): measured 5× faster than gathering every pixel.
    shifts = dy * (2 * q + 1) + dx
    for key in np.unique(shifts):
        chosen = shifts == key
        a, b = dy[chosen][0], dx[chosen][0]
        out[chosen] = padded[chosen, p - a:p - a + height, q - b:q - b + width]
    return out


def flip(images, which):
    """Mirror the images where ``which`` is True left to right: ``images[i, :, ::-1]``."""
    which = _per_image("which", which, images.shape[0]).astype(bool)
    return np.where(which[:, None, None], images[:, :, ::-1], images)


def rotate(images, degrees):
    """Rotate float image i by degrees[i] counter-clockwise about its centre, bilinearly.

    The centre is ((H − 1)/2, (W − 1)/2), between pixels for an even side,
    so a quarter turn of a square image is ``np.rot90`` exactly.  With
    y = r − (H − 1)/2 and x = c − (W − 1)/2 (y pointing down), output pixel
    (y, x) takes the input at

        y' =  cos θ · y + sin θ · x,     x' = −sin θ · y + cos θ · x,

    interpolated bilinearly between the four pixels around it, those outside
    the image counting as 0.
    """
    m, height, width = images.shape
    theta = np.deg2rad(_per_image("degrees", degrees, m).astype(np.float64))
    # Rounded so that quarter turns, whose cos or sin is off by ~1e-16, have
    # them exactly 0 and ±1 and move pixels exactly; a source coordinate moves
    # by at most 5e-16 per pixel from the centre.
    cos, sin = np.round(np.cos(theta), 15), np.round(np.sin(theta), 15)
    images = np.ascontiguousarray(images)
    out = np.empty_like(images)
    _kernels.rotate(images, cos, sin, out)
    return out


def add_noise(images, std, rng):
    """images + std·ε with ε ~ N(0, 1) drawn per pixel from ``rng``, in the images' dtype."""
    noise = rng.standard_normal(images.shape, dtype=images.dtype)
    noise *= std
    return images + noise


class RandomShift:
    """Shift each image by a whole number of pixels drawn uniformly from [−k, k], per axis.

    Parameters
    ----------
    max_pixels : int
        k ≥ 0.
    """

    def __init__(self, max_pixels):
        self.max_pixels = _pixels("max_pixels", max_pixels)

    def __call__(self, images, rng):
        k = self.max_pixels
        dy, dx = rng.integers(-k, k + 1, size=(2, images.shape[0]))
        return shift(images, dy, dx)

    def __repr__(self):
        return f"RandomShift({self.max_pixels})"


class RandomFlip:
    """Mirror each image left to right with probability p (default 0.5)."""

    def __init__(self, p=0.5):
        self.p = _probability("p", p)

    def __call__(self, images, rng):
        return flip(images, rng.random(images.shape[0]) < self.p)

    def __repr__(self):
        return f"RandomFlip(p={self.p})"


class RandomRotation:
    """Rotate each image by an angle drawn uniformly from [−d, d] degrees (see :func:`rotate`).

    Parameters
    ----------
    max_degrees : float
        d in [0, 180].
    """

    def __init__(self, max_degrees):
        self.max_degrees = _degrees("max_degrees", max_degrees)

    def __call__(self, images, rng):
        d = self.max_degrees
        return rotate(images, rng.uniform(-d, d, size=images.shape[0]))

    def __repr__(self):
        return f"RandomRotation({self.max_degrees})"


class GaussianNoise:
    """Add independent N(0, std²) noise to every pixel.

    Parameters
    ----------
    std : float
        Standard deviation, ≥ 0.
    """

    def __init__(self, std):
        self.std = _std("std", std)

    def __call__(self, images, rng):
        return add_noise(images, self.std, rng)

    def __repr__(self):
        return f"GaussianNoise({self.std})"


class Augmentation:
    """Random transformations applied in order to rows that are flattened images.

    Parameters
    ----------
    shape : (int, int)
        (H, W) of every image: a row of ``X`` has H·W columns.
    *transforms : RandomShift, RandomFlip, RandomRotation, GaussianNoise
        Applied in the order given, each drawing its parameters per image;
        any callable ``f(images, rng) -> images`` on (m, H, W) arrays fits.
    """

    def __init__(self, shape, *transforms):
        try:
            height, width = shape
        except (TypeError, ValueError):
            raise ValueError(f"shape must be a pair (height, width), got {shape!r}") from None
        self.shape = (Integer(1)("shape height", height), Integer(1)("shape width", width))
        for transform in transforms:
            if not callable(transform):
                raise TypeError(f"transforms must be callables f(images, rng), got "
                                f"{transform!r}")
        self.transforms = tuple(transforms)

    @property
    def n_features(self):
        return self.shape[0] * self.shape[1]

    def __call__(self, X, rng):
        """The transformed copy of the rows ``X`` (m, H·W), in X's dtype, C-contiguous."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return self.apply(check_features(X, dtype, self.n_features), rng)

    def apply(self, X, rng):
        """``self(X, rng)`` for rows already checked (C-contiguous float, H·W columns)."""
        images = X.reshape(-1, *self.shape)
        for transform in self.transforms:
            images = transform(images, rng)
        out = np.ascontiguousarray(images.reshape(X.shape), dtype=X.dtype)
        # Every transformation returns a new array; without any, copy.
        return out.copy() if np.may_share_memory(out, X) else out

    def __repr__(self):
        inner = "".join(f", {transform!r}" for transform in self.transforms)
        return f"Augmentation({self.shape}{inner})"


def check_augment(augment, n_features):
    """``augment`` (None or an Augmentation for rows of ``n_features`` columns), checked."""
    if augment is None:
        return None
    if not isinstance(augment, Augmentation):
        raise TypeError(f"augment must be a fastnn.augment.Augmentation, got {augment!r}")
    if augment.n_features != n_features:
        raise ValueError(f"augment is for {augment.shape[0]}×{augment.shape[1]} images "
                         f"({augment.n_features} columns), the network's input has "
                         f"{n_features}")
    return augment
