"""The ``fastnn`` console command.

``fastnn train``        train a fully-connected network on Fashion-MNIST (or any
                        MNIST-format data) and report its test accuracy.
``fastnn constrained``  the trust-constr exercise: analytic versus
                        finite-difference derivatives on Hock–Schittkowski 71.
``fastnn study``        graph, landscapes, vanishing (``fastnn.studies.cli``).

Results (the run's description, each epoch's metrics, the test score) go to
standard output; the live progress bar and messages go to standard error.
Exit status: 0 on success, 2 for a wrong argument or unreadable data (one
line, before training), 1 when training diverged or the weights could not be
saved where asked (the test score is printed either way), 130 when
interrupted (Ctrl-C: the last finished step is evaluated and saved).
"""

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

#: the hidden-layer activations: fastnn.layers.ACTIVATIONS but the identity
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "prelu", "silu")
#: SGD with μ = 0.9, by the names the course uses
SGD_PRESETS = {"momentum": dict(momentum=0.9), "nesterov": dict(momentum=0.9, nesterov=True)}

#: the largest batch, width or thread count passed on: compiled code counts in 32 bits
MAX_SIZE = 2**31 - 1
#: more BLAS threads than this are a typo, not a machine
MAX_THREADS = 4096
#: exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
EXIT_INTERRUPTED = 130


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _count(minimum, maximum=None):
    """An argparse type: an integer in [minimum, maximum]."""
    def parse(text):
        value = _integer(text)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text}")
        return value
    parse.__name__ = "integer"
    return parse


def _number(minimum, open_min=False):
    """An argparse type: a finite float >= minimum (> minimum when open_min)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (open_min and value == minimum):
            bound = ">" if open_min else ">="
            raise argparse.ArgumentTypeError(f"must be a finite number {bound} {minimum:g}, "
                                             f"got {text}")
        return value
    parse.__name__ = "number"
    return parse


def _hidden_sizes(text):
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"takes one or more comma-separated widths, got {text!r}")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated widths, got {text!r}") from None
    if any(not 0 < size <= MAX_SIZE for size in sizes):
        raise argparse.ArgumentTypeError(f"widths must lie in [1, {MAX_SIZE}], got {text!r}")
    return sizes


def _destination(text):
    """An argparse type: a file that a save can write (checked now, not after training)."""
    from fastnn._files import check_writable

    try:
        check_writable(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {error}") from None
    return text


def optimizer_names():
    from fastnn.optimizers import OPTIMIZERS

    return tuple(OPTIMIZERS) + tuple(SGD_PRESETS)


def build_network(n_in, hidden, n_out, activation):
    """Dense layers of the given widths, each followed by the activation, then softmax."""
    from fastnn import layers

    make = layers.ACTIVATIONS[activation]
    init = ("he_normal" if activation in ("relu", "leaky_relu", "prelu", "silu")
            else "glorot_uniform")
    network, width = [], n_in
    for size in hidden:
        network += [layers.Dense(width, size, init=init), make()]
        width = size
    return network + [layers.Dense(width, n_out), layers.Softmax()]


def build_optimizer(name, lr, decay=0.0):
    from fastnn import optimizers
    from fastnn.schedules import ExponentialDecay

    lr = ExponentialDecay(lr, k=decay) if decay else lr
    if name in SGD_PRESETS:
        return optimizers.SGD(lr=lr, **SGD_PRESETS[name])
    return optimizers.OPTIMIZERS[name](lr=lr)


def train_parser(parser):
    parser.add_argument("--data-dir", help="directory of MNIST-format IDX files "
                        "(default: $FASTNN_DATA or /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--hidden", type=_hidden_sizes, default=[256, 128],
                        help="hidden layer widths, comma-separated (default: 256,128)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu",
                        help="hidden-layer activation (default: relu)")
    parser.add_argument("--optimizer", choices=optimizer_names(), default="adam",
                        help="update rule (default: adam; momentum and nesterov use μ = 0.9)")
    parser.add_argument("--lr", type=_number(0.0, open_min=True), default=1e-3,
                        help="learning rate, > 0 (default: 0.001)")
    parser.add_argument("--epochs", type=_count(1), default=15, help="(default: 15)")
    parser.add_argument("--batch-size", type=_count(1, MAX_SIZE), default=64,
                        help="at most the number of training samples (default: 64)")
    parser.add_argument("--l2", type=_number(0.0), default=0.0,
                        help="L2 strength λ of the penalty λ/2n·Σw² (default: 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="(default: float32)")
    parser.add_argument("--seed", type=_count(0), default=0,
                        help="seed of initialization, shuffling and the validation split (default: 0)")
    parser.add_argument("--validation", type=_count(0), default=5000,
                        help="training samples held out for validation (default: 5000)")
    parser.add_argument("--threads", type=_count(1, MAX_THREADS), default=1,
                        help="BLAS threads (default: 1; small matrices gain little from more, "
                             "and a busy machine loses much); fastnn's own kernels follow "
                             "OMP_NUM_THREADS")
    parser.add_argument("--lr-decay", type=_number(0.0), default=0.1,
                        help="k of the per-epoch exponential decay lr·e^(−k·epoch) (default: 0.1)")
    parser.add_argument("--save", type=_destination,
                        help="write the trained weights to this .npz file (its directory "
                             "must exist)")
    parser.add_argument("--history", type=_destination,
                        help="write the per-epoch metrics to this CSV file")
    parser.add_argument("--plot", type=_destination,
                        help="draw the learning curves into this PNG file (needs matplotlib: "
                             'pip install "fastnn[plot]")')
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-epoch metrics")


def _usage_error(message):
    print(f"fastnn train: error: {message}", file=sys.stderr)
    return 2


def run_train(args):
    """Train, evaluate and save as ``args`` say; returns the exit status.

    Whatever happens once training has started — divergence, Ctrl-C, a
    destination that vanished — the weights of the last finished step are
    evaluated on the test set and saved (elsewhere, if need be: the message
    says where).
    """
    from threadpoolctl import threadpool_limits

    from fastnn.callbacks import History, ProgressBar
    from fastnn.data import DataNotFoundError, load_mnist
    from fastnn.model import NonFiniteError, Sequential

    start = time.perf_counter()
    try:
        (X, y), (X_test, y_test) = load_mnist(args.data_dir, dtype=np.dtype(args.dtype))
    except DataNotFoundError as error:
        print(f"fastnn: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:  # unreadable or damaged files: named in the message
        return _usage_error(error)
    if not 0 <= args.validation < X.shape[0]:
        return _usage_error(f"--validation must lie in [0, {X.shape[0]}), the number of "
                            "training samples")
    if args.batch_size > X.shape[0] - args.validation:
        return _usage_error(f"--batch-size {args.batch_size} exceeds the "
                            f"{X.shape[0] - args.validation} training samples")
    order = np.random.default_rng(args.seed).permutation(X.shape[0])
    held, kept = order[:args.validation], order[args.validation:]
    validation = (X[held], y[held]) if args.validation else None
    X, y = X[kept], y[kept]
    n_classes = int(max(y.max(), y_test.max())) + 1

    try:
        model = Sequential(build_network(X.shape[1], args.hidden, n_classes, args.activation),
                           loss="softmax_cross_entropy",
                           optimizer=build_optimizer(args.optimizer, args.lr, args.lr_decay),
                           dtype=args.dtype, seed=args.seed, l2=args.l2)
    except MemoryError:
        return _usage_error(f"a network of widths {[X.shape[1], *args.hidden, n_classes]} "
                            "does not fit in memory")
    print(f"fastnn: {X.shape[0]} training, {0 if validation is None else len(validation[0])} "
          f"validation, {X_test.shape[0]} test samples; network "
          f"{[X.shape[1], *args.hidden, n_classes]} {args.activation}, {model.n_params} "
          f"parameters, {args.optimizer} lr={args.lr}·e^(−{args.lr_decay}·epoch), "
          f"batch {args.batch_size}, {args.dtype}")
    history = History()
    callbacks = [history] if args.quiet else [history, ProgressBar(args.epochs)]
    status = 0
    try:
        with threadpool_limits(limits=args.threads, user_api="blas"):
            model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                      validation_data=validation, callbacks=callbacks)
    except NonFiniteError as error:
        _clear(callbacks)
        print(f"fastnn: training diverged: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        _clear(callbacks)
        done = len(history.history.get("loss", ()))
        print(f"fastnn: interrupted after {done} of {args.epochs} epochs; evaluating "
              "the weights of the last finished step", file=sys.stderr)
        status = EXIT_INTERRUPTED
    _write_history(history, args)
    return _finish(model, args, X_test, y_test, start, status)


def _write_history(history, args):
    """The --history CSV and the --plot figure, of the epochs that finished."""
    from fastnn import plotting

    if args.history and history.history:
        plotting.history_to_csv(history, args.history)
    if args.plot and history.history:
        if plotting.have_matplotlib():
            plotting.plot_history(history, args.plot)
        else:
            print(f"fastnn: {args.plot} not drawn: it needs matplotlib "
                  '(pip install "fastnn[plot]")', file=sys.stderr)


def _clear(callbacks):
    for callback in callbacks:
        if hasattr(callback, "clear"):
            callback.clear()


def _finish(model, args, X_test, y_test, start, status):
    """Report the test score, then save; a failed save falls back elsewhere."""
    from fastnn._validation import all_finite

    test = model.evaluate(X_test, y_test)
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({time.perf_counter() - start:.1f} s in all)", flush=True)
    if not args.save:
        return status
    if not all_finite(model.params_):  # stopped inside an update that overflowed
        print(f"fastnn: the weights are not finite; {args.save} was not written",
              file=sys.stderr)
        return status or 1
    try:
        model.save_weights(args.save)
        return status
    except OSError as error:
        reason = error
    name = os.path.basename(args.save)
    for directory in (os.getcwd(), tempfile.gettempdir()):
        fallback = os.path.join(directory, name)
        if os.path.lexists(fallback):  # never overwrite another file
            fallback = os.path.join(directory, f"fastnn-{os.getpid()}-{name}")
            if os.path.lexists(fallback):
                continue
        try:
            model.save_weights(fallback)
        except OSError:
            continue
        print(f"fastnn: could not write {args.save} ({reason}); the weights are saved to "
              f"{fallback} instead", file=sys.stderr)
        return status or 1
    print(f"fastnn: could not write {args.save} ({reason}), nor a copy in the current or "
          "the temporary directory; the weights are lost", file=sys.stderr)
    return status or 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Train fully-connected networks with compiled kernels, or run the "
                    "constrained-optimization exercise.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a network on Fashion-MNIST")
    train_parser(train)
    commands.add_parser("constrained", add_help=False,
                        help="trust-constr with analytic vs finite-difference derivatives")
    commands.add_parser("study", add_help=False, help="studies of backprop at work: graph, "
                        "landscapes, vanishing (fastnn study -h)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "study":
        from fastnn.studies import cli as studies

        return studies.main(rest)
    if args.command == "constrained":
        from fastnn import constrained

        return constrained.main(rest)
    if rest:
        train.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return run_train(args)
    except KeyboardInterrupt:  # before training began, or a second Ctrl-C
        print("fastnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
