"""Learning curves: plot a training history, keep it as CSV, smooth a running loss.

``plot_history(history, path)`` draws the loss and accuracy (training and
validation), the learning rate, and — when the history holds them, as
``fastnn.diagnostics.LearningSpeed`` records them — the per-layer speeds of
learning ‖∂C/∂b^l‖ on a log scale.  ``history_to_csv`` and
``history_from_csv`` write and read a history as one row per epoch.
``smoothed`` is the exponential running estimate of the loss a progress bar
can show while an epoch is under way.

Matplotlib is an optional dependency (``pip install "fastnn[plot]"``); the
figures are drawn with its non-interactive Agg backend.
"""

import csv
import math
import numbers

import numpy as np

from fastnn._files import atomic_write

#: what to tell someone without matplotlib
INSTALL_HINT = 'figures need matplotlib: pip install "fastnn[plot]"'

#: history keys holding one list of per-layer values per epoch
PER_LAYER_KEYS = ("speed_b", "speed_W")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi=80):
    """Write a figure as a compact PNG (256-colour palette) and close it; returns ``path``."""
    import io

    from PIL import Image  # a dependency of matplotlib

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)
    return str(path)


def have_matplotlib():
    """Whether figures can be drawn."""
    try:
        pyplot()
    except ImportError:
        return False
    return True


def _history_dict(history):
    """The ``{key: [value per epoch]}`` of a ``History`` or of a plain dict."""
    data = getattr(history, "history", history)
    if not isinstance(data, dict):
        raise TypeError(f"history must be a fastnn History or a dict, got {type(history).__name__}")
    lengths = {len(values) for values in data.values()}
    if len(lengths) > 1:
        raise ValueError(f"history columns differ in length: "
                         f"{ {key: len(values) for key, values in data.items()} }")
    return data


# ------------------------------------------------------------------ CSV


def history_to_csv(history, path):
    """Write a history as CSV: a header ``epoch,<key>,…`` and one row per epoch.

    The ``epoch`` column is the history's own ``"epoch"`` entry when it has
    one (as ``LearningSpeed.history``, whose epoch 0 is the network before
    training) and 1, 2, … otherwise (a ``History`` records epochs from the
    first).  A per-layer key (a list per epoch, such as ``speed_b``) becomes
    one column per layer, ``speed_b[0]``, ``speed_b[1]``, …; a missing value
    (``None``) becomes an empty field.  Floats are written with ``repr``, so
    reading the file back gives the same numbers bit for bit.
    """
    data = _history_dict(history)
    n_epochs = len(next(iter(data.values()), []))
    epochs = data.get("epoch", range(1, n_epochs + 1))
    columns, getters = [], []
    for key, values in data.items():
        if key == "epoch":
            continue
        if any(isinstance(v, (list, tuple, np.ndarray)) for v in values):
            width = max(len(v) for v in values if v is not None)
            for k in range(width):
                columns.append(f"{key}[{k}]")
                getters.append((key, k))
        else:
            columns.append(key)
            getters.append((key, None))
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *columns])
        for row_index, epoch in enumerate(epochs):
            row = [int(epoch)]
            for key, k in getters:
                value = data[key][row_index]
                if k is not None and value is not None:
                    value = value[k] if k < len(value) else None
                row.append("" if value is None else repr(float(value)))
            writer.writerow(row)


def history_from_csv(path):
    """Read a CSV written by :func:`history_to_csv` into ``{key: [value per epoch]}``.

    The result has the ``"epoch"`` column as integers, the other columns as
    floats (``None`` for empty fields), and per-layer columns gathered back
    into one list per epoch.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["epoch"]:
        raise ValueError(f"{path} is not a history CSV (its header must start with 'epoch')")
    header, body = rows[0][1:], rows[1:]
    history = {"epoch": [int(row[0]) for row in body]}
    for column, name in enumerate(header, start=1):
        values = [float(row[column]) if row[column] != "" else None for row in body]
        if name.endswith("]") and "[" in name:
            key = name[:name.rindex("[")]
            layers = history.setdefault(key, [[] for _ in body])
            for per_epoch, value in zip(layers, values):
                per_epoch.append(value)
        else:
            history[name] = values
    return history


# ------------------------------------------------------- running loss


def smoothed(previous, loss, weight=0.05):
    """One step of the running loss estimate  Q ← (1 − λ)·Q + λ·L_i.

    Parameters
    ----------
    previous : float or None
        The estimate so far; None before the first batch (or a non-finite
        estimate), in which case the estimate starts over at ``loss``.
    loss : float
        The latest batch loss L_i.
    weight : float
        λ in (0, 1]: the weight of the newest loss (about 1/λ batches are
        remembered).

    Returns
    -------
    float
    """
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not 0 < weight <= 1:
        raise ValueError(f"weight must be a number in (0, 1], got {weight!r}")
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
        raise TypeError(f"loss must be a real number, got {loss!r}")
    if previous is None or not math.isfinite(previous):
        return float(loss)
    return (1.0 - weight) * float(previous) + weight * float(loss)


# --------------------------------------------------------------- figure


def plot_history(history, path, speed=None, title=None):
    """Draw the learning curves of a history into ``path`` (PNG).

    Panels: loss (training and, if present, validation); accuracy (the
    same); the learning rate; and, when recorded, ‖∂C/∂b^l‖ and ‖∂C/∂W^l‖
    per layer on a log scale (Nielsen's speed of learning).

    Parameters
    ----------
    history : History or dict
        As returned by ``fit`` or read by :func:`history_from_csv`.
    path : str or path
    speed : LearningSpeed or dict, optional
        Per-layer speeds with their own ``"epoch"`` axis (entry 0 before
        training); by default those in ``history``, if any.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    data = _history_dict(history)
    if speed is not None:
        speed = _history_dict(speed)
    elif any(key in data for key in PER_LAYER_KEYS):
        speed = data
    plt = pyplot()
    panels = [("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")),
              ("learning rate", ("lr",))]
    panels = [(name, [k for k in keys if k in data]) for name, keys in panels]
    panels = [(name, keys) for name, keys in panels if keys]
    speed_keys = [key for key in PER_LAYER_KEYS if speed is not None and key in speed]
    n_panels = len(panels) + len(speed_keys)
    if n_panels == 0:
        raise ValueError("the history holds none of loss, accuracy, lr, speed_b, speed_W")
    figure, axes = plt.subplots(1, n_panels, figsize=(3.6 * n_panels, 3.2), squeeze=False)
    axes = axes[0]
    for ax, (name, keys) in zip(axes, panels):
        for key in keys:
            values = [np.nan if v is None else v for v in data[key]]
            epochs = data.get("epoch", range(1, len(values) + 1))
            ax.plot(list(epochs), values, marker=".",
                    label="validation" if key.startswith("val_") else "training")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if len(keys) > 1:
            ax.legend()
    for ax, key in zip(axes[len(panels):], speed_keys):
        per_layer = np.array([[np.nan if v is None else v for v in row] for row in speed[key]])
        epochs = list(speed.get("epoch", range(1, per_layer.shape[0] + 1)))
        for layer in range(per_layer.shape[1]):
            ax.semilogy(epochs, per_layer[:, layer], marker=".", label=f"layer {layer + 1}")
        symbol = "b" if key == "speed_b" else "W"
        ax.set_title(rf"$\|\partial C/\partial {symbol}^l\|$ per layer")
        ax.set_xlabel("epoch (0: before training)" if 0 in epochs else "epoch")
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path, dpi=90)
