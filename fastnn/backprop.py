"""One batch through the layers' Python forms: forward, loss, backward.

The layer-by-layer training path (``fastnn.training.layer_epoch``) and the
gradient check (``Sequential.loss_and_gradients``, used by
``fastnn.gradcheck``) run batches this way.  Each layer's ``forward`` and
``backward`` call the same kernels as its compiled form, in the same order,
so the gradients equal the compiled epoch's.
"""

import numpy as np

from fastnn._validation import check_features, one_hot
from fastnn_ext import gradients as _gradients
from fastnn_ext import losses as _loss_kernels


def batch_targets(model, labels, targets, rows):
    """The target rows of a batch: one-hot rows for class labels."""
    if labels is not None:
        return one_hot(labels[rows], model.n_outputs_, model.dtype)
    return np.ascontiguousarray(targets[rows])


def forward_backward(model, X, targets, training=True, weights=None, first=None):
    """Loss sum and correct count of one batch; leaves the gradient in ``grads_``.

    The backward pass runs down to layer ``first`` (default: the first with
    trainable parameters; the layers before it need no gradient).  With
    sample ``weights``, row i's loss and gradient are scaled by wᵢ, row by row
    as the compiled epoch does (``train.weighted_loss_and_grad``).
    """
    layers = model._loss_layers
    out = model._forward(X, layers, training)
    delta = np.empty_like(out)
    m = X.shape[0]
    code = model.loss.code
    if weights is None:
        loss = _loss_kernels.loss_grad(code, out, targets, delta, 1.0 / m)
    else:
        loss = 0.0
        for i, weight in enumerate(weights.tolist()):
            loss += weight * _loss_kernels.loss_grad(code, out[i:i + 1], targets[i:i + 1],
                                                     delta[i:i + 1], weight / m)
    correct = _loss_kernels.correct(out, targets, model.loss.threshold)
    first = model._first_trainable if first is None else first
    for i in range(len(layers) - 1, first - 1, -1):
        delta = layers[i].backward(delta, need_grad_in=i > first)
    return loss, correct


def penalty(model, n_samples):
    """λ₂/(2n)·Σw² + λ₁/n·Σ|w| over the trainable weights, for n training samples."""
    weights = model.params_[:model.n_weights_].astype(np.float64)
    return (model.l2 / (2 * n_samples) * np.dot(weights, weights)
            + model.l1 / n_samples * np.abs(weights).sum())


def loss_and_gradients(model, X, y, training=True):
    """The objective over all of X (mean loss + penalty) and a copy of its gradient."""
    X = check_features(X, model.dtype, model.n_features_)
    labels, targets = model._targets(y, X.shape[0])
    n = X.shape[0]
    loss = forward_backward(model, X, batch_targets(model, labels, targets, slice(None)),
                            training, first=model._first_with_params)[0] / n
    _gradients.weight_penalty(model.params_[:model.n_weights_], model.grads_[:model.n_weights_],
                              model.l2 / n, model.l1 / n)
    return loss + penalty(model, n), model.grads_.copy()
