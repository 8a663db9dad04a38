"""The computational graph: hand-derived partials, finite differences, fastnn's backprop."""

import shutil

import numpy as np
import pytest

from fastnn import graph as G
from fastnn import layers as L
from fastnn.model import Sequential


def numeric_gradient(output, inputs, h=1e-6):
    """Central differences (f(x + h·e_i) − f(x − h·e_i)) / 2h of output w.r.t. each input."""
    gradients = []
    for node in inputs:
        value = node.value.copy()
        grad = np.empty_like(value)
        for i in np.ndindex(value.shape):
            shifted = value.copy()
            shifted[i] = value[i] + h
            node.set(shifted)
            plus = float(output.forward())
            shifted[i] = value[i] - h
            node.set(shifted)
            minus = float(output.forward())
            grad[i] = (plus - minus) / (2 * h)
        node.set(value)
        gradients.append(grad)
    output.forward()
    return gradients


def test_shared_node_is_computed_once_and_collects_both_paths():
    a, b, c = G.Input(1.0, "a"), G.Input(2.0, "b"), G.Input(3.0, "c")
    g = 2 * b
    y = (a + g) * (g + c)
    assert float(y.forward()) == 35.0
    nodes = G.topological_order(y)
    assert sum(node is g for node in nodes) == 1
    assert all(node.evaluations == 1 for node in nodes if node.parents)
    assert sum(node.evaluations for node in nodes) == 4  # g, a + g, g + c, the product
    y.backward()
    # y = (a + 2b)(2b + c): ∂y/∂a = 2b + c, ∂y/∂b = 2(2b + c) + 2(a + 2b), ∂y/∂c = a + 2b
    assert (float(a.grad), float(b.grad), float(c.grad)) == (7.0, 24.0, 5.0)
    assert float(g.grad) == 12.0  # (2b + c) + (a + 2b): one term per path through g
    # A second pass evaluates each node once more and gives the same gradients.
    y.forward()
    y.backward()
    assert g.evaluations == 2 and float(b.grad) == 24.0


def test_polynomial_partials_at_random_points():
    rng = np.random.default_rng(0)
    for x0, y0 in rng.normal(scale=3.0, size=(20, 2)):
        x, y = G.Input(x0), G.Input(y0)
        f = x ** 2 + x * y + (x + y) ** 2
        f.backward()
        assert float(f.value) == pytest.approx(x0 ** 2 + x0 * y0 + (x0 + y0) ** 2, rel=1e-14)
        assert float(x.grad) == pytest.approx(2 * x0 + y0 + 2 * (x0 + y0), rel=1e-13, abs=1e-13)
        assert float(y.grad) == pytest.approx(x0 + 2 * (x0 + y0), rel=1e-13, abs=1e-13)


def test_saturated_sigmoids_pass_back_almost_nothing():
    a, b, c = G.Input(9.0), G.Input(1.0), G.Input(100.0)
    inner_1, inner_2 = G.sigmoid(a + b), G.sigmoid(b * c)
    y = G.sigmoid(inner_1 + inner_2)
    y.backward()

    def s(z):
        return 1.0 / (1.0 + np.exp(-z))

    def ds(z):  # σ' = σ(1 − σ)
        return s(z) * (1.0 - s(z))

    outer = ds(s(10.0) + s(100.0))
    expected = (outer * ds(10.0), outer * (ds(10.0) + c.value * ds(100.0)),
                outer * b.value * ds(100.0))
    for node, reference in zip((a, b, c), expected):
        assert float(node.grad) == pytest.approx(reference, rel=1e-12, abs=1e-300)
        assert abs(float(node.grad)) < 1e-4
    for inner, z in ((inner_1, 10.0), (inner_2, 100.0)):
        assert float(inner.value) == pytest.approx(s(z), rel=1e-15)


OPERATIONS = ["add", "sub", "mul", "div", "pow", "exp", "log", "sigmoid", "tanh", "relu"]


def random_expression(rng, inputs, n_ops):
    """A random graph over ``inputs`` whose nodes may be shared; every value stays finite."""
    pool = list(inputs)
    for _ in range(n_ops):
        op = OPERATIONS[rng.integers(len(OPERATIONS))]
        x, z = (pool[i] for i in rng.integers(len(pool), size=2))
        if op == "add":
            node = x + z
        elif op == "sub":
            node = x - z
        elif op == "mul":
            node = G.tanh(x) * z
        elif op == "div":
            node = x / (1.5 + G.tanh(z))  # the divisor stays in [0.5, 2.5]
        elif op == "pow":
            node = (x * x + 0.5) ** rng.choice([0.5, 1.5, -1.0, 3.0])
        elif op == "exp":
            node = G.exp(G.tanh(x))
        elif op == "log":
            node = G.log(G.sigmoid(x) + 0.1)
        elif op == "sigmoid":
            node = G.sigmoid(x)
        elif op == "tanh":
            node = G.tanh(x)
        else:
            node = G.relu(x)
        pool.append(node)
    return G.sum(pool[-1]) + G.sum(pool[-2]) * 0.5  # the last two: more sharing


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_against_central_differences(seed):
    rng = np.random.default_rng(seed)
    shape = () if seed % 2 == 0 else (3,)
    inputs = [G.Input(rng.normal(size=shape), f"x{i}") for i in range(3)]
    output = random_expression(rng, inputs, n_ops=12)
    output.backward()
    for node, numeric in zip(inputs, numeric_gradient(output, inputs)):
        # An input the expression does not use is not in the graph: no gradient.
        grad = np.zeros(shape) if node.grad is None else node.grad
        scale = max(1.0, np.abs(numeric).max())
        assert np.abs(grad - numeric).max() <= 1e-7 * scale


def test_array_operations_against_central_differences():
    rng = np.random.default_rng(3)
    A, B = G.Input(rng.normal(size=(4, 3)), "A"), G.Input(rng.normal(size=(3, 2)), "B")
    v = G.Input(rng.normal(size=(2,)), "v")  # broadcast over the rows
    hidden = G.tanh(A @ B + v)
    output = G.sum(G.sum(hidden * hidden, axis=0) / (1.0 + G.exp(v)))
    output.backward()
    for node, numeric in zip((A, B, v), numeric_gradient(output, (A, B, v))):
        np.testing.assert_allclose(node.grad, numeric, rtol=1e-7, atol=1e-9)


def graph_objective(model, X, targets, loss, activation):
    """The model's objective, rebuilt from graph nodes with copies of its weights."""
    weights = []
    a = G.Constant(X, "X")
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    for k, layer in enumerate(dense):
        W = G.Input(layer.params["W"].copy(), f"W{k}")
        b = G.Input(layer.params["b"].copy(), f"b{k}")
        weights.append((W, b))
        z = a @ W + b
        a = activation(z) if k < len(dense) - 1 else z
    m = X.shape[0]
    Y = G.Constant(targets, "Y")
    if loss == "softmax_cross_entropy":
        log_softmax = a - G.log(G.sum(G.exp(a), axis=1, keepdims=True))
        cost = -G.sum(Y * log_softmax) / m
    elif loss == "sigmoid_cross_entropy":
        out = G.sigmoid(a)
        cost = -G.sum(Y * G.log(out) + (1.0 - Y) * G.log(1.0 - out)) / m
    elif loss == "quadratic":  # Nielsen's ½‖a − y‖², averaged over the samples
        out = G.sigmoid(a)
        cost = G.sum((out - Y) ** 2) / (2 * m)
    else:  # "mse": the mean over every element, as PyTorch's MSELoss
        out = G.sigmoid(a)
        cost = G.sum((out - Y) ** 2) / (m * targets.shape[1])
    penalty = G.sum(weights[0][0] ** 2)
    for W, _ in weights[1:]:
        penalty = penalty + G.sum(W ** 2)
    return cost + model.l2 / (2 * m) * penalty, weights


@pytest.mark.parametrize("loss,activation", [
    ("softmax_cross_entropy", "relu"),
    ("sigmoid_cross_entropy", "sigmoid"),
    ("quadratic", "tanh"),
    ("mse", "tanh"),
])
def test_graph_mlp_matches_fastnn_backprop(loss, activation):
    rng = np.random.default_rng(7)
    X, labels = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
    act_layer = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}[activation]
    act_node = {"relu": G.relu, "sigmoid": G.sigmoid, "tanh": G.tanh}[activation]
    output = L.Softmax() if loss == "softmax_cross_entropy" else L.Sigmoid()
    model = Sequential([L.Dense(5, 6, bias_init="normal"), act_layer(),
                        L.Dense(6, 4, bias_init="normal"), act_layer(),
                        L.Dense(4, 3, bias_init="normal"), output],
                       loss=loss, dtype="float64", seed=1, l2=0.7)
    objective, grads = model.loss_and_gradients(X, labels)
    cost, weights = graph_objective(model, X, np.eye(3)[labels], loss, act_node)
    cost.backward()
    assert float(cost.value) == pytest.approx(objective, rel=1e-12)
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    for layer, (W, b) in zip(dense, weights):
        for node, reference in ((W, layer.grads["W"]), (b, layer.grads["b"])):
            error = np.linalg.norm(node.grad - reference) / np.linalg.norm(reference)
            assert error <= 1e-12, f"{node.label}: relative error {error:.3g}"


def test_text_and_dot_show_values_and_gradients(tmp_path):
    a, b = G.Input(3.0, "a"), G.Input(-2.0, "b")
    y = G.tanh(a * b)
    y.name = "y"
    y.backward()
    text = y.to_text()
    dy_da = (1 - np.tanh(-6.0) ** 2) * -2.0
    line = next(row for row in text.splitlines() if row.strip().startswith("a ="))
    assert f"grad {dy_da:.6g}" in line and "value 3" in line
    dot = y.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == 3  # a→×, b→×, ×→tanh
    assert f"grad {dy_da:.6g}" in dot
    png = y.write_dot(tmp_path / "y.dot")
    assert (tmp_path / "y.dot").read_text() == dot
    if shutil.which("dot") is None:
        assert png is None
    else:
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_input():
    with pytest.raises(TypeError, match="value"):
        G.Input("x")
    with pytest.raises(ValueError, match="value must be finite"):
        G.Input(np.nan)
    with pytest.raises(TypeError, match="exponent"):
        G.Input(2.0) ** G.Input(3.0)
    with pytest.raises(ValueError, match="needs grad"):
        (G.Input(np.ones(3)) * 2).backward()
    with pytest.raises(ValueError, match="2-D"):
        (G.Input(np.ones(3)) @ G.Input(np.ones((3, 2)))).forward()
    with pytest.raises(TypeError, match="axis"):
        G.sum(G.Input(np.ones(3)), axis=1.5)
