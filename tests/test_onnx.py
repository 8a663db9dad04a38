"""ONNX export: onnxruntime running the exported file must give predict_proba's outputs."""

import os
import sys

import numpy as np
import pytest
from conftest import assert_close

from fastnn import (Adam, BatchNorm, Dense, Dropout, Identity, LeakyReLU, PReLU, ReLU,
                    Sequential, Sigmoid, SiLU, Softmax, Tanh)
from fastnn import export
from fastnn.layers import Layer

onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx (pip install fastnn[onnx])")
ort = pytest.importorskip("onnxruntime",
                          reason="running exported files needs onnxruntime")

#: largest |onnxruntime − predict_proba| allowed, by dtype
MAX_DIFF = {np.float32: 1e-5, np.float64: 1e-12}
N_IN = 12


def _networks():
    """name → (layers, loss), one entry per layer kind (and output kind)."""
    return {
        "sigmoid-softmax": ([Dense(N_IN, 16), Sigmoid(), Dense(16, 5), Softmax()],
                            "softmax_cross_entropy"),
        "tanh-sigmoid": ([Dense(N_IN, 16), Tanh(), Dense(16, 1), Sigmoid()],
                         "sigmoid_cross_entropy"),
        "relu-dropout": ([Dense(N_IN, 16), ReLU(), Dropout(0.3), Dense(16, 4), Softmax()],
                         "softmax_cross_entropy"),
        "leaky_relu": ([Dense(N_IN, 16), LeakyReLU(0.2), Dense(16, 8), LeakyReLU(1.7),
                        Dense(8, 3)], "mse"),
        "prelu": ([Dense(N_IN, 16), PReLU(), Dense(16, 2)], "quadratic"),
        "silu-identity": ([Dense(N_IN, 16), SiLU(), Dense(16, 3), Identity()], "mse"),
        "batchnorm": ([Dense(N_IN, 16), BatchNorm(momentum=0.3), ReLU(), Dense(16, 6),
                       Softmax()], "softmax_cross_entropy"),
        "batchnorm-first": ([BatchNorm(momentum=0.5, eps=1e-3), Dense(N_IN, 8), Tanh(),
                             Dense(8, 2)], "mse"),
    }


NETWORKS = sorted(_networks())


def _trained(name, dtype):
    """A network trained a few epochs, so that every parameter and statistic has moved."""
    layers, loss = _networks()[name]
    model = Sequential(layers, loss=loss, optimizer=Adam(lr=0.01), dtype=dtype, seed=3)
    rng = np.random.default_rng(7)
    # Inputs far from standardized, so that the running statistics differ from (0, 1).
    X = rng.normal(2.0, 3.0, size=(300, N_IN))
    if loss in ("mse", "quadratic"):
        y = rng.normal(size=(300, model.n_outputs_))
    else:
        y = rng.integers(0, max(model.n_outputs_, 2), size=300)
    for layer in model.layers:
        if isinstance(layer, PReLU):  # slopes of both signs, one per unit
            layer.set_weights({"slope": rng.uniform(-1.0, 1.0, layer.n_out)})
    model.fit(X, y, epochs=3, batch_size=32)
    return model


def _run(path, X):
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return session.run([export.OUTPUT], {export.INPUT: X})[0]


def _rows(n, dtype):
    return np.random.default_rng(n).normal(2.0, 3.0, size=(n, N_IN)).astype(dtype)


def _edge_rows(dtype):
    """Zeros, subnormal and huge inputs: saturated sigmoids and softmaxes."""
    tiny = np.finfo(dtype).smallest_subnormal
    rows = [np.zeros(N_IN), np.full(N_IN, tiny), np.full(N_IN, -tiny),
            np.full(N_IN, 1e4), np.full(N_IN, -1e4),
            np.tile([1e4, -1e4], N_IN // 2), np.tile([-3e4, 0.0, 3e4], N_IN // 3)]
    return np.array(rows, dtype=dtype)


def _assert_matches(model, path, X):
    out = _run(path, X)
    expected = model.predict_proba(X)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    diff = np.abs(out.astype(np.float64) - expected).max()
    assert diff <= MAX_DIFF[model.dtype], f"max |onnxruntime − predict_proba| = {diff:.3g}"


@pytest.mark.parametrize("name", NETWORKS)
def test_onnxruntime_gives_predict_proba(name, dtype, tmp_path):
    model = _trained(name, dtype)
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    for n in (1, 1000):  # one file, any batch size
        _assert_matches(model, path, _rows(n, dtype))


@pytest.mark.parametrize("name", NETWORKS)
def test_edge_inputs(name, dtype, tmp_path):
    model = _trained(name, dtype)
    model.to_onnx(tmp_path / "model.onnx")
    X = _edge_rows(dtype)
    if model.loss.regression:
        # Raw outputs of inputs of 10⁴ reach 10⁵: agreement is relative to
        # their size, at the precision of the dtype.
        assert_close(_run(tmp_path / "model.onnx", X), model.predict_proba(X), dtype)
    else:
        # Probabilities stay in [0, 1] however large the logits.
        _assert_matches(model, tmp_path / "model.onnx", X)


def test_batchnorm_uses_running_statistics(dtype, tmp_path):
    model = _trained("batchnorm", dtype)
    layer = model.layers[1]
    # Training moved the statistics, else the test could not tell them from (0, 1).
    assert np.abs(layer.buffers["running_mean"]).min() > 1e-3
    assert np.abs(layer.buffers["running_var"] - 1).min() > 1e-3
    model.to_onnx(tmp_path / "model.onnx")
    # One row: batch statistics would normalize it to β, the running ones do not.
    _assert_matches(model, tmp_path / "model.onnx", _rows(1, dtype))


def test_slopes_are_exact_in_float64(tmp_path):
    # ONNX's LeakyRelu alpha is a 32-bit float: 0.1 would be off by 1.5e-9
    # relative, beyond float64's tolerance for inputs of this size.
    model = Sequential([Dense(2, 2), LeakyReLU(0.1)], loss="mse", dtype="float64", seed=0)
    model.set_weights([{"W": np.eye(2), "b": np.zeros(2)}, {}])
    model.to_onnx(tmp_path / "model.onnx")
    X = np.array([[-1e4, 3.0], [-7.0, -1.0]])
    np.testing.assert_array_equal(_run(tmp_path / "model.onnx", X),
                                  np.where(X > 0, X, 0.1 * X))


def test_graph_interface(dtype, tmp_path):
    model = _trained("batchnorm", dtype)
    model.to_onnx(tmp_path / "model.onnx")
    proto = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(proto, full_check=True)
    element = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    for value, width in ((inp, N_IN), (out, model.n_outputs_)):
        assert value.type.tensor_type.elem_type == element
        batch, features = value.type.tensor_type.shape.dim
        assert batch.dim_param == "batch" and not batch.HasField("dim_value")
        assert features.dim_value == width
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert {t.data_type for t in proto.graph.initializer} == {element}


@pytest.mark.parametrize("opset", [export.MIN_OPSET, "newest"])
def test_opset(opset, tmp_path):
    opset = onnx.defs.onnx_opset_version() if opset == "newest" else opset
    model = _trained("silu-identity", np.float32)
    model.to_onnx(tmp_path / "model.onnx", opset=opset)
    assert onnx.load(tmp_path / "model.onnx").opset_import[0].version == opset
    _assert_matches(model, tmp_path / "model.onnx", _rows(50, np.float32))


@pytest.mark.parametrize("dtype, other", [(np.float32, np.float64), (np.float64, np.float32)])
def test_export_in_another_dtype(dtype, other, tmp_path):
    model = _trained("batchnorm", dtype)
    model.to_onnx(tmp_path / "model.onnx", dtype=other.__name__)
    X = _rows(100, other)
    out = _run(tmp_path / "model.onnx", X)
    assert out.dtype == other
    # The coarser of the two precisions decides.
    assert np.abs(out - model.predict_proba(X)).max() <= MAX_DIFF[np.float32]


class _Scale(Layer):
    def forward(self, x, training=False):
        return 2 * x


class _MySigmoid(Sigmoid):
    pass


@pytest.mark.parametrize("layer, kind", [(_Scale(), "_Scale"), (_MySigmoid(), "_MySigmoid")])
def test_layer_without_onnx_form_is_refused_before_writing(layer, kind, tmp_path):
    model = Sequential([Dense(3, 4), layer, Dense(4, 2)], loss="mse", seed=0)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=rf"layer 1, {kind}\(\), has no ONNX form"):
        model.to_onnx(path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.onnx"]


@pytest.mark.parametrize("value, error", [
    ("float16", TypeError), ("int32", TypeError), (np.int64, TypeError), ("x", TypeError)])
def test_bad_dtype(value, error, tmp_path):
    model = Sequential([Dense(3, 2)], loss="mse", seed=0)
    with pytest.raises(error, match="dtype"):
        model.to_onnx(tmp_path / "model.onnx", dtype=value)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("value, error", [
    (12, ValueError), (0, ValueError), ("newest+1", ValueError), (17.0, TypeError),
    ("17", TypeError), (True, TypeError)])
def test_bad_opset(value, error, tmp_path):
    value = onnx.defs.onnx_opset_version() + 1 if value == "newest+1" else value
    model = Sequential([Dense(3, 2)], loss="mse", seed=0)
    with pytest.raises(error, match="opset must be an integer"):
        model.to_onnx(tmp_path / "model.onnx", opset=value)
    assert not os.listdir(tmp_path)


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="model must be a fastnn Sequential"):
        export.to_onnx([Dense(3, 2)], tmp_path / "model.onnx")


def test_existing_file_is_replaced(tmp_path):
    model = _trained("prelu", np.float64)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    model.to_onnx(str(path))
    _assert_matches(model, path, _rows(10, np.float64))
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = Sequential([Dense(3, 2)], loss="mse", seed=0)
    with pytest.raises(ImportError, match=r"pip install fastnn\[onnx\]"):
        model.to_onnx(tmp_path / "model.onnx")
    assert not os.listdir(tmp_path)
