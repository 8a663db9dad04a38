import os

import numpy as np
import pytest
from hypothesis import settings

# Continuous integration explores the same examples every run: a red run there
# is reproducible, not the luck of a draw.  Locally, hypothesis draws afresh.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# float32 kernels are compared with float64 NumPy references to this relative tolerance
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def assert_close(actual, expected, dtype, scale=None):
    """Relative agreement at the precision of dtype, relative to the array's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    if scale is None:
        scale = max(np.abs(expected).max(initial=0.0), 1.0)
    error = np.abs(actual - expected).max(initial=0.0) / scale
    assert error <= TOLERANCE[dtype], f"relative error {error:.3g}"


@pytest.fixture(autouse=True, scope="session")
def _private_calibration_cache(tmp_path_factory):
    """Thread-count measurements of the test run go to a cache of its own."""
    import os

    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
