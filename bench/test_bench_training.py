"""Training throughput: fastnn against the NumPy reference, PyTorch and JAX.

The workloads (``workloads.py``): C1 Nielsen's [784, 30, 10] sigmoid network
with SGD + L2 at batch 10; C4 [784, 256, 128, 10] ReLU with Adam at batch
10; C2 the same at batch 128; C3 [784, 2048, 2048, 10] ReLU with momentum
at batch 512.  Every timed call trains whole epochs over all 60,000
Fashion-MNIST training images (188 MB of float32), so each step gathers its
batch's rows from the full array, as a user's run does; C1 runs three epochs
per call, the others one.  The summary divides each median by the steps of
a call to give the time per step (for C4, over an epoch-long run of 6,000
steps).

Every library starts from the same initial weights (the seed-0 fastnn
model's) and applies the same update rule; after its timed epochs each
one's test accuracy must exceed 0.8 and lie within 2 points of fastnn's
after the same number of epochs.

* fastnn — ``Sequential.fit``; its optimizer step runs on OpenMP threads
  (all cores) when no matrix product of the step may wake BLAS's threads;
  ``fastnn-1-thread`` is the same run with OpenMP limited to one thread;
* numpy — the vectorized, preallocated reference of ``numpy_reference.py``;
* torch — ``torch_reference.py``, ``torch.set_num_threads`` = the
  workload's BLAS threads;
* jax — ``jax_reference.py``: one jit-compiled epoch, ``lax.scan`` over
  the batches; compiled before timing; XLA's thread pool spans every core.

Run ``pytest bench --benchmark-only`` (``--benchmark-min-rounds 1`` for one
timed call each); the summary gives every median as a ratio to NumPy's and
to fastnn's.
"""

import os

import numpy as np
import pytest
from numpy_reference import NumpyMLP
from peers import jax_or_none, torch_or_none
from threads import blas_threads, openmp_limit, pause
from workloads import WORKLOADS, initial_weights

LIBRARIES = ["fastnn", "fastnn-1-thread", "numpy", "torch", "jax"]
#: the sanity bounds on every library's test accuracy after training
MIN_ACCURACY, MAX_GAP = 0.8, 0.02


def _calls(function):
    """Wrap function so that the number of times it ran can be read back."""
    def counted():
        counted.count += 1
        function()

    counted.count = 0
    return counted


def _trainer(library, workload, X, y):
    """(one timed call, accuracy on a test set) for one library."""
    model = workload.fastnn_model()
    weights = initial_weights(model)
    options = dict(hidden=workload.hidden, output=workload.output, optimizer=workload.optimizer,
                   lr=workload.lr, l2=workload.l2, momentum=workload.momentum)
    if library.startswith("fastnn"):
        def run():
            model.fit(X, y, epochs=workload.epochs, batch_size=workload.batch)
        return run, lambda Xt, yt: model.evaluate(Xt, yt)["accuracy"]
    if library == "numpy":
        ref = NumpyMLP(list(workload.widths), **options)
        ref.set_weights(weights)
        rng = np.random.default_rng(0)

        def run():
            for _ in range(workload.epochs):
                ref.train_epoch(X, y, workload.batch, rng)
        return run, ref.accuracy
    if library == "torch":
        torch = torch_or_none()
        if torch is None:
            pytest.skip("PyTorch is not installed")
        from torch_reference import TorchMLP

        torch.manual_seed(0)
        torch.set_num_threads(workload.threads)
        ref = TorchMLP(torch, weights, n_train=X.shape[0], **options)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def run():
            for _ in range(workload.epochs):
                ref.train_epoch(Xt, yt, workload.batch)
        return run, ref.accuracy
    if jax_or_none() is None:
        pytest.skip("JAX is not installed")
    import jax.numpy as jnp
    from jax_reference import JaxMLP

    ref = JaxMLP(weights, **options)
    Xj, yj = jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32)
    ref.compile(Xj, yj, workload.batch)  # compilation is not part of the timing

    def run():
        for _ in range(workload.epochs):
            ref.train_epoch(Xj, yj, workload.batch)
    return run, ref.accuracy


@pytest.fixture(scope="session")
def fastnn_accuracy(fashion_mnist, fashion_mnist_test):
    """Test accuracy of a fresh fastnn model of a workload after some epochs (cached)."""
    X, y = fashion_mnist
    cache = {}

    def accuracy(workload, epochs):
        if (workload.name, epochs) not in cache:
            model = workload.fastnn_model()
            with blas_threads(workload.threads):
                model.fit(X, y, epochs=epochs, batch_size=workload.batch)
            cache[workload.name, epochs] = model.evaluate(*fashion_mnist_test)["accuracy"]
        return cache[workload.name, epochs]

    return accuracy


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", list(WORKLOADS))
def test_training(benchmark, fashion_mnist, fashion_mnist_test, fastnn_accuracy, rounds,
                  name, library):
    workload = WORKLOADS[name]
    X, y = fashion_mnist
    run, accuracy = _trainer(library, workload, X, y)
    run = _calls(run)
    benchmark.group = workload.label(X.shape[0])
    benchmark.extra_info.update(library=library, steps=workload.steps(X.shape[0]))
    # fastnn's count is explicit either way: PyTorch sets the count of the
    # OpenMP runtime it shares with fastnn when its benchmarks run first.
    # The peers' OpenMP is left alone: a limit would also reach PyTorch's own
    # runtime and override its set_num_threads.
    openmp_threads = None
    if library.startswith("fastnn"):
        openmp_threads = 1 if library == "fastnn-1-thread" else os.cpu_count()
    pause()
    with blas_threads(workload.threads), openmp_limit(openmp_threads):
        benchmark.pedantic(run, rounds=rounds(workload.rounds), iterations=1, warmup_rounds=1)
    epochs = run.count * workload.epochs
    benchmark.extra_info["epochs_trained"] = epochs
    if fashion_mnist_test is None:
        return  # random stand-in data: nothing to learn, only the timing counts
    ours = accuracy(*fashion_mnist_test)
    assert ours > MIN_ACCURACY, f"{library} reaches {ours:.4f} after {epochs} epochs"
    if not library.startswith("fastnn"):
        reference = fastnn_accuracy(workload, epochs)
        assert abs(ours - reference) < MAX_GAP, (
            f"{library} reaches {ours:.4f} after {epochs} epochs, fastnn {reference:.4f}")
