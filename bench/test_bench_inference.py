"""Inference: ``predict_proba`` of the C2 network on 1, 10 and 10,000 rows.

[784, 256, 128, 10] ReLU with a softmax output, float32 and float64, the
seed-0 fastnn model's weights in every library; each call takes a NumPy
array of images and returns a NumPy array of class probabilities:

* fastnn — ``Sequential.predict_proba`` (the compiled inference plan);
* fastnn-layers — the layer-by-layer path it replaced: each layer's Python
  ``forward`` on BLAS products, in chunks of 4096 rows;
* numpy — the plain forward pass ``NumpyMLP.predict_proba`` (matrix
  products, ``np.maximum``, a max-shifted softmax);
* torch — ``torch.no_grad()`` forward of ``torch.nn.Sequential`` and
  ``torch.softmax``, ``torch.from_numpy`` in and ``.numpy()`` out;
* jax — a ``jax.jit``-compiled forward, compiled for the shape before
  timing, ``np.asarray`` of the result.

fastnn runs as a user's call does, on as many threads as OpenMP allows:
10,000 rows share their chunks among them, and one or ten rows share the
columns of the products or run on one thread, as the plan measured during
its first calls.  The others run one and ten rows on one BLAS (and PyTorch)
thread and 10,000 rows on all cores; XLA's pool always spans every core.  Every library's probabilities
must match fastnn's before timing.
"""

import os

import numpy as np
import pytest
from fastnn import inference
from fastnn._validation import check_features
from fastnn_ext.infer import CHUNK_ROWS
from numpy_reference import NumpyMLP
from peers import jax_or_none, torch_or_none
from threads import time_prediction
from workloads import C2, initial_weights

ROWS = [1, 10, 10000]


def _layer_path(model):
    """``predict_proba`` as it was before the inference plan: layer by layer."""
    def predict_proba(X):
        X = check_features(X, model.dtype, model.n_features_)
        return np.concatenate([model._forward(X[i:i + 4096], model.layers, False)
                               for i in range(0, X.shape[0], 4096)])
    return predict_proba


def _predictor(library, model):
    weights = initial_weights(model)
    if library == "fastnn":
        return model.predict_proba
    if library == "fastnn-layers":
        return _layer_path(model)
    if library == "numpy":
        ref = NumpyMLP(list(C2.widths), hidden="relu", output="softmax", dtype=model.dtype)
        ref.set_weights(weights)
        return ref.predict_proba
    if library == "torch":
        torch = torch_or_none()
        if torch is None:
            pytest.skip("PyTorch is not installed")
        from torch_reference import TorchMLP

        ref = TorchMLP(torch, weights)
        if model.dtype == np.float64:
            ref.net.double()
        return ref.predict_proba
    if model.dtype == np.float64:
        pytest.skip("the JAX peer runs float32 only (JAX's default precision)")
    if jax_or_none() is None:
        pytest.skip("JAX is not installed")
    from jax_reference import JaxMLP

    return JaxMLP(weights).predict_proba


@pytest.mark.parametrize("library", ["fastnn", "fastnn-layers", "numpy", "torch", "jax"])
@pytest.mark.parametrize("n_rows", ROWS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_proba(benchmark, fashion_mnist, dtype, n_rows, library):
    X = np.ascontiguousarray(fashion_mnist[0][:n_rows], dtype=dtype)
    model = C2.fastnn_model(dtype=dtype)
    predict = _predictor(library, model)
    threads = os.cpu_count() if n_rows >= 10000 or library == "fastnn" else 1
    torch = torch_or_none() if library == "torch" else None
    if torch is not None:
        torch.set_num_threads(threads)
    benchmark.group = (f"predict_proba C2 {list(C2.widths)} ReLU {dtype}, "
                       f"{n_rows} row{'s' if n_rows > 1 else ''}")
    time_prediction(benchmark, library, predict, X, model.predict_proba(X), threads)
    if library == "fastnn" and n_rows <= CHUNK_ROWS:
        # the plan's measured choice: one chunk shared by columns, or one thread
        plan = inference.plan_of(model, model.layers)
        benchmark.extra_info["shares_chunk"] = plan.shares_chunk(n_rows)
