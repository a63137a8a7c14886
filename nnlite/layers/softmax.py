"""Softmax over the last axis (as a layer; for training prefer CrossEntropy on logits)."""
from .. import ops
from . import _checks as checks
from .base import Layer


class Softmax(Layer):
    r"""Probabilities over the last axis.

    .. math::

        y_i = \frac{e^{x_i - \max_j x_j}}{\sum_j e^{x_j - \max_j x_j}}, \qquad
        \partial x = y \odot \Big(g - \sum_j g_j y_j\Big)

    Subtracting the max changes nothing mathematically and keeps ``exp`` from overflowing.
    Followed by cross-entropy, the pair's gradient is just ``(y - t) / N``; that fused form
    (``nnlite.losses.CrossEntropy`` on logits) is faster and more accurate than this layer.

    Parameters
    ----------
    name : str, optional
    """

    def __init__(self, name=None):
        super().__init__(name=name)
        self._y = None                      # cache: the output; backward needs only y

    def forward(self, x, training=True):
        x = checks.as_input(self, x)
        checks.check_min_ndim(self, x, 1, "(..., classes)")
        y = ops.softmax(x)
        self._y = y if training else None   # inference: no cache
        return y

    def backward(self, grad_out):
        checks.check_forward_called(self, self._y)
        g = checks.as_grad(self, grad_out, self._y.shape, self._y.dtype)
        return ops.softmax_backward(g, self._y)
