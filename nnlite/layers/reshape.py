"""Shape-only layers: Reshape (per-sample shape change) and Upsample (nearest neighbour)."""
import math

from .. import ops
from ..ops import _checks as op_checks
from . import _checks as checks
from .base import Layer, shape_str


class Reshape(Layer):
    """Give each sample a new shape, batch axis kept: ``Reshape((1, 28, 28))`` turns
    (N, 784) into (N, 1, 28, 28). One entry may be -1 (inferred). Backward is the inverse
    reshape.

    Parameters
    ----------
    target_shape : tuple of int
        The shape of one sample, without the batch axis (Keras' convention).
    name : str, optional
    """

    def __init__(self, target_shape, name=None):
        super().__init__(name=name)
        shape = tuple(int(d) for d in target_shape)
        if shape.count(-1) > 1 or any(d < 1 and d != -1 for d in shape):
            raise ValueError(f"Reshape: target_shape must hold positive sizes and at most one "
                             f"-1, got {target_shape!r}")
        self.target_shape = shape
        self._in_shape = None

    def _describe(self):
        return f"Reshape({shape_str(self.target_shape)})"

    def _sample_shape(self, in_sample):
        """target_shape with -1 resolved, for samples of shape ``in_sample``."""
        if any(d is None for d in in_sample):
            return tuple(None if d == -1 else d for d in self.target_shape)
        n = math.prod(in_sample)
        known = math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and n % known) or (-1 not in self.target_shape and
                                                       n != known):
            raise ValueError(f"{checks.describe(self)}: cannot reshape samples of shape "
                             f"{shape_str(tuple(in_sample))} ({n} values) to "
                             f"{shape_str(self.target_shape)}")
        return tuple(n // known if d == -1 else d for d in self.target_shape)

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        checks.check_min_ndim(self, x, 1, "(batch, ...)")
        self._in_shape = x.shape
        return x.reshape(x.shape[0], *self._sample_shape(x.shape[1:]))

    def backward(self, grad_out):
        checks.check_forward_called(self, self._in_shape)
        want = (self._in_shape[0], *self._sample_shape(self._in_shape[1:]))
        return checks.as_grad(self, grad_out, want, None).reshape(self._in_shape)

    def output_shape(self, input_shape):
        return (input_shape[0], *self._sample_shape(tuple(input_shape[1:])))

    def get_config(self):
        return {"target_shape": list(self.target_shape), **super().get_config()}


class Upsample(Layer):
    r"""Nearest-neighbour upsampling of NCHW images by an integer factor.

    .. math:: y_{n,c,h,w} = x_{n,c,\lfloor h/s_h \rfloor,\lfloor w/s_w \rfloor}, \qquad
              \partial x_{n,c,i,j} = \textstyle\sum_{a < s_h,\, b < s_w} g_{n,c,i s_h + a,
              j s_w + b}

    Parameters
    ----------
    scale_factor : int or (int, int), default 2
    mode : "nearest"
        The only mode (bilinear is not implemented).
    name : str, optional
    """

    def __init__(self, scale_factor=2, mode="nearest", name=None):
        super().__init__(name=name)
        if mode != "nearest":
            raise ValueError(f"Upsample: mode must be 'nearest' (the only one), got {mode!r}")
        self.scale_factor = op_checks.pair("Upsample", "scale_factor", scale_factor, 1)
        self.mode = mode
        self._in_shape = None

    def _describe(self):
        return f"Upsample(x{self.scale_factor[0]}, x{self.scale_factor[1]})"

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        if x.ndim != 4:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                             f"channels, height, width), 4-D, got shape {shape_str(x.shape)}")
        self._in_shape = x.shape
        sh, sw = self.scale_factor
        N, C, H, W = x.shape
        xp = ops.array_module(x)
        y = xp.broadcast_to(x[:, :, :, None, :, None], (N, C, H, sh, W, sw))
        return xp.ascontiguousarray(y).reshape(N, C, H * sh, W * sw)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._in_shape)
        N, C, H, W = self._in_shape
        sh, sw = self.scale_factor
        g = checks.as_grad(self, grad_out, (N, C, H * sh, W * sw), None)
        return g.reshape(N, C, H, sh, W, sw).sum(axis=(3, 5))

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, "
                             f"channels, height, width), got {shape_str(tuple(input_shape))}")
        N, C, H, W = input_shape
        sh, sw = self.scale_factor
        return (N, C, None if H is None else H * sh, None if W is None else W * sw)

    def get_config(self):
        return {"scale_factor": list(self.scale_factor), "mode": self.mode,
                **super().get_config()}
