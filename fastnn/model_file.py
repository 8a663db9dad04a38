"""Model files: a whole network and its training state in one ``.npz``.

A model file holds everything needed to rebuild a ``Sequential`` in another
process and to continue its training exactly where it stopped: the same
predictions bit for bit, and a ``fit`` that gives the weights, statistics,
optimizer state and history an uninterrupted run would have given.

It is an ``.npz`` archive without pickled objects, read with
``allow_pickle=False``, of four arrays:

=====================  ===================================================
``header``             JSON text, below
``params``             the flat parameters (``model.params_``)
``buffers``            the flat non-trainable state (``model.buffers_``)
``optimizer_state``    the optimizer's moments, (n_slots, n_params)
=====================  ===================================================

The header names ``format`` ("fastnn-model"), ``format_version``, the
``fastnn`` version and ``dtype``; ``layers``, one entry per layer with its
``kind`` (class name, a key of ``fastnn.layers.LAYERS``), its ``config``
(constructor arguments) and its parameter and buffer shapes; ``model``, the
other arguments of ``Sequential`` (``loss`` by name, ``seed``, ``l2``,
``l1``, ``clip_norm``, ``clip_value``, ``gradient_noise``); ``optimizer``,
its ``kind`` (a key of ``fastnn.optimizers.OPTIMIZERS``), ``config``,
step count ``t`` and epoch count ``epoch``, its ``lr`` being a schedule
entry (``kind`` in ``fastnn.schedules.SCHEDULES``, ``config``, and the
``state`` training changed); ``rng``, the full state of the model's bit
generator; ``history``, the metrics per epoch of the training that led
here; and ``trained_on_labels``.  The ``layers`` entries and the ``params``
and ``buffers`` arrays are those of a weights file
(``fastnn.serialization``), so ``load_weights`` reads a model file too.
"""

import json
import numbers

import numpy as np

from fastnn import serialization
from fastnn._files import atomic_write
from fastnn._validation import all_finite, as_finite
from fastnn.callbacks import History
from fastnn.layers import LAYERS
from fastnn.losses import LOSSES
from fastnn.optimizers import OPTIMIZERS
from fastnn.schedules import SCHEDULES

FORMAT = "fastnn-model"
FORMAT_VERSION = 1
#: the arrays of a model file besides its header
ARRAYS = ("params", "buffers", "optimizer_state")


# ------------------------------------------------------------------ saving

def _registered(what, table, key, obj):
    """``key``, after checking that it names ``obj``'s class in ``table``."""
    if table.get(key) is not type(obj):
        raise ValueError(f"{what} {type(obj).__name__} is not a registered class (known: "
                         f"{sorted(table)}), so a model file could not rebuild it; "
                         "save_weights keeps the weights of any network")
    return key


def _schedule_entry(schedule):
    return {"kind": _registered("the schedule", SCHEDULES, type(schedule).__name__, schedule),
            "config": schedule.get_config(), "state": schedule.get_state()}


def _history(history):
    """The history's metrics as lists of floats (None where an epoch had no value)."""
    records = {}
    for key, values in history.history.items():
        if not all(value is None or (isinstance(value, numbers.Real)
                                     and not isinstance(value, bool)) for value in values):
            raise ValueError(f"the history's {key!r} holds values other than numbers; a "
                             "model file keeps numeric metrics only")
        records[str(key)] = [None if value is None else float(value) for value in values]
    return records


def describe(model, history=None):
    """The header of ``model``'s model file, as a dict (see the module's description).

    Parameters
    ----------
    model : Sequential
    history : History, optional
        The metrics to record; ``model.history_`` (if the model was trained)
        when omitted.

    Raises
    ------
    ValueError
        If the model is not built yet, a layer, the loss, the optimizer or
        its schedule is not of a registered class, a dense layer has an initializer of the user's own,
        or the history holds values other than numbers.
    """
    from fastnn import __version__

    if not model.built:  # a network whose input width is not known yet
        raise ValueError("the model has no weights to save until it is built (by fit)")
    header = serialization.describe(model)
    header.update(format=FORMAT, format_version=FORMAT_VERSION, fastnn=__version__)
    for i, (layer, entry) in enumerate(zip(model.layers, header["layers"])):
        _registered(f"layer {i},", LAYERS, entry["kind"], layer)
        entry["config"] = layer.get_config()
        entry["trainable"] = bool(layer.trainable)
    optimizer = model.optimizer
    config = optimizer.get_config()
    config["lr"] = _schedule_entry(config["lr"])
    header["model"] = {
        "loss": _registered("the loss", LOSSES, model.loss.name, model.loss),
        # A seed that is not a number (a SeedSequence) cannot be written; it
        # only decided the initial weights and draws, which the file replaces.
        "seed": int(model.seed) if isinstance(model.seed, numbers.Integral) else None,
        "l2": model.l2, "l1": model.l1, "clip_norm": model.clip_norm,
        "clip_value": model.clip_value,
        "gradient_noise": None if model.gradient_noise is None else list(model.gradient_noise)}
    header["optimizer"] = {"kind": _registered("the optimizer", OPTIMIZERS, optimizer.name,
                                               optimizer),
                           "config": config, "t": optimizer.t_, "epoch": optimizer.epoch_}
    header["rng"] = model.rng.bit_generator.state
    history = getattr(model, "history_", None) if history is None else history
    header["history"] = None if history is None else _history(history)
    trained_on_labels = getattr(model, "_trained_on_labels", None)
    header["trained_on_labels"] = None if trained_on_labels is None else bool(trained_on_labels)
    return header


def save(model, path, history=None):
    """Write ``model`` whole — architecture, weights, training state — to ``path``.

    The file is written beside ``path`` and renamed over it when complete,
    so a failing write leaves the previous file as it was.

    Parameters
    ----------
    model : Sequential
    path : str or path-like
        The ``.npz`` file to write.
    history : History, optional
        The metrics to record instead of ``model.history_``.

    Raises
    ------
    ValueError
        If the model cannot be described (see :func:`describe`), or its
        parameters, buffers or optimizer state hold NaN or ±∞: such a file
        could not be loaded again.
    """
    try:
        header = json.dumps(describe(model, history))
    except TypeError as error:  # a bit generator whose state is not plain numbers
        raise ValueError(f"the model's random generator cannot be written to a model file "
                         f"({error})") from None
    arrays = dict(zip(ARRAYS, (model.params_, model.buffers_, model.optimizer.state_)))
    for name, array in arrays.items():
        if not all_finite(array):
            raise ValueError(f"the model's {name} hold NaN or infinite values; {path} was "
                             "not written")
    with atomic_write(path) as f:
        np.savez(f, header=np.array(header), **arrays)


# ----------------------------------------------------------------- loading

def _field(record, key, types, where=""):
    """``record[key]``, checked to be one of ``types`` (a bool is no number here)."""
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"its header lacks {where}{key}")
    value = record[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ValueError(f"its header's {where}{key} is {value!r}")
    return value


def _build(what, table, entry, **replaced):
    """An object of the class ``entry["kind"]`` of ``table``, from ``entry["config"]``."""
    kind = _field(entry, "kind", str, f"{what}'s ")
    if kind not in table:
        raise ValueError(f"{what} is of the unknown kind {kind!r} (known: {sorted(table)})")
    config = {**_field(entry, "config", dict, f"{what}'s "), **replaced}
    try:
        return table[kind](**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} ({kind}) cannot be built from its config: {error}") from None


def _optimizer(entry):
    config = _field(entry, "config", dict, "optimizer's ")
    schedule_entry = _field(config, "lr", dict, "optimizer's ")
    schedule = _build("the schedule", SCHEDULES, schedule_entry)
    try:
        schedule.set_state(_field(schedule_entry, "state", dict, "schedule's "))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the schedule's state is damaged: {error}") from None
    return _build("the optimizer", OPTIMIZERS, entry, lr=schedule)


def _model(header):
    """The Sequential the header describes, with fresh weights and state."""
    from fastnn.model import Sequential

    layers = []
    for i, entry in enumerate(_field(header, "layers", list)):
        layers.append(_build(f"layer {i}", LAYERS, entry))
        # Frozen layers lay the flat buffers out differently: set before building.
        layers[-1].trainable = _field(entry, "trainable", (bool,), f"layer {i}'s ") \
            if "trainable" in entry else True
    spec = _field(header, "model", dict)
    options = {key: spec.get(key) for key in ("seed", "l2", "l1", "clip_norm", "clip_value",
                                              "gradient_noise")}
    try:
        return Sequential(layers, loss=_field(spec, "loss", str, "model's "),
                          optimizer=_optimizer(_field(header, "optimizer", dict)),
                          dtype=_field(header, "dtype", str), **options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"its network cannot be built: {error}") from None


def _restore(model, header, arrays):
    """Write the file's arrays and training state into the freshly built ``model``."""
    difference = serialization.first_difference(header, serialization.describe(model))
    if difference is not None:
        raise ValueError(f"its header disagrees with the network it describes: {difference}")
    optimizer = model.optimizer
    shapes = {"params": model.params_.shape, "buffers": model.buffers_.shape,
              "optimizer_state": optimizer.state_.shape}
    checked = {}
    for name, shape in shapes.items():
        if name not in arrays:
            raise ValueError(f"it holds no {name} array")
        if arrays[name].shape != shape:
            raise ValueError(f"its {name} have shape {arrays[name].shape}, the network it "
                             f"describes needs {shape}")
        if arrays[name].dtype.kind != "f":
            raise ValueError(f"its {name} are not floating-point numbers "
                             f"(dtype {arrays[name].dtype})")
        checked[name] = as_finite(f"its {name}", arrays[name], model.dtype)
    entry = header["optimizer"]
    t, epoch = _field(entry, "t", int, "optimizer's "), _field(entry, "epoch", int,
                                                              "optimizer's ")
    if t < 0 or epoch < 0:
        raise ValueError(f"its optimizer counts {t} steps and {epoch} epochs")
    history = header.get("history")
    if history is not None and not (isinstance(history, dict) and all(
            isinstance(values, list) for values in history.values())):
        raise ValueError("its history is damaged")
    labels = header.get("trained_on_labels")
    if labels not in (None, True, False):
        raise ValueError(f"its header's trained_on_labels is {labels!r}")
    try:
        model.rng.bit_generator.state = _field(header, "rng", dict)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"its random generator's state is damaged ({error})") from None
    model.params_[...] = checked["params"]
    model.buffers_[...] = checked["buffers"]
    optimizer.state_[...] = checked["optimizer_state"]
    optimizer.t_, optimizer.epoch_ = t, epoch
    if history is not None:
        model.history_ = History()
        model.history_.history = {key: list(values) for key, values in history.items()}
    if labels is not None:
        model._trained_on_labels = labels


def read_header(path, data):
    """The parsed header of a model file's arrays ``data``; other files are refused."""
    weights_only = (f"{path} carries only weights (a file of save_weights); build the "
                    "network the same way and call its load_weights")
    if "header" not in data:
        raise ValueError(weights_only if "params" in data
                         else f"{path} is not a fastnn model file (it has no header)")
    try:
        header = json.loads(str(data["header"]))
    except (json.JSONDecodeError, UnicodeError):
        raise ValueError(f"{path} has a damaged header") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} has a damaged header")
    if header.get("format") == serialization.FORMAT:
        raise ValueError(weights_only)
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fastnn model file")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path} has a damaged header (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} is a model file of format version {version}, written by a "
                         f"newer fastnn ({header.get('fastnn')}); this one reads versions up "
                         f"to {FORMAT_VERSION}: upgrade fastnn to read it")
    return header


def load_model(path):
    """Rebuild the model saved in ``path`` by ``Sequential.save``.

    The result predicts as the saved model did, bit for bit, and its ``fit``
    continues the saved training as if it had never stopped (the optimizer's
    moments and counts, the schedule's position, the random generator).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Sequential

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is damaged, truncated, not a model file (a weights file
        says so), of a newer format version, names an unknown layer,
        optimizer or schedule, or holds arrays whose sizes disagree with its
        architecture or values that are not finite.
    """
    data = serialization.read(path, "model")
    header = read_header(path, data)
    try:
        model = _model(header)
        _restore(model, header, data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return model
