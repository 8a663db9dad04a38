"""The ``fastnn`` console command.

``fastnn train``        train a fully-connected network on Fashion-MNIST (or any
                        MNIST-format data) and report its test accuracy.
``fastnn constrained``  the trust-constr exercise: analytic versus
                        finite-difference derivatives on Hock–Schittkowski 71.
``fastnn study``        graph, landscapes, vanishing (``fastnn.studies.cli``).
"""

import argparse
import sys
import time

import numpy as np

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "prelu")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw")


def _hidden_sizes(text):
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated widths, got {text!r}")
    if any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError("hidden widths must be positive")
    return sizes


def build_network(n_in, hidden, n_out, activation):
    """Dense layers of the given widths, each followed by the activation, then softmax."""
    from fastnn import layers

    make = {"relu": layers.ReLU, "sigmoid": layers.Sigmoid, "tanh": layers.Tanh,
            "leaky_relu": layers.LeakyReLU, "prelu": layers.PReLU}[activation]
    init = "he_normal" if activation in ("relu", "leaky_relu", "prelu") else "glorot_uniform"
    network, width = [], n_in
    for size in hidden:
        network += [layers.Dense(width, size, init=init), make()]
        width = size
    return network + [layers.Dense(width, n_out), layers.Softmax()]


def build_optimizer(name, lr, decay=0.0):
    from fastnn import optimizers
    from fastnn.schedules import ExponentialDecay

    lr = ExponentialDecay(lr, k=decay) if decay else lr
    if name == "sgd":
        return optimizers.SGD(lr=lr)
    if name in ("momentum", "nesterov"):
        return optimizers.SGD(lr=lr, momentum=0.9, nesterov=name == "nesterov")
    classes = {"adagrad": optimizers.AdaGrad, "rmsprop": optimizers.RMSProp,
               "adadelta": optimizers.AdaDelta, "adam": optimizers.Adam,
               "adamw": optimizers.AdamW}
    return classes[name](lr=lr)


def train_parser(parser):
    parser.add_argument("--data-dir", help="directory of MNIST-format IDX files "
                        "(default: $FASTNN_DATA or /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--hidden", type=_hidden_sizes, default=[256, 128],
                        help="hidden layer widths, comma-separated (default: 256,128)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu",
                        help="hidden-layer activation (default: relu)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                        help="update rule (default: adam; momentum and nesterov use μ = 0.9)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 0.001)")
    parser.add_argument("--epochs", type=int, default=15, help="(default: 15)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    parser.add_argument("--l2", type=float, default=0.0,
                        help="L2 strength λ of the penalty λ/2n·Σw² (default: 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="(default: float32)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of initialization, shuffling and the validation split (default: 0)")
    parser.add_argument("--validation", type=int, default=5000,
                        help="training samples held out for validation (default: 5000)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default: 1; small matrices gain little from more, "
                             "and a busy machine loses much); fastnn's own kernels follow "
                             "OMP_NUM_THREADS")
    parser.add_argument("--lr-decay", type=float, default=0.1,
                        help="k of the per-epoch exponential decay lr·e^(−k·epoch) (default: 0.1)")
    parser.add_argument("--save", help="write the trained weights to this .npz file")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-epoch metrics")


def run_train(args):
    from threadpoolctl import threadpool_limits

    from fastnn.data import DataNotFoundError, load_mnist
    from fastnn.model import Sequential

    start = time.perf_counter()
    try:
        (X, y), (X_test, y_test) = load_mnist(args.data_dir, dtype=np.dtype(args.dtype))
    except DataNotFoundError as error:
        print(f"fastnn: {error}", file=sys.stderr)
        return 2
    if not 0 <= args.validation < X.shape[0]:
        print(f"fastnn: --validation must lie in [0, {X.shape[0]})", file=sys.stderr)
        return 2
    order = np.random.default_rng(args.seed).permutation(X.shape[0])
    held, kept = order[:args.validation], order[args.validation:]
    validation = (X[held], y[held]) if args.validation else None
    X, y = X[kept], y[kept]
    n_classes = int(max(y.max(), y_test.max())) + 1

    model = Sequential(build_network(X.shape[1], args.hidden, n_classes, args.activation),
                       loss="softmax_cross_entropy",
                       optimizer=build_optimizer(args.optimizer, args.lr, args.lr_decay),
                       dtype=args.dtype, seed=args.seed, l2=args.l2)
    print(f"fastnn: {X.shape[0]} training, {0 if validation is None else len(validation[0])} "
          f"validation, {X_test.shape[0]} test samples; network "
          f"{[X.shape[1], *args.hidden, n_classes]} {args.activation}, {model.n_params} "
          f"parameters, {args.optimizer} lr={args.lr}·e^(−{args.lr_decay}·epoch), "
          f"batch {args.batch_size}, {args.dtype}")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                  validation_data=validation, verbose=not args.quiet)
    test = model.evaluate(X_test, y_test)
    if args.save:
        model.save_weights(args.save)
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({time.perf_counter() - start:.1f} s in all)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Train fully-connected networks with compiled kernels, or run the "
                    "constrained-optimization exercise.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser(commands.add_parser("train", help="train a network on Fashion-MNIST"))
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
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    for name in ("epochs", "batch_size", "threads"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return run_train(args)


if __name__ == "__main__":
    sys.exit(main())
