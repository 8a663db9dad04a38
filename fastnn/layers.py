"""Layers: dense, one layer per activation, dropout and batch normalization.

Each layer has a forward and a backward method side by side.  ``forward``
keeps what ``backward`` needs; ``backward`` writes parameter gradients into
the layer's ``grads`` views (slices of the model's flat gradient buffer) and
returns the gradient with respect to the input.  The arithmetic is done by the
compiled kernels of ``fastnn_ext``; the same kernels run in the compiled epoch
loop, so this layer-by-layer path gives the same numbers as the fast path.
"""

from dataclasses import dataclass

import numpy as np

from fastnn import initializers
from fastnn._validation import check_finite_number, check_positive_int
from fastnn_ext import activations as _act
from fastnn_ext import batchnorm as _batchnorm
from fastnn_ext import dense as _dense
from fastnn_ext import dropout as _dropout


@dataclass(frozen=True)
class ParamSpec:
    """A trainable array: its name, shape, whether weight decay applies, and how to draw it."""

    name: str
    shape: tuple
    decay: bool
    init: object
    fan_in: int
    fan_out: int


class Layer:
    """Base layer.  ``params`` and ``grads`` map names to views set by the model."""

    #: op code of the compiled epoch loop, or None if the layer has no compiled form
    op = None

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.n_in = None
        self.n_out = None

    def build(self, n_in):
        """Fix the input width; return the output width."""
        self.n_in = self.n_out = n_in
        return n_in

    def param_specs(self):
        return []

    def buffer_specs(self):
        return []

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad_out, need_grad_in=True):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully-connected layer  y = x·W + b,  W of shape (n_in, n_out).

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    init : str or callable
        Weight initializer, see ``fastnn.initializers`` (default
        ``"glorot_uniform"``).
    bias_init : str or callable
        Bias initializer (default ``"zeros"``; Nielsen's networks use
        ``"normal"``).
    """

    op = "dense"

    def __init__(self, n_in, n_out, init="glorot_uniform", bias_init="zeros"):
        super().__init__()
        self.n_in = check_positive_int("n_in", n_in)
        self.n_out = check_positive_int("n_out", n_out)
        self.init = initializers.get(init)
        self.bias_init = initializers.get(bias_init)
        self._x = None

    def build(self, n_in):
        if n_in != self.n_in:
            raise ValueError(f"Dense({self.n_in}, {self.n_out}) receives inputs of width {n_in}")
        return self.n_out

    def param_specs(self):
        return [
            ParamSpec("W", (self.n_in, self.n_out), True, self.init, self.n_in, self.n_out),
            ParamSpec("b", (self.n_out,), False, self.bias_init, self.n_in, self.n_out),
        ]

    def forward(self, x, training=False):
        self._x = x
        out = np.empty((x.shape[0], self.n_out), dtype=x.dtype)
        _dense.forward(x, self.params["W"], self.params["b"], out)
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(self._x) if need_grad_in else None
        _dense.backward(self._x, self.params["W"], grad_out, self.grads["W"],
                        self.grads["b"], grad_in)
        return grad_in

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out})"


class Activation(Layer):
    """Element-wise activation with its derivative taken from the saved output."""

    op = "activation"
    code = _act.IDENTITY
    alpha = 0.0

    def forward(self, x, training=False):
        out = np.empty_like(x)
        _act.forward(x, out, self.code, self.alpha)
        self._out = out
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(grad_out)
        _act.backward(self._out, grad_out, grad_in, self.code, self.alpha)
        return grad_in


class Identity(Activation):
    """f(z) = z."""

    code = _act.IDENTITY


class Sigmoid(Activation):
    """f(z) = 1 / (1 + e^{−z}),  f' = f(1 − f)."""

    code = _act.SIGMOID


class Tanh(Activation):
    """f(z) = tanh z,  f' = 1 − f²."""

    code = _act.TANH


class ReLU(Activation):
    """f(z) = max(z, 0),  f' = [z > 0]."""

    code = _act.RELU


class LeakyReLU(Activation):
    """f(z) = z if z > 0 else α·z, with a fixed slope α ≥ 0 (default 0.01)."""

    code = _act.LEAKY_RELU

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = check_finite_number("alpha", alpha, minimum=0.0)

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class PReLU(Layer):
    """f(z) = z if z > 0 else a_j·z with a learned slope a_j per unit (He et al. 2015).

    Parameters
    ----------
    init_slope : float
        Initial value of every slope (default 0.25).
    """

    op = "prelu"

    def __init__(self, init_slope=0.25):
        super().__init__()
        self.init_slope = check_finite_number("init_slope", init_slope)

    def param_specs(self):
        slope = self.init_slope
        return [ParamSpec("slope", (self.n_out,), False,
                          lambda rng, shape, fan_in, fan_out: np.full(shape, slope),
                          self.n_in, self.n_out)]

    def forward(self, x, training=False):
        self._x = x
        out = np.empty_like(x)
        _act.prelu(x, self.params["slope"], out)
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(grad_out)
        _act.prelu_grad(self._x, self.params["slope"], grad_out, grad_in, self.grads["slope"])
        return grad_in


class Softmax(Layer):
    """Row-wise f(z)_k = e^{z_k} / Σ_j e^{z_j}, computed with the row maximum subtracted."""

    op = "softmax"

    def forward(self, x, training=False):
        out = np.empty_like(x)
        _act.softmax(x, out)
        self._out = out
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(grad_out)
        _act.softmax_grad(self._out, grad_out, grad_in)
        return grad_in


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014).

    While training, each unit is dropped — set to zero — with probability
    ``rate`` and the kept ones are scaled by 1/(1 − rate), so the expected
    output equals the input; at evaluation the layer is the identity.  The
    mask is drawn in compiled code from the model's random generator.

    Parameters
    ----------
    rate : float
        Probability of DROPPING a unit, 0 ≤ rate < 1 (the keep probability
        is 1 − rate).
    """

    op = "dropout"

    def __init__(self, rate):
        super().__init__()
        self.rate = check_finite_number("rate (probability of dropping a unit)", rate,
                                        minimum=0.0)
        if self.rate >= 1:
            raise ValueError(f"rate (probability of dropping a unit) must be < 1, got {rate}")
        self.rng = None
        self._mask = None

    def forward(self, x, training=False):
        if not training:
            self._mask = None
            return x
        out, self._mask = np.empty_like(x), np.empty_like(x)
        _dropout.forward(self.rng, x, out, self._mask, self.rate)
        return out

    def backward(self, grad_out, need_grad_in=True):
        if not need_grad_in:
            return None
        grad_in = np.empty_like(grad_out)
        _dropout.backward(grad_out, self._mask, grad_in)
        return grad_in

    def __repr__(self):
        return f"Dropout(rate={self.rate})"


class BatchNorm(Layer):
    """Batch normalization of a dense layer's outputs (Ioffe & Szegedy 2015).

    Training: y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch mean and biased
    variance per feature; the running statistics follow
    r ← (1 − momentum)·r + momentum·s (unbiased variance), as PyTorch's
    ``BatchNorm1d``.  Evaluation uses the running statistics.  Training
    needs batches of at least two rows.

    Parameters
    ----------
    momentum : float
        Weight of each batch in the running statistics, in [0, 1].
    eps : float
        Added to the variance, > 0.
    """

    op = "batchnorm"

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum = check_finite_number("momentum", momentum, minimum=0.0, maximum=1.0)
        self.eps = check_finite_number("eps", eps, minimum=0.0, open_min=True)

    def param_specs(self):
        ones = lambda rng, shape, fan_in, fan_out: np.ones(shape)  # noqa: E731
        return [ParamSpec("gamma", (self.n_out,), False, ones, self.n_in, self.n_out),
                ParamSpec("beta", (self.n_out,), False, initializers.zeros, self.n_in, self.n_out)]

    def buffer_specs(self):
        """Non-trainable state: (name, shape, initial value)."""
        return [("running_mean", (self.n_out,), 0.0), ("running_var", (self.n_out,), 1.0)]

    def forward(self, x, training=False):
        out = np.empty_like(x)
        if not training:
            _batchnorm.forward_eval(x, self.params["gamma"], self.params["beta"], out,
                                    self.buffers["running_mean"], self.buffers["running_var"],
                                    self.eps)
            return out
        n = x.shape[1]
        self._xhat = np.empty_like(x)
        mean, self._invstd = np.empty(n, x.dtype), np.empty(n, x.dtype)
        _batchnorm.forward_train(x, self.params["gamma"], self.params["beta"], out, self._xhat,
                                 mean, self._invstd, self.buffers["running_mean"],
                                 self.buffers["running_var"], self.momentum, self.eps)
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(grad_out)
        _batchnorm.backward(grad_out, self._xhat, self.params["gamma"], self._invstd, grad_in,
                            self.grads["gamma"], self.grads["beta"])
        return grad_in

    def __repr__(self):
        return f"BatchNorm(momentum={self.momentum}, eps={self.eps})"
