"""Layers: dense, one layer per activation, dropout and batch normalization.

Each layer is the one place that says how it runs, both ways:

- in Python, a ``forward`` and a ``backward`` method side by side.
  ``forward`` keeps what ``backward`` needs; ``backward`` writes parameter
  gradients into the layer's ``grads`` views (slices of the model's flat
  gradient buffer) and returns the gradient with respect to the input;
- compiled, ``compile(plan)``: the op records it adds to the model's plan
  (``fastnn.plan``) — its kernel table, parameter slices, saved tensors and
  settings.  A layer without a compiled form leaves ``compile`` as it is and
  trains on the layer-by-layer path.

Both forms call the same kernels of ``fastnn_ext`` in the same order, so
the two training paths give the same numbers.
"""

import types
from dataclasses import dataclass

import numpy as np

from fastnn import initializers
from fastnn._layout import owner
from fastnn._registry import by_class_name, by_name
from fastnn._validation import as_finite, check_finite_number, check_positive_int
from fastnn_ext import activations as _act
from fastnn_ext import batchnorm as _batchnorm
from fastnn_ext import dense as _dense
from fastnn_ext import dropout as _dropout
from fastnn_ext import layer_ops as _ops
from fastnn_ext import silu as _silu


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
    """Base layer.

    ``params``, ``grads`` and ``buffers`` map names to views into the owning
    model's flat buffers; they are read-only mappings (write into a view, or
    use :meth:`set_weights`), so an array cannot be detached from the model
    by assignment.

    Attributes
    ----------
    trainable : bool
        Whether training updates the layer's parameters (default True).  A
        frozen layer's parameters get no update, no optimizer state and no
        weight penalty; ``Sequential.freeze`` and ``unfreeze`` set it (or
        set it directly: the next ``fit`` sees it).
    """

    #: whether the layer has a compiled form (a ``compile`` of its own)
    compiled = False

    def __init__(self):
        self._attach({}, {}, {})
        self.n_in = None
        self.n_out = None
        self.model = None
        self.trainable = True

    def _attach(self, params, grads, buffers):
        """Set the views into a model's buffers (called by the model)."""
        self.params = types.MappingProxyType(params)
        self.grads = types.MappingProxyType(grads)
        self.buffers = types.MappingProxyType(buffers)

    def build(self, n_in):
        """Fix the input width; return the output width."""
        self.n_in = self.n_out = n_in
        return n_in

    def param_specs(self):
        return []

    def buffer_specs(self):
        return []

    def _initialize(self, rng):
        """Draw the parameters from ``rng`` and set the buffers to their initial values."""
        for spec in self.param_specs():
            self.params[spec.name][...] = spec.init(rng, spec.shape, spec.fan_in, spec.fan_out)
        for name, _, value in self.buffer_specs():
            self.buffers[name][...] = value

    def reset_parameters(self):
        """Draw the layer's parameters afresh, as its model did when it was built.

        The draws come from the model's generator (``model.rng``), so a
        seeded run stays reproducible; buffers (batch-norm statistics)
        return to their initial values.  The optimizer's state is kept.
        Transfer learning: load a trained model, freeze all but the last
        layers, reset those and train again.
        """
        model = owner(self)
        if model is None:
            raise ValueError(f"{self!r} belongs to no Sequential: its parameters are drawn "
                             "from the model's generator")
        self._initialize(model.rng)

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad_out, need_grad_in=True):
        raise NotImplementedError

    def compile(self, plan):
        """Add this layer's op records to ``plan``; return how many layers they cover.

        A layer may cover the one after it too (a dense layer takes the
        activation that follows it into its own op).  The base layer has no
        compiled form.
        """
        raise NotImplementedError(f"{type(self).__name__} has no compiled form")

    def get_config(self):
        """The constructor's arguments, by name: ``type(layer)(**layer.get_config())``
        builds the same layer (model files store it)."""
        return {}

    def get_weights(self):
        """Copies of the layer's parameters, by name."""
        return {name: array.copy() for name, array in self.params.items()}

    def set_weights(self, weights):
        """Write parameters (a mapping of name → array) into the layer, in place.

        Each array must have the parameter's shape and finite values; it is
        converted to the model's dtype (values outside that dtype's range are
        refused rather than turned into ∞).
        """
        if not self.params:
            raise ValueError(f"{self!r} holds no parameters until it is part of a Sequential")
        if not hasattr(weights, "items"):
            raise TypeError(f"weights must be a mapping of parameter names to arrays, "
                            f"got {type(weights).__name__}")
        unknown = set(weights) - set(self.params)
        if unknown:
            raise ValueError(f"{self!r} has no parameter {sorted(unknown)[0]!r}; "
                             f"it has {sorted(self.params)}")
        checked = {}
        for name, value in weights.items():
            target = self.params[name]
            array = np.asarray(value)
            if array.shape != target.shape:
                raise ValueError(f"{name} must have shape {target.shape}, got {array.shape}")
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
            checked[name] = as_finite(name, array, target.dtype)
        for name, array in checked.items():
            self.params[name][...] = array

    def __repr__(self):
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully-connected layer  y = x·W + b,  W of shape (n_in, n_out).

    ``Dense(n_in, n_out)``, or ``Dense(n_out)`` with the input width taken
    from the layer before it or, for the first dense layer, from the data
    the model first sees (``fit``, or ``Sequential.build(n_features)``).

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths; a single width is ``n_out``.
    init : str or callable
        Weight initializer, see ``fastnn.initializers`` (default
        ``"glorot_uniform"``).
    bias_init : str or callable
        Bias initializer (default ``"zeros"``; Nielsen's networks use
        ``"normal"``).
    """

    compiled = True

    def __init__(self, n_in, n_out=None, init="glorot_uniform", bias_init="zeros"):
        super().__init__()
        if n_out is None:
            n_in, n_out = None, n_in
        self.n_in = None if n_in is None else check_positive_int("n_in", n_in)
        self.n_out = check_positive_int("n_out", n_out)
        self.init = initializers.get(init)
        self.bias_init = initializers.get(bias_init)
        self._x = None

    def build(self, n_in):
        if self.n_in is None:
            self.n_in = n_in
        elif n_in != self.n_in:
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

    def compile(self, plan):
        # The activation after a dense layer runs inside its op, on the
        # product while it is in cache; an activation whose derivative needs
        # its input keeps the pre-activation in the op's saved region.
        follower = plan.next_layer
        fused = follower if isinstance(follower, Activation) else None
        kernels = fused.kernels if fused is not None else _act.IDENTITY
        saved = plan.rows * self.n_out if _act.needs_input(kernels) else 0
        table = _ops.DENSE if self.trainable else _ops.DENSE_FROZEN
        plan.add(self, table, self.n_in, self.n_out, activation=kernels,
                 alpha=fused.alpha if fused is not None else 0.0, saved_size=saved,
                 weight="W", bias="b")
        return 2 if fused is not None else 1

    def get_config(self):
        return {"n_in": self.n_in, "n_out": self.n_out,
                "init": initializers.name_of("init", self.init),
                "bias_init": initializers.name_of("bias_init", self.bias_init)}

    def __repr__(self):
        return f"Dense({self.n_out})" if self.n_in is None else f"Dense({self.n_in}, {self.n_out})"


class Activation(Layer):
    """Element-wise activation f with its kernel table ``kernels``.

    The derivative is taken from the saved output, or from the saved input
    when the activation's table says it needs it (``needs_input``).  A new
    activation is a subclass naming its table (see ``fastnn_ext/silu.pyx``).
    """

    compiled = True
    kernels = _act.IDENTITY
    alpha = 0.0
    #: name in ``ACTIVATIONS`` (the command line's --activation)
    name = None

    def forward(self, x, training=False):
        out = np.empty_like(x)
        _act.forward(x, out, self.kernels, self.alpha)
        self._x = x if _act.needs_input(self.kernels) else None
        self._out = out
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(grad_out)
        _act.backward(self._out, grad_out, grad_in, self.kernels, self.alpha, self._x)
        return grad_in

    def compile(self, plan):
        plan.add(self, _ops.ACTIVATION, self.n_in, self.n_out, activation=self.kernels,
                 alpha=self.alpha)
        return 1


class Identity(Activation):
    """f(z) = z."""

    name = "identity"
    kernels = _act.IDENTITY


class Sigmoid(Activation):
    """f(z) = 1 / (1 + e^{−z}),  f' = f(1 − f)."""

    name = "sigmoid"
    kernels = _act.SIGMOID


class Tanh(Activation):
    """f(z) = tanh z,  f' = 1 − f²."""

    name = "tanh"
    kernels = _act.TANH


class ReLU(Activation):
    """f(z) = max(z, 0),  f' = [z > 0]."""

    name = "relu"
    kernels = _act.RELU


class LeakyReLU(Activation):
    """f(z) = z if z > 0 else α·z, with a fixed slope α ≥ 0 (default 0.01)."""

    name = "leaky_relu"
    kernels = _act.LEAKY_RELU

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = check_finite_number("alpha", alpha, minimum=0.0)

    def get_config(self):
        return {"alpha": self.alpha}

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class SiLU(Activation):
    """f(z) = z·σ(z) (SiLU, swish),  f' = σ(z)·(1 + z·(1 − σ(z))); backward keeps z."""

    name = "silu"
    kernels = _silu.SILU


class PReLU(Layer):
    """f(z) = z if z > 0 else a_j·z with a learned slope a_j per unit (He et al. 2015).

    Parameters
    ----------
    init_slope : float
        Initial value of every slope (default 0.25).
    """

    compiled = True

    def __init__(self, init_slope=0.25):
        super().__init__()
        self.init_slope = check_finite_number("init_slope", init_slope)

    def get_config(self):
        return {"init_slope": self.init_slope}

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

    def compile(self, plan):
        plan.add(self, _ops.PRELU, self.n_in, self.n_out, weight="slope")
        return 1


class Softmax(Layer):
    """Row-wise f(z)_k = e^{z_k} / Σ_j e^{z_j}, computed with the row maximum subtracted."""

    compiled = True

    def forward(self, x, training=False):
        out = np.empty_like(x)
        _act.softmax(x, out)
        self._out = out
        return out

    def backward(self, grad_out, need_grad_in=True):
        grad_in = np.empty_like(grad_out)
        _act.softmax_grad(self._out, grad_out, grad_in)
        return grad_in

    def compile(self, plan):
        plan.add(self, _ops.SOFTMAX, self.n_in, self.n_out)
        return 1


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

    compiled = True

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

    def compile(self, plan):
        plan.add(self, _ops.DROPOUT, self.n_in, self.n_out, rate=self.rate,
                 saved_size=plan.rows * self.n_out)  # the mask
        return 1

    def get_config(self):
        return {"rate": self.rate}

    def __repr__(self):
        return f"Dropout(rate={self.rate})"


class BatchNorm(Layer):
    """Batch normalization of a dense layer's outputs (Ioffe & Szegedy 2015).

    Training: y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch mean and biased
    variance per feature; the running statistics follow
    r ← (1 − momentum)·r + momentum·s (unbiased variance), as PyTorch's
    ``BatchNorm1d``.  Evaluation uses the running statistics.  Training
    needs batches of at least two rows.

    Frozen (``trainable = False``), the layer runs in inference mode while
    training too, as Keras's frozen ``BatchNormalization``: the affine map
    of the running statistics, which stay as they are, so the frozen layers
    of a network compute fixed features.

    Parameters
    ----------
    momentum : float
        Weight of each batch in the running statistics, in [0, 1].
    eps : float
        Added to the variance, > 0.
    """

    compiled = True
    #: batches of one row have no variance to normalize by
    min_batch_rows = 2
    min_batch_rows_reason = "batch normalization needs at least two rows in every batch"

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
        training = training and self.trainable
        self._training = training
        if not training:
            # The affine map of the running statistics; backward needs x.
            self._x = x
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
        if getattr(self, "_training", None) is None:
            raise RuntimeError("BatchNorm.backward needs a forward pass first")
        if not self._training:
            _batchnorm.backward_eval(grad_out, self._x, self.params["gamma"],
                                     self.buffers["running_mean"], self.buffers["running_var"],
                                     self.eps, grad_in, self.grads["gamma"], self.grads["beta"])
            return grad_in
        _batchnorm.backward(grad_out, self._xhat, self.params["gamma"], self._invstd, grad_in,
                            self.grads["gamma"], self.grads["beta"])
        return grad_in

    def compile(self, plan):
        if not self.trainable:
            plan.add(self, _ops.BATCHNORM_FROZEN, self.n_in, self.n_out, weight="gamma",
                     bias="beta", state="running_mean", state_size=2 * self.n_out,
                     eps=self.eps)
            return 1
        plan.add(self, _ops.BATCHNORM, self.n_in, self.n_out, weight="gamma", bias="beta",
                 state="running_mean", state_size=2 * self.n_out,  # then running_var
                 momentum=self.momentum, eps=self.eps,
                 saved_size=_ops.batchnorm_saved_size(self.n_out, plan.rows))
        return 1

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps}

    def __repr__(self):
        return f"BatchNorm(momentum={self.momentum}, eps={self.eps})"


#: name → activation layer class, for the command line and model descriptions
ACTIVATIONS = by_name(Activation, prelu=PReLU)
#: class name → layer class, for model files
LAYERS = by_class_name(Layer)
