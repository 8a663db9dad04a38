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


# --- damaged and inconsistent files -------------------------------------------

def idx_bytes(array, type_code=0x08, n_dims=None):
    dims = array.ndim if n_dims is None else n_dims
    header = bytes([0, 0, type_code, dims]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape)
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0D: ">f4"}[type_code]
    return header + array.astype(dtype).tobytes()


def damage(path, transform):
    path.write_bytes(transform(path.read_bytes()))


@pytest.mark.parametrize("name, transform, message", [
    ("train-images-idx3-ubyte.gz", lambda data: data[:len(data) // 2], "truncated"),
    ("train-images-idx3-ubyte.gz", lambda data: data[:-6] + bytes(6), "damaged"),
    ("train-labels-idx1-ubyte.gz", lambda data: data[:2] + b"\xff" * 30, "gzip"),
    ("t10k-images-idx3-ubyte.gz", lambda data: gzip.compress(gzip.decompress(data)[:9]),
     "header"),
    ("t10k-labels-idx1-ubyte.gz", lambda data: gzip.compress(b"\x00\x00\x08"), "magic"),
    ("t10k-labels-idx1-ubyte.gz", lambda data: gzip.compress(b""), "magic"),
])
def test_damaged_files_are_refused_naming_the_file(tmp_path, name, transform, message):
    write_dataset(tmp_path)
    damage(tmp_path / name, transform)
    with pytest.raises(ValueError, match=message) as error:
        load_mnist(tmp_path)
    assert name in str(error.value)


@pytest.mark.parametrize("name, array, type_code, message", [
    ("train-images-idx3-ubyte", np.zeros((30, 12), np.uint8), 0x08, "3 dimensions"),
    ("train-images-idx3-ubyte", np.zeros(30, np.uint8), 0x08, "3 dimensions"),
    ("train-labels-idx1-ubyte", np.zeros((30, 1), np.uint8), 0x08, "1 dimension"),
    ("train-labels-idx1-ubyte", np.zeros(29, np.uint8), 0x08, "29 labels.*30 images"),
    ("t10k-labels-idx1-ubyte", np.full(10, -1), 0x09, "labels.*-1"),
    ("t10k-labels-idx1-ubyte", np.full(10, 2.5), 0x0D, "labels.*2.5"),
    ("train-images-idx3-ubyte", np.full((30, 4, 3), np.nan), 0x0D, "NaN"),
    ("train-images-idx3-ubyte", np.full((30, 4, 3), 300.0), 0x0D, r"\[0, 255\]"),
    ("t10k-images-idx3-ubyte", np.zeros((10, 3, 4), np.uint8), 0x08, "4×3.*3×4"),
    ("t10k-images-idx3-ubyte", np.zeros((0, 4, 3), np.uint8), 0x08, "no images"),
])
def test_inconsistent_files_are_refused_naming_the_file(tmp_path, name, array, type_code,
                                                        message):
    write_dataset(tmp_path, compressed=False)
    (tmp_path / name).write_bytes(idx_bytes(array, type_code))
    with pytest.raises(ValueError, match=message) as error:
        load_mnist(tmp_path)
    assert name in str(error.value)


def test_a_header_promising_more_dimensions_than_the_file_holds(tmp_path):
    (tmp_path / "f").write_bytes(bytes([0, 0, 8, 200]) + bytes(12))
    with pytest.raises(ValueError, match="header") as error:
        read_idx(tmp_path / "f")
    assert "f" in str(error.value)


def test_gzip_is_recognised_by_content_not_by_name(tmp_path):
    values = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "plain").write_bytes(gzip.compress(idx_bytes(values)))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), values)


def test_float_images_in_range_are_scaled_like_bytes(tmp_path):
    written = write_dataset(tmp_path, compressed=False)
    images = written["train"][0].astype(np.float32)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images, 0x0D))
    (X, _), _ = load_mnist(tmp_path, dtype="float64")
    np.testing.assert_array_equal(X, images.reshape(30, 12).astype(np.float64) / 255)


@pytest.mark.parametrize("call, error, name", [
    (lambda: load_mnist(3), TypeError, "directory"),
    (lambda: load_mnist(dtype="int32"), TypeError, "dtype"),
    (lambda: read_idx(None), TypeError, "path"),
])
def test_wrong_argument_types(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("n, n_held", [(1, 0), (2, 1), (97, 10), (500, 0), (500, 499)])
def test_hold_out_equals_fancy_indexing_by_a_permutation(n, n_held):
    from fastnn.data import hold_out

    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    order = np.random.default_rng(7).permutation(n)
    expected_train = X[order[n_held:]].copy(), y[order[n_held:]]
    expected_held = X[order[:n_held]].copy(), y[order[:n_held]]
    (X_train, y_train), (X_held, y_held) = hold_out(X, y, n_held, np.random.default_rng(7))
    np.testing.assert_array_equal(X_train, expected_train[0])
    np.testing.assert_array_equal(y_train, expected_train[1])
    np.testing.assert_array_equal(X_held, expected_held[0])
    np.testing.assert_array_equal(y_held, expected_held[1])
    assert np.shares_memory(X_train, X) and not np.shares_memory(X_held, X)
