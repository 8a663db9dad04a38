"""Model reuse on Fashion-MNIST: what augmentation costs, what an ensemble gains.

Augmentation: the time of one epoch of [784, 100, 10] (ReLU, softmax
cross-entropy, Adam, float32, batch 64) without augmentation, with each
transformation alone and with all four (shift ±2 px, horizontal flip,
rotation ±10°, noise σ = 0.05), the median of the repeats; beside it the time
of the augmentation alone over the 60,000 training images, in the chunks
``fit`` uses.  The fastest of the repeats counts, the cases interleaved.

Ensemble: K members [784, 100, 10] with seeds 0..K-1, each trained for a few
epochs; the test accuracy and loss of each member, their mean and best, and
of the ensemble, with the training times.

Run from the repository root (the machine's description heads the output):

    python bench/reuse.py [--repeats 5] [--members 5] [--epochs 5] [--quick]

``--quick`` (one repeat, a tenth of the data, two members of one epoch) only
shows that everything runs: its numbers are not measurements.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _folder in (ROOT, ROOT / "bench"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import numpy as np  # noqa: E402

from fastnn import Adam, Dense, Ensemble, ReLU, Sequential, Softmax, load_mnist  # noqa: E402
from fastnn import augment as A  # noqa: E402
from fastnn import training  # noqa: E402
from machine import describe  # noqa: E402

SHAPE = (28, 28)
TRANSFORMS = {"shift ±2 px": A.RandomShift(2), "flip": A.RandomFlip(),
              "rotate ±10°": A.RandomRotation(10), "noise σ=0.05": A.GaussianNoise(0.05)}


def network(seed):
    return Sequential([Dense(784, 100, init="he_normal"), ReLU(), Dense(100, 10), Softmax()],
                      optimizer=Adam(lr=1e-3), dtype="float32", seed=seed)


def augmentation(X, y, repeats):
    """Per case the fastest of the repeats (the machine is shared: the least
    disturbed run), the cases interleaved so that a busy spell hits them all."""
    cases = {"none": None, **{name: A.Augmentation(SHAPE, t) for name, t in TRANSFORMS.items()}}
    cases["all four"] = A.Augmentation(SHAPE, *TRANSFORMS.values())
    models = {name: network(0) for name in cases}
    for model in models.values():
        model.fit(X[:2048], y[:2048], epochs=1, batch_size=64)   # warm up the kernels
    epochs = {name: [] for name in cases}
    alone = {name: [] for name in cases}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for name, augment in cases.items():
            start = time.perf_counter()
            models[name].fit(X, y, epochs=1, batch_size=64, augment=augment)
            epochs[name].append(time.perf_counter() - start)
            if augment is None:
                continue
            # What fit does besides training: gather a chunk of shuffled rows, transform it.
            order = rng.permutation(len(X))
            start = time.perf_counter()
            for i in range(0, len(X), training.AUGMENT_ROWS):
                augment(X[order[i:i + training.AUGMENT_ROWS]], rng)
            alone[name].append(time.perf_counter() - start)
    print(f"\nAugmentation, one epoch of {len(X)} images, batch 64, fastest of {repeats}:")
    print(f"  {'':<16} {'epoch s':>8} {'augment s':>10} {'share':>6}")
    for name in cases:
        epoch = min(epochs[name])
        if not alone[name]:
            print(f"  {name:<16} {epoch:8.2f}")
            continue
        print(f"  {name:<16} {epoch:8.2f} {min(alone[name]):10.2f} "
              f"{min(alone[name]) / epoch:6.0%}")


def ensemble(X, y, X_test, y_test, members, epochs):
    print(f"\nEnsemble of {members} × [784, 100, 10], {epochs} epochs each, batch 64:")
    models, seconds = [], []
    for seed in range(members):
        model = network(seed)
        start = time.perf_counter()
        model.fit(X, y, epochs=epochs, batch_size=64)
        seconds.append(time.perf_counter() - start)
        models.append(model)
    scores = [model.evaluate(X_test, y_test) for model in models]
    for seed, (score, s) in enumerate(zip(scores, seconds)):
        print(f"  member {seed}: accuracy {score['accuracy']:.4f}, loss {score['loss']:.4f}, "
              f"trained in {s:.1f} s")
    accuracies = [score["accuracy"] for score in scores]
    losses = [score["loss"] for score in scores]
    start = time.perf_counter()
    combined = Ensemble(models).evaluate(X_test, y_test)
    predict = time.perf_counter() - start
    single = time.perf_counter()
    models[0].evaluate(X_test, y_test)
    single = time.perf_counter() - single
    print(f"  members: mean accuracy {np.mean(accuracies):.4f}, best {max(accuracies):.4f}; "
          f"mean loss {np.mean(losses):.4f}, best {min(losses):.4f}")
    print(f"  ensemble: accuracy {combined['accuracy']:.4f}, loss {combined['loss']:.4f}; "
          f"training {sum(seconds):.1f} s in all, evaluating {predict:.2f} s "
          f"(one member {single:.2f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print("\n".join(describe()))
    (X, y), (X_test, y_test) = load_mnist()
    if args.quick:
        X, y, X_test, y_test = X[:6000], y[:6000], X_test[:1000], y_test[:1000]
        args.repeats, args.members, args.epochs = 1, 2, 1
    augmentation(X, y, args.repeats)
    ensemble(X, y, X_test, y_test, args.members, args.epochs)


if __name__ == "__main__":
    main()
