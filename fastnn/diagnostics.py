"""Per-layer gradient diagnostics: how fast each layer learns.

Nielsen (*Neural Networks and Deep Learning*, ch. 5) measures the vanishing
gradient problem by the length of the bias gradient ∂C/∂b^l of each hidden
layer l — the error δ^l averaged over the samples: in a [784, 30, 30, 10]
sigmoid network at initialization, ‖δ¹‖ ≈ 0.07 while ‖δ²‖ ≈ 0.31, so the
first layer learns several times more slowly than the second.
"""

import numpy as np

from fastnn.layers import Dense


def gradient_norms(model, X, y):
    """Gradient lengths of every dense layer, for the objective on (X, y).

    Returns a list with one dict per ``Dense`` layer, input side first:
    ``{"layer": index, "bias": ‖∂C/∂b‖, "weights": ‖∂C/∂W‖,
    "weights_rms": ‖∂C/∂W‖/√size}``.  The objective is the mean loss plus the
    model's penalty, as in training (dropout masks are drawn as in training).
    """
    model.loss_and_gradients(X, y)
    report = []
    for index, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            weights = np.linalg.norm(layer.grads["W"].astype(np.float64))
            report.append({
                "layer": index,
                "bias": float(np.linalg.norm(layer.grads["b"].astype(np.float64))),
                "weights": float(weights),
                "weights_rms": float(weights / np.sqrt(layer.grads["W"].size)),
            })
    return report
