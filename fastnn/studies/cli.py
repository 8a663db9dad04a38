"""``fastnn study``: the studies that show backpropagation at work.

``fastnn study graph``       a small computational graph with every node's
                             value and gradient (text, Graphviz DOT, PNG).
``fastnn study landscapes``  every optimizer on ravines, saddles, a cubic and
                             Rosenbrock's valley; steps to a tolerance.
``fastnn study vanishing``   Nielsen's vanishing-gradient measurements
                             (ch. 5) on Fashion-MNIST, then with ReLU and
                             with batch normalization.

Every study prints its tables.  Figures (PNG, under ``--out-dir``) need
matplotlib — ``pip install "fastnn[plot]"`` — and the graph's PNG needs
Graphviz's ``dot``; without them the tables still appear.
"""

import argparse
import os
import sys
import time

import numpy as np

STUDIES = ("graph", "landscapes", "vanishing")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def parser():
    main = argparse.ArgumentParser(
        prog="fastnn study", allow_abbrev=False,
        description="Studies that show backpropagation at work.")
    commands = main.add_subparsers(dest="study", required=True)
    for name, text in (("graph", "a computational graph with values and gradients"),
                       ("landscapes", "optimizers on 2-D surfaces, with and without noise"),
                       ("vanishing", "per-layer speed of learning (Nielsen, ch. 5)")):
        sub = commands.add_parser(name, help=text, description=text, allow_abbrev=False)
        sub.add_argument("--out-dir", default="docs",
                         help="directory for the figures (default: docs)")
        sub.add_argument("--no-figures", action="store_true", help="print the tables only")
        if name != "graph":
            sub.add_argument("--seed", type=int, default=0, help="(default: 0)")
            sub.add_argument("--quick", action="store_true",
                             help="a small, fast version (for tests)")
        if name == "vanishing":
            sub.add_argument("--data-dir", help="directory of MNIST-format IDX files (default: "
                             "$FASTNN_DATA or /usr/share/datasets/fashion-mnist)")
            sub.add_argument("--epochs", type=_positive_int, default=5, help="(default: 5)")
            sub.add_argument("--all-depths", action="store_true",
                             help="train the ReLU and batch-norm networks at every depth, "
                                  "not only the deepest")
    return main


def _figures(args, draw):
    """Draw figures unless told not to; say how to get them when matplotlib is missing."""
    from fastnn.plotting import INSTALL_HINT, have_matplotlib

    if args.no_figures:
        return
    if not have_matplotlib():
        print(f"(no figures: {INSTALL_HINT})")
        return
    os.makedirs(args.out_dir, exist_ok=True)
    for path in draw(args.out_dir):
        print(f"wrote {path}")


def run_graph(args):
    from fastnn import graph as G

    a, b, c = G.Input(1.0, "a"), G.Input(2.0, "b"), G.Input(3.0, "c")
    g = 2 * b
    g.name = "g"
    y = (a + g) * (g + c)
    y.name = "y"
    y.forward()
    y.backward()
    print("y = (a + 2b)(2b + c) at (a, b, c) = (1, 2, 3); g = 2b is one node used twice, "
          "so its gradient is the sum over both paths:")
    print(y.to_text())
    print(f"evaluations per node in the forward pass: "
          f"{ {node.label: node.evaluations for node in G.topological_order(y) if node.parents} }")
    if args.no_figures:
        return 0
    os.makedirs(args.out_dir, exist_ok=True)
    dot = os.path.join(args.out_dir, "graph_example.dot")
    png = y.write_dot(dot)
    print(f"wrote {dot}" + (f" and {png}" if png else
                            " (no PNG: Graphviz's dot is not on PATH; apt-get install graphviz)"))
    return 0


def run_landscapes(args):
    from fastnn.studies import landscapes

    start = time.perf_counter()
    results = landscapes.study(quick=args.quick, seed=args.seed)
    eta, gamma = landscapes.NOISE
    print(f"noisy: N(0, σ_t²) added to every gradient, σ_t² = {eta}/(1 + t)^{gamma}")
    print(landscapes.format_table(results))
    print(landscapes.format_step_sizes(n_steps=100 if args.quick else 1000,
                                       at=(1, 10, 100) if args.quick else (1, 10, 100, 1000)))
    _figures(args, lambda directory: landscapes.plot(results, directory))
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


def run_vanishing(args):
    from threadpoolctl import threadpool_limits

    from fastnn.data import DataNotFoundError, load_mnist
    from fastnn.studies import vanishing

    start = time.perf_counter()
    try:
        data = load_mnist(args.data_dir, dtype=np.float32)
    except DataNotFoundError as error:
        print(f"fastnn: {error}", file=sys.stderr)
        return 2
    name = "Fashion-MNIST" if args.data_dir is None and "FASTNN_DATA" not in os.environ \
        else os.path.basename(os.path.normpath(args.data_dir or os.environ["FASTNN_DATA"]))
    # Small matrices: one BLAS thread is faster, and leaves the other core to the kernels.
    with threadpool_limits(limits=1, user_api="blas"):
        results = vanishing.study(data, epochs=args.epochs, quick=args.quick, seed=args.seed,
                                  all_depths=args.all_depths, data_name=name)
    print(vanishing.format_table(results))
    _figures(args, lambda directory: vanishing.plot(results, directory))
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


def main(argv=None):
    args = parser().parse_args(argv)
    return {"graph": run_graph, "landscapes": run_landscapes,
            "vanishing": run_vanishing}[args.study](args)


if __name__ == "__main__":
    sys.exit(main())
