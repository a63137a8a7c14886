"""Linear (fully connected) layer: y = xW + b."""
import numpy as np

from .. import init as _init
from .. import ops
from . import _checks as checks
from .base import Layer


class Linear(Layer):
    r"""Fully connected layer over the last axis.

    .. math::

        y = xW + b, \qquad
        \frac{\partial L}{\partial x} = g W^\top, \qquad
        \frac{\partial L}{\partial W} = x^\top g, \qquad
        \frac{\partial L}{\partial b} = \textstyle\sum_n g_n

    where :math:`g = \partial L / \partial y`; leading axes (batch, time, ...) are merged
    into one, so an input (B, T, in_features) works as (B·T, in_features).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    init : str, callable or None, default "he_uniform"
        Weight initialiser (see :mod:`nnlite.init`). He suits ReLU nets (the default);
        use "glorot_uniform" before tanh/sigmoid or for a linear output layer, "normal" for
        GPT-2's N(0, 0.02²). ``None``: W zero, nothing drawn, for a caller that sets it.
    rng : numpy.random.Generator or int, optional
        Generator for the initial weights; default :func:`nnlite.random.get_rng`.
    dtype : numpy dtype, default float32
        Parameter dtype. Inputs are cast to it (int → float32, float64 → float32).
    name : str, optional

    Attributes
    ----------
    params : {"W": ndarray of shape (in_features, out_features), "b": ndarray of shape (out_features,)}
    grads : same keys and shapes, accumulated by ``backward``
    """

    def __init__(self, in_features, out_features, bias=True, init="he_uniform", rng=None,
                 dtype=np.float32, name=None):
        super().__init__(name=name)
        self.in_features, self.out_features = checks.sizes(
            "Linear", in_features=in_features, out_features=out_features)
        self.bias = bool(bias)
        self.init = init if init is None or isinstance(init, str) else \
            getattr(init, "__name__", str(init))
        W = _init.get(init)(self.in_features, self.out_features, rng=rng, dtype=dtype)
        self.params["W"] = np.ascontiguousarray(W, dtype=dtype)
        if self.bias:
            self.params["b"] = np.zeros(self.out_features, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x2 = None                     # cache: input as (rows, in_features), for dW
        self._in_shape = None               # cache: input shape, to shape dx

    def _describe(self):
        return f"Linear({self.in_features} → {self.out_features})"

    def forward(self, x, training=True):
        W = self.params["W"]
        x = checks.as_input(self, x, W.dtype)
        checks.check_min_ndim(self, x, 2, f"(batch, ..., {self.in_features})")
        checks.check_last_dim(self, x, self.in_features)
        x2 = x.reshape(-1, self.in_features)                # (N, in): N = product of leading axes
        y = ops.gemm(x2, W)                                 # (N, out), a new array
        if self.bias:
            ops.bias_act(y, self.params["b"], out=y)        # y += b in place: no second buffer
        self._x2, self._in_shape = x2, x.shape
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x2)
        W = self.params["W"]
        g = checks.as_grad(self, grad_out, (*self._in_shape[:-1], self.out_features), W.dtype)
        g2 = g.reshape(-1, self.out_features)               # (N, out)
        ops.gemm_tn(self._x2, g2, out=self.grads["W"], accumulate=True)   # dW += xᵀg
        if self.bias:
            ops.bias_grad(g2, out=self.grads["b"], accumulate=True)        # db += Σ_n g_n
        if not self.needs_input_grad:                       # first layer: dx is never used
            return None
        return ops.gemm_nt(g2, W).reshape(self._in_shape)   # dx = g Wᵀ

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{checks.describe(self)}: expected input of shape (batch, ..., "
                             f"{self.in_features}), got {tuple(input_shape)}")
        if input_shape[-1] is not None and input_shape[-1] != self.in_features:
            raise ValueError(f"{checks.describe(self)}: expected input with last dimension "
                             f"{self.in_features}, got shape {tuple(input_shape)}")
        return (*input_shape[:-1], self.out_features)

    def get_config(self):
        cfg = {"in_features": self.in_features, "out_features": self.out_features,
               "bias": self.bias, "init": self.init, "dtype": checks.dtype_name(self.dtype)}
        cfg.update(super().get_config())
        return cfg


FC = Linear   # the name Deep Learning from Scratch and the course notes use
