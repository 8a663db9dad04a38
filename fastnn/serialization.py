"""Weight files: parameters and non-trainable buffers, with what they belong to.

A weights file is an ``.npz`` archive (no pickled objects) holding
``params``, ``buffers`` (batch-norm running statistics) and ``header``, a
JSON text naming the fastnn version, the dtype and every layer's kind and
parameter and buffer shapes.  ``load_weights`` compares the header with the
network before touching it and names the first difference.  It also reads
the weights of a model file (``fastnn.model_file``), whose header describes
the layers the same way.
"""

import json
import zipfile
import warnings

import numpy as np

from fastnn._files import atomic_write
from fastnn._validation import as_finite

FORMAT = "fastnn-weights"
FORMAT_VERSION = 1


def describe(model):
    """The header of ``model``'s weights: kinds and shapes, layer by layer."""
    from fastnn import __version__

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fastnn": __version__,
        "dtype": np.dtype(model.dtype).name,
        "layers": [{"kind": type(layer).__name__,
                    "params": {name: list(a.shape) for name, a in layer.params.items()},
                    "buffers": {name: list(a.shape) for name, a in layer.buffers.items()}}
                   for layer in model.layers],
    }


def save_weights(model, path):
    """Write ``model``'s parameters and buffers to ``path`` atomically."""
    header = json.dumps(describe(model))
    with atomic_write(path) as f:
        np.savez(f, header=np.array(header), params=model.params_, buffers=model.buffers_)


def read(path, what="weights"):
    """Every array of the ``.npz`` file ``path``, by name; a damaged file is a ValueError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{path} is not a readable fastnn {what} file ({error})") from None


def first_difference(saved, wanted):
    """How the layers of header ``saved`` differ from those of ``wanted``, or None."""
    for i, (a, b) in enumerate(zip(saved["layers"], wanted["layers"])):
        for key in ("kind", "params", "buffers"):
            if a.get(key) != b.get(key):
                return (f"layer {i} is {a.get('kind')} with {key} {a.get(key)} in the file, "
                        f"{b.get('kind')} with {b.get(key)} in the network")
    if len(saved["layers"]) != len(wanted["layers"]):
        return (f"it holds {len(saved['layers'])} layers, the network has "
                f"{len(wanted['layers'])}")
    return None


def load_weights(model, path):
    """Read weights saved by ``save_weights`` into ``model``, or raise ValueError."""
    from fastnn import model_file

    data = read(path)
    params = data.get("params")
    if params is None or params.ndim != 1 or params.dtype.kind != "f":
        raise ValueError(f"{path} holds no parameter array")
    if "header" in data:
        try:
            header = json.loads(str(data["header"]))
        except json.JSONDecodeError:
            raise ValueError(f"{path} has a damaged header") from None
        versions = {FORMAT: FORMAT_VERSION, model_file.FORMAT: model_file.FORMAT_VERSION}
        if header.get("format") not in versions:
            raise ValueError(f"{path} is not a fastnn weights file")
        if header.get("format_version", 0) > versions[header["format"]]:
            raise ValueError(f"{path} was written by a newer fastnn ({header.get('fastnn')}); "
                             "upgrade fastnn to read it")
        difference = first_difference(header, describe(model))
        if difference is not None:
            raise ValueError(f"{path} belongs to another network: {difference}")
        buffers = data.get("buffers", np.zeros(0))
    else:
        warnings.warn(f"{path} carries no architecture (an older weights file): it is "
                      "loaded by parameter count alone", UserWarning, stacklevel=3)
        buffers = None
    if params.shape != model.params_.shape:
        raise ValueError(f"{path} holds {params.size} parameters, the network has "
                         f"{model.params_.size}")
    if buffers is not None and buffers.shape != model.buffers_.shape:
        raise ValueError(f"{path} holds {buffers.size} buffer values, the network has "
                         f"{model.buffers_.size}")
    params = as_finite(f"the parameters in {path}", params, model.dtype)
    if buffers is not None:
        buffers = as_finite(f"the buffers in {path}", buffers, model.dtype)
    model.params_[...] = params
    if buffers is not None:
        model.buffers_[...] = buffers
