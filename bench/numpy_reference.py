"""A clean, vectorized pure-NumPy trainer: the reference fastnn is measured against.

Whole-batch matrix products, preallocated buffers, in-place updates with
``out=`` — the fastest plain NumPy form of the same training step, not a
strawman.  It supports what the benchmarks need: dense layers with sigmoid,
ReLU or identity activations; sigmoid cross-entropy or softmax cross-entropy
outputs; SGD (with Nielsen's L2), momentum SGD and Adam.
"""

import numpy as np


def _sigmoid(z, out):
    # σ(z) = ½(1 + tanh(z/2)): no overflow for any z
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


class NumpyMLP:
    """Dense network trained with mini-batch gradient descent in NumPy.

    Parameters
    ----------
    sizes : list of int
        Layer widths, input first.
    hidden : {"sigmoid", "relu"}
        Activation of the hidden layers.
    output : {"sigmoid", "softmax"}
        Output layer, trained with the matching cross-entropy.
    optimizer : {"sgd", "momentum", "adam"}
    """

    def __init__(self, sizes, hidden="sigmoid", output="sigmoid", optimizer="sgd",
                 lr=0.1, l2=0.0, momentum=0.9, betas=(0.9, 0.999), eps=1e-8,
                 dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        self.W = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(b, dtype) for b in sizes[1:]]
        self.hidden, self.output, self.optimizer = hidden, output, optimizer
        self.lr, self.l2, self.momentum, self.betas, self.eps = lr, l2, momentum, betas, eps
        self.dtype = dtype
        self.t = 0
        params = self.W + self.b
        self.grads = [np.empty_like(p) for p in params]
        self.scratch = [np.empty_like(p) for p in params]
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self._batch = None

    def set_weights(self, weights):
        """Start from given (W, b) pairs, W of shape (n_in, n_out), e.g. a fastnn model's."""
        if [W.shape for W, _ in weights] != [W.shape for W in self.W]:
            raise ValueError("weights do not match the network's layer widths")
        for W, b, (W_new, b_new) in zip(self.W, self.b, weights):
            W[...] = W_new
            b[...] = b_new

    def _buffers(self, m):
        if self._batch != m:
            self.acts = [np.empty((m, w.shape[1]), self.dtype) for w in self.W]
            self.deltas = [np.empty((m, w.shape[0]), self.dtype) for w in self.W]
            self._batch = m

    def _forward(self, x):
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = np.matmul(x, W, out=self.acts[i])
            z += b
            last = i == len(self.W) - 1
            if last and self.output == "softmax":
                z -= z.max(axis=1, keepdims=True)
                np.exp(z, out=z)
                z /= z.sum(axis=1, keepdims=True)
            elif last or self.hidden == "sigmoid":
                _sigmoid(z, z)
            else:
                np.maximum(z, 0, out=z)
            x = z
        return x

    def train_step(self, x, y_onehot, n_train):
        """One mini-batch step; y_onehot holds the batch's one-hot targets."""
        m = x.shape[0]
        self._buffers(m)
        out = self._forward(x)
        delta = np.subtract(out, y_onehot, out=self.acts[-1])  # σ(z) − y or softmax(z) − y
        delta *= 1.0 / m
        L = len(self.W)
        for i in range(L - 1, -1, -1):
            inputs = x if i == 0 else self.acts[i - 1]
            np.matmul(inputs.T, delta, out=self.grads[i])
            np.sum(delta, axis=0, out=self.grads[L + i])
            if i > 0:
                prev = np.matmul(delta, self.W[i].T, out=self.deltas[i])
                a = self.acts[i - 1]
                if self.hidden == "sigmoid":
                    prev *= a
                    prev *= 1 - a
                else:
                    prev *= a > 0
                delta = prev
        self._update(n_train)

    def _update(self, n_train):
        self.t += 1
        params = self.W + self.b
        n_weights = len(self.W)
        for k, (p, g) in enumerate(zip(params, self.grads)):
            if self.l2 and k < n_weights:
                # w ← (1 − ηλ/n)·w − η·g, Nielsen's L2-regularized SGD
                g += (self.l2 / n_train) * p
            if self.optimizer == "sgd":
                g *= self.lr
                p -= g
            elif self.optimizer == "momentum":
                buf = self.m[k]
                if self.t == 1:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                np.multiply(buf, self.lr, out=g)
                p -= g
            else:  # adam
                b1, b2 = self.betas
                m, v, s = self.m[k], self.v[k], self.scratch[k]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                np.multiply(g, g, out=s)
                s *= 1 - b2
                v += s
                step = self.lr / (1 - b1 ** self.t)
                np.sqrt(v, out=s)
                s *= 1.0 / np.sqrt(1 - b2 ** self.t)
                s += self.eps
                np.divide(m, s, out=s)
                s *= step
                p -= s

    def train_epoch(self, X, labels, batch_size, rng):
        """One shuffled epoch of mini-batch training."""
        n, n_out = X.shape[0], self.W[-1].shape[1]
        order = rng.permutation(n)
        eye = np.eye(n_out, dtype=self.dtype)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            self.train_step(X[rows], eye[labels[rows]], n)

    def predict_proba(self, X):
        """Plain forward pass, allocating as it goes: what a NumPy user writes to predict."""
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = X @ W + b
            if i < len(self.W) - 1:
                X = np.maximum(z, 0) if self.hidden == "relu" else 0.5 * (1 + np.tanh(0.5 * z))
            elif self.output == "softmax":
                e = np.exp(z - z.max(axis=1, keepdims=True))
                X = e / e.sum(axis=1, keepdims=True)
            else:
                X = 0.5 * (1 + np.tanh(0.5 * z))
        return X

    def accuracy(self, X, labels):
        self._batch = None
        self._buffers(X.shape[0])
        predicted = self._forward(X).argmax(axis=1)
        self._batch = None
        return float((predicted == labels).mean())
