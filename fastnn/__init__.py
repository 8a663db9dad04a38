"""fastnn: a compiled mini deep-learning framework for fully-connected networks."""

# before the imports: fastnn._threads reads it (its cache key) while they run
__version__ = "0.1.0"

from fastnn.callbacks import (Callback, CSVLogger, EarlyStopping, History, ModelCheckpoint,
                              ProgressBar)
from fastnn.data import load_mnist
from fastnn.diagnostics import gradient_norms
from fastnn.ensemble import Ensemble
from fastnn.gradcheck import check_gradients
from fastnn.layers import (BatchNorm, Dense, Dropout, Identity, LeakyReLU, PReLU, ReLU,
                           Sigmoid, SiLU, Softmax, Tanh)
from fastnn.losses import MeanSquaredError, SigmoidCrossEntropy, SoftmaxCrossEntropy
from fastnn.model import NonFiniteError, Sequential
from fastnn.model_file import load_model
from fastnn.optimizers import SGD, AdaDelta, AdaGrad, Adam, AdamW, Lion, RMSProp
from fastnn.schedules import (Constant, ExponentialDecay, InverseTimeDecay, ReduceLROnPlateau,
                              StepDecay)

__all__ = [
    "Sequential", "NonFiniteError", "Ensemble", "load_model",
    "Dense", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "SiLU", "Softmax", "Identity",
    "Dropout", "BatchNorm",
    "MeanSquaredError", "SoftmaxCrossEntropy", "SigmoidCrossEntropy",
    "SGD", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "AdamW", "Lion",
    "Constant", "StepDecay", "ExponentialDecay", "InverseTimeDecay", "ReduceLROnPlateau",
    "Callback", "History", "ProgressBar", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
    "check_gradients", "gradient_norms", "load_mnist",
]
