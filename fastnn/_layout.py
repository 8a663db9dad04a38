"""The flat buffers of a model and every layer's views into them.

Parameters, their gradients and the non-trainable buffers each live in one
contiguous array per model; a layer's arrays are views into them.  The
parameters of trainable layers come first — their weights (the parameters
weight decay and penalties apply to), then their other parameters — and the
frozen layers' parameters (``layer.trainable = False``) last, in the same
order::

    params_ = [trainable weights | other trainable | frozen weights | other frozen]
               <-- n_weights_ -->
               <--------- n_trainable_ --------->

so that penalties apply to one leading slice and the update and the
optimizer's state cover one leading block.  Changing what is frozen lays the
buffers out again, keeping every value (``relay``).
"""

import math
import numbers
import weakref

import numpy as np


def owner(obj):
    """The model a layer or optimizer belongs to (None once that model is gone)."""
    ref = getattr(obj, "_owner_ref", None)
    return ref() if ref is not None else None


def take_ownership(obj, model):
    obj._owner_ref = None if model is None else weakref.ref(model)


def check_unshared(layers):
    """Refuse a layer used twice, or one that belongs to another live model.

    A layer's arrays are views into its model's buffers: shared, a second
    model would re-point them and silently change the first one.
    """
    seen = set()
    for layer in layers:
        if id(layer) in seen:
            raise ValueError(f"{layer!r} appears twice in the network; a layer is used "
                             "once (make a second layer for a second use)")
        seen.add(id(layer))
        if owner(layer) is not None:
            raise ValueError(f"{layer!r} already belongs to another Sequential; layers are "
                             "not shared between models (build new layers, or "
                             "copy.deepcopy the other model)")


def lay_out(model):
    """Allocate the flat buffers, point every layer's views into them, draw the parameters."""
    _allocate(model)
    # Initialize in network order, not buffer order, so that a layer's
    # draws do not depend on the layers after it.
    for layer in model.layers:
        layer._initialize(model.rng)


def relay(model):
    """Lay the buffers out again for the layers' current ``trainable`` flags.

    Every parameter and buffer keeps its value; views taken before point into
    the old buffers.  The optimizer is bound again, with fresh state.
    """
    check_trainable(model)
    saved = [(layer, {name: array.copy() for name, array in layer.params.items()},
              {name: array.copy() for name, array in layer.buffers.items()})
             for layer in model.layers]
    _allocate(model)
    for layer, params, buffers in saved:
        for name, array in params.items():
            layer.params[name][...] = array
        for name, array in buffers.items():
            layer.buffers[name][...] = array
    model.optimizer = model.optimizer


def set_trainable(model, selection, trainable):
    """Set ``trainable`` on the selected layers (layer objects or indices), then ``relay``.

    On an error no flag changes.
    """
    if not selection:
        raise ValueError("name at least one layer: a layer of the network or its index")
    layers = [_layer_of(model, item) for item in selection]
    before = [layer.trainable for layer in model.layers]
    for layer in layers:
        layer.trainable = trainable
    try:
        if trainable_changed(model):
            relay(model)
    except (TypeError, ValueError):
        for layer, flag in zip(model.layers, before):
            layer.trainable = flag
        raise


def _layer_of(model, item):
    from fastnn.layers import Layer

    n = len(model.layers)
    if isinstance(item, numbers.Integral) and not isinstance(item, bool):
        if not -n <= item < n:
            raise ValueError(f"layer index {item} is outside the network's {n} layers")
        return model.layers[item]
    if isinstance(item, Layer):
        if not any(layer is item for layer in model.layers):
            raise ValueError(f"{item!r} is not a layer of this network")
        return item
    raise TypeError(f"layers are given as fastnn layers or integer indices, got {item!r}")


class CanonicalView:
    """The model as weight files see it: ``params_`` in the order of the all-trainable layout.

    A file so reads the same whatever is frozen when it is written or read.
    Other attributes are the model's; :meth:`write_back` scatters ``params_``
    into the model's own layout (after a load).
    """

    def __init__(self, model):
        self._model = model
        specs = [(layer, spec) for layer in model.layers for spec in layer.param_specs()]
        canonical = [item for decay in (True, False) for item in specs if item[1].decay == decay]
        self._order = np.concatenate(
            [model._offsets[id(layer), spec.name] + np.arange(math.prod(spec.shape))
             for layer, spec in canonical] or [np.zeros(0, dtype=np.intp)])
        self.params_ = model.params_[self._order]
        self.buffers_ = model.buffers_

    def __getattr__(self, name):
        return getattr(self._model, name)

    def write_back(self):
        self._model.params_[self._order] = self.params_


def check_trainable(model):
    """Refuse a ``trainable`` flag that is not a bool, and a network left with nothing to train."""
    for layer in model.layers:
        if not isinstance(layer.trainable, (bool, np.bool_)):
            raise TypeError(f"{layer!r}.trainable must be True or False, "
                            f"got {layer.trainable!r}")
    if not any(layer.trainable for layer in model.layers if layer.param_specs()):
        raise ValueError("every layer with parameters is frozen: nothing would be trained "
                         "(unfreeze at least one)")


def trainable_changed(model):
    """Whether a ``trainable`` flag changed since the buffers were laid out."""
    return _trainable_key(model) != model._trainable_key


def _trainable_key(model):
    # Only layers with parameters count: freezing a ReLU changes nothing.
    return tuple(bool(layer.trainable) for layer in model.layers if layer.param_specs())


def _allocate(model):
    from fastnn.layers import Dense

    specs = [(layer, spec) for layer in model.layers for spec in layer.param_specs()]
    layout = [item for trainable in (True, False) for decay in (True, False)
              for item in specs if bool(item[0].trainable) == trainable
              and item[1].decay == decay]
    sizes = [math.prod(spec.shape) for _, spec in layout]
    model.params_ = np.zeros(sum(sizes), dtype=model.dtype)
    model.grads_ = np.zeros(sum(sizes), dtype=model.dtype)
    model.n_weights_ = sum(size for (layer, spec), size in zip(layout, sizes)
                           if spec.decay and layer.trainable)
    model.n_trainable_ = sum(size for (layer, _), size in zip(layout, sizes) if layer.trainable)
    model._trainable_key = _trainable_key(model)
    model._weights_are_dense = all(isinstance(layer, Dense) for layer, spec in specs
                                  if spec.decay and layer.trainable)
    # The layer path's backward stops at the first layer with trainable parameters.
    model._first_trainable = next((i for i, layer in enumerate(model._loss_layers)
                                   if layer.param_specs() and layer.trainable),
                                  len(model._loss_layers))
    model._offsets = {}
    views = {id(layer): ({}, {}, {}) for layer in model.layers}
    offset = 0
    for (layer, spec), size in zip(layout, sizes):
        params, grads, _ = views[id(layer)]
        params[spec.name] = model.params_[offset:offset + size].reshape(spec.shape)
        grads[spec.name] = model.grads_[offset:offset + size].reshape(spec.shape)
        model._offsets[id(layer), spec.name] = offset
        offset += size
    buffer_specs = [(layer, spec) for layer in model.layers for spec in layer.buffer_specs()]
    model.buffers_ = np.zeros(sum(math.prod(shape) for _, (_, shape, _) in buffer_specs),
                             dtype=model.dtype)
    offset = 0
    for layer, (name, shape, value) in buffer_specs:
        size = math.prod(shape)
        views[id(layer)][2][name] = model.buffers_[offset:offset + size].reshape(shape)
        model._offsets[id(layer), name] = offset
        offset += size
    for layer in model.layers:
        layer._attach(*views[id(layer)])
