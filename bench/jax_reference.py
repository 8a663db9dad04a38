"""The JAX peer: a trainer written the way a JAX user writes a fast one.

One ``jax.jit``-compiled function runs a whole epoch: it draws the shuffled
order from a PRNG key, and a ``lax.scan`` over the mini-batches gathers each
batch's rows from the training array inside the compiled code, takes the
gradient with ``jax.grad`` and applies the update.  A last, partial batch (as
fastnn and the other trainers take) follows the scan in the same function.
The parameter and optimizer state is donated, so XLA updates it in place.
Compilation happens ahead of time (``lower().compile()``), outside any
timing.

Update rules, with g the mean gradient over the batch:

* sgd — Nielsen's L2:  g_W ← g_W + (λ/n)·W (weights only, n the training-set
  size), then θ ← θ − γ·g;
* momentum — PyTorch's:  b ← μ·b + g (b starting at 0, so b₁ = g₁),
  θ ← θ − γ·b;
* adam — PyTorch's:  m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,
  θ ← θ − γ/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).

The losses are the cross-entropies on the logits, averaged over the batch:
softmax CE  −log softmax(z)_y, and sigmoid CE  Σⱼ softplus(zⱼ) − yⱼzⱼ.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def _logits(params, x, hidden):
    act = jax.nn.sigmoid if hidden == "sigmoid" else jax.nn.relu
    for W, b in params[:-1]:
        x = act(x @ W + b)
    W, b = params[-1]
    return x @ W + b


class JaxMLP:
    """An MLP whose epochs run as one compiled JAX function.

    Parameters
    ----------
    weights : list of (ndarray, ndarray)
        Initial (W, b) pairs, W of shape (n_in, n_out).
    hidden : {"sigmoid", "relu"}
    output : {"sigmoid", "softmax"}
    optimizer : {"sgd", "momentum", "adam"}
    lr, l2, momentum : float
    betas : (float, float)
    eps : float
    seed : int
        Seed of the shuffling key.
    """

    def __init__(self, weights, hidden="relu", output="softmax", optimizer="adam", lr=1e-3,
                 l2=0.0, momentum=0.9, betas=(0.9, 0.999), eps=1e-8, seed=0):
        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in weights]
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        self.state = (params, {"t": jnp.zeros((), jnp.int32), "m": zeros,
                               "v": jax.tree_util.tree_map(jnp.zeros_like, params)})
        self.hidden, self.output, self.optimizer = hidden, output, optimizer
        self.lr, self.l2, self.momentum, self.betas, self.eps = lr, l2, momentum, betas, eps
        self.n_outputs = weights[-1][0].shape[1]
        self.key = jax.random.PRNGKey(seed)
        self._compiled = {}
        self._proba = jax.jit(self._probabilities)

    # ------------------------------------------------------------- the maths

    def _loss(self, params, x, labels):
        z = _logits(params, x, self.hidden)
        if self.output == "sigmoid":
            y = jax.nn.one_hot(labels, self.n_outputs, dtype=z.dtype)
            return jnp.mean(jnp.sum(jax.nn.softplus(z) - y * z, axis=1))
        log_p = jax.nn.log_softmax(z)
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))

    def _update(self, state, grads, n_train):
        params, opt = state
        if self.l2:
            grads = [(gW + (self.l2 / n_train) * W, gb) for (gW, gb), (W, _) in zip(grads, params)]
        tree = jax.tree_util.tree_map
        t = opt["t"] + 1
        if self.optimizer == "sgd":
            params = tree(lambda p, g: p - self.lr * g, params, grads)
            m, v = opt["m"], opt["v"]
        elif self.optimizer == "momentum":
            m = tree(lambda b, g: self.momentum * b + g, opt["m"], grads)
            params = tree(lambda p, b: p - self.lr * b, params, m)
            v = opt["v"]
        else:
            b1, b2 = self.betas
            tf = t.astype(jnp.float32)
            m = tree(lambda m, g: b1 * m + (1 - b1) * g, opt["m"], grads)
            v = tree(lambda v, g: b2 * v + (1 - b2) * g * g, opt["v"], grads)
            step = self.lr / (1 - b1 ** tf)
            root = jnp.sqrt(1 - b2 ** tf)
            params = tree(lambda p, m, v: p - step * m / (jnp.sqrt(v) / root + self.eps),
                          params, m, v)
        return params, {"t": t, "m": m, "v": v}

    def _epoch(self, state, key, X, labels, batch_size):
        n = X.shape[0]
        full, tail = divmod(n, batch_size)
        order = jax.random.permutation(key, n)

        def step(state, rows):
            grads = jax.grad(self._loss)(state[0], X[rows], labels[rows])
            return self._update(state, grads, n), None

        state, _ = lax.scan(step, state, order[:full * batch_size].reshape(full, batch_size))
        if tail:
            state, _ = step(state, order[full * batch_size:])
        return state

    def _probabilities(self, params, X):
        z = _logits(params, X, self.hidden)
        return jax.nn.sigmoid(z) if self.output == "sigmoid" else jax.nn.softmax(z)

    # ------------------------------------------------------------ the driver

    def compile(self, X, labels, batch_size):
        """Compile the epoch for these shapes; later epochs only run it."""
        shape = (X.shape, batch_size)
        if shape not in self._compiled:
            epoch = jax.jit(functools.partial(self._epoch, batch_size=batch_size),
                            donate_argnums=(0,))
            self._compiled[shape] = epoch.lower(self.state, self.key, X, labels).compile()
        return self._compiled[shape]

    def train_epoch(self, X, labels, batch_size):
        """One shuffled epoch over device arrays X (float32) and labels (int32).

        Waits for the result, so that a timing covers the whole epoch.
        """
        self.key, key = jax.random.split(self.key)
        self.state = self.compile(X, labels, batch_size)(self.state, key, X, labels)
        jax.block_until_ready(self.state)

    def weights(self):
        """The current (W, b) pairs as NumPy arrays."""
        return [(np.asarray(W), np.asarray(b)) for W, b in self.state[0]]

    def predict_proba(self, X):
        """Class probabilities of a NumPy array, as a NumPy array (jit-compiled forward)."""
        return np.asarray(self._proba(self.state[0], X))

    def accuracy(self, X, labels):
        return float((self.predict_proba(X).argmax(axis=1) == labels).mean())
