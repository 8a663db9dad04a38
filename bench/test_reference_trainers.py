"""The peers train by the same rules as fastnn.

With the whole training set as one batch the shuffling order cannot matter,
so from the same initial weights fastnn, the NumPy reference, PyTorch and
JAX must land on the same weights after a few epochs.  The NumPy reference
is the transcription of the formulas the others are held to.  These are
correctness checks, not benchmarks: ``--benchmark-only`` skips them.
"""

import numpy as np
import pytest
from numpy_reference import NumpyMLP
from peers import jax_or_none, torch_or_none
from workloads import Workload, initial_weights

N, EPOCHS = 64, 3
SMALL = (12, 8, 6, 3)
CASES = {
    "sigmoid-sgd-l2": Workload("C1-like", SMALL, "sigmoid", "sigmoid", "sgd", lr=0.5, l2=5.0,
                               batch=N, epochs=EPOCHS, threads=1, rounds=1),
    "relu-adam": Workload("C2-like", SMALL, "relu", "softmax", "adam", lr=0.05, batch=N,
                          epochs=EPOCHS, threads=1, rounds=1),
    "relu-momentum": Workload("C3-like", SMALL, "relu", "softmax", "momentum", lr=0.2, batch=N,
                              epochs=EPOCHS, threads=1, rounds=1),
}


def _data():
    rng = np.random.default_rng(3)
    X = rng.random((N, SMALL[0]), dtype=np.float32)
    # Labels that depend on the inputs, so the gradients are not noise.
    y = (X[:, :3] @ np.array([3.0, -2.0, 1.0], np.float32) > 0.7).astype(np.int64) + (X[:, 3] > 0.5)
    return X, y


def _options(w):
    return dict(hidden=w.hidden, output=w.output, optimizer=w.optimizer, lr=w.lr, l2=w.l2,
                momentum=w.momentum)


def _numpy(w, weights, X, y):
    ref = NumpyMLP(list(w.widths), **_options(w))
    ref.set_weights(weights)
    for _ in range(w.epochs):
        ref.train_epoch(X, y, w.batch, np.random.default_rng(0))
    return list(zip(ref.W, ref.b))


def _fastnn(w, X, y):
    model = w.fastnn_model()
    model.fit(X, y, epochs=w.epochs, batch_size=w.batch, shuffle=False)
    return initial_weights(model)


def _torch(w, weights, X, y):
    torch = torch_or_none()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    from torch_reference import TorchMLP

    ref = TorchMLP(torch, weights, n_train=N, **_options(w))
    for _ in range(w.epochs):
        ref.train_epoch(torch.from_numpy(X), torch.from_numpy(y), w.batch)
    return [(lin.weight.detach().numpy().T, lin.bias.detach().numpy()) for lin in ref.linears]


def _jax(w, weights, X, y):
    if jax_or_none() is None:
        pytest.skip("JAX is not installed")
    import jax.numpy as jnp
    from jax_reference import JaxMLP

    ref = JaxMLP(weights, **_options(w))
    for _ in range(w.epochs):
        ref.train_epoch(jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32), w.batch)
    return ref.weights()


@pytest.mark.parametrize("library", ["fastnn", "torch", "jax"])
@pytest.mark.parametrize("case", list(CASES))
def test_full_batch_epochs_match_numpy_reference(case, library):
    w = CASES[case]
    X, y = _data()
    weights = initial_weights(w.fastnn_model())
    expected = _numpy(w, weights, X, y)
    got = {"fastnn": lambda: _fastnn(w, X, y), "torch": lambda: _torch(w, weights, X, y),
           "jax": lambda: _jax(w, weights, X, y)}[library]()
    moved = max(np.abs(W1 - W0).max() for (W1, _), (W0, _) in zip(expected, weights))
    assert moved > 1e-2, "the reference barely trained: the comparison would prove nothing"
    for (W, b), (W_ref, b_ref) in zip(got, expected):
        np.testing.assert_allclose(W, W_ref, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=2e-5)


def test_jax_epoch_takes_the_partial_last_batch():
    """ceil(n / batch) steps per epoch, as fastnn and the other trainers take."""
    if jax_or_none() is None:
        pytest.skip("JAX is not installed")
    import jax.numpy as jnp
    from jax_reference import JaxMLP

    w = CASES["relu-adam"]
    X, y = _data()
    ref = JaxMLP(initial_weights(w.fastnn_model()), **_options(w))
    ref.train_epoch(jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32), 28)  # 28 + 28 + 8
    assert int(ref.state[1]["t"]) == 3
