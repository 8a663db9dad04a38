"""Predictions through the network's compiled inference plan.

A model whose layers all have a compiled form predicts through one
``fastnn_ext.infer.InferencePlan`` per list of layers it runs — its whole
network for ``predict_proba``, the network without its output layer for
``evaluate``'s loss — built on first use and kept for the model's life (the
architecture and the dtype never change after the model is built; the plan
reads the current parameters at every call).  Other models return None here
and predict layer by layer.

An array that already is what the plan takes — the model's dtype,
C-contiguous, one row or a 2-D batch of the right width — is checked in
O(1) and for finiteness inside the compiled call; anything else, and an
array that is not finite, goes through ``check_features``, which converts
it or raises.  The errors are the same either way.
"""

import weakref

import numpy as np

from fastnn import _threads
from fastnn import backprop as _backprop
from fastnn import losses as _losses
from fastnn._validation import check_features
from fastnn.plan import build_inference_plan
from fastnn_ext import losses as _loss_kernels

# id(model) → {number of leading layers: InferencePlan or None}.  Outside
# the model, so that the plans never reach its pickle; an entry leaves with
# its model (weakref.finalize), before its id can name another.  A plain
# dict: a WeakKeyDictionary's lookup took 0.3 of a 1-row prediction's 2.4 µs
# of Python time on a 2-core AMD EPYC, family 26, model 2.
_PLANS = {}
#: rows per forward call of the layer path, and per loss call of evaluate
CHUNK = 4096


def plan_of(model, layers):
    """The inference plan of ``layers`` (a leading part of model.layers), or None."""
    plans = _PLANS.get(id(model))
    if plans is None:
        plans = _PLANS[id(model)] = {}
        weakref.finalize(model, _PLANS.pop, id(model), None)
    key = len(layers)
    plan = plans.get(key, False)
    if plan is False or (plan is not None and (plan.params_array is not model.params_
                                               or plan.buffers_array is not model.buffers_)):
        plan = plans[key] = build_inference_plan(model, layers)
    return plan


def run(plan, model, X):
    """The plan's outputs for checked 2-D rows X, on as many threads as pay
    (``InferencePlan.predict``)."""
    out = plan.predict(X, _threads.openmp_threads())
    if out is None:
        raise AssertionError("the inference plan refused rows that check_features accepts")
    return out


def predict(model, X, layers):
    """Outputs of ``layers`` for X (2-D, or one sample 1-D → one row)."""
    plan = plan_of(model, layers)
    if plan is None:
        X, single = model._features(X)
        out = np.concatenate([model._forward(X[i:i + CHUNK], layers, False)
                              for i in range(0, X.shape[0], CHUNK)])
        return out[0] if single else out
    out = plan.predict(X, _threads.openmp_threads())
    if out is not None:
        return out
    # not an array the plan takes as it is, or not finite: check_features
    # converts it, or raises, naming the problem
    X, single = model._features(X)
    out = run(plan, model, X)
    return out[0] if single else out


def evaluate(model, X, y):
    """Mean loss (without penalty) and accuracy, or for a regression the loss,
    ``mae`` and ``r2``, of ``model`` on (X, y)."""
    X = check_features(X, model.dtype, model.n_features_)
    labels, targets = model._targets(y, X.shape[0])
    regression = model.regression and labels is None
    layers = model._loss_layers
    plan = plan_of(model, layers)
    compiled = None if plan is None else run(plan, model, X)
    total, correct, outputs = 0.0, 0, []
    for i in range(0, X.shape[0], CHUNK):
        out = (compiled[i:i + CHUNK] if compiled is not None
               else model._forward(X[i:i + CHUNK], layers, False))
        batch = _backprop.batch_targets(model, labels, targets, slice(i, i + CHUNK))
        total += _loss_kernels.loss_grad(model.loss.code, out, batch)
        if regression:
            outputs.append(out)
        else:
            correct += _loss_kernels.correct(out, batch, model.loss.threshold)
    if not regression:
        return {"loss": total / X.shape[0], "accuracy": correct / X.shape[0]}
    return {"loss": total / X.shape[0],
            **_losses.regression_scores(np.concatenate(outputs), targets)}
