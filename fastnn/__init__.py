"""fastnn: a compiled mini deep-learning framework for fully-connected networks."""

__version__ = "0.1.0"
