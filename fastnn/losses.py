"""Loss functions, each fused with the gradient it hands to backpropagation.

Two squared-error losses, which differ by a constant factor per output:

========================  ===========================  ==========================
name                      C over a batch of m rows      gradient ∂C/∂a
========================  ===========================  ==========================
``"mse"``                 1/(m·n) Σ_x ‖a(x) − y(x)‖²    2(a − y)/(m·n)
``"quadratic"``           1/(2m) Σ_x ‖a(x) − y(x)‖²     (a − y)/m
========================  ===========================  ==========================

with n outputs per row.  ``"mse"`` is ``mean((a − y)²)`` over every element,
as PyTorch's ``MSELoss()`` and Keras' ``mean_squared_error`` define it;
``"quadratic"`` is Nielsen's quadratic cost (ch. 1), half the squared
distance per sample, averaged over the samples only.

The cross-entropies are computed from logits, so a network trained with them
ends in the matching output layer (``Softmax`` or ``Sigmoid``): the loss takes
that layer's input and the layer itself is applied only for predictions.
This keeps every value finite for finite logits (no ``log(0)``) and gives the
simple gradient ``output − target`` (for softmax target rows that sum to 1).

Losses are averaged over the samples of a batch.  Targets are integer class
labels (read as one-hot rows) or a 2-D array of target rows.  ``get(name)``
looks a loss up by the ``name`` of its class (or one of its ``aliases``).
"""

import numpy as np

from fastnn_ext import losses as _kernels

#: name → Loss subclass, filled by ``Loss.__init_subclass__`` from each class's
#: ``name`` and ``aliases``.
LOSSES = {}


class Loss:
    """Base class: ``code`` selects the kernel, ``output_layer`` the required last layer.

    A subclass with a ``name`` is registered under it (and its ``aliases``)
    for :func:`get`.
    """

    name = None
    aliases = ()
    code = None
    output_layer = None
    #: decision threshold on the loss input for single-output accuracy
    threshold = 0.5
    #: the outputs are values to predict (regression), not class scores
    regression = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for key in (cls.name, *cls.aliases):
            if key in LOSSES:
                raise ValueError(f"loss name {key!r} is taken by {LOSSES[key].__name__}")
            LOSSES[key] = cls

    def input_layers(self, layers):
        """The layers whose output the loss reads: all of them, or all but the
        output layer it needs (a cross-entropy takes the logits; the output
        layer is applied only when predicting)."""
        last = type(layers[-1]).__name__
        if self.output_layer is None:
            return layers
        if last != self.output_layer:
            raise ValueError(f"{self!r} needs a {self.output_layer} output layer, the network "
                             f"ends with {last}")
        return layers[:-1]

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """Mean squared error  C = 1/(m·n) Σ_x ‖a(x) − y(x)‖² = mean((a − y)²).

    The mean over all m·n elements of a batch with n outputs, as PyTorch's
    ``MSELoss()`` and Keras' ``mean_squared_error``.  Works on the network's
    final output ``a``; its gradient is ``2(a − y)/(m·n)``.
    """

    name = "mse"
    aliases = ("mean_squared_error",)
    code = _kernels.MSE
    regression = True


class QuadraticCost(Loss):
    """Quadratic cost  C = 1/(2m) Σ_x ‖a(x) − y(x)‖²  (Nielsen, ch. 1).

    Half the squared distance per sample, averaged over the m samples of a
    batch (not over the outputs).  Works on the network's final output ``a``;
    its gradient is ``(a − y)/m``.
    """

    name = "quadratic"
    code = _kernels.QUADRATIC
    regression = True


class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy  C = −1/m Σ_x Σ_k y_k log softmax(z)_k.

    Needs a ``Softmax`` output layer; works on its input logits z through
    log-sum-exp.  Gradient with respect to z: ``((Σ_k y_k)·softmax(z) − y)/m``,
    which is ``(softmax(z) − y)/m`` for target rows that sum to 1.
    """

    name = "softmax_cross_entropy"
    aliases = ("cross_entropy",)
    code = _kernels.SOFTMAX_CROSS_ENTROPY
    output_layer = "Softmax"


class SigmoidCrossEntropy(Loss):
    """Binary cross-entropy summed over outputs (Nielsen's cross-entropy cost).

    C = −1/m Σ_x Σ_k [y_k log σ(z_k) + (1 − y_k) log(1 − σ(z_k))].  Needs a
    ``Sigmoid`` output layer; works on its input logits z.  Gradient with
    respect to z: ``(σ(z) − y)/m``.
    """

    name = "sigmoid_cross_entropy"
    aliases = ("binary_cross_entropy",)
    code = _kernels.SIGMOID_CROSS_ENTROPY
    output_layer = "Sigmoid"
    threshold = 0.0


def regression_scores(outputs, targets):
    """Mean absolute error and R² = 1 − Σ(y − a)²/Σ(y − ȳ)² (averaged over the outputs).

    R² is NaN for an output whose targets do not vary.
    """
    error = np.asarray(outputs, dtype=np.float64) - targets
    spread = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(spread > 0, 1 - (error ** 2).sum(axis=0) / spread, np.nan)
    return {"mae": float(np.abs(error).mean()), "r2": float(np.mean(r2))}


def get(loss):
    """A ``Loss`` instance from a registered name or an instance.

    Parameters
    ----------
    loss : str or Loss
        A key of ``LOSSES`` (a class's ``name`` or one of its ``aliases``), or
        a ``Loss`` instance, which is returned as it is.

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        If ``loss`` is neither a registered name nor a ``Loss``.
    """
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[loss]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None
