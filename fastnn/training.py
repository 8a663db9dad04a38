"""The two ways of running an epoch, and undoing a step that went non-finite.

``compiled_epoch`` runs the epoch in calls of ``fastnn_ext.train.EpochPlan``;
``layer_epoch`` runs each batch's forward and backward pass layer by layer in
Python.  Both end every step with the same compiled update
(``fastnn_ext.update.UpdateStep``), so they give the same weights.  When a
step makes the loss, the gradient, the parameters or the optimizer's state
non-finite, the model is put back as it was before that step and
``NonFiniteError`` is raised.
"""

import math
import time

import numpy as np

from fastnn import _threads
from fastnn import _layout
from fastnn import augment as _augment
from fastnn import backprop as _backprop
from fastnn import plan as _plan
from fastnn.plotting import smoothed
from fastnn import callbacks as callbacks_
from fastnn._validation import Real, check_features, check_positive_int
from fastnn_ext import gemm_choice as _gemm_choice
from fastnn_ext import train as _train
from fastnn_ext import update as _update

#: compiled calls per epoch when a callback follows progress (a progress bar)
PROGRESS_SLICES = 20
#: λ of the running loss estimate Q ← (1 − λ)·Q + λ·Lᵢ shown beside the progress
RUNNING_LOSS_WEIGHT = 0.05
#: rows augmented at a time: vectorized NumPy over many images, in a copy far
#: smaller than the training set
AUGMENT_ROWS = 4096


class EpochRows:
    """The rows an epoch trains on, in order: the training set, or augmented chunks of it.

    Without augmentation one chunk covers the epoch and reads X in place.
    With it, :meth:`load` draws the transformed copy of the rows of the
    ``chunk`` steps from a step on, from the model's generator; both paths
    call it at the same steps, before the step's snapshot, so they make the
    same draws in the same order.
    """

    def __init__(self, model, X, labels, targets, sample_weight, order, batch_size, augment):
        self.model, self.augment, self.batch_size = model, augment, batch_size
        self.source = (X, labels, targets, sample_weight)
        self.epoch_order = order
        n_steps = -(-len(order) // batch_size)
        self.chunk = n_steps if augment is None else max(1, AUGMENT_ROWS // batch_size)
        self.start = None

    def load(self, step):
        """Make the chunk starting at ``step`` current."""
        X, labels, targets, sample_weight = self.source
        self.start = step
        if self.augment is None:
            self.X, self.labels, self.targets, self.sample_weight = X, labels, targets, sample_weight
            self.order = self.epoch_order
            self.start = 0
            return
        bs = self.batch_size
        rows = self.epoch_order[step * bs:(step + self.chunk) * bs]
        self.X = self.augment.apply(X[rows], self.model.rng)
        self.labels = None if labels is None else labels[rows]
        self.targets = None if targets is None else np.ascontiguousarray(targets[rows])
        self.sample_weight = None if sample_weight is None else sample_weight[rows]
        self.order = np.arange(len(rows), dtype=np.int64)

    def rows(self, first, last):
        """Indices into the current chunk of the rows of steps first..last-1."""
        bs = self.batch_size
        return self.order[(first - self.start) * bs:(last - self.start) * bs]


def track_running_loss(model, mean_batch_loss, n_batches):
    """Advance ``model.running_loss_`` over n batches whose mean loss was ``mean_batch_loss``.

    The layer path passes each batch (n = 1): the course's estimate exactly.
    A compiled slice only reports its total, so its n batches count as n
    equal losses: Q ← (1 − λ)ⁿ·Q + (1 − (1 − λ)ⁿ)·L̄.
    """
    weight = 1.0 - (1.0 - RUNNING_LOSS_WEIGHT) ** n_batches
    model.running_loss_ = smoothed(model.running_loss_, mean_batch_loss, weight)


class NonFiniteError(FloatingPointError):
    """The loss, the gradient or the update stopped being finite; the last good weights remain."""


_FAILURE = {_train.STATUS_NONFINITE_LOSS: "loss",
            _train.STATUS_NONFINITE_GRADIENT: "gradient",
            _train.STATUS_NONFINITE_UPDATE: "update (parameters or optimizer state)"}


def snapshot(model):
    """Everything a training step changes, for undoing steps that overflowed."""
    return (model.get_state(), model.optimizer.state_.copy(), model.optimizer.t_,
            model.rng.bit_generator.state)


def restore(model, update, saved):
    state, moments, t, rng_state = saved
    model.set_state(state)
    model.optimizer.state_[...] = moments
    model.optimizer.t_ = update.steps = t
    model.rng.bit_generator.state = rng_state


def _raise_nonfinite(model, status, epoch, step):
    model.stop_training = True
    raise NonFiniteError(
        f"the {_FAILURE[status]} became NaN or infinite at epoch {epoch + 1}, step {step + 1}; "
        "training stopped and the weights from before that step were kept")


def wants_progress(hooks):
    from fastnn.callbacks import Callback

    return any(type(hook).on_progress is not Callback.on_progress for hook in hooks)


def layer_epoch(model, update, data, rates, epoch, hooks):
    """One epoch batch by batch through the layers' Python forms (``data``: EpochRows)."""
    n_steps = len(rates)
    threads = _threads.step_threads(model)
    loss_sum, correct = 0.0, 0
    for step in range(n_steps):
        if step % data.chunk == 0:
            data.load(step)
        saved = snapshot(model)
        rows = data.rows(step, step + 1)
        batch_loss, batch_correct = _backprop.forward_backward(
            model, data.X[rows], _backprop.batch_targets(model, data.labels, data.targets, rows),
            weights=None if data.sample_weight is None else data.sample_weight[rows])
        status = _train.STATUS_NONFINITE_LOSS if not math.isfinite(batch_loss) else \
            update.update(float(rates[step]), model.rng, threads)
        model.optimizer.t_ = update.steps
        if status != _train.STATUS_OK:
            restore(model, update, saved)
            _raise_nonfinite(model, status, epoch, step)
        loss_sum += batch_loss
        correct += batch_correct
        track_running_loss(model, batch_loss / len(rows), 1)
        if step % max(1, n_steps // PROGRESS_SLICES) == 0 or step == n_steps - 1:
            for hook in hooks:
                hook.on_progress(step + 1, n_steps)
    return loss_sum, correct


#: steps of each setting in an epoch's comparison of its threads with one
PROBE_STEPS = 64
#: an epoch compares them again every this many steps
REPROBE_STEPS = 1024


def probe_phases(n_steps):
    """The timed comparisons of an epoch of n_steps: [(start, stop, setting, slot)].

    Setting 0 is one thread, 1 all of them; ``slot`` is where the phase's
    time is summed (None: not timed).  A window starts every REPROBE_STEPS
    steps while 6·PROBE_STEPS steps remain (none in a shorter epoch):
    PROBE_STEPS on one thread, as many on all, and the faster of the two for
    the rest of the window; the first window opens with PROBE_STEPS on all
    threads that wake them and warm the caches, untimed.
    """
    probe, phases = PROBE_STEPS, []
    for window in range(0, n_steps - 6 * probe + 1, REPROBE_STEPS):
        at = window
        if window == 0:
            phases.append((at, at + probe, 1, None))
            at += probe
        phases += [(at, at + probe, 0, 0), (at + probe, at + 2 * probe, 1, 1)]
    return phases


def compiled_epoch(model, plan, data, rates, epoch, hooks):
    """One epoch in compiled calls (``data``: EpochRows): one per chunk of rows, or
    PROGRESS_SLICES when progress is shown; no call spans two chunks.

    Where BLAS would thread some of the step's products but the own kernels
    carry most of its multiply-adds, BLAS runs on one thread for the epoch
    and the step's threads are ours (``_threads.blas_limited``).

    Where the step may use several threads, the epoch first times them
    against one thread on its own steps — PROBE_STEPS with one, then as many
    with all, for the products' split and the update alike — and keeps the
    faster, comparing them again every REPROBE_STEPS steps
    (``probe_phases``).  Timing the kernels apart does not settle it: on a
    2-core AMD EPYC, family 25, model 1, shared with other work, two threads
    can lose to one, and other work comes and goes within an epoch (a C4
    epoch ran at 376 µs per step on two threads until another job took a
    core, then at 690).  The split it times covers every own-kernel product
    that BLAS would thread, whatever the calibration's cut: that cut, timed
    once on scratch products and cached, can keep off a split that pays
    (C4's forward product on the same CPU: 76 µs on one thread, 46 on two,
    under a cached cut that split nothing below 12.8 million multiply-adds).
    Nor is the update's calibration on scratch buffers final: it kept one
    thread for C4's Adam update, which takes 197 µs on one thread and 141
    on two there.  The thread count never changes a result.
    """
    with _threads.blas_threads_limited(1 if _threads.blas_limited(model, plan) else None):
        return _epoch_calls(model, plan, data, rates, epoch, hooks)


def _epoch_calls(model, plan, data, rates, epoch, hooks):
    """compiled_epoch's calls, BLAS's threads settled."""
    n_steps = len(rates)
    per_call = -(-n_steps // PROGRESS_SLICES) if wants_progress(hooks) else n_steps
    allowed = _threads.step_threads(model, plan)
    most = _threads.split_threads()  # what the policy allows, calibration aside
    phases = probe_phases(n_steps) if most > 1 else []
    # (split threads, split floor, update threads); where it is timed, the
    # split covers every product BLAS itself would thread
    settings = [(1, math.inf, 1), (most, _gemm_choice.BLAS_THREADED_WORK, most) if phases
                else (most, math.inf, allowed)]
    seconds, kept = [0.0, 0.0], settings[1]
    loss_sum, correct = 0.0, 0
    starts = sorted({*range(0, n_steps, per_call), *range(0, n_steps, data.chunk),
                     *(step for phase in phases for step in phase[:2] if step < n_steps)})
    for first, last in zip(starts, starts[1:] + [n_steps]):
        phase = next((p for p in phases if p[0] <= first < p[1]), None)
        split, floor, threads = kept if phase is None else settings[phase[2]]
        _threads.use_split_threads(split, floor)
        if first % data.chunk == 0:
            data.load(first)
        saved = snapshot(model)
        started = time.perf_counter()
        result = _run(model, plan, data, rates, first, last, threads)
        if phase is not None and phase[3] is not None:
            seconds[phase[3]] += time.perf_counter() - started
            if phase[3] == 1 and last == phase[1]:   # a window's comparison is complete
                kept = settings[seconds[1] < seconds[0]]
                seconds = [0.0, 0.0]
        if result[3] in _FAILURE:
            # Something overflowed in this slice: replay it one step at a
            # time from its start (same order, same random draws) and stop
            # right before the step that fails, keeping the weights before it.
            restore(model, plan.update, saved)
            result = [0.0, 0]
            for step in range(first, last):
                saved = snapshot(model)
                one = _run(model, plan, data, rates, step, step + 1, threads)
                if one[3] != _train.STATUS_OK:
                    restore(model, plan.update, saved)
                    _raise_nonfinite(model, one[3], epoch, step)
                result[0] += one[0]
                result[1] += one[1]
        loss_sum += result[0]
        correct += result[1]
        rows = len(data.rows(first, last))
        track_running_loss(model, result[0] / rows, last - first)
        for hook in hooks:
            hook.on_progress(last, n_steps)
    return loss_sum, correct


def _run(model, plan, data, rates, first, last, threads):
    """Steps first..last-1 of the epoch in one compiled call."""
    try:
        return plan.run(data.X, data.targets, data.labels, data.rows(first, last),
                        rates[first:last], model.rng, threads, data.sample_weight)
    finally:
        # Also when Ctrl-C interrupts the call: the steps before it are
        # complete, and the optimizer counts them.
        model.optimizer.t_ = plan.update.steps


def fused_sgd_decay(model):
    """Plain SGD with at most an L2 term can ride on the weight-gradient products.

    Returns the weight decay to fold in with the L2 coefficient, or None when
    the update is not of that kind (momentum, L1, clipping, noise) or a
    weight is not a dense layer's.
    """
    optimizer = model.optimizer
    if (optimizer.name == "sgd" and optimizer.momentum == 0 and model._weights_are_dense
            and optimizer.n_decay_ in (model.n_weights_, model.n_trainable_)
            and model.l1 == 0 and model.clip_norm is None and model.clip_value is None
            and model.gradient_noise is None):
        return optimizer.weight_decay
    return None


def shuffled_order(model, n, shuffle):
    return model.rng.permutation(n) if shuffle else np.arange(n)


def check_batch_rows(model, batch_size, n):
    """Refuse a batch size that leaves a layer too few rows in some batch."""
    smallest = min(batch_size, n % batch_size or batch_size)
    for layer in model.layers:
        if smallest < getattr(layer, "min_batch_rows", 1):
            raise ValueError(f"{layer.min_batch_rows_reason}: choose a batch_size other "
                             f"than {batch_size} for {n} samples")


def check_validation(model, validation_data):
    """``validation_data`` as checked arrays, or None; errors say it is the validation set."""
    if validation_data is None:
        return None
    try:
        X_val, y_val = validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a pair (X_val, y_val)") from None
    try:
        X_val = check_features(X_val, model.dtype, model.n_features_)
        model._targets(y_val, X_val.shape[0])
    except (TypeError, ValueError) as error:
        raise type(error)(f"validation_data: {error}") from None
    return X_val, y_val


def make_hooks(model, callbacks, verbose, epochs, with_validation):
    """The user's callbacks, then the history (which so records what they add to
    the logs), then the progress bar; the history is the second value."""
    callbacks = callbacks_.check_callbacks(callbacks)
    if model.regression:
        train_scores, val_scores = (), ("loss", "mae", "r2")
    else:
        train_scores, val_scores = ("accuracy",), ("loss", "accuracy")
    model.metric_names_ = ("loss", "lr") + train_scores + (
        tuple(f"val_{name}" for name in val_scores) if with_validation else ())
    model.optimizer.lr.check_metrics(model.metric_names_)
    history = callbacks_.History()
    hooks = [*callbacks, history]
    if verbose:
        hooks.append(callbacks_.ProgressBar(epochs))
    return hooks, history


def check_sample_weight(sample_weight, n):
    """``sample_weight`` as a float64 vector of n finite weights >= 0, or None."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight)
    if weights.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold real numbers, got dtype {weights.dtype}")
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(f"sample_weight must have one weight per sample ({n}), "
                         f"got shape {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("sample_weight must be finite and >= 0")
    if not weights.any():
        raise ValueError("sample_weight is zero for every sample: nothing would be learned")
    return weights


def run_epochs(model, plan, update, X, labels, targets, sample_weight, epochs, batch_size,
               shuffle, validation, hooks, augment=None):
    """The epochs of one fit: order, rates, the epoch on its path, metrics, callbacks."""
    model.stop_training = False
    model.running_loss_ = None
    for hook in hooks:
        hook.on_train_begin(model)
    n = X.shape[0]
    n_steps = -(-n // batch_size)
    for epoch in range(epochs):
        for hook in hooks:
            hook.on_epoch_begin(epoch)
        order = shuffled_order(model, n, shuffle)
        # The optimizer counts epochs and steps across fits, so schedules continue.
        rates = model.optimizer.learning_rates(model.optimizer.epoch_,
                                               model.optimizer.t_ + 1, n_steps)
        data = EpochRows(model, X, labels, targets, sample_weight, order, batch_size, augment)
        if plan is not None:
            loss_sum, correct = compiled_epoch(model, plan, data, rates, epoch, hooks)
        else:
            loss_sum, correct = layer_epoch(model, update, data, rates, epoch, hooks)
        logs = {"loss": loss_sum / n}
        if not model.regression:
            logs["accuracy"] = correct / n
        logs["lr"] = float(rates[0])
        if validation is not None:
            logs.update({f"val_{key}": value
                         for key, value in model.evaluate(*validation).items()})
        model.optimizer.on_epoch_end(model.optimizer.epoch_, logs)
        for hook in hooks:
            hook.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for hook in hooks:
        hook.on_train_end()


def split_validation(model, X, y, sample_weight, validation_data, fraction):
    """The last ``fraction`` of the samples held out as validation data (Keras's rule)."""
    fraction = Real(0, 1, open_max=True)("validation_split", fraction)
    if fraction == 0:
        return X, y, sample_weight, validation_data
    if validation_data is not None:
        raise ValueError("give validation_data or validation_split, not both")
    n = len(X)
    held = int(n * fraction)
    if held == 0 or held == n:
        raise ValueError(f"validation_split={fraction} of {n} samples leaves "
                         f"{'no validation' if held == 0 else 'no training'} samples")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight)[:n - held]
    return X[:n - held], y[:n - held], sample_weight, (X[n - held:], y[n - held:])


def fit(model, X, y, epochs, batch_size, shuffle, validation_data, callbacks, verbose,
        compiled, sample_weight, validation_split, augment):
    """``Sequential.fit``: its arguments checked, the update step and the plan made,
    the epochs run."""
    if not model.built:
        # The width of a checked X (a wrong X must not fix the model's width).
        model.build(check_features(X, model.dtype, None).shape[1])
    if _layout.trainable_changed(model):
        _layout.relay(model)
    X, y, sample_weight, validation_data = split_validation(
        model, X, y, sample_weight, validation_data, validation_split)
    X = check_features(X, model.dtype, model.n_features_)
    labels, targets = model._targets(y, X.shape[0])
    model._trained_on_labels = labels is not None
    sample_weight = check_sample_weight(sample_weight, X.shape[0])
    epochs = check_positive_int("epochs", epochs)
    batch_size = min(check_positive_int("batch_size", batch_size), X.shape[0])
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if compiled not in (None, True, False):
        raise TypeError(f"compiled must be None, True or False, got {compiled!r}")
    check_batch_rows(model, batch_size, X.shape[0])
    augment = _augment.check_augment(augment, model.n_features_)
    validation = check_validation(model, validation_data)
    hooks, history = make_hooks(model, callbacks, verbose, epochs,
                                          validation is not None)
    update = _update.UpdateStep(
        model.params_, model.grads_, model.optimizer, model.n_weights_,
        model.l2 / X.shape[0], model.l1 / X.shape[0], model.clip_value or 0.0,
        model.clip_norm or 0.0, model.gradient_noise or (0.0, 0.0), model.n_trainable_)
    plan = None if compiled is False else _plan.build_plan(
        model, model._loss_layers, batch_size, update, fused_sgd_decay(model))
    if compiled and plan is None:
        raise ValueError("a layer of this network has no compiled form; use compiled=False")

    run_epochs(model, plan, update, X, labels, targets, sample_weight, epochs,
                         batch_size, shuffle, validation, hooks, augment)
    model.history_ = history
    return history
