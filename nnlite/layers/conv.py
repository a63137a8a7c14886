r"""2-D convolution (Conv2D) and its adjoint, the transposed convolution (ConvTranspose2D), NCHW.

Both run on the same three kernels (:func:`nnlite.ops.conv2d`, ``conv2d_input_grad``,
``conv2d_backward``): a transposed convolution's forward is a convolution's input gradient,
and its backward is a convolution forward (dx) and a weight gradient with the roles of input
and output swapped.
"""
import numpy as np

from .. import init as _init
from .. import ops
from ..ops import _checks as op_checks
from . import _checks as checks
from .base import Layer, shape_str


def _pair(layer, name, v, least):
    try:
        return op_checks.pair(layer, name, v, least)
    except ValueError as e:
        raise ValueError(str(e)) from None


def check_nchw(layer, x, channels):
    """x must be (N, channels, H, W): the error names the layer, the shape and what to do."""
    if x.ndim != 4:
        hint = ""
        if x.ndim == 3:
            hint = (" (a single image? add a batch axis: x[None]; a batch of one-channel "
                    "images? add the channel axis: x[:, None])")
        elif x.ndim == 2:
            hint = " (flat vectors? Reshape((C, H, W)) first)"
        raise ValueError(f"{checks.describe(layer)}: expected input of shape (batch, "
                         f"{channels}, height, width), 4-D, got shape {shape_str(x.shape)}{hint}")
    if x.shape[1] != channels:
        hint = " (channels last? NCHW is expected: x.transpose(0, 3, 1, 2))" \
            if x.shape[-1] == channels else ""
        raise ValueError(f"{checks.describe(layer)}: expected {channels} input channels, got "
                         f"input of shape {shape_str(x.shape)}{hint}")


def spatial_out(layer, shape, kernel, stride, padding, dilation):
    """(Ho, Wo) for an input shape (..., H, W); None sizes stay None. A ValueError naming the
    layer when the input is smaller than the kernel."""
    H, W = shape[-2:]
    if H is None or W is None:
        return tuple(None if n is None else op_checks.conv_out_size(
            (n, n), kernel, stride, padding, dilation)[i] for i, n in enumerate((H, W)))
    out = op_checks.conv_out_size((H, W), kernel, stride, padding, dilation)
    if min(out) < 1:
        span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        raise ValueError(f"{checks.describe(layer)}: input {shape_str(tuple(shape))} is smaller "
                         f"than the kernel: {H}x{W} with padding {padding[0]}x{padding[1]} "
                         f"cannot hold a {span[0]}x{span[1]} window")
    return out


class Conv2D(Layer):
    r"""2-D convolution over NCHW images (a cross-correlation, as in every framework).

    .. math::

        y_{n,o} = b_o + \sum_{c \in \text{group}(o)} w_{o,c} \star x_{n,c}, \qquad
        H_o = \Big\lfloor \frac{H + 2p - d(k - 1) - 1}{s} \Big\rfloor + 1

        \partial x = \text{col2im}(W^\top g), \quad
        \partial W = \textstyle\sum_n g_n\, \text{im2col}(x_n)^\top, \quad
        \partial b_o = \textstyle\sum_{n,h,w} g_{n,o,h,w}

    Computed as im2col + GEMM (see csrc/cpu/conv.cpp).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, dilation : int or (int, int), default 1
    padding : int, (int, int) or "same", default 0
        Zero padding on each side; "same" (stride 1 only) keeps H and W.
    groups : int, default 1
        Channels split into ``groups`` independent convolutions; ``groups = in_channels =
        out_channels`` is a depthwise convolution.
    bias : bool, default True
    init : str or callable, default "he_uniform"
        Weight initialiser (:mod:`nnlite.init`) with fan-in C/G·KH·KW.
    rng : numpy.random.Generator or int, optional
    dtype : numpy dtype, default float32
    name : str, optional

    Attributes
    ----------
    params : {"W": (out_channels, in_channels/groups, KH, KW), "b": (out_channels,)}
    grads : same keys and shapes
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, init="he_uniform", rng=None, dtype=np.float32, name=None):
        super().__init__(name=name)
        kind = type(self).__name__
        self.in_channels, self.out_channels, self.groups = checks.sizes(
            kind, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{kind}: in_channels {self.in_channels} and out_channels "
                             f"{self.out_channels} must both be multiples of groups "
                             f"{self.groups}")
        self.kernel_size = _pair(kind, "kernel_size", kernel_size, 1)
        self.stride = _pair(kind, "stride", stride, 1)
        self.dilation = _pair(kind, "dilation", dilation, 1)
        self.padding = self._padding(kind, padding)
        self.bias = bool(bias)
        self.init = init if isinstance(init, str) else getattr(init, "__name__", str(init))
        self._make_params(init, rng, dtype)
        self._x = None                      # cache: the input, for dW (and its shape for dx)

    def _padding(self, kind, padding):
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{kind}: padding must be an int, a pair, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "valid":
                return (0, 0)
            span = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            if self.stride != (1, 1) or any(s % 2 for s in span):
                raise ValueError(f"{kind}: padding='same' needs stride 1 and an odd kernel "
                                 f"span, got kernel {self.kernel_size}, stride {self.stride}, "
                                 f"dilation {self.dilation}")
            return (span[0] // 2, span[1] // 2)
        return _pair(kind, "padding", padding, 0)

    def _weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def _make_params(self, init, rng, dtype):
        shape = self._weight_shape()
        fan_in = shape[1] * shape[2] * shape[3]     # PyTorch's fan-in of either layout
        W = _init.get(init)(fan_in, shape[0], rng=rng, dtype=dtype)     # (fan_in, shape[0])
        self.params["W"] = np.ascontiguousarray(W.T.reshape(shape), dtype=dtype)
        if self.bias:
            self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _geometry(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                    "groups": self.groups}

    def _describe(self):
        k = self.kernel_size
        return f"{type(self).__name__}({self.in_channels} → {self.out_channels}, {k[0]}x{k[1]})"

    def forward(self, x, training=True):
        W = self.params["W"]
        x = checks.as_input(self, x, W.dtype)
        check_nchw(self, x, self.in_channels)
        spatial_out(self, x.shape, self.kernel_size, self.stride, self.padding, self.dilation)
        self._x = x
        return ops.conv2d(x, W, self.params.get("b"), **self._geometry())

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x)
        W = self.params["W"]
        g = checks.as_grad(self, grad_out, self.output_shape(self._x.shape), W.dtype)
        dx, dW, db = ops.conv2d_backward(g, self._x, W, **self._geometry(),
                                         input_grad=self.needs_input_grad)
        self.grads["W"] += dW
        if self.bias:
            self.grads["b"] += db
        return dx

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] not in (None, self.in_channels):
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                             f"{self.in_channels}, height, width), got "
                             f"{shape_str(tuple(input_shape))}")
        Ho, Wo = spatial_out(self, input_shape, self.kernel_size, self.stride, self.padding,
                             self.dilation)
        return (input_shape[0], self.out_channels, Ho, Wo)

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation),
                "groups": self.groups, "bias": self.bias, "init": self.init,
                "dtype": checks.dtype_name(self.dtype), **super().get_config()}


class ConvTranspose2D(Conv2D):
    r"""Transposed 2-D convolution (a "deconvolution"), for decoders: the adjoint of
    :class:`Conv2D`, upsampling by ``stride``.

    .. math::

        y = \text{conv2d\_input\_grad}(x, W) + b, \qquad
        H_o = (H - 1)s - 2p + d(k - 1) + 1 + \text{output\_padding}

        \partial x = \text{conv2d}(g, W), \qquad
        \partial W = \text{conv2d weight gradient with input } g \text{ and output gradient } x

    Parameters are those of :class:`Conv2D` (no "same" padding), plus ``output_padding``
    (added to one side of the output, < stride or dilation; it picks among the input sizes a
    stride-s convolution maps to the same output size).

    Attributes
    ----------
    params : {"W": (in_channels, out_channels/groups, KH, KW), "b": (out_channels,)}
        PyTorch's layout for ``ConvTranspose2d``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, dilation=1, groups=1, bias=True, init="he_uniform", rng=None,
                 dtype=np.float32, name=None):
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2D: padding must be an int or a pair, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, init, rng, dtype, name)
        self.output_padding = _pair("ConvTranspose2D", "output_padding", output_padding, 0)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride,
                                                   self.dilation)):
            raise ValueError(f"ConvTranspose2D: output_padding {self.output_padding} must be "
                             f"smaller than stride {self.stride} or dilation {self.dilation}")

    def _weight_shape(self):
        return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)

    def _out_hw(self, H, W):
        return tuple(None if n is None else (n - 1) * s - 2 * p + d * (k - 1) + 1 + op
                     for n, s, p, d, k, op in zip((H, W), self.stride, self.padding,
                                                  self.dilation, self.kernel_size,
                                                  self.output_padding))

    def forward(self, x, training=True):
        W = self.params["W"]
        x = checks.as_input(self, x, W.dtype)
        check_nchw(self, x, self.in_channels)
        size = self._out_hw(*x.shape[2:])
        if min(size) < 1:
            raise ValueError(f"{checks.describe(self)}: input {shape_str(x.shape)} gives an "
                             f"empty output {size} (padding {self.padding} too large)")
        y = ops.conv2d_input_grad(x, W, size, **self._geometry())
        if self.bias:
            y += self.params["b"][:, None, None]
        self._x = x
        return y

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x)
        W = self.params["W"]
        g = checks.as_grad(self, grad_out, self.output_shape(self._x.shape), W.dtype)
        # the convolution this is the adjoint of maps g (its input) to x (its output)
        _dx, dW, _db = ops.conv2d_backward(self._x, g, W, **self._geometry(), input_grad=False)
        self.grads["W"] += dW
        if self.bias:
            self.grads["b"] += g.sum(axis=(0, 2, 3))
        if not self.needs_input_grad:
            return None
        return ops.conv2d(g, W, None, **self._geometry())

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] not in (None, self.in_channels):
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                             f"{self.in_channels}, height, width), got "
                             f"{shape_str(tuple(input_shape))}")
        return (input_shape[0], self.out_channels, *self._out_hw(*input_shape[2:]))

    def get_config(self):
        cfg = super().get_config()
        cfg["output_padding"] = list(self.output_padding)
        return cfg
