"""The element-wise activations of fastnn's layers, and their checked wrappers.

Each activation is a kernel table (see activations.pxd) exported as a
capsule: ``IDENTITY``, ``SIGMOID``, ``TANH``, ``RELU``, ``LEAKY_RELU``.  The
``forward``/``backward`` wrappers take such a capsule, so an activation
defined in another module (``fastnn_ext.silu``) runs through them too.
"""

from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
from libc.math cimport tanh, tanhf

from fastnn_ext._checks cimport expect_shape, expect_length


# -- identity: f(z) = z ------------------------------------------------------

cdef void identity_forward(const floating* z, const floating* bias, floating* out,
                           Py_ssize_t m, Py_ssize_t n, floating alpha) noexcept nogil:
    add_bias(z, bias, out, m, n)


cdef void identity_backward(const floating* z, const floating* out, const floating* grad_out,
                            floating* grad_in, Py_ssize_t size,
                            floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    if grad_in != grad_out:
        for i in range(size):
            grad_in[i] = grad_out[i]


# -- sigmoid: f = 1 / (1 + e^{−z}), f' = f(1 − f) ------------------------------

cdef void sigmoid_forward(const floating* z, const floating* bias, floating* out,
                          Py_ssize_t m, Py_ssize_t n, floating alpha) noexcept nogil:
    # A vectorized C loop calling glibc's vector exp where it links.
    if floating is float:
        fastnn_sigmoid_rows_f32(z, bias, out, m, n)
    else:
        fastnn_sigmoid_rows_f64(z, bias, out, m, n)


cdef void sigmoid_backward(const floating* z, const floating* out, const floating* grad_out,
                           floating* grad_in, Py_ssize_t size, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating a
    for i in range(size):
        a = out[i]
        grad_in[i] = grad_out[i] * a * (1 - a)


# The loops below add the bias in one pass and apply f in a second: the
# rounded z + b is the same either way, and the second pass runs over a
# batch's activations while they are in L1.

# -- tanh: f' = 1 − f² ---------------------------------------------------------

cdef inline floating tanh_of(floating z) noexcept nogil:
    if floating is float:
        return tanhf(z)
    else:
        return tanh(z)


cdef void tanh_forward(const floating* z, const floating* bias, floating* out,
                       Py_ssize_t m, Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    add_bias(z, bias, out, m, n)
    for i in range(m * n):
        out[i] = tanh_of(out[i])


cdef void tanh_backward(const floating* z, const floating* out, const floating* grad_out,
                        floating* grad_in, Py_ssize_t size, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating a
    for i in range(size):
        a = out[i]
        grad_in[i] = grad_out[i] * (1 - a * a)


# -- leaky ReLU: f = z if z > 0 else α·z (α = 0: ReLU), f' from the output -------

cdef inline floating leaky(floating z, floating alpha) noexcept nogil:
    return z if z > 0 else alpha * z


cdef void leaky_relu_forward(const floating* z, const floating* bias, floating* out,
                             Py_ssize_t m, Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    add_bias(z, bias, out, m, n)
    for i in range(m * n):
        out[i] = leaky(out[i], alpha)


cdef void leaky_relu_backward(const floating* z, const floating* out,
                              const floating* grad_out, floating* grad_in, Py_ssize_t size,
                              floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        grad_in[i] = grad_out[i] if out[i] > 0 else alpha * grad_out[i]


cdef inline floating relu(floating z) noexcept nogil:
    return z if z > 0 else 0


cdef void relu_forward(const floating* z, const floating* bias, floating* out,
                       Py_ssize_t m, Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    add_bias(z, bias, out, m, n)
    for i in range(m * n):
        out[i] = relu(out[i])


cdef void relu_backward(const floating* z, const floating* out, const floating* grad_out,
                        floating* grad_in, Py_ssize_t size, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        grad_in[i] = grad_out[i] if out[i] > 0 else 0


cdef ActivationKernels IDENTITY_KERNELS = ActivationKernels(
    identity_forward[float], identity_forward[double],
    identity_backward[float], identity_backward[double], False, True)
cdef ActivationKernels SIGMOID_KERNELS = ActivationKernels(
    sigmoid_forward[float], sigmoid_forward[double],
    sigmoid_backward[float], sigmoid_backward[double], False, False)
cdef ActivationKernels TANH_KERNELS = ActivationKernels(
    tanh_forward[float], tanh_forward[double],
    tanh_backward[float], tanh_backward[double], False, False)
cdef ActivationKernels RELU_KERNELS = ActivationKernels(
    relu_forward[float], relu_forward[double],
    relu_backward[float], relu_backward[double], False, False)
cdef ActivationKernels LEAKY_RELU_KERNELS = ActivationKernels(
    leaky_relu_forward[float], leaky_relu_forward[double],
    leaky_relu_backward[float], leaky_relu_backward[double], False, False)

IDENTITY = PyCapsule_New(&IDENTITY_KERNELS, ACTIVATION_CAPSULE, NULL)
SIGMOID = PyCapsule_New(&SIGMOID_KERNELS, ACTIVATION_CAPSULE, NULL)
TANH = PyCapsule_New(&TANH_KERNELS, ACTIVATION_CAPSULE, NULL)
RELU = PyCapsule_New(&RELU_KERNELS, ACTIVATION_CAPSULE, NULL)
LEAKY_RELU = PyCapsule_New(&LEAKY_RELU_KERNELS, ACTIVATION_CAPSULE, NULL)


def needs_input(activation):
    """Whether the activation's backward needs the pre-activation z."""
    return bool(activation_kernels(activation).needs_input)


def forward(const floating[:, ::1] z, floating[:, ::1] out, activation,
            double alpha=0.0, const floating[::1] bias=None):
    """out = f(z + bias) for an activation capsule; out may be z itself."""
    cdef const ActivationKernels* kernels = activation_kernels(activation)
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_shape("out", out.shape[0], out.shape[1], m, n)
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        expect_length("bias", bias.shape[0], n)
        bias_ptr = &bias[0]
    if m == 0 or n == 0:
        return
    with nogil:
        activation_forward(kernels, &z[0, 0], bias_ptr, &out[0, 0], m, n, <floating> alpha)


def backward(const floating[:, ::1] out, const floating[:, ::1] grad_out,
             floating[:, ::1] grad_in, activation, double alpha=0.0,
             const floating[:, ::1] z=None):
    """grad_in = grad_out * f'(z), from the saved output out = f(z).

    ``z`` is required for an activation whose derivative needs it
    (``needs_input``) and ignored otherwise.
    """
    cdef const ActivationKernels* kernels = activation_kernels(activation)
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    expect_shape("grad_out", grad_out.shape[0], grad_out.shape[1], m, n)
    expect_shape("grad_in", grad_in.shape[0], grad_in.shape[1], m, n)
    cdef const floating* z_ptr = NULL
    if kernels.needs_input:
        if z is None:
            raise ValueError("this activation's backward needs z, the pre-activation input")
        expect_shape("z", z.shape[0], z.shape[1], m, n)
        if m > 0 and n > 0:
            z_ptr = &z[0, 0]
    if m == 0 or n == 0:
        return
    with nogil:
        activation_backward(kernels, z_ptr, &out[0, 0], &grad_out[0, 0], &grad_in[0, 0],
                            m * n, <floating> alpha)


def softmax(const floating[:, ::1] z, floating[:, ::1] out):
    """Row-wise softmax, stable for any finite z."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_shape("out", out.shape[0], out.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        softmax_forward(&z[0, 0], &out[0, 0], m, n)


def softmax_grad(const floating[:, ::1] out, const floating[:, ::1] grad_out,
                 floating[:, ::1] grad_in):
    """grad_in = out * (grad_out - sum(grad_out * out, axis=1))."""
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    expect_shape("grad_out", grad_out.shape[0], grad_out.shape[1], m, n)
    expect_shape("grad_in", grad_in.shape[0], grad_in.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        softmax_backward(&out[0, 0], &grad_out[0, 0], &grad_in[0, 0], m, n)


def prelu(const floating[:, ::1] z, const floating[::1] slope, floating[:, ::1] out):
    """out = z where z > 0, slope * z elsewhere (one slope per column)."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_length("slope", slope.shape[0], n)
    expect_shape("out", out.shape[0], out.shape[1], m, n)
    if m == 0 or n == 0:
        return
    with nogil:
        prelu_forward(&z[0, 0], &slope[0], &out[0, 0], m, n)


def prelu_grad(const floating[:, ::1] z, const floating[::1] slope,
               const floating[:, ::1] grad_out, floating[:, ::1] grad_in,
               floating[::1] grad_slope):
    """Input gradient and (overwritten) slope gradient of PReLU."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    expect_length("slope", slope.shape[0], n)
    expect_shape("grad_out", grad_out.shape[0], grad_out.shape[1], m, n)
    expect_shape("grad_in", grad_in.shape[0], grad_in.shape[1], m, n)
    expect_length("grad_slope", grad_slope.shape[0], n)
    if m == 0 or n == 0:
        return
    with nogil:
        prelu_backward(&z[0, 0], &slope[0], &grad_out[0, 0], &grad_in[0, 0],
                       &grad_slope[0], m, n)
