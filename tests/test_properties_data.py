"""The IDX loader on any bytes: a ValueError naming the file, or exactly the array
that a direct decoding of the header and values gives."""

import gzip
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties_strategies import ANYTHING
from test_data import idx_bytes, write_dataset

from fastnn.data import DataNotFoundError, load_mnist, read_idx

SETTINGS = settings(max_examples=150, deadline=None)
TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def decode(data):
    """The IDX format read directly: the array, or None if the bytes are not one."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except Exception:
            return None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in TYPES:
        return None
    n_dims = data[3]
    if len(data) < 4 + 4 * n_dims:
        return None
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
    dtype = np.dtype(TYPES[data[2]])
    if len(data) != 4 + 4 * n_dims + math.prod(shape) * dtype.itemsize:
        return None
    return np.frombuffer(data[4 + 4 * n_dims:], dtype).reshape(shape)


def small_idx():
    """Valid small IDX files, to be damaged or kept."""
    return st.builds(
        lambda shape, code: idx_bytes(np.arange(math.prod(shape)).reshape(shape) % 100,
                                      code),
        st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple),
        st.sampled_from([0x08, 0x09, 0x0D]))


def mutated(data, draw):
    kind = draw(st.sampled_from(["keep", "cut", "flip", "append", "gzip", "gzip-cut"]))
    if kind == "cut" and data:
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=8))
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "gzip-cut":
        packed = gzip.compress(data)
        return packed[:draw(st.integers(0, len(packed) - 1))]
    return data


@st.composite
def idx_files(draw):
    base = draw(st.one_of(small_idx(), st.binary(max_size=40)))
    return mutated(base, draw)


@SETTINGS
@given(data=idx_files())
def test_read_idx_on_any_bytes(data):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "f-idx")
        Path(path).write_bytes(data)
        expected = decode(data)
        try:
            array = read_idx(path)
        except ValueError as error:
            assert path in str(error) and expected is None, error
            return
        assert expected is not None
        np.testing.assert_array_equal(array, expected)
        assert array.dtype == expected.dtype.newbyteorder("=")


NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


@SETTINGS
@given(name=st.sampled_from(NAMES), damage=st.data())
def test_load_mnist_on_one_damaged_file(name, damage):
    with tempfile.TemporaryDirectory() as directory:
        written = write_dataset(Path(directory), n_train=6, n_test=4, compressed=False)
        path = Path(directory) / name
        data = mutated(path.read_bytes(), damage.draw)
        path.write_bytes(data)
        try:
            (X, y), (X_test, y_test) = load_mnist(directory, dtype="float64")
        except ValueError as error:
            assert str(path) in str(error), error
            return
        # accepted: then the file still says what was written, or something as valid
        array = decode(data)
        assert array is not None
        part = "train" if name.startswith("train") else "t10k"
        images, labels = (X, y) if part == "train" else (X_test, y_test)
        if "images" in name:
            np.testing.assert_array_equal(images, array.reshape(len(array), -1) / 255)
            np.testing.assert_array_equal(labels, written[part][1])
        else:
            np.testing.assert_array_equal(labels, array)
            assert labels.dtype == np.int64 and (labels >= 0).all()


@SETTINGS
@given(directory=ANYTHING.filter(lambda value: value is not None), dtype=ANYTHING)
def test_load_mnist_arguments(directory, dtype):
    try:
        load_mnist(directory, dtype=dtype)
    except DataNotFoundError:
        pass  # a valid path (a string of up to 5 characters) that holds no data
    except TypeError as error:
        assert "directory" in str(error) or "dtype" in str(error), error
    except ValueError as error:  # a NUL byte in a path
        assert "directory" in str(error), error


@pytest.mark.parametrize("dtype", ["01", "0\x1b", "f9", "<>"])
def test_a_dtype_numpy_cannot_parse_is_named(dtype):
    # numpy's parser raised SyntaxError for "01" and an unnamed ValueError for "0\x1b"
    with pytest.raises(TypeError, match="dtype"):
        load_mnist("", dtype=dtype)
