"""Per-layer gradient diagnostics: how fast each layer learns.

Nielsen (*Neural Networks and Deep Learning*, ch. 5) measures the vanishing
gradient problem by the length of the bias gradient ∂C/∂b^l of each hidden
layer l — the error δ^l averaged over the samples: in a [784, 30, 30, 10]
sigmoid network at initialization, ‖δ¹‖ ≈ 0.07 while ‖δ²‖ ≈ 0.31, so the
first layer learns several times more slowly than the second.

``gradient_norms`` measures a model once; the ``LearningSpeed`` callback
measures it before training and after every epoch of ``fit``.
"""

import numbers

import numpy as np

from fastnn.callbacks import Callback
from fastnn.layers import BatchNorm, Dense


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


def _shift_gradient(layers, index):
    """∂C/∂(shift of dense layer ``index``'s output): its bias, or a following batch norm's β."""
    follower = layers[index + 1] if index + 1 < len(layers) else None
    if isinstance(follower, BatchNorm):
        return follower.grads["beta"]
    return layers[index].grads["b"]


class LayerValues(list):
    """One number per layer; formats element-wise, so a progress bar can print it."""

    def __format__(self, spec):
        return "[" + " ".join(format(value, spec) for value in self) + "]"


class LearningSpeed(Callback):
    """Record each dense layer's speed of learning, before training and after every epoch.

    Nielsen's speed of learning of layer l is ‖∂C/∂b^l‖ = ‖δ^l‖ averaged over
    the samples, measured on a fixed sample of training images (ch. 5).  At
    ``on_train_begin`` and every ``on_epoch_end`` this callback runs its own
    forward and backward pass over the sample (``loss_and_gradients``), so
    it measures the same thing whichever way ``fit`` trains, and records
    per dense layer, input side first:

    * ``speed_b`` — ‖∂C₀/∂b^l‖,
    * ``speed_W`` — ‖∂C₀/∂W^l‖ (Frobenius norm).

    C₀ is the mean loss on the sample without the weight penalty (what
    Nielsen's ``backprop`` returns; the penalty does not touch biases).  b^l
    is the shift added to the layer's weighted input: the dense layer's
    bias, or the shift β of a ``BatchNorm`` right after it (batch
    normalization subtracts the mean, which leaves the dense bias without
    effect and with a zero gradient).

    The values go into :attr:`history`, whose entry 0 is the network before
    training, and into the epoch's ``logs`` for the callbacks after this one
    (as ``LayerValues``, which a progress bar can print).  The ``History``
    that ``fit`` returns copies the logs before the other callbacks run, so
    it does not see them: read them from :attr:`history`.

    The measurement leaves training exactly as it would be without it: the
    model's random generator, its batch-norm statistics and its gradient
    buffer are restored afterwards, and the penalty strengths are restored
    after being set to 0 for the pass.

    Parameters
    ----------
    X, y : arrays
        Training inputs and labels (or targets).
    n_samples : int
        Size of the fixed sample (default 1000; all of X if it is smaller).
    seed : int
        Seed for choosing the sample.
    training : bool
        Measure in training mode (dropout masks drawn, batch statistics used),
        as training sees the network; default True.
    per_epoch : int
        Measurements per epoch (default 1, at its end).  With k > 1 the
        callback also measures at the first progress report at or after
        each j/k of the epoch; ``fit`` reports progress about 20 times per
        epoch, so at most about 20 measurements per epoch are distinct.

    Attributes
    ----------
    history : dict
        ``{"epoch": [0, 1, …], "speed_b": [[per layer], …], "speed_W": […]}``,
        entry 0 before training, entry e after epoch e (with ``per_epoch``
        > 1 also fractional epochs such as 0.5: half of the first epoch done).
    layers : list of int
        Indices (in ``model.layers``) of the dense layers measured.
    """

    def __init__(self, X, y, n_samples=1000, seed=0, training=True, per_epoch=1):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y has {y.shape[0]} rows, X has {X.shape[0]}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) \
                or n_samples <= 0:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        if isinstance(per_epoch, bool) or not isinstance(per_epoch, numbers.Integral) \
                or per_epoch <= 0:
            raise ValueError(f"per_epoch must be a positive integer, got {per_epoch!r}")
        self.per_epoch = int(per_epoch)
        rows = np.sort(np.random.default_rng(seed).permutation(X.shape[0])[:n_samples])
        self.X, self.y = X[rows], y[rows]
        self.training = bool(training)
        self.history = {"epoch": [], "speed_b": [], "speed_W": []}
        self.layers = []

    def measure(self, model):
        """(speed_b, speed_W) of the model now, one value per dense layer."""
        self.layers = [i for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]
        saved = (model.rng.bit_generator.state, model.get_state(), model.grads_.copy(),
                 model.l2, model.l1)
        try:
            model.l2 = model.l1 = 0.0
            model.loss_and_gradients(self.X, self.y, training=self.training)
            speed_b, speed_W = LayerValues(), LayerValues()
            for i in self.layers:
                shift = _shift_gradient(model.layers, i)
                speed_b.append(float(np.linalg.norm(shift.astype(np.float64))))
                speed_W.append(float(np.linalg.norm(
                    model.layers[i].grads["W"].astype(np.float64))))
        finally:
            rng_state, state, grads, model.l2, model.l1 = saved
            model.rng.bit_generator.state = rng_state
            model.set_state(state)
            model.grads_[...] = grads
        return speed_b, speed_W

    def _record(self, epoch, logs=None):
        speed_b, speed_W = self.measure(self.model)
        self.history["epoch"].append(epoch)
        self.history["speed_b"].append(speed_b)
        self.history["speed_W"].append(speed_W)
        if logs is not None:
            logs["speed_b"], logs["speed_W"] = speed_b, speed_W

    def on_train_begin(self, model):
        super().on_train_begin(model)
        # Training again continues the record; entry 0 is the network before the first fit.
        if not self.history["epoch"]:
            self._record(0)
        self._offset = self.history["epoch"][-1]

    def on_epoch_begin(self, epoch):
        self._epoch, self._done_parts = epoch, 0

    def on_progress(self, done, total):
        # Measure once per crossed fraction j/per_epoch, except the last, left to on_epoch_end.
        part = done * self.per_epoch // total
        if self._done_parts < part < self.per_epoch:
            self._done_parts = part
            self._record(self._offset + self._epoch + done / total)

    def on_epoch_end(self, epoch, logs):
        self._record(self._offset + epoch + 1, logs)
