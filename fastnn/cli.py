"""The ``fastnn`` console command.

``fastnn train``        train a fully-connected network on Fashion-MNIST (or any
                        MNIST-format data) and report its test accuracy; with
                        ``--resume FILE``, continue the training saved in a model
                        file; ``--recipe best``, the preset measured best within a
                        minute of training.
``fastnn evaluate``     test loss and accuracy of a saved model.
``fastnn predict``      a saved model's predictions for an array of rows.
``fastnn constrained``  the trust-constr exercise: analytic versus
                        finite-difference derivatives on Hock–Schittkowski 71.
``fastnn study``        graph, landscapes, vanishing (``fastnn.studies.cli``).

Results (the run's description, each epoch's metrics, the test score) go to
standard output; the live progress bar and messages go to standard error.
Exit status: 0 on success, 2 for a wrong argument, unreadable data or an
unreadable model file (one line, before training), 1 when training diverged
or the model could not be saved where asked (the test score is printed either
way), 130 when interrupted (Ctrl-C: the last finished step is evaluated and
saved).
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


def _rate(text):
    """An argparse type: a dropout rate, a finite number in [0, 1)."""
    value = _number(0.0)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a finite number in [0, 1) (the probability "
                                         f"of dropping a unit), got {text}")
    return value


_rate.__name__ = "number"


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


#: the activations whose hidden layers start from He's initialization (glorot_uniform otherwise)
HE_ACTIVATIONS = ("relu", "leaky_relu", "prelu", "silu")


def loss_names():
    """The registered losses by their own names (``fastnn.losses.LOSSES`` without aliases)."""
    from fastnn.losses import LOSSES

    return tuple(name for name, loss in LOSSES.items() if loss.name == name)


def initializer_names():
    from fastnn.initializers import INITIALIZERS

    return tuple(INITIALIZERS)


def build_network(n_in, hidden, n_out, activation, dropout=0.0, batchnorm=False,
                  loss="softmax_cross_entropy", init=None):
    """The layers of the network ``fastnn train`` trains.

    Per hidden width: ``Dense``, then ``BatchNorm`` (with ``batchnorm``), the
    activation, then ``Dropout(dropout)`` (when ``dropout`` > 0); then the
    output ``Dense`` and the layer the loss needs (``Softmax``, ``Sigmoid``,
    or none for the squared errors).  ``init`` is the hidden layers' weight
    initializer (default: He's for the ReLU family, Glorot's otherwise); the
    output layer's is glorot_uniform.
    """
    from fastnn import layers
    from fastnn.losses import get

    make = layers.ACTIVATIONS[activation]
    if init is None:
        init = "he_normal" if activation in HE_ACTIVATIONS else "glorot_uniform"
    network, width = [], n_in
    for size in hidden:
        network.append(layers.Dense(width, size, init=init))
        if batchnorm:
            network.append(layers.BatchNorm())
        network.append(make())
        if dropout:
            network.append(layers.Dropout(dropout))
        width = size
    network.append(layers.Dense(width, n_out))
    output = get(loss).output_layer
    return network + ([] if output is None else [layers.LAYERS[output]()])


def build_optimizer(name, lr, decay=0.0):
    from fastnn import optimizers
    from fastnn.schedules import ExponentialDecay

    lr = ExponentialDecay(lr, k=decay) if decay else lr
    if name in SGD_PRESETS:
        return optimizers.SGD(lr=lr, **SGD_PRESETS[name])
    return optimizers.OPTIMIZERS[name](lr=lr)


#: the options that say what network is trained, and how; a resumed model file fixes
#: them, so that they are None (not given) until the defaults or the file fill them in
ARCHITECTURE_DEFAULTS = {"hidden": [256, 128], "activation": "relu", "optimizer": "adam",
                         "lr": 1e-3, "lr_decay": 0.1, "l2": 0.0, "dtype": "float32", "seed": 0,
                         "dropout": 0.0, "batchnorm": False, "loss": "softmax_cross_entropy",
                         "init": None}
#: the options of one run's training, which a model file does not fix
RUN_DEFAULTS = {"epochs": 15, "batch_size": 64, "augment": False, "early_stopping": None}
#: the most pixels an image of --augment moves along each axis
AUGMENT_SHIFT = 2

#: named sets of option values (``--recipe NAME``); options given beside one override it.
#: "best": the most accurate of the candidates of bench/recipes.py within 60 s of training
#: on a shared 2-core machine (README, "Quick start"): 0.903 on Fashion-MNIST in 32-34 s.
RECIPES = {"best": {"hidden": [256, 128], "optimizer": "adamw", "lr": 0.002, "lr_decay": 0.1,
                    "batchnorm": True, "dropout": 0.2, "batch_size": 128, "epochs": 25}}


def _recipe_text(name):
    """The options of the recipe ``name``, as they would be typed."""
    words = []
    for key, value in RECIPES[name].items():
        option = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(option if value else "--no-" + option[2:])
        elif isinstance(value, list):
            words.append(f"{option} {','.join(map(str, value))}")
        else:
            words.append(f"{option} {value}")
    return " ".join(words)


def train_parser(parser):
    parser.add_argument("--data-dir", help="directory of MNIST-format IDX files "
                        "(default: $FASTNN_DATA or /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="a preset of options, which options given beside it override: "
                             f'best is "{_recipe_text("best")}", batch normalization, dropout '
                             "and AdamW with a decaying rate (README: measured test accuracy "
                             "and training time on Fashion-MNIST)")
    parser.add_argument("--hidden", type=_hidden_sizes, default=None,
                        help="hidden layer widths, comma-separated (default: 256,128)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default=None,
                        help="hidden-layer activation (default: relu)")
    parser.add_argument("--optimizer", choices=optimizer_names(), default=None,
                        help="update rule (default: adam; momentum and nesterov use μ = 0.9)")
    parser.add_argument("--lr", type=_number(0.0, open_min=True), default=None,
                        help="learning rate, > 0 (default: 0.001)")
    parser.add_argument("--epochs", type=_count(1), default=None, help="(default: 15)")
    parser.add_argument("--batch-size", type=_count(1, MAX_SIZE), default=None,
                        help="at most the number of training samples (default: 64)")
    parser.add_argument("--l2", type=_number(0.0), default=None,
                        help="L2 strength λ of the penalty λ/2n·Σw² (default: 0)")
    parser.add_argument("--dropout", type=_rate, default=None, metavar="RATE",
                        help="a Dropout layer dropping each unit with this probability, in "
                             "[0, 1), after every hidden activation (default: 0, none)")
    parser.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                        help="a BatchNorm layer after every hidden Dense layer, before its "
                             "activation (default: none)")
    parser.add_argument("--loss", choices=loss_names(), default=None,
                        help="the loss; the network ends in the layer it needs: Softmax for "
                             "softmax_cross_entropy, Sigmoid for sigmoid_cross_entropy, none "
                             "for mse and quadratic on one-hot targets "
                             "(default: softmax_cross_entropy)")
    parser.add_argument("--init", choices=initializer_names(), default=None,
                        help="weight initializer of the hidden Dense layers (default: "
                             "he_normal for relu, leaky_relu, prelu and silu, glorot_uniform "
                             "for sigmoid and tanh; the output layer's is glorot_uniform)")
    parser.add_argument("--early-stopping", type=_count(0), default=None, metavar="PATIENCE",
                        help="stop when the validation loss has not improved for this many "
                             "epochs and keep the weights of the best epoch (needs "
                             "--validation > 0; default: train every epoch)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help=f"each epoch, shift every training image by up to {AUGMENT_SHIFT} "
                             "pixels along each axis and mirror it left to right with "
                             "probability 1/2 (rows must be square images, as Fashion-MNIST's "
                             "28×28; default: no augmentation)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                        help="(default: float32)")
    parser.add_argument("--seed", type=_count(0), default=None,
                        help="seed of initialization, shuffling, dropout masks, augmentation "
                             "and the validation split (default: 0)")
    parser.add_argument("--validation", type=_count(0), default=5000,
                        help="training samples held out for validation (default: 5000)")
    parser.add_argument("--threads", type=_count(1, MAX_THREADS), default=1,
                        help="BLAS threads (default: 1; small matrices gain little from more, "
                             "and a busy machine loses much); fastnn's own kernels follow "
                             "OMP_NUM_THREADS")
    parser.add_argument("--lr-decay", type=_number(0.0), default=None,
                        help="k of the per-epoch exponential decay lr·e^(−k·epoch) (default: 0.1)")
    parser.add_argument("--save", type=_destination,
                        help="write the trained model (architecture, weights and training "
                             "state: fastnn.load_model reads it, --resume continues it) to "
                             "this .npz file (its directory must exist)")
    parser.add_argument("--resume", metavar="MODEL",
                        help="continue training the model saved in this file for --epochs "
                             "more epochs; the network, optimizer, rates, L2, dtype and seed "
                             "come from the file (options that contradict it are refused)")
    parser.add_argument("--history", type=_destination,
                        help="write the per-epoch metrics to this CSV file")
    parser.add_argument("--plot", type=_destination,
                        help="draw the learning curves into this PNG file (needs matplotlib: "
                             'pip install "fastnn[plot]")')
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-epoch metrics")


def _usage_error(message, command="train"):
    print(f"fastnn {command}: error: {message}", file=sys.stderr)
    return 2


def model_options(model):
    """The values of the architecture options that describe ``model``.

    The inverse of :func:`build_network` and :func:`build_optimizer`; an
    option the model has no value for (a schedule other than exponential
    decay, mixed activations) is None.
    """
    from fastnn import initializers, layers
    from fastnn.schedules import Constant, ExponentialDecay

    dense = [i for i, layer in enumerate(model.layers) if isinstance(layer, layers.Dense)]
    hidden = model.layers[:dense[-1]]  # the output Dense and the loss's layer after it
    names = {cls: name for name, cls in layers.ACTIVATIONS.items() if name in ACTIVATIONS}
    activations = {names.get(type(layer)) for layer in hidden
                   if not isinstance(layer, (layers.Dense, layers.BatchNorm, layers.Dropout))}
    rates = {layer.rate for layer in hidden if isinstance(layer, layers.Dropout)}
    n_norms = sum(isinstance(layer, layers.BatchNorm) for layer in hidden)
    inits = {initializers.name_of("init", model.layers[i].init) for i in dense[:-1]}
    optimizer, schedule = model.optimizer, model.optimizer.lr
    rule = {key: value for key, value in optimizer.get_config().items() if key != "lr"}
    name = optimizer.name
    for preset in SGD_PRESETS:
        preset_rule = build_optimizer(preset, schedule.lr).get_config()
        if name == "sgd" and rule == {key: preset_rule[key] for key in rule}:
            name = preset
    decay = {Constant: 0.0, ExponentialDecay: getattr(schedule, "k", None)}.get(type(schedule))
    return {"hidden": [model.layers[i].n_out for i in dense[:-1]],
            "activation": activations.pop() if len(activations) == 1 else None,
            "optimizer": name, "lr": schedule.lr, "lr_decay": decay, "l2": model.l2,
            "dtype": np.dtype(model.dtype).name, "seed": model.seed,
            "dropout": rates.pop() if len(rates) == 1 else (0.0 if not rates else None),
            "batchnorm": {0: False, len(dense) - 1: True}.get(n_norms),
            "loss": model.loss.name, "init": inits.pop() if len(inits) == 1 else None}


def _resumed_model(args):
    """The model of ``--resume`` with ``args``' architecture options filled in from it.

    Returns ``(model, None)``, or ``(None, message)`` when the file cannot be
    read or an option given contradicts it.
    """
    from fastnn.model_file import load_model

    try:
        model = load_model(args.resume)
    except (OSError, ValueError) as error:
        return None, f"--resume: {error}"
    for name, value in model_options(model).items():
        given = getattr(args, name)
        if name == "seed" and value is None:  # a model seeded otherwise: the split is free
            continue
        if given is not None and given != value:
            option = "--" + name.replace("_", "-")
            if isinstance(given, bool):
                return None, (f"{option if given else '--no-' + option[2:]} contradicts the "
                              f"model resumed from {args.resume}, whose {option} is "
                              f"{'on' if value else 'off'}: leave it out")
            shown = "none" if value is None else value
            return None, (f"{option} {given} contradicts the model resumed from "
                          f"{args.resume}, whose {option} is {shown}: leave it out")
        setattr(args, name, value)
    return model, None


def run_train(args):
    """Train, evaluate and save as ``args`` say; returns the exit status.

    Whatever happens once training has started — divergence, Ctrl-C, a
    destination that vanished — the weights of the last finished step are
    evaluated on the test set and saved (elsewhere, if need be: the message
    says where).  A resumed model continues from its file; its history and
    the saved one go on from the history the file holds.
    """
    from threadpoolctl import threadpool_limits

    from fastnn.augment import Augmentation, RandomFlip, RandomShift
    from fastnn.callbacks import EarlyStopping, History, ProgressBar
    from fastnn.data import DataNotFoundError, hold_out, load_mnist
    from fastnn.model import NonFiniteError, Sequential

    start = time.perf_counter()
    model = None
    if args.recipe and args.resume:
        return _usage_error(f"--recipe {args.recipe} sets options that the model file of "
                            "--resume fixes: resume without it (a run's --epochs, "
                            "--batch-size, --augment and --early-stopping may be given)")
    for name, value in RECIPES.get(args.recipe, {}).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.resume:
        model, problem = _resumed_model(args)
        if problem is not None:
            return _usage_error(problem)
    for name, value in {**ARCHITECTURE_DEFAULTS, **RUN_DEFAULTS}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.early_stopping is not None and not args.validation:
        return _usage_error("--early-stopping watches the validation loss: it needs "
                            "--validation > 0")
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
    side = math.isqrt(X.shape[1])
    if args.augment and side * side != X.shape[1]:
        return _usage_error(f"--augment moves square images; the data's images have "
                            f"{X.shape[1]} pixels")
    if args.batchnorm and args.batch_size < 2:
        return _usage_error("--batchnorm needs --batch-size >= 2: a batch of one row has no "
                            "variance to normalize by")
    # The training rows stay in the loaded array (permuted in place), not a second copy.
    (X, y), validation = hold_out(X, y, args.validation, np.random.default_rng(args.seed))
    validation = validation if args.validation else None
    n_classes = int(max(y.max(), y_test.max())) + 1
    samples = (f"fastnn: {X.shape[0]} training, "
               f"{0 if validation is None else len(validation[0])} validation, "
               f"{X_test.shape[0]} test samples")

    if model is None:
        try:
            model = Sequential(build_network(X.shape[1], args.hidden, n_classes,
                                             args.activation, args.dropout, args.batchnorm,
                                             args.loss, args.init),
                               loss=args.loss,
                               optimizer=build_optimizer(args.optimizer, args.lr,
                                                         args.lr_decay),
                               dtype=args.dtype, seed=args.seed, l2=args.l2)
        except MemoryError:
            return _usage_error(f"a network of widths {[X.shape[1], *args.hidden, n_classes]} "
                                "does not fit in memory")
        extras = "".join([", batch norm" if args.batchnorm else "",
                          f", dropout {args.dropout}" if args.dropout else "",
                          f", {args.loss}" if args.loss != "softmax_cross_entropy" else ""])
        print(f"{samples}; network {[X.shape[1], *args.hidden, n_classes]} {args.activation}"
              f"{extras}, {model.n_params} parameters, {args.optimizer} "
              f"lr={args.lr}·e^(−{args.lr_decay}·epoch), batch {args.batch_size}, {args.dtype}")
    else:
        if X.shape[1] != model.n_features_ or n_classes > model.n_outputs_:
            return _usage_error(f"the model resumed from {args.resume} takes "
                                f"{model.n_features_} features and {model.n_outputs_} classes; "
                                f"the data have {X.shape[1]} and {n_classes}")
        print(f"{samples}; network {[model.n_features_, *args.hidden, model.n_outputs_]} "
              f"resumed from {args.resume} after {model.optimizer.epoch_} epochs "
              f"({model.optimizer.t_} steps), {model.n_params} parameters, "
              f"{model.optimizer!r}, batch {args.batch_size}, {args.dtype}")
    earlier = dict(getattr(model, "history_", History()).history)
    history = History()
    callbacks = [history] if args.quiet else [history, ProgressBar(args.epochs)]
    if args.early_stopping is not None:
        stopping = EarlyStopping(monitor="val_loss", patience=args.early_stopping,
                                 restore_best=True)
        callbacks.append(stopping)
    augment = (Augmentation((side, side), RandomShift(AUGMENT_SHIFT), RandomFlip())
               if args.augment else None)
    status = 0
    training = time.perf_counter()
    try:
        with threadpool_limits(limits=args.threads, user_api="blas"):
            model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                      validation_data=validation, callbacks=callbacks, augment=augment)
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
    training = time.perf_counter() - training
    ran = len(history.history.get("loss", ()))
    if args.early_stopping is not None and stopping.best_epoch not in (None, ran - 1):
        print(f"fastnn: stopped after epoch {ran} of {args.epochs}; the weights are those of "
              f"epoch {stopping.best_epoch + 1}, of the lowest validation loss "
              f"{stopping.best:.4g}", flush=True)
    # What the file will hold and the CSV shows: the whole training, the
    # epochs of an earlier run first.
    model.history_ = History()
    model.history_.history = {key: earlier.get(key, []) + history.history.get(key, [])
                              for key in {**earlier, **history.history}}
    _write_history(model.history_, args)
    return _finish(model, args, X_test, y_test, start, training, status)


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


def _finish(model, args, X_test, y_test, start, training, status):
    """Report the test score, then save; a failed save falls back elsewhere."""
    test = model.evaluate(X_test, y_test)
    print(f"{_scores(test)}  ({training:.1f} s of training, "
          f"{time.perf_counter() - start:.1f} s in all)", flush=True)
    if not args.save:
        return status
    try:
        model.save(args.save)
        return status
    except ValueError as error:  # stopped inside an update that overflowed
        print(f"fastnn: {error}", file=sys.stderr)
        return status or 1
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
            model.save(fallback)
        except OSError:
            continue
        print(f"fastnn: could not write {args.save} ({reason}); the model is saved to "
              f"{fallback} instead", file=sys.stderr)
        return status or 1
    print(f"fastnn: could not write {args.save} ({reason}), nor a copy in the current or "
          "the temporary directory; the model is lost", file=sys.stderr)
    return status or 1


def _scores(test):
    """A test score line: accuracy first for a classifier, as ``fastnn train`` ends."""
    order = sorted(test, key=lambda key: (key != "accuracy", key))
    return "  ".join(f"test {key} {test[key]:.4f}" for key in order)


def _load(command, path):
    """The model saved in ``path``, or None after a one-line message."""
    from fastnn.model_file import load_model

    try:
        return load_model(path)
    except (OSError, ValueError) as error:
        _usage_error(error, command)
        return None


def evaluate_parser(parser):
    parser.add_argument("model", help="a model file (fastnn train --save, Sequential.save)")
    parser.add_argument("--data-dir", help="directory of MNIST-format IDX files whose test "
                        "set is scored (default: $FASTNN_DATA or "
                        "/usr/share/datasets/fashion-mnist)")


def run_evaluate(args):
    """Print the saved model's test loss and accuracy; returns the exit status."""
    from fastnn.data import DataNotFoundError, load_mnist

    model = _load("evaluate", args.model)
    if model is None:
        return 2
    try:
        _, (X_test, y_test) = load_mnist(args.data_dir, dtype=model.dtype)
    except DataNotFoundError as error:
        print(f"fastnn: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        return _usage_error(error, "evaluate")
    try:
        test = model.evaluate(X_test, y_test)
    except (TypeError, ValueError) as error:  # data of another width or more classes
        return _usage_error(f"the test set does not fit {args.model}: {error}", "evaluate")
    print(_scores(test))
    return 0


def predict_parser(parser):
    parser.add_argument("model", help="a model file (fastnn train --save, Sequential.save)")
    parser.add_argument("input", help="a .npy file of rows, one sample each (n_samples, "
                        "n_features), or a single row")
    parser.add_argument("--output", type=_destination,
                        help="write the predictions to this .npy file (default: print them, "
                             "one row per line)")
    parser.add_argument("--proba", action="store_true",
                        help="the network's outputs (class probabilities) instead of the "
                             "predicted classes")


def _rows(path, n_features):
    """The array in the .npy file ``path``, checked to be rows of ``n_features`` numbers."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"cannot read {path} as a .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise ValueError(f"{path} is an .npz archive; give one array as .npy")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{path} holds {array.dtype} values; it needs real numbers")
    if array.ndim not in (1, 2) or array.shape[-1] != n_features:
        raise ValueError(f"{path} holds an array of shape {array.shape}; the model takes rows "
                         f"of {n_features} features, (n_samples, {n_features}) or "
                         f"({n_features},)")
    if not np.isfinite(array).all():
        raise ValueError(f"{path} contains NaN or infinite values")
    return array


def run_predict(args):
    """Write the saved model's predictions for the rows of ``args.input``."""
    from fastnn._files import atomic_write

    model = _load("predict", args.model)
    if model is None:
        return 2
    try:
        X = _rows(args.input, model.n_features_)
        out = model.predict_proba(X) if args.proba else model.predict(X)
    except (TypeError, ValueError) as error:
        return _usage_error(error, "predict")
    if args.output:
        with atomic_write(args.output) as f:
            np.save(f, out)
    else:
        # floats with as many digits as tell every value of their dtype apart
        fmt = "%d" if out.dtype.kind == "i" else f"%.{np.finfo(out.dtype).precision + 3}g"
        np.savetxt(sys.stdout, np.atleast_1d(out), fmt=fmt)
    return 0


def main(argv=None):
    # No abbreviated options: "--batch-size --l" would be refused as an
    # ambiguous option instead of as a missing value, and an option added
    # later would break an abbreviation that worked.
    parser = argparse.ArgumentParser(
        prog="fastnn", allow_abbrev=False,
        description="Train fully-connected networks with compiled kernels, or run the "
                    "constrained-optimization exercise.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", allow_abbrev=False,
                                help="train a network on Fashion-MNIST")
    train_parser(train)
    subcommands = {"train": train,
                   "evaluate": commands.add_parser("evaluate", allow_abbrev=False,
                                                   help="test loss and accuracy of a saved "
                                                   "model on Fashion-MNIST's test set"),
                   "predict": commands.add_parser("predict", allow_abbrev=False,
                                                  help="a saved model's predictions for the "
                                                  "rows of a .npy file")}
    evaluate_parser(subcommands["evaluate"])
    predict_parser(subcommands["predict"])
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
        subcommands[args.command].error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "evaluate":
        return run_evaluate(args)
    if args.command == "predict":
        return run_predict(args)
    try:
        return run_train(args)
    except KeyboardInterrupt:  # before training began, or a second Ctrl-C
        print("fastnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
