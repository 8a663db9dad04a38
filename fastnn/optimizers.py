"""Gradient-descent optimizers.

Each optimizer updates one flat parameter vector in place with a fused,
compiled kernel (``fastnn_ext.optim``).  The update rules are those
documented for the PyTorch optimizer of the same name (``torch.optim.SGD``,
``Adagrad``, ``RMSprop``, ``Adadelta``, ``Adam``, ``AdamW``); each class
states its rule.  In the formulas ``θ`` is a parameter, ``g_t`` its gradient
at update ``t`` (1-based), ``γ`` the learning rate of that update (from the
schedule) and ``λ`` the weight decay.

Weight decay applies to the weights only: the model lays its parameters out
with the ``n_decay`` weights first and passes ``n_decay`` to :meth:`bind`;
biases and other parameters are not decayed unless ``decay_all=True``.

A moment that decays (a momentum buffer, an average of g or g², Lion's m;
not AdaGrad's growing sum) is stored as zero once it falls below the
smallest normal number of its dtype, instead of passing through the
subnormal range, where x86 arithmetic is several times slower.  This
happens to every moment of a weight whose gradient stays zero (an image
border that is always black) and changes an update by at most about
``γ·2⁻¹²⁶/ε`` in float32.

Life cycle, as driven by the model::

    opt.bind(n_params, dtype, n_decay)    # allocate state_, t_ = 0
    for epoch in range(n_epochs):
        for batch in batches:
            opt.step(params, grads)       # or a compiled loop, see below
        opt.on_epoch_end(epoch, logs)

The compiled training step (``fastnn_ext.update.UpdateStep``) calls the
optimizer's kernel table (``opt.kernel``, an ``OptimizerKernel``) directly
with ``opt.hyper_`` (a record of named hyper-parameters), ``opt.state_``,
``opt.n_decay_`` and the rates ``opt.learning_rates(epoch, opt.t_ + 1, k)``,
and continues its step counter ``t_``.

A new optimizer is a subclass naming its ``kernel`` (from its own module in
``fastnn_ext``, as ``optim_lion.pyx``), a ``name``, and a ``_hyper`` that
returns the kernel's hyper-parameters by field name; the registry below
picks it up.
"""

import numbers

import numpy as np

from fastnn_ext import optim as _optim
from fastnn_ext import optim_lion as _optim_lion

from ._registry import by_name
from ._validation import Flag, Real, check_non_negative, check_real
from .schedules import as_schedule

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "AdamW", "Lion",
           "OPTIMIZERS", "get_optimizer"]


# The rules of the hyper-parameters (fastnn._validation's vocabulary).
_positive = Real(0, open_min=True)
_decay_rate = Real(0, 1, open_max=True)   # a moving-average coefficient
_flag = Flag()


def _betas(betas):
    """A pair of moving-average coefficients (β1, β2), each in [0, 1)."""
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    return (_decay_rate("beta1", beta1), _decay_rate("beta2", beta2))


class Optimizer:
    """Base class of the optimizers.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, >= 0, or a schedule from :mod:`fastnn.schedules`.
    weight_decay : float
        Decay coefficient λ, >= 0; coupled (added to the gradient) except
        in :class:`AdamW`.
    decay_all : bool
        Decay every parameter instead of the weights only.

    Attributes
    ----------
    kernel : fastnn_ext.optim.OptimizerKernel
        The compiled step (a class attribute).
    name : str
        Registry name (a class attribute), e.g. ``"adam"``.
    n_slots : int
        Rows of ``state_``: per-parameter moments the optimizer keeps.
    hyper_ : record array
        Named hyper-parameters in the kernel's struct (set by :meth:`bind`).
    state_ : ndarray, shape (n_slots, n_params)
        The moments, in ``params``' dtype (set by :meth:`bind`).
    n_decay_ : int
        Number of leading parameters that weight decay applies to.
    t_ : int
        Updates applied since :meth:`bind`.
    epoch_ : int
        0-based index of the current epoch (advanced by :meth:`on_epoch_end`).
    """

    kernel = None
    name = None

    def __init__(self, lr, weight_decay=0.0, decay_all=False):
        self.lr = as_schedule(lr)
        self.weight_decay = check_non_negative("weight_decay", weight_decay)
        self.decay_all = _flag("decay_all", decay_all)
        self.t_ = 0
        self.epoch_ = 0

    # -- kernel layout ---------------------------------------------------

    def _hyper(self):
        """The kernel's hyper-parameters, by the field names of its struct."""
        raise NotImplementedError

    def _hyper_record(self):
        return self.kernel.hyper(**self._hyper())

    @property
    def n_slots(self):
        return self.kernel.n_slots(self._hyper_record())

    def _initial_state(self):
        return 0.0

    # -- life cycle ------------------------------------------------------

    def bind(self, n_params, dtype, n_decay=None):
        """Allocate the state for ``n_params`` parameters and reset the counters.

        Parameters
        ----------
        n_params : int
            Length of the flat parameter vector.
        dtype : float32 or float64
            dtype of the parameters, gradients and state.
        n_decay : int, optional
            Number of leading parameters (the weights) that weight decay
            applies to; all of them if omitted or if ``decay_all``.

        Returns
        -------
        self
        """
        if isinstance(n_params, bool) or not isinstance(n_params, numbers.Integral):
            raise TypeError(f"n_params must be an integer, got {type(n_params).__name__}")
        if n_params < 0:
            raise ValueError(f"n_params must be >= 0, got {n_params}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        n_params = int(n_params)
        if n_decay is None or self.decay_all:
            n_decay = n_params
        if isinstance(n_decay, bool) or not isinstance(n_decay, numbers.Integral):
            raise TypeError(f"n_decay must be an integer, got {type(n_decay).__name__}")
        if not 0 <= n_decay <= n_params:
            raise ValueError(f"n_decay must be in [0, {n_params}], got {n_decay}")
        self.hyper_ = self._hyper_record()
        self.state_ = np.full((self.n_slots, n_params), self._initial_state(), dtype=dtype)
        self.n_params_ = n_params
        self.n_decay_ = int(n_decay)
        self.t_ = 0
        self.epoch_ = 0
        return self

    def learning_rates(self, epoch, first_step, n_steps):
        """Rates of updates ``first_step ... first_step + n_steps - 1`` (1-based).

        Parameters
        ----------
        epoch : int
            0-based epoch the updates belong to.
        first_step : int
            1-based number of the first update, normally ``t_ + 1``.
        n_steps : int
            Number of updates.

        Returns
        -------
        ndarray of float64, shape (n_steps,)
        """
        return self.lr.rates(epoch, first_step, n_steps)

    def step(self, params, grads):
        """Apply one update to ``params`` in place; ``grads`` is only read."""
        if not hasattr(self, "state_"):
            raise RuntimeError(f"{type(self).__name__}.bind() must be called before step()")
        if not isinstance(params, np.ndarray):
            raise TypeError(f"params must be a numpy array, got {type(params).__name__}")
        if params.shape != (self.n_params_,):
            raise ValueError(f"params has shape {params.shape}, expected ({self.n_params_},)")
        if params.dtype != self.state_.dtype:
            raise TypeError(f"params has dtype {params.dtype}, but the optimizer was "
                            f"bound for {self.state_.dtype}")
        t = self.t_ + 1
        lr = self.lr.rate(self.epoch_, t)
        self.kernel.step(self.hyper_, params, grads, self.state_, self.n_decay_, lr, t)
        self.t_ = t

    def advance(self, n_steps):
        """Count ``n_steps`` updates applied outside :meth:`step`."""
        if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
            raise TypeError(f"n_steps must be an integer, got {type(n_steps).__name__}")
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        self.t_ += int(n_steps)

    def on_epoch_end(self, epoch, logs=None):
        """Pass the finished epoch's metrics to the schedule; next epoch is epoch + 1."""
        self.lr.on_epoch_end(epoch, logs)
        self.epoch_ = int(epoch) + 1

    @property
    def current_lr(self):
        """Learning rate of the next update."""
        return self.lr.rate(self.epoch_, self.t_ + 1)

    def get_config(self):
        """The constructor's arguments, by name (``lr`` as its schedule):
        ``type(opt)(**opt.get_config())`` is the same rule with fresh state."""
        return {**self._params(), "decay_all": self.decay_all}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def _params(self):
        return {"lr": self.lr}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (``torch.optim.SGD``).

    For t = 1, 2, ...::

        g_t = g_t + λ θ_{t-1}                     (if λ ≠ 0)
        if μ ≠ 0:
            b_t = g_t                             (t = 1)
            b_t = μ b_{t-1} + (1 − τ) g_t         (t > 1)
            g_t = g_t + μ b_t                     (nesterov)
            g_t = b_t                             (otherwise)
        θ_t = θ_{t-1} − γ g_t

    With τ = 0, the momentum form ``v = ρ v + ∇; W −= α v`` (v starting at
    0) is the same rule.  The form ``v = μ v − η ∇; w += v`` and its Nesterov
    variant ``w += −μ v_prev + (1 + μ) v`` are equivalent to it with
    ``v = −γ b`` while the learning rate is constant; when it changes,
    PyTorch's form (used here) applies the new rate to the whole buffer.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate γ, >= 0.
    momentum : float
        Momentum factor μ, >= 0.
    dampening : float
        Dampening τ of the gradient added to the buffer, in [0, 1].
    nesterov : bool
        Nesterov momentum; needs μ > 0 and τ = 0.
    weight_decay : float
        L2 penalty λ (coupled: added to the gradient), >= 0.
    decay_all : bool
        Decay biases too.
    """

    kernel = _optim.SGD
    name = "sgd"

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, decay_all=False):
        super().__init__(lr, weight_decay, decay_all)
        self.momentum = check_non_negative("momentum", momentum)
        self.dampening = check_real("dampening", dampening)
        if not 0 <= self.dampening <= 1:
            raise ValueError(f"dampening must be in [0, 1], got {self.dampening}")
        self.nesterov = _flag("nesterov", nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")

    def _hyper(self):
        return dict(momentum=self.momentum, dampening=self.dampening,
                    nesterov=self.nesterov, weight_decay=self.weight_decay)

    def _params(self):
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}


class AdaGrad(Optimizer):
    """AdaGrad (``torch.optim.Adagrad``).

    ``state_sum`` starts at ``initial_accumulator_value``; for t = 1, 2, ...::

        γ̃ = γ / (1 + (t − 1) η)
        g_t = g_t + λ θ_{t-1}                     (if λ ≠ 0)
        state_sum_t = state_sum_{t-1} + g_t²
        θ_t = θ_{t-1} − γ̃ g_t / (√state_sum_t + ε)

    ε is added outside the square root; forms that write ``√(G + ε)`` differ
    slightly.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate γ, >= 0.
    lr_decay : float
        Learning-rate decay η, >= 0.
    weight_decay : float
        L2 penalty λ (coupled), >= 0.
    initial_accumulator_value : float
        Initial value of ``state_sum``, >= 0.
    eps : float
        ε, > 0.
    decay_all : bool
        Decay biases too.
    """

    kernel = _optim.ADAGRAD
    name = "adagrad"

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, decay_all=False):
        super().__init__(lr, weight_decay, decay_all)
        self.lr_decay = check_non_negative("lr_decay", lr_decay)
        self.initial_accumulator_value = check_non_negative(
            "initial_accumulator_value", initial_accumulator_value)
        self.eps = _positive("eps", eps)

    def _hyper(self):
        return dict(lr_decay=self.lr_decay, weight_decay=self.weight_decay, eps=self.eps)

    def _initial_state(self):
        return self.initial_accumulator_value

    def _params(self):
        return {"lr": self.lr, "lr_decay": self.lr_decay,
                "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value,
                "eps": self.eps}


class RMSProp(Optimizer):
    """RMSProp (``torch.optim.RMSprop``).

    ``v``, ``g^ave`` and ``b`` start at 0; for t = 1, 2, ...::

        g_t = g_t + λ θ_{t-1}                     (if λ ≠ 0)
        v_t = α v_{t-1} + (1 − α) g_t²
        ṽ_t = v_t
        if centered:
            g^ave_t = α g^ave_{t-1} + (1 − α) g_t
            ṽ_t = ṽ_t − (g^ave_t)²
        if μ > 0:
            b_t = μ b_{t-1} + g_t / (√ṽ_t + ε)
            θ_t = θ_{t-1} − γ b_t
        else:
            θ_t = θ_{t-1} − γ g_t / (√ṽ_t + ε)

    ε is added outside the square root; the form
    ``E[g²] = ρ E[g²] + (1 − ρ) g²;  w −= η g / √(E[g²] + ε)`` puts it inside
    and differs slightly.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate γ, >= 0.
    alpha : float
        Smoothing constant α, in [0, 1).
    eps : float
        ε, > 0.
    weight_decay : float
        L2 penalty λ (coupled), >= 0.
    momentum : float
        Momentum factor μ, >= 0.
    centered : bool
        Normalize by an estimate of the gradient's variance instead of its
        second moment.
    decay_all : bool
        Decay biases too.
    """

    kernel = _optim.RMSPROP
    name = "rmsprop"

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, centered=False, decay_all=False):
        super().__init__(lr, weight_decay, decay_all)
        self.alpha = _decay_rate("alpha", alpha)
        self.eps = _positive("eps", eps)
        self.momentum = check_non_negative("momentum", momentum)
        self.centered = _flag("centered", centered)

    def _hyper(self):
        return dict(alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
                    momentum=self.momentum, centered=self.centered)

    def _params(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered}


class AdaDelta(Optimizer):
    """AdaDelta (``torch.optim.Adadelta``).

    ``v`` and ``u`` start at 0; for t = 1, 2, ...::

        g_t = g_t + λ θ_{t-1}                     (if λ ≠ 0)
        v_t = ρ v_{t-1} + (1 − ρ) g_t²
        Δx_t = √(u_{t-1} + ε) / √(v_t + ε) · g_t
        u_t = ρ u_{t-1} + (1 − ρ) Δx_t²
        θ_t = θ_{t-1} − γ Δx_t

    With γ = 1 this is Zeiler's rule ``Δx = −RMS[Δx]_{t-1} / RMS[g]_t · g``;
    PyTorch adds the multiplier γ.

    Parameters
    ----------
    lr : float or Schedule
        Multiplier γ of the update, >= 0.
    rho : float
        Decay ρ of the running averages, in [0, 1).
    eps : float
        ε, > 0.
    weight_decay : float
        L2 penalty λ (coupled), >= 0.
    decay_all : bool
        Decay biases too.
    """

    kernel = _optim.ADADELTA
    name = "adadelta"

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, decay_all=False):
        super().__init__(lr, weight_decay, decay_all)
        self.rho = _decay_rate("rho", rho)
        self.eps = _positive("eps", eps)

    def _hyper(self):
        return dict(rho=self.rho, eps=self.eps, weight_decay=self.weight_decay)

    def _params(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam, optionally AMSGrad (``torch.optim.Adam``).

    ``m``, ``v`` and ``v^max`` start at 0; for t = 1, 2, ...::

        g_t = g_t + λ θ_{t-1}                     (if λ ≠ 0)
        m_t = β1 m_{t-1} + (1 − β1) g_t
        v_t = β2 v_{t-1} + (1 − β2) g_t²
        m̂_t = m_t / (1 − β1^t)
        if amsgrad:
            v^max_t = max(v^max_{t-1}, v_t)
            v̂_t = v^max_t / (1 − β2^t)
        else:
            v̂_t = v_t / (1 − β2^t)
        θ_t = θ_{t-1} − γ m̂_t / (√v̂_t + ε)

    This is Kingma & Ba's algorithm with ε added to the bias-corrected √v̂;
    their "efficient" variant ``α_t = α √(1 − β2^t) / (1 − β1^t)`` with ε
    added to √v differs slightly.  The computation scales √v_t by
    1 / √(1 − β2^t), as PyTorch does, which equals √v̂_t up to rounding.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate γ, >= 0.
    betas : (float, float)
        Decay rates (β1, β2) of the moment estimates, each in [0, 1).
    eps : float
        ε, > 0.
    weight_decay : float
        L2 penalty λ (coupled: added to the gradient), >= 0.
    amsgrad : bool
        Use the running maximum of ``v``.
    decay_all : bool
        Decay biases too.
    """

    kernel = _optim.ADAM
    name = "adam"
    #: weight decay decoupled from the gradient (AdamW)
    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, decay_all=False):
        super().__init__(lr, weight_decay, decay_all)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)
        self.amsgrad = _flag("amsgrad", amsgrad)

    def _hyper(self):
        return dict(beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
                    weight_decay=self.weight_decay, amsgrad=self.amsgrad,
                    decoupled=self.decoupled)

    def _params(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``).

    ``m``, ``v`` and ``v^max`` start at 0; for t = 1, 2, ...::

        θ_t = θ_{t-1} − γ λ θ_{t-1}
        m_t = β1 m_{t-1} + (1 − β1) g_t
        v_t = β2 v_{t-1} + (1 − β2) g_t²
        m̂_t = m_t / (1 − β1^t)
        if amsgrad:
            v^max_t = max(v^max_{t-1}, v_t)
            v̂_t = v^max_t / (1 − β2^t)
        else:
            v̂_t = v_t / (1 − β2^t)
        θ_t = θ_t − γ m̂_t / (√v̂_t + ε)

    The decay never enters the moments.  As in PyTorch it is scaled by the
    learning rate γ (Loshchilov & Hutter scale λ by the schedule multiplier
    η_t alone).

    Parameters
    ----------
    lr : float or Schedule
        Learning rate γ, >= 0.
    betas : (float, float)
        Decay rates (β1, β2), each in [0, 1).
    eps : float
        ε, > 0.
    weight_decay : float
        Decoupled decay λ, >= 0.
    amsgrad : bool
        Use the running maximum of ``v``.
    decay_all : bool
        Decay biases too.
    """

    name = "adamw"
    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, decay_all=False):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, decay_all)


class Lion(Optimizer):
    """Lion, evolved sign momentum (Chen et al. 2023, Algorithm 2).

    ``m`` starts at 0; for t = 1, 2, ...::

        c_t = β1 m_{t-1} + (1 − β1) g_t
        θ_t = θ_{t-1} − γ (sign(c_t) + λ θ_{t-1})
        m_t = β2 m_{t-1} + (1 − β2) g_t

    Every coordinate moves by ±γ (plus the decay), so Lion wants a learning
    rate 3–10 times smaller than Adam's, and a larger λ for the same
    effective decay.  One slot of state, against Adam's two.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate γ, >= 0.
    betas : (float, float)
        Interpolation β1 for the update direction and decay β2 of the
        momentum, each in [0, 1).
    weight_decay : float
        Decoupled decay λ, >= 0.
    decay_all : bool
        Decay biases too.
    """

    kernel = _optim_lion.LION
    name = "lion"

    def __init__(self, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, decay_all=False):
        super().__init__(lr, weight_decay, decay_all)
        self.betas = _betas(betas)

    def _hyper(self):
        return dict(beta1=self.betas[0], beta2=self.betas[1], weight_decay=self.weight_decay)

    def _params(self):
        return {"lr": self.lr, "betas": self.betas, "weight_decay": self.weight_decay}


#: name → optimizer class, for the API, the command line and model files
OPTIMIZERS = by_name(Optimizer)


def get_optimizer(optimizer, **kwargs):
    """An optimizer from a name (case-insensitive, e.g. ``'adam'``) or an instance.

    ``kwargs`` go to the constructor; an instance is returned unchanged and
    takes no ``kwargs``.
    """
    if isinstance(optimizer, Optimizer):
        if kwargs:
            raise ValueError("keyword arguments are only accepted with an optimizer name")
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected an Optimizer "
                         f"or one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[optimizer.lower()](**kwargs)
