"""Loading MNIST-format (IDX) data sets: MNIST, Fashion-MNIST and alike.

An IDX file is a big-endian header — two zero bytes, a type code, the number
of dimensions — then one 32-bit size per dimension, then the values.  Files
may be gzip-compressed (``.gz``) or raw.  Anything else — a damaged or
truncated file, the wrong number of dimensions, labels that do not match the
images — is a ``ValueError`` naming the file.
"""

import gzip
import math
import os
import zlib

import numpy as np

from fastnn._validation import as_dtype

#: where Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
#: environment variable that overrides the default data directory
DATA_DIR_VARIABLE = "FASTNN_DATA"

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

GET_DATA_HELP = (
    "Fashion-MNIST was not found in {directory}.\n"
    "Install it with:\n"
    "    apt-get update && apt-get install -y dataset-fashion-mnist\n"
    "or point --data-dir (or the {variable} environment variable) at a directory\n"
    "holding train-images-idx3-ubyte, train-labels-idx1-ubyte,\n"
    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz)."
)


class DataNotFoundError(FileNotFoundError):
    """The data set files are missing; the message says how to get them."""


def _path(name, path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file system path, got {type(path).__name__}")
    return os.fspath(path)


def _decompress(path, data):
    """The content of a gzip stream; a damaged one is a ValueError naming the file."""
    try:
        return gzip.decompress(data)
    except EOFError as error:
        raise ValueError(f"{path} is truncated: the gzip stream ends early ({error})") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path} is a damaged gzip file ({error})") from None


def read_idx(path):
    """Read one IDX file, raw or gzip-compressed, into a numpy array.

    Compression is recognised by the gzip magic bytes ``1f 8b``, not by the
    name (an IDX file starts with two zero bytes).

    Raises
    ------
    ValueError
        Naming the file, if it is not IDX (bad magic number), is damaged
        gzip, or its size differs from the one its header promises.
    """
    path = _path("path", path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        data = _decompress(path, data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    n_dims = data[3]
    header = 4 + 4 * n_dims
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its header declares {n_dims} dimensions, "
                         f"whose sizes need {header} bytes, but the file holds {len(data)}")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", n_dims, 4))
    # math.prod on Python ints: numpy's product of four 32-bit sizes can overflow
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{path} is {problem}: it holds {len(data)} bytes, its header "
                         f"promises {expected} for shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


def data_dir(directory=None):
    """The directory to read: the argument, else $FASTNN_DATA, else the default."""
    if directory is not None:
        return _path("directory", directory)
    return os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR


def _check_images(path, images):
    """Images as (count, rows, columns) of pixel values in [0, 255]."""
    if images.ndim != 3:
        raise ValueError(f"{path} must hold images in 3 dimensions (count, rows, columns), "
                         f"it has shape {images.shape}")
    if images.shape[0] == 0 or images[0].size == 0:
        raise ValueError(f"{path} holds no images (shape {images.shape})")
    if images.dtype != np.uint8:  # bytes are in range by construction
        if not np.isfinite(images).all():
            raise ValueError(f"{path} holds NaN or infinite pixel values")
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise ValueError(f"{path}: pixel values must lie in [0, 255], found "
                             f"{low if low < 0 else high}")


def _check_labels(path, labels, image_path, n_images):
    """Labels as one non-negative integer per image."""
    if labels.ndim != 1:
        raise ValueError(f"{path} must hold labels in 1 dimension, it has shape {labels.shape}")
    if labels.shape[0] != n_images:
        raise ValueError(f"{path} holds {labels.shape[0]} labels but {image_path} holds "
                         f"{n_images} images")
    if labels.dtype.kind == "f":  # NaN fails the comparison with its floor
        bad = ~np.isfinite(labels) | (labels < 0) | (labels != np.floor(labels))
    else:
        bad = labels < 0
    if bad.any():
        raise ValueError(f"{path}: labels must be non-negative integers, found "
                         f"{labels[bad][0]}")
    return labels.astype(np.int64)


def load_mnist(directory=None, dtype=np.float32):
    """Load an MNIST-format data set.

    Returns ``(X_train, y_train), (X_test, y_test)``: images flattened to rows
    of pixel values ``x / 255`` in [0, 1] in ``dtype``, labels as int64.

    Parameters
    ----------
    directory : str or path-like, optional
        Directory holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``); default
        ``$FASTNN_DATA``, else :data:`DEFAULT_DATA_DIR`.
    dtype : {float32, float64}
        Precision of the images.

    Raises
    ------
    DataNotFoundError
        If a file is missing; the message says how to install the data.
    ValueError
        Naming the file, if one is damaged (see :func:`read_idx`) or holds
        something other than images of one size with pixel values in
        [0, 255] and one non-negative integer label per image.
    """
    directory = data_dir(directory)
    dtype = as_dtype(dtype)
    arrays, shapes = [], []
    for part in ("train", "t10k"):
        paths = [_find(directory, f"{part}-{kind}") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
        if None in paths:
            raise DataNotFoundError(GET_DATA_HELP.format(directory=directory, variable=DATA_DIR_VARIABLE))
        image_path, label_path = paths
        images = read_idx(image_path)
        _check_images(image_path, images)
        labels = _check_labels(label_path, read_idx(label_path), image_path, images.shape[0])
        shapes.append((image_path, images.shape[1:]))
        X = images.reshape(images.shape[0], -1).astype(dtype)
        X /= 255.0
        arrays.append((X, labels))
    (train_path, train_shape), (test_path, test_shape) = shapes
    if train_shape != test_shape:
        raise ValueError(f"{train_path} holds {'×'.join(map(str, train_shape))} images but "
                         f"{test_path} holds {'×'.join(map(str, test_shape))}")
    return tuple(arrays)


def hold_out(X, y, n_held, rng):
    """Split (X, y) at random into a training part and ``n_held`` held-out rows,
    reusing X's memory.

    Equals ``order = rng.permutation(len(X))``; ``(X[order[n_held:]],
    y[order[n_held:]])`` for training and ``(X[order[:n_held]],
    y[order[:n_held]])`` held out — without a second copy of the training
    rows: X's rows are permuted in place (cycle by cycle, one row of extra
    memory), so X afterwards holds the permuted rows; the training part is a
    view into it and the held-out part a copy.
    """
    order = rng.permutation(X.shape[0])
    _permute_rows(X, order)
    y = y[order]
    return (X[n_held:], y[n_held:]), (X[:n_held].copy(), y[:n_held])


def _permute_rows(X, order):
    """X[i] ← X[order[i]] for every i, in place: each cycle of the permutation is
    walked once, holding one row aside."""
    done = np.zeros(len(order), dtype=bool)
    row = np.empty_like(X[0])
    for start in range(len(order)):
        if done[start] or order[start] == start:
            continue
        row[...] = X[start]
        i = start
        while order[i] != start:
            X[i] = X[order[i]]
            done[i] = True
            i = order[i]
        X[i] = row
        done[i] = True
