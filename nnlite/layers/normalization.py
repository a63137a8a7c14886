r"""Layer normalisation over the last axis (Ba, Kiros & Hinton 2016), as in GPT-2."""
import numpy as np

from .. import ops
from . import _checks as checks
from .base import Layer, shape_str


class LayerNorm(Layer):
    r"""Normalise each vector over its last axis, then scale and shift.

    .. math::

        \mu = \tfrac1C \textstyle\sum_c x_c, \quad
        \mathrm{rstd} = \big(\tfrac1C \textstyle\sum_c (x_c - \mu)^2 + \epsilon\big)^{-1/2}, \quad
        \hat x = (x - \mu)\,\mathrm{rstd}, \quad
        y = \gamma \odot \hat x + \beta

        \partial\hat x = g \odot \gamma, \quad
        \partial x = \mathrm{rstd}\,\big(\partial\hat x - \overline{\partial\hat x}
                     - \hat x\ \overline{\partial\hat x \odot \hat x}\big), \quad
        \partial\gamma = \textstyle\sum_n g_n \odot \hat x_n, \quad
        \partial\beta = \textstyle\sum_n g_n

    (bars: means over the last axis; sums over every other axis). As in llm.c the forward
    caches ``mean`` and ``rstd`` (one number per vector), not :math:`\hat x`; the backward
    recomputes :math:`\hat x` from ``x``.

    Parameters
    ----------
    dim : int
        :math:`C`, the size of the last axis.
    eps : float, default 1e-5
        :math:`\epsilon` (PyTorch's default).
    dtype : numpy dtype, default float32
    name : str, optional

    Attributes
    ----------
    params : {"gamma": ones of shape (dim,), "beta": zeros of shape (dim,)}
    grads : same keys and shapes
    """

    def __init__(self, dim, eps=1e-5, dtype=np.float32, name=None):
        super().__init__(name=name)
        self.dim, self.eps = int(dim), float(eps)
        if self.dim < 1:
            raise ValueError(f"LayerNorm: dim must be >= 1, got {dim}")
        if not self.eps > 0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps}")
        self.params["gamma"] = np.ones(self.dim, dtype=dtype)
        self.params["beta"] = np.zeros(self.dim, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x = None                      # caches: x, and per-vector mean and rstd
        self._mean = self._rstd = None

    def _describe(self):
        return f"LayerNorm({self.dim})"

    def forward(self, x, training=True):
        gamma = self.params["gamma"]
        x = checks.as_input(self, x, gamma.dtype)
        x = ops.array_module(x).ascontiguousarray(x)    # cached for backward: copied once at most
        checks.check_min_ndim(self, x, 1, f"(..., {self.dim})")
        checks.check_last_dim(self, x, self.dim)
        y, mean, rstd = ops.layernorm(x, gamma, self.params["beta"], self.eps)
        # inference (training=False) keeps no cache: evaluate/predict hold no activations
        self._x, self._mean, self._rstd = (x, mean, rstd) if training else (None, None, None)
        return y

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x)
        gamma = self.params["gamma"]
        g = checks.as_grad(self, grad_out, self._x.shape, gamma.dtype)
        dx, dgamma, dbeta = ops.layernorm_backward(g, self._x, gamma, self._mean, self._rstd)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx if self.needs_input_grad else None

    def output_shape(self, input_shape):
        if len(input_shape) < 1 or (input_shape[-1] is not None and input_shape[-1] != self.dim):
            raise ValueError(f"{checks.describe(self)}: expected input with last dimension "
                             f"{self.dim}, got shape {shape_str(tuple(input_shape))}")
        return tuple(input_shape)

    def get_config(self):
        return {"dim": self.dim, "eps": self.eps, "dtype": checks.dtype_name(self.dtype),
                **super().get_config()}
