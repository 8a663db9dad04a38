"""Training throughput: fastnn against the pure-NumPy reference and PyTorch.

C1 — Nielsen's network [784, 30, 10]: sigmoid hidden and output layers,
sigmoid cross-entropy, SGD η = 0.1 with L2 λ = 5, batch 10, float32, one
epoch over 60,000 Fashion-MNIST images.

Run ``pytest bench --benchmark-only``; each group prints medians, and the
summary at the end gives every entry's median as a ratio to NumPy's.
"""

import numpy as np
import pytest
from conftest import blas_threads, pause, torch_or_none
from numpy_reference import NumpyMLP

from fastnn import layers as L
from fastnn.model import Sequential
from fastnn.optimizers import SGD

C1 = dict(sizes=[784, 30, 10], lr=0.1, l2=5.0, batch=10)


def fastnn_c1():
    return Sequential([L.Dense(784, 30, init="scaled_normal"), L.Sigmoid(),
                       L.Dense(30, 10, init="scaled_normal"), L.Sigmoid()],
                      loss="sigmoid_cross_entropy", optimizer=SGD(lr=C1["lr"]),
                      dtype="float32", seed=0, l2=C1["l2"])


@pytest.mark.benchmark(group="C1 epoch [784,30,10] sigmoid, batch 10")
def test_c1_fastnn(benchmark, fashion_mnist):
    X, y = fashion_mnist
    model = fastnn_c1()
    pause()
    with blas_threads(1):
        benchmark.pedantic(model.fit, args=(X, y), kwargs=dict(epochs=1, batch_size=C1["batch"]),
                           rounds=5, iterations=1, warmup_rounds=1)
    assert model.evaluate(X[:10000], y[:10000])["accuracy"] > 0.8


@pytest.mark.benchmark(group="C1 epoch [784,30,10] sigmoid, batch 10")
def test_c1_numpy(benchmark, fashion_mnist):
    X, y = fashion_mnist
    model = NumpyMLP(C1["sizes"], lr=C1["lr"], l2=C1["l2"])
    rng = np.random.default_rng(0)
    pause()
    with blas_threads(1):
        benchmark.pedantic(model.train_epoch, args=(X, y, C1["batch"], rng),
                           rounds=3, iterations=1, warmup_rounds=1)
    assert model.accuracy(X[:10000], y[:10000]) > 0.8


@pytest.mark.benchmark(group="C1 epoch [784,30,10] sigmoid, batch 10")
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

    torch.set_num_threads(1)
    pause()
    benchmark.pedantic(epoch, rounds=2, iterations=1, warmup_rounds=0)
