"""The flat buffers of a model and every layer's views into them.

Parameters, their gradients and the non-trainable buffers each live in one
contiguous array per model; a layer's arrays are views into them.  Weights
(the parameters weight decay and penalties apply to) come first, so that
those apply to one leading slice.
"""

import math
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
    """Allocate the flat buffers and point every layer's views into them."""
    from fastnn.layers import Dense

    specs = [(layer, spec) for layer in model.layers for spec in layer.param_specs()]
    layout = [item for item in specs if item[1].decay] + [item for item in specs if not item[1].decay]
    sizes = [math.prod(spec.shape) for _, spec in layout]
    model.params_ = np.zeros(sum(sizes), dtype=model.dtype)
    model.grads_ = np.zeros(sum(sizes), dtype=model.dtype)
    model.n_weights_ = sum(size for (_, spec), size in zip(layout, sizes) if spec.decay)
    model._weights_are_dense = all(isinstance(layer, Dense) for layer, spec in specs
                                  if spec.decay)
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
        views[id(layer)][2][name][...] = value
        model._offsets[id(layer), name] = offset
        offset += size
    for layer in model.layers:
        layer._attach(*views[id(layer)])
    # Initialize in network order, not buffer order, so that a layer's
    # draws do not depend on the layers after it.
    for layer, spec in specs:
        layer.params[spec.name][...] = spec.init(model.rng, spec.shape, spec.fan_in,
                                                 spec.fan_out)
