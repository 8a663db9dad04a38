"""Property tests of the model's public entry points: every input either trains and
predicts correctly or ends in a ValueError/TypeError that names the argument at fault."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_properties_strategies import ANYTHING

from fastnn import layers as L
from fastnn import optimizers as O
from fastnn.model import Sequential

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def named_error(call, *names):
    """Run call; an error must be a TypeError/ValueError whose message names one of names."""
    try:
        return call()
    except (TypeError, ValueError) as error:
        assert any(name in str(error) for name in names), error
        return error


def small(**options):
    return Sequential([L.Dense(4, 5), L.ReLU(), L.Dense(5, 3), L.Softmax()], seed=0,
                      dtype="float64", **options)


@SETTINGS
@given(value=ANYTHING)
@pytest.mark.parametrize("argument", ["l2", "l1", "clip_norm", "clip_value", "gradient_noise",
                                      "dtype", "seed", "loss", "optimizer"])
def test_sequential_arguments(argument, value):
    result = named_error(lambda: small(**{argument: value}), argument.replace("_", " ")
                         if argument == "gradient_noise" else argument,
                         "gradient_noise", "seed", "Seed", "SeedSequence", "loss", "dtype")
    if isinstance(result, Sequential):
        assert np.isfinite(result.predict_proba(np.ones((2, 4)))).all()


@SETTINGS
@given(n_in=ANYTHING, n_out=ANYTHING)
def test_dense_widths(n_in, n_out):
    named_error(lambda: L.Dense(n_in, n_out), "n_in", "n_out")


@SETTINGS
@given(rate=ANYTHING, momentum=ANYTHING, eps=ANYTHING, alpha=ANYTHING, slope=ANYTHING)
def test_layer_settings(rate, momentum, eps, alpha, slope):
    named_error(lambda: L.Dropout(rate), "rate")
    named_error(lambda: L.BatchNorm(momentum=momentum), "momentum")
    named_error(lambda: L.BatchNorm(eps=eps), "eps")
    named_error(lambda: L.LeakyReLU(alpha), "alpha")
    named_error(lambda: L.PReLU(slope), "init_slope")


@SETTINGS
@given(lr=ANYTHING, other=ANYTHING)
@pytest.mark.parametrize("cls, name", [(O.SGD, "momentum"), (O.SGD, "dampening"),
                                       (O.AdaGrad, "eps"), (O.RMSProp, "alpha"),
                                       (O.AdaDelta, "rho"), (O.Adam, "eps"),
                                       (O.AdamW, "weight_decay"), (O.Lion, "weight_decay")])
def test_optimizer_hyper_parameters(cls, name, lr, other):
    named_error(lambda: cls(lr=lr), "lr")
    named_error(lambda: cls(**{name: other}), name)


@SETTINGS
@given(X=hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.float16]),
                    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=16)),
       y=hnp.arrays(dtype=st.sampled_from([np.int64, np.float64, np.int8]),
                    shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
                    elements=st.integers(-2, 4)),
       epochs=st.one_of(st.integers(-1, 2), ANYTHING),
       batch_size=st.one_of(st.integers(-1, 8), st.just(2 ** 70), ANYTHING))
def test_fit_on_arbitrary_arrays(X, y, epochs, batch_size):
    model = small()
    before = model.params_.copy()
    result = named_error(lambda: model.fit(X, y, epochs=epochs, batch_size=batch_size),
                         "X", "y", "labels", "epochs", "batch_size", "samples", "features")
    if isinstance(result, Exception):
        np.testing.assert_array_equal(model.params_, before)  # nothing changed
    else:
        assert np.isfinite(model.params_).all()
        proba = model.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)


@SETTINGS
@given(X=hnp.arrays(dtype=np.float64, shape=hnp.array_shapes(min_dims=1, max_dims=3,
                                                             max_side=5),
                    elements=st.floats(-1e6, 1e6)))
def test_predict_on_arbitrary_shapes(X):
    model = small()
    result = named_error(lambda: model.predict(X), "X")
    if not isinstance(result, Exception):
        expected_shape = () if X.ndim == 1 else (X.shape[0],)
        assert np.shape(result) == expected_shape


@SETTINGS
@given(weights=ANYTHING)
def test_set_weights_on_anything(weights):
    model = small()
    before = model.params_.copy()
    result = named_error(lambda: model.layers[0].set_weights(weights), "weights", "W", "b",
                         "parameter")
    if isinstance(result, Exception):
        np.testing.assert_array_equal(model.params_, before)
