"""Training throughput: fastnn against the pure-NumPy reference and PyTorch.

C1 — Nielsen's network [784, 30, 10]: sigmoid hidden and output layers,
sigmoid cross-entropy, SGD η = 0.1 with L2 λ = 5, batch 10, float32, one
epoch over 60,000 Fashion-MNIST images.
C4 — [784, 256, 128, 10] ReLU, softmax cross-entropy, Adam, batch 10,
float32: 600 steps (6,000 images).
C2 — the same network at batch 128: one epoch over 60,000 images.
C3 — [784, 2048, 2048, 10] ReLU, softmax cross-entropy, SGD with momentum,
batch 512, float32: 100 steps (51,200 images), two BLAS threads.

fastnn splits its optimizer step across OpenMP threads (all cores here)
when no matrix product of the step may wake BLAS's threads: in C4, not in C2
or C3.  ``fastnn-1-thread`` is the same run with OpenMP limited to one
thread.

Run ``pytest bench --benchmark-only``; each group prints medians, and the
summary at the end gives every entry's median as a ratio to NumPy's.
"""

import os

import numpy as np
import pytest
from conftest import blas_threads, openmp_limit, pause, torch_or_none
from numpy_reference import NumpyMLP

from fastnn import layers as L
from fastnn.model import Sequential
from fastnn.optimizers import SGD, Adam

C1 = dict(sizes=[784, 30, 10], lr=0.1, l2=5.0, batch=10)
#: epochs per timed call: fit validates its input once per call, as a user's
#: multi-epoch fit does, so one call covers several epochs of every library
C1_EPOCHS = 3


def fastnn_c1():
    return Sequential([L.Dense(784, 30, init="scaled_normal"), L.Sigmoid(),
                       L.Dense(30, 10, init="scaled_normal"), L.Sigmoid()],
                      loss="sigmoid_cross_entropy", optimizer=SGD(lr=C1["lr"]),
                      dtype="float32", seed=0, l2=C1["l2"])


@pytest.mark.benchmark(group=f"C1 [784,30,10] sigmoid, batch 10, {C1_EPOCHS} epochs")
def test_c1_fastnn(benchmark, fashion_mnist):
    X, y = fashion_mnist
    model = fastnn_c1()
    pause()
    with blas_threads(1):
        benchmark.pedantic(model.fit, args=(X, y),
                           kwargs=dict(epochs=C1_EPOCHS, batch_size=C1["batch"]),
                           rounds=5, iterations=1, warmup_rounds=1)
    assert model.evaluate(X[:10000], y[:10000])["accuracy"] > 0.8


@pytest.mark.benchmark(group=f"C1 [784,30,10] sigmoid, batch 10, {C1_EPOCHS} epochs")
def test_c1_numpy(benchmark, fashion_mnist):
    X, y = fashion_mnist
    model = NumpyMLP(C1["sizes"], lr=C1["lr"], l2=C1["l2"])
    rng = np.random.default_rng(0)
    pause()
    def epochs():
        for _ in range(C1_EPOCHS):
            model.train_epoch(X, y, C1["batch"], rng)

    with blas_threads(1):
        benchmark.pedantic(epochs, rounds=3, iterations=1, warmup_rounds=1)
    assert model.accuracy(X[:10000], y[:10000]) > 0.8


@pytest.mark.benchmark(group=f"C1 [784,30,10] sigmoid, batch 10, {C1_EPOCHS} epochs")
def test_c1_torch(benchmark, fashion_mnist):
    torch = torch_or_none()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    X, y = fashion_mnist
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 30), torch.nn.Sigmoid(), torch.nn.Linear(30, 10))
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    eye = torch.eye(10)
    optimizer = torch.optim.SGD(net.parameters(), lr=C1["lr"])
    n, batch, decay = X.shape[0], C1["batch"], C1["l2"] / X.shape[0]

    def epoch():
        order = torch.randperm(n)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss = loss_fn(net(Xt[rows]), eye[yt[rows]]) / len(rows)
            loss.backward()
            with torch.no_grad():  # L2 on the weights only, Nielsen's form
                for layer in (net[0], net[2]):
                    layer.weight.grad += decay * layer.weight
            optimizer.step()

    def epochs():
        for _ in range(C1_EPOCHS):
            epoch()

    torch.set_num_threads(1)
    pause()
    benchmark.pedantic(epochs, rounds=1, iterations=1, warmup_rounds=0)


# name: (widths, batch, optimizer, samples per timed call, BLAS threads, rounds)
WORKLOADS = {
    "C4": ([784, 256, 128, 10], 10, "adam", 6000, 1, 5),
    "C2": ([784, 256, 128, 10], 128, "adam", 60000, 2, 3),
    "C3": ([784, 2048, 2048, 10], 512, "momentum", 51200, 2, 2),
}


def fastnn_relu_net(widths, optimizer):
    layers = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1]):
        layers += [L.Dense(n_in, n_out, init="he_normal"), L.ReLU()]
    layers += [L.Dense(widths[-2], widths[-1]), L.Softmax()]
    opt = Adam(lr=1e-3) if optimizer == "adam" else SGD(lr=0.01, momentum=0.9)
    return Sequential(layers, loss="softmax_cross_entropy", optimizer=opt, dtype="float32", seed=0)


def torch_relu_trainer(torch, widths, optimizer, batch):
    torch.manual_seed(0)
    modules = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1]):
        modules += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    net = torch.nn.Sequential(*modules, torch.nn.Linear(widths[-2], widths[-1]))
    opt = (torch.optim.Adam(net.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(Xt, yt):
        order = torch.randperm(len(Xt))
        for start in range(0, len(Xt), batch):
            rows = order[start:start + batch]
            opt.zero_grad()
            loss_fn(net(Xt[rows]), yt[rows]).backward()
            opt.step()

    return epoch


@pytest.mark.parametrize("library", ["fastnn", "fastnn-1-thread", "numpy", "torch"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_relu_networks(benchmark, fashion_mnist, workload, library):
    widths, batch, optimizer, samples, threads, rounds = WORKLOADS[workload]
    X, y = fashion_mnist
    X, y = X[:samples], y[:samples]
    benchmark.group = f"{workload} {widths} ReLU {optimizer}, batch {batch}, {samples // batch} steps"
    benchmark.extra_info["steps"] = -(-samples // batch)
    openmp_threads = None
    if library.startswith("fastnn"):
        model = fastnn_relu_net(widths, optimizer)
        run = lambda: model.fit(X, y, epochs=1, batch_size=batch)  # noqa: E731
        # Explicit either way: PyTorch sets the count of the OpenMP runtime
        # it shares with fastnn when its benchmarks run first.
        openmp_threads = 1 if library == "fastnn-1-thread" else os.cpu_count()
    elif library == "numpy":
        model = NumpyMLP(widths, hidden="relu", output="softmax", optimizer=optimizer,
                         lr=1e-3 if optimizer == "adam" else 0.01)
        rng = np.random.default_rng(0)
        run = lambda: model.train_epoch(X, y, batch, rng)  # noqa: E731
    else:
        torch = torch_or_none()
        if torch is None:
            pytest.skip("PyTorch is not installed")
        torch.set_num_threads(threads)
        epoch = torch_relu_trainer(torch, widths, optimizer, batch)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        run = lambda: epoch(Xt, yt)  # noqa: E731
    pause()
    with blas_threads(threads), openmp_limit(openmp_threads):
        benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
