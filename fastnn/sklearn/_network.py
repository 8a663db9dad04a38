"""The fastnn network and optimizer an estimator's hyper-parameters describe.

An estimator records what it built as two specifications, one for the
network (its layers, output, dtype, seed, clipping and noise) and one for
the optimizer (rule, learning rate and schedule).  They serve three
purposes: building the model, telling whether a warm start may keep the
fitted network and optimizer (a changed specification may not), and
rebuilding the model when an estimator is unpickled, since a ``Sequential``
itself cannot be pickled.
"""

from dataclasses import dataclass, field

import numpy as np

from fastnn.layers import (BatchNorm, Dense, Dropout, Identity, LeakyReLU, PReLU, ReLU,
                           Sigmoid, SiLU, Softmax, Tanh)
from fastnn.model import Sequential
from fastnn.optimizers import OPTIMIZERS
from fastnn.schedules import (Constant, ExponentialDecay, InverseTimeDecay,
                              ReduceLROnPlateau, StepDecay)

#: hidden-layer activations by name; "logistic" is scikit-learn's name for the sigmoid
ACTIVATIONS = {
    "identity": Identity,
    "logistic": Sigmoid,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "silu": SiLU,
}

#: learning-rate schedules by name; ``learning_rate_params`` holds their other arguments
SCHEDULES = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "inverse_time": InverseTimeDecay,
    "plateau": ReduceLROnPlateau,
}

#: output layer and loss of each kind of output
OUTPUTS = {
    "softmax": (Softmax, "softmax_cross_entropy"),
    "sigmoid": (Sigmoid, "sigmoid_cross_entropy"),
    "linear": (None, "mse"),
}


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that fixes a network's layers and its training options.

    The network is, for every hidden width h, ``Dense → [BatchNorm] →
    activation → [Dropout]``, then a ``Dense`` to the outputs and the
    output layer of ``output``.
    """

    n_features: int
    n_outputs: int
    output: str
    hidden_layer_sizes: tuple
    activation: str
    dropout: float
    batch_norm: bool
    dtype: str
    clip_norm: object
    gradient_noise: object
    seed: int

    def build(self):
        """A new ``Sequential`` with freshly drawn weights."""
        layers, width = [], self.n_features
        for units in self.hidden_layer_sizes:
            layers.append(Dense(width, units))
            if self.batch_norm:
                layers.append(BatchNorm())
            layers.append(ACTIVATIONS[self.activation]())
            if self.dropout > 0:
                layers.append(Dropout(self.dropout))
            width = units
        layers.append(Dense(width, self.n_outputs))
        output_layer, loss = OUTPUTS[self.output]
        if output_layer is not None:
            layers.append(output_layer())
        return Sequential(layers, loss=loss, dtype=self.dtype, seed=self.seed,
                          clip_norm=self.clip_norm, gradient_noise=self.gradient_noise)


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything that fixes an optimizer: rule, rate, schedule and their options.

    ``momentum`` and ``nesterov`` apply to ``"sgd"``; ``beta_1``, ``beta_2``
    and ``epsilon`` to ``"adam"`` and ``"adamw"`` (as in scikit-learn's MLP);
    ``solver_params`` may set any argument of the optimizer's constructor.
    """

    solver: str
    learning_rate_init: float
    learning_rate: str
    learning_rate_params: dict = field(default_factory=dict)
    momentum: float = 0.9
    nesterov: bool = True
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    solver_params: dict = field(default_factory=dict)
    monitor: str = "loss"

    def build(self):
        """A new optimizer with its schedule (not yet bound to a model)."""
        params = dict(self.learning_rate_params)
        schedule_class = SCHEDULES[self.learning_rate]
        if schedule_class is ReduceLROnPlateau:
            # Without a validation set there is no val_loss to watch.
            params.setdefault("monitor", self.monitor)
        try:
            schedule = schedule_class(self.learning_rate_init, **params)
        except TypeError as error:
            raise TypeError(f"learning_rate_params for {self.learning_rate!r}: {error}") from None
        kwargs = {}
        if self.solver == "sgd":
            # fastnn's Nesterov step needs momentum, as scikit-learn's has no effect without it.
            kwargs = {"momentum": self.momentum,
                      "nesterov": bool(self.nesterov and self.momentum > 0)}
        elif self.solver in ("adam", "adamw"):
            kwargs = {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}
        kwargs.update(self.solver_params)
        kwargs["lr"] = schedule
        try:
            return OPTIMIZERS[self.solver](**kwargs)
        except TypeError as error:
            raise TypeError(f"solver_params for {self.solver!r}: {error}") from None


def snapshot(model):
    """What training changed in ``model``, as plain picklable values."""
    optimizer = model.optimizer
    return {
        "params": model.params_.copy(),
        "buffers": model.buffers_.copy(),
        "optimizer_state": optimizer.state_.copy(),
        "t": optimizer.t_,
        "epoch": optimizer.epoch_,
        "schedule": optimizer.lr,
        "rng": model.rng.bit_generator.state,
        "l2": model.l2,
        "l1": model.l1,
    }


def rebuild(network, optimizer, saved):
    """The model of ``snapshot`` from its two specifications."""
    model = network.build()
    model.optimizer = optimizer.build()
    model.params_[...] = saved["params"]
    model.buffers_[...] = saved["buffers"]
    model.optimizer.state_[...] = saved["optimizer_state"]
    model.optimizer.t_, model.optimizer.epoch_ = saved["t"], saved["epoch"]
    # The schedule may have state of its own (ReduceLROnPlateau's rate and best value).
    model.optimizer.lr = saved["schedule"]
    model.rng.bit_generator.state = saved["rng"]
    model.l2, model.l1 = saved["l2"], saved["l1"]
    return model


def as_dtype_name(dtype):
    """'float32' or 'float64' for the accepted spellings of ``dtype``."""
    return np.dtype(dtype).name
