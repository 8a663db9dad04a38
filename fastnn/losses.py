"""Loss functions, each fused with the gradient it hands to backpropagation.

The cross-entropies are computed from logits, so a network trained with them
ends in the matching output layer (``Softmax`` or ``Sigmoid``): the loss takes
that layer's input and the layer itself is applied only for predictions.
This keeps every value finite for finite logits (no ``log(0)``) and gives the
simple gradient ``output − target``.

Losses are averaged over the samples of a batch.  Targets are integer class
labels (read as one-hot rows) or a 2-D array of target rows.
"""

from fastnn_ext import losses as _kernels


class Loss:
    """Base class: ``code`` selects the kernel, ``output_layer`` the required last layer."""

    code = None
    output_layer = None
    #: decision threshold on the loss input for single-output accuracy
    threshold = 0.5

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """Quadratic cost  C = 1/(2m) Σ_x ‖a(x) − y(x)‖²  (Nielsen, ch. 1).

    Works on the network's final output ``a``; its gradient is ``(a − y)/m``.
    """

    code = _kernels.MSE


class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy  C = −1/m Σ_x Σ_k y_k log softmax(z)_k.

    Needs a ``Softmax`` output layer; works on its input logits z through
    log-sum-exp.  Gradient with respect to z: ``(softmax(z) − y)/m``.
    """

    code = _kernels.SOFTMAX_CROSS_ENTROPY
    output_layer = "Softmax"


class SigmoidCrossEntropy(Loss):
    """Binary cross-entropy summed over outputs (Nielsen's cross-entropy cost).

    C = −1/m Σ_x Σ_k [y_k log σ(z_k) + (1 − y_k) log(1 − σ(z_k))].  Needs a
    ``Sigmoid`` output layer; works on its input logits z.  Gradient with
    respect to z: ``(σ(z) − y)/m``.
    """

    code = _kernels.SIGMOID_CROSS_ENTROPY
    output_layer = "Sigmoid"
    threshold = 0.0


LOSSES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "sigmoid_cross_entropy": SigmoidCrossEntropy,
    "binary_cross_entropy": SigmoidCrossEntropy,
}


def get(loss):
    """A ``Loss`` instance from a name or an instance."""
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[loss]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None
