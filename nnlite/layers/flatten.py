"""Flatten: (N, d1, d2, ...) → (N, d1·d2·...), e.g. MNIST images (N, 28, 28) → (N, 784)."""
import math

import numpy as np

from . import _checks as checks
from .base import Layer


class Flatten(Layer):
    """Keep the batch axis, merge all the others.

    Backward is the inverse reshape. Integer inputs (uint8 images) are cast to float32;
    float inputs keep their dtype (the next Linear casts to its own).

    Parameters
    ----------
    name : str, optional
    """

    def __init__(self, name=None):
        super().__init__(name=name)
        self._in_shape = None               # cache: the input shape, to undo the reshape

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        checks.check_min_ndim(self, x, 1, "(batch, ...)")
        self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)    # a view when x is contiguous

    def backward(self, grad_out):
        checks.check_forward_called(self, self._in_shape)
        n = self._in_shape[0]
        rest = math.prod(self._in_shape[1:])
        g = checks.as_grad(self, grad_out, (n, rest), None)
        return g.reshape(self._in_shape)

    def output_shape(self, input_shape):
        rest = input_shape[1:]
        flat = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], flat)
