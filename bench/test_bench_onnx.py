"""Inference of the exported network: onnxruntime against ``predict_proba``.

The C2 network, [784, 256, 128, 10] ReLU with a softmax output, float32,
seed-0 weights, written by ``Sequential.to_onnx`` and run by onnxruntime's
CPU provider (``session.run`` on a NumPy array of images, class
probabilities back), next to fastnn's own ``predict_proba`` on the same
rows.  One row runs on one thread, 10,000 rows on all cores (onnxruntime's
intra-op pool sized to match); the probabilities must agree before timing.
"""

import os

import numpy as np
import pytest
from threads import time_prediction
from workloads import C2

ROWS = [1, 10000]


def _session(model, path, threads):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model.to_onnx(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    return lambda X: session.run(["output"], {"input": X})[0]


@pytest.mark.parametrize("library", ["fastnn", "onnxruntime"])
@pytest.mark.parametrize("n_rows", ROWS)
def test_predict_proba_onnx(benchmark, fashion_mnist, n_rows, library, tmp_path):
    X = np.ascontiguousarray(fashion_mnist[0][:n_rows])
    model = C2.fastnn_model()
    threads = 1 if n_rows == 1 else os.cpu_count()
    predict = (model.predict_proba if library == "fastnn"
               else _session(model, tmp_path / "c2.onnx", threads))
    benchmark.group = (f"predict_proba C2 {list(C2.widths)} ReLU exported to ONNX, "
                       f"{n_rows} row{'s' if n_rows > 1 else ''}")
    time_prediction(benchmark, library, predict, X, model.predict_proba(X), threads)
