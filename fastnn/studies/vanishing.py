"""The vanishing gradient (Nielsen, *Neural Networks and Deep Learning*, ch. 5).

Nielsen trains sigmoid networks [784, 30, 10], [784, 30, 30, 10],
[784, 30, 30, 30, 10] and [784, 30, 30, 30, 30, 10] on MNIST — weights
N(0, 1/n_in), biases N(0, 1), the cross-entropy cost with a sigmoid output
layer, SGD with η = 0.1, mini-batches of 10, L2 regularization λ = 5 — and
measures each hidden layer's speed of learning ‖∂C/∂b^l‖ on 1,000 training
images.  At initialization the first hidden layer learns several times
more slowly than the last (0.07 against 0.31 with two hidden layers,
about 100 times more slowly than the last with four), and extra depth does
not buy accuracy (96.48, 96.90, 96.57 and 96.53 % on MNIST's validation
images after 30 epochs).

This study repeats the measurement on the data set at hand (Fashion-MNIST
by default), with ``fastnn.diagnostics.LearningSpeed`` recording the speeds
before training and after every epoch, and then swaps the hidden sigmoids
for ReLUs with He initialization (zero biases), and inserts batch
normalization before each hidden sigmoid: in both the layers learn at
comparable speeds.

As in the book, 10,000 of the training images are held out for validation;
accuracies are reported on them and on the test set.
"""

import time

import numpy as np

from fastnn import layers as L
from fastnn.diagnostics import LearningSpeed
from fastnn.model import Sequential
from fastnn.optimizers import SGD

#: hidden layers of the four networks
DEPTHS = (1, 2, 3, 4)
#: Nielsen's MNIST validation accuracies (%) after 30 epochs, by number of hidden layers
BOOK_ACCURACY = {1: 96.48, 2: 96.90, 3: 96.57, 4: 96.53}
#: Nielsen's speeds ‖∂C/∂b^l‖ of the two hidden layers of [784, 30, 30, 10] at initialization
BOOK_SPEEDS_TWO_HIDDEN = (0.07, 0.31)
VARIANTS = {
    "sigmoid": "sigmoid, N(0, 1/n) weights, N(0, 1) biases (Nielsen)",
    "relu": "ReLU, He-normal weights, zero biases",
    "batchnorm": "sigmoid with batch normalization before each hidden sigmoid",
}
HIDDEN_WIDTH = 30
LEARNING_RATE = 0.1
L2 = 5.0
BATCH_SIZE = 10
VALIDATION = 10_000
#: speed measurements per epoch (the first epoch is where the speeds change most)
MEASUREMENTS_PER_EPOCH = 10


def network(depth, variant="sigmoid", n_in=784, n_out=10, width=HIDDEN_WIDTH, seed=0,
            dtype="float32"):
    """The ch. 5 network with ``depth`` hidden layers, in one of the ``VARIANTS``.

    The output layer is always Nielsen's: a dense layer with N(0, 1/n)
    weights and N(0, 1) biases, then a sigmoid, trained with the
    cross-entropy ``"sigmoid_cross_entropy"``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    layers, fan_in = [], n_in
    for _ in range(depth):
        if variant == "relu":
            layers += [L.Dense(fan_in, width, init="he_normal"), L.ReLU()]
        elif variant == "batchnorm":
            layers += [L.Dense(fan_in, width, init="scaled_normal", bias_init="normal"),
                       L.BatchNorm(), L.Sigmoid()]
        else:
            layers += [L.Dense(fan_in, width, init="scaled_normal", bias_init="normal"),
                       L.Sigmoid()]
        fan_in = width
    layers += [L.Dense(fan_in, n_out, init="scaled_normal", bias_init="normal"), L.Sigmoid()]
    return Sequential(layers, loss="sigmoid_cross_entropy", optimizer=SGD(lr=LEARNING_RATE),
                      l2=L2, dtype=dtype, seed=seed)


def split(X, y, validation=VALIDATION):
    """Nielsen's split: the last ``validation`` training images are held out."""
    validation = min(validation, X.shape[0] // 6)
    if validation < 1:
        raise ValueError(f"too few training images ({X.shape[0]}) to hold out validation data")
    return (X[:-validation], y[:-validation]), (X[-validation:], y[-validation:])


def train_one(depth, variant, train, validation, test, epochs, n_out=10, n_sample=1000,
              seed=0):
    """Train one network, recording its speeds; returns a dict of results.

    ``history`` holds the epoch logs (loss, accuracy and their validation
    values, lr), ``speed`` the ``LearningSpeed`` record (entry 0 before
    training).
    """
    (X, y), (X_val, y_val), (X_test, y_test) = train, validation, test
    model = network(depth, variant, n_in=X.shape[1], n_out=n_out, seed=seed)
    speed = LearningSpeed(X, y, n_samples=n_sample, seed=seed, per_epoch=MEASUREMENTS_PER_EPOCH)
    start = time.perf_counter()
    history = model.fit(X, y, epochs=epochs, batch_size=BATCH_SIZE,
                        validation_data=(X_val, y_val), callbacks=[speed])
    seconds = time.perf_counter() - start
    return {
        "depth": depth, "variant": variant, "epochs": epochs,
        "speed": speed.history, "history": history.history,
        "validation_accuracy": history["val_accuracy"][-1],
        "test_accuracy": model.evaluate(X_test, y_test)["accuracy"],
        "seconds": seconds,
    }


def initial_speeds(train, depths=DEPTHS, variants=tuple(VARIANTS), n_out=10, n_sample=1000,
                   seed=0):
    """(‖∂C/∂b^l‖, ‖∂C/∂W^l‖) of every variant and depth at initialization (no training)."""
    X, y = train
    speed = LearningSpeed(X, y, n_samples=n_sample, seed=seed)
    return {(variant, depth): speed.measure(network(depth, variant, n_in=X.shape[1],
                                                    n_out=n_out, seed=seed))
            for variant in variants for depth in depths}


def study(data, epochs=5, quick=False, seed=0, all_depths=False, data_name="Fashion-MNIST"):
    """Run the study on ``data = ((X, y), (X_test, y_test))``.

    Trains the sigmoid networks of every depth and the ReLU and batch-norm
    networks of the deepest (of every depth with ``all_depths``).
    ``quick`` uses at most 2,000 training images, a sample of 200 and one
    epoch.
    """
    (X, y), (X_test, y_test) = data
    n_out = int(max(y.max(), y_test.max())) + 1
    train, validation = split(X, y)
    n_sample = 1000
    if quick:
        train = (train[0][:2000], train[1][:2000])
        validation = (validation[0][:500], validation[1][:500])
        n_sample, epochs = 200, 1
    at_init = initial_speeds(train, n_out=n_out, n_sample=n_sample, seed=seed)
    runs = []
    for variant in VARIANTS:
        depths = DEPTHS if variant == "sigmoid" or all_depths else DEPTHS[-1:]
        for depth in depths:
            runs.append(train_one(depth, variant, train, validation, (X_test, y_test), epochs,
                                  n_out=n_out, n_sample=n_sample, seed=seed))
    return {"initial": at_init, "runs": runs, "epochs": epochs, "data": data_name,
            "n_train": train[0].shape[0], "n_validation": validation[0].shape[0],
            "n_in": X.shape[1], "n_out": n_out,
            "n_sample": n_sample}


def _speeds(values):
    return "  ".join(f"{v:.3g}" for v in values)


def _name(variant, depth, n_in=784, n_out=10):
    return f"{variant} {[n_in] + [HIDDEN_WIDTH] * depth + [n_out]}"


def weight_rms(speed_W, depth, n_in=784, n_out=10, width=HIDDEN_WIDTH):
    """‖∂C/∂W^l‖ / √(size of W^l): the gradient per weight, comparable across layers."""
    widths = [n_in] + [width] * depth + [n_out]
    return [norm / np.sqrt(a * b) for norm, a, b in zip(speed_W, widths[:-1], widths[1:])]


def _ratio(hidden):
    return hidden[0] / hidden[-1] if hidden[-1] else float("nan")


def format_table(results):
    """The speeds at initialization and after training, and accuracy by depth, as text."""
    data, epochs = results["data"], results["epochs"]
    shape = results["n_in"], results["n_out"]
    w = 40
    lines = [f"Speed of learning of the hidden layers (input side first) on {results['n_sample']} "
             f"training images of {data}, at initialization:",
             f"  {'network':<{w}}{'‖∂C/∂b^l‖ (Nielsen)':<40}{'first/last':<12}"
             f"{'RMS of ∂C/∂W^l':<40}first/last"]
    for (variant, depth), (speed_b, speed_W) in results["initial"].items():
        b, rms = speed_b[:-1], weight_rms(speed_W, depth, *shape)[:-1]
        lines.append(f"  {_name(variant, depth, *shape):<{w}}{_speeds(b):<40}"
                     f"{_ratio(b):<12.3g}{_speeds(rms):<40}{_ratio(rms):.3g}")
    book = BOOK_SPEEDS_TWO_HIDDEN
    lines += [f"  (book, MNIST, sigmoid [784, 30, 30, 10]: ‖∂C/∂b‖ {book[0]}  {book[1]}; about "
              "1/100 first against last with four hidden layers.  With batch normalization "
              "b^l is the shift β after the dense layer; its gradient, a sum over the sample, "
              "is small below the last hidden layer because the normalization's backward pass "
              "removes the gradient's mean over the batch — the weights' gradients show the "
              "speeds.)", ""]
    lines.append(f"After {epochs} epoch{'s' if epochs != 1 else ''} of SGD (η = {LEARNING_RATE}, "
                 f"batch {BATCH_SIZE}, λ = {L2}) on {results['n_train']} images:")
    lines.append(f"  {'network':<{w}}{'‖∂C/∂b^l‖':<40}{'first/last':<12}"
                 f"{'RMS of ∂C/∂W^l':<40}first/last")
    for run in results["runs"]:
        b = run["speed"]["speed_b"][-1][:-1]
        rms = weight_rms(run["speed"]["speed_W"][-1], run["depth"], *shape)[:-1]
        lines.append(f"  {_name(run['variant'], run['depth'], *shape):<{w}}{_speeds(b):<40}"
                     f"{_ratio(b):<12.3g}{_speeds(rms):<40}{_ratio(rms):.3g}")
    lines.append("")
    lines.append(f"Accuracy by depth on {data} after {epochs} epoch{'s' if epochs != 1 else ''} "
                 f"(validation: {results['n_validation']} held-out training images), next to "
                 "the book's MNIST validation accuracy after 30 epochs:")
    lines.append(f"  {'network':<{w}}{data + ' val.':>20}{'test':>10}{'book (MNIST)':>15}"
                 f"{'seconds':>9}")
    for run in results["runs"]:
        book = f"{BOOK_ACCURACY[run['depth']]:.2f} %" if run["variant"] == "sigmoid" else ""
        lines.append(f"  {_name(run['variant'], run['depth'], *shape):<{w}}"
                     f"{100 * run['validation_accuracy']:>18.2f} %"
                     f"{100 * run['test_accuracy']:>8.2f} %{book:>15}{run['seconds']:>9.1f}")
    return "\n".join(lines) + "\n"


def plot(results, directory):
    """The figures: per-layer speeds over the epochs (log scale), and learning curves.

    ``vanishing_speeds.png``: one column per network of the largest depth,
    ‖∂C/∂b^l‖ above and the RMS of ∂C/∂W^l below, per hidden layer.
    ``learning_curves.png``: ``plot_history`` of the deepest sigmoid network.
    """
    import os

    from fastnn.plotting import plot_history, pyplot, save_figure

    plt = pyplot()
    deepest = max(run["depth"] for run in results["runs"])
    runs = [run for run in results["runs"] if run["depth"] == deepest]
    figure, axes = plt.subplots(2, len(runs), figsize=(4.0 * len(runs), 6.0), sharey="row",
                                squeeze=False)
    for column, run in enumerate(runs):
        epochs = run["speed"]["epoch"]
        rms = [weight_rms(w, deepest, results["n_in"], results["n_out"])
               for w in run["speed"]["speed_W"]]
        rows = np.array(run["speed"]["speed_b"])[:, :-1], np.array(rms)[:, :-1]
        for row, speeds in enumerate(rows):
            ax = axes[row][column]
            for layer in range(speeds.shape[1]):
                ax.semilogy(epochs, speeds[:, layer], marker="o", ms=2, lw=1.2,
                            label=f"hidden layer {layer + 1}")
            if row == 0:
                ax.set_title(f"{run['variant']}, {deepest} hidden layers", fontsize=10)
            else:
                ax.set_xlabel("epoch (0: before training)")
    axes[0][0].set_ylabel(r"$\|\partial C/\partial b^l\|$")
    axes[1][0].set_ylabel(r"RMS of $\partial C/\partial W^l$")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"Speed of learning per layer, {results['data']}", fontsize=11)
    figure.tight_layout()
    path = save_figure(figure, os.path.join(directory, "vanishing_speeds.png"))
    # The learning curves of the deepest sigmoid network, with its speeds.

    run = runs[0]
    curves = os.path.join(directory, "learning_curves.png")
    plot_history(run["history"], curves, speed=run["speed"],
                 title=f"sigmoid, {deepest} hidden layers, {results['data']}")
    return [path, curves]
