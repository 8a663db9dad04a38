"""The compiled plan of a network: its layers' op records over one workspace.

``build_plan`` asks every layer of the network, in order, for its op records
(``Layer.compile``) and lays them out over a workspace of activation and
delta buffers sized for one batch; ``fastnn_ext.train.EpochPlan`` checks the
records and runs whole epochs of them.  ``build_inference_plan`` hands the
same records to ``fastnn_ext.infer.InferencePlan``, which runs them forward
in evaluation mode.  Nothing here knows a layer by name:
the layers say what they need, this module only places it.
"""

import numpy as np

from fastnn_ext import activations as _act
from fastnn_ext import infer as _infer
from fastnn_ext import train as _train


class PlanBuilder:
    """Collects op records for one network and batch size.

    Layers call :meth:`add`; :attr:`rows` (the batch size) sizes what they
    save, and :attr:`next_layer` lets one op cover two layers.
    :attr:`first_backward` is the first op of a layer with trainable
    parameters (None before it is added): the backward pass starts there.
    """

    def __init__(self, model, rows):
        self.model = model
        self.rows = rows
        self.next_layer = None
        self._records, self._kernels, self._activations = [], [], []
        self._end = rows * model.n_features_   # the gathered batch comes first
        self._seen_params = False
        self.first_backward = None

    def _slice(self, layer, name):
        """(offset, size) of a layer's parameter or buffer, (-1, 0) for none."""
        if name is None:
            return -1, 0
        array = layer.params.get(name)
        if array is None:
            array = layer.buffers[name]
        return self.model._offsets[id(layer), name], array.size

    def _allocate(self, size):
        start, self._end = self._end, self._end + size
        return start

    def add(self, layer, kernels, in_size, out_size, *, activation=_act.IDENTITY, alpha=0.0,
            rate=0.0, momentum=0.0, eps=0.0, saved_size=0, weight=None, bias=None,
            state=None, state_size=None):
        """Append one op reading the previous op's output.

        ``weight``, ``bias`` and ``state`` name the layer's parameter and
        buffer arrays the op uses (``state_size`` may extend the state slice
        over the layer's following buffers); ``saved_size`` elements of
        workspace are reserved for what its backward needs.
        """
        record = np.zeros((), dtype=_train.OP_RECORD)
        record["in_size"], record["out_size"] = in_size, out_size
        record["input"] = self._records[-1]["output"] if self._records else 0
        record["output"] = self._allocate(self.rows * out_size)
        record["saved_size"] = saved_size
        record["saved"] = self._allocate(saved_size) if saved_size else -1
        record["weight"], record["weight_size"] = self._slice(layer, weight)
        record["bias"], record["bias_size"] = self._slice(layer, bias)
        record["state"], record["state_size"] = self._slice(layer, state)
        if state_size is not None:
            record["state_size"] = state_size
        record["need_grad_in"] = self._seen_params
        record["alpha"], record["rate"] = alpha, rate
        record["momentum"], record["eps"] = momentum, eps
        if not self._seen_params and layer.param_specs() and layer.trainable:
            # The first op the backward pass runs: nothing before it is trained.
            self._seen_params = True
            self.first_backward = len(self._records)
        self._records.append(record)
        self._kernels.append(kernels)
        self._activations.append(activation)

    def records(self, layers):
        """Compile ``layers`` in order; None when one of them has no compiled form."""
        i = 0
        while i < len(layers):
            if not layers[i].compiled:
                return None
            self.next_layer = layers[i + 1] if i + 1 < len(layers) else None
            i += layers[i].compile(self)
        return np.array(self._records, dtype=_train.OP_RECORD), self._kernels, self._activations


def build_plan(model, layers, rows, update, fused_sgd=None):
    """The ``EpochPlan`` of ``layers`` for batches of ``rows`` rows, or None.

    None when a layer has no compiled form (the model then trains layer by
    layer).  ``update`` is the model's ``UpdateStep``.
    """
    builder = PlanBuilder(model, rows)
    compiled = builder.records(layers)
    if compiled is None:
        return None
    records, kernels, activations = compiled
    return _train.EpochPlan(records, kernels, activations, model.buffers_, rows, model.loss,
                            update, fused_sgd, builder.first_backward or 0)


def build_inference_plan(model, layers):
    """The ``InferencePlan`` of ``layers`` (evaluation mode), or None.

    None when a layer has no compiled form (the model then predicts layer by
    layer).  The plan reads the model's current parameters at every call.
    """
    compiled = PlanBuilder(model, 1).records(layers)
    if compiled is None:
        return None
    records, kernels, activations = compiled
    return _infer.InferencePlan(records, kernels, activations, model.params_, model.buffers_)
