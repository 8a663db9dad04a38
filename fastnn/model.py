"""The sequential model: a stack of layers, a loss, an optimizer.

Parameters, their gradients and the optimizer's moments each live in one
contiguous buffer per model (``params_``, ``grads_``); a layer's arrays are
views into them.  Weights come first, then biases and other parameters, so
that weight penalties and weight decay apply to the leading ``n_weights_``
elements in one pass.  Randomness (initialization, shuffling, dropout,
gradient noise) comes from one ``numpy.random.Generator`` seeded by ``seed``.

Training runs either one compiled call per slice of an epoch (the default,
``fastnn_ext.train``) or layer by layer in Python (``compiled=False``, for
debugging and for layers without a compiled form); both call the same kernels
in the same order and give the same weights.
"""

import math
import os

import numpy as np

from fastnn import callbacks as _callbacks
from fastnn import losses as _losses
from fastnn._files import atomic_write
from fastnn._validation import (all_finite, as_dtype, check_features, check_finite_number,
                                check_positive_int, check_targets, one_hot)
from fastnn.layers import Layer
from fastnn.optimizers import SGD, Optimizer
from fastnn_ext import gradients as _gradients
from fastnn_ext import losses as _loss_kernels
from fastnn_ext import optim as _optim
from fastnn_ext import train as _train

#: rows per forward call when predicting or evaluating
PREDICT_CHUNK = 4096
#: compiled calls per epoch when a callback follows progress (a progress bar)
PROGRESS_SLICES = 20


# GNU OpenMP cannot start threads in a child of fork() once the parent has
# used them: the child would wait forever for workers that do not exist.  A
# forked child (multiprocessing's default on Linux) therefore trains on its
# own thread.
_forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _training_threads():
    """Threads the compiled epoch may start (see fastnn_ext.train.max_threads)."""
    return 1 if _forked_child else _train.max_threads()


_blas_pools = None


def _blas_threaded():
    """Whether a loaded BLAS may use more than one thread (its current limit)."""
    global _blas_pools
    if _blas_pools is None:  # finding the libraries takes milliseconds; once
        from threadpoolctl import ThreadpoolController

        _blas_pools = [pool for pool in ThreadpoolController().lib_controllers
                       if pool.user_api == "blas"]
    return any(pool.num_threads > 1 for pool in _blas_pools)


class NonFiniteError(FloatingPointError):
    """The loss or the gradient stopped being finite; the last good weights remain."""


class Sequential:
    """A feed-forward network trained by mini-batch gradient descent.

    Parameters
    ----------
    layers : list of Layer
        The network, input to output.  The first layer fixes the input width.
    loss : str or Loss
        ``"softmax_cross_entropy"`` (needs a ``Softmax`` last layer),
        ``"sigmoid_cross_entropy"`` (needs a ``Sigmoid`` last layer) or
        ``"mse"``; see ``fastnn.losses``.
    optimizer : Optimizer, optional
        Update rule (default ``SGD(lr=0.1)``); see ``fastnn.optimizers``.
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
        Flat parameter and gradient buffers.
    n_weights_ : int
        Number of leading elements of ``params_`` that are weights.
    history_ : History
        Metrics of the last ``fit``.
    """

    def __init__(self, layers, loss="softmax_cross_entropy", optimizer=None,
                 dtype="float32", seed=None, l2=0.0, l1=0.0, clip_norm=None,
                 clip_value=None, gradient_noise=None):
        self.layers = list(layers)
        if not self.layers or not all(isinstance(layer, Layer) for layer in self.layers):
            raise TypeError("layers must be a non-empty list of fastnn layers")
        self.loss = _losses.get(loss)
        self.optimizer = SGD(lr=0.1) if optimizer is None else optimizer
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastnn optimizer, got {self.optimizer!r}")
        self.dtype = as_dtype(dtype)
        self.seed = seed
        self.l2 = check_finite_number("l2", l2, minimum=0.0)
        self.l1 = check_finite_number("l1", l1, minimum=0.0)
        self.clip_norm = None if clip_norm is None else check_finite_number(
            "clip_norm", clip_norm, minimum=0.0, open_min=True)
        self.clip_value = None if clip_value is None else check_finite_number(
            "clip_value", clip_value, minimum=0.0, open_min=True)
        self.gradient_noise = self._check_noise(gradient_noise)
        self.rng = np.random.default_rng(seed)
        self._build()

    @staticmethod
    def _check_noise(noise):
        if noise is None:
            return None
        eta, gamma = (noise, 0.55) if np.isscalar(noise) else tuple(noise)
        return (check_finite_number("gradient noise eta", eta, minimum=0.0, open_min=True),
                check_finite_number("gradient noise gamma", gamma, minimum=0.0))

    # ------------------------------------------------------------------ build

    def _build(self):
        # Only dense layers change the width: the first one fixes the input's.
        width = next((layer.n_in for layer in self.layers if layer.n_in is not None), None)
        if width is None:
            raise ValueError("the network needs a Dense layer to fix its input width")
        self.n_features_ = width
        for layer in self.layers:
            width = layer.build(width)
        self.n_outputs_ = width

        required = self.loss.output_layer
        last = type(self.layers[-1]).__name__
        if required is not None and last != required:
            raise ValueError(f"{self.loss!r} needs a {required} output layer, the network ends with {last}")
        # Cross-entropies take the logits: the output layer is applied only when predicting.
        self._loss_layers = self.layers[:-1] if required is not None else self.layers
        # Layers before the first one with parameters need no input gradient.
        self._first_with_params = next((i for i, layer in enumerate(self._loss_layers)
                                        if layer.param_specs()), len(self._loss_layers))

        specs = [(layer, spec) for layer in self.layers for spec in layer.param_specs()]
        layout = [item for item in specs if item[1].decay] + [item for item in specs if not item[1].decay]
        sizes = [math.prod(spec.shape) for _, spec in layout]
        self.params_ = np.zeros(sum(sizes), dtype=self.dtype)
        self.grads_ = np.zeros(sum(sizes), dtype=self.dtype)
        self.n_weights_ = sum(size for (_, spec), size in zip(layout, sizes) if spec.decay)
        self._offsets = {}
        offset = 0
        for (layer, spec), size in zip(layout, sizes):
            layer.params[spec.name] = self.params_[offset:offset + size].reshape(spec.shape)
            layer.grads[spec.name] = self.grads_[offset:offset + size].reshape(spec.shape)
            self._offsets[id(layer), spec.name] = offset
            offset += size
        # Initialize in network order, not buffer order, so that a layer's
        # draws do not depend on the layers after it.
        for layer, spec in specs:
            layer.params[spec.name][...] = spec.init(self.rng, spec.shape, spec.fan_in, spec.fan_out)

        # Non-trainable state (batch-norm running statistics): one more flat buffer.
        buffer_specs = [(layer, spec) for layer in self.layers for spec in layer.buffer_specs()]
        self.buffers_ = np.zeros(sum(math.prod(shape) for _, (_, shape, _) in buffer_specs),
                                 dtype=self.dtype)
        offset = 0
        for layer, (name, shape, value) in buffer_specs:
            size = math.prod(shape)
            layer.buffers[name] = self.buffers_[offset:offset + size].reshape(shape)
            layer.buffers[name][...] = value
            self._offsets[id(layer), name] = offset
            offset += size
        for layer in self.layers:
            layer.rng = self.rng
        self.optimizer.bind(self.params_.size, self.dtype, self.n_weights_)
        self.stop_training = False

    @property
    def n_params(self):
        """Number of trainable parameters."""
        return self.params_.size

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], loss={self.loss!r}, optimizer={self.optimizer!r})"

    # ---------------------------------------------------------- forward paths

    def _forward(self, X, layers, training):
        out = X
        for layer in layers:
            out = layer.forward(out, training)
        return out

    def predict_proba(self, X):
        """Network outputs (class probabilities for the cross-entropy losses)."""
        X = check_features(X, self.dtype, self.n_features_)
        return np.concatenate([self._forward(X[i:i + PREDICT_CHUNK], self.layers, False)
                               for i in range(0, X.shape[0], PREDICT_CHUNK)])

    def predict(self, X):
        """Predicted class labels: argmax of the outputs, or output > 0.5 for one output."""
        proba = self.predict_proba(X)
        if self.n_outputs_ == 1:
            return (proba[:, 0] > 0.5).astype(np.int64)
        return proba.argmax(axis=1)

    def evaluate(self, X, y):
        """Mean loss (without penalty) and accuracy on (X, y), as a dict."""
        X = check_features(X, self.dtype, self.n_features_)
        labels, targets = check_targets(y, X.shape[0], self.n_outputs_, self.dtype)
        total, correct = 0.0, 0
        for i in range(0, X.shape[0], PREDICT_CHUNK):
            out = self._forward(X[i:i + PREDICT_CHUNK], self._loss_layers, False)
            batch_targets = self._batch_targets(labels, targets, slice(i, i + PREDICT_CHUNK))
            total += _loss_kernels.loss_grad(self.loss.code, out, batch_targets)
            correct += _loss_kernels.correct(out, batch_targets, self.loss.threshold)
        return {"loss": total / X.shape[0], "accuracy": correct / X.shape[0]}

    def _batch_targets(self, labels, targets, rows):
        if labels is not None:
            return one_hot(labels[rows], self.n_outputs_, self.dtype)
        return np.ascontiguousarray(targets[rows])

    # ------------------------------------------------------------- gradients

    def penalty(self, n_samples):
        """The weight penalty λ₂/(2n)·Σw² + λ₁/n·Σ|w| for n training samples."""
        weights = self.params_[:self.n_weights_].astype(np.float64)
        return (self.l2 / (2 * n_samples) * np.dot(weights, weights)
                + self.l1 / n_samples * np.abs(weights).sum())

    def loss_and_gradients(self, X, y, training=True):
        """Objective (mean loss + penalty, X taken as the whole training set) and its gradient.

        Runs one forward and backward pass over all of X layer by layer;
        returns ``(objective, grads)`` with ``grads`` a copy of the flat
        gradient buffer.  Used by ``fastnn.gradcheck``.
        """
        X = check_features(X, self.dtype, self.n_features_)
        labels, targets = check_targets(y, X.shape[0], self.n_outputs_, self.dtype)
        batch_targets = self._batch_targets(labels, targets, slice(None))
        loss = self._forward_backward(X, batch_targets, training)[0] / X.shape[0]
        _gradients.weight_penalty(self.params_[:self.n_weights_], self.grads_[:self.n_weights_],
                                  *self._penalty_coefficients(X.shape[0]))
        return loss + self.penalty(X.shape[0]), self.grads_.copy()

    def _forward_backward(self, X, batch_targets, training=True):
        """Loss sum and correct count of one batch; leaves the gradient in grads_."""
        out = self._forward(X, self._loss_layers, training)
        delta = np.empty_like(out)
        loss = _loss_kernels.loss_grad(self.loss.code, out, batch_targets, delta, 1.0 / X.shape[0])
        correct = _loss_kernels.correct(out, batch_targets, self.loss.threshold)
        for i in range(len(self._loss_layers) - 1, -1, -1):
            delta = self._loss_layers[i].backward(delta, need_grad_in=i > self._first_with_params)
        return loss, correct

    # -------------------------------------------------------------- training

    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            callbacks=(), verbose=False, compiled=None):
        """Train by mini-batch gradient descent.

        ``batch_size=1`` is stochastic gradient descent, ``batch_size=len(X)``
        full-batch gradient descent.

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

        Returns
        -------
        History
            ``history["loss"]``, ``["accuracy"]``, ``["val_loss"]``,
            ``["val_accuracy"]``, ``["lr"]``: one entry per epoch.  The loss
            is the mean over the epoch's batches, without the penalty.

        Raises
        ------
        NonFiniteError
            When the loss or the gradient stops being finite; the weights are
            those of the last good step.
        """
        X = check_features(X, self.dtype, self.n_features_)
        labels, targets = check_targets(y, X.shape[0], self.n_outputs_, self.dtype)
        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        if any(layer.op == "batchnorm" for layer in self.layers):
            sizes = {min(batch_size, X.shape[0]), X.shape[0] % batch_size or batch_size}
            if 1 in sizes:
                raise ValueError("batch normalization needs at least two rows in every batch: "
                                 f"choose a batch_size other than {batch_size} for {X.shape[0]} samples")
        if validation_data is not None:
            X_val, y_val = validation_data
            X_val = check_features(X_val, self.dtype, self.n_features_)
            check_targets(y_val, X_val.shape[0], self.n_outputs_, self.dtype)
        plan = self._compiled_plan(min(batch_size, X.shape[0])) if compiled is not False else None
        if compiled and plan is None:
            raise ValueError("a layer of this network has no compiled form; use compiled=False")

        history = _callbacks.History()
        hooks = [history, *callbacks]
        if verbose:
            hooks.append(_callbacks.ProgressBar(epochs))
        self.stop_training = False
        for hook in hooks:
            hook.on_train_begin(self)
        n = X.shape[0]
        n_steps = -(-n // batch_size)
        for epoch in range(epochs):
            for hook in hooks:
                hook.on_epoch_begin(epoch)
            order = self.rng.permutation(n) if shuffle else np.arange(n)
            # The optimizer counts epochs and steps across fits, so schedules continue.
            rates = self.optimizer.learning_rates(self.optimizer.epoch_, self.optimizer.t_ + 1, n_steps)
            run = self._epoch_compiled if plan is not None else self._epoch_layers
            loss_sum, correct = run(plan, X, labels, targets, order, batch_size, rates, epoch, hooks)
            logs = {"loss": loss_sum / n, "accuracy": correct / n, "lr": float(rates[0])}
            if validation_data is not None:
                val = self.evaluate(X_val, y_val)
                logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            self.optimizer.on_epoch_end(self.optimizer.epoch_, logs)
            for hook in hooks:
                hook.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for hook in hooks:
            hook.on_train_end()
        self.history_ = history
        return history

    def _penalty_coefficients(self, n_samples):
        return self.l2 / n_samples, self.l1 / n_samples

    def _epoch_layers(self, plan, X, labels, targets, order, batch_size, rates, epoch, hooks):
        n = X.shape[0]
        n_steps = len(rates)
        l2, l1 = self._penalty_coefficients(n)
        weights, weight_grads = self.params_[:self.n_weights_], self.grads_[:self.n_weights_]
        loss_sum, correct = 0.0, 0
        for step in range(n_steps):
            snapshot = self._snapshot()
            rows = order[step * batch_size:(step + 1) * batch_size]
            batch_targets = self._batch_targets(labels, targets, rows)
            batch_loss, batch_correct = self._forward_backward(X[rows], batch_targets)
            if not math.isfinite(batch_loss):
                self._restore(snapshot)
                self._raise_nonfinite("loss", epoch, step)
            loss_sum += batch_loss
            correct += batch_correct
            if l2 or l1:
                _gradients.weight_penalty(weights, weight_grads, l2, l1)
            if self.clip_value is not None:
                _gradients.clip_by_value(self.grads_, self.clip_value)
            if self.clip_norm is not None:
                if not math.isfinite(_gradients.clip_by_global_norm(self.grads_, self.clip_norm)):
                    self._restore(snapshot)
                    self._raise_nonfinite("gradient", epoch, step)
            if self.gradient_noise is not None:
                eta, gamma = self.gradient_noise
                t = self.optimizer.t_  # steps taken before this one
                _gradients.gaussian_noise(self.rng, self.grads_, math.sqrt(eta / (1 + t) ** gamma))
            self.optimizer.step(self.params_, self.grads_)
            if not all_finite(self.params_):
                self._restore(snapshot)
                self._raise_nonfinite("update", epoch, step)
            if step % max(1, n_steps // PROGRESS_SLICES) == 0 or step == n_steps - 1:
                for hook in hooks:
                    hook.on_progress(step + 1, n_steps)
        return loss_sum, correct

    def _raise_nonfinite(self, what, epoch, step):
        self.stop_training = True
        raise NonFiniteError(
            f"the {what} became NaN or infinite at epoch {epoch + 1}, step {step + 1}; "
            "training stopped and the weights from before that step were kept"
        )

    # ------------------------------------------------------- compiled epochs

    def _compiled_plan(self, batch_size):
        """The op table of ``fastnn_ext.train`` for this network, or None.

        A Dense layer followed by an element-wise activation becomes one op
        (fused bias + activation).  Buffers are allocated here, once per fit,
        for ``batch_size`` rows; the epoch loop allocates nothing.
        """
        from fastnn.layers import Activation

        fields, scalars_index, codes = _train.FIELDS, _train.SCALARS, _train.OPS
        layers = self._loss_layers
        rows, scalar_rows = [], []
        work_size = batch_size * self.n_features_
        input_offset = 0
        seen_params = False
        i = 0
        while i < len(layers):
            layer = layers[i]
            if layer.op not in codes:
                return None
            row = np.full(fields["count"], -1, dtype=np.int64)
            scalars = np.zeros(scalars_index["count"])
            row[fields["kind"]] = codes[layer.op]
            row[fields["act"]] = 0
            row[fields["n_in"]] = layer.n_in
            row[fields["n_out"]] = layer.n_out
            if layer.op == "dense":
                follower = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(follower, Activation):
                    row[fields["act"]] = follower.code
                    scalars[scalars_index["alpha"]] = follower.alpha
                    i += 1
                row[fields["param_a"]] = self._offsets[id(layer), "W"]
                row[fields["param_b"]] = self._offsets[id(layer), "b"]
            elif layer.op == "activation":
                row[fields["act"]] = layer.code
                scalars[scalars_index["alpha"]] = layer.alpha
            elif layer.op == "prelu":
                row[fields["param_a"]] = self._offsets[id(layer), "slope"]
            row[fields["input"]] = input_offset
            row[fields["output"]] = input_offset = work_size
            row[fields["need_grad_in"]] = seen_params
            work_size += batch_size * layer.n_out
            if layer.op == "dropout":
                scalars[scalars_index["alpha"]] = layer.rate
                row[fields["aux"]] = work_size  # the mask
                work_size += batch_size * layer.n_out
            elif layer.op == "batchnorm":
                scalars[scalars_index["alpha"]] = layer.momentum
                scalars[scalars_index["eps"]] = layer.eps
                row[fields["param_a"]] = self._offsets[id(layer), "gamma"]
                row[fields["param_b"]] = self._offsets[id(layer), "beta"]
                row[fields["state"]] = self._offsets[id(layer), "running_mean"]
                row[fields["state_b"]] = self._offsets[id(layer), "running_var"]
                row[fields["aux"]] = work_size  # x̂, then the batch mean and 1/σ
                work_size += (batch_size + 2) * layer.n_out
            seen_params = seen_params or bool(layer.param_specs())
            rows.append(row)
            scalar_rows.append(scalars)
            i += 1
        return {
            "ops": np.array(rows),
            "scalars": np.array(scalar_rows),
            "work": np.zeros(work_size, dtype=self.dtype),
            "delta": np.zeros(work_size, dtype=self.dtype),
            "targets": np.zeros(batch_size * self.n_outputs_, dtype=self.dtype),
        }

    def _epoch_compiled(self, plan, X, labels, targets, order, batch_size, rates, epoch, hooks):
        n_steps = len(rates)
        # One call per epoch unless a callback wants to see progress: each call
        # snapshots the parameters and optimizer state for the overflow replay.
        wants_progress = any(type(hook).on_progress is not _callbacks.Callback.on_progress
                             for hook in hooks)
        per_call = -(-n_steps // PROGRESS_SLICES) if wants_progress else n_steps
        loss_sum, correct = 0.0, 0
        for first in range(0, n_steps, per_call):
            last = min(n_steps, first + per_call)
            snapshot = self._snapshot()
            runs = [self._run_compiled(plan, X, labels, targets, order, batch_size, rates,
                                       first, last)]
            if self._slice_failed(runs[0][3]):
                # Something overflowed in this slice: replay it one step at a
                # time from its start (same order, same random draws) and stop
                # right before the step that fails, keeping the weights before it.
                self._restore(snapshot)
                runs = []
                for step in range(first, last):
                    snapshot = self._snapshot()
                    runs.append(self._run_compiled(plan, X, labels, targets, order, batch_size,
                                                   rates, step, step + 1))
                    status = runs[-1][3]
                    if self._slice_failed(status):
                        self._restore(snapshot)
                        what = {_train.STATUS_NONFINITE_LOSS: "loss",
                                _train.STATUS_NONFINITE_GRADIENT: "gradient"}.get(status, "update")
                        self._raise_nonfinite(what, epoch, step)
            loss_sum += sum(run[0] for run in runs)
            correct += sum(run[1] for run in runs)
            for hook in hooks:
                hook.on_progress(last, n_steps)
        return loss_sum, correct

    def _slice_failed(self, status):
        """A compiled call stopped on a non-finite value, or left one in the weights."""
        return status != _train.STATUS_OK or not all_finite(self.params_)

    def _run_compiled(self, plan, X, labels, targets, order, batch_size, rates, first, last):
        """Steps first..last-1 of the epoch in one compiled call."""
        l2, l1 = self._penalty_coefficients(X.shape[0])
        eta, gamma = self.gradient_noise or (0.0, 0.0)
        optimizer = self.optimizer
        result = _train.train_epoch(
            X, targets, labels, order[first * batch_size:last * batch_size], batch_size,
            plan["ops"], plan["scalars"], self.loss.code, self.loss.threshold,
            self.params_, self.grads_, self.buffers_, plan["work"], plan["delta"], plan["targets"],
            optimizer.kind, optimizer.hyper_, optimizer.state_, optimizer.n_decay_,
            rates[first:last], optimizer.t_ + 1, self.n_weights_, l2, l1,
            self.clip_norm or 0.0, self.clip_value or 0.0, eta, gamma, self.rng,
            fused_sgd=self._can_fuse_sgd(), weight_decay=optimizer.weight_decay,
            n_threads=_training_threads(), blas_threaded=_blas_threaded())
        optimizer.advance(result[2])
        return result

    def _can_fuse_sgd(self):
        """Plain SGD with at most an L2 term: its update can ride on the gradient GEMM."""
        optimizer = self.optimizer
        return (optimizer.kind == _optim.SGD and optimizer.momentum == 0
                and optimizer.n_decay_ in (self.n_weights_, self.params_.size)
                and self.l1 == 0 and self.clip_norm is None and self.clip_value is None
                and self.gradient_noise is None)

    def _snapshot(self):
        """Everything a training step changes, for undoing steps that overflowed."""
        return (self.get_state(), self.optimizer.state_.copy(), self.optimizer.t_,
                self.rng.bit_generator.state)

    def _restore(self, snapshot):
        state, moments, t, rng_state = snapshot
        self.set_state(state)
        self.optimizer.state_[...] = moments
        self.optimizer.t_ = t
        self.rng.bit_generator.state = rng_state

    # ------------------------------------------------------- state and files

    def get_state(self):
        """A copy of everything training changes in the network (for restoring)."""
        return {"params": self.params_.copy(), "buffers": self.buffers_.copy()}

    def set_state(self, state):
        """Restore a state from ``get_state``."""
        self.params_[...] = state["params"]
        self.buffers_[...] = state["buffers"]

    def save_weights(self, path):
        """Write the parameters to ``path`` (``.npz``) atomically.

        The file is written beside the target and renamed over it only when
        complete, so an interrupted save never leaves a truncated file.
        """
        with atomic_write(path) as f:
            np.savez(f, params=self.params_, n_weights=self.n_weights_,
                     architecture=repr(self))

    def load_weights(self, path):
        """Read parameters saved by ``save_weights`` into this network."""
        with np.load(path) as data:
            params = data["params"]
            if params.shape != self.params_.shape or int(data["n_weights"]) != self.n_weights_:
                raise ValueError(
                    f"{path} holds {params.size} parameters for {data['architecture']}; "
                    f"this network has {self.params_.size}"
                )
            if not np.isfinite(params).all():
                raise ValueError(f"{path} holds NaN or infinite parameters")
            self.params_[...] = params
