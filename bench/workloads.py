"""The training workloads every library is measured on, and their fastnn form.

C1 — Nielsen's network [784, 30, 10]: sigmoid hidden and output layers,
sigmoid cross-entropy, SGD η = 0.1 with L2 λ = 5 (Nielsen's λ/n scaling),
batch 10.
C4 — [784, 256, 128, 10] ReLU, softmax cross-entropy, Adam (PyTorch's
semantics, lr 10⁻³), batch 10.
C2 — the same network at batch 128.
C3 — [784, 2048, 2048, 10] ReLU, softmax cross-entropy, SGD with momentum
0.9, lr 0.01, batch 512.

All float32.  Every peer starts from the weights of the seed-0 fastnn model
(``initial_weights``), so the runs differ only in the shuffling order.
"""

from dataclasses import dataclass

from fastnn import layers as L
from fastnn.model import Sequential
from fastnn.optimizers import SGD, Adam


@dataclass(frozen=True)
class Workload:
    """One training set-up, in the terms the reference trainers take.

    Attributes
    ----------
    name : str
    widths : tuple of int
        Layer widths, input first.
    hidden : {"sigmoid", "relu"}
    output : {"sigmoid", "softmax"}
        Output layer, trained with the matching cross-entropy.
    optimizer : {"sgd", "momentum", "adam"}
    lr, l2, momentum : float
    batch : int
    epochs : int
        Epochs over the 60,000 training images per timed call.
    threads : int
        BLAS (and PyTorch) threads.
    rounds : int
        Timed calls when ``--benchmark-min-rounds`` allows as many.
    """

    name: str
    widths: tuple
    hidden: str
    output: str
    optimizer: str
    lr: float
    batch: int
    epochs: int
    threads: int
    rounds: int
    l2: float = 0.0
    momentum: float = 0.9

    def steps(self, n_samples):
        """Optimizer steps per timed call over n_samples rows (last batch partial)."""
        return self.epochs * -(-n_samples // self.batch)

    def label(self, n_samples):
        hidden = "sigmoid" if self.hidden == "sigmoid" else "ReLU"
        epochs = f"{self.epochs} epoch{'s' if self.epochs > 1 else ''}"
        return (f"{self.name} {list(self.widths)} {hidden} {self.optimizer}, batch {self.batch}, "
                f"{epochs} of {n_samples} ({self.steps(n_samples)} steps), {self.threads} BLAS "
                f"thread{'s' if self.threads > 1 else ''}")

    def fastnn_model(self, widths=None, dtype="float32"):
        """A fresh seed-0 fastnn model of this workload (optionally other widths, dtype)."""
        widths = tuple(widths or self.widths)
        if self.hidden == "sigmoid":
            act, init, last_init = L.Sigmoid, "scaled_normal", "scaled_normal"
        else:
            act, init, last_init = L.ReLU, "he_normal", "glorot_uniform"
        layers = []
        for n_in, n_out in zip(widths[:-2], widths[1:-1]):
            layers += [L.Dense(n_in, n_out, init=init), act()]
        layers.append(L.Dense(widths[-2], widths[-1], init=last_init))
        layers.append(L.Sigmoid() if self.output == "sigmoid" else L.Softmax())
        if self.optimizer == "adam":
            optimizer = Adam(lr=self.lr)
        elif self.optimizer == "momentum":
            optimizer = SGD(lr=self.lr, momentum=self.momentum)
        else:
            optimizer = SGD(lr=self.lr)
        return Sequential(layers, loss=f"{self.output}_cross_entropy", optimizer=optimizer,
                          dtype=dtype, seed=0, l2=self.l2)


def initial_weights(model):
    """Copies of a fastnn model's (W, b) pairs, W of shape (n_in, n_out)."""
    return [(layer.params["W"].copy(), layer.params["b"].copy())
            for layer in model.layers if isinstance(layer, L.Dense)]


C1 = Workload("C1", (784, 30, 10), "sigmoid", "sigmoid", "sgd", lr=0.1, l2=5.0, batch=10,
              epochs=3, threads=1, rounds=3)
C4 = Workload("C4", (784, 256, 128, 10), "relu", "softmax", "adam", lr=1e-3, batch=10,
              epochs=1, threads=1, rounds=3)
C2 = Workload("C2", (784, 256, 128, 10), "relu", "softmax", "adam", lr=1e-3, batch=128,
              epochs=1, threads=2, rounds=3)
C3 = Workload("C3", (784, 2048, 2048, 10), "relu", "softmax", "momentum", lr=0.01, batch=512,
              epochs=1, threads=2, rounds=2)
WORKLOADS = {w.name: w for w in (C1, C4, C2, C3)}
