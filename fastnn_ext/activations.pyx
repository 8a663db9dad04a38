"""The element-wise activations of fastnn's layers, and their checked wrappers.

Each activation is a kernel table (see activations.pxd) exported as a
capsule: ``IDENTITY``, ``SIGMOID``, ``TANH``, ``RELU``, ``LEAKY_RELU``.  The
``forward``/``backward`` wrappers take such a capsule, so an activation
defined in another module (``fastnn_ext.silu``) runs through them too.
``softmax``/``softmax_grad`` and ``prelu``/``prelu_grad`` are the row-wise
softmax and the learned-slope PReLU.  Arrays are row-major (m, n) float32
or float64, all of one dtype; every argument is checked before a kernel
runs.
"""

from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
from libc.math cimport tanh, tanhf

from fastnn_ext._checks cimport (FloatArray, KIND_FLOAT32, float_array, like_array,
                                 column_vector, span, check_outputs_disjoint)


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
    # grad_out is read whatever the sign, so that GCC selects without a branch
    # and vectorizes: the branch on out[i] > 0 mispredicts about every other
    # element on a ReLU layer's output (measured: 6.2 ms against 0.8 ms for
    # 512 × 2048 float32 on a 2-core AMD EPYC, family 25, model 1).
    cdef Py_ssize_t i
    cdef floating g
    for i in range(size):
        g = grad_out[i]
        grad_in[i] = g if out[i] > 0 else 0


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
    """Whether the activation's backward needs the pre-activation z.

    Parameters
    ----------
    activation : activation capsule

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        If activation is not an activation capsule.
    """
    return bool(activation_kernels(activation).needs_input)


# -- the checked wrappers ------------------------------------------------------

def forward(z, out, activation, alpha=0.0, bias=None):
    """Element-wise activation f, with an optional bias added first::

        out = f(z + bias)

    Parameters
    ----------
    z : ndarray of float32 or float64, shape (m, n), C-contiguous
        Pre-activations.
    out : ndarray, shape (m, n), same dtype, output
        Overwritten.  May be `z` itself (each element is read before it is
        written); must not otherwise overlap `z` or `bias`.
    activation : activation capsule
        ``IDENTITY``, ``SIGMOID``, ``TANH``, ``RELU``, ``LEAKY_RELU``,
        ``silu.SILU``...: f(z) = z, 1/(1 + e^{−z}), tanh z, max(z, 0),
        z if z > 0 else α·z, z·σ(z).
    alpha : float, default 0.0
        The activation's parameter (LeakyReLU's α), finite and >= 0.
    bias : ndarray, shape (n,), same dtype, or None
        Added to every row of z; None adds nothing.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array, dtypes differ, or
        activation is not an activation capsule.
    ValueError
        If shapes do not match, an array is not C-contiguous and aligned,
        out is read-only or overlaps an input other than being z itself, or
        alpha is out of range.
    """
    cdef const ActivationKernels* kernels = activation_kernels(activation)
    cdef double a = activation_alpha(alpha)
    cdef FloatArray za, oa, ba
    float_array("z", z, 2, False, &za)
    like_array("out", out, 2, True, &oa, "z", &za)
    inputs = [span("z", &za)]
    if bias is not None:
        column_vector("bias", bias, False, &ba, "z", &za)
        inputs.append(span("bias", &ba))
    check_outputs_disjoint([span("out", &oa)], inputs, (("out", "z"),))
    if za.rows == 0 or za.cols == 0:
        return
    if za.kind == KIND_FLOAT32:
        _forward[float](kernels, z, out, a, bias)
    else:
        _forward[double](kernels, z, out, a, bias)


cdef int _forward(const ActivationKernels* kernels, const floating[:, ::1] z,
                  floating[:, ::1] out, double alpha, const floating[::1] bias) except -1:
    """forward after its checks (m, n >= 1; the caller checks)."""
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        bias_ptr = &bias[0]
    with nogil:
        activation_forward(kernels, &z[0, 0], bias_ptr, &out[0, 0], z.shape[0], z.shape[1],
                           <floating> alpha)
    return 0


def backward(out, grad_out, grad_in, activation, alpha=0.0, z=None):
    """Element-wise activation backward pass, from the saved output a = f(z)::

        grad_in = grad_out * f'(z)

    with f' = 1 (identity), a(1 − a) (sigmoid), 1 − a² (tanh), [a > 0]
    (ReLU), 1 if a > 0 else α (LeakyReLU), σ(z)(1 + z(1 − σ(z))) (SiLU).

    Parameters
    ----------
    out : ndarray of float32 or float64, shape (m, n), C-contiguous
        The forward pass's output a.
    grad_out : ndarray, shape (m, n), same dtype
        Gradient with respect to a.
    grad_in : ndarray, shape (m, n), same dtype, output
        Gradient with respect to z; overwritten.  May be `grad_out` itself;
        must not otherwise overlap an input.
    activation : activation capsule
        The forward pass's activation.
    alpha : float, default 0.0
        The forward pass's α, finite and >= 0.
    z : ndarray, shape (m, n), same dtype, or None
        The pre-activation.  Required for an activation whose derivative
        needs it (``needs_input``, e.g. SiLU), read only then; checked
        whenever given.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array, dtypes differ, or
        activation is not an activation capsule.
    ValueError
        If shapes do not match, an array is not C-contiguous and aligned,
        grad_in is read-only or overlaps an input other than being grad_out
        itself, alpha is out of range, or z is missing where it is needed.
    """
    cdef const ActivationKernels* kernels = activation_kernels(activation)
    cdef double a = activation_alpha(alpha)
    cdef FloatArray oa, goa, gia, za
    float_array("out", out, 2, False, &oa)
    like_array("grad_out", grad_out, 2, False, &goa, "out", &oa)
    like_array("grad_in", grad_in, 2, True, &gia, "out", &oa)
    inputs = [span("grad_out", &goa), span("out", &oa)]
    if z is not None:
        like_array("z", z, 2, False, &za, "out", &oa)
        inputs.append(span("z", &za))
    check_outputs_disjoint([span("grad_in", &gia)], inputs, (("grad_in", "grad_out"),))
    if z is None and kernels.needs_input:
        raise ValueError("z is None, but this activation's backward needs z, the "
                         "pre-activation input")
    if oa.rows == 0 or oa.cols == 0:
        return
    if oa.kind == KIND_FLOAT32:
        _backward[float](kernels, out, grad_out, grad_in, a, z)
    else:
        _backward[double](kernels, out, grad_out, grad_in, a, z)


cdef int _backward(const ActivationKernels* kernels, const floating[:, ::1] out,
                   const floating[:, ::1] grad_out, floating[:, ::1] grad_in,
                   double alpha, const floating[:, ::1] z) except -1:
    """backward after its checks (m, n >= 1; the caller checks)."""
    cdef const floating* z_ptr = NULL
    if kernels.needs_input:
        z_ptr = &z[0, 0]
    with nogil:
        activation_backward(kernels, z_ptr, &out[0, 0], &grad_out[0, 0], &grad_in[0, 0],
                            out.shape[0] * out.shape[1], <floating> alpha)
    return 0


def softmax(z, out):
    """Row-wise softmax, with the row maximum subtracted so exp never overflows::

        out[i, k] = exp(z[i, k] − max_j z[i, j]) / Σ_j exp(z[i, j] − max_j z[i, j])

    Parameters
    ----------
    z : ndarray of float32 or float64, shape (m, n), C-contiguous
    out : ndarray, shape (m, n), same dtype, output
        Overwritten; must not share memory with z.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or the dtypes differ.
    ValueError
        If the shapes differ, an array is not C-contiguous and aligned, or
        out is read-only or overlaps z.
    """
    cdef FloatArray za, oa
    float_array("z", z, 2, False, &za)
    like_array("out", out, 2, True, &oa, "z", &za)
    check_outputs_disjoint([span("out", &oa)], [span("z", &za)])
    if za.rows == 0 or za.cols == 0:
        return
    if za.kind == KIND_FLOAT32:
        _softmax[float](z, out)
    else:
        _softmax[double](z, out)


cdef int _softmax(const floating[:, ::1] z, floating[:, ::1] out) except -1:
    """softmax after its checks (m, n >= 1; the caller checks)."""
    with nogil:
        softmax_forward(&z[0, 0], &out[0, 0], z.shape[0], z.shape[1])
    return 0


def softmax_grad(out, grad_out, grad_in):
    """Softmax backward pass, from the saved output p = softmax(z), row by row::

        grad_in = p * (grad_out − Σ_k grad_out[:, k] · p[:, k])

    Parameters
    ----------
    out : ndarray of float32 or float64, shape (m, n), C-contiguous
        The forward pass's output p.
    grad_out : ndarray, shape (m, n), same dtype
        Gradient with respect to p.
    grad_in : ndarray, shape (m, n), same dtype, output
        Gradient with respect to z; overwritten.  May be `grad_out` itself
        (each row's sum is taken before the row is written); must not
        otherwise overlap an input.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or dtypes differ.
    ValueError
        If shapes differ, an array is not C-contiguous and aligned, or
        grad_in is read-only or overlaps an input other than being grad_out.
    """
    cdef FloatArray oa, goa, gia
    float_array("out", out, 2, False, &oa)
    like_array("grad_out", grad_out, 2, False, &goa, "out", &oa)
    like_array("grad_in", grad_in, 2, True, &gia, "out", &oa)
    check_outputs_disjoint([span("grad_in", &gia)], [span("grad_out", &goa), span("out", &oa)],
                           (("grad_in", "grad_out"),))
    if oa.rows == 0 or oa.cols == 0:
        return
    if oa.kind == KIND_FLOAT32:
        _softmax_grad[float](out, grad_out, grad_in)
    else:
        _softmax_grad[double](out, grad_out, grad_in)


cdef int _softmax_grad(const floating[:, ::1] out, const floating[:, ::1] grad_out,
                       floating[:, ::1] grad_in) except -1:
    """softmax_grad after its checks (m, n >= 1; the caller checks)."""
    with nogil:
        softmax_backward(&out[0, 0], &grad_out[0, 0], &grad_in[0, 0], out.shape[0],
                         out.shape[1])
    return 0


def prelu(z, slope, out):
    """PReLU forward pass, one learned slope a_j per column j::

        out[i, j] = z[i, j] if z[i, j] > 0 else slope[j] * z[i, j]

    Parameters
    ----------
    z : ndarray of float32 or float64, shape (m, n), C-contiguous
    slope : ndarray, shape (n,), same dtype
    out : ndarray, shape (m, n), same dtype, output
        Overwritten; must not share memory with z or slope.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or dtypes differ.
    ValueError
        If shapes do not match, an array is not C-contiguous and aligned, or
        out is read-only or overlaps an input.
    """
    cdef FloatArray za, sa, oa
    float_array("z", z, 2, False, &za)
    column_vector("slope", slope, False, &sa, "z", &za)
    like_array("out", out, 2, True, &oa, "z", &za)
    check_outputs_disjoint([span("out", &oa)], [span("z", &za), span("slope", &sa)])
    if za.rows == 0 or za.cols == 0:
        return
    if za.kind == KIND_FLOAT32:
        _prelu[float](z, slope, out)
    else:
        _prelu[double](z, slope, out)


cdef int _prelu(const floating[:, ::1] z, const floating[::1] slope,
                floating[:, ::1] out) except -1:
    """prelu after its checks (m, n >= 1; the caller checks)."""
    with nogil:
        prelu_forward(&z[0, 0], &slope[0], &out[0, 0], z.shape[0], z.shape[1])
    return 0


def prelu_grad(z, slope, grad_out, grad_in, grad_slope):
    """PReLU backward pass::

        grad_in[i, j] = grad_out[i, j] * (1 if z[i, j] > 0 else slope[j])
        grad_slope[j] = Σ_i grad_out[i, j] * z[i, j] * [z[i, j] <= 0]

    Parameters
    ----------
    z : ndarray of float32 or float64, shape (m, n), C-contiguous
        The forward pass's input.
    slope : ndarray, shape (n,), same dtype
    grad_out : ndarray, shape (m, n), same dtype
        Gradient with respect to the forward output.
    grad_in : ndarray, shape (m, n), same dtype, output
        Overwritten.  May be `grad_out` itself; must not otherwise overlap
        an input.
    grad_slope : ndarray, shape (n,), same dtype, output
        Overwritten (zero for m = 0); must not share memory with any other
        argument.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 array or dtypes differ.
    ValueError
        If shapes do not match, an array is not C-contiguous and aligned, or
        an output is read-only or overlaps another array (other than grad_in
        being grad_out).
    """
    cdef FloatArray za, sa, goa, gia, gsa
    float_array("z", z, 2, False, &za)
    column_vector("slope", slope, False, &sa, "z", &za)
    like_array("grad_out", grad_out, 2, False, &goa, "z", &za)
    like_array("grad_in", grad_in, 2, True, &gia, "z", &za)
    column_vector("grad_slope", grad_slope, True, &gsa, "z", &za)
    check_outputs_disjoint([span("grad_slope", &gsa), span("grad_in", &gia)],
                           [span("z", &za), span("slope", &sa), span("grad_out", &goa)],
                           (("grad_in", "grad_out"),))
    if za.cols == 0:
        return
    if za.kind == KIND_FLOAT32:
        _prelu_grad[float](z, slope, grad_out, grad_in, grad_slope)
    else:
        _prelu_grad[double](z, slope, grad_out, grad_in, grad_slope)


cdef int _prelu_grad(const floating[:, ::1] z, const floating[::1] slope,
                     const floating[:, ::1] grad_out, floating[:, ::1] grad_in,
                     floating[::1] grad_slope) except -1:
    """prelu_grad after its checks (n >= 1; the caller checks)."""
    if z.shape[0] == 0:
        grad_slope[:] = 0   # a sum over no rows
        return 0
    with nogil:
        prelu_backward(&z[0, 0], &slope[0], &grad_out[0, 0], &grad_in[0, 0],
                       &grad_slope[0], z.shape[0], z.shape[1])
    return 0
