r"""Pooling over NCHW images: MaxPool2D, AvgPool2D and GlobalAvgPool2D (no parameters)."""
from .. import ops
from . import _checks as checks
from .base import Layer, shape_str
from .conv import _pair, spatial_out


def _check_4d(layer, x):
    if x.ndim != 4:
        hint = " (a single image? add a batch axis: x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{checks.describe(layer)}: expected input of shape (batch, channels, "
                         f"height, width), 4-D, got shape {shape_str(x.shape)}{hint}")


class _Pool2D(Layer):
    """What MaxPool2D and AvgPool2D share: the window geometry, shapes, config."""

    def __init__(self, kernel_size, stride=None, padding=0, name=None):
        super().__init__(name=name)
        kind = type(self).__name__
        self.kernel_size = _pair(kind, "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair(kind, "stride", stride, 1)
        self.padding = _pair(kind, "padding", padding, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{kind}: padding {self.padding} must be at most half the kernel "
                             f"size {self.kernel_size}")
        self._in_shape = None               # cache: the input shape, for dx

    def _describe(self):
        k = self.kernel_size
        return f"{type(self).__name__}({k[0]}x{k[1]})"

    def _input(self, x):
        x = checks.as_input(self, x)
        _check_4d(self, x)
        spatial_out(self, x.shape, self.kernel_size, self.stride, self.padding, (1, 1))
        self._in_shape, self._dtype = x.shape, x.dtype
        return x

    def _grad(self, grad_out):
        checks.check_forward_called(self, self._in_shape)
        return checks.as_grad(self, grad_out, self.output_shape(self._in_shape), self._dtype)

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                             f"channels, height, width), got {shape_str(tuple(input_shape))}")
        return (*input_shape[:2], *spatial_out(self, input_shape, self.kernel_size, self.stride,
                                               self.padding, (1, 1)))

    def get_config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), **super().get_config()}


class MaxPool2D(_Pool2D):
    r"""Max pooling: the largest value of each window; the gradient goes to that one input.

    .. math:: y_{n,c,i,j} = \max_{(h, w) \in \text{window}(i, j)} x_{n,c,h,w}, \qquad
              \partial x_{n,c,h,w} = \textstyle\sum_{(i,j):\ \arg\max = (h, w)} g_{n,c,i,j}

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default: the kernel size (non-overlapping windows).
    padding : int or (int, int), default 0
        Implicit -∞ padding, at most half the kernel.
    name : str, optional
    """

    def __init__(self, kernel_size, stride=None, padding=0, name=None):
        super().__init__(kernel_size, stride, padding, name)
        self._argmax = None                 # cache: where each maximum came from

    def forward(self, x, training=True):
        x = self._input(x)
        y, self._argmax = ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, grad_out):
        g = self._grad(grad_out)
        return ops.max_pool2d_backward(g, self._argmax, self._in_shape[2:])


class AvgPool2D(_Pool2D):
    r"""Average pooling: the mean of each window (zero padding counted, as PyTorch's default).

    .. math:: y_{n,c,i,j} = \frac{1}{k_h k_w} \textstyle\sum_{(h, w) \in \text{window}(i, j)}
              x_{n,c,h,w}, \qquad \partial x_{n,c,h,w} = \frac{1}{k_h k_w}
              \textstyle\sum_{(i,j) \ni (h, w)} g_{n,c,i,j}

    Parameters are those of :class:`MaxPool2D` (padding by zeros).
    """

    def forward(self, x, training=True):
        x = self._input(x)
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, grad_out):
        g = self._grad(grad_out)
        return ops.avg_pool2d_backward(g, self._in_shape[2:], self.kernel_size, self.stride,
                                       self.padding)


class GlobalAvgPool2D(Layer):
    r"""The mean of each channel over the image: (N, C, H, W) → (N, C).

    .. math:: y_{n,c} = \frac{1}{HW} \textstyle\sum_{h,w} x_{n,c,h,w}, \qquad
              \partial x_{n,c,h,w} = g_{n,c} / (HW)

    Parameters
    ----------
    name : str, optional
    """

    def __init__(self, name=None):
        super().__init__(name=name)
        self._in_shape = None

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        _check_4d(self, x)
        self._in_shape, self._dtype = x.shape, x.dtype
        return ops.avg_pool2d(x, x.shape[2:]).reshape(x.shape[:2])   # one window: the image

    def backward(self, grad_out):
        checks.check_forward_called(self, self._in_shape)
        g = checks.as_grad(self, grad_out, self._in_shape[:2], self._dtype)
        hw = self._in_shape[2:]
        return ops.avg_pool2d_backward(g.reshape(*g.shape, 1, 1), hw, hw)

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                             f"channels, height, width), got {shape_str(tuple(input_shape))}")
        return tuple(input_shape[:2])
