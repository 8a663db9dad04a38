"""What differs between the scikit-learn and fastnn versions this package runs on."""

import inspect

from fastnn.model import Sequential

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn 1.4 and 1.5: the same checks as an estimator method
    def validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
        """``estimator._validate_data`` under the name scikit-learn 1.6 gave it."""
        return estimator._validate_data(X, y, **kwargs)


def fit_takes_sample_weight():
    """Whether this fastnn's ``Sequential.fit`` accepts ``sample_weight``."""
    return "sample_weight" in inspect.signature(Sequential.fit).parameters


#: why sample weights cannot be used, for the error and for skipped checks
NO_SAMPLE_WEIGHT = ("sample_weight and class_weight need a fastnn whose Sequential.fit "
                    "accepts sample_weight; this one's does not")
