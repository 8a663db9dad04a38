"""Loading MNIST-format (IDX) data sets: MNIST, Fashion-MNIST and alike.

An IDX file is a big-endian header — two zero bytes, a type code, the number
of dimensions — then one 32-bit size per dimension, then the values.  Files
may be gzip-compressed (``.gz``) or raw.
"""

import gzip
import os

import numpy as np

#: where Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
#: environment variable that overrides the default data directory
DATA_DIR_VARIABLE = "FASTNN_DATA"

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


def read_idx(path):
    """Read one IDX file (raw or ``.gz``) into a numpy array."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    n_dims = data[3]
    header = 4 + 4 * n_dims
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", n_dims, 4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path} holds {len(data)} bytes, its header promises {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


def data_dir(directory=None):
    """The directory to read: the argument, else $FASTNN_DATA, else the default."""
    return directory or os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR


def load_mnist(directory=None, dtype=np.float32):
    """Load an MNIST-format data set.

    Returns ``(X_train, y_train), (X_test, y_test)``: images flattened to rows
    of pixel values scaled to [0, 1] in ``dtype``, labels as int64.

    Raises
    ------
    DataNotFoundError
        If a file is missing; the message says how to install the data.
    """
    directory = data_dir(directory)
    arrays = []
    for part in ("train", "t10k"):
        paths = [_find(directory, f"{part}-{kind}") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
        if None in paths:
            raise DataNotFoundError(GET_DATA_HELP.format(directory=directory, variable=DATA_DIR_VARIABLE))
        images, labels = (read_idx(path) for path in paths)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{directory}: {images.shape[0]} {part} images but {labels.shape[0]} labels")
        X = images.reshape(images.shape[0], -1).astype(dtype)
        X /= 255.0
        arrays.append((X, labels.astype(np.int64)))
    return tuple(arrays)
