"""Reverse-mode automatic differentiation on a computational graph.

A teaching implementation in the spirit of micrograd: clarity over speed.
An expression such as ``(a + 2*b) * (2*b + c)`` builds a graph of nodes;
each operation is a small class whose ``compute`` gives its output from its
inputs' values and whose ``backward``, written beside it, applies the chain
rule: it adds ``∂C/∂output · ∂output/∂input`` into every input's ``grad``
with ``+=``, so that a node used by several others collects the sum of the
gradients flowing back along every path (the multivariable chain rule).

    a, b, c = Input(1.0, "a"), Input(2.0, "b"), Input(3.0, "c")
    g = 2 * b                       # built once, used twice
    y = (a + g) * (g + c)
    y.forward()                     # 35.0: every node evaluated once
    y.backward()                    # a.grad 7, b.grad 24, c.grad 5
    print(y.to_text())              # the graph with values and gradients

Building a graph does not evaluate it.  :meth:`Node.forward` evaluates the
nodes an output depends on in topological order (inputs before the nodes
that use them), each exactly once however many nodes share it;
:meth:`Node.backward` sets ``∂y/∂y = 1`` and visits the same order in
reverse, so a node's gradient is complete before it passes it on.

Values are float64 NumPy arrays (0-d for scalars).  Element-wise operations
broadcast as NumPy does; their backward passes sum the gradient over the
broadcast axes, so a bias of shape ``(n,)`` added to a batch ``(m, n)``
receives the gradient summed over the batch.
"""

import numbers
import shutil
import subprocess

import numpy as np

__all__ = ["Node", "Input", "Constant", "exp", "log", "sigmoid", "tanh", "relu", "sum",
           "matmul", "topological_order"]


def _as_value(value, name):
    """``value`` as a float64 array; non-numbers and non-finite values are refused."""
    if isinstance(value, Node):
        raise TypeError(f"{name} must be a number or an array, not a graph node")
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a numeric array, got {value!r}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched to reach it.

    If ``x`` of ``shape`` was broadcast to ``grad.shape`` in the forward pass,
    every copy of an element contributed to the output, so its gradient is
    the sum over the copies.
    """
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def _lift(x):
    """A node for ``x``: nodes pass through, numbers and arrays become constants."""
    return x if isinstance(x, Node) else Constant(x)


def topological_order(output):
    """The nodes ``output`` depends on, each once, every node after its inputs.

    Iterative depth-first search (a recursive one would exceed Python's
    recursion limit on a long chain of operations).
    """
    if not isinstance(output, Node):
        raise TypeError(f"output must be a graph node, got {type(output).__name__}")
    order, seen = [], {id(output)}
    stack = [(output, iter(output.parents))]
    while stack:
        node, pending = stack[-1]
        for parent in pending:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, iter(parent.parents)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def _format(array):
    """A short text form of a value or gradient for printing and graph labels."""
    if array is None:
        return "?"
    if array.ndim == 0:
        return f"{float(array):.6g}"
    if array.size <= 4:
        return np.array2string(array, precision=4, separator=", ")
    return (f"{'×'.join(map(str, array.shape))} array, mean {array.mean():.4g}, "
            f"‖·‖ {np.linalg.norm(array):.4g}")


class Node:
    """A value in a computational graph.

    Attributes
    ----------
    parents : tuple of Node
        The nodes this one is computed from.
    value : ndarray or None
        Output of the last :meth:`forward` (None before the first).
    grad : ndarray or None
        ∂y/∂(this node) from the last :meth:`backward` of an output y.
    name : str or None
        Label for printing.
    evaluations : int
        How many times a forward pass has computed this node.
    """

    #: symbol of the operation, for printing
    symbol = "?"
    _counter = 0

    def __init__(self, *parents, name=None):
        self.parents = tuple(parents)
        self.name = name
        self.value = None
        self.grad = None
        self.evaluations = 0
        Node._counter += 1
        self._id = Node._counter

    # -- one operation's two halves (overridden by every operation) -------

    def compute(self, *values):
        """The output from the parents' values."""
        raise NotImplementedError

    def backward_step(self):
        """Add this node's gradient, times the local derivative, into each parent's."""
        raise NotImplementedError

    # -- passes over the graph --------------------------------------------

    def forward(self):
        """Evaluate every node this one depends on, each once, and return this value."""
        for node in topological_order(self):
            if node.parents:
                node.value = np.asarray(node.compute(*(p.value for p in node.parents)),
                                        dtype=np.float64)
                node.evaluations += 1
        return self.value

    def backward(self, grad=None):
        """Reverse-mode differentiation: ``grad`` of every node is set to ∂self/∂node.

        Parameters
        ----------
        grad : array, optional
            Seed ∂C/∂self for a non-scalar output (default 1, which needs a
            scalar output).  Runs :meth:`forward` first if this node has no
            value yet.
        """
        if self.value is None:
            self.forward()
        if grad is None:
            if self.value.ndim != 0:
                raise ValueError(f"backward() of a non-scalar node (shape {self.value.shape}) "
                                 "needs grad, the gradient of the objective with respect to it")
            grad = 1.0
        seed = _as_value(grad, "grad")
        if seed.shape != self.value.shape:
            raise ValueError(f"grad has shape {seed.shape}, the node's value {self.value.shape}")
        order = topological_order(self)
        for node in order:
            node.grad = np.zeros_like(node.value)
        self.grad += seed
        for node in reversed(order):
            if node.parents:
                node.backward_step()

    # -- printing ---------------------------------------------------------

    @property
    def label(self):
        """The node's name, or ``t<number>`` for an unnamed intermediate."""
        return self.name if self.name is not None else f"t{self._id}"

    def describe(self):
        """How this node is computed, e.g. ``"a + t3"``."""
        operands = [p.label for p in self.parents]
        if len(operands) == 2:
            return f"{operands[0]} {self.symbol} {operands[1]}"
        return f"{self.symbol}({', '.join(operands)})"

    def to_text(self):
        """The graph as lines ``label = operation   value …   grad …``, inputs first."""
        order = topological_order(self)
        rows = [(node.label, node.describe() if node.parents else node.symbol,
                 _format(node.value), _format(node.grad)) for node in order]
        widths = [max(len(row[k]) for row in rows) for k in range(2)]
        return "\n".join(f"{label:>{widths[0]}} = {how:<{widths[1]}}   value {value:<12}  "
                         f"grad {grad}" for label, how, value, grad in rows)

    def to_dot(self):
        """Graphviz DOT source: one box per node with its value and gradient."""
        lines = ["digraph computation {", "  rankdir=LR;",
                 '  node [shape=record, fontname="Helvetica", fontsize=11];']
        for node in topological_order(self):
            fill = "#dbe9f6" if not node.parents else "#f6f1db" if node is self else "white"
            text = f"{node.label} = {node.describe()}" if node.parents else node.describe()
            fields = [text, f"value {_format(node.value)}", f"grad {_format(node.grad)}"]
            # rankdir=LR turns a record's top-level fields into a vertical stack.
            escaped = " | ".join(_dot_escape(field) for field in fields)
            lines.append(f'  n{node._id} [label="{escaped}", style=filled, '
                         f'fillcolor="{fill}"];')
            for parent in node.parents:
                lines.append(f"  n{parent._id} -> n{node._id};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write_dot(self, path, png=True):
        """Write :meth:`to_dot` to ``path``; also render ``path`` with ``.png`` if ``dot`` exists.

        Returns
        -------
        str or None
            The PNG's path, or None when Graphviz's ``dot`` is not on PATH
            (``apt-get install graphviz``) or ``png`` is False.
        """
        path = str(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_dot())
        executable = shutil.which("dot")
        if not png or executable is None:
            return None
        target = (path[:-4] if path.endswith(".dot") else path) + ".png"
        subprocess.run([executable, "-Tpng", "-Gdpi=110", path, "-o", target], check=True,
                       capture_output=True)
        return target

    def __repr__(self):
        return f"<{type(self).__name__} {self.label} = {_format(self.value)}>"

    # -- operator syntax --------------------------------------------------

    # NumPy arrays on the left of an operator defer to the node's reflected method.
    __array_ufunc__ = None

    def __add__(self, other):
        return Add(self, _lift(other))

    def __radd__(self, other):
        return Add(_lift(other), self)

    def __sub__(self, other):
        return Sub(self, _lift(other))

    def __rsub__(self, other):
        return Sub(_lift(other), self)

    def __mul__(self, other):
        return Mul(self, _lift(other))

    def __rmul__(self, other):
        return Mul(_lift(other), self)

    def __truediv__(self, other):
        return Div(self, _lift(other))

    def __rtruediv__(self, other):
        return Div(_lift(other), self)

    def __neg__(self):
        return Mul(Constant(-1.0), self)

    def __pow__(self, exponent):
        return Pow(self, exponent)

    def __matmul__(self, other):
        return MatMul(self, _lift(other))

    def __rmatmul__(self, other):
        return MatMul(_lift(other), self)


# ----------------------------------------------------------------- leaves


class Input(Node):
    """A variable: a leaf whose value the caller sets and whose gradient is wanted.

    Parameters
    ----------
    value : number or array
    name : str, optional
    """

    symbol = "input"

    def __init__(self, value, name=None):
        super().__init__(name=name)
        self.value = _as_value(value, "value")

    def set(self, value):
        """Give the input a new value (call :meth:`forward` again afterwards)."""
        self.value = _as_value(value, "value")

    def describe(self):
        return self.label


class Constant(Input):
    """A fixed leaf (a literal such as the 2 in ``2*b``); its gradient is computed but unused."""

    symbol = "const"

    @property
    def label(self):
        return self.name if self.name is not None else _format(self.value)


# ------------------------------------------------ element-wise operations


class Add(Node):
    """a + b;  ∂/∂a = 1,  ∂/∂b = 1."""

    symbol = "+"

    def compute(self, a, b):
        return a + b

    def backward_step(self):
        a, b = self.parents
        a.grad += _unbroadcast(self.grad, a.value.shape)
        b.grad += _unbroadcast(self.grad, b.value.shape)


class Sub(Node):
    """a − b;  ∂/∂a = 1,  ∂/∂b = −1."""

    symbol = "−"

    def compute(self, a, b):
        return a - b

    def backward_step(self):
        a, b = self.parents
        a.grad += _unbroadcast(self.grad, a.value.shape)
        b.grad -= _unbroadcast(self.grad, b.value.shape)


class Mul(Node):
    """a · b;  ∂/∂a = b,  ∂/∂b = a."""

    symbol = "×"

    def compute(self, a, b):
        return a * b

    def backward_step(self):
        a, b = self.parents
        a.grad += _unbroadcast(self.grad * b.value, a.value.shape)
        b.grad += _unbroadcast(self.grad * a.value, b.value.shape)


class Div(Node):
    """a / b;  ∂/∂a = 1/b,  ∂/∂b = −a/b²."""

    symbol = "÷"

    def compute(self, a, b):
        return a / b

    def backward_step(self):
        a, b = self.parents
        a.grad += _unbroadcast(self.grad / b.value, a.value.shape)
        b.grad -= _unbroadcast(self.grad * self.value / b.value, b.value.shape)


class Pow(Node):
    """x^p for a constant real exponent p;  ∂/∂x = p·x^(p−1)."""

    def __init__(self, x, exponent):
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(f"exponent must be a real number, got {exponent!r}")
        super().__init__(x)
        self.exponent = float(exponent)

    def describe(self):
        return f"{self.parents[0].label} ^ {self.exponent:g}"

    def compute(self, x):
        return x ** self.exponent

    def backward_step(self):
        (x,) = self.parents
        x.grad += self.grad * self.exponent * x.value ** (self.exponent - 1)


class Exp(Node):
    """e^x;  ∂/∂x = e^x (the output itself)."""

    symbol = "exp"

    def compute(self, x):
        return np.exp(x)

    def backward_step(self):
        self.parents[0].grad += self.grad * self.value


class Log(Node):
    """ln x;  ∂/∂x = 1/x."""

    symbol = "log"

    def compute(self, x):
        return np.log(x)

    def backward_step(self):
        x = self.parents[0]
        x.grad += self.grad / x.value


class Sigmoid(Node):
    """σ(x) = 1/(1 + e^{−x});  ∂/∂x = σ(x)(1 − σ(x)), from the output."""

    symbol = "σ"

    def compute(self, x):
        # exp(−log(1 + e^{−x})) does not overflow for large negative x.
        return np.exp(-np.logaddexp(0.0, -x))

    def backward_step(self):
        self.parents[0].grad += self.grad * self.value * (1.0 - self.value)


class Tanh(Node):
    """tanh x;  ∂/∂x = 1 − tanh²x, from the output."""

    symbol = "tanh"

    def compute(self, x):
        return np.tanh(x)

    def backward_step(self):
        self.parents[0].grad += self.grad * (1.0 - self.value ** 2)


class ReLU(Node):
    """max(x, 0);  ∂/∂x = [x > 0] (0 at the kink, as fastnn's kernels)."""

    symbol = "relu"

    def compute(self, x):
        return np.maximum(x, 0.0)

    def backward_step(self):
        x = self.parents[0]
        x.grad += self.grad * (x.value > 0)


# ------------------------------------------------------ array operations


class MatMul(Node):
    """A·B of 2-D arrays;  ∂C/∂A = ∂C/∂(AB)·Bᵀ,  ∂C/∂B = Aᵀ·∂C/∂(AB)."""

    symbol = "@"

    def compute(self, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul needs 2-D operands, got shapes {a.shape} and {b.shape}")
        return a @ b

    def backward_step(self):
        a, b = self.parents
        a.grad += self.grad @ b.value.T
        b.grad += a.value.T @ self.grad


class Sum(Node):
    """Σ x over ``axis`` (all elements when None);  ∂/∂x_i = 1 for every summed element."""

    symbol = "sum"

    def __init__(self, x, axis=None, keepdims=False):
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, numbers.Integral)):
            raise TypeError(f"axis must be an integer or None, got {axis!r}")
        super().__init__(x)
        self.axis = None if axis is None else int(axis)
        self.keepdims = bool(keepdims)

    def describe(self):
        where = "" if self.axis is None else f", axis={self.axis}"
        return f"sum({self.parents[0].label}{where})"

    def compute(self, x):
        return np.sum(x, axis=self.axis, keepdims=self.keepdims)

    def backward_step(self):
        x = self.parents[0]
        grad = self.grad
        if self.axis is not None and not self.keepdims:
            grad = np.expand_dims(grad, self.axis)
        x.grad += np.broadcast_to(grad, x.value.shape)


# ------------------------------------------------------ function syntax


def exp(x):
    """e^x as a graph node."""
    return Exp(_lift(x))


def log(x):
    """Natural logarithm as a graph node."""
    return Log(_lift(x))


def sigmoid(x):
    """Logistic σ(x) = 1/(1 + e^{−x}) as a graph node."""
    return Sigmoid(_lift(x))


def tanh(x):
    """tanh x as a graph node."""
    return Tanh(_lift(x))


def relu(x):
    """max(x, 0) as a graph node."""
    return ReLU(_lift(x))


def sum(x, axis=None, keepdims=False):  # noqa: A001 - the graph's own sum, as numpy.sum
    """Σ x over ``axis`` (every element when None) as a graph node."""
    return Sum(_lift(x), axis=axis, keepdims=keepdims)


def matmul(a, b):
    """The matrix product a·b of 2-D operands as a graph node."""
    return MatMul(_lift(a), _lift(b))


def _dot_escape(text):
    for char in "\\{}|<>\"":
        text = text.replace(char, "\\" + char)
    return text

