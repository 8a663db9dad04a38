"""Export of a trained ``Sequential`` to ONNX, for inference in other runtimes.

The exported graph computes what ``Sequential.predict_proba`` returns: every
layer in inference form, the output layer included (class probabilities for
the cross-entropy losses, the raw outputs for ``"mse"``/``"quadratic"``).

========================  =====================================================
graph                     ``input`` (batch, n_features) → ``output`` (batch, n_outputs)
batch dimension           symbolic (``"batch"``): any number of rows, one file
element type              the model's dtype (float32 → FLOAT, float64 → DOUBLE)
                          unless another is asked for
operator set              ``DEFAULT_OPSET`` = 17 of the default domain (ONNX 1.12;
                          onnxruntime reads it from 1.12 on); 13 to the installed
                          onnx's newest on request
========================  =====================================================

Layer by layer, with x the layer's input:

================  =========================================================
``Dense``         Gemm(x, W, b) = x·W + b
``Sigmoid``       Sigmoid(x)
``Tanh``          Tanh(x)
``ReLU``          Relu(x)
``LeakyReLU``     PRelu(x, α): x if x > 0 else α·x
``PReLU``         PRelu(x, a), one slope a_j per unit
``SiLU``          Mul(x, Sigmoid(x))
``Softmax``       Softmax(x, axis=1)
``BatchNorm``     Add(Mul(Sub(x, μ), s), β),  s = γ/√(σ² + ε)
``Dropout``       nothing (the identity at inference)
``Identity``      nothing
================  =========================================================

Constants live in initializers of the exported element type, not in
attributes: ONNX's ``alpha`` and ``epsilon`` attributes are 32-bit floats,
which would round a float64 model's slope or ε.  Batch normalization is
written as the kernel evaluates it (``fastnn_ext/batchnorm.pxd``,
``batchnorm_forward_eval``): centre, then one scale per feature computed in
double precision and rounded once, then shift.  Only these layer classes
themselves are exported: a subclass may compute something else.

onnx is an optional dependency: ``pip install fastnn[onnx]``.
"""

import numpy as np

from fastnn import layers as L
from fastnn._files import atomic_write
from fastnn._validation import Integer, as_dtype, as_finite, check

#: the operator set written unless another is asked for
DEFAULT_OPSET = 17
#: the oldest operator set with every operator in the forms used here
#: (Softmax over one axis, PRelu and Gemm in double precision)
MIN_OPSET = 13
#: names of the graph's input and output
INPUT, OUTPUT = "input", "output"


def _onnx():
    """The onnx package, or an ImportError saying how to install it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("exporting to ONNX needs the onnx package; install it with "
                          "`pip install fastnn[onnx]` (or `pip install onnx`)") from error
    return onnx


class _Graph:
    """The nodes and initializers of a graph being built, one layer after another."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype = onnx, dtype
        self.nodes, self.initializers = [], []
        self.current = INPUT  # the tensor the next layer reads
        self.prefix = None  # names of the layer being converted: "layers.<i>"

    def constant(self, name, array):
        """An initializer ``<prefix>.<name>`` holding ``array`` in the graph's dtype."""
        full = f"{self.prefix}.{name}"
        values = as_finite(full, np.asarray(array), self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(values, full))
        return full

    def node(self, op, *inputs, **attributes):
        """Append ``op`` applied to ``inputs`` (the current tensor first); return its output."""
        output = f"{self.prefix}.{op}"  # no layer form uses an operator twice
        self.nodes.append(self.onnx.helper.make_node(
            op, [self.current, *inputs], [output], name=output, **attributes))
        return output

    def apply(self, op, *inputs, **attributes):
        """``node``, and its output becomes the current tensor."""
        self.current = self.node(op, *inputs, **attributes)


# ------------------------------------------------------------ layer forms
# One function per layer class: it appends the layer's inference form to the
# graph (see the table in the module docstring), its last node through
# ``apply``, so that the graph's last node computes the current tensor.


def _dense(graph, layer):
    graph.apply("Gemm", graph.constant("W", layer.params["W"]),
                graph.constant("b", layer.params["b"]))


def _unary(op):
    def convert(graph, layer):
        graph.apply(op)
    return convert


def _leaky_relu(graph, layer):
    graph.apply("PRelu", graph.constant("alpha", [layer.alpha]))


def _prelu(graph, layer):
    graph.apply("PRelu", graph.constant("slope", layer.params["slope"]))


def _silu(graph, layer):
    sigmoid = graph.node("Sigmoid")
    graph.apply("Mul", sigmoid)


def _softmax(graph, layer):
    graph.apply("Softmax", axis=1)


def _batchnorm(graph, layer):
    # As batchnorm_forward_eval: x − μ is exact for x near the mean, and the
    # scale γ/√(σ² + ε) is formed in double precision and rounded once.
    variance = layer.buffers["running_var"].astype(np.float64)
    scale = layer.params["gamma"].astype(np.float64) / np.sqrt(variance + layer.eps)
    graph.apply("Sub", graph.constant("running_mean", layer.buffers["running_mean"]))
    graph.apply("Mul", graph.constant("scale", scale.astype(layer.params["gamma"].dtype)))
    graph.apply("Add", graph.constant("beta", layer.params["beta"]))


def _nothing(graph, layer):
    pass


#: layer class → the function writing its inference form
CONVERTERS = {
    L.Dense: _dense,
    L.Identity: _nothing,
    L.Sigmoid: _unary("Sigmoid"),
    L.Tanh: _unary("Tanh"),
    L.ReLU: _unary("Relu"),
    L.LeakyReLU: _leaky_relu,
    L.PReLU: _prelu,
    L.SiLU: _silu,
    L.Softmax: _softmax,
    L.Dropout: _nothing,
    L.BatchNorm: _batchnorm,
}


# ------------------------------------------------------------ the model


def _check_model(model):
    from fastnn.model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastnn Sequential, got {type(model).__name__}")
    for i, layer in enumerate(model.layers):
        if type(layer) not in CONVERTERS:
            raise ValueError(
                f"layer {i}, {layer!r}, has no ONNX form; the exported layers are "
                f"{', '.join(kind.__name__ for kind in CONVERTERS)} (not their subclasses)")


def onnx_model(model, dtype=None, opset=None):
    """The ONNX model (an ``onnx.ModelProto``) computing ``model.predict_proba``.

    Parameters
    ----------
    model : Sequential
        The network; every layer must be one of ``CONVERTERS``.
    dtype : {"float32", "float64"}, optional
        Element type of the graph's input, output and weights (default: the
        model's dtype).
    opset : int, optional
        Version of the default ONNX operator set, from ``MIN_OPSET`` = 13 to
        the installed onnx's newest (default ``DEFAULT_OPSET`` = 17).

    Returns
    -------
    onnx.ModelProto
        Checked by ``onnx.checker.check_model`` (with shape inference).  Its
        input ``"input"`` has shape (batch, n_features), its output
        ``"output"`` shape (batch, n_outputs), ``batch`` being symbolic.

    Raises
    ------
    ImportError
        If onnx is not installed (``pip install fastnn[onnx]``).
    TypeError, ValueError
        If ``model``, ``dtype`` or ``opset`` is not one of the above, naming
        the first layer without an ONNX form.
    """
    onnx = _onnx()
    _check_model(model)
    dtype = as_dtype(model.dtype if dtype is None else dtype)
    opset = check("opset", DEFAULT_OPSET if opset is None else opset,
                  Integer(MIN_OPSET, onnx.defs.onnx_opset_version()))
    from fastnn import __version__

    graph = _Graph(onnx, dtype)
    for i, layer in enumerate(model.layers):
        graph.prefix = f"layers.{i}"
        CONVERTERS[type(layer)](graph, layer)
    graph.nodes[-1].output[0] = OUTPUT  # the last layer's tensor is the graph's output

    helper = onnx.helper
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes, "fastnn.Sequential",
            [helper.make_tensor_value_info(INPUT, element, ["batch", model.n_features_])],
            [helper.make_tensor_value_info(OUTPUT, element, ["batch", model.n_outputs_])],
            graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="fastnn", producer_version=__version__,
        doc_string=f"predict_proba of {model!r}")
    # The oldest IR version that carries this operator set, so that older
    # runtimes read the file too (make_model writes the newest).
    proto.ir_version = helper.find_min_ir_version_for(proto.opset_import)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model, path, dtype=None, opset=None):
    """Write ``model``'s inference graph to the ONNX file ``path``, atomically.

    Everything is built and checked before the file is opened: a refused
    network leaves ``path`` as it was, and a reader never sees a partly
    written file.  Arguments and errors as :func:`onnx_model`; run the file
    with, for example, onnxruntime::

        session = onnxruntime.InferenceSession(path)
        probabilities = session.run(["output"], {"input": X})[0]
    """
    data = onnx_model(model, dtype, opset).SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
