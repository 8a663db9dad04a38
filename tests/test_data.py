"""The IDX loader on files written here, and on Fashion-MNIST when installed."""

import gzip
import os

import numpy as np
import pytest

from fastnn.data import DEFAULT_DATA_DIR, DataNotFoundError, load_mnist, read_idx


def write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape)
    dtype = {0x08: ">u1", 0x0D: ">f4"}[type_code]
    payload = header + array.astype(dtype).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_dataset(directory, n_train=30, n_test=10, compressed=True, seed=0):
    rng = np.random.default_rng(seed)
    suffix = ".gz" if compressed else ""
    parts = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 4, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(directory / f"{part}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{part}-labels-idx1-ubyte{suffix}", labels)
        parts[part] = (images, labels)
    return parts


@pytest.mark.parametrize("compressed", [True, False])
def test_load_mnist_format(tmp_path, compressed):
    written = write_dataset(tmp_path, compressed=compressed)
    (X, y), (X_test, y_test) = load_mnist(tmp_path)
    images, labels = written["train"]
    assert X.dtype == np.float32 and X.shape == (30, 12)
    np.testing.assert_array_equal(X, images.reshape(30, 12).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert X_test.shape == (10, 12) and y_test.dtype == np.int64


def test_read_idx_other_types(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    write_idx(tmp_path / "floats.idx", values, type_code=0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "floats.idx"), values)


def test_corrupt_files_are_refused(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 4), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="promises"):
        read_idx(tmp_path / "short")


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_mnist(tmp_path)


@pytest.mark.skipif(not os.path.isdir(DEFAULT_DATA_DIR), reason="Fashion-MNIST not installed")
def test_fashion_mnist_shapes():
    (X, y), (X_test, y_test) = load_mnist()
    assert X.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert 0 <= X.min() and X.max() == 1
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))
