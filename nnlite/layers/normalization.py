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

    def backward(self, grad_out, residual=None):
        """dx, and dγ, dβ added into ``grads``; ``residual`` (the input's shape), when given, is
        added to dx as the kernel writes it: the gradient reaching the same input by a skip
        connection (a transformer block's x + f(LayerNorm(x)))."""
        checks.check_forward_called(self, self._x)
        gamma = self.params["gamma"]
        g = checks.as_grad(self, grad_out, self._x.shape, gamma.dtype)
        if residual is not None:
            residual = checks.as_residual(self, residual, self._x.shape, gamma.dtype)
        dx, dgamma, dbeta = ops.layernorm_backward(g, self._x, gamma, self._mean, self._rstd,
                                                   residual=residual)
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


class _BatchNorm(Layer):
    r"""Batch normalisation (Ioffe & Szegedy 2015) over the channel axis 1: statistics per
    channel, over the batch and every axis after the channels.

    .. math::

        \text{training:}\quad \mu = \overline{x}, \quad \sigma^2 = \overline{(x - \mu)^2},
        \quad \hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}, \quad y = \gamma \hat x + \beta

        \partial x = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}\big(g - \overline{g}
                     - \hat x\, \overline{g \hat x}\big), \quad
        \partial\gamma = \textstyle\sum g \hat x, \quad \partial\beta = \textstyle\sum g

        \text{inference:}\quad y = \gamma\,(x - \mu_{run})/\sqrt{\sigma^2_{run} + \epsilon}
                          + \beta

    With ``activation="relu"`` the layer is BatchNorm then ReLU in one op, :math:`y =
    \max(0, \gamma \hat x + \beta)` (a CNN's Conv → BatchNorm → ReLU): the backward masks
    :math:`g` by :math:`[y > 0]` (from the cached output) as it reads it, so each direction makes
    one pass over the activations fewer than ``BatchNorm2d`` followed by ``ReLU``, with the same
    values, bit for bit.

    In training each call updates the running statistics, as PyTorch does:
    :math:`\mu_{run} \leftarrow (1 - m)\mu_{run} + m\mu`, :math:`\sigma^2_{run} \leftarrow
    (1 - m)\sigma^2_{run} + m\,\sigma^2 \frac{M}{M - 1}` (the unbiased variance of the M values
    per channel). ``model.eval()``, ``predict`` and ``evaluate`` use them. They are in
    ``buffers`` (saved with the weights, never trained).

    Parameters
    ----------
    num_features : int
        C, the number of channels.
    eps : float, default 1e-5
    momentum : float, default 0.1
        m above (PyTorch's convention; Keras' momentum is 1 - m).
    dtype : numpy dtype, default float32
    name : str, optional
    activation : {None, "relu"}, default None (keyword only)
        A ReLU fused after the affine map; None for the plain layer.

    Attributes
    ----------
    params : {"gamma": ones (C,), "beta": zeros (C,)}
    buffers : {"running_mean": zeros (C,), "running_var": ones (C,)}
    """

    ndims = ()                               # the input ranks the subclass takes

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32, name=None, *,
                 activation=None):
        super().__init__(name=name)
        kind = type(self).__name__
        (self.num_features,) = checks.sizes(kind, num_features=num_features)
        self.eps, self.momentum = float(eps), float(momentum)
        if not self.eps > 0:
            raise ValueError(f"{kind}: eps must be > 0, got {eps}")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"{kind}: momentum must be in [0, 1], got {momentum}")
        if activation not in (None, "relu"):
            raise ValueError(f"{kind}: activation must be None or 'relu' (a fused ReLU), got "
                             f"{activation!r}; for another, put its layer after this one")
        self.activation = activation
        C = self.num_features
        self.params["gamma"] = np.ones(C, dtype=dtype)
        self.params["beta"] = np.zeros(C, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._buffers = {"running_mean": np.zeros(C, dtype=dtype),
                         "running_var": np.ones(C, dtype=dtype)}
        self._x = None                       # caches: x, per-channel mean and rstd (training)
        self._mean = self._rstd = None
        self._scale = None                   # inference: γ/√(σ²_run + ε), for dx
        self._y = None                       # with activation: the output, whose y > 0 masks g

    def _describe(self):
        act = f", {self.activation}" if self.activation else ""
        return f"{type(self).__name__}({self.num_features}{act})"

    def _check(self, shape):
        if len(shape) not in self.ndims or shape[1] not in (None, self.num_features):
            layouts = " or ".join(shape_str(s) for s in self._layouts())
            raise ValueError(f"{checks.describe(self)}: expected input of shape {layouts}, got "
                             f"{shape_str(tuple(shape))}")

    def forward(self, x, training=True):
        gamma, beta = self.params["gamma"], self.params["beta"]
        x = checks.as_input(self, x, gamma.dtype)
        self._check(x.shape)
        run_mean, run_var = self._buffers["running_mean"], self._buffers["running_var"]
        xp = ops.array_module(x)
        act = self.activation
        if not training:
            self._x, self._mean = x, None
            self._scale = gamma / xp.sqrt(run_var + self.eps)
            y = ops.batchnorm_inference(x, gamma, beta, run_mean, run_var, self.eps, act=act)
            self._y = y if act else None
            return y
        M = x.size // self.num_features
        if M < 2:
            raise ValueError(f"{checks.describe(self)}: training needs more than one value per "
                             f"channel to estimate a variance, got input of shape "
                             f"{shape_str(x.shape)} (use a batch of 2 or more, or eval())")
        y, self._mean, self._rstd = ops.batchnorm(x, gamma, beta, self.eps, act=act)
        var = 1 / self._rstd.astype(xp.float64) ** 2 - self.eps       # the biased variance
        m = self.momentum
        run_mean *= 1 - m
        run_mean += m * self._mean
        run_var *= 1 - m
        run_var += (m * M / (M - 1) * var).astype(run_var.dtype)
        self._x = x
        self._y = y if act else None         # (not copied: no layer writes into its input)
        return y

    def backward(self, grad_out):
        checks.check_forward_called(self, self._x)
        gamma = self.params["gamma"]
        g = checks.as_grad(self, grad_out, self._x.shape, gamma.dtype)
        if self._mean is None:               # after an inference forward: an affine map
            if self.activation:              # (then ReLU's [y > 0])
                g = g * (self._y > 0)
            shape = (1, -1) + (1,) * (g.ndim - 2)
            run_mean = self._buffers["running_mean"]
            xhat = (self._x - run_mean.reshape(shape)) * (self._scale / gamma).reshape(shape)
            axes = (0, *range(2, g.ndim))
            self.grads["gamma"] += (g * xhat).sum(axis=axes)
            self.grads["beta"] += g.sum(axis=axes)
            return g * self._scale.reshape(shape) if self.needs_input_grad else None
        dx, dgamma, dbeta = ops.batchnorm_backward(g, self._x, gamma, self._mean, self._rstd,
                                                   act=self.activation, y=self._y)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx if self.needs_input_grad else None

    def output_shape(self, input_shape):
        self._check(tuple(input_shape))
        return tuple(input_shape)

    def astype(self, dtype):
        super().astype(dtype)
        for k in list(self._buffers):
            xp = ops.array_module(self._buffers[k])
            self._buffers[k] = xp.ascontiguousarray(self._buffers[k], dtype=dtype)
        return self

    def get_config(self):
        cfg = {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
               "dtype": checks.dtype_name(self.dtype)}
        if self.activation:                  # (absent for the plain layer: its config as before)
            cfg["activation"] = self.activation
        return {**cfg, **super().get_config()}


class BatchNorm1d(_BatchNorm):
    """BatchNorm over features (N, C), or channels of sequences (N, C, L); see
    :class:`_BatchNorm` for the math and parameters."""

    ndims = (2, 3)

    def _layouts(self):
        return [("batch", self.num_features), ("batch", self.num_features, "length")]


class BatchNorm2d(_BatchNorm):
    """BatchNorm over the channels of images (N, C, H, W); see :class:`_BatchNorm` for the
    math and parameters."""

    ndims = (4,)

    def _layouts(self):
        return [("batch", self.num_features, "height", "width")]
