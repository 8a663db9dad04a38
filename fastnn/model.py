"""The sequential model: a stack of layers, a loss, an optimizer.

Parameters, gradients and non-trainable state live in one flat buffer each,
laid out by ``fastnn._layout`` (trainable weights first, so penalties and the
update cover leading slices); a layer's arrays are views into them.
Randomness (initialization, shuffling, dropout, gradient noise,
augmentation) comes from one ``numpy.random.Generator`` seeded by ``seed``.
Training (``fastnn.training``) runs compiled or layer by layer in Python
(``compiled=False``); both call the same kernels in the same order and give
the same weights.  Prediction goes through ``fastnn.inference``.
"""

import numpy as np

from fastnn import _layout
from fastnn import backprop as _backprop
from fastnn import inference as _inference
from fastnn import losses as _losses
from fastnn import model_file as _model_file
from fastnn import serialization as _files
from fastnn import training as _training
from fastnn._layout import check_unshared, lay_out, owner, take_ownership
from fastnn._validation import (as_dtype, check_features, check_finite_number, check_gradient_noise,
                                check_positive_int, check_targets)
from fastnn.layers import Dense, Layer
from fastnn.optimizers import SGD, Optimizer
from fastnn.training import NonFiniteError  # noqa: F401  (importable from here, as before)

#: attributes that exist once the input width is known (Sequential.build)
_BUILT = frozenset({"params_", "grads_", "buffers_", "n_weights_", "n_trainable_", "n_features_",
                    "n_outputs_"})


class Sequential:
    """A feed-forward network trained by mini-batch gradient descent.

    Parameters
    ----------
    layers : list of Layer
        The network, input to output; the first Dense layer's ``n_in`` (or
        the data) fixes the input width.  A layer belongs to one model only.
    loss : str or Loss
        ``"softmax_cross_entropy"`` (needs a ``Softmax`` last layer),
        ``"sigmoid_cross_entropy"`` (needs a ``Sigmoid`` last layer) or
        ``"mse"``; see ``fastnn.losses``.
    optimizer : Optimizer, optional
        Update rule (default ``SGD(lr=0.1)``); see ``fastnn.optimizers``.  An
        optimizer object belongs to one model only; ``model.optimizer = ...``
        replaces it (the new one starts with fresh state).
    dtype : {"float32", "float64"}
        Precision of parameters, activations and gradients.
    seed : int or None
        Seed of the model's random generator: the same seed gives a
        bit-identical run.
    l2, l1 : float
        Penalty strengths λ of Nielsen's regularized cost
        C = C₀ + λ₂/(2n)·Σw² + λ₁/n·Σ|w| over the weights (not the biases),
        n being the number of training samples.  With plain SGD the L2 term
        gives Nielsen's update w ← (1 − ηλ₂/n)·w − η·∂C₀/∂w.
    clip_norm : float, optional
        Rescale the whole gradient to at most this global 2-norm.
    clip_value : float, optional
        Clamp every gradient element into [−clip_value, clip_value].
    gradient_noise : float or (float, float), optional
        η or (η, γ) of annealed Gaussian gradient noise with variance
        σ_t² = η / (1 + t)^γ at step t = 0, 1, … (Neelakantan et al. 2015;
        default γ = 0.55).

    Attributes
    ----------
    params_, grads_ : ndarray
        Flat parameter and gradient buffers (trainable layers' first).
    buffers_ : ndarray
        Flat non-trainable state (batch-norm running statistics).
    n_weights_ : int
        Number of leading elements of ``params_`` that are trainable weights.
    n_trainable_ : int
        Number of leading elements of ``params_`` that training updates; the
        rest belong to frozen layers (see :meth:`freeze`).
    history_ : History
        Metrics of the last ``fit``.
    """

    def __init__(self, layers, loss="softmax_cross_entropy", optimizer=None,
                 dtype="float32", seed=None, l2=0.0, l1=0.0, clip_norm=None,
                 clip_value=None, gradient_noise=None):
        self.layers = list(layers) if isinstance(layers, (list, tuple)) else layers
        if (not isinstance(self.layers, list) or not self.layers
                or not all(isinstance(layer, Layer) for layer in self.layers)):
            raise TypeError("layers must be a non-empty list of fastnn layers")
        self.loss = _losses.get(loss)
        self.dtype = as_dtype(dtype)
        self.seed = seed
        self.l2 = check_finite_number("l2", l2, minimum=0.0)
        self.l1 = check_finite_number("l1", l1, minimum=0.0)
        self.clip_norm = None if clip_norm is None else check_finite_number(
            "clip_norm", clip_norm, minimum=0.0, open_min=True)
        self.clip_value = None if clip_value is None else check_finite_number(
            "clip_value", clip_value, minimum=0.0, open_min=True)
        self.gradient_noise = check_gradient_noise(gradient_noise)
        self.rng = np.random.default_rng(seed)
        check_unshared(self.layers)
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        if not dense:
            raise ValueError("the network needs a Dense layer")
        self._loss_layers = self.loss.input_layers(self.layers)
        self._optimizer = None
        self.optimizer = SGD(lr=0.1) if optimizer is None else optimizer
        # The first dense layer fixes the input width; without one, the data will.
        if dense[0].n_in is not None:
            self.build(dense[0].n_in)

    def __getattr__(self, name):
        # Only reached for attributes that do not exist (yet).
        if name in _BUILT:
            raise AttributeError(f"the model is not built yet, so it has no {name}: the input "
                                 "width comes from the data (fit, or build(n_features))")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ build

    @property
    def built(self):
        """Whether the input width is known and the buffers exist (see :meth:`build`)."""
        return "params_" in self.__dict__

    def build(self, n_features):
        """Lay the network out for inputs of ``n_features`` columns and draw its
        initial weights (done by the constructor when the first Dense layer
        states its input width, else by the first ``fit``)."""
        if self.built:
            raise ValueError(f"the model is built already, for {self.n_features_} features")
        width = self.n_features_ = check_positive_int("n_features", n_features)
        for layer in self.layers:
            width = layer.build(width)
        self.n_outputs_ = width
        # Layers before the first one with parameters need no input gradient.
        self._first_with_params = next((i for i, layer in enumerate(self._loss_layers)
                                        if layer.param_specs()), len(self._loss_layers))
        lay_out(self)
        for layer in self.layers:
            layer.rng = self.rng
            take_ownership(layer, self)
        self.stop_training = False
        self._optimizer.bind(self.n_trainable_, self.dtype, self.n_weights_)

    @property
    def optimizer(self):
        """The update rule; assigning another optimizer binds it with fresh state."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastnn optimizer, got {optimizer!r}")
        if owner(optimizer) not in (None, self):
            raise ValueError(f"{optimizer!r} already belongs to another Sequential; an "
                             "optimizer holds one model's state (make a new one)")
        if self.built:
            optimizer.bind(self.n_trainable_, self.dtype, self.n_weights_)
        take_ownership(optimizer, self)
        old = self._optimizer
        if old is not None and old is not optimizer:
            take_ownership(old, None)
        self._optimizer = optimizer

    @property
    def n_params(self):
        """Number of parameters, those of frozen layers included."""
        return self.params_.size

    def freeze(self, *layers):
        """Stop training the given layers (layer objects or indices into ``layers``).

        Their parameters get no update, no optimizer state and no penalty, on
        both training paths; a frozen ``BatchNorm`` runs in inference mode.
        The buffers are laid out again (values kept, older views go stale) and
        the optimizer restarts with fresh state.  Freezing every layer with
        parameters is refused.
        """
        _layout.set_trainable(self, layers, False)

    def unfreeze(self, *layers):
        """Train the given layers (layer objects or indices) again; see :meth:`freeze`."""
        _layout.set_trainable(self, layers, True)

    def summary(self):
        """A table of the layers: output width and parameter count of each, and the total
        (and the trainable count when layers are frozen)."""
        rows = [("layer", "output", "parameters")]
        for layer in self.layers:
            rows.append((repr(layer), str(layer.n_out),
                         str(sum(a.size for a in layer.params.values()))))
        rows.append(("total", "", str(self.n_params)))
        if self.n_trainable_ != self.n_params:
            rows.append(("trainable", "", str(self.n_trainable_)))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}"
                         for a, b, c in rows)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], loss={self.loss!r}, optimizer={self.optimizer!r})"

    # ---------------------------------------------------------- forward paths

    def _forward(self, X, layers, training):
        out = X
        for layer in layers:
            out = layer.forward(out, training)
        return out

    def _features(self, X):
        """X as checked rows; a single sample (1-D) becomes one row."""
        single = np.ndim(X) == 1
        X = check_features(np.reshape(X, (1, -1)) if single else X, self.dtype,
                           self.n_features_)
        return X, single

    def _targets(self, y, n_samples):
        return check_targets(y, n_samples, self.n_outputs_, self.dtype, self.loss.regression)

    @property
    def regression(self):
        """Whether the outputs are values to predict rather than class scores.

        A squared-error loss (``"mse"``, ``"quadratic"``) makes a regression,
        unless the model was trained on class labels (as Nielsen's digit
        classifier trains with the quadratic cost).
        """
        return self.loss.regression and not getattr(self, "_trained_on_labels", False)

    def predict_proba(self, X):
        """Network outputs (class probabilities for the cross-entropy losses).

        ``X`` is (n_samples, n_features), or one sample (n_features,), which
        gives one row of outputs.  A network whose layers all have a
        compiled form runs in one compiled call (``fastnn.inference``).
        """
        return _inference.predict(self, X, self.layers)

    def predict(self, X):
        """Predictions: the outputs of a regression (``"mse"``, ``"quadratic"``); for a
        classifier, the argmax of the outputs, or output > 0.5 for one output.

        One sample (1-D ``X``) gives one prediction.
        """
        proba = self.predict_proba(X)
        if self.regression:
            return proba
        if self.n_outputs_ == 1:
            return (proba[..., 0] > 0.5).astype(np.int64)
        return proba.argmax(axis=-1)

    def evaluate(self, X, y):
        """Mean loss (without penalty) on (X, y), and accuracy — or, for a regression,
        the mean absolute error ``mae`` and the coefficient of determination ``r2``
        (1 − Σ(y − a)²/Σ(y − ȳ)², averaged over the outputs), as a dict."""
        return _inference.evaluate(self, X, y)

    # ------------------------------------------------------------- gradients

    def penalty(self, n_samples):
        """The weight penalty λ₂/(2n)·Σw² + λ₁/n·Σ|w| for n training samples.

        The sums run over the trainable weights: a frozen weight's term is a
        constant of the training."""
        return _backprop.penalty(self, n_samples)

    def loss_and_gradients(self, X, y, training=True):
        """Objective (mean loss + penalty, X taken as the whole training set) and its gradient.

        Runs one forward and backward pass over all of X layer by layer;
        returns ``(objective, grads)`` with ``grads`` a copy of the flat
        gradient buffer.  Used by ``fastnn.gradcheck``.
        """
        return _backprop.loss_and_gradients(self, X, y, training)

    # -------------------------------------------------------------- training

    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            callbacks=(), verbose=False, compiled=None, sample_weight=None,
            validation_split=0.0, augment=None):
        """Train by mini-batch gradient descent.

        ``batch_size=1`` is stochastic gradient descent, ``batch_size=len(X)``
        (or more) full-batch gradient descent.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : labels of shape (n_samples,) or targets (n_samples, n_outputs)
        epochs, batch_size : int
        shuffle : bool
            Visit the samples in a fresh random order every epoch.
        validation_data : (X_val, y_val), optional
            Evaluated after every epoch (``val_loss``, ``val_accuracy``).
        callbacks : list of Callback
        verbose : bool
            Show a progress bar and the metrics of every epoch.
        compiled : bool or None
            Run each epoch in compiled code (default: whenever every layer
            has a compiled form) or layer by layer in Python.
        sample_weight : array of shape (n_samples,), optional
            Finite weights >= 0 multiplying each sample's loss and gradient;
            a batch's loss is Σ wᵢ·Lᵢ / (rows of the batch).
        validation_split : float in [0, 1)
            Hold out this fraction of the samples — the last ones, before any
            shuffling, as Keras does — as ``validation_data``.
        augment : fastnn.augment.Augmentation, optional
            Random transformations of the training rows (flattened images),
            drawn afresh for every batch from the model's generator; ``X``
            itself is not modified.

        Returns
        -------
        History
            ``history["loss"]``, ``["accuracy"]``, ``["val_loss"]``,
            ``["val_accuracy"]``, ``["lr"]``: one entry per epoch.  The loss
            is the mean over the epoch's batches, without the penalty.

        Raises
        ------
        NonFiniteError
            When the loss, the gradient or the update stops being finite; the
            weights are those of the last good step.
        KeyboardInterrupt
            On Ctrl-C, within a fraction of a second; the weights are those of
            the last finished step.
        """
        return _training.fit(self, X, y, epochs, batch_size, shuffle, validation_data,
                             callbacks, verbose, compiled, sample_weight, validation_split,
                             augment)

    # ------------------------------------------------------- state and files

    def get_state(self):
        """A copy of everything training changes in the network (for restoring)."""
        return {"params": self.params_.copy(), "buffers": self.buffers_.copy(),
                "trainable": self._trainable_key}

    def set_state(self, state):
        """Restore a state from ``get_state``, taken with the same layers frozen."""
        if state.get("trainable", self._trainable_key) != self._trainable_key:
            raise ValueError("the state was taken with other layers frozen: its parameters "
                             "are laid out differently (use get_weights/set_weights)")
        self.params_[...] = state["params"]
        self.buffers_[...] = state["buffers"]

    def get_weights(self):
        """Every layer's parameters as copies: a list with one dict per layer."""
        return [layer.get_weights() for layer in self.layers]

    def set_weights(self, weights):
        """Write a list like ``get_weights()``'s into the layers (checked, in place)."""
        weights = list(weights)
        if len(weights) != len(self.layers):
            raise ValueError(f"weights has {len(weights)} entries, the network "
                             f"{len(self.layers)} layers")
        for layer, layer_weights in zip(self.layers, weights):
            if layer_weights or layer.params:
                layer.set_weights(layer_weights)

    def save(self, path):
        """Write the whole model — architecture, weights, optimizer, schedule, random
        generator, history — to ``path`` (``.npz``), atomically; ``fastnn.load_model``
        rebuilds it, and training continues where it stopped."""
        _model_file.save(self, path)

    def save_weights(self, path):
        """Write parameters and batch-norm statistics to ``path`` (``.npz``), atomically.

        The file records what it belongs to (layer kinds and shapes, dtype,
        fastnn version); ``load_weights`` refuses another network's file.
        """
        _files.save_weights(_layout.CanonicalView(self), path)

    def load_weights(self, path):
        """Read a file written by ``save_weights`` into this network (whatever is frozen)."""
        view = _layout.CanonicalView(self)
        _files.load_weights(view, path)
        view.write_back()

    def to_onnx(self, path, dtype=None, opset=None):
        """Write the network's ``predict_proba`` as an ONNX graph to ``path``, atomically.

        The graph maps ``"input"`` (batch, n_features) to ``"output"`` (batch,
        n_outputs) for any batch size, in the model's dtype unless ``dtype``
        says otherwise, with operator set ``opset`` (default 17); see
        ``fastnn.export`` (needs ``pip install fastnn[onnx]``).
        """
        from fastnn.export import to_onnx  # onnx is optional: imported on use
        to_onnx(self, path, dtype=dtype, opset=opset)
